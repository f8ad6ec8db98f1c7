//! systemd's notify protocol (sd_notify(3)) without libsystemd: one
//! datagram per message to `$NOTIFY_SOCKET` (a path, or `@name` in the
//! abstract namespace). READY=1 after the listener is bound and the database
//! open, STOPPING=1 on shutdown, WATCHDOG=1 at half the watchdog interval.
//! Without `$NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn send(msg: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(msg.as_bytes(), &addr)?;
    } else {
        sock.send_to(msg.as_bytes(), &path)?;
    }
    Ok(())
}

fn notify(msg: &str) {
    if let Err(e) = send(msg) {
        tracing::warn!(error = %e, message = msg, "could not notify systemd");
    }
}

pub fn ready() {
    notify("READY=1\nSTATUS=serving");
}

pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping");
}

/// The interval to send WATCHDOG=1 at, if systemd asked for it.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(500)))
}

/// Pings the watchdog while the writer answers, so a wedged database makes
/// systemd restart us instead of serving errors forever. (A storage failure
/// is an answer: see below.)
pub async fn watchdog(app: crate::App, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match tokio::time::timeout(every, app.store.probe_writable()).await {
            // A writer that answers "storage failed" is not wedged: the
            // store has said once that a restart is needed, /readyz says
            // not ready, and reads keep being served. A restart by the
            // watchdog while the disk is still full would take the reads
            // down too (and the repair on open may itself need space).
            Ok(Ok(())) | Ok(Err(crate::store::StoreError::Storage(_))) => notify("WATCHDOG=1"),
            _ => tracing::error!("database writer not answering; withholding the systemd watchdog ping"),
        }
    }
}
