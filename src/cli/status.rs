//! `cxrelay status`: a running cxrelay's `/status` as tables (or JSON),
//! once or refreshed every second.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use cxrelay::config::{self, HttpConfig};
use serde_json::Value;

use cxrelay::dlq::render::{format_ms, plain_table, table_text};

/// Arguments of `cxrelay status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Base URL of the running cxrelay (default: the configured
    /// `http.listen`).
    #[arg(long)]
    url: Option<String>,
    /// Print /status as JSON, for scripts.
    #[arg(long)]
    json: bool,
    /// Refresh every second until Ctrl-C.
    #[arg(long, conflicts_with = "json")]
    watch: bool,
}

/// Details shown for a component, when it has them, in this order.
const KEY_DETAILS: &[&str] = &[
    "kind",
    "phase",
    "pages",
    "records",
    "bytes_received",
    "total_bytes",
    "events",
    "topics",
    "channels",
    "gaps",
    "written",
    "files_open",
    "rows_inserted",
    "batches_sent",
    "breaker",
    "entries",
    "dead_letters",
    "finished",
];
/// At most this many details per component.
const DETAILS_SHOWN: usize = 4;

/// Runs `cxrelay status`.
pub fn status(path: &Path, named: bool, args: &StatusArgs) -> ExitCode {
    let base = match &args.url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => match configured_url(path, named) {
            Ok(u) => u,
            Err(code) => return code,
        },
    };
    let system = actix::System::new();
    system.block_on(async move {
        let client = awc::Client::builder().timeout(Duration::from_secs(5)).finish();
        if !args.watch {
            return match fetch(&client, &base).await {
                Ok(v) if args.json => {
                    super::print_out(&format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()));
                    ExitCode::SUCCESS
                }
                Ok(v) => {
                    super::print_out(&render(&base, &v));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            };
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            }
            let screen = match fetch(&client, &base).await {
                Ok(v) => render(&base, &v),
                Err(e) => format!("{e}\n(trying again every second; Ctrl-C stops)\n"),
            };
            // Clear the screen and go home, then draw.
            super::print_out(&format!("\x1b[2J\x1b[H{screen}"));
        }
    })
}

/// The URL of the configured HTTP server (`http.listen`; an address that
/// listens everywhere is asked on loopback).
fn configured_url(path: &Path, named: bool) -> Result<String, ExitCode> {
    let http = if path.exists() || named {
        match config::load(path) {
            Ok(l) => l.config.http,
            Err(e) => {
                eprintln!("error: invalid configuration (give --url to skip it)\n{e}");
                return Err(ExitCode::from(2));
            }
        }
    } else {
        HttpConfig::default()
    };
    let listen = http.listen.replace("0.0.0.0:", "127.0.0.1:").replace("[::]:", "[::1]:");
    Ok(format!("http://{listen}"))
}

