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

    /// Whether some topic matches both patterns: a listener's pattern
    /// against what a source may publish (itself a pattern).
    pub fn overlaps(&self, other: &Pattern) -> bool {
        fn walk(a: &[Segment], b: &[Segment]) -> bool {
            match (a.first(), b.first()) {
                (None, None) => true,
                // `>` takes one or more segments: whatever the other has
                // left, if anything, some topic fits both.
                (Some(Segment::Tail), Some(_)) | (Some(_), Some(Segment::Tail)) => true,
                (None, Some(_)) | (Some(_), None) => false,
                (Some(Segment::Literal(x)), Some(Segment::Literal(y))) if x != y => false,
                (Some(_), Some(_)) => walk(&a[1..], &b[1..]),
            }
        }
        walk(&self.segments, &other.segments)
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
    fn patterns_overlap_when_one_topic_matches_both() {
        let o = |a: &str, b: &str| {
            let (a, b) = (Pattern::parse(a).unwrap(), Pattern::parse(b).unwrap());
            assert_eq!(a.overlaps(&b), b.overlaps(&a), "symmetric");
            a.overlaps(&b)
        };
        assert!(o("v2.users.*.presence", "v2.users.u1.presence"));
        assert!(o("v2.>", "v2.users.*.presence"));
        assert!(o(">", "a"));
        assert!(o("a.*.c", "a.b.*"));
        assert!(!o("a.*", "a.b.c"));
        assert!(!o("a.>", "a"));
        assert!(!o("v2.users.*.presence", "v2.routing.queues.q1.conversations"));
        assert!(!o("a.b", "a.c"));
    }

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
