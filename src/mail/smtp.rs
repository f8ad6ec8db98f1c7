//! The SMTP side of delivery: a lettre transport built from `[mail]`, one
//! outbox row turned into a plain-text message, and the relay's answer
//! sorted into sent / try again / give up.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailConfig, MailSecurity};
use crate::workspace::model::Mail;

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The relay accepted the message.
    Sent,
    /// Worth trying again later (4xx, network, TLS, timeout).
    Transient(String),
    /// Will never succeed as it is (5xx, an address that cannot be used).
    Permanent(String),
}

/// Longest `last_error` kept: enough for the relay's reason, not a log.
const MAX_ERROR: usize = 300;

/// Builds the transport once; it connects anew for every message. TLS
/// (STARTTLS or implicit) uses rustls with ring and verifies the relay
/// against the system's CA store.
pub fn transport(cfg: &MailConfig, hello_host: &str) -> Result<Transport, String> {
    let tls_host = cfg.smtp_host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let params = || TlsParameters::new(tls_host.clone()).map_err(|e| format!("TLS setup for the relay: {e}"));
    let tls = match cfg.security {
        MailSecurity::None => Tls::None,
        MailSecurity::StartTls => Tls::Required(params()?),
        MailSecurity::Tls => Tls::Wrapper(params()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(tls_host.clone())
        .port(cfg.smtp_port)
        .tls(tls)
        .timeout(Some(cfg.timeout))
        .hello_name(client_id(hello_host));
    if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    Ok(builder.build())
}

/// EHLO names this host by `public_url`'s host (an address literal for IPs).
fn client_id(host: &str) -> ClientId {
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => ClientId::Ipv4(a),
        Ok(std::net::IpAddr::V6(a)) => ClientId::Ipv6(a),
        Err(_) => ClientId::Domain(host.to_owned()),
    }
}

/// The message for outbox row `seq`. Its Message-ID is derived from the row,
/// so a resend after a crash (delivery is at-least-once) carries the same id
/// and mail systems can recognise the duplicate.
pub fn message(from: &Mailbox, seq: u64, mail: &Mail, id_host: &str, now_ms: i64) -> Result<Message, String> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| format!("the recipient address cannot be used: {e}"))?;
    let date = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(now_ms).unwrap_or(0));
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .date(date)
        .message_id(Some(format!("<roster.{seq}.{}@{id_host}>", mail.created_ms)))
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// One attempt, bounded in total by a few `timeout`s (lettre applies
/// `timeout` to each network step).
pub async fn send(transport: &Transport, message: Message, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout.saturating_mul(4), transport.send(message)).await {
        Ok(Ok(_)) => Outcome::Sent,
        Ok(Err(e)) if e.is_permanent() => Outcome::Permanent(short(&e.to_string())),
        Ok(Err(e)) => Outcome::Transient(short(&e.to_string())),
        Err(_) => Outcome::Transient("timed out".into()),
    }
}

/// One line of at most [`MAX_ERROR`] characters.
pub fn short(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let trimmed = one_line.trim();
    match trimmed.char_indices().nth(MAX_ERROR) {
        Some((i, _)) => format!("{}…", &trimmed[..i]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_short_line() {
        assert_eq!(short(" 451 try\r\nlater "), "451 try  later");
        let long = "x".repeat(1000);
        assert_eq!(short(&long).chars().count(), MAX_ERROR + 1);
    }

    #[test]
    fn hello_name_for_addresses() {
        assert!(matches!(client_id("::1"), ClientId::Ipv6(_)));
        assert!(matches!(client_id("127.0.0.1"), ClientId::Ipv4(_)));
        assert!(matches!(client_id("roster.example.com"), ClientId::Domain(_)));
    }
}
