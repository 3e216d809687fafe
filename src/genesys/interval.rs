//! Genesys analytics intervals (`2024-05-01T00:00:00Z/2024-05-02T00:00:00Z`)
//! and the ISO-8601 times inside them, with millisecond precision: the
//! precision of `conversationStart`, so that a high-water mark taken from a
//! record can start the next interval exactly.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A half-open interval `[start, end)` in ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// Inclusive start (ms since the epoch).
    pub start_ms: i64,
    /// Exclusive end (ms since the epoch).
    pub end_ms: i64,
}

/// Why an interval or time did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    /// Not `start/end`.
    #[error("`{0}` is not an interval like 2024-05-01T00:00:00Z/2024-05-02T00:00:00Z")]
    Shape(String),
    /// A side is not an ISO-8601 time with an offset.
    #[error("`{0}` is not an ISO-8601 time like 2024-05-01T00:00:00Z")]
    Time(String),
    /// The end is not after the start.
    #[error("interval `{0}` ends before it starts")]
    Empty(String),
}

/// Parses an ISO-8601 (RFC 3339) time to ms since the epoch.
pub fn parse_iso_ms(s: &str) -> Result<i64, IntervalError> {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| IntervalError::Time(s.to_string()))
}

/// Formats ms since the epoch as `2024-05-01T14:02:03.120Z`.
pub fn iso_ms(ms: i64) -> String {
    // Civil-from-days (Howard Hinnant): fast, and it never fails, which
    // matters on the emulator's hot path of record generation.
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

impl Interval {
    /// An interval from `start_ms` to `end_ms`.
    pub fn new(start_ms: i64, end_ms: i64) -> Self {
        Interval { start_ms, end_ms }
    }

    /// Parses `start/end`.
    pub fn parse(s: &str) -> Result<Self, IntervalError> {
        let (a, b) = s.split_once('/').ok_or_else(|| IntervalError::Shape(s.to_string()))?;
        let i = Interval::new(parse_iso_ms(a)?, parse_iso_ms(b)?);
        if i.end_ms <= i.start_ms {
            return Err(IntervalError::Empty(s.to_string()));
        }
        Ok(i)
    }

    /// Length in ms.
    pub fn len_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    /// Whether `ms` lies inside.
    pub fn contains(&self, ms: i64) -> bool {
        (self.start_ms..self.end_ms).contains(&ms)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", iso_ms(self.start_ms), iso_ms(self.end_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_milliseconds() {
        let i = Interval::parse("2024-05-01T00:00:00Z/2024-05-01T14:02:03.120+02:00").unwrap();
        assert_eq!(i.to_string(), "2024-05-01T00:00:00.000Z/2024-05-01T12:02:03.120Z");
        assert_eq!(Interval::parse(&i.to_string()).unwrap(), i);
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_ms(-1), "1969-12-31T23:59:59.999Z");
        for ms in [1_714_521_723_120i64, 4_102_444_800_000, 1_709_164_800_000] {
            assert_eq!(parse_iso_ms(&iso_ms(ms)).unwrap(), ms);
        }
    }

    #[test]
    fn refuses_what_is_not_an_interval() {
        assert!(matches!(Interval::parse("2024-05-01"), Err(IntervalError::Shape(_))));
        assert!(matches!(
            Interval::parse("2024-05-01/2024-05-02"),
            Err(IntervalError::Time(_))
        ));
        assert!(matches!(
            Interval::parse("2024-05-02T00:00:00Z/2024-05-01T00:00:00Z"),
            Err(IntervalError::Empty(_))
        ));
    }
}
