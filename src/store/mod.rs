//! The only module that touches redb. It owns the database file, the schema
//! version check, and the single writer thread that batches queued writes
//! into one durable commit (group commit). Reads run on tokio's blocking pool
//! in short read transactions and never wait for the writer.

pub mod audit;
pub mod backup;
pub mod codec;
pub mod connections;
mod fault;
pub mod links;
pub mod members;
pub mod migrate;
pub mod oauth;
pub mod order;
pub mod outbox;
pub mod sessions;
pub mod sync_errors;
pub mod tables;
pub mod teams;
pub mod workspace;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, WriteTransaction};
use tokio::sync::oneshot;

/// Deletes everything `owner` holds through an `(owner, hash)` index: each
/// hash from every table in `rows`, and the index entries. Returns how many
/// hashes there were. (A member's links and sessions, a connection's or a
/// grant's tokens.)
/// Up to `limit` keys of `table` after `after` (from the start when
/// `None`) whose row is `expired`, found in a read transaction so the
/// writer is not held while looking.
pub(crate) fn expired_keys<T: serde::de::DeserializeOwned>(
    txn: &ReadTransaction,
    table: redb::TableDefinition<&[u8; 32], &[u8]>,
    after: Option<[u8; 32]>,
    limit: usize,
    expired: impl Fn(&T) -> bool,
) -> Result<Vec<[u8; 32]>, StoreError> {
    use std::ops::Bound;
    let t = txn.open_table(table)?;
    let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut out = Vec::new();
    for row in redb::ReadableTable::range::<&[u8; 32]>(&t, (start, Bound::Unbounded))? {
        let (k, v) = row?;
        if expired(&codec::decode::<T>(v.value())?) {
            out.push(*k.value());
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Deletes the rows of `keys` that are still expired when read again in
/// this transaction (a session may have been used since): those for which
/// `expired_owner` gives the owner of their `(owner, key)` row in `index`,
/// which goes too; returns how many.
pub(crate) fn remove_expired<T: serde::de::DeserializeOwned>(
    txn: &WriteTransaction,
    table: redb::TableDefinition<&[u8; 32], &[u8]>,
    index: Option<redb::TableDefinition<(u128, &[u8; 32]), ()>>,
    keys: &[[u8; 32]],
    expired_owner: impl Fn(&T) -> Option<u128>,
) -> Result<usize, StoreError> {
    let mut gone: Vec<(u128, [u8; 32])> = Vec::new();
    {
        let mut t = txn.open_table(table)?;
        for k in keys {
            let row: Option<T> = redb::ReadableTable::get(&t, k)?
                .map(|v| codec::decode(v.value()))
                .transpose()?;
            if let Some(owner) = row.as_ref().and_then(&expired_owner) {
                t.remove(k)?;
                gone.push((owner, *k));
            }
        }
    }
    if let Some(index) = index {
        let mut idx = txn.open_table(index)?;
        for (o, k) in &gone {
            idx.remove((*o, k))?;
        }
    }
    Ok(gone.len())
}

pub(crate) fn revoke_owned(
    txn: &WriteTransaction,
    index: redb::TableDefinition<(u128, &[u8; 32]), ()>,
    rows: &[redb::TableDefinition<&[u8; 32], &[u8]>],
    owner: u128,
) -> Result<usize, StoreError> {
    let hashes: Vec<[u8; 32]> = {
        let idx = txn.open_table(index)?;
        let mut v = Vec::new();
        for row in redb::ReadableTable::range(&idx, (owner, &[0u8; 32])..=(owner, &[0xffu8; 32]))? {
            v.push(*row?.0.value().1);
        }
        v
    };
    let mut idx = txn.open_table(index)?;
    for def in rows {
        let mut t = txn.open_table(*def)?;
        for h in &hashes {
            t.remove(h)?;
        }
    }
    for h in &hashes {
        idx.remove((owner, h))?;
    }
    Ok(hashes.len())
}

/// Most queued writes one commit takes; bounds the latency of the first.
const MAX_BATCH: usize = 256;
/// redb's page cache; the default (1 GiB) is far more than a workspace needs
/// (100k members fit in well under this).
const CACHE_BYTES: usize = 32 << 20;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "database {path} is in use by another process (a running roster server?); stop it first or use the server's own commands"
    )]
    Locked { path: PathBuf },
    #[error(
        "database was written by a newer roster (schema version {found}; this build supports up to {supported}); upgrade roster — the file was left untouched"
    )]
    TooNew { found: u64, supported: u64 },
    #[error("database error: {0}")]
    Database(String),
    /// The disk refused a read or write (full, read-only, failing). Nothing
    /// of the operation was applied; answer 503.
    #[error("storage I/O error: {0}")]
    Storage(String),
    #[error("database holds data this build cannot read: {0}")]
    Corrupt(String),
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("the database is closed")]
    Closed,
    /// The request's deadline passed before its write started; nothing was
    /// written (the request was answered 408).
    #[error("the request timed out before its write started; nothing was written")]
    TimedOut,
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            // `PreviousIo`: an earlier I/O error latched; redb refuses the
            // file until it is reopened.
            redb::Error::Io(_) | redb::Error::PreviousIo => StoreError::Storage(e.to_string()),
            other => StoreError::Database(other.to_string()),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// What a queued write did in its turn inside a batch.
