//! Byte layouts of generated export files, so that any byte range can be
//! produced without the bytes before it.
//!
//! Records have a fixed size, so an offset names a record by arithmetic:
//! NDJSON is `n` lines of `r` bytes; a JSON array is `[`, then each record
//! (`r` bytes) followed by `,` (`]` after the last). Containers wrap that
//! payload with headers whose sizes are known up front: ZIP as one
//! *stored* entry (sizes and CRC in the local header, no data descriptor),
//! gzip as *stored* deflate blocks. The CRC of a payload is computed once
//! per file, in the background, when the emulator starts.

use std::sync::{Arc, OnceLock};

use super::export_record::{self, Framing};
use crate::emulator::downloads::Content;

/// Largest stored deflate block.
const BLOCK: u64 = 65_535;
/// Deflate stored-block header: BFINAL/BTYPE byte, LEN, NLEN.
const BLOCK_HEADER: u64 = 5;
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// DOS time and date of every ZIP entry (2024-05-01 00:00:00).
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = ((2024 - 1980) << 9) | (5 << 5) | 1;

/// The records of a file, laid out.
#[derive(Debug, Clone)]
pub struct Payload {
    /// Seed of the records.
    pub seed: u64,
    /// Which export (part of every record's identity).
    pub export_no: u64,
    /// Framing.
    pub framing: Framing,
    /// Number of records.
    pub records: u64,
    /// Bytes per record (NDJSON: including the newline).
    pub record_bytes: u64,
    /// Every n-th record is malformed (0: none).
    pub malformed_every: u64,
}

impl Payload {
    /// Bytes of the payload.
    pub fn len(&self) -> u64 {
        match self.framing {
            Framing::Ndjson => self.records * self.record_bytes,
            Framing::JsonArray if self.records == 0 => 2,
            Framing::JsonArray => self.records * (self.record_bytes + 1) + 1,
        }
    }

    /// True when the payload holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether record `i` is malformed.
    pub fn is_malformed(&self, i: u64) -> bool {
        self.malformed_every > 0 && i % self.malformed_every == self.malformed_every - 1
    }

    fn record(&self, i: u64, out: &mut Vec<u8>) {
        export_record::write(
            out,
            self.seed,
            self.export_no,
            i,
            self.record_bytes as usize,
            self.framing,
            self.is_malformed(i),
        );
    }

    /// Fills `buf` from `offset`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut scratch = Vec::with_capacity(self.record_bytes as usize);
        let mut pos = offset;
        let mut done = 0;
        let r = self.record_bytes;
        while done < buf.len() {
            let want = buf.len() - done;
            match self.framing {
                Framing::Ndjson => {
                    let (i, w) = (pos / r, pos % r);
                    self.record(i, &mut scratch);
                    let n = ((r - w) as usize).min(want);
                    buf[done..done + n].copy_from_slice(&scratch[w as usize..w as usize + n]);
                    done += n;
                    pos += n as u64;
                }
                Framing::JsonArray if pos == 0 => {
                    buf[done] = b'[';
                    done += 1;
                    pos += 1;
                }
                Framing::JsonArray if self.records == 0 => {
                    buf[done] = b']';
                    done += 1;
                    pos += 1;
                }
                Framing::JsonArray => {
                    let q = pos - 1;
                    let (i, w) = (q / (r + 1), q % (r + 1));
                    if w == r {
                        buf[done] = if i + 1 < self.records { b',' } else { b']' };
                        done += 1;
                        pos += 1;
                    } else {
                        self.record(i, &mut scratch);
                        let n = ((r - w) as usize).min(want);
                        buf[done..done + n].copy_from_slice(&scratch[w as usize..w as usize + n]);
                        done += n;
                        pos += n as u64;
                    }
                }
            }
        }
    }

    /// CRC-32 of the whole payload (one pass, constant memory).
    pub fn crc32(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let len = self.len();
        let mut pos = 0;
        while pos < len {
            let n = ((len - pos) as usize).min(buf.len());
            self.fill(pos, &mut buf[..n]);
            h.update(&buf[..n]);
            pos += n as u64;
        }
        h.finalize()
    }
}

impl Content for Payload {
    fn len(&self) -> u64 {
        Payload::len(self)
    }
    fn fill(&self, offset: u64, buf: &mut [u8]) {
        Payload::fill(self, offset, buf)
    }
}

/// A payload's CRC, computed once (in the background from the start; a
/// request that needs it before then waits for it).
#[derive(Debug)]
pub struct Crc {
    payload: Payload,
    value: OnceLock<u32>,
}

impl Crc {
    /// Starts computing the CRC of `payload` on a thread of its own.
    pub fn start(payload: Payload) -> Arc<Crc> {
        let crc = Arc::new(Crc {
            payload,
            value: OnceLock::new(),
        });
        let bg = crc.clone();
        let _ = std::thread::Builder::new().name("emulator-crc".into()).spawn(move || {
            bg.get();
        });
        crc
    }

    /// The CRC (waits for it if needed).
    pub fn get(&self) -> u32 {
        *self.value.get_or_init(|| self.payload.crc32())
    }
}

