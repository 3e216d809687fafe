//! README's metrics reference against what `/metrics` exposes: cxrelay
//! runs every kind of source (with the bundled emulator), a healthy and a
//! failing sink, sinks of every kind with metrics of their own, and
//! webhook requests; then every metric it exposes must
//! be in the reference with its type and labels, and every metric the
//! reference names must be exposed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use cxrelay::telemetry::{metrics_reference, DocumentedMetric};

use super::common::{preamble, request, wait_until, Proc, TargetServer};

const README: &str = include_str!("../../README.md");

fn config(dir: &Path, target: &TargetServer) -> String {
    format!(
        r#"{}[genesys]
environment = "emulator"
requests_per_minute = 6000

[emulator]
requests_per_minute = 0
[emulator.notifications]
traffic = {{ rate = 20 }}
[emulator.bulk]
job_queued = "100ms"
job_pending = "100ms"
recording_delay = "100ms"
recording_bytes = 1000
[[emulator.bulk.exports]]
id = "hist"
records = 50
malformed_every = 10

[[source]]
name = "queues"
kind = "notifications"
topics = ["v2.routing.queues.{{queue}}.conversations"]
ids = {{ queue = ["6f1b2c3d-1111-4000-8000-000000000001"] }}

[[source]]
name = "details"
kind = "analytics_job"
interval = "2024-05-01T00:00:00Z/2024-05-01T01:00:00Z"

[[source]]
name = "hist"
kind = "export"
download_id = "hist"

[[source]]
name = "recs"
kind = "recordings"
recordings = ["c1/r1"]
output = "{}"
poll_interval = "200ms"

[[source]]
name = "hook"
kind = "webhook"
path = "/ingest/hook"
allow_unsigned = true

[[source]]
name = "gen"
kind = "generator"
topics = ["gen.{{key}}"]
rate = 20
payload_bytes = 200

[[listener]]
name = "warehouse"
topics = [">"]
sink = {{ kind = "file", path = "{}", batch_interval = "50ms", fsync = false }}

[[listener]]
name = "broken"
topics = ["gen.>"]
sink = {{ kind = "http", url = "http://{}/events" }}
mailbox = 4
when_full = "drop_newest"

# Sinks whose servers are not running: nothing is routed to them (their
# connections are made at the first batch), and their counters show at 0.
[[listener]]
name = "lake"
topics = ["nothing.>"]
sink = {{ kind = "object_store", bucket = "events", endpoint = "http://127.0.0.1:9", region = "us-east-1" }}

[[listener]]
name = "stream"
topics = ["nothing.>"]
sink = {{ kind = "nats", url = "nats://127.0.0.1:9" }}
"#,
        // The export's 5 malformed records are more dead letters than its
        // share: the refused ones are counted.
        preamble(dir).replace("[service]\n", "[service]\ndead_letters_per_component = 2\n"),
        dir.join("recordings").display(),
        dir.join("out").display(),
        target.addr
    )
}

/// A metric as exposed: its `# TYPE` and the label names of its samples.
#[derive(Debug, Default)]
pub struct Exposed {
    kind: String,
    labels: BTreeSet<String>,
}

/// Every `cxrelay_` metric in Prometheus text, by name (a histogram's
/// `_bucket`, `_sum` and `_count` samples under the histogram's name,
/// without `le`).
pub fn exposed(text: &str) -> BTreeMap<String, Exposed> {
    let mut out: BTreeMap<String, Exposed> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                out.entry(name.to_string()).or_default().kind = kind.to_string();
            }
            continue;
        }
        if line.starts_with('#') || !line.starts_with("cxrelay_") {
            continue;
        }
        let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|base| out.get(*base).is_some_and(|e| e.kind == "histogram"))
            })
            .unwrap_or(name);
        let entry = out.entry(name.to_string()).or_default();
        // Label values are quoted and may hold commas: take each name
        // before `="`, skipping quoted text.
        let mut in_quotes = false;
        let mut escaped = false;
        let mut current = String::new();
        for c in labels.trim_end_matches('}').chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                '=' if !in_quotes => {
                    let label = std::mem::take(&mut current);
                    if label != "le" {
                        entry.labels.insert(label);
                    }
                }
                ',' if !in_quotes => current.clear(),
                _ if !in_quotes => current.push(c),
                _ => {}
            }
        }
    }
    out
}

