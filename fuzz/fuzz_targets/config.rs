//! Config parser: any UTF-8 text must parse or give an error, never panic.
#![no_main]
//! The property itself is `roster::fuzzing::config`, shared with the test
//! suite's quick run (`tests/it/fuzz_quick.rs`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roster::fuzzing::config(data));
