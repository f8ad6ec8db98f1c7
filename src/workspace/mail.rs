//! The text of the mails the rules queue in the outbox. Plain text: every
//! mail client renders it and nothing in it can run.

use super::model::{Mail, MailKind, MailStatus, Member, Workspace};

fn greeting(m: &Member) -> String {
    match m.given_name.as_deref().or(m.display_name.as_deref()) {
        Some(n) if !n.trim().is_empty() => format!("Hello {},", one_line(n.trim())),
        _ => "Hello,".to_owned(),
    }
}

/// A name as one line without control characters. SCIM and the console
/// refuse them now; a member stored by an older roster may still carry a
/// CR/LF or an ESC, which must not shape the mail (issue 17).
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn mail(to: &Member, kind: MailKind, subject: String, body: String, now_ms: i64) -> Mail {
    Mail {
        to: to.email.clone(),
        kind,
        subject,
        body,
        created_ms: now_ms,
        status: MailStatus::Pending,
        attempts: 0,
        last_error: None,
        next_attempt_ms: now_ms,
        sent_ms: None,
    }
}

/// Domain not verified: the person must accept before they become active.
pub fn invite(ws: &Workspace, m: &Member, accept_url: &str, now_ms: i64) -> Mail {
    let body = format!(
        "{}\n\nYou have been invited to join the workspace \"{}\".\n\nTo accept the invitation, open this link within 14 days:\n{}\n\nIf you did not expect this invitation, you can ignore this mail.\n",
        greeting(m),
        ws.name,
        accept_url
    );
    mail(
        m,
        MailKind::Invite,
        format!("You are invited to join {}", ws.name),
        body,
        now_ms,
    )
}

/// Domain verified: the person is a member at once. `by` says who added
/// them ("your organisation's identity provider", "an admin").
pub fn added(ws: &Workspace, m: &Member, by: &str, now_ms: i64) -> Mail {
    let body = format!(
        "{}\n\nYou have been added to the workspace \"{}\" by {}.\n",
        greeting(m),
        ws.name,
        by
    );
    mail(
        m,
        MailKind::AddedToWorkspace,
        format!("You were added to {}", ws.name),
        body,
        now_ms,
    )
}

/// A brand-new person on a verified domain: choose a password.
pub fn welcome(ws: &Workspace, m: &Member, set_password_url: &str, now_ms: i64) -> Mail {
    let body = format!(
        "{}\n\nWelcome to \"{}\". Your sign-in name is {}.\n\nChoose your password with this link within 3 days (it works once):\n{}\n",
        greeting(m),
        ws.name,
        m.email,
        set_password_url
    );
    mail(m, MailKind::Welcome, format!("Welcome to {}", ws.name), body, now_ms)
}

/// An admin sent a (new) set-password link, e.g. for a forgotten password.
pub fn set_password(ws: &Workspace, m: &Member, set_password_url: &str, now_ms: i64) -> Mail {
    let body = format!(
        "{}\n\nAn admin of \"{}\" sent you a link to choose a new password for {}.\n\nOpen it within 3 days (it works once):\n{}\n\nIf you did not ask for this, you can ignore this mail; your current password keeps working.\n",
        greeting(m),
        ws.name,
        m.email,
        set_password_url
    );
    mail(
        m,
        MailKind::SetPassword,
        format!("Choose a password for {}", ws.name),
        body,
        now_ms,
    )
}

/// The identity-provider wording of [`added`].
pub const BY_IDP: &str = "your organisation's identity provider";
/// The console wording of [`added`].
pub const BY_ADMIN: &str = "an admin";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_is_one_line_whatever_the_stored_name() {
        let mut m = Member::sample(1, "eve@example.com");
        m.given_name = Some("Eve\r\nBcc: victim@example.com\u{1b}[2J".into());
        let g = greeting(&m);
        assert_eq!(g, "Hello Eve  Bcc: victim@example.com [2J,");
        assert!(!g.chars().any(char::is_control));
    }
}
