//! Config parser: any UTF-8 text must parse or give an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roster::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::parse(text, Path::new("fuzz.toml"));
});
