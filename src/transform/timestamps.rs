//! Time fields normalised to ISO-8601 UTC with milliseconds
//! (`2024-05-01T14:02:03.120Z`), from ISO strings with any offset or from
//! epoch milliseconds.
//!
//! A field is a time field when its name is `timestamp` or ends with
//! `Time`, `Date`, `Start` or `End` (Genesys's naming: `eventTime`,
//! `conversationStart`, `segmentEnd`, `emitDate`). Values that do not parse
//! as a time are left as they are.

use crate::wire::time::{iso_ms_form, iso_ms_of, IsoMs};

/// Epoch milliseconds accepted as times: 2001-09-09 to 2286-11-20.
const MS_RANGE: std::ops::Range<i64> = 1_000_000_000_000..10_000_000_000_000;

/// Whether a field called `name` holds a time.
pub fn is_time_field(name: &str) -> bool {
    // Asked of every member's name: the last byte turns most away.
    let ends = |suffix: &str| name.len() > suffix.len() && name.ends_with(suffix);
    match name.as_bytes().last() {
        Some(b'e') => ends("Time") || ends("Date"),
        Some(b't') => ends("Start"),
        Some(b'd') => ends("End"),
        Some(b'p') => name == "timestamp",
        _ => false,
    }
}

/// An ISO-8601 time with any offset, normalised; `None` if it is not one
/// (the tests' reference model; the rewriter takes [`normal_form`]).
#[cfg(test)]
pub fn normalise_str(s: &str) -> Option<String> {
    normal_form(s).map(|b| b.iter().map(|&c| char::from(c)).collect())
}

/// [`normalise_str`], as bytes (nothing allocated).
pub fn normal_form(s: &str) -> Option<IsoMs> {
    // Already normal: the common case costs a shape check, not a parse.
    if is_normal(s) {
        return s.as_bytes().try_into().ok();
    }
    iso_ms_form(iso_ms_of(s)?)
}

/// Epoch milliseconds, normalised; `None` outside the plausible range
/// (the tests' reference model; the rewriter takes [`normal_form_ms`]).
#[cfg(test)]
pub fn normalise_ms(ms: i64) -> Option<String> {
    normal_form_ms(ms).map(|b| b.iter().map(|&c| char::from(c)).collect())
}

/// [`normalise_ms`], as bytes (nothing allocated).
pub fn normal_form_ms(ms: i64) -> Option<IsoMs> {
    MS_RANGE.contains(&ms).then(|| iso_ms_form(ms)).flatten()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` exactly, with valid field ranges.
fn is_normal(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let shape = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z';
    if !shape {
        return false;
    }
    let (month, day, hour, min, sec) = (num(5..7), num(8..10), num(11..13), num(14..16), num(17..19));
    // Day-of-month beyond 28 is left to the full parse.
    (1..=12).contains(&month) && (1..=28).contains(&day) && hour < 24 && min < 60 && sec < 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_epoch_ms_become_utc_millis() {
        assert_eq!(normalise_ms(1714572123120).as_deref(), Some("2024-05-01T14:02:03.120Z"));
        assert_eq!(
            normalise_str("2024-05-01T16:02:03.12+02:00").as_deref(),
            Some("2024-05-01T14:02:03.120Z")
        );
        assert_eq!(
            normalise_str("2024-05-01T14:02:03Z").as_deref(),
            Some("2024-05-01T14:02:03.000Z")
        );
        assert_eq!(
            normalise_str("2024-05-01T14:02:03.120Z").as_deref(),
            Some("2024-05-01T14:02:03.120Z")
        );
        assert_eq!(normalise_str("2024-02-31T14:02:03.120Z"), None, "no such day");
        assert_eq!(normalise_str("2024-13-01T14:02:03.120Z"), None);
        assert_eq!(normalise_str("not a date"), None);
        assert_eq!(normalise_ms(5), None, "too small to be epoch ms");
    }

    #[test]
    fn time_fields_by_name() {
        for yes in ["eventTime", "conversationStart", "segmentEnd", "emitDate", "timestamp"] {
            assert!(is_time_field(yes), "{yes}");
        }
        for no in [
            "Time",
            "Date",
            "Start",
            "End",
            "",
            "name",
            "startTimes",
            "timestamps",
            "eventtime",
            "state",
            "kind",
        ] {
            assert!(!is_time_field(no), "{no}");
        }
    }
}
