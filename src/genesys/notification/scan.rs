//! A notification frame read in one pass of the validating JSON cursor:
//! the envelope fields and the few body fields keys and times come from
//! are taken, everything else is validated and passed over (strings eight
//! bytes at a time). This runs for every notification and every pushed
//! event, and costs a fraction of a serde pass through typed visitors.
//!
//! The answers are those serde_json gave for the same shapes (the unit
//! tests in `oracle` compare the two on generated and mutated frames):
//! a frame whose envelope fields have the wrong type, or repeat, is not a
//! frame; body fields of an unexpected type read as absent; and a body
//! whose fields cannot be read at all (a field repeated, a lone surrogate
//! escape, a number out of range where a value is read) gives no fields,
//! the frame itself still counts. One deliberate difference: nesting
//! deeper than [`crate::json::MAX_DEPTH`] anywhere refuses the frame
//! (the transform would refuse its payload anyway).

use std::borrow::Cow;

use super::{BodyFields, EventTime, LatestTime};
use crate::json::{Cursor, JsonError, Str};

type Result<T> = std::result::Result<T, JsonError>;

/// What a frame's one pass found.
#[derive(Debug, Default)]
pub(super) struct Scanned<'a> {
    pub topic_name: Option<Cow<'a, str>>,
    /// `Some` when `metadata` is an object.
    pub metadata: Option<Option<Cow<'a, str>>>,
    pub timestamp: Option<Cow<'a, str>>,
    pub fields: BodyFields<'a>,
}

/// Reads a whole frame; an error means it is not a notification frame (not
/// JSON, not an object, or an envelope field of the wrong type or twice).
pub(super) fn frame(text: &str) -> Result<Scanned<'_>> {
    let mut c = Cursor::new(text);
    let out = frame_in(&mut c)?;
    c.end()?;
    Ok(out)
}

/// Reads the frame at `c` (a value inside larger JSON, such as a pushed
/// event's `detail`) and leaves `c` after it.
pub(super) fn frame_in<'a>(c: &mut Cursor<'a>) -> Result<Scanned<'a>> {
    let mut s = Scan {
        c: c.clone(),
        broken: false,
    };
    let mut out = Scanned::default();
    // `timestamp` is read leniently, but a frame whose body cannot be read
    // is read by its envelope alone, where it must be a string or null.
    let mut timestamp_is_text = true;
    let mut seen = 0;
    s.members(Names::Strict, |s, name| {
        let bit = match name {
            "topicName" => {
                out.topic_name = s.c.string_or_null()?;
                1
            }
            "eventBody" => {
                out.fields = s.body()?;
                2
            }
            "metadata" => {
                out.metadata = s.metadata()?;
                4
            }
            "timestamp" => {
                s.c.ws();
                timestamp_is_text = matches!(s.c.peek(), Some(b'"' | b'n'));
                let broken = std::mem::replace(&mut s.broken, false);
                out.timestamp = s.loose()?;
                if std::mem::replace(&mut s.broken, broken) {
                    // A string naming no text (a lone surrogate).
                    return Err(s.c.error("invalid timestamp"));
                }
                8
            }
            _ => return s.c.skip_value(),
        };
        if repeated(&mut seen, bit) {
            return Err(s.c.error("duplicate envelope field"));
        }
        Ok(())
    })?;
    if s.broken {
        if !timestamp_is_text {
            return Err(s.c.error("timestamp is not a string"));
        }
        out.fields = BodyFields::default();
    }
    *c = s.c;
    Ok(out)
}

/// Reads the body fields of an event body alone (`None`: not JSON, or
/// its fields cannot be read).
pub(super) fn body(text: &str) -> Option<BodyFields<'_>> {
    let mut s = Scan {
        c: Cursor::new(text),
        broken: false,
    };
    let fields = s.body().ok()?;
    s.c.end().ok()?;
    (!s.broken).then_some(fields)
}

struct Scan<'a> {
    c: Cursor<'a>,
    /// The body's fields cannot be read (the frame may still be fine).
    broken: bool,
}

