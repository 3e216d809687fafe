//! How a file's bytes are compressed, one self-contained unit per commit.
//!
//! Each committed batch is appended as a complete gzip member or zstd frame.
//! Concatenated members and frames are valid files by both formats (gzip
//! readers and `zstd -d` read them all), so a file is readable after every
//! commit, and a torn tail left by a crash is cut at the end of the last
//! complete unit.

use std::io::{self, BufRead, Read, Write};

use serde::{Deserialize, Serialize};

/// Compression of the output files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Plain NDJSON (`.ndjson`).
    #[default]
    None,
    /// gzip, one member per commit (`.ndjson.gz`).
    Gzip,
    /// zstd, one frame per commit (`.ndjson.zst`).
    Zstd,
}

impl Compression {
    /// The final file name's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "ndjson",
            Compression::Gzip => "ndjson.gz",
            Compression::Zstd => "ndjson.zst",
        }
    }

    /// Appends `lines` to `out` as one self-contained unit: the lines as
    /// they are, a complete gzip member, or a complete zstd frame (with its
    /// checksum, so a damaged frame is detected rather than read wrong).
    pub fn encode_unit(self, lines: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Compression::None => {
                out.extend_from_slice(lines);
                Ok(())
            }
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                enc.write_all(lines)?;
                enc.finish().map(drop)
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, zstd::DEFAULT_COMPRESSION_LEVEL)?;
                enc.include_checksum(true)?;
                enc.write_all(lines)?;
                enc.finish().map(drop)
            }
        }
    }

    /// The length of the longest prefix of `file` made of complete units
    /// whose content ends a line: where a torn tail is cut. Reads the file
    /// once, in bounded memory.
    pub fn valid_prefix(self, file: impl Read) -> io::Result<u64> {
        let mut r = Counting {
            inner: io::BufReader::with_capacity(64 * 1024, file),
            pos: 0,
        };
        match self {
            Compression::None => {
                let mut good = 0;
                loop {
                    let buf = r.fill_buf()?;
                    if buf.is_empty() {
                        return Ok(good);
                    }
                    let n = buf.len();
                    if let Some(i) = memchr::memrchr(b'\n', buf) {
                        good = r.pos + i as u64 + 1;
                    }
                    r.consume(n);
                }
            }
            Compression::Gzip | Compression::Zstd => {
                let mut good = 0;
                while !r.fill_buf()?.is_empty() {
                    let mut last = LastByte(None);
                    let unit = match self {
                        Compression::Gzip => io::copy(&mut flate2::bufread::GzDecoder::new(&mut r), &mut last),
                        _ => zstd::stream::read::Decoder::with_buffer(&mut r)
                            .and_then(|d| io::copy(&mut d.single_frame(), &mut last)),
                    };
                    // A unit that does not decode, or whose lines are cut,
                    // is the torn tail.
                    match (unit, last.0) {
                        (Ok(_), Some(b'\n')) => good = r.pos,
                        _ => return Ok(good),
                    }
                }
                Ok(good)
            }
        }
    }
}

/// A reader that counts what its consumers take, so that the end of each
/// decoded unit is known exactly.
struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.pos += amt as u64;
        self.inner.consume(amt);
    }
}

/// Keeps only the last byte written (decoded content is checked, not kept).
struct LastByte(Option<u8>);

impl Write for LastByte {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(&b) = buf.last() {
            self.0 = Some(b);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 3] = [Compression::None, Compression::Gzip, Compression::Zstd];

    fn decode_all(c: Compression, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match c {
            Compression::None => out.extend_from_slice(bytes),
            Compression::Gzip => {
                flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
            }
            Compression::Zstd => {
                zstd::stream::read::Decoder::new(bytes)
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    fn batch(n: usize, from: usize) -> Vec<u8> {
        (from..from + n)
            .flat_map(|i| format!("{{\"id\":\"{i}\",\"pad\":\"{}\"}}\n", "x".repeat(i % 50)).into_bytes())
            .collect()
    }

    #[test]
    fn concatenated_units_read_back_as_one_file() {
        for c in ALL {
            let mut file = Vec::new();
            let mut want = Vec::new();
            for b in 0..5 {
                let lines = batch(100, b * 100);
                c.encode_unit(&lines, &mut file).unwrap();
                want.extend_from_slice(&lines);
            }
            assert_eq!(decode_all(c, &file), want, "{c:?}");
            assert_eq!(c.valid_prefix(&file[..]).unwrap(), file.len() as u64, "{c:?}");
        }
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_complete_unit() {
        for c in ALL {
            let mut file = Vec::new();
            let mut ends = Vec::new();
            for b in 0..3 {
                c.encode_unit(&batch(50, b * 50), &mut file).unwrap();
                ends.push(file.len() as u64);
            }
            // Every possible cut inside the last unit goes back to the end
            // of the one before (plain lines have no units: to the last
            // complete line).
            for cut in ends[1]..ends[2] {
                let got = c.valid_prefix(&file[..cut as usize]).unwrap();
                let want = match c {
                    Compression::None => memchr::memrchr(b'\n', &file[..cut as usize]).map_or(0, |i| i as u64 + 1),
                    _ => ends[1],
                };
                assert_eq!(got, want, "{c:?} cut at {cut}");
            }
            // A corrupt byte inside the last unit is caught as well.
            let mut bad = file.clone();
            let mid = (ends[1] + ends[2]) as usize / 2;
            bad[mid] ^= 0x55;
            if c != Compression::None {
                assert_eq!(c.valid_prefix(&bad[..]).unwrap(), ends[1], "{c:?} corrupt");
            }
            assert_eq!(c.valid_prefix(&file[..0]).unwrap(), 0);
        }
    }

    #[test]
    fn final_names_have_the_loader_extensions() {
        let exts: Vec<&str> = ALL.iter().map(|c| c.extension()).collect();
        assert_eq!(exts, ["ndjson", "ndjson.gz", "ndjson.zst"]);
    }
}
