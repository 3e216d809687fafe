//! How dead-letter commands print: tables sized to their content for
//! people, JSON for scripts.

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use super::{DlqOutput, Plan};
use crate::store::DeadLetter;

/// Longest error shown in a listing (`dlq show` shows all of it).
const ERROR_CHARS: usize = 100;

/// An RFC 3339 time of `ms` since the epoch.
pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// A table without borders whose columns are as wide as their content
/// (with a header unless `header` is empty).
pub fn plain_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if !header.is_empty() {
        t.set_header(header.to_vec());
    }
    t
}

/// The table's lines without the padding at their ends.
pub fn table_text(t: &Table) -> String {
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or_default();
    if line.chars().count() > max || s.lines().nth(1).is_some() {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn listing(letters: &[DeadLetter]) -> String {
    let mut t = plain_table(&[
        "ID",
        "RECORDED",
        "COMPONENT",
        "LISTENER",
        "SOURCE",
        "ATTEMPTS",
        "TOPIC",
        "ERROR",
    ]);
    for l in letters {
        t.add_row(vec![
            l.id.to_string(),
            format_ms(l.at_ms),
            l.component.clone(),
            l.listener.clone().unwrap_or_else(|| "-".into()),
            or_dash(&l.source).to_string(),
            l.attempts.to_string(),
            or_dash(&l.topic).to_string(),
            first_line(&l.error, ERROR_CHARS),
        ]);
    }
    if let Some(c) = t.column_mut(5) {
        c.set_cell_alignment(CellAlignment::Right);
    }
    let mut s = if letters.is_empty() {
        String::new()
    } else {
        table_text(&t)
    };
    s.push_str(&format!("{} dead letter(s)\n", letters.len()));
    if let Some(first) = letters.first() {
        s.push_str(&format!("(`cxrelay dlq show --id {}` shows one whole)\n", first.id));
    }
    s
}

fn shown(l: &DeadLetter) -> String {
    let mut t = plain_table(&[]);
    let mut row = |k: &str, v: String| {
        t.add_row(vec![k.to_string(), v]);
    };
    row("recorded", format_ms(l.at_ms));
    row("component", l.component.clone());
    row("listener", l.listener.clone().unwrap_or_else(|| "-".into()));
    row("source", or_dash(&l.source).into());
    row("topic", or_dash(&l.topic).into());
    row("event id", or_dash(&l.event_id).into());
    row("key", l.key.clone().unwrap_or_else(|| "-".into()));
    row("event time", l.event_time.map(format_ms).unwrap_or_else(|| "-".into()));
    row("position", l.position.clone().unwrap_or_else(|| "-".into()));
    row("attempts", l.attempts.to_string());
    let replayable = match (l.to_event().is_some(), &l.listener) {
        (true, Some(to)) => format!("yes: `cxrelay dlq replay --id {}` sends it back to `{to}`", l.id),
        (true, None) => format!("yes: `cxrelay dlq replay --id {}` routes it again by topic", l.id),
        (false, _) => "no: it does not hold a whole event (input that never became one)".into(),
    };
    row("replayable", replayable);
    let mut s = format!("dead letter {}\n{}error:\n", l.id, table_text(&t));
    for line in l.error.lines() {
        s.push_str(&format!("  {line}\n"));
    }
    let cut = if l.truncated {
        format!(", cut at {} bytes", crate::store::dead_letters::MAX_RAW_BYTES)
    } else {
        String::new()
    };
    s.push_str(&format!("payload ({} bytes{cut}):\n", l.payload.len()));
    let pretty = serde_json::from_str::<serde_json::Value>(&l.payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| l.payload.clone());
    for line in pretty.lines() {
        s.push_str(&format!("  {line}\n"));
    }
    s
}

fn plan(p: &Plan, verb: &str, by: &str) -> String {
    let mut s = format!("dry run: would {verb} {} dead letter(s)\n", p.total());
    if !p.by_target.is_empty() {
        let mut t = plain_table(&[by, "DEAD LETTERS"]);
        for (target, n) in &p.by_target {
            t.add_row(vec![target.clone(), n.to_string()]);
        }
        s.push_str(&table_text(&t));
    }
    if !p.refused.is_empty() {
        s.push_str(&format!("{} would stay:\n", p.refused.len()));
        for (id, why) in &p.refused {
            s.push_str(&format!("  {id}: {why}\n"));
        }
    }
    s.push_str("nothing was changed\n");
    s
}

/// Renders a command's output, for people or (`as_json`) for scripts.
pub fn render(out: &DlqOutput, as_json: bool) -> String {
    let text = match out {
        DlqOutput::Listed(letters) if as_json => serde_json::to_string_pretty(letters).unwrap_or_default(),
        DlqOutput::Listed(letters) => return listing(letters),
        DlqOutput::Shown(l) if as_json => serde_json::to_string_pretty(l).unwrap_or_default(),
        DlqOutput::Shown(l) => return shown(l),
        DlqOutput::Replayed(r) if as_json => json!({"replayed": r.replayed, "refused": r.refused}).to_string(),
        DlqOutput::Replayed(r) => {
            let mut s = format!("{} dead letter(s) sent back\n", r.replayed);
            for (id, why) in &r.refused {
                s.push_str(&format!("  {id}: {why}\n"));
            }
            return s;
        }
        DlqOutput::Purged(n) if as_json => json!({ "purged": n }).to_string(),
        DlqOutput::Purged(n) => return format!("{n} dead letter(s) purged\n"),
        DlqOutput::WouldReplay(p) if as_json => json!({"dry_run": true, "would_replay": p}).to_string(),
        DlqOutput::WouldReplay(p) => return plan(p, "send back", "LISTENER"),
        DlqOutput::WouldPurge(p) if as_json => json!({"dry_run": true, "would_purge": p}).to_string(),
        DlqOutput::WouldPurge(p) => return plan(p, "purge", "COMPONENT"),
    };
    format!("{text}\n")
}
