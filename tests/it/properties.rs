//! Property tests of the code that parses what an attacker or a broken peer
//! can send: the JSON rewriter, webhook envelopes, notification frames,
//! the export's JSON array framer and NDJSON parser, notification frame
//! reassembly and the config loader. The invariants live in `properties/invariants.rs` (and its
//! parts under `properties/invariants/`), shared with the fuzz targets in
//! `fuzz/`; this file generates inputs for them, with the reassembly and
//! config loader properties in `properties/reassembly.rs` and
//! `properties/config_loader.rs`.
//!
//! Case counts are kept small so CI stays quick (the whole module runs in
//! a few seconds); `PROPTEST_CASES=N` runs every property N times instead.
//! Seeds are random on purpose, so each CI run explores new inputs; a
//! failure prints the shrunk input to reproduce it with.
//!
//! `regression_*` tests (`properties/regressions.rs`) reproduce the bugs
//! found; they fail until the bug is fixed. The properties let those known
//! bugs through (`KNOWN_BUGS` in `invariants.rs`) so they keep looking for
//! new ones.

mod config_loader;
mod invariants;
mod reassembly;
mod regressions;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cxrelay::sources::export_download::Detected;
use invariants::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Number, Value};

// ---- running ------------------------------------------------------------------

/// Runs `test` on `cases` inputs from `strategy` (or `PROPTEST_CASES`),
/// shrinks a failure to a small input, and reports how many cases ran.
fn check<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), String>)
where
    S::Value: std::fmt::Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        // Nothing is written next to the sources: a failure is reported
        // with its input, and a fixed bug gets a `regression_*` test.
        failure_persistence: None,
        // Shrinking stops after this many steps, so a failure is reported
        // in seconds rather than minutes.
        max_shrink_iters: 512,
        ..Config::default()
    };
    let ran = AtomicUsize::new(0);
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        ran.fetch_add(1, Ordering::Relaxed);
        // Known bugs (reproduced by `regression_*` in `regressions.rs`) do
        // not stop the search for new ones.
        verdict(test(input)).map_err(TestCaseError::fail)
    });
    eprintln!(
        "property {name}: {} cases (incl. shrinking) in {:.2?}",
        ran.load(Ordering::Relaxed),
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("property {name} failed: {e}");
    }
}

/// Runs `f` on a thread of its own and fails if it takes longer than
/// `limit`: a parser that hangs fails the test instead of stalling CI.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = t.join();
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("no answer within {limit:?}: hung"),
    }
}

// ---- JSON generation ----------------------------------------------------------

/// Names the timestamp transform normalises.
const TIME_NAMES: &[&str] = &["eventTime", "conversationStart", "segmentEnd", "emitDate", "timestamp"];

fn any_text(max: usize) -> impl Strategy<Value = String> {
    // Any char: quotes, backslashes, controls, non-BMP.
    vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect())
}

fn key() -> BoxedStrategy<String> {
    let known: Vec<&str> = MASKED
        .iter()
        .chain(TIME_NAMES)
        .chain(&["id", "conversationId", "a", "a.b", ""])
        .copied()
        .collect();
    prop_oneof![
        6 => "[a-zA-Z]{1,8}",
        3 => prop::sample::select(known).prop_map(str::to_string),
        1 => any_text(6),
        1 => "[a-z]{100,300}",
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    let times = vec![
        "2024-05-01T16:02:03.12+02:00",
        "2024-05-01T14:02:03Z",
        "2024-05-01T14:02:03.120Z",
        "2024-02-31T14:02:03.120Z",
        "+12024-05-01T14:02:03Z",
        "not a date",
    ];
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0i64..10).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        // Epoch milliseconds in and around the accepted range.
        (999_999_999_000i64..10_000_000_001_000).prop_map(Value::from),
        prop::sample::select(times).prop_map(Value::from),
        any_text(12).prop_map(Value::String),
        "[a-z0-9+:@. -]{0,24}".prop_map(Value::String),
    ]
    .boxed()
}