impl<'a> Scan<'a> {
    /// A string's text; one naming no text breaks the body.
    fn checked(&mut self, s: Str) -> Option<Cow<'a, str>> {
        match self.c.text(s) {
            Ok(t) => Some(t),
            Err(_) => {
                self.broken = true;
                None
            }
        }
    }

    /// Calls `each` with the name of every member of the object here;
    /// `each` reads the member's value.
    fn members(&mut self, names: Names, mut each: impl FnMut(&mut Self, &str) -> Result<()>) -> Result<()> {
        if self.c.open(b'{', b'}')? {
            loop {
                let k = self.c.key()?;
                let name = match names {
                    Names::Strict => self.c.text(k)?,
                    Names::Lenient if k.escaped => self.checked(k).unwrap_or_default(),
                    Names::Lenient => Cow::Borrowed(self.c.raw(k)),
                };
                each(self, &name)?;
                if !self.c.next_or_close(b'}')? {
                    break;
                }
            }
            self.c.leave();
        }
        Ok(())
    }

    /// A number read as a value: one beyond the range of a double breaks
    /// the body. Answers it when it is an integer that fits an `i64`
    /// (`-0` is a double).
    fn number(&mut self) -> Result<Option<i64>> {
        let from = self.c.pos;
        let integer = self.c.number()?;
        let text = self.c.text.get(from..self.c.pos).unwrap_or_default();
        if integer {
            if let Ok(n) = text.parse::<i64>() {
                return Ok((n != 0 || !text.starts_with('-')).then_some(n));
            }
            if text.parse::<u64>().is_ok() {
                return Ok(None);
            }
        }
        if !text.parse::<f64>().is_ok_and(f64::is_finite) {
            self.broken = true;
        }
        Ok(None)
    }

    /// The members of an object whose keys are read (and must name text)
    /// and whose values are passed over.
    fn keys_only(&mut self) -> Result<()> {
        self.members(Names::Lenient, |s, _| s.c.skip_value())
    }

    /// A value read for its type only: strings and numbers are read (and
    /// checked), objects' keys read, arrays passed over.
    fn scalar_or_skip(&mut self) -> Result<()> {
        self.c.ws();
        match self.c.peek() {
            Some(b'"') => {
                let s = self.c.string()?;
                if s.escaped {
                    self.checked(s);
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
            }
            Some(b'{') => self.keys_only()?,
            _ => self.c.skip_value()?,
        }
        Ok(())
    }

    /// A string field cxrelay peeks at: any other value reads as absent.
    fn loose(&mut self) -> Result<Option<Cow<'a, str>>> {
        self.c.ws();
        if self.c.peek() == Some(b'"') {
            let s = self.c.string()?;
            return Ok(self.checked(s));
        }
        self.scalar_or_skip()?;
        Ok(None)
    }

    /// `metadata`: `null`, or an object whose `CorrelationId` is read.
    fn metadata(&mut self) -> Result<Option<Option<Cow<'a, str>>>> {
        if self.c.null()? {
            return Ok(None);
        }
        let mut id = None;
        let mut seen = 0;
        self.members(Names::Strict, |s, name| {
            if name != "CorrelationId" {
                return s.c.skip_value();
            }
            id = s.c.string_or_null()?;
            if repeated(&mut seen, 1) {
                return Err(s.c.error("duplicate field CorrelationId"));
            }
            Ok(())
        })?;
        Ok(Some(id))
    }

    /// `eventBody`: the fields of an object; any other value gives none.
    fn body(&mut self) -> Result<BodyFields<'a>> {
        let mut f = BodyFields::default();
        self.c.ws();
        match self.c.peek() {
            Some(b'{') => {}
            Some(b'n') => {
                self.c.literal(b"null")?;
                return Ok(f);
            }
            _ => {
                self.scalar_or_skip()?;
                return Ok(f);
            }
        }
        let mut seen = 0;
        self.members(Names::Lenient, |s, name| {
            let bit = match name {
                "conversationId" => set(&mut f.conversation_id, s.loose()?, 1 << 0),
                "id" => set(&mut f.id, s.loose()?, 1 << 1),
                "eventTime" => set(&mut f.event_time, s.event_time()?, 1 << 2),
                "endTime" => set(&mut f.end_time, s.loose()?, 1 << 3),
                "connectedTime" => set(&mut f.connected_time, s.loose()?, 1 << 4),
                "startTime" => set(&mut f.start_time, s.loose()?, 1 << 5),
                "timestamp" => set(&mut f.timestamp, s.loose()?, 1 << 6),
                "modifiedDate" => set(&mut f.modified_date, s.loose()?, 1 << 7),
                "message" => set(&mut f.message, s.loose()?, 1 << 8),
                "systemTopicType" => set(&mut f.system_topic_type, s.loose()?, 1 << 9),
                "participants" => set(&mut f.participants_time, s.participants()?, 1 << 10),
                _ => return s.c.skip_inner(),
            };
            if repeated(&mut seen, bit) {
                s.broken = true;
            }
            Ok(())
        })?;
        Ok(f)
    }

    /// `eventTime`: epoch milliseconds or text; read whole, as a value
    /// (every string and number in it must be readable).
    fn event_time(&mut self) -> Result<EventTime<'a>> {
        self.c.ws();
        match self.c.peek() {
            Some(b'"') => {
                let s = self.c.string()?;
                Ok(self.checked(s).map_or(EventTime::Other, EventTime::Text))
            }
            Some(b'-' | b'0'..=b'9') => Ok(self.number()?.map_or(EventTime::Other, EventTime::Ms)),
            Some(b'n') => {
                self.c.literal(b"null")?;
                Ok(EventTime::Absent)
            }
            _ => {
                self.whole_value()?;
                Ok(EventTime::Other)
            }
        }
    }

    /// Validates a value every part of which is read.
    fn whole_value(&mut self) -> Result<()> {
        self.c.ws();
        match self.c.peek() {
            Some(b'{') => self.members(Names::Lenient, |s, _| s.whole_value())?,
            Some(b'[') => {
                if self.c.open(b'[', b']')? {
                    loop {
                        self.whole_value()?;
                        if !self.c.next_or_close(b']')? {
                            break;
                        }
                    }
                    self.c.leave();
                }
            }
            _ => self.scalar_or_skip()?,
        }
        Ok(())
    }

    /// `participants`: the latest `connectedTime` / `endTime` of the
    /// participant objects in the array.
    fn participants(&mut self) -> Result<Option<i64>> {
        self.c.ws();
        if self.c.peek() != Some(b'[') {
            self.scalar_or_skip()?;
            return Ok(None);
        }
        let mut latest = LatestTime::default();
        if self.c.open(b'[', b']')? {
            loop {
                self.c.ws();
                if self.c.peek() == Some(b'{') {
                    self.participant(&mut latest)?;
                } else {
                    self.scalar_or_skip()?;
                }
                if !self.c.next_or_close(b']')? {
                    break;
                }
            }
            self.c.leave();
        }
        Ok(latest.finish())
    }

    fn participant(&mut self, latest: &mut LatestTime<'a>) -> Result<()> {
        let (mut connected, mut end) = (None, None);
        let mut seen = 0;
        self.members(Names::Lenient, |s, name| {
            let bit = match name {
                "connectedTime" => set(&mut connected, s.loose()?, 1),
                "endTime" => set(&mut end, s.loose()?, 2),
                _ => return s.c.skip_inner(),
            };
            if repeated(&mut seen, bit) {
                s.broken = true;
            }
            Ok(())
        })?;
        latest.offer(connected);
        latest.offer(end);
        Ok(())
    }
}

/// How member names that name no text (a lone surrogate escape) are taken.
#[derive(Clone, Copy)]
enum Names {
    /// The frame is no frame (envelope level: serde refused it).
    Strict,
    /// The body's fields cannot be read; the name reads as empty.
    Lenient,
}

/// Stores a field's value and answers its bit, for [`repeated`].
fn set<T>(field: &mut T, value: T, bit: u16) -> u16 {
    *field = value;
    bit
}

/// Notes `bit` as seen; answers whether it had been already.
fn repeated(seen: &mut u16, bit: u16) -> bool {
    let again = *seen & bit != 0;
    *seen |= bit;
    again
}
