//! Mail delivery: the outbox worker against a small SMTP sink on loopback,
//! retries with backoff, giving up and `roster mail retry`, the outbox
//! without `[mail]`, and `[mail]` config errors.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roster::workspace::model::{Actor, Mail, MailKind, MailStatus};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::scim_support::{audit, connection, create};
use crate::support::*;

/// One message the sink accepted.
#[derive(Debug, Clone)]
struct Received {
    rcpt: Vec<String>,
    /// The DATA section, dot-unstuffed, CRLF line ends.
    data: String,
}

#[derive(Debug, Default)]
struct SinkState {
    received: Vec<Received>,
    /// Answer this many more transactions with 451.
    fail_next: usize,
    /// Answer every transaction with 451.
    always_fail: bool,
    refused: usize,
}

/// Enough plain SMTP (RFC 5321) for lettre: greeting, EHLO/HELO, MAIL,
/// RCPT, DATA, RSET, NOOP, QUIT. Transactions can be refused with 451.
struct Sink {
    addr: SocketAddr,
    state: Arc<Mutex<SinkState>>,
}

impl Sink {
    async fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(SinkState::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve_smtp(stream, state).await;
                });
            }
        });
        Sink { addr, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    fn to(&self, rcpt: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.rcpt.iter().any(|x| x.eq_ignore_ascii_case(rcpt)))
            .collect()
    }
}

async fn serve_smtp(stream: tokio::net::TcpStream, state: Arc<Mutex<SinkState>>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 sink.test ESMTP test sink\r\n").await?;
    let mut rcpt = Vec::new();
    let mut in_transaction = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250 8BITMIME\r\n",
            "HELO" => b"250 sink.test\r\n",
            "MAIL" => {
                let refuse = {
                    let mut s = state.lock().unwrap();
                    let refuse = s.always_fail || s.fail_next > 0;
                    if refuse {
                        s.fail_next = s.fail_next.saturating_sub(1);
                        s.refused += 1;
                    }
                    refuse
                };
                if refuse {
                    b"451 4.3.0 try later\r\n"
                } else {
                    rcpt.clear();
                    in_transaction = true;
                    b"250 2.1.0 ok\r\n"
                }
            }
            "RCPT" if in_transaction => {
                let addr = line
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(a, _)| a.to_owned())
                    .unwrap_or_default();
                rcpt.push(addr);
                b"250 2.1.5 ok\r\n"
            }
            "DATA" if in_transaction && !rcpt.is_empty() => {
                w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                state.lock().unwrap().received.push(Received {
                    rcpt: std::mem::take(&mut rcpt),
                    data,
                });
                in_transaction = false;
                b"250 2.0.0 queued\r\n"
            }
            "RSET" => {
                rcpt.clear();
                in_transaction = false;
                b"250 ok\r\n"
            }
            "NOOP" => b"250 ok\r\n",
            "QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"503 bad sequence of commands\r\n",
        };
        w.write_all(reply).await?;
    }
}

/// The message body with quoted-printable undone (lettre picks QP for the
/// long link lines).
fn decoded_body(data: &str) -> String {
    let (head, body) = data.split_once("\r\n\r\n").unwrap_or((data, ""));
    if !head
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        return body.replace("\r\n", "\n");
    }
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len() + 1
            && let Some(h) = joined.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    let head = data.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A test server with `[mail]` pointed at `sink`, parsed from TOML like
/// an operator's file.
async fn server_with_mail(sink: &Sink, extra: &str) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[mail]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsecurity = \"none\"\nfrom = \"roster <roster@example.com>\"\ntimeout_secs = 5\nretry_base_secs = 1\n{extra}",
        dir.path().join("data").display(),
        sink.addr.port()
    );
    let config = roster::config::Config::parse(&toml, Path::new("mail-test.toml")).unwrap();
    TestServer::start_with(dir, config).await
}

/// Provisions `email` on an unverified domain (an invitation) and returns
/// the invitation's outbox seq and row.
async fn invite(s: &TestServer, email: &str) -> (u64, Mail) {
    let (tok, _) = connection(s, &format!("idp-{email}")).await;
    create(s, &tok, email, json!({})).await;
    let all = roster::mail::page(&s.app, None, None, 1000).await.unwrap();
    all.into_iter()
        .find(|(_, m)| m.to.eq_ignore_ascii_case(email) && m.kind == MailKind::Invite)
        .unwrap_or_else(|| panic!("no invitation for {email} in the outbox"))
}