fn object(members: Vec<(String, Value)>) -> Value {
    Value::Object(members.into_iter().collect::<Map<String, Value>>())
}

/// Any JSON value: nested objects and arrays of any leaves.
fn value() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(6, 96, 8, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..8).prop_map(Value::Array),
                vec((key(), inner), 0..8).prop_map(object),
            ]
        })
        .boxed()
}

/// A record: an object of any values.
fn record() -> BoxedStrategy<Value> {
    vec((key(), value()), 0..10).prop_map(object).boxed()
}

/// A record with masked fields at every depth, holding strings, numbers,
/// arrays and objects (and some nulls, which stay).
fn record_with_secrets() -> BoxedStrategy<Value> {
    let secret = prop_oneof![
        "[A-Za-z0-9+:@.]{1,20}".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        value(),
    ];
    let masked_member = (prop::sample::select(MASKED.to_vec()), secret).prop_map(|(k, v)| (k.to_string(), v));
    let member = prop_oneof![2 => masked_member, 3 => (key(), leaf())];
    // A member, or a key holding an object of members (alone or in an
    // array): masked names end up at every depth.
    let tree = member.prop_recursive(5, 64, 6, |inner| {
        (key(), vec(inner, 0..6), any::<bool>()).prop_map(|(k, members, in_array)| {
            let obj = object(members);
            (k, if in_array { Value::Array(vec![obj]) } else { obj })
        })
    });
    vec(tree, 1..8).prop_map(object).boxed()
}

/// Nesting around the 127/128-level limits: objects and arrays.
fn deep_record() -> BoxedStrategy<Value> {
    (120usize..=132, "[a-z]{1,4}", vec(any::<bool>(), 132), leaf())
        .prop_map(|(depth, k, arrays, leaf)| {
            let mut v = leaf;
            for a in arrays.iter().take(depth - 1) {
                v = if *a {
                    Value::Array(vec![v])
                } else {
                    object(vec![(k.clone(), v)])
                };
            }
            object(vec![(k, v)])
        })
        .boxed()
}

/// Many leaves under a long key path: what flattening multiplies.
fn wide_record() -> BoxedStrategy<Value> {
    (
        vec("[a-z]{20,130}", 0..10),
        vec((key(), leaf()), 100..1500),
        vec((key(), leaf()), 0..4),
    )
        .prop_map(|(path, leaves, around)| {
            let mut v = object(leaves);
            for k in path.into_iter().rev() {
                v = object(vec![(k, v)]);
            }
            let mut members = around;
            members.push(("nested".into(), v));
            object(members)
        })
        .boxed()
}

/// How a value is written: whitespace, escapes, repeated keys.
#[derive(Debug, Clone)]
struct Style {
    seed: u64,
    /// Percent of chars written as `\u` escapes.
    escape: u8,
    /// Percent of token gaps given whitespace.
    ws: u8,
    /// Percent of object members written twice.
    dup: u8,
    /// Strings written without optional escapes.
    verbatim: Vec<String>,
}

fn style() -> impl Strategy<Value = Style> {
    (
        any::<u64>(),
        0u8..40,
        0u8..30,
        prop_oneof![4 => Just(0u8), 1 => 1u8..20],
    )
        .prop_map(|(seed, escape, ws, dup)| Style {
            seed: seed | 1,
            escape,
            ws,
            dup,
            verbatim: Vec::new(),
        })
}

impl Style {
    fn chance(&mut self, percent: u8) -> bool {
        // xorshift64: deterministic per style, so a shrunk case replays.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed % 100) < u64::from(percent)
    }

    fn gap(&mut self, out: &mut String) {
        while self.chance(self.ws) {
            let ws = [" ", "\t", "\n", "\r"][(self.seed >> 20) as usize % 4];
            out.push_str(ws);
        }
    }

