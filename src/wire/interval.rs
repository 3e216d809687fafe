//! Genesys analytics intervals (`2024-05-01T00:00:00Z/2024-05-02T00:00:00Z`)
//! with millisecond precision: the precision of `conversationStart`, so
//! that a high-water mark taken from a record can start the next interval
//! exactly.

use std::fmt;

use super::error::IntervalError;
use super::time::{iso_ms, parse_iso_ms};

/// A half-open interval `[start, end)` in ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// Inclusive start (ms since the epoch).
    pub start_ms: i64,
    /// Exclusive end (ms since the epoch).
    pub end_ms: i64,
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
