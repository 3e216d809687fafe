//! The transforms in one pass over the payload's bytes: masking, timestamp
//! normalisation, flattening and the top-level key rules are applied while
//! the JSON is scanned, and the result is written straight out. No tree is
//! built: parsing a record into a `Value` and serialising it again costs
//! several times more than the transforms themselves.
//!
//! The scanner validates as it goes (structure, string escapes, number
//! grammar, UTF-8, nesting depth, trailing input), so malformed payloads are
//! refused as they would be by a full parse. Keys keep their order, and
//! values that no transform touches are copied byte for byte.

use std::borrow::Cow;
use std::cell::Cell;

use super::mask::Masker;
use super::scan::{unescape, write_string};
use super::timestamps;
use super::{TransformError, TransformSpec};

/// Deepest nesting accepted (serde_json's default limit).
const MAX_DEPTH: usize = 128;
/// Longest flattened key accepted, in bytes as written.
pub const MAX_FLAT_KEY: usize = 1024;
/// A record's output may be at most this many times its input (masking
/// tiny values with 71-byte digests is the largest honest growth)...
pub const MAX_GROWTH: usize = 16;
/// ...plus this much, so small records always fit.
pub const GROWTH_SLACK: usize = 64 << 10;

type Result<T> = std::result::Result<T, TransformError>;

/// Rewrites `input` under `spec` into `out`.
pub(super) fn rewrite(spec: &TransformSpec, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let text = match crate::wire::text::utf8(input) {
        Ok(t) => t,
        Err(at) => return Err(TransformError::NotJson(format!("invalid UTF-8 at byte {at}"))),
    };
    let out_limit = out.len() + input.len().saturating_mul(MAX_GROWTH) + GROWTH_SLACK;
    let bufs = BUFFERS.with(Cell::take);
    let mut rw = Rewriter {
        spec,
        out_limit,
        src: input,
        text,
        pos: 0,
        depth: 0,
        out,
        bufs,
        base_raw: 0,
        base_name: 0,
    };
    let result = rw.record();
    let mut bufs = rw.bufs;
    bufs.recycle();
    BUFFERS.with(|b| b.set(bufs));
    result
}

/// A rewriter's key paths and scratch space, kept by each thread between
/// records: in the steady state a record allocates nothing but its output.
#[derive(Default)]
struct Buffers {
    /// The flattened key prefix, as written (escaped).
    path_raw: Vec<u8>,
    /// The same prefix decoded, for the key rules.
    path_name: String,
    /// A top-level member's full (flattened) name, reused between members.
    full_name: String,
    /// A value being masked, compacted.
    scratch: Vec<u8>,
}

/// Largest buffer a thread keeps between records (a huge masked value
/// must not pin its size for good).
const KEPT_BUFFER: usize = 64 << 10;

impl Buffers {
    fn recycle(&mut self) {
        self.path_raw.clear();
        self.path_name.clear();
        self.full_name.clear();
        self.scratch.clear();
        if self.scratch.capacity() > KEPT_BUFFER {
            self.scratch = Vec::new();
        }
    }
}

thread_local! {
    static BUFFERS: Cell<Buffers> = Cell::new(Buffers::default());
}

struct Rewriter<'a> {
    spec: &'a TransformSpec,
    /// `out` may not grow past this length: the work a hostile record can
    /// cause is bounded by its size.
    out_limit: usize,
    src: &'a [u8],
    /// `src` as text (validated once), so strings are sliced, not rechecked.
    text: &'a str,
    pos: usize,
    depth: usize,
    out: &'a mut Vec<u8>,
    /// Key paths and scratch space (kept by the thread between records).
    bufs: Buffers,
    /// Where the paths of the object being flattened start (an object in
    /// an array is flattened relative to itself).
    base_raw: usize,
    base_name: usize,
}

/// A string's raw bytes (between the quotes) and whether it has escapes.
#[derive(Clone, Copy)]
struct Str {
    start: usize,
    end: usize,
    escaped: bool,
}

impl<'a> Rewriter<'a> {
    /// The whole record: one object, nothing after it.
    fn record(&mut self) -> Result<()> {
        self.ws();
        match self.peek() {
            Some(b'{') => self.top_object()?,
            Some(_) => {
                // Malformed input is reported as such before its type is.
                let kind = match self.peek() {
                    Some(b'[') => "array",
                    Some(b'"') => "string",
                    Some(b't' | b'f') => "boolean",
                    Some(b'n') => "null",
                    _ => "number",
                };
                self.skip_value()?;
                self.end()?;
                return Err(TransformError::NotAnObject(kind));
            }
            None => return Err(TransformError::NotJson("empty payload".into())),
        }
        self.end()?;
        // Members are checked as they start; the last one may have crossed.
        if self.out.len() > self.out_limit {
            return Err(TransformError::TooLarge(format!(
                "output would exceed {MAX_GROWTH}x the input plus {} KiB",
                GROWTH_SLACK >> 10
            )));
        }
        Ok(())
    }

