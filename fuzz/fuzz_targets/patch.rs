//! PATCH engine: bytes -> strict JSON -> parse_patch -> apply to a fixed
//! User. Must not panic; a failed apply must leave the resource unchanged
//! (PATCH is atomic, RFC 7644 §3.5.2).
#![no_main]
//! The property itself is `roster::fuzzing::patch`, shared with the test
//! suite's quick run (`tests/it/fuzz_quick.rs`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roster::fuzzing::patch(data));
