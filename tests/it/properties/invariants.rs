//! The invariants of cxrelay's hostile-input parsers, as plain functions
//! answering `Err(what broke)`: the property tests (`properties.rs`) feed
//! them generated inputs, and the fuzz targets (`fuzz/fuzz_targets/`,
//! which include this file by path) feed them what libFuzzer finds, so the
//! two check exactly the same things. No proptest in here, only the crate's
//! public API, serde_json, bytes, tokio and actix-ws (all dependencies the
//! fuzz crate has too).

// Each fuzz target uses only its part of this file.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use cxrelay::config::{load_str, ConfigError};
use cxrelay::sources::export_download::json_array::{ArrayFramer, FramingError};
use cxrelay::sources::export_download::parser::{spawn, ExportRecord, Parsed, ParserSettings};
use cxrelay::sources::export_download::Detected;
use cxrelay::sources::notifications::reassembly::{Assembled, Reassembly};
use cxrelay::sources::webhook::{parse_body, parse_open_messaging, EnvelopeError, Pushed};
use cxrelay::store::DeadLetter;
use cxrelay::transform::{MaskMode, Masker, TransformError, TransformSpec, REDACTED};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

/// A broken invariant, described.
pub type Checked<T = ()> = Result<T, String>;

// ---- known bugs ----------------------------------------------------------------

/// Broken invariants already reproduced by a `regression_*` test in
/// `properties.rs`: (what the message says, that test). The properties and
/// the fuzz targets let these through, so they keep looking for new bugs
/// rather than stopping on a known one every run; with
/// `CXRELAY_STRICT_INVARIANTS=1` they fail on them too. Remove an entry
/// when its bug is fixed.
pub const KNOWN_BUGS: &[(&str, &str)] = &[];

/// `result`, with the known bugs let through (unless strict).
pub fn verdict<T>(result: Checked<T>) -> Checked {
    let Err(broken) = result else {
        return Ok(());
    };
    let known = KNOWN_BUGS.iter().any(|(says, _)| broken.contains(says));
    if known && std::env::var_os("CXRELAY_STRICT_INVARIANTS").is_none() {
        return Ok(());
    }
    Err(broken)
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

// ---- JSON rewriter ----------------------------------------------------------

/// `src/transform/rewrite.rs`: a record's output may be at most
/// The rewriter's own bounds (the checks use the real constants).
pub use cxrelay::transform::{GROWTH_SLACK, MAX_GROWTH};

/// The largest output a rewrite of `input_len` bytes may produce.
pub fn output_bound(input_len: usize) -> usize {
    input_len.saturating_mul(MAX_GROWTH) + GROWTH_SLACK
}

/// A transform to check, and what it is expected to preserve.
pub struct RewriteCase<'a> {
    /// The spec applied.
    pub spec: &'a TransformSpec,
    /// The field names its masker masks (the `Masker` does not tell).
    pub masked: &'a [String],
}

/// One leaf of a JSON document: a scalar, or an empty container.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    EmptyObject,
    EmptyArray,
}

/// A leaf, where it is, and whether a masked field holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// Keys from the last array (or the top) joined by `.`, then `[i]` for
    /// each array: flattening `{"a":{"b":[{"c":{"d":1}}]}}` keeps this path
    /// (`a.b[0]c.d`) for the leaf `1`.
    pub path: String,
    pub leaf: Leaf,
    pub masked: bool,
}

/// The leaves of `json` in document order, duplicate keys kept (a `Value`
/// would keep only the last). `None` when serde_json would not parse it
/// into a `Value` (syntax, depth > 127, out-of-range numbers, lone
/// surrogates) or when it is not an object.
pub fn leaves(json: &[u8], masked: &[String]) -> Option<Vec<Placed>> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(json);
    let top = Node {
        out: &mut out,
        names: masked,
        path: String::new(),
        fresh: true,
        ancestor_masked: false,
        named_masked: false,
        top: true,
    };
    top.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(out)
}

struct Node<'a> {
    out: &'a mut Vec<Placed>,
    names: &'a [String],
    path: String,
    /// No key since the top or the last array: the next key is not
    /// preceded by a dot.
    fresh: bool,
    ancestor_masked: bool,
    /// The member holding this value has a masked name (a null stays).
    named_masked: bool,
    top: bool,
}

