//! `partition` templates: where under the root directory an event's file
//! goes, from its listener, source, topic and time.
//!
//! A template is a relative path whose segments mix literal text and
//! placeholders. Values come from events, so each is sanitised into one
//! harmless path segment: no separator, no `..`, no hidden name, bounded
//! length. Literal text is checked once, when the config is loaded.

use cxrelay_actors::Event;

/// The longest a placeholder's value may be, in bytes, once sanitised
/// (well under the 255-byte limit of a file name).
const MAX_VALUE_BYTES: usize = 100;

/// A placeholder of a partition template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Listener,
    Source,
    Topic,
    Date,
    Hour,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "listener" => Field::Listener,
            "source" => Field::Source,
            "topic" => Field::Topic,
            "date" => Field::Date,
            "hour" => Field::Hour,
            _ => return None,
        })
    }
}

/// A piece of one path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Field(Field),
}

/// A parsed `partition` template, e.g. `{topic}/{date}/{hour}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTemplate {
    segments: Vec<Vec<Piece>>,
}

impl PartitionTemplate {
    /// Parses and checks a template; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty (leave the key out to write into `path` directly)".into());
        }
        if text.starts_with('/') {
            return Err("must be relative to `path` (it starts with `/`)".into());
        }
        let mut segments = Vec::new();
        for segment in text.split('/') {
            if segment.is_empty() {
                return Err(format!("`{text}` has an empty path segment"));
            }
            if segment == "." || segment == ".." {
                return Err(format!("`{segment}` would leave the partition's directory"));
            }
            segments.push(parse_segment(segment)?);
        }
        Ok(PartitionTemplate { segments })
    }

    /// The directory, relative to the root, that `ev` belongs in (segments
    /// joined with `/`).
    pub fn render(&self, ev: &Event, listener: &str) -> String {
        let time = ev.event_time.unwrap_or(ev.received_at);
        // The date and hour are computed once per event, and only if used.
        let mut civil: Option<(String, String)> = None;
        let mut out = String::new();
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            let start = out.len();
            for piece in segment {
                match piece {
                    Piece::Literal(s) => out.push_str(s),
                    Piece::Field(Field::Listener) => push_sanitised(&mut out, listener),
                    Piece::Field(Field::Source) => push_sanitised(&mut out, &ev.source),
                    Piece::Field(Field::Topic) => push_sanitised(&mut out, &ev.topic),
                    Piece::Field(Field::Date) => out.push_str(&civil.get_or_insert_with(|| utc_date_hour(time)).0),
                    Piece::Field(Field::Hour) => out.push_str(&civil.get_or_insert_with(|| utc_date_hour(time)).1),
                }
            }
            // Belt and braces: a rendered segment is never a way out.
            let rendered = &out[start..];
            if rendered.is_empty() || rendered == "." || rendered == ".." {
                out.truncate(start);
                out.push('_');
            }
        }
        out
    }
}

fn parse_segment(segment: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = segment;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            Some(i) if rest.as_bytes()[i] == b'}' => {
                return Err(format!("`}}` without `{{` in `{segment}`"));
            }
            Some(i) => {
                if i > 0 {
                    pieces.push(literal(&rest[..i])?);
                }
                let after = &rest[i + 1..];
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("`{{` without `}}` in `{segment}`"))?;
                let name = &after[..end];
                let field = Field::parse(name).ok_or_else(|| {
                    format!("unknown placeholder `{{{name}}}` (known: {{listener}}, {{source}}, {{topic}}, {{date}}, {{hour}})")
                })?;
                pieces.push(Piece::Field(field));
                rest = &after[end + 1..];
            }
            None => {
                pieces.push(literal(rest)?);
                rest = "";
            }
        }
    }
    Ok(pieces)
}

