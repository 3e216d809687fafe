//! The status page at `GET /`, in a real browser: headless Chromium opens
//! it against cxrelay running with the bundled emulator, and the test
//! reads what a person would see: the pipeline's cards, their counters
//! moving, the queue bars, a finished backfill, a failing sink called
//! out, the page on a phone, and "STALE" once the service stops.
//! Screenshots are kept in `target/test-artifacts/`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::{preamble, Proc, TargetServer};
use super::webdriver::{artifacts_dir, find_tools, skip_or_fail, Browser};

const WAIT: Duration = Duration::from_secs(60);
/// Set as the admin token: it must never reach the page.
const ADMIN_TOKEN: &str = "admin-token-that-must-not-show-7f3a9c";

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
name = "gen"
kind = "generator"
topics = ["gen.{{key}}"]
rate = 25
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
"#,
        preamble(dir),
        dir.join("out").display(),
        target.addr
    )
}

/// What the page shows, read from its DOM the way a person reads it: the
/// cards by their `data-node`, figures by their `data-field`.
const READ_PAGE: &str = r#"
const q = s => document.querySelector(s);
const field = (node, f) => {
  const e = q('[data-node="' + node + '"] [data-field="' + f + '"]');
  return e && e.dataset.value !== undefined && e.dataset.value !== '' ? Number(e.dataset.value) : null;
};
const bar = node => {
  const b = q('[data-node="' + node + '"] [role=progressbar]');
  return b ? Number(b.getAttribute('aria-valuenow')) : null;
};
const flow = q('#flow');
return {
  title: document.title,
  updates: Number(document.body.dataset.updates || 0),
  ready: q('#ready').textContent,
  live: q('#live').textContent,
  stale: q('#live').classList.contains('stale'),
  summary: q('#summary').textContent,
  nodes: Array.from(document.querySelectorAll('#flow [data-node]')).map(e => e.dataset.node),
  others: Array.from(document.querySelectorAll('#others [data-node]')).map(e => e.dataset.node),
  gen_events: field('source:gen', 'events'),
  gen_rate: field('source:gen', 'rate'),
  queues_events: field('source:queues', 'events'),
  details_events: field('source:details', 'events'),
  details_progress: bar('source:details'),
  router_published: field('router', 'published'),
  warehouse_delivered: field('listener:warehouse', 'delivered'),
  warehouse_committed: field('sink:warehouse', 'committed'),
  broken_dropped: field('listener:broken', 'dropped'),
  broken_depth: field('listener:broken', 'depth'),
  broken_queue_bar: bar('listener:broken'),
  broken_failures: field('sink:broken', 'commit_failures'),
  attention: q('#attention').hidden ? [] : Array.from(document.querySelectorAll('#problems li')).map(li => li.textContent),
  wires: document.querySelectorAll('#wires path').length,
  flowing: document.querySelectorAll('#wires path.flowing').length,
  columns: getComputedStyle(flow).gridTemplateColumns.split(' ').length,
  scroll_width: document.documentElement.scrollWidth,
  width: window.innerWidth,
  text: document.body.innerText,
};
"#;

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(-1.0)
}

