//! Filter parser: any UTF-8 input must parse or fail without panicking, and
//! a parsed filter must print to text that parses back to the same AST
//! (the round-trip `Display` promises).
//!
//! The re-parse lifts `max_len`: the canonical text can be longer than the
//! input (bare values gain quotes, control characters become `\u00XX`), so a
//! filter just under the limit prints to text over it. That is a known
//! finding (fuzz/regressions/filter/, RELIABILITY.md "Fuzzing"); keeping the
//! limit here would stop every run at it. Depth and leniency stay default.
#![no_main]
//! The property itself is `roster::fuzzing::filter`, shared with the test
//! suite's quick run (`tests/it/fuzz_quick.rs`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roster::fuzzing::filter(data));
