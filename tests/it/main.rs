//! The one integration-test binary. Each test starts its own server (real
//! TLS on an ephemeral port, real redb file in its own tempdir) or runs the
//! real `roster` binary, and speaks HTTPS to it.

mod scim_support;
mod support;

mod acme;
mod backup;
mod browser;
mod browser_console;
mod browser_layout;
mod browser_oauth;
mod cli;
mod config;
mod console;
mod crash;
mod diskfull;
mod fuzz_quick;
mod hostile;
mod idle_connections;
mod mail;
mod metrics;
mod oauth;
mod r17_scim_input;
mod r17_write_deadline;
mod r18_addresses;
mod scim_groups;
mod scim_users;
mod serve;
mod store;
mod tls_reload;
mod web_login;