    fn string(&mut self, s: &str, out: &mut String) {
        let escape = if self.verbatim.iter().any(|v| v == s) {
            0
        } else {
            self.escape
        };
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' if self.chance(50) => out.push_str("\\n"),
                c if (c as u32) < 0x20 || self.chance(escape) => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{:04x}", u));
                    }
                }
                '/' if escape > 0 && self.chance(50) => out.push_str("\\/"),
                c => out.push(c),
            }
        }
        out.push('"');
    }

    fn write(&mut self, v: &Value, out: &mut String) {
        self.gap(out);
        match v {
            Value::Object(m) => {
                out.push('{');
                let mut first = true;
                for (k, v) in m {
                    let times = if self.chance(self.dup) { 2 } else { 1 };
                    for _ in 0..times {
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        self.gap(out);
                        self.string(k, out);
                        self.gap(out);
                        out.push(':');
                        self.write(v, out);
                    }
                }
                self.gap(out);
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write(v, out);
                }
                self.gap(out);
                out.push(']');
            }
            Value::String(s) => self.string(s, out),
            other => out.push_str(&other.to_string()),
        }
        self.gap(out);
    }
}

/// `v` written in `style`.
fn text(v: &Value, style: &Style) -> String {
    let mut out = String::new();
    style.clone().write(v, &mut out);
    out
}

/// Bytes near JSON: a record's text with bytes flipped, cut or inserted.
fn hostile_bytes() -> BoxedStrategy<Vec<u8>> {
    bytes_near(record())
}

/// Any bytes, or the text of a `base` value with bytes flipped, cut or
/// inserted, or cut short.
fn bytes_near(base: BoxedStrategy<Value>) -> BoxedStrategy<Vec<u8>> {
    let edits = vec(
        (
            any::<prop::sample::Index>(),
            0u8..3,
            prop::sample::select(b"{}[]\":,\\u0-e.\xff\x00 ntf".to_vec()),
        ),
        1..6,
    );
    prop_oneof![
        vec(any::<u8>(), 0..256),
        (base.clone(), style(), edits).prop_map(|(r, s, edits)| {
            let mut b = text(&r, &s).into_bytes();
            for (at, op, byte) in edits {
                let i = at.index(b.len() + 1);
                match op {
                    0 if i < b.len() => b[i] = byte,
                    1 if i < b.len() => {
                        b.remove(i);
                    }
                    _ => b.insert(i, byte),
                }
            }
            b
        }),
        (base, style(), any::<prop::sample::Index>()).prop_map(|(r, s, at)| {
            let b = text(&r, &s).into_bytes();
            b[..at.index(b.len() + 1)].to_vec()
        }),
    ]
    .boxed()
}

// ---- the JSON rewriter --------------------------------------------------------

#[test]
fn rewriter_never_panics_on_hostile_bytes() {
    check("rewriter_hostile_bytes", 256, hostile_bytes(), |b| rewrite_all(&b));
}

#[test]
fn rewriter_keeps_its_invariants_on_any_record() {
    check("rewriter_records", 256, (record(), style()), |(r, s)| {
        rewrite_all(text(&r, &s).as_bytes())
    });
}

#[test]
fn rewriter_keeps_its_invariants_on_deep_and_wide_records() {
    let records = prop_oneof![deep_record(), wide_record()];
    check("rewriter_deep_and_wide", 48, (records, style()), |(r, s)| {
        rewrite_all(text(&r, &s).as_bytes())
    });
}

#[test]
fn masking_is_total() {
    check("masking_total", 256, (record_with_secrets(), style()), |(r, s)| {
        let input = text(&r, &s);
        let names = masked_names();
        for (name, spec) in rewrite_specs().into_iter().filter(|(_, s)| s.mask.is_some()) {
            let case = RewriteCase {
                spec: &spec,
                masked: &names,
            };
            let out = check_rewrite(&case, input.as_bytes()).map_err(|e| format!("spec {name}: {e}"))?;
            if out.is_none() && leaves(input.as_bytes(), &names).is_some() {
                // Only TooLarge may refuse a record serde_json reads.
                let e = spec.apply(input.as_bytes()).unwrap_err();
                if !matches!(e, cxrelay::transform::TransformError::TooLarge(_)) {
                    return Err(format!("spec {name}: refused: {e}"));
                }
            }
        }
        Ok(())
    });
}

