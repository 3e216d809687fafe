//! Splits a JSON array into its elements as the bytes stream by, without
//! ever holding more than one element: it tracks strings (with escapes)
//! and bracket depth, and jumps through string contents with `memchr`.
//!
//! Each element's bytes are then parsed on their own, so a malformed
//! element is one bad record (dead-lettered, the rest continue) rather
//! than the end of the file, and every element has exact byte offsets in
//! the file (dead-letter positions, and a restart can resume right after
//! the last committed element with `Range`). Only broken framing —
//! unbalanced brackets or quotes, garbage between elements — stops the
//! parse, with the offset where it broke.

/// Where in the array the framer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before `[`.
    Open,
    /// After `[`: an element or `]`.
    First,
    /// After `,`: an element.
    Next,
    /// Inside an element.
    Element,
    /// After an element: `,` or `]`.
    After,
    /// After `]`: whitespace only.
    Closed,
}

/// Why the bytes are not a JSON array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A byte that cannot be there.
    #[error("unexpected `{}` at byte {offset} of the JSON array", char::from(*byte))]
    Unexpected {
        /// The byte.
        byte: u8,
        /// Its offset.
        offset: u64,
    },
    /// An element larger than the limit (a sign of broken framing).
    #[error("a record starting at byte {start} is larger than {max} bytes")]
    TooLarge {
        /// Where it started.
        start: u64,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside the array.
    #[error("the JSON array ends early (at byte {0}, inside an element or before its `]`)")]
    Truncated(u64),
}

/// One element: its bytes and where they are.
pub struct Element<'a> {
    /// The element's JSON text.
    pub bytes: &'a [u8],
    /// Offset of its first byte.
    pub start: u64,
    /// Offset after its last byte.
    pub end: u64,
}

/// The streaming framer.
pub struct ArrayFramer {
    state: State,
    depth: u32,
    in_string: bool,
    escape: bool,
    scalar: bool,
    buf: Vec<u8>,
    offset: u64,
    start: u64,
    max_element: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl ArrayFramer {
    /// A framer at the start of an array whose first byte is at `offset`.
    pub fn new(offset: u64, max_element: usize) -> Self {
        ArrayFramer {
            state: State::Open,
            depth: 0,
            in_string: false,
            escape: false,
            scalar: false,
            buf: Vec::with_capacity(4096),
            offset,
            start: offset,
            max_element,
        }
    }

    /// A framer resuming right after an element that ended at `offset`.
    pub fn after_element(offset: u64, max_element: usize) -> Self {
        ArrayFramer {
            state: State::After,
            ..Self::new(offset, max_element)
        }
    }

    /// Offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn unexpected(&self, byte: u8) -> FramingError {
        FramingError::Unexpected {
            byte,
            offset: self.offset,
        }
    }