impl Node<'_> {
    fn push(self, leaf: Leaf) {
        let masked = self.ancestor_masked || (self.named_masked && leaf != Leaf::Null);
        self.out.push(Placed {
            path: self.path,
            leaf,
            masked,
        });
    }

    fn scalar<E: de::Error>(self, leaf: Leaf) -> Result<(), E> {
        if self.top {
            return Err(E::custom("not an object"));
        }
        self.push(leaf);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(Leaf::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(Leaf::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(Leaf::Num(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(Leaf::Num(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let n = serde_json::Number::from_f64(v).ok_or_else(|| E::custom("not finite"))?;
        self.scalar(Leaf::Num(n))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(Leaf::Str(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.top {
            return Err(de::Error::custom("not an object"));
        }
        let masked = self.ancestor_masked || self.named_masked;
        let mut i = 0;
        loop {
            let child = Node {
                out: &mut *self.out,
                names: self.names,
                path: format!("{}[{i}]", self.path),
                fresh: true,
                ancestor_masked: masked,
                named_masked: false,
                top: false,
            };
            if seq.next_element_seed(child)?.is_none() {
                break;
            }
            i += 1;
        }
        if i == 0 {
            self.push(Leaf::EmptyArray);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let masked = self.ancestor_masked || self.named_masked;
        let mut members = 0;
        while let Some(key) = map.next_key::<String>()? {
            members += 1;
            let path = if self.fresh {
                format!("{}{key}", self.path)
            } else {
                format!("{}.{key}", self.path)
            };
            map.next_value_seed(Node {
                out: &mut *self.out,
                names: self.names,
                path,
                fresh: false,
                ancestor_masked: masked,
                named_masked: self.names.contains(&key),
                top: false,
            })?;
        }
        if members == 0 && !self.top {
            self.push(Leaf::EmptyObject);
        }
        Ok(())
    }
}

/// Whether `s` is what masking writes.
fn is_mask_token(s: &str) -> bool {
    s == REDACTED || (s.len() == 7 + 64 && s.starts_with("sha256:") && s[7..].bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `s` is a time as timestamp normalisation writes it.
fn is_normal_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24 && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z'
}

/// Checks one rewrite of `input`: no panic (the caller sees it), output
/// bounded, output valid JSON (and a `Value` whenever the input is one),
/// masking total, and for the identity and flatten-only specs the exact
/// leaves preserved. Answers the output, if the rewrite succeeded.
pub fn check_rewrite(case: &RewriteCase<'_>, input: &[u8]) -> Checked<Option<Vec<u8>>> {
    let spec = case.spec;
    let result = spec.apply(input);
    let reference = leaves(input, case.masked);
    let out = match result {
        Ok(out) => out,
        Err(TransformError::TooLarge(m)) => {
            ensure!(!m.is_empty(), "TooLarge without a message");
            return Ok(None);
        }
        Err(e) => {
            // Refused as malformed: serde_json must refuse it too, or it is
            // a document the rewriter cannot take that the rest of the
            // service would (only nesting over the rewriter's 128 levels).
            ensure!(
                reference.is_none(),
                "refused ({e}) a record serde_json reads as an object: {}",
                String::from_utf8_lossy(&input[..input.len().min(300)])
            );
            return Ok(None);
        }
    };
    ensure!(
        out.len() <= output_bound(input.len()),
        "output of {} bytes for {} bytes of input exceeds the bound of {}",
        out.len(),
        input.len(),
        output_bound(input.len())
    );
    ensure!(
        serde_json::from_slice::<IgnoredAny>(&out).is_ok(),
        "output is not JSON: {}",
        String::from_utf8_lossy(&out[..out.len().min(300)])
    );
    let Some(reference) = reference else {
        // The input was JSON serde_json would not make a Value of (a
        // number out of f64's range, a lone surrogate escape, nesting of
        // 128 levels): the rewriter copies those as they are.
        return Ok(Some(out));
    };
    let Some(got) = leaves(&out, &[]) else {
        return Err(format!(
            "the input is a JSON object but the output is not one serde_json reads: {}",
            String::from_utf8_lossy(&out[..out.len().min(300)])
        ));
    };
    if spec.mask.is_some() {
        check_masked(spec, &reference, &got)?;
    }
    // Where each leaf is and what it is; whether it was masked is the
    // input's business.
    let placed = |l: &[Placed]| l.iter().map(|p| (p.path.clone(), p.leaf.clone())).collect::<Vec<_>>();
    let (reference, got) = (placed(&reference), placed(&got));
    if spec.is_identity() {
        ensure!(
            reference == got,
            "identity spec changed the leaves:\n in:  {reference:?}\n out: {got:?}"
        );
        let a: serde_json::Value = serde_json::from_slice(input).map_err(|e| e.to_string())?;
        let b: serde_json::Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
        ensure!(a == b, "identity round trip differs:\n in:  {a}\n out: {b}");
    }
    let flatten_only = spec.flatten
        && !spec.timestamps
        && spec.mask.is_none()
        && spec.rename.is_empty()
        && spec.drop.is_empty()
        && spec.select.is_empty();
    if flatten_only {
        ensure!(
            reference == got,
            "flatten lost, added or moved leaves:\n in:  {reference:?}\n out: {got:?}"
        );
    }
    Ok(Some(out))
}

/// Every value in the output came from an unmasked place of the input, or
/// is a mask token (or a normalised time): no masked value survives.
fn check_masked(spec: &TransformSpec, input: &[Placed], output: &[Placed]) -> Checked {
    let clear: Vec<&Leaf> = input.iter().filter(|p| !p.masked).map(|p| &p.leaf).collect();
    for p in output {
        let fine = match &p.leaf {
            Leaf::Null | Leaf::Bool(_) | Leaf::EmptyObject | Leaf::EmptyArray => true,
            Leaf::Str(s) => is_mask_token(s) || (spec.timestamps && is_normal_time(s)) || clear.contains(&&p.leaf),
            Leaf::Num(_) => clear.contains(&&p.leaf),
        };
        if !fine {
            let source = input.iter().find(|i| i.leaf == p.leaf);
            return Err(format!(
                "masked value leaked: {:?} at `{}` in the output (input: {source:?})",
                p.leaf, p.path
            ));
        }
    }
    Ok(())
}

/// Names the masking specs mask.
pub const MASKED: &[&str] = &["ani", "dnis", "attributes", "addressFrom"];

/// [`MASKED`], owned.
pub fn masked_names() -> Vec<String> {
    MASKED.iter().map(|s| s.to_string()).collect()
}

/// The specs every record is rewritten under: masking (hash and redact),
/// timestamps, flattening, the top-level key rules, and neither.
pub fn rewrite_specs() -> Vec<(&'static str, TransformSpec)> {
    let names = masked_names();
    let hash = Masker::new(MaskMode::Hash, &names, Some(b"property-key"));
    let redact = Masker::new(MaskMode::Redact, &names, None);
    vec![
        (
            "flatten+hash+timestamps",
            TransformSpec {
                flatten: true,
                timestamps: true,
                mask: Some(hash.clone()),
                ..Default::default()
            },
        ),
        (
            "redact+timestamps",
            TransformSpec {
                timestamps: true,
                mask: Some(redact.clone()),
                ..Default::default()
            },
        ),
        (
            "flatten+redact+rules",
            TransformSpec {
                flatten: true,
                mask: Some(redact),
                rename: BTreeMap::from([("a".into(), "renamed".into()), ("id".into(), "a.b".into())]),
                drop: vec!["dnis".into(), "renamed".into()],
                select: vec![],
                ..Default::default()
            },
        ),
        (
            "select",
            TransformSpec {
                mask: Some(hash),
                select: vec!["a".into(), "ani".into(), "eventTime".into()],
                ..Default::default()
            },
        ),
        ("identity", TransformSpec::default()),
        (
            "flatten",
            TransformSpec {
                flatten: true,
                ..Default::default()
            },
        ),
    ]
}

/// Checks the rewrite of `input` under every spec of [`rewrite_specs`].
pub fn rewrite_all(input: &[u8]) -> Checked {
    let names = masked_names();
    for (name, spec) in rewrite_specs() {
        let case = RewriteCase {
            spec: &spec,
            masked: &names,
        };
        check_rewrite(&case, input).map_err(|e| format!("spec {name}: {e}"))?;
    }
    Ok(())
}

// ---- webhook envelopes ------------------------------------------------------

/// Both webhook body parsers on `body` (`parse_body`, and
/// `parse_open_messaging`, whose topics also have three non-empty
/// segments): on success one event and one key slot per element, keys
/// non-empty, payloads JSON, topics non-empty; on failure a reason code.
/// Answers what `parse_body` made of it.
pub fn check_webhook(body: &[u8]) -> Checked<Option<usize>> {
    if let Some(n) = check_parsed(body, parse_open_messaging(body, "fuzz"))? {
        for e in &parse_open_messaging(body, "fuzz").map_err(|e| e.to_string())?.events {
            let segments: Vec<&str> = e.topic.split('.').collect();
            ensure!(
                segments.len() == 3 && segments.iter().all(|s| !s.is_empty()),
                "Open Messaging topic `{}` is not three segments",
                e.topic
            );
        }
        ensure!(n > 0, "no elements");
    }
    check_parsed(body, parse_body(body, "fuzz"))
}

fn check_parsed(body: &[u8], parsed: Result<Pushed, EnvelopeError>) -> Checked<Option<usize>> {
    let pushed = match parsed {
        Ok(p) => p,
        Err(e) => {
            ensure!(
                !e.reason().is_empty() && !e.to_string().is_empty(),
                "error without reason"
            );
            return Ok(None);
        }
    };
    let text = std::str::from_utf8(body).map_err(|_| "accepted a body that is not UTF-8".to_string())?;
    let elements = if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<&RawValue>>(text)
            .map_err(|e| format!("accepted an array serde_json refuses: {e}"))?
            .len()
    } else {
        1
    };
    ensure!(
        pushed.events.len() == elements && pushed.keys.len() == elements,
        "{} elements gave {} events and {} keys",
        elements,
        pushed.events.len(),
        pushed.keys.len()
    );
    for (e, k) in pushed.events.iter().zip(&pushed.keys) {
        ensure!(!e.topic.is_empty(), "event without a topic");
        ensure!(!e.id.is_empty(), "event without an id");
        ensure!(
            serde_json::from_slice::<IgnoredAny>(&e.payload).is_ok(),
            "event payload is not JSON"
        );
        if let Some(k) = k {
            ensure!(
                !k.is_empty(),
                "empty idempotency key (every other event with an empty key would be dropped as its duplicate) for element {}",
                String::from_utf8_lossy(&e.payload[..e.payload.len().min(300)])
            );
        }
    }
    Ok(Some(elements))
}

// ---- JSON array framing -----------------------------------------------------

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

// ---- export parser (NDJSON) -------------------------------------------------

/// Everything a parser run handed back.
#[derive(Debug)]
pub struct ParseRun {
    pub records: Vec<ExportRecord>,
    pub dead_letters: Vec<DeadLetter>,
    /// Per batch: records + dead letters, `next_index`, `resume_at`.
    pub batches: Vec<(usize, u64, Option<u64>)>,
    pub end: Parsed,
}

/// Parser settings as the export source makes them, for a stream from the
/// start of a file.
pub fn parser_settings(batch_records: usize, forced: Option<Detected>) -> ParserSettings {
    ParserSettings {
        source: Arc::from("fuzz"),
        key_field: "conversationId".into(),
        time_field: "conversationStart".into(),
        batch_records: batch_records.max(1),
        start_index: 0,
        start_offset: 0,
        skip_before: 0,
        forced,
        mid_file: false,
        containers: true,
    }
}

/// Runs the parser thread on `data` cut at `cuts` and collects what it
/// hands back. The chunks are all queued before it starts (the channel
/// holds them), so no feeder thread is needed.
pub fn run_parser(settings: ParserSettings, data: &[u8], cuts: &[usize]) -> ParseRun {
    let mut points: Vec<usize> = cuts.iter().copied().filter(|&c| c > 0 && c < data.len()).collect();
    points.sort_unstable();
    points.dedup();
    points.push(data.len());
    let (ctx, crx) = mpsc::channel(points.len() + 1);
    let mut from = 0;
    for to in points {
        if to > from {
            ctx.try_send(Bytes::copy_from_slice(&data[from..to]))
                .expect("the channel holds every chunk");
        }
        from = to;
    }
    drop(ctx);
    let (otx, mut orx) = mpsc::channel(2);
    let thread = spawn(settings, crx, otx).expect("parser thread starts");
    let mut run = ParseRun {
        records: Vec::new(),
        dead_letters: Vec::new(),
        batches: Vec::new(),
        end: Parsed::Failed("the parser ended without a word".into()),
    };
    while let Some(p) = orx.blocking_recv() {
        match p {
            Parsed::Batch(mut b) => {
                run.batches
                    .push((b.records.len() + b.dead_letters.len(), b.next_index, b.resume_at));
                run.records.append(&mut b.records);
                run.dead_letters.append(&mut b.dead_letters);
            }
            end => run.end = end,
        }
    }
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
    run
}

/// NDJSON's lines as the parser splits them, blank ones left out (a
/// record per line that is not blank once ASCII whitespace is trimmed).
pub fn ndjson_lines(data: &[u8]) -> Vec<(usize, usize)> {
    let mut lines = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = memchr_nl(&data[start..]).map_or(data.len(), |i| start + i + 1);
        if data[start..end].iter().any(|b| !b.is_ascii_whitespace()) {
            lines.push((start, end));
        }
        start = end;
    }
    lines
}

fn memchr_nl(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(0, |i| i + 1);
    let start = b[..end].iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(end);
    &b[start..end]
}

/// Sorted record numbers of a run: records' indexes and those dead letters
/// name in their position (`record N ...`).
fn numbers(run: &ParseRun) -> Checked<Vec<u64>> {
    let mut all: Vec<u64> = run.records.iter().map(|r| r.index).collect();
    for d in &run.dead_letters {
        let pos = d.position.as_deref().ok_or("dead letter without a position")?;
        let n = pos
            .strip_prefix("record ")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("dead letter position without a record number: {pos}"))?;
        all.push(n);
    }
    all.sort_unstable();
    Ok(all)
}

/// The NDJSON parser on `data` cut at `cuts` (format forced, or sniffed
/// when `forced` is `None`): no panic, it ends, every non-blank line is a
/// record or a dead letter (numbered once each, in order), payloads are the
/// trimmed lines, batches are bounded and resume points lose and repeat
/// nothing, and the result does not depend on the cuts.
pub fn check_ndjson(data: &[u8], cuts: &[usize], batch_records: usize, forced: Option<Detected>) -> Checked<ParseRun> {
    let run = run_parser(parser_settings(batch_records, forced), data, cuts);
    let detected = match &run.end {
        Parsed::Finished { detected, .. } => *detected,
        Parsed::Failed(m) => {
            ensure!(!m.is_empty(), "failure without a message");
            // Only a stream that is not NDJSON may fail here.
            ensure!(
                forced.is_none() && !trim_ascii(data).starts_with(b"{"),
                "NDJSON failed: {m}"
            );
            return Ok(run);
        }
        Parsed::Batch(_) => unreachable!("batches are collected"),
    };
    if detected != Some(Detected::Ndjson) {
        return Ok(run);
    }
    let lines = ndjson_lines(data);
    let Parsed::Finished { records, .. } = run.end else {
        unreachable!()
    };
    ensure!(
        records == lines.len() as u64,
        "{} non-blank lines, the parser counted {records}",
        lines.len()
    );
    let numbers = numbers(&run)?;
    ensure!(
        numbers == (0..lines.len() as u64).collect::<Vec<_>>(),
        "{} non-blank lines, records and dead letters numbered {numbers:?}",
        lines.len()
    );
    for r in &run.records {
        let (a, b) = lines[r.index as usize];
        ensure!(
            r.payload[..] == *trim_ascii(&data[a..b]),
            "record {} is not its line",
            r.index
        );
    }
    let batch_records = batch_records.max(1);
    let mut last_resume = 0;
    for &(n, next_index, resume_at) in &run.batches {
        ensure!(n >= 1 && n <= batch_records, "a batch of {n} (limit {batch_records})");
        let resume_at = resume_at.ok_or("a plain NDJSON batch without a resume point")? as usize;
        ensure!(
            resume_at >= last_resume && resume_at <= data.len(),
            "resume point {resume_at} out of order"
        );
        // Resuming by Range at `resume_at` with `next_index` neither skips
        // nor repeats a line.
        let before = lines.iter().filter(|(_, end)| *end <= resume_at).count() as u64;
        ensure!(
            before == next_index,
            "a batch resumes at byte {resume_at}, after {before} lines, but says the next record is {next_index}"
        );
        last_resume = resume_at;
    }
    let whole = run_parser(parser_settings(batch_records, forced), data, &[]);
    let key = |r: &ExportRecord| (r.index, r.key.clone(), r.time, r.payload.clone());
    let letter = |d: &DeadLetter| (d.error.clone(), d.position.clone(), d.payload.clone());
    ensure!(
        run.records.iter().map(key).eq(whole.records.iter().map(key))
            && run
                .dead_letters
                .iter()
                .map(letter)
                .eq(whole.dead_letters.iter().map(letter)),
        "chunking changed the records or dead letters"
    );
    Ok(run)
}

// ---- notification frame reassembly -----------------------------------------

/// Bytes of an oversized message kept for its dead letter
/// (`src/sources/notifications/reassembly.rs`, `PREFIX`).
pub const REASSEMBLY_PREFIX: usize = 64 * 1024;

/// A continuation frame.
#[derive(Debug, Clone)]
pub enum Piece {
    FirstText(Vec<u8>),
    FirstBinary(Vec<u8>),
    Continue(Vec<u8>),
    Last(Vec<u8>),
}

impl Piece {
    fn item(&self) -> actix_ws::Item {
        use actix_ws::Item;
        match self {
            Piece::FirstText(b) => Item::FirstText(Bytes::copy_from_slice(b)),
            Piece::FirstBinary(b) => Item::FirstBinary(Bytes::copy_from_slice(b)),
            Piece::Continue(b) => Item::Continue(Bytes::copy_from_slice(b)),
            Piece::Last(b) => Item::Last(Bytes::copy_from_slice(b)),
        }
    }
}

/// A reference reassembler: holds everything, and says what the real one
/// should answer.
struct Model {
    limit: usize,
    held: Option<(Vec<u8>, bool)>,
}

impl Model {
    /// What is kept of `data`: all of it within the limit, else a prefix.
    fn kept(&self, data: &[u8]) -> Vec<u8> {
        if data.len() <= self.limit {
            data.to_vec()
        } else {
            data[..data.len().min(REASSEMBLY_PREFIX)].to_vec()
        }
    }

    fn push(&mut self, p: &Piece) -> Assembled {
        let b = |v: Vec<u8>| Bytes::from(v);
        match p {
            Piece::FirstText(d) | Piece::FirstBinary(d) => {
                let was = self.held.take().map(|(h, _)| self.kept(&h));
                self.held = Some((d.clone(), matches!(p, Piece::FirstBinary(_))));
                match was {
                    Some(h) => Assembled::Broken(b(h)),
                    None => Assembled::Pending,
                }
            }
            Piece::Continue(d) | Piece::Last(d) => match self.held.take() {
                None => Assembled::Broken(b(d.clone())),
                Some((mut h, binary)) => {
                    h.extend_from_slice(d);
                    if matches!(p, Piece::Continue(_)) {
                        self.held = Some((h, binary));
                        Assembled::Pending
                    } else if h.len() > self.limit {
                        let total = h.len();
                        Assembled::Oversized(b(self.kept(&h)), total)
                    } else {
                        Assembled::Complete(b(h), binary)
                    }
                }
            },
        }
    }
}

/// Feeds `pieces` to a reassembler of `limit` bytes: every answer is the
/// reference's, and nothing handed back (what it held) is larger than the
/// limit, or the dead-letter prefix for a message over it.
pub fn check_reassembly(limit: usize, pieces: &[Piece]) -> Checked<Vec<Assembled>> {
    let mut real = Reassembly::new(limit);
    let mut model = Model { limit, held: None };
    let mut answers = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        let got = real.push(p.item());
        let want = model.push(p);
        let held = match &got {
            Assembled::Complete(b, _) => Some(b.len()),
            Assembled::Oversized(b, _) => Some(b.len()),
            // A piece without a start is answered as it came; what was
            // held is bounded.
            Assembled::Broken(b) if matches!(p, Piece::FirstText(_) | Piece::FirstBinary(_)) => Some(b.len()),
            _ => None,
        };
        if let Some(n) = held {
            ensure!(
                n <= limit.max(REASSEMBLY_PREFIX),
                "piece {i}: held {n} bytes with a limit of {limit}"
            );
        }
        if let Assembled::Complete(b, _) = &got {
            ensure!(
                b.len() <= limit,
                "piece {i}: a complete message of {} bytes over the limit {limit}",
                b.len()
            );
        }
        ensure!(
            got == want,
            "piece {i} ({}): got {}, want {}",
            describe_piece(p),
            describe(&got),
            describe(&want)
        );
        ensure!(
            real.is_active() == model.held.is_some(),
            "piece {i}: is_active is wrong"
        );
        answers.push(got);
    }
    Ok(answers)
}

fn describe_piece(p: &Piece) -> String {
    match p {
        Piece::FirstText(b) => format!("FirstText({} bytes)", b.len()),
        Piece::FirstBinary(b) => format!("FirstBinary({} bytes)", b.len()),
        Piece::Continue(b) => format!("Continue({} bytes)", b.len()),
        Piece::Last(b) => format!("Last({} bytes)", b.len()),
    }
}

fn describe(a: &Assembled) -> String {
    match a {
        Assembled::Pending => "Pending".into(),
        Assembled::Complete(b, bin) => format!("Complete({} bytes, binary {bin})", b.len()),
        Assembled::Oversized(b, total) => format!("Oversized({} bytes kept of {total})", b.len()),
        Assembled::Broken(b) => format!("Broken({} bytes)", b.len()),
    }
}

// ---- config loader ----------------------------------------------------------

/// `load_str` on `text`: no panic; a refusal lists at least one problem,
/// each with a message, a line for every problem naming a key, and every
/// line and column inside the file.
/// Answers whether the config loaded.
pub fn check_config(text: &str) -> Checked<bool> {
    let err = match load_str(text, "fuzz.toml") {
        Ok(_) => return Ok(true),
        Err(e) => e,
    };
    ensure!(!err.to_string().trim().is_empty(), "an error that renders as nothing");
    let ConfigError::Invalid { file, problems } = err else {
        return Err(format!("load_str answered a read error: {err}"));
    };
    ensure!(file == "fuzz.toml", "problems reported against {file}");
    ensure!(!problems.is_empty(), "refused with no problem listed");
    let lines: Vec<&str> = text.split('\n').collect();
    for p in &problems {
        ensure!(!p.message.trim().is_empty(), "a problem without a message: {p:?}");
        // (A key may be empty: TOML allows `"" = 1`.)
        if p.key.is_some() {
            ensure!(p.line.is_some(), "a keyed problem without a line: {p:?}");
        }
        if let Some(line) = p.line {
            ensure!(
                line >= 1 && line <= lines.len(),
                "line {line} of a file of {} lines: {p:?}",
                lines.len()
            );
            if let Some(col) = p.col {
                ensure!(
                    col >= 1 && col <= lines[line - 1].len() + 1,
                    "column {col} of a line of {} bytes: {p:?}",
                    lines[line - 1].len()
                );
            }
        }
    }
    Ok(false)
}

/// The shipped config, the base of the config mutations.
pub const SHIPPED_CONFIG: &str = include_str!("../../../config.toml");

/// A mutation of a config file, by line.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Deletes line `n` (modulo the line count).
    Delete(usize),
    /// Writes line `n` twice.
    Duplicate(usize),
    /// Replaces the value of the `n`th `key = value` line.
    SetValue(usize, String),
    /// Inserts a line before line `n`.
    Insert(usize, String),
    /// Swaps two lines.
    Swap(usize, usize),
}

/// Applies `mutations` to `base`, in order.
pub fn mutate(base: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for m in mutations {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match m {
            Mutation::Delete(i) => {
                lines.remove(i % n);
            }
            Mutation::Duplicate(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Mutation::SetValue(i, value) => {
                let assignments: Vec<usize> = (0..n).filter(|&j| lines[j].contains(" = ")).collect();
                if let Some(&j) = assignments.get(i % assignments.len().max(1)) {
                    let key = lines[j].split(" = ").next().unwrap_or_default().to_string();
                    lines[j] = format!("{key} = {value}");
                }
            }
            Mutation::Insert(i, line) => lines.insert(i % (n + 1), line.clone()),
            Mutation::Swap(a, b) => lines.swap(a % n, b % n),
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}
