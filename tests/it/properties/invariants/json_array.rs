//! Invariants of the JSON array framing (a part of `invariants.rs`).

use cxrelay::sources::export_download::json_array::{ArrayFramer, FramingError};
use serde_json::value::RawValue;

use super::Checked;

/// What a framer made of a stream: the elements (bytes, start, end) and
/// how it ended.
#[derive(Debug, PartialEq)]
pub struct Framed {
    pub elements: Vec<(Vec<u8>, u64, u64)>,
    pub end: Result<(), FramingError>,
}

/// Feeds `data` to a framer in pieces cut at `cuts` (offsets, any order,
/// out-of-range ones ignored).
pub fn frame(data: &[u8], cuts: &[usize], max_element: usize) -> Framed {
    let mut points: Vec<usize> = cuts.iter().copied().filter(|&c| c > 0 && c < data.len()).collect();
    points.sort_unstable();
    points.dedup();
    points.push(data.len());
    let mut framer = ArrayFramer::new(0, max_element);
    let mut elements = Vec::new();
    let mut from = 0;
    for to in points {
        let fed = framer.feed(&data[from..to], &mut |e| {
            elements.push((e.bytes.to_vec(), e.start, e.end));
            Ok::<(), ()>(())
        });
        if let Err(e) = fed {
            let end = match e {
                Ok(framing) => Err(framing),
                Err(()) => unreachable!("the callback never fails"),
            };
            return Framed { elements, end };
        }
        from = to;
    }
    Framed {
        elements,
        end: framer.finish(),
    }
}

/// The framer on `data` cut at `cuts`: same result whatever the cuts,
/// elements within the limit and at their offsets, and exactly the
/// elements serde_json sees when the data is a JSON array.
pub fn check_json_array(data: &[u8], cuts: &[usize], max_element: usize) -> Checked<Framed> {
    let framed = frame(data, cuts, max_element);
    let whole = frame(data, &[], max_element);
    ensure!(
        framed == whole,
        "chunking changed the result:\n cut:   {framed:?}\n whole: {whole:?}"
    );
    let mut last_end = 0;
    for (bytes, start, end) in &framed.elements {
        ensure!(
            bytes.len() <= max_element,
            "an element of {} bytes passed the limit of {max_element}",
            bytes.len()
        );
        ensure!(*start >= last_end && end >= start, "elements overlap or go backwards");
        ensure!(
            data.get(*start as usize..*end as usize) == Some(&bytes[..]),
            "element bytes are not the data at its offsets {start}..{end}"
        );
        last_end = *end;
    }
    match serde_json::from_slice::<Vec<&RawValue>>(data) {
        Ok(want) => {
            let too_large = want.iter().position(|r| r.get().len() > max_element);
            let expect: Vec<&[u8]> = want[..too_large.unwrap_or(want.len())]
                .iter()
                .map(|r| r.get().as_bytes())
                .collect();
            let got: Vec<&[u8]> = framed.elements.iter().map(|e| &e.0[..]).collect();
            ensure!(
                got == expect,
                "the framer's elements differ from serde_json's:\n got:  {:?}\n want: {:?}",
                got.iter().map(|b| String::from_utf8_lossy(b)).collect::<Vec<_>>(),
                expect.iter().map(|b| String::from_utf8_lossy(b)).collect::<Vec<_>>()
            );
            match too_large {
                None => ensure!(framed.end.is_ok(), "a valid array failed to frame: {:?}", framed.end),
                Some(_) => ensure!(
                    matches!(framed.end, Err(FramingError::TooLarge { .. })),
                    "an element over the limit did not stop the framing: {:?}",
                    framed.end
                ),
            }
        }
        Err(_) => {
            // Not an array serde_json reads: some element must be bad (read
            // as the array's were: as text, so UTF-8 is checked too), or the
            // framing must have failed.
            let all_json = framed
                .elements
                .iter()
                .all(|e| serde_json::from_slice::<&RawValue>(&e.0).is_ok());
            ensure!(
                framed.end.is_err() || !all_json,
                "framed {} valid elements out of bytes serde_json refuses as an array: {}",
                framed.elements.len(),
                String::from_utf8_lossy(&data[..data.len().min(300)])
            );
        }
    }
    Ok(framed)
}
