//! Conversation detail records (genesys-api.md §3) as a pure function of
//! the seed and an index on a fixed timeline.
//!
//! Conversation `n` starts inside slot `n` of the timeline: slots are
//! `spacing` long from [`EPOCH_MS`], so the conversations starting in any
//! interval are a contiguous range of indices found by arithmetic, sorted
//! by `conversationStart`. As on the platform, an interval holds every
//! conversation that had activity in it ([`Timeline::active`]): those that
//! started in it and those that started before and were still going, found
//! among the starts up to the longest duration back. A conversation still
//! going at the moment a job looks ([`Timeline::record_as_of`]) has no
//! `conversationEnd`, and only the segments and metrics it had by then.

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

/// How long conversations last: most a few minutes, a share of them
/// hours (they span analytics windows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Durations {
    /// Share of conversations (0 to 1) that are long.
    pub long_share: f64,
    /// The longest a long conversation talks, in ms.
    pub long_max_ms: i64,
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            long_share: 0.0,
            long_max_ms: 0,
        }
    }
}

/// The longest a short conversation lasts, wrap-up included (ms): IVR,
/// queue, alert, talk, hold and wrap-up at their longest.
const SHORT_MAX_MS: i64 = 60_000 + 120_000 + 15_000 + 600_000 + 80_000 + 60_000;

/// The data lake's timeline: how densely conversations happen and how long
/// they last.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    seed: u64,
    spacing_us: i64,
    durations: Durations,
}

/// The records of a job: the conversations that started before its
/// interval and were still going in it (`early`, by start), then those
/// that started in it (`range`), all as they were at `as_of_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRecords {
    /// Started before the interval, active in it.
    pub early: Vec<u64>,
    /// Started in it.
    pub range: Range<u64>,
    /// The moment the records show (ms since the epoch).
    pub as_of_ms: i64,
}

impl ActiveRecords {
    /// How many.
    pub fn len(&self) -> u64 {
        self.early.len() as u64 + (self.range.end - self.range.start)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index of the `k`-th record (in `conversationStart` order).
    pub fn index(&self, k: u64) -> u64 {
        match self.early.get(k as usize) {
            Some(n) => *n,
            None => self.range.start + (k - self.early.len() as u64),
        }
    }
}

impl Timeline {
    /// `per_hour` conversations an hour, from the seed's data.
    pub fn new(seed: u64, per_hour: f64) -> Self {
        Self::with_durations(seed, per_hour, Durations::default())
    }

    /// The same, with a share of long conversations.
    pub fn with_durations(seed: u64, per_hour: f64, durations: Durations) -> Self {
        let spacing = if per_hour > 0.0 && per_hour.is_finite() {
            (3.6e9 / per_hour).round() as i64
        } else {
            i64::MAX / 4
        };
        Timeline {
            seed,
            spacing_us: spacing.max(1),
            durations,
        }
    }

    /// The longest any conversation lasts (ms).
    pub fn max_duration_ms(&self) -> i64 {
        SHORT_MAX_MS + self.durations.long_max_ms.max(0)
    }

    /// When conversation `n` ends (its last segment), ms since the epoch.
    pub fn end_ms(&self, n: u64) -> i64 {
        let start = self.start_ms(n);
        start + Shape::of(self.seed, n, &self.durations).end
    }

    /// The conversations with activity in `interval` that the data lake
    /// holds up to `available_ms`, as they were at the interval's end (or
    /// at `available_ms`, whichever is first). One whose last segment ends
    /// exactly at the interval's start had activity at that instant and is
    /// in it: a client must not count on either window alone for it.
    pub fn active(&self, interval: Interval, available_ms: i64) -> ActiveRecords {
        let as_of = interval.end_ms.min(available_ms).max(interval.start_ms);
        let range = self.range(Interval::new(interval.start_ms, as_of));
        let back = Interval::new(interval.start_ms - self.max_duration_ms(), interval.start_ms);
        let early = self
            .range(back)
            .filter(|n| self.end_ms(*n) >= interval.start_ms)
            .collect();
        ActiveRecords {
            early,
            range,
            as_of_ms: as_of,
        }
    }

