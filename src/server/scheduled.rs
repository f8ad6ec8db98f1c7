//! Scheduled work: snapshots into `[backup] dir` (one every `interval`,
//! keeping the newest `keep`; files are named `roster-<UTC time>.redb` so
//! they sort by age), and the housekeeping sweep of expired rows.

use tokio::sync::watch;

use crate::App;
use crate::clock::rfc3339;

pub async fn run(app: App, mut stop: watch::Receiver<bool>) {
    let Some(cfg) = app.config.backup.clone() else { return };
    if let Err(e) = std::fs::create_dir_all(&cfg.dir) {
        tracing::error!(dir = %cfg.dir.display(), error = %e, "cannot create the backup directory; scheduled snapshots are off");
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = stop.changed() => return,
        }
        let stamp = rfc3339(app.clock.now_ms()).replace([':', '-'], "").replace(".", "");
        let out = cfg.dir.join(format!("roster-{stamp}.redb"));
        match app.store.snapshot(&out).await {
            Ok(s) => {
                tracing::info!(path = %s.path.display(), rows = s.rows, bytes = s.bytes, "scheduled snapshot written")
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduled snapshot failed");
                continue;
            }
        }
        prune(&cfg.dir, cfg.keep);
    }
}

/// Deletes all but the newest `keep` snapshots we made.
pub fn prune(dir: &std::path::Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut ours: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("roster-") && n.ends_with(".redb"))
        })
        .collect();
    ours.sort();
    let excess = ours.len().saturating_sub(keep);
    for old in ours.into_iter().take(excess) {
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!(path = %old.display(), error = %e, "cannot delete an old snapshot");
        }
    }
}

/// Every [`crate::workspace::housekeeping::INTERVAL`]: deletes expired
/// sessions, links, authorization codes and tokens.
pub async fn housekeeping(app: App, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(crate::workspace::housekeeping::INTERVAL) => {}
            _ = stop.changed() => return,
        }
        match crate::workspace::housekeeping::sweep(&app).await {
            Ok(s) if s.total() > 0 => tracing::info!(
                sessions = s.sessions,
                links = s.links,
                codes = s.codes,
                access_tokens = s.access_tokens,
                refresh_tokens = s.refresh_tokens,
                "expired rows deleted"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping sweep failed; it is tried again later"),
        }
    }
}
