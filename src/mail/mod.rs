//! Mail delivery: the worker that hands outbox mails to the SMTP relay of
//! `[mail]`, and the outbox operations the CLI and console use (list, show,
//! retry).
//!
//! Every mail is first a row in the outbox, written with the change that
//! caused it. The worker takes the due ones, sends each, and records the
//! result in one store write: sent, or the error with the next attempt after
//! `retry_base * 2^(attempts-1)` (at most an hour), or failed after
//! `max_attempts` or a permanent (5xx) refusal. An operator can put a failed
//! mail back with [`retry`].
//!
//! Delivery is at-least-once: if roster stops between the relay accepting a
//! mail and the store recording it, the mail is sent again on the next start
//! (with the same Message-ID). Without `[mail]` nothing is sent: mails stay
//! pending and are handed over by hand (`roster mail show`).

pub mod smtp;

use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::App;
use crate::config::{MailConfig, MailSecurity};
use crate::store::{self, StoreError};
use crate::workspace::model::{Actor, AuditEntry, Mail, MailStatus};
use smtp::Outcome;

/// The worker looks for due mails at least this often (mails queued by
/// provisioning do not wake it).
pub const POLL: Duration = Duration::from_secs(2);
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Mails taken per store read.
const BATCH: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("there is no mail with that number in the outbox")]
    NotFound,
    #[error("that mail was already sent")]
    AlreadySent,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// True when `[mail]` is configured, i.e. the outbox is being delivered.
pub fn configured(app: &App) -> bool {
    app.config.mail.is_some()
}