    /// Feeds the next bytes; `on` gets each complete element. An error of
    /// `on` stops the feed and is handed back.
    pub fn feed<E>(
        &mut self,
        mut data: &[u8],
        on: &mut dyn FnMut(Element<'_>) -> Result<(), E>,
    ) -> Result<(), Result<FramingError, E>> {
        while let Some(&b) = data.first() {
            if self.state != State::Element {
                if is_ws(b) {
                    data = &data[1..];
                    self.offset += 1;
                    continue;
                }
                match (self.state, b) {
                    (State::Open, b'[') => self.state = State::First,
                    (State::First | State::After, b']') => self.state = State::Closed,
                    (State::After, b',') => self.state = State::Next,
                    (State::First | State::Next, _) => {
                        self.state = State::Element;
                        self.start = self.offset;
                        self.buf.clear();
                        self.depth = 0;
                        self.scalar = false;
                        continue;
                    }
                    _ => return Err(Ok(self.unexpected(b))),
                }
                data = &data[1..];
                self.offset += 1;
                continue;
            }
            // Inside an element.
            let taken = if self.escape {
                self.escape = false;
                1
            } else if self.in_string {
                match memchr::memchr2(b'"', b'\\', data) {
                    None => data.len(),
                    Some(i) => {
                        if data[i] == b'\\' {
                            self.escape = true;
                        } else {
                            self.in_string = false;
                        }
                        i + 1
                    }
                }
            } else if self.scalar {
                if is_ws(b) || b == b',' || b == b']' {
                    self.end_element(on).map_err(Err)?;
                    continue;
                }
                1
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        if self.depth == 0 {
                            return Err(Ok(self.unexpected(b)));
                        }
                        self.depth -= 1;
                    }
                    _ if self.depth == 0 && self.buf.is_empty() => self.scalar = true,
                    _ => {}
                }
                1
            };
            self.buf.extend_from_slice(&data[..taken]);
            data = &data[taken..];
            self.offset += taken as u64;
            if self.buf.len() > self.max_element {
                return Err(Ok(FramingError::TooLarge {
                    start: self.start,
                    max: self.max_element,
                }));
            }
            // A container or string element ends with its closing byte.
            if !self.in_string && !self.escape && !self.scalar && self.depth == 0 {
                self.end_element(on).map_err(Err)?;
            }
        }
        Ok(())
    }

    fn end_element<E>(&mut self, on: &mut dyn FnMut(Element<'_>) -> Result<(), E>) -> Result<(), E> {
        self.state = State::After;
        self.scalar = false;
        on(Element {
            bytes: &self.buf,
            start: self.start,
            end: self.offset,
        })
    }

    /// The stream ended: it must have been a whole array.
    pub fn finish(&self) -> Result<(), FramingError> {
        match self.state {
            State::Closed => Ok(()),
            _ => Err(FramingError::Truncated(self.offset)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &[u8], chunk: usize) -> Result<Vec<(String, u64, u64)>, FramingError> {
        let mut f = ArrayFramer::new(0, 1 << 20);
        let mut out = Vec::new();
        let mut on = |e: Element<'_>| -> Result<(), ()> {
            out.push((String::from_utf8_lossy(e.bytes).into_owned(), e.start, e.end));
            Ok(())
        };
        for c in text.chunks(chunk) {
            f.feed(c, &mut on).map_err(|e| e.unwrap())?;
        }
        f.finish()?;
        Ok(out)
    }

    #[test]
    fn elements_come_out_whole_whatever_the_chunking() {
        let text = br#" [ {"a":"x,]}\"y","b":[1,{"c":2}]}, "s\\\"", 12.5e3 ,true,null,[] ,{} ] "#;
        let want = [
            r#"{"a":"x,]}\"y","b":[1,{"c":2}]}"#,
            r#""s\\\"""#,
            "12.5e3",
            "true",
            "null",
            "[]",
            "{}",
        ];
        for chunk in [1, 2, 3, 7, 1000] {
            let got = frame(text, chunk).unwrap();
            assert_eq!(
                got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
                want,
                "chunk {chunk}"
            );
            let (s, start, end) = &got[0];
            assert_eq!(&text[*start as usize..*end as usize], s.as_bytes());
        }
        assert!(frame(b"[]", 1).unwrap().is_empty());
    }

    #[test]
    fn broken_framing_names_the_offset() {
        assert_eq!(
            frame(br#"[{"a":1} {"b":2}]"#, 4).unwrap_err(),
            FramingError::Unexpected { byte: b'{', offset: 9 }
        );
        assert_eq!(
            frame(br#"{"a":1}"#, 4).unwrap_err(),
            FramingError::Unexpected { byte: b'{', offset: 0 }
        );
        assert_eq!(frame(br#"[{"a":"#, 4).unwrap_err(), FramingError::Truncated(6));
        assert!(matches!(
            frame(br#"[1,]"#, 4).unwrap_err(),
            FramingError::Unexpected { byte: b']', .. }
        ));
        let mut f = ArrayFramer::new(0, 8);
        let r = f.feed(br#"[{"a":"0123456789"}]"#, &mut |_| Ok::<(), ()>(()));
        assert!(matches!(r, Err(Ok(FramingError::TooLarge { start: 1, max: 8 }))));
    }

    #[test]
    fn resumes_after_an_element() {
        let text = br#"[{"a":1},{"b":2},{"c":3}]"#;
        let mut f = ArrayFramer::after_element(8, 1024);
        let mut got = Vec::new();
        f.feed(&text[8..], &mut |e| {
            got.push((e.start, e.end));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(got, [(9, 16), (17, 24)]);
    }
}
