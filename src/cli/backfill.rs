//! `cxrelay backfill`: one analytics job (or export) source of the config,
//! run in-process with the listeners over a given interval, watched until
//! it reports finished, then an orderly shutdown that delivers everything.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use cxrelay::config::{Config, Loaded};
use cxrelay::genesys::interval::{parse_iso_ms, Interval};
use cxrelay::service::Service;
use cxrelay::sources::SourceSpec;
use cxrelay::telemetry;
use cxrelay_actors::registry::ComponentState;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use super::load_or_report;

/// Arguments of `cxrelay backfill`.
#[derive(Args, Debug)]
pub struct BackfillArgs {
    /// The `[[source]]` to run (an `analytics_job` or an `export`; it may be
    /// disabled in the file).
    #[arg(long)]
    source: String,
    /// The interval to fetch, `start/end` in ISO-8601 (analytics jobs),
    /// e.g. 2024-05-01T00:00:00Z/2024-05-02T00:00:00Z.
    #[arg(long)]
    interval: Option<String>,
}

/// How often the source's status is looked at.
const POLL: Duration = Duration::from_millis(200);
/// How often a progress line is printed when not on a terminal.
const LINE_EVERY: Duration = Duration::from_secs(2);
/// The least time the final delivery to listeners may take.
const MIN_DRAIN: Duration = Duration::from_secs(600);

/// Runs `cxrelay backfill`.
pub fn backfill(path: &Path, args: &BackfillArgs) -> ExitCode {
    let Some(mut loaded) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    let job = match prepare(&mut loaded.config, args) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let secrets = match loaded.secrets() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: missing secrets\n{e}");
            return ExitCode::from(2);
        }
    };
    // The progress shows what happens; logs say only what goes wrong.
    let level = if std::env::var_os("RUST_LOG").is_some() {
        loaded.config.service.log_level.clone()
    } else {
        "warn".to_string()
    };
    telemetry::init_logging(loaded.config.service.log_format, &level);
    let Loaded { config, .. } = loaded;
    let listeners: Vec<String> = config.listener.iter().map(|l| l.name.clone()).collect();
    let system = actix::System::new();
    system.block_on(async move {
        let service = match Service::start_with(config, secrets).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let mut progress = Progress::new(&job, std::io::stderr().is_terminal());
        let outcome = watch(&service, &job, &mut progress).await;
        progress.finish();
        let code = match &outcome {
            Outcome::Finished(p) => {
                eprintln!(
                    "backfill {}: {} records in {} pages ({}) in {}; delivering the last of them to {}",
                    job,
                    p.records,
                    p.pages,
                    human_bytes(p.bytes),
                    humantime::format_duration(Duration::from_secs(progress.started.elapsed().as_secs())),
                    listeners.join(", ")
                );
                if p.records == 0 {
                    eprintln!(
                        "backfill {job}: nothing was fetched: the interval is empty, or an earlier backfill of it finished (its progress is kept in the store as `{job}`)"
                    );
                }
                ExitCode::SUCCESS
            }
            Outcome::Failed(why) => {
                eprintln!("error: backfill {job} failed: {why}");
                ExitCode::from(1)
            }
            Outcome::Interrupted => {
                eprintln!("backfill {job}: interrupted; running it again resumes where it stopped");
                ExitCode::from(130)
            }
        };
        if !service.shutdown().await {
            eprintln!("error: not everything was delivered before the shutdown timeout; it is kept in the journal and delivered when cxrelay next runs");
            return ExitCode::from(1);
        }
        if matches!(outcome, Outcome::Finished(_)) {
            eprintln!("backfill {job}: done, every record delivered");
        }
        code
    })
}

/// Turns the config into the backfill's: only the source named (renamed
/// `<name>/backfill`, so its progress and idempotency keys are its own and
/// the regular source's are untouched), over `--interval`; the listeners
/// as they are. Answers the running source's name.
fn prepare(config: &mut Config, args: &BackfillArgs) -> Result<String, String> {
    let names: Vec<&str> = config.source.iter().map(|s| s.name.as_str()).collect();
    let Some(index) = config.source.iter().position(|s| s.name == args.source) else {
        return Err(format!(
            "no source named `{}` (the config has: {})",
            args.source,
            names.join(", ")
        ));
    };
    let job = format!("{}/backfill", args.source);
    // Other sources are disabled, not removed: secrets are then located in
    // the file as written.
    for s in config.source.iter_mut() {
        s.enabled = false;
    }
    let s = &mut config.source[index];
    match (&mut s.spec, &args.interval) {
        (SourceSpec::AnalyticsJob(c), Some(interval)) => {
            Interval::parse(interval).map_err(|e| format!("--interval `{interval}`: {e}"))?;
            c.interval = Some(interval.clone());
            c.every = None;
            c.start = None;
        }
        (SourceSpec::AnalyticsJob(_), None) => {
            return Err("an analytics_job backfill needs --interval START/END (ISO-8601)".into())
        }
        (SourceSpec::Export(_), None) => {}
        (SourceSpec::Export(_), Some(_)) => {
            return Err(format!(
                "`{}` is an export: it has no interval (leave out --interval)",
                args.source
            ))
        }
        (other, _) => {
            return Err(format!(
                "`{}` is a `{}` source; backfill runs an `analytics_job` or an `export` source",
                args.source,
                other.kind()
            ))
        }
    }
    let problems = s.spec.builder().check(&job);
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|p| format!("`{}`: {}", p.key, p.message)).collect();
        return Err(format!("source `{}`: {}", args.source, text.join("; ")));
    }
    s.name = job.clone();
    s.enabled = true;
    // Beside a cxrelay serving on the configured port; the drain at the
    // end is what the user waits for.
    config.http.listen = "127.0.0.1:0".into();
    config.service.shutdown_timeout = config.service.shutdown_timeout.max(MIN_DRAIN);
    Ok(job)
}