    /// Record `n` as it was at `as_of_ms`: complete if it had ended by
    /// then, else still open.
    pub fn record_as_of(&self, n: u64, as_of_ms: i64) -> String {
        let start = self.start_ms(n);
        let shape = Shape::of(self.seed, n, &self.durations);
        let full = render(self.seed, n, start, &shape);
        if start + shape.end <= as_of_ms {
            full
        } else {
            still_open(&full, as_of_ms)
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

    /// Record `n` as JSON, complete.
    pub fn record(&self, n: u64) -> String {
        let shape = Shape::of(self.seed, n, &self.durations);
        render(self.seed, n, self.start_ms(n), &shape)
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

/// The phases of conversation `n`, in ms from its start.
#[derive(Clone, Copy)]
struct Shape {
    ivr_end: i64,
    acd_end: i64,
    alert_end: i64,
    talk: i64,
    hold: i64,
    talk_end: i64,
    acw: i64,
    /// The end of its last segment: its `conversationEnd`.
    end: i64,
}

impl Shape {
    fn of(seed: u64, n: u64, durations: &Durations) -> Shape {
        let d = |k: u64| derive(seed, &[CONVERSATION, n, k]);
        let ivr_end = 10_000 + (d(14) % 50_000) as i64;
        let acd_end = ivr_end + 5_000 + (d(15) % 115_000) as i64;
        let alert_end = acd_end + 3_000 + (d(16) % 12_000) as i64;
        let long = durations.long_share > 0.0
            && durations.long_max_ms > 0
            && ((d(26) % 1_000_000) as f64) < durations.long_share * 1e6;
        let talk = if long {
            // An hour-long call or longer: it spans analytics windows.
            let min = (durations.long_max_ms / 4).max(1);
            min + (d(27) % (durations.long_max_ms - min).max(1) as u64) as i64
        } else {
            60_000 + (d(17) % 540_000) as i64
        };
        let hold = if d(18).is_multiple_of(3) {
            20_000 + (d(19) % 60_000) as i64
        } else {
            0
        };
        let talk_end = alert_end + talk + hold;
        let acw = 10_000 + (d(20) % 50_000) as i64;
        Shape {
            ivr_end,
            acd_end,
            alert_end,
            talk,
            hold,
            talk_end,
            acw,
            end: talk_end + acw,
        }
    }
}

/// One conversation detail record (about 2.5 KB; the SDK's
/// AnalyticsConversation), with PII in `ani`, `dnis`, `addressFrom`,
/// `addressTo`, `participantName`, `wrapUpNote` and the customer's
/// `attributes`.
fn render(seed: u64, n: u64, start: i64, shape: &Shape) -> String {
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
    let Shape {
        ivr_end,
        acd_end,
        alert_end,
        talk,
        hold,
        talk_end,
        acw,
        end,
    } = *shape;
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
        t(talk_end),
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

/// A complete record cut back to what it was at `as_of_ms`: no
/// `conversationEnd`, segments that had not started left out, the one
/// going on without its `segmentEnd` (and its disconnect), metrics not yet
/// emitted left out. Rare (only records still going when a job looks), so
/// done on a parsed tree.
fn still_open(full: &str, as_of_ms: i64) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(full) else {
        return full.to_string();
    };
    let after = |x: &serde_json::Value| {
        x.as_str()
            .and_then(|t| crate::wire::parse_iso_ms(t).ok())
            .is_some_and(|ms| ms > as_of_ms)
    };
    if let Some(o) = v.as_object_mut() {
        o.remove("conversationEnd");
        o.remove("mediaStatsMinConversationMos");
    }
    let participants = v.get_mut("participants").and_then(|p| p.as_array_mut());
    for p in participants.into_iter().flatten() {
        let sessions = p.get_mut("sessions").and_then(|s| s.as_array_mut());
        for session in sessions.into_iter().flatten() {
            if let Some(segments) = session.get_mut("segments").and_then(|s| s.as_array_mut()) {
                segments.retain(|seg| !after(&seg["segmentStart"]));
                for seg in segments.iter_mut() {
                    if after(&seg["segmentEnd"]) {
                        if let Some(o) = seg.as_object_mut() {
                            o.remove("segmentEnd");
                            o.remove("disconnectType");
                            o.remove("wrapUpCode");
                            o.remove("wrapUpNote");
                        }
                    }
                }
            }
            if let Some(metrics) = session.get_mut("metrics").and_then(|m| m.as_array_mut()) {
                metrics.retain(|m| !after(&m["emitDate"]));
                if metrics.is_empty() {
                    if let Some(o) = session.as_object_mut() {
                        o.remove("metrics");
                    }
                }
            }
        }
    }
    v.to_string()
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
    fn long_conversations_are_active_in_every_window_they_touch_and_open_until_they_end() {
        let tl = Timeline::with_durations(
            5,
            600.0,
            Durations {
                long_share: 0.2,
                long_max_ms: 3 * 3_600_000,
            },
        );
        let day = Interval::parse("2024-05-01T00:00:00Z/2024-05-02T00:00:00Z").unwrap();
        let windows: Vec<Interval> = (0..96)
            .map(|k| Interval::new(day.start_ms + k * 900_000, day.start_ms + (k + 1) * 900_000))
            .collect();
        let mut closed_in: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        let mut spanning = 0;
        for w in &windows {
            let a = tl.active(*w, i64::MAX);
            for k in 0..a.len() {
                let n = a.index(k);
                let end = tl.end_ms(n);
                assert!(tl.start_ms(n) < w.end_ms && end >= w.start_ms, "active in the window");
                let v: serde_json::Value = serde_json::from_str(&tl.record_as_of(n, a.as_of_ms)).unwrap();
                if end <= w.end_ms {
                    assert!(v["conversationEnd"].is_string());
                    if end > w.start_ms {
                        *closed_in.entry(n).or_default() += 1;
                    }
                } else {
                    spanning += 1;
                    assert!(v.get("conversationEnd").is_none(), "open at the window's end");
                    assert!(v.to_string().len() > 200);
                }
            }
        }
        assert!(spanning > 100, "long conversations span windows: {spanning}");
        assert!(closed_in.values().all(|c| *c == 1), "each ends in one window");
        assert_eq!(tl.record_as_of(3, i64::MAX), tl.record(3));
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
