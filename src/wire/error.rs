//! Why an interval or a time on the wire did not parse.

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
