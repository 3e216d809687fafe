//! The operator commands as a user runs them: `check` (offline, every
//! problem at once, warnings), `dlq` on a store file (read-only, show,
//! filters, dry runs, relative dates), `status`, completions, the example
//! configs, and the declared minimum Rust version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use cxrelay::store::{DeadLetter, StoreDb};
use cxrelay_actors::Event;

/// Runs the binary with nothing in its environment but what is given.
fn bare(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args).current_dir(dir).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn example_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"));
    files
}

#[test]
fn every_example_config_loads_and_checks_offline_without_any_environment() {
    let configs = example_configs();
    assert!(configs.len() >= 4, "{configs:?}");
    let tmp = tempfile::tempdir().unwrap();
    for path in configs {
        let loaded = cxrelay::config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Relative paths are taken from the file's directory.
        let base = path.parent().unwrap();
        assert!(
            loaded.config.service.data_dir.starts_with(base),
            "{}: data_dir {}",
            path.display(),
            loaded.config.service.data_dir.display()
        );
        let p = path.to_str().unwrap();
        let (code, out, err) = bare(tmp.path(), &["check", "--offline", "--config", p], &[]);
        assert_eq!(code, 0, "{}:\n{out}\n{err}", path.display());
        assert!(out.contains(": OK"), "{out}");
        assert!(!out.contains("warning:"), "{}: {out}", path.display());
        assert!(out.contains("publishes:"), "{out}");
        // No output directory was created by checking.
        assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
    }
    // Offline, the secrets to set are named.
    let live = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs/live-warehouse.toml");
    let (_, out, _) = bare(
        tmp.path(),
        &["check", "--offline", "--config", live.to_str().unwrap()],
        &[],
    );
    for var in ["GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET", "CXRELAY_MASK_KEY"] {
        assert!(out.contains(var), "{var} not named:\n{out}");
    }
    assert!(out.contains("channel(s) holding"), "channel packing described:\n{out}");
    // Online, a missing secret is an error.
    let (code, _, err) = bare(tmp.path(), &["check", "--config", live.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("`GENESYS_CLIENT_SECRET` is not set"), "{err}");
}

#[test]
fn check_reports_every_problem_of_a_config_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("three.toml");
    std::fs::write(
        &path,
        r#"[service]
data_dri = "data"

[http]
workers = "two"

[genesys]
environment = "emulator"

[[source]]
name = "details"
kind = "analytics_job"
every = "15m"
page_size = 5000

[[listener]]
name = "out"
topics = ["analytics.conversations"]
sink = { kind = "stdout" }
"#,
    )
    .unwrap();
    let (code, out, err) = bare(tmp.path(), &["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{out}");
    let reported: Vec<&str> = err.lines().filter(|l| l.contains("three.toml:")).collect();
    assert_eq!(reported.len(), 3, "{err}");
    assert!(
        reported[0].contains(":2:1:") && reported[0].contains("data_dri"),
        "{err}"
    );
    assert!(
        reported[1].contains(":5:") && reported[1].contains("http.workers"),
        "{err}"
    );
    assert!(
        reported[2].contains(":14:") && reported[2].contains("page_size"),
        "{err}"
    );
}

#[test]
fn check_warns_about_a_listener_that_nothing_feeds() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.toml");
    std::fs::write(
        &path,
        r#"[[source]]
name = "gen"
kind = "generator"
topics = ["v2.detail.events.conversation.{key}.customer.start"]

[[source]]
name = "off"
kind = "generator"
enabled = false
topics = ["v2.users.u1.presence"]

[[listener]]
name = "out"
topics = ["v2.detail.events.>", "v2.users.*.presence", "v2.routing.queues.*.conversations"]
sink = { kind = "file", path = "out" }
"#,
    )
    .unwrap();
    let (code, out, _) = bare(tmp.path(), &["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{out}");
    assert!(
        warnings[0].contains("`v2.users.*.presence`") && warnings[0].contains("disabled source(s) off"),
        "{out}"
    );
    assert!(warnings[1].contains("`v2.routing.queues.*.conversations`"), "{out}");
    assert!(out.contains("OK, with 2 warning(s)"), "{out}");
    // The topology shows the paths resolved against the file's directory.
    assert!(
        out.contains(&format!("files in {}", tmp.path().join("out").display())),
        "{out}"
    );
}

#[test]
fn check_describes_a_cluster_node_and_refuses_credentials_in_its_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs/cluster-node.toml");
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("node = \"cx1\"", "node = \"cx2\"\nroles = [\"process\"]");
    let path = tmp.path().join("c.toml");
    std::fs::write(&path, &text).unwrap();
    let (code, out, err) = bare(
        tmp.path(),
        &["check", "--offline", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("journal: the NATS JetStream stream `CXRELAY`"), "{out}");
    assert!(
        out.contains("cluster: node `cx2` (process) on NATS nats://10.0.0.1:4222"),
        "{out}"
    );
    assert!(out.contains("16 partition(s), 3 replica(s)"), "{out}");
    assert!(out.contains("sources: none on this node (no `ingest` role)"), "{out}");
    assert!(
        out.contains("CXRELAY_NATS_TOKEN     required (cluster.token_env)"),
        "{out}"
    );
    // A password in a URL is refused, with the key and line, and not shown.
    let with_password = text.replace("nats://10.0.0.3:4222", "nats://ops:hunter2@10.0.0.3:4222");
    std::fs::write(&path, with_password).unwrap();
    let (code, out, err) = bare(
        tmp.path(),
        &["check", "--offline", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("c.toml:18:1: `cluster.nats_urls`: must not hold credentials"),
        "{err}"
    );
    assert!(!err.contains("hunter2") && !out.contains("hunter2"), "{err}");
}

/// `cxrelay <args>` in `dir` with its output into `stdout`.
fn run_into(dir: &Path, args: &[&str], stdout: std::process::Stdio) -> std::process::Output {
    std::process::Command::new(binary())
        .args(args)
        .current_dir(dir)
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

/// Output into a pipe whose reader is gone: it is closed before the
/// command starts, so the first write meets it (closing it after the
/// start would race with a command whose output fits the pipe's buffer).
/// The command ends as SIGPIPE ends other tools, without a panic.
fn assert_quiet_on_a_closed_reader(dir: &Path, args: &[&str]) {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = run_into(dir, args, writer.into());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{args:?}: {:?} {err}",
        out.status
    );
}

/// Output into a full device: an error that names the write, exit 1.
fn assert_a_failed_write_is_an_error(dir: &Path, args: &[&str]) {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = run_into(dir, args, full.into());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.contains("error: writing the output"), "{args:?}: {err}");
}

/// `cxrelay check ... | head`: the reader goes away before the output is
/// written; the command ends quietly, as other tools do, not with a panic.
#[test]
fn a_reader_that_goes_away_ends_a_command_quietly() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs/cluster-node.toml");
    // `dlq` (which may also speak to a running cxrelay) on a store file.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("config.toml"), "[service]\ndata_dir = \"data\"\n").unwrap();
    drop(StoreDb::open(&dir.join("data"), 60_000, 10).unwrap());
    let dlq_config = dir.join("config.toml");
    let dlq = ["dlq", "list", "--config", dlq_config.to_str().unwrap()];
    assert_quiet_on_a_closed_reader(dir, &["check", "--offline", "--config", config.to_str().unwrap()]);
    assert_quiet_on_a_closed_reader(dir, &dlq);
    assert_a_failed_write_is_an_error(dir, &dlq);
}

