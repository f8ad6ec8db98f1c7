//! Strict JSON decoder: must not panic; whatever it accepts, serde_json
//! must accept too and decode to the same value (strict only adds the
//! duplicate-key refusal).
#![no_main]

use libfuzzer_sys::fuzz_target;
use roster::scim::json;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = json::from_slice(data) {
        match serde_json::from_slice::<serde_json::Value>(data) {
            Ok(w) => assert_eq!(v, w, "strict and serde_json disagree on {:?}", String::from_utf8_lossy(data)),
            Err(e) => panic!("strict accepted what serde_json refuses ({e}): {:?}", String::from_utf8_lossy(data)),
        }
    }
});
