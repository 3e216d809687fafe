//! The streaming JSON array framer: byte 0 picks the element limit, byte 1
//! the chunk size, the rest is the stream. No panic, the same elements
//! whatever the chunks, elements within the limit and at their offsets,
//! and exactly serde_json's elements when the stream is a JSON array.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let [limit, chunk, stream @ ..] = data else {
        return;
    };
    let max_element = 1 + usize::from(*limit) * 16;
    let chunk = 1 + usize::from(*chunk % 64);
    let cuts: Vec<usize> = (chunk..stream.len()).step_by(chunk).collect();
    if let Err(broken) = invariants::verdict(invariants::check_json_array(stream, &cuts, max_element)) {
        panic!("{broken}");
    }
});