fn letter(i: u64, listener: &str, source: &str, at_ms: i64) -> DeadLetter {
    let topic = "v2.detail.events.conversation.0123456789abcdef0123456789abcdef.customer.start";
    let ev = Arc::new(
        Event::builder(source, topic)
            .id(format!("e{i}"))
            .payload(format!("{{\"n\":{i},\"ani\":\"tel:+1555\"}}"))
            .build(),
    );
    let mut l = DeadLetter::for_event(&ev, &format!("sink:{listener}"), Some(listener), "HTTP 503: busy", 3);
    l.at_ms = at_ms;
    l
}

#[test]
fn dlq_on_a_store_file_shows_filters_and_dry_runs_without_creating_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("config.toml"), "[service]\ndata_dir = \"data\"\n").unwrap();
    // No store: a clear error, and none is created.
    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "list"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("no store at") && err.contains("cxrelay.redb"), "{err}");
    assert!(!dir.join("data").exists(), "dlq list created a store");

    let now = cxrelay_actors::event::now_ms();
    let day = 86_400_000;
    {
        let db = StoreDb::open(&dir.join("data"), 60_000, 10).unwrap();
        db.put_dead_letters(&[
            letter(1, "warehouse", "queues", now - 10 * day),
            letter(2, "crm", "queues", now - 10 * day),
            letter(3, "warehouse", "details", now - day),
        ])
        .unwrap();
    }
    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "list"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 dead letter(s)"), "{out}");
    // The whole topic, however long.
    assert!(
        out.contains("v2.detail.events.conversation.0123456789abcdef0123456789abcdef.customer.start"),
        "{out}"
    );
    let (_, out, _) = cxrelay_cmd(dir, &["dlq", "list", "--listener", "warehouse", "--json"], &[]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listed.iter().map(|l| l["id"].as_u64().unwrap()).collect::<Vec<_>>(),
        [1, 3]
    );
    let (_, out, _) = cxrelay_cmd(dir, &["dlq", "list", "--source", "details", "--json"], &[]);
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&out).unwrap().len(), 1);

    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "show", "--id", "2"], &[]);
    assert_eq!(code, 0, "{err}");
    for part in [
        "dead letter 2",
        "sink:crm",
        "HTTP 503: busy",
        "\"ani\": \"tel:+1555\"",
        "replayable",
        "attempts",
    ] {
        assert!(out.contains(part), "{part} missing:\n{out}");
    }
    let (code, _, err) = cxrelay_cmd(dir, &["dlq", "show", "--id", "99"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no dead letter 99"), "{err}");

    // Dry runs change nothing.
    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "purge", "--before", "7d", "--dry-run"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("would purge 2 dead letter(s)") && out.contains("nothing was changed"),
        "{out}"
    );
    let (_, out, _) = cxrelay_cmd(dir, &["dlq", "replay", "--listener", "warehouse", "--dry-run"], &[]);
    assert!(
        out.contains("would send back 2 dead letter(s)") && out.contains("warehouse"),
        "{out}"
    );
    let (_, out, _) = cxrelay_cmd(dir, &["dlq", "list"], &[]);
    assert!(out.contains("3 dead letter(s)"), "{out}");

    // Purge by age and listener; then replay what a source left.
    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "purge", "--before", "7d", "--listener", "crm"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 dead letter(s) purged"), "{out}");
    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "replay", "--source", "details"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 dead letter(s) sent back"), "{out}");
    let (_, out, _) = cxrelay_cmd(dir, &["dlq", "list", "--json"], &[]);
    let left: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], 1);
    let (code, _, err) = cxrelay_cmd(dir, &["dlq", "purge", "--before", "last week"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("7d"), "{err}");
}

