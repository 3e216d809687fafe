//! Logs and metrics plumbing, and the list of every metric cxrelay names.
//!
//! Each component names its metrics in one place, its folder's
//! `telemetry.rs` (typed events that count and log together); the
//! runtime's own (router, listener queues, component health) are in
//! `src/http/metrics_export.rs`. No metric name appears anywhere else.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the log subscriber once per process (`RUST_LOG` overrides
/// `level`). Panics are logged through it, so JSON logs stay parseable.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init().is_ok(),
        LogFormat::Human => builder.try_init().is_ok(),
    };
    if installed {
        std::panic::set_hook(Box::new(|info| {
            let thread = std::thread::current();
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(
                thread = thread.name().unwrap_or("?"),
                location = location.as_deref().unwrap_or("?"),
                "panic: {payload}"
            );
        }));
    }
}

/// Every metric cxrelay exports (as `/metrics` spells them), from the
/// modules that name them.
pub fn metric_names() -> Vec<&'static str> {
    use crate::sources::{analytics_job, export_download, notifications, recordings, webhook};
    [
        crate::http::metrics_export::METRICS,
        crate::http::process::METRICS,
        crate::ingest::telemetry::METRICS,
        crate::sinks::telemetry::METRICS,
        crate::sources::telemetry::METRICS,
        analytics_job::telemetry::METRICS,
        export_download::telemetry::METRICS,
        recordings::telemetry::METRICS,
        notifications::telemetry::METRICS,
        webhook::telemetry::METRICS,
        crate::store::telemetry::METRICS,
        crate::sinks::object_store::telemetry::METRICS,
        crate::sinks::nats::telemetry::METRICS,
        crate::cluster::telemetry::METRICS,
    ]
    .concat()
}

/// Writes each of `names` at 0 for one component (`label` = `value`), so
/// that its series exist from the start and the first increment shows in
/// `rate()` and `increase()`.
pub fn counters_at_zero<'a>(names: impl IntoIterator<Item = &'a &'static str>, label: &'static str, value: &str) {
    for name in names {
        metrics::counter!(*name, label => value.to_string()).increment(0);
    }
}

/// The heading of README's metrics reference.
pub const METRICS_REFERENCE_HEADING: &str = "## Metrics reference";

/// One row of README's metrics reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentedMetric {
    /// `counter`, `gauge` or `histogram`, as Prometheus's `# TYPE` says.
    pub kind: String,
    /// Its label names (a histogram's `le` aside).
    pub labels: Vec<String>,
}

/// The metrics reference of a README (`README.md`, section "Metrics
/// reference"): each documented metric by name, from the table rows that
/// start with a metric name. Empty when there is none. The tests hold it
/// to the telemetry modules and to what `/metrics` exposes.
pub fn metrics_reference(readme: &str) -> BTreeMap<String, DocumentedMetric> {
    let Some(start) = readme.find(METRICS_REFERENCE_HEADING) else {
        return BTreeMap::new();
    };
    let section = &readme[start + METRICS_REFERENCE_HEADING.len()..];
    let section = section.find("\n## ").map_or(section, |end| &section[..end]);
    section
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
            let name = cells.next()?.strip_prefix("`cxrelay_")?.strip_suffix('`')?;
            let kind = cells.next()?.to_string();
            let labels = cells
                .next()?
                .split(',')
                .map(|l| l.trim().trim_matches('`'))
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            Some((format!("cxrelay_{name}"), DocumentedMetric { kind, labels }))
        })
        .collect()
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded into their buckets when nobody
/// scrapes: until then each sample is held in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder (installed on first use), with the
/// histograms' bucket bounds, and a thread that folds histogram samples
/// into buckets every few seconds so that memory stays flat whether or not
/// `/metrics` is scraped.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = recorder_builder().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed when cxrelay is
            // embedded; metrics then go there and this handle renders ours.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no metrics upkeep thread: histogram samples are folded at scrape time only");
            }
            handle
        })
        .clone()
}

/// The recorder's settings: every histogram cxrelay records, with bucket
/// bounds chosen for what it measures (a histogram without them would be
/// rendered as a summary).
fn recorder_builder() -> PrometheusBuilder {
    use crate::sinks::telemetry::{
        COMMIT_BUCKETS, END_TO_END_LATENCY_SECONDS, LATENCY_BUCKETS, LISTENER_QUEUE_WAIT_SECONDS, SINK_COMMIT_SECONDS,
    };
    let histograms = [
        (END_TO_END_LATENCY_SECONDS, LATENCY_BUCKETS),
        (LISTENER_QUEUE_WAIT_SECONDS, LATENCY_BUCKETS),
        (SINK_COMMIT_SECONDS, COMMIT_BUCKETS),
    ];
    histograms
        .into_iter()
        .fold(PrometheusBuilder::new(), |b, (name, bounds)| {
            b.set_buckets_for_metric(Matcher::Full(name.to_string()), bounds)
                .expect("bucket bounds are constants, never empty")
        })
}

/// Installs rustls's crypto provider (ring) once per process, before any
/// TLS connection is made.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if a provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::metric_names;

    const README: &str = include_str!("../README.md");

    #[test]
    fn every_metric_is_named_once_and_like_the_rest() {
        let names = metric_names();
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "a metric is named twice: {names:?}");
        for n in names {
            assert!(n.starts_with("cxrelay_"), "{n}");
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
        }
    }

    #[test]
    fn the_readme_reference_names_every_metric_and_nothing_else() {
        let reference = super::metrics_reference(README);
        let declared: BTreeSet<&str> = metric_names().into_iter().collect();
        let undocumented: Vec<&&str> = declared.iter().filter(|n| !reference.contains_key(**n)).collect();
        assert!(
            undocumented.is_empty(),
            "not in the README's metrics reference: {undocumented:?}"
        );
        let unknown: Vec<&String> = reference.keys().filter(|n| !declared.contains(n.as_str())).collect();
        assert!(
            unknown.is_empty(),
            "in the reference, declared by no telemetry module: {unknown:?}"
        );
        let badly_typed: Vec<(&String, &str)> = reference
            .iter()
            .filter(|(n, d)| {
                let expected = match n.as_str() {
                    n if n.ends_with("_total") => "counter",
                    n if n.ends_with("_seconds") && d.kind == "histogram" => "histogram",
                    _ => "gauge",
                };
                d.kind != expected
            })
            .map(|(n, d)| (n, d.kind.as_str()))
            .collect();
        assert!(
            badly_typed.is_empty(),
            "counters end in _total, everything else is a gauge or a histogram of seconds: {badly_typed:?}"
        );
    }

    #[test]
    fn the_reference_is_read_from_its_table_rows() {
        let text = "# x\n| `cxrelay_a_total` | counter | `source`, `reason` | a |\n\
                    ## Metrics reference\n\ntext `cxrelay_not_a_row`\n| metric | type | labels | meaning |\n\
                    | `cxrelay_b_total` | counter | `listener` | b |\n| `cxrelay_c` | gauge | | c |\n\
                    ## Next\n| `cxrelay_d` | gauge | | d |\n";
        let r = super::metrics_reference(text);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["cxrelay_b_total", "cxrelay_c"]);
        assert_eq!(r["cxrelay_b_total"].labels, ["listener"]);
        assert_eq!(r["cxrelay_b_total"].kind, "counter");
        assert!(r["cxrelay_c"].labels.is_empty());
        assert_eq!(r["cxrelay_c"].kind, "gauge");
    }
}
