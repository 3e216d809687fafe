//! Conversation detail records (genesys-api.md §3) as a pure function of
//! the seed and an index on a fixed timeline.
//!
//! Conversation `n` starts inside slot `n` of the timeline: slots are
//! `spacing` long from [`EPOCH_MS`], so the records of any interval are a
//! contiguous range of indices found by arithmetic, sorted by
//! `conversationStart`, and the same for every job, page and query that
//! asks for them. A job for part of an interval gets exactly the records
//! of that part.

use std::fmt::Write as _;
use std::ops::Range;

use super::ids::{derive, uuid};
use crate::wire::{iso_ms, Interval};

/// Where the timeline starts (2020-01-01T00:00:00Z): nothing happened before.
pub const EPOCH_MS: i64 = 1_577_836_800_000;
const EPOCH_US: i64 = EPOCH_MS * 1000;

// Index paths of the derived values (arbitrary, distinct).
const START: u64 = 1;
const CONVERSATION: u64 = 2;
const PARTY: u64 = 3;
const QUEUE: u64 = 4;
const USER: u64 = 5;
const WRAPUP: u64 = 6;
const DIVISION: u64 = 7;
const FLOW: u64 = 8;

/// The data lake's timeline: how densely conversations happen.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    seed: u64,
    spacing_us: i64,
}

impl Timeline {
    /// `per_hour` conversations an hour, from the seed's data.
    pub fn new(seed: u64, per_hour: f64) -> Self {
        let spacing = if per_hour > 0.0 && per_hour.is_finite() {
            (3.6e9 / per_hour).round() as i64
        } else {
            i64::MAX / 4
        };
        Timeline {
            seed,
            spacing_us: spacing.max(1),
        }
    }

    /// When conversation `n` starts, in µs since the epoch: somewhere in
    /// its slot, so starts strictly increase with `n`.
    fn start_us(&self, n: u64) -> i64 {
        let jitter = (derive(self.seed, &[START, n]) % self.spacing_us as u64) as i64;
        EPOCH_US + n as i64 * self.spacing_us + jitter
    }

    /// When conversation `n` starts, in ms since the epoch.
    pub fn start_ms(&self, n: u64) -> i64 {
        self.start_us(n).div_euclid(1000)
    }

    /// The first conversation starting at or after `us`.
    fn first_from(&self, us: i64) -> u64 {
        if us <= EPOCH_US {
            return 0;
        }
        let n = ((us - EPOCH_US) / self.spacing_us) as u64;
        if self.start_us(n) >= us {
            n
        } else {
            n + 1
        }
    }

    /// Indices of the conversations starting inside `interval`.
    pub fn range(&self, interval: Interval) -> Range<u64> {
        let lo = self.first_from(interval.start_ms.saturating_mul(1000));
        let hi = self.first_from(interval.end_ms.saturating_mul(1000));
        lo..hi.max(lo)
    }

    /// The `conversationId` of record `n` (without generating the record).
    pub fn conversation_id(&self, n: u64) -> String {
        uuid(self.seed, &[CONVERSATION, n])
    }

    /// Record `n` as JSON.
    pub fn record(&self, n: u64) -> String {
        conversation(self.seed, n, self.start_ms(n))
    }
}

const FIRST: [&str; 16] = [
    "Alice", "Bruno", "Chen", "Dalia", "Emeka", "Fatima", "Giulia", "Hiro", "Ines", "Jonas", "Kavya", "Liam", "Maya",
    "Nikolai", "Olga", "Pedro",
];
const LAST: [&str; 16] = [
    "Anderson", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ivanova", "Jensen", "Kowalski",
    "Lopez", "Moreau", "Novak", "Okafor", "Petrov",
];
const MEDIA: [&str; 8] = [
    "voice", "voice", "voice", "voice", "callback", "chat", "email", "message",
];
const DISCONNECT: [&str; 4] = ["client", "endpoint", "peer", "transfer"];
const NOTES: [&str; 4] = [
    "Customer asked about invoice {}; explained the late fee and waived it.",
    "Address change for account {}; confirmation sent by email.",
    "Card ending {} reported lost; replacement ordered, callback requested.",
    "Complaint about delivery {}; escalated to tier 2.",
];

