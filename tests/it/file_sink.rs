//! The file sink as a warehouse loader sees it: kill -9 under load leaves
//! no duplicate and loses nothing, and a loader polling the directory only
//! ever finds complete files that never change, closed in time when the
//! listener goes quiet.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use cxrelay::store::StoreDb;

fn generator(rate: u64, count: u64, keys: u64) -> String {
    format!(
        "[[source]]\nname = \"gen\"\nkind = \"generator\"\ntopics = [\"calls.{{key}}.start\"]\nrate = {rate}\ncount = {count}\nkeys = {keys}\npayload_bytes = 300\n\n"
    )
}

fn file_listener(dir: &Path, sink_keys: &str) -> String {
    format!(
        "[[listener]]\nname = \"files\"\ntopics = [\"calls.>\"]\nsink = {{ kind = \"file\", path = \"{}\", batch_events = 500, batch_interval = \"50ms\"{sink_keys} }}\nmailbox = 2048\n\n",
        dir.join("out").display()
    )
}

/// Every file under `dir`, recursively (the sink's state lives in
/// `data_dir`, never among the output).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A final name, as a loader's `*.ndjson*` pattern matches it.
fn is_final(p: &Path) -> bool {
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    !name.starts_with('.') && name.contains(".ndjson")
}

/// The complete lines of a gzip file: members that decode, up to the
/// last newline (a temporary file may end in a unit being written).
fn gzip_lines(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut text = Vec::new();
    let decoded = flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut text);
    let end = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let lines = String::from_utf8_lossy(&text[..end])
        .lines()
        .map(str::to_string)
        .collect();
    match decoded {
        Ok(_) if end == text.len() => Ok(lines),
        Ok(_) => Err(format!("ends mid-line after {} complete lines", end)),
        Err(e) => Err(format!("{e} after {} bytes", text.len())),
    }
}

/// The event ids of every line of every file (final and temporary), in
/// order, and how many lines there are.
fn ids_in(dir: &Path) -> Vec<u64> {
    let mut ids = Vec::new();
    for f in files_under(&dir.join("out")) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        // A temporary file may end in a batch being written: keep what is
        // whole, as recovery would.
        let lines = gzip_lines(&bytes).unwrap_or_else(|_| {
            let mut text = Vec::new();
            let _ = flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut text);
            let end = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            String::from_utf8_lossy(&text[..end])
                .lines()
                .map(str::to_string)
                .collect()
        });
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{}: {e}: {l}", f.display()));
            let id = v["id"].as_str().unwrap_or_default();
            ids.push(id.strip_prefix("gen-").and_then(|n| n.parse().ok()).unwrap_or(u64::MAX));
        }
    }
    ids
}

/// The generator's committed checkpoint, read from a stopped cxrelay.
fn committed(dir: &Path) -> u64 {
    let db = StoreDb::open(&dir.join("data"), 1, 1).unwrap();
    cxrelay::sources::generator::parse_checkpoint(db.checkpoint("gen").unwrap())
}

#[test]
fn kill_9_under_load_then_a_clean_run_writes_every_event_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let total = 60_000;
    // Small files, gzip and partitions: kills land in writes, closes and
    // state saves alike.
    let config = format!(
        "{}{}{}",
        preamble(dir),
        generator(10_000, total, 100),
        file_listener(
            dir,
            ", compression = \"gzip\", rotate_bytes = 16384, rotate_interval = \"1s\", partition = \"{date}/{hour}\""
        )
    );
    let mut at_kill = Vec::new();
    let seed = kill_9_at_random_moments(dir, &config, 5, || {
        let ids = ids_in(dir);
        let distinct: HashSet<u64> = ids.iter().copied().collect();
        at_kill.push((committed(dir), ids.len(), ids.len() - distinct.len()));
    });
    let p = Proc::start(dir, &config);
    // Reading everything back costs a while: look twice a second.
    let mut looked = Instant::now();
    wait_until("every event in files", Duration::from_secs(120), || {
        if looked.elapsed() < Duration::from_millis(500) {
            return false;
        }
        looked = Instant::now();
        ids_in(dir).iter().copied().collect::<HashSet<u64>>().len() as u64 == total
    });
    assert!(p.terminate().success());
    let ids = ids_in(dir);
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for id in &ids {
        *seen.entry(*id).or_default() += 1;
    }
    let duplicates: Vec<u64> = seen.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
    let missing = (0..total).filter(|i| !seen.contains_key(i)).count();
    let files = files_under(&dir.join("out"));
    let finals = files.iter().filter(|f| is_final(f)).count();
    eprintln!(
        "file sink kill -9 test (seed {seed}): (committed, lines, duplicate lines) at each kill {at_kill:?}; \
         after the clean run: {} lines, {} distinct events of {total}, {} duplicate lines, {missing} missing, \
         {finals} closed files + {} temporary",
        ids.len(),
        seen.len(),
        ids.len() - seen.len(),
        files.len() - finals
    );
    assert!(
        duplicates.is_empty(),
        "{} events written more than once, e.g. {:?}",
        duplicates.len(),
        &duplicates[..duplicates.len().min(5)]
    );
    assert_eq!(missing, 0);
    assert_eq!(ids.len() as u64, total);
    assert!(at_kill.iter().all(|(_, _, dups)| *dups == 0), "{at_kill:?}");
    assert!(at_kill.windows(2).all(|w| w[1].0 >= w[0].0), "{at_kill:?}");
}

