//! Time fields normalised to ISO-8601 UTC with milliseconds
//! (`2024-05-01T14:02:03.120Z`), from ISO strings with any offset or from
//! epoch milliseconds.
//!
//! A field is a time field when its name is `timestamp` or ends with
//! `Time`, `Date`, `Start` or `End` (Genesys's naming: `eventTime`,
//! `conversationStart`, `segmentEnd`, `emitDate`). Values that do not parse
//! as a time are left as they are.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Epoch milliseconds accepted as times: 2001-09-09 to 2286-11-20.
const MS_RANGE: std::ops::Range<i64> = 1_000_000_000_000..10_000_000_000_000;

fn is_time_field(name: &str) -> bool {
    name == "timestamp"
        || ["Time", "Date", "Start", "End"]
            .iter()
            .any(|s| name.ends_with(s) && name.len() > s.len())
}

/// Formats ms since the epoch as ISO-8601 UTC with milliseconds.
pub fn iso_ms(ms: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

/// Already `YYYY-MM-DDTHH:MM:SS.mmmZ` (what Genesys mostly sends): such a
/// value normalises to itself when it is a valid time, and is left as it is
/// when it is not, so it needs no parse.
fn is_canonical_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn normalise(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) if is_canonical_shape(s) => None,
        Value::String(s) => {
            let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
            iso_ms((t.unix_timestamp_nanos() / 1_000_000) as i64).map(Value::String)
        }
        Value::Number(n) => n
            .as_i64()
            .filter(|ms| MS_RANGE.contains(ms))
            .and_then(iso_ms)
            .map(Value::String),
        _ => None,
    }
}

/// Normalises time fields anywhere in `obj`.
pub fn normalise_object(obj: &mut Map<String, Value>) {
    for (k, v) in obj.iter_mut() {
        if is_time_field(k) {
            if let Some(n) = normalise(v) {
                *v = n;
                continue;
            }
        }
        normalise_value(v);
    }
}

fn normalise_value(v: &mut Value) {
    match v {
        Value::Object(o) => normalise_object(o),
        Value::Array(a) => a.iter_mut().for_each(normalise_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iso_with_offsets_and_epoch_ms_become_utc_millis() {
        let mut v = json!({
            "eventTime": 1714572123120i64,
            "conversationStart": "2024-05-01T16:02:03.12+02:00",
            "segmentEnd": "2024-05-01T14:02:03Z",
            "participants": [{"sessions": [{"segments": [{"segmentStart": "2024-05-01T14:00:00.5Z"}]}]}],
            "emitDate": "not a date",
            "startTime": 5,
            "name": "2024-05-01T14:02:03Z"
        });
        let Value::Object(o) = &mut v else { unreachable!() };
        normalise_object(o);
        assert_eq!(v["eventTime"], "2024-05-01T14:02:03.120Z");
        assert_eq!(v["conversationStart"], "2024-05-01T14:02:03.120Z");
        assert_eq!(v["segmentEnd"], "2024-05-01T14:02:03.000Z");
        assert_eq!(
            v["participants"][0]["sessions"][0]["segments"][0]["segmentStart"],
            "2024-05-01T14:00:00.500Z"
        );
        assert_eq!(v["emitDate"], "not a date");
        assert_eq!(v["startTime"], 5, "too small to be epoch ms");
        assert_eq!(v["name"], "2024-05-01T14:02:03Z", "not a time field");
        let mut v = json!({"endTime": "2024-05-01T14:02:03.120Z", "startTime": "2024-13-01T14:02:03.120Z"});
        let Value::Object(o) = &mut v else { unreachable!() };
        normalise_object(o);
        assert_eq!(v["endTime"], "2024-05-01T14:02:03.120Z", "canonical already");
        assert_eq!(v["startTime"], "2024-13-01T14:02:03.120Z", "not a time: left as it is");
    }
}