/// What is wrong between the reference and what is exposed (empty: they
/// agree).
pub fn disagreements(
    reference: &BTreeMap<String, DocumentedMetric>,
    exposed: &BTreeMap<String, Exposed>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (name, e) in exposed {
        let Some(doc) = reference.get(name) else {
            wrong.push(format!("{name}: exposed, not in the README's metrics reference"));
            continue;
        };
        if doc.kind != e.kind {
            wrong.push(format!("{name}: documented as {}, exposed as {}", doc.kind, e.kind));
        }
        let documented: BTreeSet<String> = doc.labels.iter().cloned().collect();
        if documented != e.labels {
            wrong.push(format!(
                "{name}: documented labels {documented:?}, exposed {:?}",
                e.labels
            ));
        }
    }
    // Cluster mode's own metrics need a NATS cluster: the cluster tests
    // check that they are exposed there.
    let single_process = |n: &&String| !cxrelay::cluster::telemetry::METRICS.contains(&n.as_str());
    for name in reference
        .keys()
        .filter(single_process)
        .filter(|n| !exposed.contains_key(*n))
    {
        wrong.push(format!("{name}: in the reference, never exposed"));
    }
    wrong
}

#[test]
fn the_readme_metrics_reference_is_exactly_what_metrics_exposes() {
    let reference = metrics_reference(README);
    assert!(reference.len() > 40, "no metrics reference in README.md");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = TargetServer::start();
    target.set_failing(true);
    let p = Proc::start(dir, &config(dir, &target));
    // Requests answered 202 and 400: the webhook's counter exists.
    let post = |body: &[u8]| {
        request(
            p.addr,
            "POST",
            "/ingest/hook",
            &[("Content-Type", "application/json")],
            body,
        )
        .unwrap()
        .status
    };
    // (503 until the service has started: asked again until then.)
    let event = br#"{"topicName":"v2.test","eventBody":{"id":"x"},"metadata":{"CorrelationId":"c-1"}}"#;
    wait_until("the webhook to accept an event", Duration::from_secs(60), || {
        post(event) == 202
    });
    assert_eq!(post(b"not json"), 400);

    // Metrics appear as their components start and work; wait until the
    // two agree (or the deadline, with what still disagrees).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = p.get("/metrics").text();
        let wrong = disagreements(&reference, &exposed(&text));
        if wrong.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "README's metrics reference and /metrics disagree:\n  {}",
            wrong.join("\n  ")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn exposition_text_is_read_by_name_type_and_label_names() {
    let text = "# TYPE cxrelay_a_seconds histogram\n\
                cxrelay_a_seconds_bucket{listener=\"x,y=\\\"z\",le=\"0.5\"} 1\n\
                cxrelay_a_seconds_sum{listener=\"x\"} 1\n\
                cxrelay_a_seconds_count{listener=\"x\"} 1\n\
                # TYPE cxrelay_b_total counter\n\
                cxrelay_b_total 3\n\
                # TYPE cxrelay_c_count gauge\n\
                cxrelay_c_count{source=\"s\",reason=\"r\"} 1\n";
    let e = exposed(text);
    assert_eq!(
        e.keys().collect::<Vec<_>>(),
        ["cxrelay_a_seconds", "cxrelay_b_total", "cxrelay_c_count"]
    );
    assert_eq!(e["cxrelay_a_seconds"].kind, "histogram");
    assert_eq!(e["cxrelay_a_seconds"].labels, BTreeSet::from(["listener".to_string()]));
    assert!(e["cxrelay_b_total"].labels.is_empty());
    assert_eq!(
        e["cxrelay_c_count"].labels,
        BTreeSet::from(["reason".to_string(), "source".to_string()])
    );
}