#[test]
fn identity_rewrite_round_trips_and_flatten_keeps_every_leaf_once() {
    // `check_rewrite` compares the leaves for exactly these two specs.
    check("identity_and_flatten", 256, (record(), style()), |(r, s)| {
        let input = text(&r, &s);
        for (name, spec) in rewrite_specs()
            .into_iter()
            .filter(|(n, _)| *n == "identity" || *n == "flatten")
        {
            let case = RewriteCase {
                spec: &spec,
                masked: &[],
            };
            let out = check_rewrite(&case, input.as_bytes()).map_err(|e| format!("spec {name}: {e}"))?;
            if out.is_none() && name == "identity" {
                return Err(format!("identity refused a generated record: {input}"));
            }
        }
        Ok(())
    });
}

// ---- webhook envelopes --------------------------------------------------------

fn topic() -> BoxedStrategy<String> {
    prop_oneof![
        "v2\\.detail\\.events\\.conversation\\.[a-z0-9]{0,4}\\.(customer|acd)\\.(start|end)",
        "v2\\.routing\\.queues\\.[a-z0-9*-]{0,6}\\.conversations",
        "v2\\.conversations\\.[a-z0-9]{0,4}\\.messages",
        "v2\\.users\\.[a-z0-9]{1,4}\\.presence",
        "[a-z.*>]{1,12}",
    ]
    .boxed()
}

fn maybe<T: std::fmt::Debug + Clone + 'static>(s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<Option<T>> {
    prop_oneof![1 => Just(None), 3 => s.prop_map(Some)].boxed()
}

/// A notification as Genesys sends it (ids never empty here: see
/// `regression_webhook_empty_ids_give_empty_idempotency_keys`).
fn notification() -> BoxedStrategy<Value> {
    let time = prop_oneof![
        (1_600_000_000_000i64..1_800_000_000_000).prop_map(Value::from),
        Just(Value::from("2024-05-01T14:02:03.120Z")),
        Just(Value::from("2024-05-01T16:02:03+02:00")),
        "[0-9:TZ.-]{0,24}".prop_map(Value::from),
        leaf(),
    ];
    let participants = vec(
        (maybe(time.clone()), maybe(time.clone())).prop_map(|(c, e)| {
            let mut m = Map::new();
            c.map(|c| m.insert("connectedTime".into(), c));
            e.map(|e| m.insert("endTime".into(), e));
            Value::Object(m)
        }),
        0..4,
    );
    let body = (
        maybe(prop_oneof!["[a-z0-9-]{0,8}".prop_map(Value::from), leaf()]),
        maybe(time.clone()),
        maybe(time.clone()),
        maybe(participants),
        vec((key(), value()), 0..3),
    )
        .prop_map(|(conversation, event_time, end, participants, extra)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            conversation.map(|c| m.insert("conversationId".into(), c));
            event_time.map(|t| m.insert("eventTime".into(), t));
            end.map(|t| m.insert("endTime".into(), t));
            participants.map(|p| m.insert("participants".into(), Value::Array(p)));
            Value::Object(m)
        });
    (
        topic(),
        maybe(body),
        maybe("[a-z0-9-]{1,12}"),
        maybe(prop_oneof![
            Just("2024-05-01T14:02:03Z".to_string()),
            "[0-9:TZ.-]{0,24}"
        ]),
    )
        .prop_map(|(topic, body, correlation, timestamp)| {
            let mut m = Map::new();
            m.insert("topicName".into(), Value::from(topic));
            m.insert("version".into(), Value::from("2"));
            body.map(|b| m.insert("eventBody".into(), b));
            correlation.map(|c| m.insert("metadata".into(), serde_json::json!({ "CorrelationId": c })));
            timestamp.map(|t| m.insert("timestamp".into(), Value::from(t)));
            Value::Object(m)
        })
        .boxed()
}

