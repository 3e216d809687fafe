//! The nats sink against a real `nats-server` with JetStream started by the
//! test (see `nats.rs`): one message per event id on subjects from the
//! template, the token never shown, and the server killed and restarted
//! mid-run with nothing lost and nothing stored twice.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::nats::NatsServer;

const TOKEN: &str = "nats-t0ken-do-not-show";

fn generator(count: u64, payload_bytes: usize) -> String {
    format!(
        "[[source]]\nname = \"gen\"\nkind = \"generator\"\ntopics = [\"calls.{{key}}.start\"]\nrate = 1000000\ncount = {count}\nkeys = 100\npayload_bytes = {payload_bytes}\n\n"
    )
}

fn listener(url: &str, extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"js\"\ntopics = [\"calls.>\"]\nsink = {{ kind = \"nats\", url = \"{url}\", stream = \"CXTEST\", batch_events = 1000, batch_interval = \"50ms\"{extra} }}\nmailbox = 4096\n\n"
    )
}

fn status_of(p: &Proc) -> serde_json::Value {
    component(&p.get("/status").json(), "js")
}

fn committed(p: &Proc) -> u64 {
    status_of(p)["detail"]["committed_events"].as_u64().unwrap_or(0)
}

#[test]
fn each_event_is_one_message_on_its_subject_and_the_token_never_shows() {
    let Some(nats) = NatsServer::start(Some(TOKEN), false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = format!(
        "{}{}{}",
        preamble(dir),
        generator(2000, 300),
        listener(
            &nats.url(),
            ", subject = \"cx.{source}.{topic}\", token_env = \"CX_TEST_NATS_TOKEN\""
        )
    );
    let p = Proc::start_with(dir, &config, &[("CX_TEST_NATS_TOKEN", TOKEN)]);
    wait_until("2000 events published", Duration::from_secs(60), || {
        committed(&p) == 2000
    });
    let status = p.get("/status");
    let js = component(&status.json(), "js");
    assert_eq!(js["detail"]["writer"]["published"], 2000, "{js}");
    assert_eq!(js["detail"]["writer"]["connection"], "connected", "{js}");
    assert!(!status.text().contains(TOKEN), "the token shows in /status");
    assert!(p.terminate().success());
    for log in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        assert!(!text.contains(TOKEN), "the token shows in {:?}", log.path());
    }
    assert_eq!(nats.messages("CXTEST"), 2000);
    let messages = nats.read_all("CXTEST");
    let ids: HashSet<&str> = messages.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), 2000);
    assert!((0..2000).all(|i| ids.contains(format!("gen-{i}").as_str())));
    assert!(
        messages
            .iter()
            .all(|(subject, _)| subject.starts_with("cx.gen.calls.") && subject.ends_with(".start")),
        "{:?}",
        &messages[..3]
    );
}

/// The server SIGKILLed while cxrelay publishes at full speed, then
/// started again: the listener shows as not ready meanwhile, holds its
/// batch, and when the server is back every event is in the stream once
/// (the batch published again is deduplicated by `Nats-Msg-Id`).
#[test]
fn the_server_killed_and_restarted_mid_run_loses_nothing_and_stores_nothing_twice() {
    let Some(mut nats) = NatsServer::start(None, true) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let total: u64 = 30_000;
    let config = format!(
        "{}{}{}",
        preamble(dir),
        generator(total, 300),
        // Batches of 5000 to 10000 events: more than one window of publishes.
        listener(&nats.url(), "")
            .replace("batch_events = 1000", "batch_events = 5000")
            .replace("mailbox = 4096", "mailbox = 5000\nbatch = 5000")
    );
    let p = Proc::start_with(dir, &config, &[]);
    wait_until("messages arrive", Duration::from_secs(60), || {
        nats.messages("CXTEST") >= 5_000
    });
    nats.kill();
    let killed_at = committed(&p);
    wait_until("the listener not ready", Duration::from_secs(60), || {
        let ready = p.get("/health/ready");
        ready.status == 503 && ready.text().contains("js") && ready.text().contains("unreachable")
    });
    let outage = status_of(&p);
    nats.restart();
    wait_until("every event committed", Duration::from_secs(180), || {
        committed(&p) >= total
    });
    wait_until("ready again", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let writer = status_of(&p)["detail"]["writer"].clone();
    assert!(p.terminate().success());
    let messages = nats.read_all("CXTEST");
    let ids: HashSet<&str> = messages.iter().map(|(_, id)| id.as_str()).collect();
    eprintln!(
        "nats restart test: {killed_at} events committed when the server was killed; status during the outage: {}; \
         {} messages in the stream, {} distinct ids; publishes deduplicated by the stream: {}",
        outage["last_error"],
        messages.len(),
        ids.len(),
        writer["duplicates"]
    );
    assert_eq!(messages.len() as u64, total, "messages stored twice or lost");
    assert!((0..total).all(|i| ids.contains(format!("gen-{i}").as_str())));
}

/// Events per second through the whole pipeline into JetStream (one
/// server, file storage, default sync); the figures in the README. Ignored
/// by default: `cargo test --test it nats_throughput -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn nats_throughput() {
    let Some(nats) = NatsServer::start(None, false) else {
        return;
    };
    let total: u64 = 100_000;
    for batch in [5000, 1000] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let config = format!(
            "{}{}{}",
            preamble(dir),
            generator(total, 1000),
            listener(
                &nats.url(),
                &format!(", subject = \"b{batch}.{{topic}}\", stream = \"B{batch}\"")
            )
            .replace("stream = \"CXTEST\", ", "")
            .replace("batch_events = 1000", &format!("batch_events = {batch}"))
            .replace("mailbox = 4096", &format!("mailbox = {batch}\nbatch = {batch}"))
        );
        let p = Proc::start_with(dir, &config, &[]);
        wait_until("first events", Duration::from_secs(60), || committed(&p) > 0);
        let (t, from) = (Instant::now(), committed(&p));
        wait_until("all events", Duration::from_secs(300), || committed(&p) >= total);
        let rate = (total - from) as f64 / t.elapsed().as_secs_f64();
        assert!(p.terminate().success());
        assert_eq!(nats.messages(&format!("B{batch}")), total);
        eprintln!("nats throughput: batch_events {batch}, payload_bytes 1000: {rate:.0} events/s");
    }
}