async fn fetch(client: &awc::Client, base: &str) -> Result<Value, String> {
    let url = format!("{base}/status");
    let mut response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("no cxrelay answers at {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let body = response
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| format!("reading {url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{url} did not answer JSON: {e}"))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A few details worth a glance, `key=value`.
fn key_details(detail: &serde_json::Map<String, Value>) -> String {
    let mut shown: Vec<String> = KEY_DETAILS
        .iter()
        .filter_map(|k| detail.get(*k).and_then(scalar).map(|v| format!("{k}={v}")))
        .take(DETAILS_SHOWN)
        .collect();
    if shown.is_empty() {
        shown = detail
            .iter()
            .filter_map(|(k, v)| scalar(v).map(|v| format!("{k}={v}")))
            .take(DETAILS_SHOWN - 1)
            .collect();
    }
    shown.join(" ")
}

fn text(v: &Value) -> String {
    scalar(v).unwrap_or_else(|| "-".into())
}

/// `/status` as a header and tables.
pub fn render(base: &str, s: &Value) -> String {
    let service = &s["service"];
    let ready = if service["ready"].as_bool() == Some(true) {
        "READY"
    } else {
        "NOT READY"
    };
    let uptime = humantime::format_duration(Duration::from_secs(service["uptime_s"].as_u64().unwrap_or(0)));
    let mut out = format!(
        "cxrelay {} at {base}: {ready}, up {uptime}\n\n",
        text(&service["version"])
    );
    let mut t = plain_table(&[
        "COMPONENT",
        "KIND",
        "STATE",
        "SINCE",
        "RESTARTS",
        "LAST ERROR",
        "DETAILS",
    ]);
    for c in s["components"].as_array().into_iter().flatten() {
        let error = c["last_error"]
            .as_str()
            .map(|e| e.lines().next().unwrap_or_default().chars().take(80).collect())
            .unwrap_or_else(|| "-".to_string());
        let since = c["since_ms"].as_i64().map(format_ms).unwrap_or_else(|| "-".into());
        let detail = c["detail"].as_object().map(key_details).unwrap_or_default();
        t.add_row(vec![
            text(&c["name"]),
            text(&c["kind"]),
            text(&c["state"]),
            since,
            text(&c["restarts"]),
            error,
            detail,
        ]);
    }
    out.push_str(&table_text(&t));
    let mut t = plain_table(&[
        "LISTENER",
        "DEPTH/CAPACITY",
        "DELIVERED",
        "DROPPED",
        "WHEN FULL",
        "BLOCKED",
        "TOPICS",
    ]);
    for l in s["listeners"].as_array().into_iter().flatten() {
        let q = &l["queue"];
        let dropped: u64 = ["dropped_queue_full", "dropped_evicted_oldest", "dropped_listener_gone"]
            .iter()
            .filter_map(|k| q[*k].as_u64())
            .sum();
        let topics: Vec<String> = l["patterns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect();
        t.add_row(vec![
            text(&l["name"]),
            format!("{}/{}", text(&q["depth"]), text(&q["capacity"])),
            text(&q["delivered"]),
            dropped.to_string(),
            text(&l["when_full"]),
            text(&q["blocked"]),
            topics.join(", "),
        ]);
    }
    out.push('\n');
    out.push_str(&table_text(&t));
    let r = &s["router"];
    out.push_str(&format!(
        "\nrouter: {} published, {} with no listener\n",
        text(&r["published"]),
        text(&r["unrouted"])
    ));
    let cluster = s["components"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "cluster")
        .map(|c| &c["detail"]);
    if let Some(c) = cluster.filter(|c| c.is_object()) {
        out.push_str(&render_cluster(c));
    }
    out
}

/// Cluster mode's part: members, partitions, leases.
fn render_cluster(c: &Value) -> String {
    let list = |v: &Value| -> Vec<String> { v.as_array().into_iter().flatten().map(text).collect() };
    let mut out = format!(
        "\ncluster: node {} ({}), stream {}, lag {}, redeliveries here {}\n\n",
        text(&c["node"]),
        list(&c["roles"]).join(", "),
        text(&c["stream"]),
        text(&c["lag"]),
        text(&c["redeliveries"])
    );
    let mut t = plain_table(&["NODE", "ROLES", "STARTED"]);
    for n in c["nodes"].as_array().into_iter().flatten() {
        let started = n["started_ms"].as_i64().map(format_ms).unwrap_or_else(|| "-".into());
        t.add_row(vec![text(&n["node"]), list(&n["roles"]).join(", "), started]);
    }
    out.push_str(&table_text(&t));
    let mut t = plain_table(&["PARTITION", "NODE", "PENDING", "UNACKED", "REDELIVERED"]);
    for p in c["partitions"].as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&p["partition"]),
            text(&p["node"]),
            text(&p["pending"]),
            text(&p["ack_pending"]),
            text(&p["redelivered"]),
        ]);
    }
    out.push('\n');
    out.push_str(&table_text(&t));
    let mut t = plain_table(&["SOURCE", "LEASE OWNER"]);
    for l in c["leases"].as_array().into_iter().flatten() {
        t.add_row(vec![text(&l["source"]), text(&l["owner"])]);
    }
    out.push('\n');
    out.push_str(&table_text(&t));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_node_shows_members_partitions_and_leases() {
        let status = serde_json::json!({
            "service": {"ready": true, "uptime_s": 5, "version": "0.1.0"},
            "components": [{"name": "cluster", "kind": "store", "state": "running", "restarts": 0, "detail": {
                "node": "cx1", "roles": ["ingest", "process"], "stream": "CXRELAY", "lag": 12, "redeliveries": 3,
                "nodes": [{"node": "cx1", "roles": ["ingest", "process"], "started_ms": 0},
                          {"node": "cx2", "roles": ["process"], "started_ms": 0}],
                "partitions": [{"partition": 0, "node": "cx1", "pending": 10, "ack_pending": 2, "redelivered": 0}],
                "leases": [{"source": "live", "owner": "cx2"}]
            }}],
            "listeners": [],
            "router": {"published": 0, "unrouted": 0}
        });
        let text = render("http://127.0.0.1:8080", &status);
        for expected in [
            "cluster: node cx1 (ingest, process), stream CXRELAY, lag 12",
            "cx2",
            "PARTITION",
            "LEASE OWNER",
            "live",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_single_process_shows_no_cluster_part() {
        let status = serde_json::json!({"service": {}, "components": [], "listeners": [], "router": {}});
        assert!(!render("u", &status).contains("cluster:"));
    }
}
