//! What an export file is: configured, or detected from its first bytes
//! (ZIP and gzip by their magic numbers, a JSON array by `[`, NDJSON by
//! `{`).

use std::io::BufRead;

use serde::{Deserialize, Serialize};

/// The `format` key of an export source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// Detect from the content.
    #[default]
    Auto,
    /// One JSON object per line.
    Ndjson,
    /// One JSON array of objects.
    Json,
    /// A ZIP archive of NDJSON or JSON files.
    Zip,
    /// gzip of NDJSON or JSON.
    Gzip,
}

/// What a stream turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detected {
    /// One JSON object per line.
    Ndjson,
    /// One JSON array.
    JsonArray,
    /// A ZIP archive.
    Zip,
    /// gzip.
    Gzip,
}

impl Detected {
    /// Whether byte offsets in the file are offsets in the records (no
    /// container), so a restart can resume by `Range`.
    pub fn is_plain(self) -> bool {
        matches!(self, Detected::Ndjson | Detected::JsonArray)
    }

    /// Name for status and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Detected::Ndjson => "ndjson",
            Detected::JsonArray => "json",
            Detected::Zip => "zip",
            Detected::Gzip => "gzip",
        }
    }
}

/// Why a stream is not an export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Neither a container nor JSON.
    #[error("the file is not JSON, NDJSON, ZIP or gzip (it starts with byte 0x{0:02x})")]
    Unknown(u8),
    /// Reading failed.
    #[error("{0}")]
    Io(String),
}

/// Looks at the first bytes of `r` (without consuming anything but
/// leading whitespace) and names the format; `Ok(None)` for an empty
/// stream. Also answers how many whitespace bytes were skipped.
pub fn sniff<R: BufRead>(r: &mut R, containers: bool) -> Result<(Option<Detected>, u64), FormatError> {
    let mut skipped = 0u64;
    loop {
        let buf = r.fill_buf().map_err(|e| FormatError::Io(e.to_string()))?;
        if buf.is_empty() {
            return Ok((None, skipped));
        }
        if containers && skipped == 0 {
            if buf.starts_with(b"PK\x03\x04") || buf.starts_with(b"PK\x05\x06") {
                return Ok((Some(Detected::Zip), 0));
            }
            if buf.starts_with(&[0x1f, 0x8b]) {
                return Ok((Some(Detected::Gzip), 0));
            }
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let first = buf[i];
                r.consume(i);
                skipped += i as u64;
                return match first {
                    b'[' => Ok((Some(Detected::JsonArray), skipped)),
                    b'{' => Ok((Some(Detected::Ndjson), skipped)),
                    other => Err(FormatError::Unknown(other)),
                };
            }
            None => {
                let n = buf.len();
                r.consume(n);
                skipped += n as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content() {
        let d = |b: &[u8]| sniff(&mut &b[..], true).map(|(d, _)| d);
        assert_eq!(d(b"PK\x03\x04rest").unwrap(), Some(Detected::Zip));
        assert_eq!(d(&[0x1f, 0x8b, 8]).unwrap(), Some(Detected::Gzip));
        assert_eq!(d(b"  \n[{}]").unwrap(), Some(Detected::JsonArray));
        assert_eq!(d(b"{\"a\":1}\n").unwrap(), Some(Detected::Ndjson));
        assert_eq!(d(b"").unwrap(), None);
        assert_eq!(d(b"<html>").unwrap_err(), FormatError::Unknown(b'<'));
        let mut r = &b"   {}"[..];
        assert_eq!(sniff(&mut r, false).unwrap(), (Some(Detected::Ndjson), 3));
        assert_eq!(r, b"{}");
    }
}