/// Up to `limit` mails, newest first, with sequence numbers below `before`
/// (a cursor: pass the last seq of the previous page), only those with
/// `status` when given.
pub async fn page(
    app: &App,
    status: Option<MailStatus>,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<(u64, Mail)>, StoreError> {
    app.store
        .read(move |txn| store::outbox::page(txn, status, before, limit))
        .await
}

pub async fn get(app: &App, seq: u64) -> Result<Option<Mail>, StoreError> {
    app.store.read(move |txn| store::outbox::get(txn, seq)).await
}

/// Makes a failed (or pending) mail pending and due now with a fresh count
/// of attempts, with its audit row in the same write, and wakes the worker.
pub async fn retry(app: &App, seq: u64, actor: Actor) -> Result<Mail, MailError> {
    let now = app.clock.now_ms();
    let mail = app
        .store
        .write(move |txn| {
            let Some(mut m) = store::outbox::get_w(txn, seq)? else {
                return Ok(Err(MailError::NotFound));
            };
            if m.status == MailStatus::Sent {
                return Ok(Err(MailError::AlreadySent));
            }
            let detail = json!({
                "to": m.to,
                "previous_status": m.status,
                "previous_attempts": m.attempts,
            });
            m.status = MailStatus::Pending;
            m.attempts = 0;
            m.next_attempt_ms = now;
            store::outbox::put(txn, seq, &m)?;
            store::audit::append(
                txn,
                &AuditEntry {
                    at_ms: now,
                    actor: actor.clone(),
                    target: format!("mail:{seq}"),
                    action: "mail.retried".into(),
                    detail,
                },
            )?;
            Ok(Ok(m))
        })
        .await??;
    app.mail_wake.notify_one();
    Ok(mail)
}

/// Wait before the next attempt after `attempts` failed ones:
/// `retry_base * 2^(attempts-1)`, at most [`MAX_BACKOFF`].
pub fn backoff(retry_base: Duration, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
    retry_base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// The delivery worker: runs until `stop` fires. Without `[mail]` it logs
/// that mails stay in the outbox and returns.
pub async fn run(app: App, mut stop: watch::Receiver<bool>) {
    let Some(cfg) = app.config.mail.clone() else {
        tracing::info!(
            "mail delivery is not configured ([mail]); mails stay in the outbox: roster mail list / roster mail show SEQ"
        );
        return;
    };
    if cfg.security == MailSecurity::None && !cfg.is_loopback() {
        tracing::warn!(
            relay = %cfg.smtp_host,
            "mail.security = \"none\" with a relay on another host: mails (with their sign-in links) cross the network unencrypted"
        );
    }
    let transport = match smtp::transport(&cfg, &app.config.public_host) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "mail delivery cannot start; mails stay in the outbox");
            return;
        }
    };
    tracing::info!(
        relay = %format!("{}:{}", cfg.smtp_host, cfg.smtp_port),
        security = ?cfg.security,
        "mail delivery started"
    );
    loop {
        if *stop.borrow() {
            return;
        }
        let now = app.clock.now_ms();
        match app.store.read(move |txn| store::outbox::due(txn, now, BATCH)).await {
            Ok(batch) if !batch.is_empty() => {
                let mut all_recorded = true;
                for (seq, mail) in batch {
                    if *stop.borrow() {
                        return;
                    }
                    let sent_at = app.clock.now_ms();
                    let outcome = match smtp::message(&cfg.from, seq, &mail, &app.config.public_host, sent_at) {
                        Ok(message) => tokio::select! {
                            o = smtp::send(&transport, message, cfg.timeout) => o,
                            // An attempt cut short is not recorded: the mail
                            // stays due and goes out after the restart.
                            _ = stop.changed() => return,
                        },
                        Err(e) => Outcome::Permanent(smtp::short(&e)),
                    };
                    if let Err(e) = record(&app, &cfg, seq, outcome).await {
                        tracing::error!(seq, error = %e, "cannot record a mail delivery attempt; it will be tried again");
                        all_recorded = false;
                    }
                }
                if all_recorded {
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the outbox"),
        }
        let wait = match app.store.read(store::outbox::next_due_ms).await {
            Ok(Some(at)) => {
                let ms = at.saturating_sub(app.clock.now_ms()).clamp(0, POLL.as_millis() as i64);
                Duration::from_millis(ms as u64)
            }
            _ => POLL,
        };
        tokio::select! {
            _ = app.mail_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Records one attempt in one write and logs it (never the body).
async fn record(app: &App, cfg: &MailConfig, seq: u64, outcome: Outcome) -> Result<(), StoreError> {
    let now = app.clock.now_ms();
    let (max_attempts, retry_base) = (cfg.max_attempts, cfg.retry_base);
    let logged = outcome.clone();
    let written = app
        .store
        .write(move |txn| {
            let Some(mut m) = store::outbox::get_w(txn, seq)? else {
                return Ok(Ok::<_, ()>(None));
            };
            // Retried or otherwise settled while this attempt ran.
            if m.status != MailStatus::Pending {
                return Ok(Ok(None));
            }
            m.attempts = m.attempts.saturating_add(1);
            match &outcome {
                Outcome::Sent => {
                    m.status = MailStatus::Sent;
                    m.sent_ms = Some(now);
                }
                Outcome::Permanent(e) => {
                    m.status = MailStatus::Failed;
                    m.last_error = Some(e.clone());
                }
                Outcome::Transient(e) => {
                    m.last_error = Some(e.clone());
                    if m.attempts >= max_attempts {
                        m.status = MailStatus::Failed;
                    } else {
                        let wait = i64::try_from(backoff(retry_base, m.attempts).as_millis()).unwrap_or(i64::MAX);
                        m.next_attempt_ms = now.saturating_add(wait);
                    }
                }
            }
            store::outbox::put(txn, seq, &m)?;
            Ok(Ok(Some(m)))
        })
        .await?;
    let Ok(Some(m)) = written else { return Ok(()) };
    match (&logged, m.status) {
        (_, MailStatus::Sent) => {
            crate::metrics::mail_attempt("sent");
            tracing::info!(seq, to = %m.to, kind = ?m.kind, attempt = m.attempts, "mail sent");
        }
        (Outcome::Transient(e), MailStatus::Pending) => {
            crate::metrics::mail_attempt("deferred");
            tracing::warn!(
                seq,
                to = %m.to,
                attempt = m.attempts,
                next_attempt = %crate::clock::rfc3339(m.next_attempt_ms),
                error = %e,
                "mail not delivered; will try again"
            );
        }
        (o, _) => {
            crate::metrics::mail_attempt("failed");
            let e = match o {
                Outcome::Transient(e) | Outcome::Permanent(e) => e.as_str(),
                Outcome::Sent => "",
            };
            tracing::error!(
                seq,
                to = %m.to,
                attempt = m.attempts,
                error = %e,
                "mail delivery failed; giving up (roster mail retry {seq} puts it back)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), Duration::from_secs(30));
        assert_eq!(backoff(base, 2), Duration::from_secs(60));
        assert_eq!(backoff(base, 3), Duration::from_secs(120));
        assert_eq!(backoff(base, 7), Duration::from_secs(1920));
        assert_eq!(backoff(base, 8), MAX_BACKOFF);
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
        assert_eq!(backoff(base, u32::MAX), MAX_BACKOFF);
        // attempts = 0 (not a real case) behaves like the first.
        assert_eq!(backoff(base, 0), base);
        assert_eq!(backoff(Duration::from_millis(200), 3), Duration::from_millis(800));
    }
}