/// A payload inside gzip: a header, stored deflate blocks, CRC and size.
pub struct Gzip {
    /// The payload.
    pub crc: Arc<Crc>,
}

impl Gzip {
    fn payload(&self) -> &Payload {
        &self.crc.payload
    }
    fn blocks(&self) -> u64 {
        self.payload().len().div_ceil(BLOCK).max(1)
    }
    fn body_len(&self) -> u64 {
        self.blocks() * BLOCK_HEADER + self.payload().len()
    }
}

impl Content for Gzip {
    fn len(&self) -> u64 {
        GZIP_HEADER.len() as u64 + self.body_len() + 8
    }

    fn fill(&self, offset: u64, buf: &mut [u8]) {
        let p_len = self.payload().len();
        let body_end = GZIP_HEADER.len() as u64 + self.body_len();
        let mut pos = offset;
        let mut done = 0;
        while done < buf.len() {
            let want = buf.len() - done;
            if pos < GZIP_HEADER.len() as u64 {
                let n = (GZIP_HEADER.len() - pos as usize).min(want);
                buf[done..done + n].copy_from_slice(&GZIP_HEADER[pos as usize..pos as usize + n]);
                done += n;
                pos += n as u64;
            } else if pos < body_end {
                let q = pos - GZIP_HEADER.len() as u64;
                let (k, w) = (q / (BLOCK + BLOCK_HEADER), q % (BLOCK + BLOCK_HEADER));
                let data_len = (p_len - (k * BLOCK).min(p_len)).min(BLOCK);
                if w < BLOCK_HEADER {
                    let last = k + 1 == self.blocks();
                    let len = data_len as u16;
                    let mut h = [u8::from(last), 0, 0, 0, 0];
                    h[1..3].copy_from_slice(&len.to_le_bytes());
                    h[3..5].copy_from_slice(&(!len).to_le_bytes());
                    let n = ((BLOCK_HEADER - w) as usize).min(want);
                    buf[done..done + n].copy_from_slice(&h[w as usize..w as usize + n]);
                    done += n;
                    pos += n as u64;
                } else {
                    let within = w - BLOCK_HEADER;
                    let n = ((data_len - within) as usize).min(want);
                    self.payload().fill(k * BLOCK + within, &mut buf[done..done + n]);
                    done += n;
                    pos += n as u64;
                }
            } else {
                let mut t = [0u8; 8];
                t[..4].copy_from_slice(&self.crc.get().to_le_bytes());
                t[4..].copy_from_slice(&(p_len as u32).to_le_bytes());
                let w = (pos - body_end) as usize;
                let n = (8 - w).min(want);
                buf[done..done + n].copy_from_slice(&t[w..w + n]);
                done += n;
                pos += n as u64;
            }
        }
    }
}

/// A payload as the one stored entry of a ZIP archive.
pub struct Zip {
    /// The payload.
    pub crc: Arc<Crc>,
    /// The entry's name.
    pub name: String,
    head: OnceLock<(Vec<u8>, Vec<u8>)>,
}

/// Largest entry without ZIP64.
pub const ZIP_MAX: u64 = 0xFFFF_FFFE;

impl Zip {
    /// An archive of `crc`'s payload named `name`.
    pub fn new(crc: Arc<Crc>, name: String) -> Self {
        Zip {
            crc,
            name,
            head: OnceLock::new(),
        }
    }

    fn local_len(&self) -> u64 {
        30 + self.name.len() as u64
    }

    fn tail_len(&self) -> u64 {
        46 + self.name.len() as u64 + 22
    }

    /// The local header and the central directory + end record.
    fn headers(&self) -> &(Vec<u8>, Vec<u8>) {
        self.head.get_or_init(|| {
            let crc = self.crc.get();
            let size = self.crc.payload.len() as u32;
            let name = self.name.as_bytes();
            let mut local = Vec::with_capacity(30 + name.len());
            local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            local.extend_from_slice(&10u16.to_le_bytes()); // version needed
            local.extend_from_slice(&0u16.to_le_bytes()); // flags
            local.extend_from_slice(&0u16.to_le_bytes()); // stored
            local.extend_from_slice(&DOS_TIME.to_le_bytes());
            local.extend_from_slice(&DOS_DATE.to_le_bytes());
            local.extend_from_slice(&crc.to_le_bytes());
            local.extend_from_slice(&size.to_le_bytes());
            local.extend_from_slice(&size.to_le_bytes());
            local.extend_from_slice(&(name.len() as u16).to_le_bytes());
            local.extend_from_slice(&0u16.to_le_bytes()); // extra
            local.extend_from_slice(name);
            let mut tail = Vec::with_capacity(68 + name.len());
            tail.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            tail.extend_from_slice(&20u16.to_le_bytes()); // made by
            tail.extend_from_slice(&10u16.to_le_bytes()); // needed
            tail.extend_from_slice(&0u16.to_le_bytes());
            tail.extend_from_slice(&0u16.to_le_bytes());
            tail.extend_from_slice(&DOS_TIME.to_le_bytes());
            tail.extend_from_slice(&DOS_DATE.to_le_bytes());
            tail.extend_from_slice(&crc.to_le_bytes());
            tail.extend_from_slice(&size.to_le_bytes());
            tail.extend_from_slice(&size.to_le_bytes());
            tail.extend_from_slice(&(name.len() as u16).to_le_bytes());
            tail.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
            tail.extend_from_slice(&0u32.to_le_bytes()); // external attributes
            tail.extend_from_slice(&0u32.to_le_bytes()); // local header offset
            tail.extend_from_slice(name);
            let cd_len = tail.len() as u32;
            let cd_offset = (self.local_len() + self.crc.payload.len()) as u32;
            tail.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
            tail.extend_from_slice(&[0; 4]); // disk numbers
            tail.extend_from_slice(&1u16.to_le_bytes());
            tail.extend_from_slice(&1u16.to_le_bytes());
            tail.extend_from_slice(&cd_len.to_le_bytes());
            tail.extend_from_slice(&cd_offset.to_le_bytes());
            tail.extend_from_slice(&0u16.to_le_bytes()); // comment
            (local, tail)
        })
    }
}