/// Polls the outbox row until `done` holds (deadline 20 s; never a
/// duration assertion).
async fn wait_for(s: &TestServer, seq: u64, what: &str, done: impl Fn(&Mail) -> bool) -> Mail {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = roster::mail::get(&s.app, seq).await.unwrap().expect("mail row");
        if done(&m) {
            return m;
        }
        if Instant::now() > deadline {
            panic!("mail {seq} never became {what}: {m:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn accept_link(body: &str) -> String {
    body.lines()
        .find(|l| l.contains("/invite/accept?token="))
        .unwrap_or_else(|| panic!("no accept link in {body}"))
        .trim()
        .to_owned()
}

async fn cli(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_bin(dir.path(), &args)
    })
    .await
    .unwrap()
}

fn data_dir(s: &TestServer) -> String {
    s.app.config.data_dir.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_is_delivered_and_marked_sent() {
    let sink = Sink::start().await;
    let s = server_with_mail(&sink, "").await;
    assert!(roster::mail::configured(&s.app));
    let (seq, queued) = invite(&s, "bob@pending.example").await;
    let link = accept_link(&queued.body);

    let m = wait_for(&s, seq, "sent", |m| m.status == MailStatus::Sent).await;
    assert_eq!(m.attempts, 1, "{m:#?}");
    assert!(m.sent_ms.is_some(), "{m:#?}");
    assert_eq!(m.last_error, None, "{m:#?}");

    let got = sink.to("bob@pending.example");
    assert_eq!(got.len(), 1, "{got:#?}");
    let data = &got[0].data;
    assert_eq!(header(data, "To"), Some("bob@pending.example"), "{data}");
    assert_eq!(header(data, "Subject"), Some(queued.subject.as_str()), "{data}");
    assert!(queued.subject.contains("invited"), "{}", queued.subject);
    assert!(
        header(data, "From").is_some_and(|f| f.contains("roster@example.com")),
        "{data}"
    );
    assert!(
        header(data, "Message-ID").is_some_and(|id| id.starts_with(&format!("<roster.{seq}."))),
        "{data}"
    );
    let body = decoded_body(data);
    assert!(body.contains(&link), "link {link} not in body:\n{body}");
    // The link works: it is the one stored for the invitation.
    assert!(
        link.starts_with("https://localhost:8443/invite/accept?token=rst_login_"),
        "{link}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_attempt_is_retried_after_backoff() {
    let sink = Sink::start().await;
    sink.state.lock().unwrap().fail_next = 1;
    let s = server_with_mail(&sink, "").await;
    let (seq, _) = invite(&s, "carol@pending.example").await;

    let m = wait_for(&s, seq, "sent", |m| m.status == MailStatus::Sent).await;
    assert_eq!(m.attempts, 2, "{m:#?}");
    let err = m.last_error.as_deref().unwrap_or_default();
    assert!(err.contains("451"), "last_error should keep the refusal: {m:#?}");
    assert!(m.next_attempt_ms > m.created_ms, "a backoff was scheduled: {m:#?}");
    assert_eq!(sink.to("carol@pending.example").len(), 1);
    assert!(sink.state.lock().unwrap().refused >= 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_fails_after_max_attempts_and_cli_retry_delivers_it() {
    let sink = Sink::start().await;
    sink.state.lock().unwrap().always_fail = true;
    let s = server_with_mail(&sink, "max_attempts = 2\n").await;
    let (seq, queued) = invite(&s, "dan@pending.example").await;

    let m = wait_for(&s, seq, "failed", |m| m.status == MailStatus::Failed).await;
    assert_eq!(m.attempts, 2, "{m:#?}");
    assert!(m.last_error.as_deref().unwrap_or_default().contains("451"), "{m:#?}");
    assert!(sink.to("dan@pending.example").is_empty());

    let dd = data_dir(&s);
    let (code, out, err) = cli(vec![
        "mail".into(),
        "list".into(),
        "--status".into(),
        "failed".into(),
        "--data-dir".into(),
        dd.clone(),
    ])
    .await;
    assert_eq!(code, 0, "stdout:{out}\nstderr:{err}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().next() == Some(&seq.to_string())
                && l.contains("failed")
                && l.contains("dan@pending.example")),
        "{out}"
    );

    sink.state.lock().unwrap().always_fail = false;
    let (code, out, err) = cli(vec![
        "mail".into(),
        "retry".into(),
        seq.to_string(),
        "--data-dir".into(),
        dd.clone(),
    ])
    .await;
    assert_eq!(code, 0, "stdout:{out}\nstderr:{err}");
    assert!(out.contains("pending again"), "{out}");

    let m = wait_for(&s, seq, "sent", |m| m.status == MailStatus::Sent).await;
    assert_eq!(m.attempts, 1, "retry starts a fresh count: {m:#?}");
    let got = sink.to("dan@pending.example");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(decoded_body(&got[0].data).contains(&accept_link(&queued.body)));

    let rows = audit(&s).await;
    let retried: Vec<_> = rows
        .iter()
        .filter(|e| e.action == "mail.retried" && e.target == format!("mail:{seq}"))
        .collect();
    assert_eq!(retried.len(), 1, "{rows:#?}");
    assert_eq!(retried[0].actor, Actor::Operator);

    // A sent mail is not sent again by a retry.
    let (code, _, err) = cli(vec![
        "mail".into(),
        "retry".into(),
        seq.to_string(),
        "--data-dir".into(),
        dd.clone(),
    ])
    .await;
    assert_one_line_error(code, &err, "already sent");
    let (code, _, err) = cli(vec![
        "mail".into(),
        "retry".into(),
        "999999".into(),
        "--data-dir".into(),
        dd,
    ])
    .await;
    assert_one_line_error(code, &err, "no mail");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mail_config_the_outbox_is_listed_and_shown() {
    let s = TestServer::start().await;
    assert!(!roster::mail::configured(&s.app));
    let (seq, queued) = invite(&s, "erin@pending.example").await;
    let (seq2, _) = invite(&s, "fay@pending.example").await;
    assert!(seq2 > seq);
    let link = accept_link(&queued.body);

    // Paging: newest first, `before` is an exclusive cursor.
    let first = roster::mail::page(&s.app, None, None, 1).await.unwrap();
    assert_eq!(first.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![seq2]);
    let next = roster::mail::page(&s.app, None, Some(seq2), 1).await.unwrap();
    assert_eq!(next.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![seq]);
    let sent = roster::mail::page(&s.app, Some(MailStatus::Sent), None, 10)
        .await
        .unwrap();
    assert!(sent.is_empty(), "{sent:#?}");

    let dd = data_dir(&s);
    let check = |out: &str, err: &str, code: i32, show: bool| {
        assert_eq!(code, 0, "stdout:{out}\nstderr:{err}");
        if show {
            assert!(out.contains("To:           erin@pending.example"), "{out}");
            assert!(out.contains(&format!("Subject:      {}", queued.subject)), "{out}");
            assert!(out.contains("pending"), "{out}");
            assert!(out.contains(&link), "the whole body with its link:\n{out}");
        } else {
            let line = out
                .lines()
                .find(|l| l.split_whitespace().next() == Some(&seq.to_string()))
                .unwrap_or_else(|| panic!("no line for mail {seq}:\n{out}"));
            assert!(line.contains("pending"), "{line}");
            assert!(line.contains("erin@pending.example"), "{line}");
            assert!(line.contains(&queued.subject), "{line}");
            assert!(out.contains("not configured"), "{out}");
        }
    };
    // While the server runs (control socket)...
    let (code, out, err) = cli(vec!["mail".into(), "list".into(), "--data-dir".into(), dd.clone()]).await;
    check(&out, &err, code, false);
    let (code, out, err) = cli(vec![
        "mail".into(),
        "show".into(),
        seq.to_string(),
        "--data-dir".into(),
        dd.clone(),
    ])
    .await;
    check(&out, &err, code, true);
    let (code, out, _) = cli(vec![
        "mail".into(),
        "list".into(),
        "--limit".into(),
        "1".into(),
        "--data-dir".into(),
        dd.clone(),
    ])
    .await;
    assert_eq!(code, 0);
    assert!(!out.contains("erin@"), "limit 1 shows only the newest:\n{out}");

    // ...and with it stopped (the database opened directly).
    let _dir = s.stop().await;
    let (code, out, err) = cli(vec!["mail".into(), "list".into(), "--data-dir".into(), dd.clone()]).await;
    check(&out, &err, code, false);
    let (code, out, err) = cli(vec![
        "mail".into(),
        "show".into(),
        seq.to_string(),
        "--data-dir".into(),
        dd,
    ])
    .await;
    check(&out, &err, code, true);
}

#[test]
fn mail_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[mail]\nsmtp_host = \"smtp.example.com\"\nfrom = \"roster <roster@example.com>\"\n";
    let cases = [
        (format!("{base}smtp_hots = \"x\"\n"), "mail.smtp_hots"),
        (
            "[mail]\nsmtp_host = \"smtp.example.com\"\nfrom = \"roster at example dot com\"\n".to_owned(),
            "mail.from",
        ),
        ("[mail]\nsmtp_host = \"smtp.example.com\"\n".to_owned(), "mail.from"),
        (format!("{base}security = \"ssl\"\n"), "mail.security"),
        (format!("{base}retry_base_secs = 0\n"), "mail.retry_base_secs"),
    ];
    for (text, key) in cases {
        let f = write_file(&dir.path().join("c.toml"), &text);
        let (code, _, err) = run_bin(dir.path(), &["check-config", f.to_str().unwrap()]);
        assert_one_line_error(code, &err, key);
    }
    let f = write_file(
        &dir.path().join("ok.toml"),
        &format!("{base}password = \"s3cret-pw\"\nusername = \"u\"\n"),
    );
    let (code, out, err) = run_bin(dir.path(), &["check-config", f.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:{out}\nstderr:{err}");
    assert!(!out.contains("s3cret-pw") && !err.contains("s3cret-pw"), "{out}{err}");
}

/// The console's outbox: a failed mail is listed with its error, its page
/// shows the body (with the link an admin can hand over), a CSRF-less retry
/// is refused, and "Retry now" makes the worker deliver it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_outbox_lists_shows_and_retries() {
    let sink = Sink::start().await;
    sink.state.lock().unwrap().always_fail = true;
    let s = server_with_mail(&sink, "max_attempts = 1\n").await;
    let (seq, queued) = invite(&s, "erin@pending.example").await;
    wait_for(&s, seq, "failed", |m| m.status == MailStatus::Failed).await;

    let mut web = crate::oauth::admin_web(&s).await;
    let list = web.get("/admin/mail?status=failed").await;
    assert_eq!(list.status, 200, "{list}");
    assert!(list.text.contains("erin@pending.example"), "{list}");
    assert!(list.text.contains("451"), "the error is shown: {list}");
    assert!(
        !web.get("/admin/mail?status=sent")
            .await
            .text
            .contains("erin@pending.example")
    );

    let page = web.get(&format!("/admin/mail/{seq}")).await;
    assert_eq!(page.status, 200, "{page}");
    let link = accept_link(&queued.body);
    assert!(
        html_unescape(&page.text).contains(&link),
        "the body with its link: {page}"
    );
    let csrf = page.input("csrf").expect("retry form");

    let forged = web
        .post_form(&format!("/admin/mail/{seq}"), &[("csrf", "nope"), ("action", "retry")])
        .await;
    assert_eq!(forged.status, 403, "{forged}");
    let m = roster::mail::get(&s.app, seq).await.unwrap().unwrap();
    assert_eq!(m.status, MailStatus::Failed, "a forged retry changes nothing");

    sink.state.lock().unwrap().always_fail = false;
    let r = web
        .post_form(&format!("/admin/mail/{seq}"), &[("csrf", &csrf), ("action", "retry")])
        .await;
    assert_eq!(r.status, 303, "{r}");
    wait_for(&s, seq, "sent", |m| m.status == MailStatus::Sent).await;
    assert_eq!(sink.to("erin@pending.example").len(), 1);
    assert!(
        audit(&s).await.iter().any(|e| e.action == "mail.retried"
            && e.target == format!("mail:{seq}")
            && matches!(e.actor, Actor::Admin { .. })),
        "audited as the admin"
    );
    let shown = web.get(&format!("/admin/mail/{seq}")).await;
    assert!(shown.text.contains("mail-sent"), "{shown}");
    assert!(
        !shown.text.contains("Retry now"),
        "a sent mail has no retry button: {shown}"
    );
    assert_eq!(web.get("/admin/mail/999999").await.status, 404);
    s.stop().await;
}

/// Issue 17 (finding 5): what `roster mail show` prints comes from IdPs and
/// people; a terminal escape sequence in it (stored by a roster from before
/// SCIM refused control characters) is printed as a visible escape, never
/// sent raw to the operator's terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_cli_output_escapes_control_characters() {
    let s = TestServer::start().await;
    let now = roster::clock::Clock::now_ms(s.app.clock.as_ref());
    let mail = Mail {
        to: "eve@example.com".into(),
        kind: MailKind::Invite,
        subject: "Hi \u{1b}]0;owned\u{7}".into(),
        body: "Hello Eve\r\nBcc: x@example.com\n\u{1b}[2JLine two\n\u{202e}gnp.exe\n".into(),
        created_ms: now,
        status: MailStatus::Pending,
        attempts: 0,
        last_error: None,
        next_attempt_ms: now + 3_600_000,
        sent_ms: None,
    };
    let seq = s
        .app
        .store
        .write(move |txn| Ok(Ok::<u64, ()>(roster::store::outbox::push(txn, &mail)?)))
        .await
        .unwrap()
        .unwrap();
    let (code, out, err) = cli(vec![
        "mail".into(),
        "show".into(),
        seq.to_string(),
        "--data-dir".into(),
        data_dir(&s),
    ])
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    for raw in ['\u{1b}', '\u{7}', '\r', '\u{202e}'] {
        assert!(!out.contains(raw), "raw {raw:?} printed:\n{out:?}");
    }
    assert!(out.contains("\\u{1b}[2JLine two"), "{out}");
    assert!(out.contains("Hello Eve\\u{d}\n"), "{out}");
    assert!(out.contains("Line two\n"), "newlines stay:\n{out}");
    s.stop().await;
}
