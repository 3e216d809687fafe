//! A validating cursor over JSON text: the scanning both the transform's
//! rewriter and the notification frame reader are built on. It checks what
//! a full parse checks (structure, string escapes and control characters,
//! the number grammar, literals, nesting depth, trailing input) without
//! building anything, and strings are passed eight bytes at a time.

use std::borrow::Cow;

use super::strings::{plain_run, unescape};

/// Deepest nesting accepted (serde_json parses one level less: 127).
pub const MAX_DEPTH: usize = 128;

/// Why text is not JSON, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct JsonError {
    /// What was wrong.
    pub what: &'static str,
    /// Byte offset in the text.
    pub at: usize,
}

type Result<T> = std::result::Result<T, JsonError>;

/// A scanned string's raw bytes (between the quotes) and whether it has
/// escapes.
#[derive(Debug, Clone, Copy)]
pub struct Str {
    /// First byte after the opening quote.
    pub start: usize,
    /// The closing quote.
    pub end: usize,
    /// Whether it has escapes (its raw bytes are not its text).
    pub escaped: bool,
}

/// A position in JSON text being validated.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    /// The text, as bytes.
    pub src: &'a [u8],
    /// The same text (validated once), so strings are sliced, not rechecked.
    pub text: &'a str,
    /// The next byte to read.
    pub pos: usize,
    /// Containers open around `pos`.
    pub depth: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Cursor {
            src: text.as_bytes(),
            text,
            pos: 0,
            depth: 0,
        }
    }

    /// An error at the current position.
    pub fn error(&self, what: &'static str) -> JsonError {
        JsonError { what, at: self.pos }
    }

    /// The next byte, if any.
    pub fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// Passes over insignificant whitespace.
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Only whitespace is left.
    pub fn end(&mut self) -> Result<()> {
        self.ws();
        if self.pos == self.src.len() {
            Ok(())
        } else {
            Err(self.error("trailing characters"))
        }
    }

    /// Passes over `b` (after whitespace), or fails with `what`.
    pub fn expect(&mut self, b: u8, what: &'static str) -> Result<()> {
        self.ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// One container deeper.
    pub fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        Ok(())
    }

    /// One container out.
    pub fn leave(&mut self) {
        self.depth -= 1;
    }

    /// After a member or element: `true` for a comma, `false` for the
    /// closing bracket.
    pub fn next_or_close(&mut self, close: u8) -> Result<bool> {
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
    pub fn object_is_empty(&self) -> bool {
        let mut i = self.pos + 1;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(i) {
            i += 1;
        }
        self.src.get(i) == Some(&b'}')
    }

    /// Opens an object or array at its bracket (after whitespace):
    /// `Ok(false)` when it is empty and already closed.
    pub fn open(&mut self, open: u8, close: u8) -> Result<bool> {
        self.ws();
        if self.peek() != Some(open) {
            return Err(self.error(if open == b'{' {
                "expected an object"
            } else {
                "expected an array"
            }));
        }
        self.enter()?;
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            self.leave();
            return Ok(false);
        }
        Ok(true)
    }

    /// A member's key and the `:` after it (inlined, as [`Cursor::string`]
    /// is, so the key does not come back through memory).
    #[inline(always)]
    pub fn key(&mut self) -> Result<Str> {
        self.ws();
        let k = self.string()?;
        self.expect(b':', "expected `:`")?;
        Ok(k)
    }

    /// Scans a string at `"`, validating escapes and control characters.
    ///
    /// Inlined for its common case, a string without escapes: most of a
    /// document's strings are short keys and ids, and a call costs about
    /// as much as scanning one (its result comes back through memory and
    /// stalls the caller's first read of it).
    #[inline(always)]
    pub fn string(&mut self) -> Result<Str> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        let start = self.pos + 1;
        let end = start + plain_run(self.src.get(start..).unwrap_or_default());
        if self.src.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return Ok(Str {
                start,
                end,
                escaped: false,
            });
        }
        self.pos = end;
        // Rebuilt here rather than returned: a `Str` returned from a call
        // comes back through memory, and so would the fast path's.
        match self.string_rest() {
            Ok(escaped) => Ok(Str {
                start,
                end: self.pos - 1,
                escaped,
            }),
            Err(what) => Err(self.error(what)),
        }
    }

    /// The rest of a string from its first escape or control character:
    /// whether it had escapes, the cursor after its closing quote; or what
    /// is wrong, the cursor at it.
    #[inline(never)]
    fn string_rest(&mut self) -> std::result::Result<bool, &'static str> {
        let mut escaped = false;
        loop {
            // Most bytes are plain: pass them a block at a time.
            self.pos += plain_run(&self.src[self.pos..]);
            match self.src.get(self.pos) {
                None => return Err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.src.get(self.pos + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                        Some(b'u') => {
                            let hex = self.src.get(self.pos + 2..self.pos + 6);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err("invalid \\u escape");
                            }
                            self.pos += 6;
                        }
                        _ => return Err("invalid escape"),
                    }
                }
                Some(c) if *c < 0x20 => return Err("control character in string"),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// A scanned string's raw text (escapes as written).
    pub fn raw(&self, s: Str) -> &'a str {
        // Quotes are ASCII, so a string's bounds are character boundaries.
        self.text.get(s.start..s.end).unwrap_or_default()
    }

    /// A scanned string's text, unescaped (an error for escapes that name
    /// no character, such as a lone surrogate).
    pub fn text(&self, s: Str) -> Result<Cow<'a, str>> {
        let raw = self.raw(s);
        if !s.escaped {
            return Ok(Cow::Borrowed(raw));
        }
        unescape(raw.as_bytes())
            .map(Cow::Owned)
            .map_err(|what| JsonError { what, at: s.start })
    }

    /// Passes over a `null` (after whitespace) and answers whether there
    /// was one; anything else starting with `n` is an error.
    pub fn null(&mut self) -> Result<bool> {
        self.ws();
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    /// A string's text or `null` (after whitespace); any other value is
    /// an error.
    pub fn string_or_null(&mut self) -> Result<Option<Cow<'a, str>>> {
        if self.null()? {
            return Ok(None);
        }
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string or null"));
        }
        let s = self.string()?;
        Ok(Some(self.text(s)?))
    }

    /// Passes over one value and answers its text (`null` gives `None`).
    pub fn raw_value(&mut self) -> Result<Option<&'a str>> {
        if self.null()? {
            return Ok(None);
        }
        let from = self.pos;
        self.skip_value()?;
        Ok(Some(self.text.get(from..self.pos).unwrap_or_default()))
    }

    /// Scans a number; answers whether it is an integer.
    pub fn number(&mut self) -> Result<bool> {
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

    /// Passes over `word` (`true`, `false`, `null`).
    pub fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    /// Validates and passes over one value.
    pub fn skip_value(&mut self) -> Result<()> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                if self.open(b'{', b'}')? {
                    loop {
                        self.key()?;
                        self.skip_inner()?;
                        if !self.next_or_close(b'}')? {
                            break;
                        }
                    }
                    self.leave();
                }
            }
            Some(b'[') => {
                if self.open(b'[', b']')? {
                    loop {
                        self.skip_inner()?;
                        if !self.next_or_close(b']')? {
                            break;
                        }
                    }
                    self.leave();
                }
            }
            _ => self.skip_scalar()?,
        }
        Ok(())
    }

    /// [`Cursor::skip_value`] for a member's or element's value: a
    /// string, the commonest, is passed over in line, and only a container
    /// costs a (recursive) call.
    #[inline(always)]
    pub fn skip_inner(&mut self) -> Result<()> {
        self.ws();
        match self.peek() {
            Some(b'{' | b'[') => self.skip_value(),
            _ => self.skip_scalar(),
        }
    }

    /// A string (in line), a literal or a number.
    #[inline(always)]
    fn skip_scalar(&mut self) -> Result<()> {
        if self.peek() == Some(b'"') {
            self.string().map(drop)
        } else {
            self.skip_bare()
        }
    }

    /// A literal or a number (anything else is not a value).
    fn skip_bare(&mut self) -> Result<()> {
        match self.peek() {
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            _ => Err(self.error("expected a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(text: &str) -> bool {
        let mut c = Cursor::new(text);
        c.skip_value().and_then(|()| c.end()).is_ok()
    }

    #[test]
    fn accepts_what_serde_json_accepts_and_refuses_the_rest() {
        let cases = [
            r#"{}"#,
            r#"[]"#,
            r#" { "a" : [ 1 , -0.5e+3 , true , false , null , "x\"\\\/\b\f\n\r\t\u00e9" ] } "#,
            r#"{"a":{"b":{"c":[[],[{}]]}}}"#,
            r#"0"#,
            r#"-0"#,
            r#"01"#,
            r#"1."#,
            r#".5"#,
            r#"1e"#,
            r#"+1"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":1}x"#,
            r#"{"a":1}{"#,
            r#""\x""#,
            r#""\u12g4""#,
            "\"a\u{1}b\"",
            "\"tab\there\"",
            r#"tru"#,
            r#"nul"#,
            r#"[1 2]"#,
            r#""#,
            r#"  "#,
            r#"{"a":"unterminated}"#,
            r#"["\ud800"]"#,
            // The same faults as a container's member or element.
            r#"[tru]"#,
            r#"{"a":x}"#,
            r#"[+1]"#,
            r#"{"a": "b\x"}"#,
            r#"[ -0.5 , "s" , null ]"#,
            r#"{"a" : false , "b":{"c":01}}"#,
        ];
        for text in cases {
            let want = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
            assert_eq!(valid(text), want, "{text}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(valid(&deep(MAX_DEPTH)));
        let too_deep = deep(MAX_DEPTH + 1);
        let mut c = Cursor::new(&too_deep);
        assert_eq!(c.skip_value().unwrap_err().what, "nested too deeply");
    }

    #[test]
    fn a_bad_string_names_its_fault_where_it_is() {
        let fault = |text: &str| {
            let e = Cursor::new(text).string().unwrap_err();
            (e.what, e.at)
        };
        assert_eq!(fault(r#""ab\n\x""#), ("invalid escape", 5));
        assert_eq!(fault(r#""a\u12g4""#), ("invalid \\u escape", 2));
        assert_eq!(fault("\"a\\tb\u{1}c\""), ("control character in string", 5));
        assert_eq!(fault(r#""a\"b"#), ("unterminated string", 5));
        assert_eq!(fault(r#""abc"#), ("unterminated string", 4));
        assert_eq!(fault("x"), ("expected a string", 0));
    }

    #[test]
    fn strings_read_borrowed_unless_escaped() {
        let mut c = Cursor::new(r#""plain" "a\u00e9\n" "\ud83d\ude00" "\udc00""#);
        let s = c.string().unwrap();
        assert!(matches!(c.text(s).unwrap(), Cow::Borrowed("plain")));
        c.ws();
        let s = c.string().unwrap();
        assert_eq!(c.raw(s), r"a\u00e9\n");
        assert_eq!(c.text(s).unwrap(), "a\u{e9}\n");
        c.ws();
        let s = c.string().unwrap();
        assert_eq!(c.text(s).unwrap(), "\u{1F600}");
        c.ws();
        let s = c.string().unwrap();
        assert!(c.text(s).is_err(), "a lone surrogate names no character");
    }
}