/// How watching ended.
enum Outcome {
    Finished(Snapshot),
    Failed(String),
    Interrupted,
}

/// What the source reports, read from its `/status` details.
#[derive(Debug, Default, Clone, PartialEq)]
struct Snapshot {
    pages: u64,
    records: u64,
    bytes: u64,
    /// Part of the work done, when it can be told (0.0 to 1.0).
    fraction: Option<f64>,
    phase: String,
    finished: bool,
}

impl Snapshot {
    fn of(detail: &Map<String, Value>) -> Self {
        let n = |k: &str| detail.get(k).and_then(Value::as_u64).unwrap_or(0);
        let bytes = n("bytes").max(n("bytes_received"));
        let fraction = match (n("total_bytes"), detail.get("window").and_then(Value::as_str)) {
            // An export: bytes of the file.
            (total, _) if total > 0 => Some((bytes as f64 / total as f64).min(1.0)),
            // An analytics job: results come in `conversationStart` order,
            // so the high-water mark tells how much of the window is done.
            (_, Some(window)) => Interval::parse(window).ok().and_then(|w| {
                let high = parse_iso_ms(detail.get("high_water")?.as_str()?).ok()?;
                Some(((high - w.start_ms) as f64 / w.len_ms().max(1) as f64).clamp(0.0, 1.0))
            }),
            _ => None,
        };
        let finished = detail.get("finished").and_then(Value::as_bool).unwrap_or(false);
        Snapshot {
            pages: n("pages"),
            records: n("records"),
            bytes,
            // The last conversation starts before the interval's end.
            fraction: if finished { Some(1.0) } else { fraction },
            phase: detail
                .get("phase")
                .and_then(Value::as_str)
                .unwrap_or("starting")
                .to_string(),
            finished,
        }
    }
}

async fn watch(service: &Service, job: &str, progress: &mut Progress) -> Outcome {
    let mut tick = tokio::time::interval(POLL);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut ctrl_c => return Outcome::Interrupted,
        }
        let Some(component) = service.registry().get(job) else {
            continue;
        };
        let snap = component.snapshot();
        let s = Snapshot::of(&snap.detail);
        if snap.state == ComponentState::Failed {
            return Outcome::Failed(snap.last_error.unwrap_or_else(|| "the source failed".into()));
        }
        progress.update(&s);
        if s.finished {
            return Outcome::Finished(s);
        }
    }
}

/// Progress on a terminal (a bar) or in a log (a line now and then).
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Option<(Instant, String)>,
    job: String,
}

impl Progress {
    fn new(job: &str, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(1000);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {percent:>3}% ETA {eta} | {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(job.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
            last_line: None,
            job: job.to_string(),
        }
    }

    fn summary(&self, s: &Snapshot) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let mut text = format!(
            "{} pages, {} records, {}, {:.0} records/s",
            s.pages,
            s.records,
            human_bytes(s.bytes),
            s.records as f64 / secs
        );
        if let Some(f) = s.fraction.filter(|f| *f > 0.0) {
            let left = secs * (1.0 - f) / f;
            text.push_str(&format!(
                ", {:.0}% done, ETA {}",
                f * 100.0,
                humantime::format_duration(Duration::from_secs(left as u64))
            ));
        }
        text.push_str(&format!(", {}", s.phase));
        text
    }

    fn update(&mut self, s: &Snapshot) {
        let text = self.summary(s);
        if let Some(bar) = &self.bar {
            if let Some(f) = s.fraction {
                bar.set_position((f * 1000.0) as u64);
            }
            let rate = s.records as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{} pages, {} records, {}, {rate:.0} records/s, {}",
                s.pages,
                s.records,
                human_bytes(s.bytes),
                s.phase
            ));
            return;
        }
        let due = match &self.last_line {
            None => true,
            Some((at, last)) => at.elapsed() >= LINE_EVERY && *last != text || s.finished,
        };
        if due {
            eprintln!("backfill {}: {text}", self.job);
            self.last_line = Some((Instant::now(), text));
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