/// An EventBridge envelope around a notification, or the bare notification.
fn pushed_element() -> BoxedStrategy<Value> {
    prop_oneof![
        notification(),
        (notification(), maybe("[a-z0-9-]{1,12}"), maybe("[0-9:TZ.-]{0,24}")).prop_map(|(n, id, time)| {
            let mut m = Map::new();
            m.insert("version".into(), Value::from("0"));
            id.map(|id| m.insert("id".into(), Value::from(id)));
            m.insert(
                "detail-type".into(),
                Value::from("v2.detail.events.conversation.{id}.customer.start"),
            );
            time.map(|t| m.insert("time".into(), Value::from(t)));
            m.insert("detail".into(), n);
            Value::Object(m)
        }),
    ]
    .boxed()
}

/// The `topicName` and `timestamp` values of a generated body.
fn envelope_strings(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![body];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        Value::String(s) if k == "topicName" || k == "timestamp" => out.push(s.clone()),
                        Value::Object(_) if k == "detail" => stack.push(v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn webhook_envelope_parser_never_panics_on_hostile_bytes() {
    check("webhook_hostile_bytes", 256, hostile_bytes(), |b| {
        check_webhook(&b).map(drop)
    });
}

#[test]
fn webhook_envelopes_give_one_event_and_one_key_per_element() {
    let body = prop_oneof![
        pushed_element().prop_map(|e| (e, false)),
        vec(pushed_element(), 0..5).prop_map(|a| (Value::Array(a), true)),
    ];
    check(
        "webhook_envelopes",
        256,
        (body, style()),
        |((body, is_array), mut s)| {
            // Topics and timestamps are written without escapes, which are
            // refused: see `regression_webhook_envelope_with_an_escaped_topic_or_timestamp_is_refused`.
            s.verbatim = envelope_strings(&body);
            // A repeated envelope field is refused ("duplicate field"): fair
            // for an ambiguous envelope.
            s.dup = 0;
            let text = text(&body, &s);
            let n = check_webhook(text.as_bytes())?;
            let want = match &body {
                Value::Array(a) if is_array => a.len(),
                _ => 1,
            };
            match n {
                Some(n) if n != want => Err(format!("{want} elements, {n} events")),
                // Every generated element is an envelope with a topic.
                None if want > 0 => Err(format!("refused a valid body: {text}")),
                _ => Ok(()),
            }
        },
    );
}

#[test]
fn notification_frames_are_read_from_json_alone_with_their_own_topic() {
    check("frame_hostile_bytes", 512, bytes_near(notification()), |b| {
        check_frame(&b).map(drop)
    });
    check("frames", 256, (notification(), style()), |(n, s)| {
        let text = text(&n, &s);
        match check_frame(text.as_bytes())? {
            true => Ok(()),
            // Repeated envelope fields are refused (the reader's rule).
            false if s.dup > 0 => Ok(()),
            false => Err(format!("a notification was not read as a frame: {text}")),
        }
    });
}

// ---- JSON array framing -------------------------------------------------------

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        vec(0usize..4096, 0..12),
        // Every byte on its own.
        Just((1..4096).collect::<Vec<usize>>()),
    ]
}

#[test]
fn json_array_framer_yields_serde_json_elements_whatever_the_chunks() {
    let elements = vec(prop_oneof![4 => record(), 1 => value()], 0..8);
    check("json_array_chunks", 256, (elements, style(), cuts()), |(e, s, cuts)| {
        let data = text(&Value::Array(e.clone()), &s);
        // `check_json_array` compares the elements byte for byte with
        // serde_json's; here, none is missing.
        let framed = check_json_array(data.as_bytes(), &cuts, 1 << 20)?;
        if framed.elements.len() != e.len() || framed.end.is_err() {
            return Err(format!(
                "{} elements framed of {}: {:?}",
                framed.elements.len(),
                e.len(),
                framed.end
            ));
        }
        Ok(())
    });
}

