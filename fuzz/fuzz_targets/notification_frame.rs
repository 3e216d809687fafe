//! `Frame::parse` on any bytes: no panic, nothing but JSON read as a
//! frame (serde_json's grammar the reference), and the topic read is the
//! document's `topicName`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = invariants::verdict(invariants::check_frame(data)) {
        panic!("{broken}");
    }
});
