//! Object keys: `<prefix>/<partition>/<listener>-<tag>-<first>-<last>.<ext>`.
//!
//! `first` and `last` are the lowest and highest journal positions in the
//! object, so a name says what it holds: a writer that starts after a crash
//! (or retries a failed upload) looks for an object starting at the first
//! position it is about to write, and skips what that object already holds.
//! `tag` is a random word kept with the journal (`<data_dir>/sinks`): it
//! separates the objects of two cxrelay installations writing one bucket,
//! and of a journal started afresh (positions begin again at 1).

use std::path::Path;

use cxrelay_actors::Event;
use sha2::{Digest, Sha256};

use crate::sinks::file::partition::{sanitised, PartitionTemplate};
use crate::sinks::SinkError;

/// Digits of a position in a name: every `u64` fits, and names sort by
/// position.
const POSITION_DIGITS: usize = 20;

/// How a writer names its objects.
#[derive(Debug, Clone)]
pub struct Naming {
    /// Literal key prefix, without a trailing `/` (may be empty).
    pub prefix: String,
    /// The partition template under the prefix.
    pub partition: PartitionTemplate,
    /// The listener (as it appears in names: sanitised).
    pub listener: String,
    /// `ndjson`, `ndjson.gz` or `ndjson.zst`.
    pub extension: &'static str,
}

impl Naming {
    /// The "directory" an event's object goes in (no trailing `/`).
    pub fn dir(&self, ev: &Event, listener: &str) -> String {
        let partition = self.partition.render(ev, listener);
        if self.prefix.is_empty() {
            partition
        } else {
            format!("{}/{partition}", self.prefix)
        }
    }

    /// The start of every name of this listener and `tag`.
    pub fn head(&self, tag: &str) -> String {
        format!("{}-{tag}-", self.listener)
    }

    /// The start of every name whose first position is `first`.
    pub fn stem(&self, tag: &str, first: u64) -> String {
        format!("{}{first:0POSITION_DIGITS$}-", self.head(tag))
    }

    /// The first and last positions of a name, from what follows its
    /// [`Naming::head`] (`<first>-<last>.<ext>`).
    pub fn range_of(&self, after_head: &str) -> Option<(u64, u64)> {
        let (first, rest) = after_head.split_at_checked(POSITION_DIGITS)?;
        let first = first
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| first.parse().ok())
            .flatten()?;
        Some((first, self.last_of(rest.strip_prefix('-')?)?))
    }

    /// An object's name (no directory).
    pub fn name(&self, tag: &str, first: u64, last: u64) -> String {
        format!("{}{last:0POSITION_DIGITS$}.{}", self.stem(tag, first), self.extension)
    }

    /// The last position in an object's name, from what follows its stem
    /// (`<last>.<ext>`); `None` when it is not one of this writer's names.
    pub fn last_of(&self, after_stem: &str) -> Option<u64> {
        let digits = after_stem.strip_suffix(self.extension)?.strip_suffix('.')?;
        (digits.len() == POSITION_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    }
}

/// Checks a `prefix`: relative, `/`-separated, no empty, `.` or `..`
/// segment, no control character. Answers it without a trailing `/`.
pub fn check_prefix(prefix: &str) -> Result<String, String> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if trimmed.starts_with('/') {
        return Err("must not start with `/`".into());
    }
    for segment in trimmed.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!("`{prefix}` has an empty, `.` or `..` segment"));
        }
        if segment.chars().any(|c| c.is_control() || c == '\\') {
            return Err(format!("`{}` has a control character or `\\`", prefix.escape_debug()));
        }
    }
    Ok(trimmed.to_string())
}

/// A random 8-hex-digit word (no `rand` outside the emulator: the time,
/// the process and a counter, hashed).
pub fn random_tag(salt: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(salt.as_bytes());
    hex::encode(&h.finalize()[..4])
}

/// The installation's tag for `listener`, kept in `state_dir` beside the
/// journal (created on first use; wiped with the journal, so a new journal
/// never reuses the names of an old one).
pub fn installation_tag(state_dir: &Path, listener: &str) -> Result<String, SinkError> {
    let path = state_dir.join(format!(".cxrelay-{}.object_store", sanitised(listener)));
    let io = |what: &str, source: std::io::Error| SinkError::Io {
        what: format!("{what} {}", path.display()),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let tag = text.trim();
            if tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(tag.to_string());
            }
            Err(io(
                "reading the object naming tag",
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not 8 hex digits"),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(state_dir).map_err(|e| io("creating the directory of", e))?;
            let tag = random_tag(listener);
            // Written whole, then renamed and synced: a crash leaves the
            // old state (no file) or the new one, never half a tag.
            let tmp = path.with_extension("object_store.tmp");
            std::fs::write(&tmp, format!("{tag}\n")).map_err(|e| io("writing", e))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io("syncing", e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io("renaming into", e))?;
            if let Ok(dir) = std::fs::File::open(state_dir) {
                let _ = dir.sync_all();
            }
            Ok(tag)
        }
        Err(e) => Err(io("reading", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming() -> Naming {
        Naming {
            prefix: "raw/genesys".into(),
            partition: PartitionTemplate::parse("{listener}/{date}/{hour}").unwrap(),
            listener: "wh".into(),
            extension: "ndjson.gz",
        }
    }

    #[test]
    fn names_carry_their_positions_and_sort_by_them() {
        let n = naming();
        let name = n.name("0a1b2c3d", 42, 5041);
        assert_eq!(name, "wh-0a1b2c3d-00000000000000000042-00000000000000005041.ndjson.gz");
        let stem = n.stem("0a1b2c3d", 42);
        assert_eq!(n.last_of(name.strip_prefix(&stem).unwrap()), Some(5041));
        assert!(!name.starts_with(&n.stem("0a1b2c3d", 4)));
        assert_eq!(n.last_of("12.ndjson.gz"), None);
        assert_eq!(n.last_of("00000000000000005041.ndjson"), None);
        assert!(n.name("0a1b2c3d", 9, 10) < n.name("0a1b2c3d", 10, 10));
        let max = n.name("0a1b2c3d", u64::MAX, u64::MAX);
        assert_eq!(n.last_of(&max[n.stem("0a1b2c3d", u64::MAX).len()..]), Some(u64::MAX));
        let ev = Event::builder("gen", "t").event_time(Some(1_714_571_999_999)).build();
        assert_eq!(n.dir(&ev, "wh"), "raw/genesys/wh/2024-05-01/13");
    }

    #[test]
    fn prefixes_are_relative_and_plain() {
        assert_eq!(check_prefix("").unwrap(), "");
        assert_eq!(check_prefix("a/b/").unwrap(), "a/b");
        for bad in ["/abs", "a//b", "a/../b", "./a", "a\nb"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_tag_is_kept_and_a_new_directory_gets_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let a = installation_tag(dir.path(), "l/1").unwrap();
        assert_eq!(a.len(), 8);
        assert_eq!(installation_tag(dir.path(), "l/1").unwrap(), a);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(installation_tag(other.path(), "l/1").unwrap(), a);
        assert_ne!(random_tag("x"), random_tag("x"));
    }
}