#[test]
fn json_array_framer_never_panics_on_hostile_bytes() {
    let data = prop_oneof![
        hostile_bytes(),
        (vec(record(), 0..4), style(), hostile_bytes()).prop_map(|(e, s, tail)| {
            let mut b = text(&Value::Array(e), &s).into_bytes();
            b.truncate(b.len().saturating_sub(1));
            b.extend_from_slice(&tail);
            b
        }),
    ];
    check(
        "json_array_hostile",
        256,
        (data, cuts(), 1usize..512),
        |(b, cuts, max)| check_json_array(&b, &cuts, max).map(drop),
    );
}

#[test]
fn json_array_framer_respects_the_element_limit() {
    check(
        "json_array_limit",
        256,
        (vec(record(), 1..6), style(), cuts(), 1usize..400),
        |(e, s, cuts, max)| check_json_array(text(&Value::Array(e), &s).as_bytes(), &cuts, max).map(drop),
    );
}

// ---- export parser: NDJSON ----------------------------------------------------

/// NDJSON lines: records with the key and time fields, malformed lines,
/// other JSON, blank lines; `\n` or `\r\n`; the last line with or without
/// its newline.
fn ndjson() -> BoxedStrategy<Vec<u8>> {
    let record_line = (record(), maybe(leaf()), maybe(leaf()), style()).prop_map(|(r, key, time, s)| {
        let Value::Object(mut m) = r else { unreachable!() };
        key.map(|k| m.insert("conversationId".into(), k));
        time.map(|t| m.insert("conversationStart".into(), t));
        // One line: no raw newline in a record.
        let s = Style { ws: 0, ..s };
        text(&Value::Object(m), &s)
    });
    let line = prop_oneof![
        6 => record_line,
        1 => hostile_bytes().prop_map(|b| String::from_utf8_lossy(&b).replace('\n', " ")),
        1 => (value(), style()).prop_map(|(v, s)| text(&v, &Style { ws: 0, ..s })),
        1 => "[ \t\r]{0,3}",
    ];
    (
        record().prop_map(|r| r.to_string()),
        vec((line, any::<bool>()), 0..20),
        any::<bool>(),
    )
        .prop_map(|(first, lines, last_newline)| {
            // The first line is an object, so the format is detected.
            let mut out = first.into_bytes();
            for (l, crlf) in lines {
                out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                out.extend_from_slice(l.as_bytes());
            }
            if last_newline {
                out.push(b'\n');
            }
            out
        })
        .boxed()
}

#[test]
fn ndjson_records_are_the_same_whatever_the_chunks() {
    check(
        "ndjson_chunks",
        96,
        (ndjson(), cuts(), 1usize..8),
        |(data, cuts, batch)| {
            within(Duration::from_secs(60), move || {
                check_ndjson(&data, &cuts, batch, None).map(|run| run.records.len())
            })
            .map(drop)
        },
    );
}

#[test]
fn ndjson_parser_never_panics_and_loses_no_line_on_hostile_bytes() {
    let data = prop_oneof![
        hostile_bytes(),
        (ndjson(), hostile_bytes()).prop_map(|(mut a, b)| {
            a.extend_from_slice(&b);
            a
        }),
        // Container magic followed by junk: the gzip and ZIP readers.
        (
            prop::sample::select(vec![&b"\x1f\x8b"[..], b"PK\x03\x04", b"PK\x05\x06"]),
            vec(any::<u8>(), 0..200)
        )
            .prop_map(|(magic, junk)| [magic, &junk[..]].concat()),
    ];
    let forced = prop_oneof![Just(None), Just(Some(Detected::Ndjson))];
    check(
        "ndjson_hostile",
        96,
        (data, cuts(), 1usize..8, forced),
        |(data, cuts, batch, forced)| {
            within(Duration::from_secs(60), move || {
                check_ndjson(&data, &cuts, batch, forced).map(drop)
            })
        },
    );
}