/// What a loader polling the directory found.
#[derive(Default)]
struct LoaderView {
    /// Final files seen, with their size when first loaded.
    loaded: HashMap<PathBuf, u64>,
    /// Event ids in the loaded files, in load order.
    ids: Vec<u64>,
    /// Everything wrong it saw (incomplete, invalid, growing files).
    problems: Vec<String>,
    polls: u64,
}

/// A Snowpipe-like loader: lists final names, loads each new file once
/// (all of it must decode and end a line), and checks on every later poll
/// that a loaded file never changes size.
fn loader(root: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<LoaderView> {
    std::thread::spawn(move || {
        let mut view = LoaderView::default();
        loop {
            let last = stop.load(Ordering::SeqCst);
            view.polls += 1;
            for f in files_under(&root).into_iter().filter(|f| is_final(f)) {
                let Ok(bytes) = std::fs::read(&f) else {
                    // A loader that moved it away would see this; we do not.
                    view.problems.push(format!("{} listed but unreadable", f.display()));
                    continue;
                };
                match view.loaded.get(&f) {
                    Some(&size) if size != bytes.len() as u64 => view.problems.push(format!(
                        "{} changed size after loading: {size} -> {}",
                        f.display(),
                        bytes.len()
                    )),
                    Some(_) => {}
                    None => {
                        match gzip_lines(&bytes) {
                            Ok(lines) if !lines.is_empty() => {
                                for l in lines {
                                    match serde_json::from_str::<serde_json::Value>(&l) {
                                        Ok(v) => view.ids.push(
                                            v["id"]
                                                .as_str()
                                                .and_then(|s| s.strip_prefix("gen-"))
                                                .and_then(|n| n.parse().ok())
                                                .unwrap_or(u64::MAX),
                                        ),
                                        Err(e) => view.problems.push(format!("{}: bad line {e}", f.display())),
                                    }
                                }
                            }
                            Ok(_) => view.problems.push(format!("{} is empty", f.display())),
                            Err(e) => view.problems.push(format!("{} incomplete: {e}", f.display())),
                        }
                        view.loaded.insert(f, bytes.len() as u64);
                    }
                }
            }
            if last {
                return view;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

#[test]
fn a_polling_loader_sees_only_complete_unchanging_files_closed_soon_after_the_last_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let total = 20_000;
    let out = dir.join("out");
    // Eight topics into a partition each, at most four files open: files
    // are closed by size, by the open-files bound and, at the end, by age.
    let config = format!(
        "{}{}{}",
        preamble(dir),
        generator(5_000, total, 8),
        file_listener(
            dir,
            ", compression = \"gzip\", rotate_bytes = 16384, rotate_interval = \"1s\", partition = \"{topic}\", max_open_files = 4"
        )
    );
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = loader(out.clone(), stop.clone());
    let p = Proc::start(dir, &config);
    let committed_events = |p: &Proc| {
        component(&p.get("/status").json(), "files")["detail"]["committed_events"]
            .as_u64()
            .unwrap_or(0)
    };
    wait_until("every event committed to files", Duration::from_secs(60), || {
        committed_events(&p) == total
    });
    // From here the listener is quiet: its open files must close by age.
    let quiet_at = Instant::now();
    wait_until("no temporary file left", Duration::from_secs(10), || {
        files_under(&out).iter().all(|f| is_final(f))
    });
    let closed_after = quiet_at.elapsed();
    stop.store(true, Ordering::SeqCst);
    let view = watcher.join().unwrap();
    assert!(p.terminate().success());
    let distinct: HashSet<u64> = view.ids.iter().copied().collect();
    eprintln!(
        "loader test: {} polls, {} files loaded, {} events ({} distinct of {total}); last files closed {closed_after:?} \
         after the listener went quiet (rotate_interval 1s); problems: {:?}",
        view.polls,
        view.loaded.len(),
        view.ids.len(),
        distinct.len(),
        view.problems
    );
    assert!(view.problems.is_empty(), "{:?}", view.problems);
    assert!(view.loaded.len() > 20, "small files: {}", view.loaded.len());
    assert_eq!(view.ids.len() as u64, total, "every event loaded once");
    assert_eq!(distinct, (0..total).collect::<HashSet<u64>>());
    // Within the interval, plus the batch timer and a scheduling margin.
    assert!(closed_after < Duration::from_millis(2500), "{closed_after:?}");
    // Each file is in its topic's directory, under a final gzip name.
    for f in view.loaded.keys() {
        let rel = f.strip_prefix(&out).unwrap().to_string_lossy().to_string();
        assert!(rel.starts_with("calls.") && rel.ends_with(".ndjson.gz"), "{rel}");
    }
}