/// Reads the page until `cond` holds; panics after `WAIT` with `what` and
/// the last reading.
fn wait_for(browser: &Browser, what: &str, mut cond: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = browser.eval(READ_PAGE);
        if cond(&page) {
            return page;
        }
        if Instant::now() >= deadline {
            let mut shown = page.clone();
            shown["text"] = Value::Null;
            panic!("timed out after {WAIT:?} waiting for the page to show {what}; it shows: {shown:#}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_status_page_draws_the_live_pipeline_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = TargetServer::start();
    target.set_failing(true);
    let p = Proc::start_with(dir, &config(dir, &target), &[("CXRELAY_ADMIN_TOKEN", ADMIN_TOKEN)]);

    // Served whole from the binary, locked down by its policy.
    let page = p.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    assert!(page.text().contains("<title>cxrelay status</title>"));

    let tools = match find_tools() {
        Ok(t) => t,
        Err(why) => {
            return skip_or_fail(
                "status page browser test",
                &why,
                "apt-get install chromium chromium-driver",
            )
        }
    };
    let browser = Browser::start(&tools, 1280, 1000);
    browser.goto(&format!("http://{}/", p.addr));

    // The topology: every source, the router, every listener and sink.
    let first = wait_for(&browser, "the pipeline, ready, with events counted", |v| {
        let nodes: Vec<&str> = v["nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        [
            "source:queues",
            "part:queues/channel-0",
            "source:details",
            "source:gen",
            "router",
            "listener:warehouse",
            "listener:broken",
            "sink:warehouse",
            "sink:broken",
        ]
        .iter()
        .all(|n| nodes.contains(n))
            && v["ready"] == "ready"
            && num(v, "gen_events") > 0.0
            && num(v, "queues_events") > 0.0
            && num(v, "router_published") > 0.0
            && num(v, "warehouse_committed") > 0.0
    });
    assert_eq!(first["title"], "cxrelay status");
    let others = first["others"].to_string();
    assert!(
        others.contains("component:store") && others.contains("component:emulator"),
        "{others}"
    );
    assert!(
        first["summary"]
            .as_str()
            .is_some_and(|s| s.contains("RSS") && s.contains("files open")),
        "{}",
        first["summary"]
    );

    // Live: the counters move on their own, polled every second.
    let moved = wait_for(&browser, "its counters moving", |v| {
        num(v, "updates") >= num(&first, "updates") + 2.0
            && num(v, "gen_events") > num(&first, "gen_events")
            && num(v, "router_published") > num(&first, "router_published")
            && num(v, "warehouse_delivered") > num(&first, "warehouse_delivered")
            && num(v, "warehouse_committed") > num(&first, "warehouse_committed")
    });
    assert!(
        moved["live"].as_str().is_some_and(|l| l.starts_with("live")),
        "{}",
        moved["live"]
    );
    // Rates, and wires drawn between the columns, moving while events flow.
    wait_for(&browser, "events/s and flowing wires", |v| {
        num(v, "gen_rate") > 0.0 && num(v, "wires") >= 5.0 && num(v, "flowing") >= 1.0
    });
    // The analytics job's interval, done: its progress bar full.
    wait_for(&browser, "the analytics interval finished", |v| {
        num(v, "details_progress") == 100.0 && num(v, "details_events") > 0.0
    });
    // The failing sink: its queue full, drops counted, and called out.
    let failing = wait_for(&browser, "the failing sink called out", |v| {
        let attention = v["attention"].to_string();
        num(v, "broken_dropped") > 0.0
            && num(v, "broken_failures") > 0.0
            && num(v, "broken_queue_bar") == 100.0
            && attention.contains("broken has dropped")
            && attention.contains("broken is degraded")
    });
    let text = failing["text"].as_str().unwrap_or_default();
    assert!(!text.contains(ADMIN_TOKEN), "the admin token is on the page");
    assert!(
        !text.contains("cxrelay-emulator-secret"),
        "the client secret is on the page"
    );
    let shots = artifacts_dir();
    browser.set_size(1280, 1800);
    wait_for(&browser, "the taller window redrawn", |v| num(v, "wires") >= 5.0);
    browser.screenshot(&shots.join("status-page-wide.png"));

    // On a phone: one column, nothing wider than the screen, no wires.
    browser.set_size(390, 844);
    let phone = wait_for(&browser, "one column on a phone", |v| {
        num(v, "columns") == 1.0 && num(v, "wires") == 0.0 && num(v, "width") <= 400.0
    });
    assert!(
        num(&phone, "scroll_width") <= num(&phone, "width"),
        "the page is wider than the phone: {} > {}",
        phone["scroll_width"],
        phone["width"]
    );
    browser.screenshot(&shots.join("status-page-phone.png"));
    eprintln!("status page screenshots in {}", shots.display());

    // The service stops: the page says it is no longer live.
    assert!(p.terminate().success());
    wait_for(&browser, "STALE once /status stops answering", |v| {
        v["stale"] == true && v["live"].as_str().is_some_and(|l| l.starts_with("STALE"))
    });
}
