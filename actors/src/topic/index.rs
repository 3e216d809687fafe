use std::collections::HashMap;

use super::pattern::{Pattern, Segment};

/// A trie from topic patterns to values (listener ids, typically).
///
/// A value may be inserted under several patterns; [`TopicIndex::matches`]
/// reports each matching value once.
#[derive(Debug)]
pub struct TopicIndex<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    literals: HashMap<Box<str>, Node<T>>,
    any: Option<Box<Node<T>>>,
    /// Values whose pattern ends here.
    exact: Vec<T>,
    /// Values whose pattern ends with `>` right after this node.
    tail: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literals: HashMap::new(),
            any: None,
            exact: Vec::new(),
            tail: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.literals.is_empty() && self.any.is_none() && self.exact.is_empty() && self.tail.is_empty()
    }
}

impl<T> Default for TopicIndex<T> {
    fn default() -> Self {
        TopicIndex {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T: Copy + Ord> TopicIndex<T> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of (pattern, value) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Indexes `value` under `pattern`.
    pub fn insert(&mut self, pattern: &Pattern, value: T) {
        let mut node = &mut self.root;
        for seg in pattern.segments() {
            match seg {
                Segment::Literal(l) => node = node.literals.entry(l.clone()).or_default(),
                Segment::Any => node = node.any.get_or_insert_with(Default::default),
                Segment::Tail => {
                    node.tail.push(value);
                    self.len += 1;
                    return;
                }
            }
        }
        node.exact.push(value);
        self.len += 1;
    }

    /// Removes `value` from under `pattern`; prunes emptied branches.
    pub fn remove(&mut self, pattern: &Pattern, value: T) -> bool {
        let removed = Self::remove_at(&mut self.root, pattern.segments(), value);
        if removed {
            self.len -= 1;
        }
        removed
    }

    fn remove_at(node: &mut Node<T>, segs: &[Segment], value: T) -> bool {
        let Some((first, rest)) = segs.split_first() else {
            return remove_value(&mut node.exact, value);
        };
        match first {
            Segment::Tail => remove_value(&mut node.tail, value),
            Segment::Any => {
                let Some(child) = node.any.as_deref_mut() else {
                    return false;
                };
                let removed = Self::remove_at(child, rest, value);
                if child.is_empty() {
                    node.any = None;
                }
                removed
            }
            Segment::Literal(l) => {
                let Some(child) = node.literals.get_mut(l) else {
                    return false;
                };
                let removed = Self::remove_at(child, rest, value);
                if child.is_empty() {
                    node.literals.remove(l);
                }
                removed
            }
        }
    }

    /// Appends every value whose pattern matches `topic` to `out`, each once,
    /// in ascending order.
    pub fn matches(&self, topic: &str, out: &mut Vec<T>) {
        let start = out.len();
        let segs: smallvec_like::Segs = topic.split('.').collect();
        if segs.iter().any(|s| s.is_empty()) {
            return;
        }
        Self::collect(&self.root, &segs, out);
        let found = &mut out[start..];
        if found.len() > 1 {
            found.sort_unstable();
            let mut w = start + 1;
            for r in start + 1..out.len() {
                if out[r] != out[w - 1] {
                    out[w] = out[r];
                    w += 1;
                }
            }
            out.truncate(w);
        }
    }

    fn collect(node: &Node<T>, segs: &[&str], out: &mut Vec<T>) {
        let Some((first, rest)) = segs.split_first() else {
            out.extend_from_slice(&node.exact);
            return;
        };
        // `>` needs at least one remaining segment, which `first` is.
        out.extend_from_slice(&node.tail);
        if let Some(child) = node.literals.get(*first) {
            Self::collect(child, rest, out);
        }
        if let Some(child) = node.any.as_deref() {
            Self::collect(child, rest, out);
        }
    }
}

fn remove_value<T: PartialEq>(v: &mut Vec<T>, value: T) -> bool {
    match v.iter().position(|x| *x == value) {
        Some(i) => {
            v.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Topic segments without a heap allocation for ordinary topic depths.
mod smallvec_like {
    pub(super) struct Segs<'a> {
        inline: [&'a str; 12],
        len: usize,
        spill: Vec<&'a str>,
    }
    impl<'a> FromIterator<&'a str> for Segs<'a> {
        fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
            let mut s = Segs {
                inline: [""; 12],
                len: 0,
                spill: Vec::new(),
            };
            for part in iter {
                if s.len < 12 {
                    s.inline[s.len] = part;
                } else {
                    if s.spill.is_empty() {
                        s.spill.extend_from_slice(&s.inline);
                    }
                    s.spill.push(part);
                }
                s.len += 1;
            }
            s
        }
    }
    impl<'a> std::ops::Deref for Segs<'a> {
        type Target = [&'a str];
        fn deref(&self) -> &[&'a str] {
            if self.len > 12 {
                &self.spill
            } else {
                &self.inline[..self.len]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(entries: &[(&str, u32)]) -> TopicIndex<u32> {
        let mut i = TopicIndex::new();
        for (p, v) in entries {
            i.insert(&Pattern::parse(p).unwrap(), *v);
        }
        i
    }

    fn m(i: &TopicIndex<u32>, t: &str) -> Vec<u32> {
        let mut out = Vec::new();
        i.matches(t, &mut out);
        out
    }

    #[test]
    fn matches_like_the_pattern_itself() {
        let patterns = ["a.b.c", "a.*.c", "a.>", ">", "*.b.*", "x.y", "a.b.>", "a.*"];
        let topics = ["a.b.c", "a.b", "a", "x.y", "x.y.z", "q.b.r", "a.c.c.d", "a..b"];
        let entries: Vec<(&str, u32)> = patterns.iter().enumerate().map(|(i, p)| (*p, i as u32)).collect();
        let i = idx(&entries);
        for t in topics {
            let expected: Vec<u32> = entries
                .iter()
                .filter(|(p, _)| Pattern::parse(p).unwrap().matches(t))
                .map(|(_, v)| *v)
                .collect();
            assert_eq!(m(&i, t), expected, "topic {t}");
        }
    }

    #[test]
    fn a_value_under_two_matching_patterns_is_reported_once() {
        let i = idx(&[("a.>", 1), ("a.b", 1), ("a.b", 2)]);
        assert_eq!(m(&i, "a.b"), vec![1, 2]);
    }

    #[test]
    fn remove_prunes() {
        let mut i = idx(&[("a.*.c", 1), ("a.>", 2)]);
        assert!(i.remove(&Pattern::parse("a.*.c").unwrap(), 1));
        assert!(!i.remove(&Pattern::parse("a.*.c").unwrap(), 1));
        assert_eq!(m(&i, "a.b.c"), vec![2]);
        assert!(i.remove(&Pattern::parse("a.>").unwrap(), 2));
        assert!(i.is_empty());
        assert!(i.root.is_empty());
    }

    #[test]
    fn deep_topics_spill_without_loss() {
        let deep = "a.b.c.d.e.f.g.h.i.j.k.l.m.n";
        let i = idx(&[(deep, 1), ("a.>", 2)]);
        assert_eq!(m(&i, deep), vec![1, 2]);
    }
}