fn literal(text: &str) -> Result<Piece, String> {
    if text.len() > MAX_VALUE_BYTES {
        return Err(format!("`{text}` is longer than {MAX_VALUE_BYTES} bytes"));
    }
    if text.chars().any(|c| c.is_control() || c == '\\') {
        return Err(format!("`{}` has a control character or `\\`", text.escape_debug()));
    }
    Ok(Piece::Literal(text.to_string()))
}

/// Appends `value` as part of one path segment: separators and control
/// characters become `_`, a leading `.` becomes `_` (so neither `.` nor
/// `..` nor a hidden name can come out), empty becomes `_`, and it is cut
/// to `MAX_VALUE_BYTES` on a character boundary.
pub fn push_sanitised(out: &mut String, value: &str) {
    let start = out.len();
    for (i, c) in value.chars().enumerate() {
        if out.len() - start + c.len_utf8() > MAX_VALUE_BYTES {
            break;
        }
        let bad = c == '/' || c == '\\' || c.is_control() || (i == 0 && c == '.');
        out.push(if bad { '_' } else { c });
    }
    if out.len() == start {
        out.push('_');
    }
}

/// `value` as one harmless path segment (see [`push_sanitised`]).
pub fn sanitised(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    push_sanitised(&mut s, value);
    s
}

/// `(YYYY-MM-DD, HH)` in UTC for a time in milliseconds since the epoch.
fn utc_date_hour(ms: i64) -> (String, String) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3600;
    let (y, m, d) = civil_from_days(days);
    (format!("{y:04}-{m:02}-{d:02}"), format!("{hour:02}"))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`): total over every `i64` a time can give,
/// where a date library would refuse years past 9999.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(source: &str, topic: &str, event_time: Option<i64>, received_at: i64) -> Event {
        Event::builder(source, topic)
            .id("1")
            .event_time(event_time)
            .received_at(received_at)
            .build()
    }

    #[test]
    fn renders_every_placeholder_from_the_event_time_in_utc() {
        let t = PartitionTemplate::parse("{listener}/{source}/{topic}/{date}/{hour}").unwrap();
        // 2024-05-01T13:59:59.999Z
        let e = ev("gen", "v2.users.x", Some(1_714_571_999_999), 0);
        assert_eq!(t.render(&e, "wh"), "wh/gen/v2.users.x/2024-05-01/13");
        // Without an event time, the receive time.
        let e = ev("gen", "t", None, 1_709_164_800_000); // 2024-02-29T00:00Z
        assert_eq!(t.render(&e, "wh"), "wh/gen/t/2024-02-29/00");
        let t = PartitionTemplate::parse("dt={date}/h{hour}").unwrap();
        assert_eq!(t.render(&ev("s", "t", Some(-1), 0), "l"), "dt=1969-12-31/h23");
    }

    #[test]
    fn values_cannot_escape_the_root_or_hide() {
        let t = PartitionTemplate::parse("{topic}/{source}").unwrap();
        for (topic, want) in [
            ("..", "_."),
            (".", "_"),
            ("", "_"),
            ("../../etc", "_._.._etc"),
            ("/abs/path", "_abs_path"),
            ("a\\b\nc", "a_b_c"),
            (".hidden", "_hidden"),
        ] {
            let got = t.render(&ev("src", topic, Some(0), 0), "l");
            assert_eq!(got, format!("{want}/src"), "topic {topic:?}");
        }
        let long = "é".repeat(200);
        let got = t.render(&ev("s", &long, Some(0), 0), "l");
        let first = got.split('/').next().unwrap();
        assert!(
            first.len() <= MAX_VALUE_BYTES && first.chars().all(|c| c == 'é'),
            "{first}"
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("/abs/{topic}", "relative"),
            ("a//b", "empty path segment"),
            ("{topic}/../x", "leave"),
            ("{nope}", "unknown placeholder `{nope}`"),
            ("{topic", "without `}`"),
            ("topic}", "without `{`"),
            ("a\\b", "control character"),
        ] {
            let e = PartitionTemplate::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
    }
}
