//! `parse_body` on any bytes: no panic; on success one event and one
//! non-empty-or-absent idempotency key per element.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = invariants::verdict(invariants::check_webhook(data)) {
        panic!("{broken}");
    }
});
