//! Finding where a key sits in a config file, so every config error can
//! name the file, the line and the key.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A key in a table.
    Key(String),
    /// An element of an array (of tables).
    Index(usize),
}

/// A path to a key, e.g. `listener[2].sink.path`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Step>);

impl KeyPath {
    /// The empty path (the document).
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// This path extended by a key.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.0.clone();
        p.push(Step::Key(k.to_string()));
        KeyPath(p)
    }

    /// This path extended by an index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.0.clone();
        p.push(Step::Index(i));
        KeyPath(p)
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.0 {
            match s {
                Step::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Step::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// A parsed document with spans, for locating keys.
pub struct Locator<'a> {
    text: &'a str,
    doc: Option<toml::Spanned<DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    /// Parses `text` for spans (a syntax error leaves nothing to locate).
    pub fn new(text: &'a str) -> Self {
        Locator {
            text,
            doc: DeTable::parse(text).ok(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        (line, col)
    }

    /// The span of the key at `path` (the key itself when it is a table
    /// key, so the line is where the user wrote it).
    pub fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut table: &DeTable<'_> = doc.get_ref();
        let mut value: Option<&toml::Spanned<DeValue<'_>>> = None;
        let mut key_span = None;
        for step in &path.0 {
            match step {
                Step::Key(k) => {
                    if let Some(v) = value {
                        table = v.get_ref().as_table()?;
                    }
                    let (key, v) = table.iter().find(|(key, _)| key.get_ref() == k)?;
                    key_span = Some(key.span());
                    value = Some(v);
                }
                Step::Index(i) => {
                    let arr = value?.get_ref().as_array()?;
                    let v = arr.get(*i)?;
                    key_span = Some(v.span());
                    value = Some(v);
                }
            }
        }
        key_span
    }

    /// The path of the innermost key whose value spans `offset` (where a
    /// value error points, the key it belongs to).
    pub fn key_at(&self, offset: usize) -> Option<KeyPath> {
        fn walk(v: &toml::Spanned<DeValue<'_>>, offset: usize, path: KeyPath, best: &mut Option<KeyPath>) {
            // A `[[table]]` element spans only its header: look inside
            // every container, keep the innermost value that holds `offset`.
            let span = v.span();
            if span.start <= offset && offset < span.end.max(span.start + 1) {
                *best = Some(path.clone());
            }
            match v.get_ref() {
                DeValue::Table(t) => {
                    for (k, v) in t.iter() {
                        walk(v, offset, path.key(k.get_ref()), best);
                    }
                }
                DeValue::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        walk(v, offset, path.index(i), best);
                    }
                }
                _ => {}
            }
        }
        let doc = self.doc.as_ref()?;
        let mut best = None;
        for (k, v) in doc.get_ref().iter() {
            walk(v, offset, KeyPath::root().key(k.get_ref()), &mut best);
        }
        best
    }

    /// Finds the key named `key` nearest at or after `from`. toml reports
    /// some errors (unknown keys in an array of tables, or in inline tables)
    /// at the enclosing table; this narrows them to the key itself.
    pub fn find_key_after(&self, from: usize, key: &str) -> Option<Range<usize>> {
        fn collect(v: &DeValue<'_>, key: &str, out: &mut Vec<Range<usize>>) {
            match v {
                DeValue::Table(t) => {
                    for (k, v) in t.iter() {
                        if k.get_ref() == key {
                            out.push(k.span());
                        }
                        collect(v.get_ref(), key, out);
                    }
                }
                DeValue::Array(a) => a.iter().for_each(|x| collect(x.get_ref(), key, out)),
                _ => {}
            }
        }
        let doc = self.doc.as_ref()?;
        let mut spans = Vec::new();
        collect(&DeValue::Table(doc.get_ref().clone()), key, &mut spans);
        spans.sort_by_key(|s| s.start);
        spans.iter().find(|s| s.start >= from).or(spans.first()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[service]\ndata_dir = 'x'\n\n[[listener]]\nname = 'a'\n\n[[listener]]\nname = 'b'\nsink = { kind = 'file', path = 'p' }\n";

    #[test]
    fn locates_keys_in_arrays_of_tables_and_inline_tables() {
        let l = Locator::new(DOC);
        let p = KeyPath::root().key("listener").index(1).key("sink").key("path");
        assert_eq!(p.to_string(), "listener[1].sink.path");
        let span = l.span_of(&p).unwrap();
        assert_eq!(l.line_col(span.start).0, 9);
        let name = l
            .span_of(&KeyPath::root().key("listener").index(0).key("name"))
            .unwrap();
        assert_eq!(l.line_col(name.start), (5, 1));
        assert!(l.span_of(&KeyPath::root().key("nope")).is_none());
    }

    #[test]
    fn finds_a_key_after_an_offset() {
        let l = Locator::new(DOC);
        let second_header = DOC.find("[[listener]]\nname = 'b'").unwrap();
        let span = l.find_key_after(second_header, "name").unwrap();
        assert_eq!(l.line_col(span.start).0, 8);
    }
}
