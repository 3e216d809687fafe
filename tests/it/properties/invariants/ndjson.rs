//! Invariants of the export parser (NDJSON) (a part of `invariants.rs`).

use std::sync::Arc;

use bytes::Bytes;
use cxrelay::sources::export_download::parser::{spawn, ExportRecord, Parsed, ParserSettings};
use cxrelay::sources::export_download::Detected;
use cxrelay::store::DeadLetter;
use tokio::sync::mpsc;

use super::Checked;

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
