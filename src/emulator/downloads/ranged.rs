//! Serving generated files: `Range` requests (206 with `Content-Range`,
//! 416 when unsatisfiable, `If-Range` against the ETag), HEAD, a known
//! `Content-Length`, and the body produced chunk by chunk from any offset
//! (never the whole file in memory). The `cut_download` fault stops a body
//! short, as a broken transfer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::http::{header, Method};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::Stream;

use crate::emulator::faults::{path_matches, Fault, FaultBook};

/// Bytes generated per body chunk.
const CHUNK: usize = 64 * 1024;

/// A file whose bytes can be produced from any offset.
pub trait Content: Send + Sync + 'static {
    /// Its length.
    fn len(&self) -> u64;
    /// True when it holds no byte.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` with the bytes from `offset` (`offset + buf.len()` is at
    /// most [`Content::len`]).
    fn fill(&self, offset: u64, buf: &mut [u8]);
}

/// A file to serve.
pub struct Download {
    /// Its bytes.
    pub content: Arc<dyn Content>,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Strong validator (quoted).
    pub etag: String,
}

/// Which bytes a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The whole file (no usable `Range`).
    Full,
    /// `first..=last`.
    Part(u64, u64),
    /// A range outside the file.
    Unsatisfiable,
}

/// Interprets a `Range` header for a file of `len` bytes. Multiple ranges
/// and malformed values are ignored (the whole file is served), as
/// RFC 9110 allows.
pub fn parse_range(value: Option<&str>, len: u64) -> Ask {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ask::Full;
    };
    if spec.contains(',') {
        return Ask::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ask::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(first), Ok(last)) if first <= last => {
            if first >= len {
                Ask::Unsatisfiable
            } else {
                Ask::Part(first, last.min(len - 1))
            }
        }
        (Ok(first), Err(_)) if b.is_empty() => {
            if first >= len {
                Ask::Unsatisfiable
            } else {
                Ask::Part(first, len - 1)
            }
        }
        (Err(_), Ok(suffix)) if a.is_empty() => {
            if suffix == 0 || len == 0 {
                Ask::Unsatisfiable
            } else {
                Ask::Part(len - suffix.min(len), len - 1)
            }
        }
        _ => Ask::Full,
    }
}

/// A body produced chunk by chunk, possibly cut short.
struct Body {
    content: Arc<dyn Content>,
    pos: u64,
    end: u64,
    cut_at: Option<u64>,
}

impl Stream for Body {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        let limit = this.cut_at.unwrap_or(this.end).min(this.end);
        if this.pos >= limit {
            // Ends the response without its remaining bytes: the client
            // sees the connection drop mid-body.
            this.end = this.pos;
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "download cut (injected fault)",
            ))));
        }
        let n = ((limit - this.pos) as usize).min(CHUNK);
        let mut buf = vec![0u8; n];
        this.content.fill(this.pos, &mut buf);
        this.pos += n as u64;
        Poll::Ready(Some(Ok(Bytes::from(buf))))
    }
}

/// Answers a GET or HEAD for `d` (a `cut_download` fault armed in
/// `faults` for this path cuts the body short).
pub fn respond(req: &HttpRequest, faults: &FaultBook, d: Download) -> HttpResponse {
    let len = d.content.len();
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok());
    let if_range_ok = req
        .headers()
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == d.etag);
    let ask = if if_range_ok {
        parse_range(range, len)
    } else {
        Ask::Full
    };
    let (first, last, mut res) = match ask {
        Ask::Unsatisfiable => {
            return HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{len}")))
                .insert_header((header::ACCEPT_RANGES, "bytes"))
                .finish();
        }
        Ask::Full => (0, len, HttpResponse::Ok()),
        Ask::Part(a, b) => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}")));
            (a, b + 1, r)
        }
    };
    res.insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, d.etag.clone()))
        .content_type(d.content_type)
        .no_chunking(last - first);
    if req.method() == Method::HEAD {
        return res.streaming(futures_util::stream::empty::<Result<Bytes, std::io::Error>>());
    }
    let path = req.path();
    let cut = match faults.take(|f| matches!(f, Fault::CutDownload { path: p, .. } if path_matches(p, path))) {
        Some(Fault::CutDownload { after_bytes, .. }) => {
            tracing::info!(path, after_bytes, "emulator: this download will be cut");
            Some(first + after_bytes)
        }
        _ => None,
    };
    res.streaming(Body {
        content: d.content,
        pos: first,
        end: last,
        cut_at: cut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ask::Full);
        assert_eq!(parse_range(Some("bytes=2-4"), 10), Ask::Part(2, 4));
        assert_eq!(parse_range(Some("bytes=2-"), 10), Ask::Part(2, 9));
        assert_eq!(parse_range(Some("bytes=2-99"), 10), Ask::Part(2, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ask::Part(7, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Ask::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Ask::Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Ask::Full);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Ask::Full);
    }
}