enum Step {
    Applied,
    /// The operation refused itself (a rule, a conflict). It may have
    /// written before refusing, so the batch is rolled back and re-run
    /// without it.
    Refused,
    /// The database failed; the whole batch fails.
    Failed(StoreError),
}

trait Job: Send {
    /// Whether the request this write belongs to still wants it (see
    /// [`WriteGate`]); asked once, before the job first runs.
    fn may_start(&self) -> bool;
    fn run(&mut self, txn: &WriteTransaction) -> Step;
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

/// Ties a request's deadline to its writes, so a client is never told "timed
/// out" about a write that then commits (issue 17: an IdP retries a 408, and
/// the write had happened). The request-timeout middleware gives every
/// request a gate and, when the deadline passes, tries to close it: that
/// succeeds while none of the request's writes has started, and then none
/// ever will (the writer skips them) and the answer is 408; once the writer
/// has started one, closing fails and the request waits for the real
/// outcome of its write.
#[derive(Debug, Default)]
pub struct WriteGate(std::sync::atomic::AtomicU8);

const GATE_OPEN: u8 = 0;
const GATE_STARTED: u8 = 1;
const GATE_CLOSED: u8 = 2;

impl WriteGate {
    /// The writer's side: true when the write may run (and from then on the
    /// gate can no longer be closed).
    fn start(&self) -> bool {
        match self
            .0
            .compare_exchange(GATE_OPEN, GATE_STARTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(now) => now == GATE_STARTED,
        }
    }

    /// The deadline's side: true when no write of the request started and
    /// none will; false when one started, so its outcome is the answer.
    pub fn close(&self) -> bool {
        match self
            .0
            .compare_exchange(GATE_OPEN, GATE_CLOSED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(now) => now == GATE_CLOSED,
        }
    }
}

tokio::task_local! {
    static GATE: Arc<WriteGate>;
}

/// Runs `f` (a request) with `gate` governing every [`Store::write`] it
/// makes. Writes outside such a scope (CLI, background tasks) always run.
pub async fn gated<F: std::future::Future>(gate: Arc<WriteGate>, f: F) -> F::Output {
    GATE.scope(gate, f).await
}

type JobResult<R, E> = Result<Result<R, E>, StoreError>;

struct TypedJob<F, R, E> {
    f: F,
    out: Option<Result<R, E>>,
    reply: oneshot::Sender<JobResult<R, E>>,
    generation: Arc<AtomicU64>,
    gate: Option<Arc<WriteGate>>,
}

impl<F, R, E> Job for TypedJob<F, R, E>
where
    F: FnMut(&WriteTransaction) -> JobResult<R, E> + Send,
    R: Send,
    E: Send,
{
    fn may_start(&self) -> bool {
        self.gate.as_ref().is_none_or(|g| g.start())
    }

    fn run(&mut self, txn: &WriteTransaction) -> Step {
        match (self.f)(txn) {
            Ok(Ok(r)) => {
                self.out = Some(Ok(r));
                Step::Applied
            }
            Ok(Err(e)) => {
                self.out = Some(Err(e));
                Step::Refused
            }
            Err(e) => {
                self.out = None;
                Step::Failed(e)
            }
        }
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        if commit.is_ok() {
            // Before anyone hears of the commit, so a cache keyed on the
            // generation can never outlive a change it has not seen.
            self.generation.fetch_add(1, Ordering::Release);
        }
        let answer = match (commit, self.out) {
            (Ok(()), Some(out)) => Ok(out),
            (Ok(()), None) => Err(StoreError::Database("operation did not run".into())),
            (Err(e), _) => Err(e),
        };
        // The caller may have gone away (client disconnected); the write
        // stands regardless.
        let _ = self.reply.send(answer);
    }
}

struct Inner {
    db: Arc<Database>,
    path: PathBuf,
    fault: Arc<fault::Fault>,
    /// Set by the writer once redb has latched an I/O error: every later
    /// write fails until the database is reopened (a restart).
    failed: Arc<std::sync::OnceLock<String>>,
    queue: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Bumped by the writer after every durable commit (see [`Store::generation`]).
    generation: Arc<AtomicU64>,
    /// Queue of the point-read thread (see [`Store::read_point`]).
    points: mpsc::Sender<PointRead>,
}

/// A point read for the point-read thread: it carries its own database
/// handle, so the idle thread holds none.
type PointRead = Box<dyn FnOnce() + Send>;

/// The point-read thread: runs queued reads one after another. A read that
/// panics is answered with an error (its reply channel is dropped) and the
/// thread goes on. Ends when the store is dropped.
fn point_reader(rx: &mpsc::Receiver<PointRead>) {
    while let Ok(job) = rx.recv() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Handle to the open database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).finish()
    }
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.to_owned() },
        other => StoreError::Open {
            path: path.to_owned(),
            message: other.to_string(),
        },
    }
}

