//! The export parser thread on an NDJSON stream: byte 0 picks the batch
//! size and whether the format is forced or sniffed (so gzip and ZIP
//! readers are reached too), byte 1 the chunk size, the rest is the file.
//! No panic, no hang, every non-blank line a record or a dead letter,
//! resume points exact, the same result whatever the chunks.

#![no_main]

use cxrelay::sources::export_download::Detected;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let [mode, chunk, file @ ..] = data else {
        return;
    };
    let forced = (mode & 1 == 1).then_some(Detected::Ndjson);
    let batch = 1 + usize::from(mode >> 1) % 8;
    let chunk = 1 + usize::from(*chunk);
    let cuts: Vec<usize> = (chunk..file.len()).step_by(chunk).collect();
    if let Err(broken) = invariants::verdict(invariants::check_ndjson(file, &cuts, batch, forced)) {
        panic!("{broken}");
    }
});
