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

use std::cell::Cell;

use super::mask::Masker;
use super::timestamps;
use super::{TransformError, TransformSpec};
use crate::json::strings::write_string;
use crate::json::{Cursor, Str};

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
        cur: Cursor::new(text),
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
    /// The input, validated as it is read.
    cur: Cursor<'a>,
    out: &'a mut Vec<u8>,
    /// Key paths and scratch space (kept by the thread between records).
    bufs: Buffers,
    /// Where the paths of the object being flattened start (an object in
    /// an array is flattened relative to itself).
    base_raw: usize,
    base_name: usize,
}

impl<'a> Rewriter<'a> {
    /// The whole record: one object, nothing after it.
    fn record(&mut self) -> Result<()> {
        self.cur.ws();
        match self.cur.peek() {
            Some(b'{') => self.top_object()?,
            Some(_) => {
                // Malformed input is reported as such before its type is.
                let kind = match self.cur.peek() {
                    Some(b'[') => "array",
                    Some(b'"') => "string",
                    Some(b't' | b'f') => "boolean",
                    Some(b'n') => "null",
                    _ => "number",
                };
                self.cur.skip_value()?;
                self.cur.end()?;
                return Err(TransformError::NotAnObject(kind));
            }
            None => return Err(TransformError::NotJson("empty payload".into())),
        }
        self.cur.end()?;
        // Members are checked as they start; the last one may have crossed.
        if self.out.len() > self.out_limit {
            return Err(TransformError::TooLarge(format!(
                "output would exceed {MAX_GROWTH}x the input plus {} KiB",
                GROWTH_SLACK >> 10
            )));
        }
        Ok(())
    }

    /// Copies one value without insignificant whitespace into `scratch`.
    fn compact_into_scratch(&mut self) -> Result<()> {
        self.cur.ws();
        let from = self.cur.pos;
        self.cur.skip_value()?;
        let raw = &self.cur.src[from..self.cur.pos];
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
        self.out.extend_from_slice(&self.cur.src[from..to]);
    }

    /// Writes the value of a member called `name` (`None`: an array
    /// element), applying masking and timestamps, and flattening objects
    /// nested in arrays.
    fn value(&mut self, name: Option<&str>) -> Result<()> {
        self.cur.ws();
        if let (Some(n), Some(m)) = (name, self.spec.mask.as_ref()) {
            if m.applies(n) && self.cur.peek() != Some(b'n') {
                return self.masked(m);
            }
        }
        if self.spec.timestamps && name.is_some_and(timestamps::is_time_field) && self.timestamp()? {
            return Ok(());
        }
        match self.cur.peek() {
            Some(b'{') if self.spec.flatten => self.flat_object(),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            _ => {
                let from = self.cur.pos;
                self.cur.skip_inner()?;
                self.copy(from, self.cur.pos);
                Ok(())
            }
        }
    }

    fn masked(&mut self, m: &Masker) -> Result<()> {
        if self.cur.peek() == Some(b'"') {
            let s = self.cur.string()?;
            let text = self.cur.text(s)?;
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
        let start = self.cur.pos;
        let iso = match self.cur.peek() {
            Some(b'"') => {
                let s = self.cur.string()?;
                let text = self.cur.text(s)?;
                timestamps::normal_form(&text)
            }
            Some(b'-' | b'0'..=b'9') => {
                let integer = self.cur.number()?;
                let text = self.cur.text.get(start..self.cur.pos).unwrap_or_default();
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
                self.cur.pos = start;
                Ok(false)
            }
        }
    }

    /// A nested object, not flattened.
    fn object(&mut self) -> Result<()> {
        self.cur.enter()?;
        self.cur.pos += 1;
        self.out.push(b'{');
        self.cur.ws();
        if self.cur.peek() == Some(b'}') {
            self.cur.pos += 1;
        } else {
            let mut first = true;
            loop {
                self.cur.ws();
                let k = self.cur.string()?;
                self.cur.expect(b':', "expected `:`")?;
                if !first {
                    self.out.push(b',');
                }
                first = false;
                self.out.push(b'"');
                self.copy(k.start, k.end);
                self.out.extend_from_slice(b"\":");
                let name = self.cur.text(k)?;
                self.value(Some(&name))?;
                if !self.cur.next_or_close(b'}')? {
                    break;
                }
            }
        }
        self.out.push(b'}');
        self.cur.leave();
        Ok(())
    }

    fn array(&mut self) -> Result<()> {
        self.cur.enter()?;
        self.cur.pos += 1;
        self.out.push(b'[');
        self.cur.ws();
        if self.cur.peek() == Some(b']') {
            self.cur.pos += 1;
        } else {
            let mut first = true;
            loop {
                if !first {
                    self.out.push(b',');
                }
                first = false;
                self.value(None)?;
                if !self.cur.next_or_close(b']')? {
                    break;
                }
            }
        }
        self.out.push(b']');
        self.cur.leave();
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
        self.cur.enter()?;
        self.cur.pos += 1;
        self.cur.ws();
        if self.cur.peek() == Some(b'}') {
            self.cur.pos += 1;
        } else {
            loop {
                self.cur.ws();
                let k = self.cur.string()?;
                self.cur.expect(b':', "expected `:`")?;
                self.flat_member(k, top, first)?;
                if !self.cur.next_or_close(b'}')? {
                    break;
                }
            }
        }
        self.cur.leave();
        Ok(())
    }

    fn flat_member(&mut self, k: Str, top: bool, first: &mut bool) -> Result<()> {
        let name = self.cur.text(k)?;
        self.cur.ws();
        let masked = self
            .spec
            .mask
            .as_ref()
            .is_some_and(|m| m.applies(&name) && self.cur.peek() != Some(b'n'));
        if !masked && self.cur.peek() == Some(b'{') && !self.cur.object_is_empty() {
            let (raw_len, name_len) = (self.bufs.path_raw.len(), self.bufs.path_name.len());
            if raw_len - self.base_raw + (k.end - k.start) >= MAX_FLAT_KEY {
                return Err(TransformError::TooLarge(format!(
                    "a flattened key would be longer than {MAX_FLAT_KEY} bytes"
                )));
            }
            self.bufs.path_raw.extend_from_slice(&self.cur.src[k.start..k.end]);
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
            return Ok(self.cur.skip_value()?);
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
            self.cur.enter()?;
            self.cur.pos += 1;
            self.cur.ws();
            if self.cur.peek() == Some(b'}') {
                self.cur.pos += 1;
            } else {
                loop {
                    self.cur.ws();
                    let k = self.cur.string()?;
                    self.cur.expect(b':', "expected `:`")?;
                    let name = self.cur.text(k)?;
                    self.top_member(&name, Some(k), &name, &mut first)?;
                    if !self.cur.next_or_close(b'}')? {
                        break;
                    }
                }
            }
            self.cur.leave();
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
