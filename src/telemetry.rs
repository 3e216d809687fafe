//! Logs and metrics plumbing, and the list of every metric cxrelay names.
//!
//! Each component names its metrics in one place, its folder's
//! `telemetry.rs` (typed events that count and log together); the
//! runtime's own (router, listener queues, component health) are in
//! `src/http/metrics_export.rs`. No metric name appears anywhere else.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
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

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed when cxrelay is
            // embedded; metrics then go there and this handle renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
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
    fn every_metric_is_documented_in_the_readme() {
        let undocumented: Vec<&str> = metric_names()
            .into_iter()
            .filter(|n| !README.contains(&format!("`{n}`")) && !README.contains(&format!("`{n}{{")))
            .collect();
        assert!(undocumented.is_empty(), "not in the README: {undocumented:?}");
    }
}
