//! One recording downloaded to a file: bytes go to `<name>.part` as they
//! arrive (hashed on the way), the transfer resumes from the part's length
//! (after a broken connection, an expired URL or a restart), and the file
//! gets its final name only once complete and fsynced.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::batch_api::RecordingRef;

/// Where a recording goes: `<output>/<conversationId>/<recordingId>.<ext>`.
pub fn final_path(output: &Path, r: &RecordingRef, content_type: Option<&str>) -> PathBuf {
    output
        .join(sanitize(&r.conversation_id))
        .join(format!("{}.{}", sanitize(&r.recording_id), extension(content_type)))
}

/// File name extension of a media type.
pub fn extension(content_type: Option<&str>) -> &'static str {
    let t = content_type.unwrap_or_default();
    let base = t.split(';').next().unwrap_or_default().trim();
    match base {
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/webm" | "video/webm" => "webm",
        "audio/mp4" | "video/mp4" => "mp4",
        _ => "bin",
    }
}

/// Ids come from the platform: keep them from naming anything outside the
/// output directory.
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A recording being written.
pub struct PartFile {
    part: PathBuf,
    done: PathBuf,
    file: File,
    hasher: Sha256,
    len: u64,
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> String {
    let context = format!("{what} {}", path.display());
    move |e| format!("{context}: {e}")
}

impl PartFile {
    /// Opens (or continues) the part file for `done`: what it holds is
    /// hashed so that the digest covers the whole recording.
    pub fn open(done: PathBuf) -> Result<PartFile, String> {
        let dir = done.parent().map(Path::to_path_buf).unwrap_or_default();
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let mut name = done.file_name().unwrap_or_default().to_os_string();
        name.push(".part");
        let part = done.with_file_name(name);
        let mut hasher = Sha256::new();
        let mut len = 0;
        if let Ok(mut existing) = File::open(&part) {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = existing.read(&mut buf).map_err(io("reading", &part))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                len += n as u64;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .map_err(io("opening", &part))?;
        Ok(PartFile {
            part,
            done,
            file,
            hasher,
            len,
        })
    }

    /// Bytes written so far (where the transfer resumes).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing is written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends received bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.file.write_all(bytes).map_err(io("writing", &self.part))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Makes the recording durable under its final name; answers its path
    /// and SHA-256 (hex).
    pub fn finish(self) -> Result<(PathBuf, String), String> {
        self.file.sync_all().map_err(io("syncing", &self.part))?;
        fs::rename(&self.part, &self.done).map_err(io("renaming", &self.part))?;
        if let Some(dir) = self.done.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io("syncing", dir))?;
        }
        Ok((self.done, hex::encode(self.hasher.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_resume_and_hash_the_whole_file() {
        let tmp = tempfile::tempdir().unwrap();
        let r = RecordingRef {
            conversation_id: "c/../1".into(),
            recording_id: "r1".into(),
        };
        let path = final_path(tmp.path(), &r, Some("audio/ogg; codecs=opus"));
        assert_eq!(path, tmp.path().join("c____1").join("r1.ogg"));
        let mut p = PartFile::open(path.clone()).unwrap();
        p.write(b"hello ").unwrap();
        drop(p);
        let mut p = PartFile::open(path.clone()).unwrap();
        assert_eq!(p.len(), 6);
        p.write(b"world").unwrap();
        let (done, sha) = p.finish().unwrap();
        assert_eq!(std::fs::read(&done).unwrap(), b"hello world");
        assert_eq!(sha, hex::encode(Sha256::digest(b"hello world")));
        assert_eq!(extension(Some("audio/x-wav")), "wav");
        assert_eq!(extension(None), "bin");
    }
}
