//! `roster check-config` and how bad configuration is reported.

use crate::support::*;

#[test]
fn example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let (code, out, err) = run_bin(dir.path(), &["check-config", example]);
    assert_eq!(code, 0, "stdout:{out}\nstderr:{err}");
    assert!(out.contains(": ok"), "{out}");
}

#[test]
fn full_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        &dir.path().join("c.toml"),
        r#"
[server]
listen = "[::1]:9443"
public_url = "https://roster.example.com/"
data_dir = "/var/lib/roster"
[log]
format = "json"
level = "roster=debug,info"
[limits]
max_body_bytes = 2097152
request_timeout_secs = 60
max_connections = 10
max_connections_per_ip = 5
idle_timeout_secs = 120
[workspace]
name = "Acme"
admin_email = "it@acme.example"
"#,
    );
    let (code, out, err) = run_bin(dir.path(), &["check-config", f.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:{out}\nstderr:{err}");
    assert!(
        out.contains("https://roster.example.com,"),
        "trailing slash trimmed: {out}"
    );
}

#[test]
fn unknown_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        &dir.path().join("c.toml"),
        "[server]\nlisten = \"127.0.0.1:1\"\nlistne = \"x\"\n",
    );
    let (code, _, err) = run_bin(dir.path(), &["check-config", f.to_str().unwrap()]);
    assert_one_line_error(code, &err, "listne");
    let f = write_file(&dir.path().join("d.toml"), "[sever]\nlisten = \"127.0.0.1:1\"\n");
    let (code, _, err) = run_bin(dir.path(), &["check-config", f.to_str().unwrap()]);
    assert_one_line_error(code, &err, "sever");
}

#[test]
fn bad_values_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[server]\nlisten = \"localhost\"\n", "server.listen"),
        ("[server]\nlisten = \"300.1.1.1:80\"\n", "server.listen"),
        (
            "[server]\npublic_url = \"http://roster.example.com\"\n",
            "server.public_url",
        ),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("[log]\nlevel = \"loud=[\"\n", "log.level"),
        ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
        ("[limits]\nidle_timeout_secs = 0\n", "limits.idle_timeout_secs"),
        (
            "[limits]\nmax_connections = 10\nmax_connections_per_ip = 11\n",
            "limits.max_connections_per_ip",
        ),
        ("[workspace]\nadmin_email = \"nobody\"\n", "workspace.admin_email"),
        ("[server]\nlisten = 8443\n", "listen"),
        ("this is not toml", "c.toml"),
    ];
    for (text, key) in cases {
        let f = write_file(&dir.path().join("c.toml"), text);
        let (code, _, err) = run_bin(dir.path(), &["check-config", f.to_str().unwrap()]);
        assert_one_line_error(code, &err, key);
    }
}

#[test]
fn missing_or_exposed_tls_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = write_file(
        &dir.path().join("a.toml"),
        "[tls]\ncert = \"/nonexistent/roster.crt\"\nkey = \"/nonexistent/roster.key\"\n",
    );
    let (code, _, err) = run_bin(dir.path(), &["check-config", missing.to_str().unwrap()]);
    assert_one_line_error(code, &err, "tls.cert");

    let cert = write_file(&dir.path().join("x.crt"), "-----BEGIN CERTIFICATE-----\n");
    let key = write_file(&dir.path().join("x.key"), "-----BEGIN PRIVATE KEY-----\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let exposed = write_file(
        &dir.path().join("b.toml"),
        &format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\n", cert.display(), key.display()),
    );
    let (code, _, err) = run_bin(dir.path(), &["check-config", exposed.to_str().unwrap()]);
    assert_one_line_error(code, &err, "tls.key");
    assert!(err.contains("chmod 600"), "{err}");

    let half = write_file(
        &dir.path().join("c.toml"),
        &format!("[tls]\ncert = \"{}\"\n", cert.display()),
    );
    let (code, _, err) = run_bin(dir.path(), &["check-config", half.to_str().unwrap()]);
    assert_one_line_error(code, &err, "tls.key");
}

#[test]
fn missing_config_file_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_bin(dir.path(), &["check-config", "/nonexistent/roster.toml"]);
    assert_one_line_error(code, &err, "/nonexistent/roster.toml");
}

#[test]
fn packaged_config_is_valid_and_documents_every_example_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let packaged = format!("{root}/packaging/config.toml");
    let (code, out, err) = run_bin(dir.path(), &["check-config", &packaged]);
    assert_eq!(code, 0, "stdout:{out}\nstderr:{err}");
    assert!(out.contains("data_dir /var/lib/roster"), "{out}");

    // Every `key =` line of config.example.toml (set or commented out) is in
    // the packaged file too, under the same section, so the two cannot drift.
    fn keys(text: &str) -> Vec<String> {
        let mut section = String::new();
        let mut keys = Vec::new();
        for line in text.lines() {
            let line = line.trim_start_matches('#').trim();
            if line.starts_with('[') && line.ends_with(']') {
                section = line.to_string();
            } else if let Some((key, _)) = line.split_once(" = ")
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                keys.push(format!("{section} {key}"));
            }
        }
        keys
    }
    let example = keys(&std::fs::read_to_string(format!("{root}/config.example.toml")).unwrap());
    let packaged = keys(&std::fs::read_to_string(&packaged).unwrap());
    assert!(example.len() > 20, "{example:?}");
    let missing: Vec<_> = example.iter().filter(|k| !packaged.contains(k)).collect();
    assert!(missing.is_empty(), "packaging/config.toml lacks {missing:?}");
}