/// One conversation detail record (about 2.5 KB), with PII in `ani`,
/// `dnis`, `addressFrom`, `addressTo`, `participantName`, `wrapUpNote` and
/// the customer's `attributes`.
pub fn conversation(seed: u64, n: u64, start: i64) -> String {
    let d = |k: u64| derive(seed, &[CONVERSATION, n, k]);
    let id = uuid(seed, &[CONVERSATION, n]);
    let party = |k: u64| uuid(seed, &[PARTY, n, k]);
    let first = FIRST[(d(1) % 16) as usize];
    let last = LAST[(d(2) % 16) as usize];
    let agent_first = FIRST[(d(3) % 16) as usize];
    let agent_last = LAST[(d(4) % 16) as usize];
    let media = MEDIA[(d(5) % 8) as usize];
    let queue_no = d(6) % 8;
    let queue = uuid(seed, &[QUEUE, queue_no]);
    let user = uuid(seed, &[USER, d(7) % 200]);
    let wrapup = uuid(seed, &[WRAPUP, d(8) % 12]);
    let division = uuid(seed, &[DIVISION, queue_no % 2]);
    let flow = uuid(seed, &[FLOW, 0]);
    let phone = 5_550_000_000u64 + d(10) % 10_000_000;
    let dnis = 8_005_550_100u64 + d(11) % 50;
    let inbound = d(12) % 5 != 0;
    let direction = if inbound { "inbound" } else { "outbound" };
    let account = d(13) % 10_000_000;
    // Phases of the call, in ms from the start.
    let ivr_end = 10_000 + (d(14) % 50_000) as i64;
    let acd_end = ivr_end + 5_000 + (d(15) % 115_000) as i64;
    let alert_end = acd_end + 3_000 + (d(16) % 12_000) as i64;
    let talk = 60_000 + (d(17) % 540_000) as i64;
    let hold = if d(18).is_multiple_of(3) {
        20_000 + (d(19) % 60_000) as i64
    } else {
        0
    };
    let talk_end = alert_end + talk + hold;
    let acw = 10_000 + (d(20) % 50_000) as i64;
    let end = talk_end;
    let t = |offset: i64| iso_ms(start + offset);
    let note = NOTES[(d(21) % 4) as usize].replace("{}", &(account % 100_000).to_string());
    let email = format!(
        "{}.{}{}@example.com",
        first.to_lowercase(),
        last.to_lowercase(),
        account % 1000
    );
    let ani = format!("tel:+1{phone}");
    let dnis = format!("tel:+1{dnis}");
    let mos = 3.5 + (d(22) % 100) as f64 / 100.0;

    let mut s = String::with_capacity(3072);
    let _ = write!(
        s,
        r#"{{"conversationId":"{id}","conversationStart":"{}","conversationEnd":"{}","originatingDirection":"{direction}","divisionIds":["{division}"],"mediaStatsMinConversationMos":{mos:.2},"participants":["#,
        t(0),
        t(end),
    );
    // The customer.
    let _ = write!(
        s,
        r#"{{"participantId":"{}","participantName":"{first} {last}","purpose":"customer","attributes":{{"accountNumber":"AC-{account:07}","customerEmail":"{email}"}},"sessions":[{{"sessionId":"{}","mediaType":"{media}","direction":"{direction}","ani":"{ani}","dnis":"{dnis}","addressFrom":"{ani}","addressTo":"{dnis}","segments":[{{"segmentStart":"{}","segmentEnd":"{}","segmentType":"interact","disconnectType":"{}"}}]}}]}},"#,
        party(0),
        party(10),
        t(0),
        t(end),
        DISCONNECT[(d(24) % 4) as usize],
    );
    // The IVR flow.
    let _ = write!(
        s,
        r#"{{"participantId":"{}","participantName":"Main IVR","purpose":"ivr","sessions":[{{"sessionId":"{}","mediaType":"{media}","dnis":"{dnis}","segments":[{{"segmentStart":"{}","segmentEnd":"{}","segmentType":"ivr"}}],"flow":{{"flowId":"{flow}","flowName":"Main IVR","exitReason":"TRANSFER"}}}}]}},"#,
        party(1),
        party(11),
        t(0),
        t(ivr_end),
    );
    // Waiting in queue.
    let _ = write!(
        s,
        r#"{{"participantId":"{}","participantName":"Support Queue {queue_no}","purpose":"acd","sessions":[{{"sessionId":"{}","mediaType":"{media}","segments":[{{"segmentStart":"{}","segmentEnd":"{}","segmentType":"interact","queueId":"{queue}"}}],"metrics":[{{"name":"tAcd","value":{},"emitDate":"{}"}}]}}]}},"#,
        party(2),
        party(12),
        t(ivr_end),
        t(acd_end),
        acd_end - ivr_end,
        t(acd_end),
    );
    // The agent.
    let _ = write!(
        s,
        r#"{{"participantId":"{}","participantName":"{agent_first} {agent_last}","purpose":"agent","userId":"{user}","sessions":[{{"sessionId":"{}","mediaType":"{media}","direction":"{direction}","ani":"{ani}","dnis":"{dnis}","segments":[{{"segmentStart":"{}","segmentEnd":"{}","segmentType":"alert"}},{{"segmentStart":"{}","segmentEnd":"{}","segmentType":"interact","queueId":"{queue}"}}"#,
        party(3),
        party(13),
        t(acd_end),
        t(alert_end),
        t(alert_end),
        t(alert_end + talk / 2),
    );
    if hold > 0 {
        let _ = write!(
            s,
            r#",{{"segmentStart":"{}","segmentEnd":"{}","segmentType":"hold"}}"#,
            t(alert_end + talk / 2),
            t(alert_end + talk / 2 + hold),
        );
    }
    let _ = write!(
        s,
        r#",{{"segmentStart":"{}","segmentEnd":"{}","segmentType":"interact","queueId":"{queue}","disconnectType":"{}"}},{{"segmentStart":"{}","segmentEnd":"{}","segmentType":"wrapup","wrapUpCode":"{wrapup}","wrapUpNote":"{note}"}}],"metrics":[{{"name":"tAlert","value":{},"emitDate":"{}"}},{{"name":"tTalk","value":{talk},"emitDate":"{}"}},{{"name":"tHeld","value":{hold},"emitDate":"{}"}},{{"name":"tAcw","value":{acw},"emitDate":"{}"}},{{"name":"tHandle","value":{},"emitDate":"{}"}}]}}]}}]}}"#,
        t(alert_end + talk / 2 + hold),
        t(talk_end),
        DISCONNECT[(d(25) % 4) as usize],
        t(talk_end),
        t(talk_end + acw),
        alert_end - acd_end,
        t(alert_end),
        t(talk_end),
        t(talk_end),
        t(talk_end + acw),
        talk + hold + acw,
        t(talk_end + acw),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_iso_ms;

    #[test]
    fn records_are_realistic_json_of_about_two_and_a_half_kilobytes() {
        let tl = Timeline::new(7, 600.0);
        let mut total = 0;
        for n in 0..200 {
            let r = tl.record(n);
            let v: serde_json::Value = serde_json::from_str(&r).unwrap_or_else(|e| panic!("{e}: {r}"));
            assert_eq!(v["participants"].as_array().unwrap().len(), 4);
            assert!(r.contains("\"ani\":\"tel:+1") && r.contains("wrapUpNote") && r.contains("attributes"));
            assert_eq!(
                parse_iso_ms(v["conversationStart"].as_str().unwrap()).unwrap(),
                tl.start_ms(n)
            );
            total += r.len();
            assert_eq!(r, tl.record(n), "a pure function of seed and index");
            assert_eq!(v["conversationId"], tl.conversation_id(n));
        }
        let avg = total / 200;
        assert!((2000..3200).contains(&avg), "average record {avg} bytes");
        assert_ne!(Timeline::new(8, 600.0).record(3), tl.record(3));
    }

    #[test]
    fn an_interval_maps_to_exactly_its_records() {
        let tl = Timeline::new(3, 10_000.0);
        // 10,000 an hour is a 360 ms slot: 20 hours hold exactly 200,000.
        let day = Interval::parse("2024-05-01T00:00:00Z/2024-05-01T20:00:00Z").unwrap();
        let r = tl.range(day);
        assert_eq!(r.end - r.start, 200_000);
        assert!(tl.start_ms(r.start) >= day.start_ms && tl.start_ms(r.start - 1) < day.start_ms);
        assert!(tl.start_ms(r.end - 1) < day.end_ms && tl.start_ms(r.end) >= day.end_ms);
        // Any split point partitions the records exactly.
        for cut in [day.start_ms + 1, day.start_ms + 12_345_678, tl.start_ms(r.start + 777)] {
            let a = tl.range(Interval::new(day.start_ms, cut));
            let b = tl.range(Interval::new(cut, day.end_ms));
            assert_eq!((a.start, a.end, b.end), (r.start, b.start, r.end));
        }
        assert!(tl.range(Interval::new(0, EPOCH_MS)).is_empty());
        let starts: Vec<i64> = (r.start..r.start + 1000).map(|n| tl.start_ms(n)).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "sorted by conversationStart");
    }
}
