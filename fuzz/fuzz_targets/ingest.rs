//! POST body ingestion: bytes -> strict JSON -> model::ingest_body must
//! accept or refuse without panicking.
#![no_main]
//! The property itself is `roster::fuzzing::ingest`, shared with the test
//! suite's quick run (`tests/it/fuzz_quick.rs`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roster::fuzzing::ingest(data));
