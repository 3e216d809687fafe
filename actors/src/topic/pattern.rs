use std::fmt;

/// Why a topic pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is empty.
    #[error("topic pattern is empty")]
    Empty,
    /// Two dots in a row, or a leading/trailing dot.
    #[error("topic pattern `{0}` has an empty segment")]
    EmptySegment(String),
    /// `>` somewhere other than the last segment.
    #[error("topic pattern `{0}`: `>` is only allowed as the last segment")]
    TailNotLast(String),
    /// A wildcard mixed with other characters inside one segment.
    #[error("topic pattern `{0}`: wildcards `*` and `>` must be a whole segment")]
    PartialWildcard(String),
}

/// One compiled segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches this exact segment.
    Literal(Box<str>),
    /// `*`: any single segment.
    Any,
    /// `>`: one or more remaining segments.
    Tail,
}

/// A compiled topic pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    source: String,
    segments: Vec<Segment>,
}

impl Pattern {
    /// Compiles `pattern`, checking NATS syntax.
    pub fn parse(pattern: &str) -> Result<Pattern, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        let raw: Vec<&str> = pattern.split('.').collect();
        let mut segments = Vec::with_capacity(raw.len());
        for (i, seg) in raw.iter().enumerate() {
            let compiled = match *seg {
                "" => return Err(PatternError::EmptySegment(pattern.to_string())),
                "*" => Segment::Any,
                ">" if i + 1 == raw.len() => Segment::Tail,
                ">" => return Err(PatternError::TailNotLast(pattern.to_string())),
                s if s.contains('*') || s.contains('>') => {
                    return Err(PatternError::PartialWildcard(pattern.to_string()))
                }
                s => Segment::Literal(s.into()),
            };
            segments.push(compiled);
        }
        Ok(Pattern {
            source: pattern.to_string(),
            segments,
        })
    }

    /// The compiled segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern has no wildcard.
    pub fn is_literal(&self) -> bool {
        self.segments.iter().all(|s| matches!(s, Segment::Literal(_)))
    }

    /// Whether `topic` matches this pattern (without an index).
    pub fn matches(&self, topic: &str) -> bool {
        if topic.split('.').any(str::is_empty) {
            return false;
        }
        let mut parts = topic.split('.');
        for seg in &self.segments {
            match seg {
                Segment::Tail => return parts.next().is_some_and(|p| !p.is_empty()),
                Segment::Any => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(l) => match parts.next() {
                    Some(p) if p == &**l => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_semantics() {
        let p = Pattern::parse("v2.users.*.presence").unwrap();
        assert!(p.matches("v2.users.abc.presence"));
        assert!(!p.matches("v2.users.presence"));
        assert!(!p.matches("v2.users.a.b.presence"));
        let t = Pattern::parse("v2.detail.>").unwrap();
        assert!(t.matches("v2.detail.events.x"));
        assert!(t.matches("v2.detail.x"));
        assert!(!t.matches("v2.detail"));
        assert!(Pattern::parse(">").unwrap().matches("a"));
        assert!(Pattern::parse("a.b").unwrap().is_literal());
    }

    #[test]
    fn rejects_bad_syntax() {
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(Pattern::parse("a..b"), Err(PatternError::EmptySegment(_))));
        assert!(matches!(Pattern::parse("a.>.b"), Err(PatternError::TailNotLast(_))));
        assert!(matches!(Pattern::parse("a.b*"), Err(PatternError::PartialWildcard(_))));
    }
}