#[test]
fn status_shows_a_running_cxrelay_as_tables_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = format!(
        "{}[[source]]\nname = \"gen\"\nkind = \"generator\"\ntopics = [\"a.b\"]\nrate = 50\n\n[[listener]]\nname = \"out\"\ntopics = [\"a.>\"]\nsink = {{ kind = \"blackhole\" }}\nmailbox = 77\n",
        preamble(dir)
    );
    let p = Proc::start(dir, &config);
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let url = format!("http://{}", p.addr);
    let (code, out, err) = cxrelay_cmd(dir, &["status", "--url", &url], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("READY"), "{out}");
    for row in ["COMPONENT", "gen", "router", "LISTENER", "/77", "kind=generator"] {
        assert!(out.contains(row), "{row} missing:\n{out}");
    }
    let (code, out, _) = cxrelay_cmd(dir, &["status", "--url", &url, "--json"], &[]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["listeners"][0]["queue"]["capacity"], 77);
    // `cxrelay status | head`, and a full disk under the output.
    assert_quiet_on_a_closed_reader(dir, &["status", "--url", &url]);
    // `--watch` redraws for ever: a reader that goes away ends it too.
    assert_quiet_on_a_closed_reader(dir, &["status", "--url", &url, "--watch"]);
    assert_a_failed_write_is_an_error(dir, &["status", "--url", &url, "--json"]);
    assert!(p.terminate().success());
    let (code, _, err) = cxrelay_cmd(dir, &["status", "--url", &url], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no cxrelay answers"), "{err}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let tmp = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef cxrelay"),
        ("fish", "complete -c cxrelay"),
    ] {
        let (code, out, err) = bare(tmp.path(), &["completions", shell], &[]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(out.contains("backfill") && out.contains("dlq"), "{shell}");
    }
}

/// The `rust-version` cxrelay declares is at least what every locked
/// dependency built on this platform declares, so that an older toolchain
/// gets cargo's clear message rather than a build failure deep inside a
/// dependency.
#[test]
fn the_declared_rust_version_covers_every_locked_dependency() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output();
    let (Ok(meta), Ok(host)) = (
        Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--locked"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output(),
        host,
    ) else {
        eprintln!("SKIPPED: cargo or rustc is not on PATH; the rust-version is not checked");
        return;
    };
    assert!(meta.status.success(), "{}", String::from_utf8_lossy(&meta.stderr));
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap();
    let version = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let ours = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "cxrelay")
        .and_then(|p| p["rust_version"].as_str())
        .expect("cxrelay declares a rust-version")
        .to_string();
    // Dependencies built for this platform (not, say, Windows-only ones).
    let filtered = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            &host,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let filtered: serde_json::Value = serde_json::from_slice(&filtered.stdout).unwrap();
    let used: std::collections::HashSet<&str> = filtered["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let (highest, by) = filtered["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| used.contains(id)))
        .filter_map(|p| Some((p["rust_version"].as_str()?.to_string(), p["name"].as_str()?.to_string())))
        .max_by_key(|(v, _)| version(v))
        .expect("some dependency declares a rust-version");
    assert!(
        version(&ours) >= version(&highest),
        "Cargo.toml declares rust-version {ours}, but {by} needs {highest}: raise it"
    );
}