impl Store {
    /// Opens (creating if absent) and migrates the database. Blocking: call
    /// it before the runtime starts serving or inside `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if path.exists() {
            let found = Self::refuse_newer(path)?;
            if let Some(v) = found.filter(|v| *v > 0 && *v < migrate::CURRENT) {
                Self::keep_before_upgrade(path, v)?;
            }
        }
        let fault = Arc::new(fault::Fault::default());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        let file = redb::backends::FileBackend::new(file).map_err(|e| open_error(path, e))?;
        // What `Builder::create(path)` does, through the backend with the
        // test switch (fault.rs).
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(fault::Backend::new(file, fault.clone()))
            .map_err(|e| open_error(path, e))?;
        // The file holds password and token hashes: owner only.
        let _ = std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600));
        migrate::run(&db)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let writer_db = db.clone();
        let failed = Arc::new(std::sync::OnceLock::new());
        let writer_failed = failed.clone();
        let writer_path = path.to_owned();
        let writer = std::thread::Builder::new()
            .name("roster-writer".into())
            .spawn(move || writer_loop(&writer_db, &writer_path, &rx, &writer_failed))
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                message: format!("cannot start writer thread: {e}"),
            })?;
        let (points, point_rx) = mpsc::channel::<PointRead>();
        std::thread::Builder::new()
            .name("roster-reader".into())
            .spawn(move || point_reader(&point_rx))
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                message: format!("cannot start reader thread: {e}"),
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                path: path.to_owned(),
                fault,
                failed,
                queue: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                generation: Arc::new(AtomicU64::new(0)),
                points,
            }),
        })
    }

    /// Checks the schema version through a read-only open, so a file from a
    /// newer roster is refused before anything could write to it.
    fn refuse_newer(path: &Path) -> Result<Option<u64>, StoreError> {
        match redb::ReadOnlyDatabase::open(path) {
            Ok(ro) => {
                let found = migrate::version_of(&ro)?;
                drop(ro);
                if found > migrate::CURRENT {
                    return Err(StoreError::TooNew {
                        found,
                        supported: migrate::CURRENT,
                    });
                }
                Ok(Some(found))
            }
            // A file that was not closed cleanly needs a repair, which a
            // read-only open cannot do; the read-write open repairs it and
            // the migration runner checks the version again.
            Err(redb::DatabaseError::RepairAborted) => Ok(None),
            Err(e) => Err(open_error(path, e)),
        }
    }

    /// Before migrating an older file, keep an exact copy of it next to the
    /// database (`roster.redb.before-upgrade-v<N>`), so an upgrade can be
    /// undone by putting it back with an older roster.
    fn keep_before_upgrade(path: &Path, version: u64) -> Result<(), StoreError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let copy = path.with_file_name(format!("{name}.before-upgrade-v{version}"));
        if copy.exists() {
            return Ok(());
        }
        let err = |e: std::io::Error| StoreError::Open {
            path: copy.clone(),
            message: format!("cannot keep a copy before upgrading: {e}"),
        };
        let tmp = copy.with_extension("partial");
        std::fs::copy(path, &tmp).map_err(err)?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, &copy).map_err(err)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600));
        }
        tracing::info!(copy = %copy.display(), from = version, to = migrate::CURRENT, "kept a copy of the database before upgrading it");
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Why the database refuses writes until roster is restarted, once redb
    /// has latched an I/O error (disk full, read-only, failing); `None` while
    /// writes work.
    pub fn storage_failure(&self) -> Option<&str> {
        self.inner.failed.get().map(String::as_str)
    }

    /// Test hook: from now on every write, resize and sync of the database
    /// file fails with OS error `errno` (28 ENOSPC, 30 EROFS, 5 EIO), as if
    /// the disk filled up; `None` lets them through again. redb reacts as
    /// it would to the real error. Only code holding the `Store` can call
    /// this: no request, config or environment variable reaches it.
    pub fn inject_write_errors(&self, errno: Option<i32>) {
        self.inner.fault.set(errno);
    }

    /// Test hook: from now on every sync of the database file first waits
    /// `delay` (a slow disk); `None` ends that. Same reach as
    /// [`Store::inject_write_errors`].
    pub fn inject_sync_delay(&self, delay: Option<std::time::Duration>) {
        self.inner.fault.set_sync_delay(delay);
    }

    /// Runs `f` in a read transaction on the blocking pool.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&ReadTransaction) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            f(&txn)
        })
        .await
        .map_err(|e| StoreError::Database(format!("read task failed: {e}")))?
    }

    /// Runs `f` in a read transaction on the store's point-read thread: for
    /// reads of a few keys (one member by id, one token), which take
    /// microseconds. They run one after another, so while requests keep
    /// coming the thread keeps draining its queue instead of a pool thread
    /// being woken (a futex wake and two context switches) for every read,
    /// which cost GET /Users/{id} more than the read itself. Anything that
    /// scans (listings, exports) belongs in [`Store::read`], or it would hold
    /// up every point read queued behind it.
    pub async fn read_point<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&ReadTransaction) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let db = self.inner.db.clone();
        let (reply, answer) = oneshot::channel();
        let job: PointRead = Box::new(move || {
            let r = db.begin_read().map_err(StoreError::from).and_then(|txn| f(&txn));
            // The caller may have gone away; nothing to undo for a read.
            let _ = reply.send(r);
        });
        self.inner.points.send(job).map_err(|_| StoreError::Closed)?;
        answer
            .await
            .map_err(|_| StoreError::Database("read task failed".into()))?
    }

    /// Queues `f` for the writer. It runs inside a batch's write transaction
    /// and may run more than once (if another operation in its batch refuses
    /// itself), so it must not have side effects outside `txn`: take ids,
    /// times and random values before calling. The answer arrives after the
    /// commit is durable. `Ok(Err(e))` means the operation refused itself
    /// and nothing it wrote was kept.
    pub async fn write<R, E, F>(&self, f: F) -> JobResult<R, E>
    where
        F: FnMut(&WriteTransaction) -> JobResult<R, E> + Send + 'static,
        R: Send + 'static,
        E: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            f,
            out: None,
            reply,
            generation: self.inner.generation.clone(),
            gate: GATE.try_with(Arc::clone).ok(),
        });
        {
            let queue = self.inner.queue.lock().map_err(|_| StoreError::Closed)?;
            let sender = queue.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// A number that changes after every committed write, before its caller
    /// is answered. Read it *before* a read transaction: a value derived
    /// from that read stays valid for as long as the generation is unchanged.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Writes a consistent snapshot of the live database to `out` without
    /// stopping writers (see `backup`).
    pub async fn snapshot(&self, out: &Path) -> Result<backup::Snapshot, StoreError> {
        let db = self.inner.db.clone();
        let out = out.to_owned();
        tokio::task::spawn_blocking(move || backup::snapshot(&db, &out))
            .await
            .map_err(|e| StoreError::Database(format!("snapshot task failed: {e}")))?
    }

    /// Proves the writer is alive and the file accepts a write transaction.
    pub async fn probe_writable(&self) -> Result<(), StoreError> {
        self.write(|_txn| Ok(Ok::<(), ()>(())))
            .await?
            .map_err(|()| StoreError::Closed)
    }

    /// Stops the writer after the queued writes are committed. Reads still in
    /// flight finish; the file is closed when the last handle is dropped.
    pub async fn close(&self) {
        let sender = self.inner.queue.lock().ok().and_then(|mut q| q.take());
        drop(sender);
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    /// Blocking variant of [`Store::close`] for code outside a runtime.
    pub fn close_blocking(&self) {
        let sender = self.inner.queue.lock().ok().and_then(|mut q| q.take());
        drop(sender);
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn writer_loop(db: &Database, path: &Path, rx: &mpsc::Receiver<Box<dyn Job>>, failed: &std::sync::OnceLock<String>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Writes whose request already answered "timed out" never run.
        let (batch, late): (Vec<_>, Vec<_>) = batch.into_iter().partition(|j| j.may_start());
        fail_all(late, &StoreError::TimedOut);
        if batch.is_empty() {
            continue;
        }
        if let Some(why) = failed.get() {
            // redb would refuse the write transaction (`PreviousIo`); answer
            // without asking it, and without a log line per request.
            fail_all(batch, &StoreError::Storage(why.clone()));
            continue;
        }
        if let Err(e) = commit_batch(db, batch) {
            storage_failed(db, path, &e, failed);
        }
    }
}

/// After a batch failed with a storage error: finds out whether redb latched
/// it (it does for every failed write, resize or sync of the file: its
/// `CheckedBackend` then answers `PreviousIo` to everything until the
/// database is reopened), and says so once in the log.
fn storage_failed(db: &Database, path: &Path, e: &str, failed: &std::sync::OnceLock<String>) {
    match db.begin_write() {
        Ok(txn) => {
            let _ = txn.abort();
            tracing::error!(error = %e, path = %path.display(), "storage failed; the write was not applied and later writes will be tried again");
        }
        Err(latched) => {
            let _ = failed.set(e.to_owned());
            tracing::error!(
                error = %e,
                path = %path.display(),
                after = %latched,
                "storage failed (disk full, read-only or failing?); the failed writes were not applied and nothing acknowledged is lost, but the database refuses all writes until roster is restarted: free space or fix the disk, then restart roster"
            );
        }
    }
}

fn fail_all(jobs: Vec<Box<dyn Job>>, e: &StoreError) {
    for job in jobs {
        job.finish(Err(e.clone()));
    }
}

/// Runs the batch in one write transaction and commits it durably. A job
/// that refuses itself is taken out and the rest re-run from scratch, so a
/// refusal never leaves part of its writes in the commit. A storage error
/// fails every job of the batch and is returned (after the transaction has
/// ended) for `storage_failed`.
fn commit_batch(db: &Database, mut batch: Vec<Box<dyn Job>>) -> Result<(), String> {
    let mut refused: Vec<Box<dyn Job>> = Vec::new();
    let fail = |batch: Vec<Box<dyn Job>>, refused: Vec<Box<dyn Job>>, e: StoreError| {
        fail_all(batch, &e);
        fail_all(refused, &e);
        match e {
            StoreError::Storage(why) => Err(why),
            _ => Ok(()),
        }
    };
    'attempt: loop {
        if batch.is_empty() {
            for job in refused {
                job.finish(Ok(()));
            }
            return Ok(());
        }
        let mut txn = match db.begin_write() {
            Ok(t) => t,
            Err(e) => return fail(batch, refused, StoreError::from(e)),
        };
        if let Err(e) = txn.set_durability(Durability::Immediate) {
            let _ = txn.abort();
            return fail(batch, refused, StoreError::from(e));
        }
        for i in 0..batch.len() {
            match batch[i].run(&txn) {
                Step::Applied => {}
                Step::Refused => {
                    let _ = txn.abort();
                    refused.push(batch.remove(i));
                    continue 'attempt;
                }
                Step::Failed(e) => {
                    let _ = txn.abort();
                    if !matches!(e, StoreError::Storage(_)) {
                        tracing::error!(error = %e, "write batch failed");
                    }
                    return fail(batch, refused, e);
                }
            }
        }
        let started = std::time::Instant::now();
        let batch_len = batch.len();
        return match txn.commit() {
            Ok(()) => {
                crate::metrics::commit(started.elapsed().as_secs_f64(), batch_len);
                for job in batch.into_iter().chain(refused) {
                    job.finish(Ok(()));
                }
                Ok(())
            }
            Err(e) => {
                let e = StoreError::from(e);
                if !matches!(e, StoreError::Storage(_)) {
                    tracing::error!(error = %e, "commit failed");
                }
                fail(batch, refused, e)
            }
        };
    }
}

/// Rows of a `seq → encoded value` log table older than `before` (all when
/// `None`), newest first, until `f` returns false (audit log, sync errors).
pub(crate) fn scan_log_back<T: serde::de::DeserializeOwned>(
    txn: &redb::ReadTransaction,
    table: redb::TableDefinition<u64, &[u8]>,
    before: Option<u64>,
    mut f: impl FnMut(u64, T) -> bool,
) -> Result<(), StoreError> {
    let t = txn.open_table(table)?;
    let end = before.unwrap_or(u64::MAX);
    for row in t.range(..end)?.rev() {
        let (k, v) = row?;
        if !f(k.value(), codec::decode(v.value())?) {
            break;
        }
    }
    Ok(())
}
