//! Strict JSON decoder: must not panic; whatever it accepts, serde_json
//! must accept too and decode to the same value (strict only adds the
//! duplicate-key refusal).
#![no_main]
//! The property itself is `roster::fuzzing::json`, shared with the test
//! suite's quick run (`tests/it/fuzz_quick.rs`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roster::fuzzing::json(data));
