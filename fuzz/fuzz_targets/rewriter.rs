//! The JSON rewriter on any bytes, under every spec of `rewrite_specs`
//! (flatten + keyed-hash mask + timestamps, redact, key rules, identity,
//! flatten alone): no panic, output bounded, valid JSON, masking total,
//! identity and flatten keep every leaf.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = invariants::verdict(invariants::rewrite_all(data)) {
        panic!("{broken}");
    }
});
