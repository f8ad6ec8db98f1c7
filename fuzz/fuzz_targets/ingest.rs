//! POST body ingestion: bytes -> strict JSON -> model::ingest_body must
//! accept or refuse without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roster::scim::{json, model};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = json::from_slice(data) else { return };
    let _ = model::ingest_body(&v, None);
});
