//! The database file's storage backend: redb's own `FileBackend` with one
//! switch in front of its write paths, so tests can make the disk "fill up"
//! or turn read-only under a running server and watch redb's real reaction
//! to the I/O error (it latches the failure; see `Store::storage_failure`).
//! A second switch makes every sync slow, so tests can hold a commit open
//! (a request timing out while its write commits).
//! The switches are off unless a caller holding the `Store` turns it on through
//! [`crate::store::Store::inject_write_errors`]; no request, config value or
//! environment variable reaches it.

use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// `errno`: 0, writes go through; otherwise the OS error number every
/// write, resize and sync of the file fails with. `sync_delay_ms`: how long
/// every sync of the file waits first (a slow disk), 0 for none.
#[derive(Debug, Default)]
pub(crate) struct Fault {
    errno: AtomicI32,
    sync_delay_ms: AtomicU64,
}

impl Fault {
    pub(crate) fn set(&self, errno: Option<i32>) {
        self.errno.store(errno.unwrap_or(0), Ordering::SeqCst);
    }

    pub(crate) fn set_sync_delay(&self, delay: Option<std::time::Duration>) {
        let ms = delay.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.sync_delay_ms.store(ms, Ordering::SeqCst);
    }

    fn check(&self) -> io::Result<()> {
        match self.errno.load(Ordering::Relaxed) {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Backend {
    file: FileBackend,
    fault: Arc<Fault>,
}

impl Backend {
    pub(crate) fn new(file: FileBackend, fault: Arc<Fault>) -> Backend {
        Backend { file, fault }
    }
}

impl StorageBackend for Backend {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fault.check()?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        let delay = self.fault.sync_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        self.fault.check()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fault.check()?;
        self.file.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}