    fn error(&self, what: &str) -> TransformError {
        TransformError::NotJson(format!("{what} at byte {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn end(&mut self) -> Result<()> {
        self.ws();
        if self.pos == self.src.len() {
            Ok(())
        } else {
            Err(self.error("trailing characters"))
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<()> {
        self.ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        Ok(())
    }

    /// After a member or element: `Some(true)` for a comma, `Some(false)`
    /// for the closing bracket.
    fn next_or_close(&mut self, close: u8) -> Result<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.error(if close == b'}' {
                "expected `,` or `}`"
            } else {
                "expected `,` or `]`"
            })),
        }
    }

    /// Whether the object starting here (at `{`) has no members.
    fn object_is_empty(&self) -> bool {
        let mut i = self.pos + 1;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(i) {
            i += 1;
        }
        self.src.get(i) == Some(&b'}')
    }

    // ---- scanning --------------------------------------------------------

    /// Scans a string at `"`, validating escapes and control characters.
    fn string(&mut self) -> Result<Str> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            // Most bytes are plain: pass them eight at a time.
            self.pos += super::scan::plain_run(&self.src[self.pos..]);
            match self.src.get(self.pos) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    let s = Str {
                        start,
                        end: self.pos,
                        escaped,
                    };
                    self.pos += 1;
                    return Ok(s);
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.src.get(self.pos + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                        Some(b'u') => {
                            let hex = self.src.get(self.pos + 2..self.pos + 6);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.error("invalid \\u escape"));
                            }
                            self.pos += 6;
                        }
                        _ => return Err(self.error("invalid escape")),
                    }
                }
                Some(c) if *c < 0x20 => return Err(self.error("control character in string")),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// A scanned string's text, unescaped.
    fn text(&self, s: Str) -> Result<Cow<'a, str>> {
        // Quotes are ASCII, so a string's bounds are character boundaries
        // of the text validated up front.
        let raw = self
            .text
            .get(s.start..s.end)
            .ok_or_else(|| self.error("invalid UTF-8"))?;
        if !s.escaped {
            return Ok(Cow::Borrowed(raw));
        }
        unescape(raw.as_bytes())
            .map(Cow::Owned)
            .map_err(|what| self.error(what))
    }

    /// Scans a number; answers whether it is an integer.
    fn number(&mut self) -> Result<bool> {
        let digits = |s: &mut Self| {
            let from = s.pos;
            while s.peek().is_some_and(|c| c.is_ascii_digit()) {
                s.pos += 1;
            }
            s.pos - from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.error("invalid number")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integer = false;
            if digits(self) == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("invalid number"));
            }
        }
        Ok(integer)
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    /// Validates and passes over one value.
    fn skip_value(&mut self) -> Result<()> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                self.enter()?;
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        self.ws();
                        self.string()?;
                        self.expect(b':', "expected `:`")?;
                        self.skip_value()?;
                        if !self.next_or_close(b'}')? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
            }
            Some(b'[') => {
                self.enter()?;
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_value()?;
                        if !self.next_or_close(b']')? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
            }
            Some(b'"') => {
                self.string()?;
            }
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
            }
            _ => return Err(self.error("expected a value")),
        }
        Ok(())
    }

    /// Copies one value without insignificant whitespace into `scratch`.
    fn compact_into_scratch(&mut self) -> Result<()> {
        self.ws();
        let from = self.pos;
        self.skip_value()?;
        let raw = &self.src[from..self.pos];
        self.bufs.scratch.clear();
        let mut in_string = false;
        let mut escape = false;
        for &c in raw {
            if in_string {
                self.bufs.scratch.push(c);
                if escape {
                    escape = false;
                } else if c == b'\\' {
                    escape = true;
                } else if c == b'"' {
                    in_string = false;
                }
            } else if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                in_string = c == b'"';
                self.bufs.scratch.push(c);
            }
        }
        Ok(())
    }

    // ---- writing ---------------------------------------------------------

    fn copy(&mut self, from: usize, to: usize) {
        self.out.extend_from_slice(&self.src[from..to]);
    }

    /// Writes the value of a member called `name` (`None`: an array
    /// element), applying masking and timestamps, and flattening objects
    /// nested in arrays.
    fn value(&mut self, name: Option<&str>) -> Result<()> {
        self.ws();
        if let (Some(n), Some(m)) = (name, self.spec.mask.as_ref()) {
            if m.applies(n) && self.peek() != Some(b'n') {
                return self.masked(m);
            }
        }
        if self.spec.timestamps && name.is_some_and(timestamps::is_time_field) && self.timestamp()? {
            return Ok(());
        }
        match self.peek() {
            Some(b'{') if self.spec.flatten => self.flat_object(),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            _ => {
                let from = self.pos;
                self.skip_value()?;
                self.copy(from, self.pos);
                Ok(())
            }
        }
    }

    fn masked(&mut self, m: &Masker) -> Result<()> {
        if self.peek() == Some(b'"') {
            let s = self.string()?;
            let text = self.text(s)?;
            self.out.push(b'"');
            m.mask_into(text.as_bytes(), self.out);
        } else {
            // Objects, arrays, numbers: masked whole, by their compact text.
            self.compact_into_scratch()?;
            self.out.push(b'"');
            m.mask_into(&self.bufs.scratch, self.out);
        }
        self.out.push(b'"');
        Ok(())
    }

    /// Writes a time value normalised, if it is one; answers whether it was.
    fn timestamp(&mut self) -> Result<bool> {
        let start = self.pos;
        let iso = match self.peek() {
            Some(b'"') => {
                let s = self.string()?;
                let text = self.text(s)?;
                timestamps::normal_form(&text)
            }
            Some(b'-' | b'0'..=b'9') => {
                let integer = self.number()?;
                let text = self.text.get(start..self.pos).unwrap_or_default();
                integer
                    .then(|| text.parse::<i64>().ok())
                    .flatten()
                    .and_then(timestamps::normal_form_ms)
            }
            _ => None,
        };
        match iso {
            Some(iso) => {
                self.out.push(b'"');
                self.out.extend_from_slice(&iso);
                self.out.push(b'"');
                Ok(true)
            }
            None => {
                // Not a time after all: rewind and write it as any value.
                self.pos = start;
                Ok(false)
            }
        }
    }

    /// A nested object, not flattened.
    fn object(&mut self) -> Result<()> {
        self.enter()?;
        self.pos += 1;
        self.out.push(b'{');
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            let mut first = true;
            loop {
                self.ws();
                let k = self.string()?;
                self.expect(b':', "expected `:`")?;
                if !first {
                    self.out.push(b',');
                }
                first = false;
                self.out.push(b'"');
                self.copy(k.start, k.end);
                self.out.extend_from_slice(b"\":");
                let name = self.text(k)?;
                self.value(Some(&name))?;
                if !self.next_or_close(b'}')? {
                    break;
                }
            }
        }
        self.out.push(b'}');
        self.depth -= 1;
        Ok(())
    }

    fn array(&mut self) -> Result<()> {
        self.enter()?;
        self.pos += 1;
        self.out.push(b'[');
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            let mut first = true;
            loop {
                if !first {
                    self.out.push(b',');
                }
                first = false;
                self.value(None)?;
                if !self.next_or_close(b']')? {
                    break;
                }
            }
        }
        self.out.push(b']');
        self.depth -= 1;
        Ok(())
    }

    /// An object inside an array, flattened in place (its keys relative to
    /// it; the top-level key rules do not apply inside arrays).
    fn flat_object(&mut self) -> Result<()> {
        let saved = (self.base_raw, self.base_name);
        (self.base_raw, self.base_name) = (self.bufs.path_raw.len(), self.bufs.path_name.len());
        self.out.push(b'{');
        let mut first = true;
        let r = self.flat_members(false, &mut first);
        self.out.push(b'}');
        // Each member truncates the paths it extended: they are back at
        // this object's base.
        (self.base_raw, self.base_name) = saved;
        r
    }

    /// The members of the object at `{`, flattened under the current path.
    fn flat_members(&mut self, top: bool, first: &mut bool) -> Result<()> {
        self.enter()?;
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.ws();
                let k = self.string()?;
                self.expect(b':', "expected `:`")?;
                self.flat_member(k, top, first)?;
                if !self.next_or_close(b'}')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn flat_member(&mut self, k: Str, top: bool, first: &mut bool) -> Result<()> {
        let name = self.text(k)?;
        self.ws();
        let masked = self
            .spec
            .mask
            .as_ref()
            .is_some_and(|m| m.applies(&name) && self.peek() != Some(b'n'));
        if !masked && self.peek() == Some(b'{') && !self.object_is_empty() {
            let (raw_len, name_len) = (self.bufs.path_raw.len(), self.bufs.path_name.len());
            if raw_len - self.base_raw + (k.end - k.start) >= MAX_FLAT_KEY {
                return Err(TransformError::TooLarge(format!(
                    "a flattened key would be longer than {MAX_FLAT_KEY} bytes"
                )));
            }
            self.bufs.path_raw.extend_from_slice(&self.src[k.start..k.end]);
            self.bufs.path_raw.push(b'.');
            self.bufs.path_name.push_str(&name);
            self.bufs.path_name.push('.');
            let r = self.flat_members(top, first);
            self.bufs.path_raw.truncate(raw_len);
            self.bufs.path_name.truncate(name_len);
            return r;
        }
        if top {
            if self.bufs.path_name.len() == self.base_name {
                return self.top_member(&name, Some(k), &name, first);
            }
            let mut full = std::mem::take(&mut self.bufs.full_name);
            full.clear();
            full.push_str(&self.bufs.path_name[self.base_name..]);
            full.push_str(&name);
            let r = self.top_member(&full, Some(k), &name, first);
            self.bufs.full_name = full;
            return r;
        }
        self.key_separator(first)?;
        self.out.push(b'"');
        self.out.extend_from_slice(&self.bufs.path_raw[self.base_raw..]);
        self.copy(k.start, k.end);
        self.out.extend_from_slice(b"\":");
        self.value(Some(&name))
    }

    /// Starts a member; refuses to grow the output past its limit (checked
    /// once per member: a member adds at most a key path and its value).
    fn key_separator(&mut self, first: &mut bool) -> Result<()> {
        if self.out.len() > self.out_limit {
            return Err(TransformError::TooLarge(format!(
                "output would exceed {MAX_GROWTH}x the input plus {} KiB",
                GROWTH_SLACK >> 10
            )));
        }
        if !*first {
            self.out.push(b',');
        }
        *first = false;
        Ok(())
    }

    /// A top-level member (after flattening): rename, drop and select
    /// apply to its full name.
    fn top_member(&mut self, full: &str, raw_key: Option<Str>, name: &str, first: &mut bool) -> Result<()> {
        let spec = self.spec;
        let renamed = spec.rename.get(full).map(String::as_str);
        let out_name = renamed.unwrap_or(full);
        let kept = !spec.drop.iter().any(|d| d == out_name)
            && (spec.select.is_empty() || spec.select.iter().any(|s| s == out_name));
        if !kept {
            return self.skip_value();
        }
        self.key_separator(first)?;
        match (renamed, raw_key) {
            (None, Some(k)) => {
                self.out.push(b'"');
                self.out.extend_from_slice(&self.bufs.path_raw[self.base_raw..]);
                self.copy(k.start, k.end);
                self.out.push(b'"');
            }
            _ => write_string(self.out, out_name),
        }
        self.out.push(b':');
        self.value(Some(name))
    }

    fn top_object(&mut self) -> Result<()> {
        self.out.push(b'{');
        let mut first = true;
        if self.spec.flatten {
            self.flat_members(true, &mut first)?;
        } else {
            self.enter()?;
            self.pos += 1;
            self.ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
            } else {
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.expect(b':', "expected `:`")?;
                    let name = self.text(k)?;
                    self.top_member(&name, Some(k), &name, &mut first)?;
                    if !self.next_or_close(b'}')? {
                        break;
                    }
                }
            }
            self.depth -= 1;
        }
        self.out.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the thread keeps between records: (path, scratch) capacities.
    fn kept() -> (usize, usize) {
        BUFFERS.with(|b| {
            let bufs = b.take();
            let kept = (bufs.path_raw.len() + bufs.path_name.len(), bufs.scratch.capacity());
            b.set(bufs);
            kept
        })
    }

    #[test]
    fn a_thread_keeps_its_buffers_empty_and_bounded() {
        use super::super::mask::MaskMode;
        let spec = TransformSpec {
            flatten: true,
            mask: Some(Masker::new(MaskMode::Hash, &["ani".into()], Some(b"k"))),
            ..Default::default()
        };
        // A masked value of 200 KiB grows the scratch space past the bound.
        let huge = format!(r#"{{"a":{{"ani":[{}0]}}}}"#, "0, ".repeat(70_000));
        spec.apply(huge.as_bytes()).unwrap();
        assert_eq!(kept(), (0, 0), "a huge scratch space is not kept");
        spec.apply(br#"{"a":{"ani":[1, 2]}}"#).unwrap();
        let (paths, scratch) = kept();
        assert_eq!(paths, 0, "no path survives its record");
        assert!(scratch > 0 && scratch <= KEPT_BUFFER, "a small one is: {scratch}");
    }
}