impl Content for Zip {
    fn len(&self) -> u64 {
        self.local_len() + self.crc.payload.len() + self.tail_len()
    }

    fn fill(&self, offset: u64, buf: &mut [u8]) {
        let (local, tail) = self.headers();
        let data_end = self.local_len() + self.crc.payload.len();
        let mut pos = offset;
        let mut done = 0;
        while done < buf.len() {
            let want = buf.len() - done;
            let n = if pos < self.local_len() {
                let w = pos as usize;
                let n = (local.len() - w).min(want);
                buf[done..done + n].copy_from_slice(&local[w..w + n]);
                n
            } else if pos < data_end {
                let n = ((data_end - pos) as usize).min(want);
                self.crc.payload.fill(pos - self.local_len(), &mut buf[done..done + n]);
                n
            } else {
                let w = (pos - data_end) as usize;
                let n = (tail.len() - w).min(want);
                buf[done..done + n].copy_from_slice(&tail[w..w + n]);
                n
            };
            done += n;
            pos += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn payload(framing: Framing, records: u64, malformed_every: u64) -> Payload {
        Payload {
            seed: 1,
            export_no: 2,
            framing,
            records,
            record_bytes: 1024,
            malformed_every,
        }
    }

    fn all(c: &dyn Content) -> Vec<u8> {
        let mut v = vec![0u8; c.len() as usize];
        c.fill(0, &mut v);
        v
    }

    #[test]
    fn ndjson_and_json_arrays_parse_and_any_range_matches_the_whole() {
        for framing in [Framing::Ndjson, Framing::JsonArray] {
            let p = payload(framing, 50, 7);
            let whole = all(&p);
            assert_eq!(whole.len() as u64, p.len());
            match framing {
                Framing::Ndjson => {
                    let lines: Vec<&[u8]> = whole.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
                    assert_eq!(lines.len(), 50);
                    let bad = lines
                        .iter()
                        .filter(|l| serde_json::from_slice::<serde_json::Value>(l).is_err())
                        .count();
                    assert_eq!(bad, 7, "records 6, 13, ... are malformed");
                }
                Framing::JsonArray => {
                    let v: Vec<serde_json::Value> = serde_json::from_slice(&whole).unwrap();
                    assert_eq!(v.len(), 50);
                    assert_eq!(v.iter().filter(|r| !r.is_object()).count(), 7);
                    assert_eq!(v[3]["recordNumber"], 3);
                }
            }
            for (off, n) in [(0u64, 10usize), (1, 3000), (1023, 2), (1024, 1025), (p.len() - 5, 5)] {
                let mut part = vec![0u8; n];
                p.fill(off, &mut part);
                assert_eq!(part, whole[off as usize..off as usize + n], "{framing:?} at {off}");
            }
        }
        assert_eq!(all(&payload(Framing::JsonArray, 0, 0)), b"[]");
    }

    #[test]
    fn gzip_and_zip_are_valid_archives_with_their_crc() {
        let p = payload(Framing::Ndjson, 200, 0);
        let plain = all(&p);
        let crc = Crc::start(p.clone());
        let gz = Gzip { crc: crc.clone() };
        let bytes = all(&gz);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, plain);
        let mut part = vec![0u8; 70_000];
        gz.fill(65_000, &mut part);
        assert_eq!(part, bytes[65_000..135_000]);

        let zip = Zip::new(crc, "export.ndjson".into());
        let bytes = all(&zip);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
        let mut entry = archive.by_name("export.ndjson").unwrap();
        let mut out = Vec::new();
        entry.read_to_end(&mut out).unwrap();
        assert_eq!(out, plain);
        let mut streamed = &bytes[..];
        let mut f = zip::read::read_zipfile_from_stream(&mut streamed).unwrap().unwrap();
        let mut out2 = Vec::new();
        f.read_to_end(&mut out2).unwrap();
        assert_eq!(out2, plain);
    }
}
