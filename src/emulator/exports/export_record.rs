//! The records of export files: compact conversation records with PII,
//! padded to an exact size so that byte offsets map to record numbers.

use std::fmt::Write as _;

use crate::emulator::ids::{derive, uuid};
use crate::emulator::records::EPOCH_MS;
use crate::wire::iso_ms;

/// How records are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One record per line.
    Ndjson,
    /// One JSON array of records.
    JsonArray,
}

/// Smallest record size: room for every field and some padding.
pub const MIN_RECORD_BYTES: u64 = 768;

const NAMES: [&str; 8] = ["Alice", "Bruno", "Chen", "Dalia", "Emeka", "Fatima", "Giulia", "Hiro"];
const SURNAMES: [&str; 8] = ["Berg", "Costa", "Dubois", "Evans", "Garcia", "Hansen", "Lopez", "Novak"];

/// Writes record `i` of export `export_no` into `out` (cleared first):
/// exactly `size` bytes, a newline last for NDJSON. A malformed NDJSON
/// record is broken JSON; a malformed array element is valid JSON that is
/// not an object (a parser cannot resynchronise inside an array).
pub fn write(out: &mut Vec<u8>, seed: u64, export_no: u64, i: u64, size: usize, framing: Framing, malformed: bool) {
    out.clear();
    let d = |k: u64| derive(seed, &[0x45_58, export_no, i, k]);
    let id = uuid(seed, &[0x45_58, export_no, i]);
    let mut s = String::with_capacity(size);
    let room = match framing {
        Framing::Ndjson => size - 1,
        Framing::JsonArray => size,
    };
    if malformed {
        match framing {
            Framing::Ndjson => {
                let _ = write!(
                    s,
                    r#"{{"recordNumber":{i},"conversationId":"{id}", <<< corrupted record "#
                );
            }
            Framing::JsonArray => {
                let _ = write!(s, "\"corrupted record {i} ");
            }
        }
        while s.len() + 1 < room {
            s.push('#');
        }
        s.push(if framing == Framing::JsonArray { '"' } else { '#' });
    } else {
        let start = EPOCH_MS + i as i64 * 1000 + (d(1) % 1000) as i64;
        let end = start + 60_000 + (d(2) % 600_000) as i64;
        let phone = 5_550_000_000u64 + d(3) % 10_000_000;
        let name = format!("{} {}", NAMES[(d(4) % 8) as usize], SURNAMES[(d(5) % 8) as usize]);
        let agent = format!("{} {}", NAMES[(d(6) % 8) as usize], SURNAMES[(d(7) % 8) as usize]);
        let _ = write!(
            s,
            r#"{{"recordNumber":{i},"conversationId":"{id}","conversationStart":"{}","conversationEnd":"{}","originatingDirection":"inbound","mediaType":"voice","queueId":"{}","participants":[{{"purpose":"customer","participantName":"{name}","sessions":[{{"ani":"tel:+1{phone}","dnis":"tel:+18005550100","addressFrom":"tel:+1{phone}","addressTo":"tel:+18005550100"}}]}},{{"purpose":"agent","userId":"{}","participantName":"{agent}","wrapUpCode":"{}"}}],"padding":""#,
            iso_ms(start),
            iso_ms(end),
            uuid(seed, &[0x51, d(8) % 8]),
            uuid(seed, &[0x55, d(9) % 200]),
            uuid(seed, &[0x57, d(10) % 12]),
        );
        while s.len() + 2 < room {
            s.push('x');
        }
        s.push_str("\"}");
    }
    out.extend_from_slice(s.as_bytes());
    out.truncate(room);
    if framing == Framing::Ndjson {
        out.push(b'\n');
    }
    debug_assert_eq!(out.len(), size);
}
