//! A page of conversation detail records as events: topic, key =
//! `conversationId`, event time = `conversationStart`, payload = the record
//! as received. A record without a `conversationId` cannot be keyed or
//! deduplicated: it goes to dead letters with its position.
//!
//! A job returns every conversation that had activity in its interval, so
//! a conversation spanning windows comes back in each, still open (no
//! `conversationEnd`) in those before it ended. Each is delivered once, in
//! its final state: in the first window whose end is at or after its end.
//! One still open at the window's end (or ending after it) is held for a
//! later window. One ending exactly on a boundary is delivered in the
//! window that ends there, not held: the next window may not return it.
//! The idempotency key is the conversation id alone, so that a
//! conversation returned again by a later window is delivered once.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use cxrelay_actors::event::now_ms;
use cxrelay_actors::Event;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::genesys::interval::{parse_iso_ms, Interval};
use crate::store::DeadLetter;

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "conversationId", borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "conversationStart", borrow)]
    start: Option<Cow<'a, str>>,
    #[serde(rename = "conversationEnd", borrow)]
    end: Option<Cow<'a, str>>,
}

/// What a page becomes.
#[derive(Debug, Default)]
pub struct PageEvents {
    /// One event per usable record, in page order.
    pub events: Vec<Event>,
    /// Their idempotency keys.
    pub keys: Vec<Option<String>>,
    /// Records that could not become events.
    pub dead_letters: Vec<DeadLetter>,
    /// The latest `conversationStart` on the page.
    pub high_water: Option<i64>,
    /// Records not delivered here: still open at the window's end, or
    /// ending after it (a later window delivers them).
    pub held_open: usize,
}

/// Where a page sits, for keys and dead-letter positions.
pub struct PageContext<'a> {
    /// Source name.
    pub source: &'a Arc<str>,
    /// Event topic.
    pub topic: &'a Arc<str>,
    /// The window being fetched: a conversation is delivered in the window
    /// where it ended.
    pub window: Interval,
    /// The job.
    pub job: &'a str,
    /// The page's number in the job.
    pub page: u64,
}

/// Turns a page's records into events.
pub fn page_events(cx: &PageContext<'_>, records: &[Box<RawValue>]) -> PageEvents {
    let mut out = PageEvents {
        events: Vec::with_capacity(records.len()),
        keys: Vec::with_capacity(records.len()),
        ..PageEvents::default()
    };
    let received = now_ms();
    for (i, raw) in records.iter().enumerate() {
        let head = serde_json::from_str::<Head<'_>>(raw.get());
        let (id, start, end) = match head {
            Ok(Head {
                id: Some(id),
                start,
                end,
            }) if !id.is_empty() => (
                id.into_owned(),
                start.and_then(|s| parse_iso_ms(&s).ok()),
                end.and_then(|e| parse_iso_ms(&e).ok()),
            ),
            Ok(_) | Err(_) => {
                let why = match head {
                    Err(e) => format!("record is not a conversation object: {e}"),
                    Ok(_) => "record has no conversationId".to_string(),
                };
                out.dead_letters.push(DeadLetter::for_raw(
                    cx.source,
                    &format!("analytics_job:{}", cx.source),
                    &why,
                    raw.get().as_bytes(),
                    Some(format!("job {} page {} record {i}", cx.job, cx.page)),
                ));
                continue;
            }
        };
        if let Some(t) = start {
            out.high_water = Some(out.high_water.map_or(t, |h: i64| h.max(t)));
        }
        if end.is_none_or(|e| e > cx.window.end_ms) {
            out.held_open += 1;
            continue;
        }
        out.keys.push(Some(format!("analytics:{}:{id}", cx.source)));
        out.events.push(
            Event::builder(cx.source.clone(), cx.topic.clone())
                .id(id.clone())
                .key(id)
                .event_time(start)
                .received_at(received)
                .payload(Bytes::copy_from_slice(raw.get().as_bytes()))
                .build(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    /// Page `page` of job `j1` of source `details`, over `window`.
    fn events_of(window: Interval, page: u64, records: &[Box<RawValue>]) -> PageEvents {
        let source: Arc<str> = Arc::from("details");
        let topic: Arc<str> = Arc::from("analytics.conversations");
        let cx = PageContext {
            source: &source,
            topic: &topic,
            window,
            job: "j1",
            page,
        };
        page_events(&cx, records)
    }

    #[test]
    fn a_conversation_ending_on_the_window_end_is_delivered_not_held() {
        // The window ends at 2024-05-01T14:10:00Z.
        let out = events_of(
            Interval::new(1_714_572_000_000, 1_714_572_600_000),
            1,
            &[raw(
                r#"{"conversationId":"edge","conversationStart":"2024-05-01T14:02:03Z","conversationEnd":"2024-05-01T14:10:00Z"}"#,
            )],
        );
        assert_eq!((out.events.len(), out.held_open), (1, 0));
        assert_eq!(out.keys[0].as_deref(), Some("analytics:details:edge"));
    }

    #[test]
    fn records_become_keyed_timed_events_and_the_rest_dead_letters() {
        let out = events_of(
            Interval::new(0, 1_714_600_000_000),
            4,
            &[
                raw(
                    r#"{"conversationId":"c1","conversationStart":"2024-05-01T14:02:03.120Z","conversationEnd":"2024-05-01T14:09:00Z","x":[1]}"#,
                ),
                raw(r#"{"conversationStart":"2024-05-01T14:02:04.000Z"}"#),
                raw(r#"[1,2]"#),
                raw(
                    r#"{"conversationId":"c2","conversationStart":"2024-05-01T14:02:05.000Z","conversationEnd":"2024-05-01T14:10:00Z"}"#,
                ),
                raw(r#"{"conversationId":"open","conversationStart":"2024-05-01T14:02:06.000Z"}"#),
                raw(
                    r#"{"conversationId":"later","conversationStart":"2024-05-01T14:02:07.000Z","conversationEnd":"2024-06-01T00:00:00Z"}"#,
                ),
            ],
        );
        assert_eq!(out.events.len(), 2);
        assert_eq!(out.held_open, 2, "open, or ending after the window: held");
        assert_eq!(out.events[0].key.as_deref(), Some("c1"));
        assert_eq!(out.events[0].event_time, Some(1_714_572_123_120));
        assert_eq!(
            &out.events[0].payload[..],
            br#"{"conversationId":"c1","conversationStart":"2024-05-01T14:02:03.120Z","conversationEnd":"2024-05-01T14:09:00Z","x":[1]}"#
        );
        assert_eq!(
            out.keys[1].as_deref(),
            Some("analytics:details:c2"),
            "one key across windows"
        );
        assert_eq!(out.high_water, Some(1_714_572_127_000));
        assert_eq!(out.dead_letters.len(), 2);
        assert_eq!(out.dead_letters[0].position.as_deref(), Some("job j1 page 4 record 1"));
        assert!(out.dead_letters[1].error.contains("not a conversation object"));
    }
}
