//! Transforms: a poisoned record is isolated and dead-lettered while the
//! rest of its batch goes through; masking leaves no clear text.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use cxrelay::sources::webhook::{SignatureEncoding, Verifier};
use cxrelay::transform::{TransformJob, TransformSpec, TransformWorker, Transformer};
use cxrelay_actors::pool::{PoolConfig, Worker, WorkerPool};
use cxrelay_actors::Event;

/// Transforms like the real worker, but panics on a poisoned record.
struct Fragile(TransformWorker);

impl Worker for Fragile {
    type Job = TransformJob;
    type Output = cxrelay::transform::TransformOutput;
    fn run(&mut self, job: &TransformJob) -> Self::Output {
        if job.events.iter().any(|e| e.payload.starts_with(b"{\"poison\"")) {
            panic!("transform bug triggered");
        }
        self.0.run(job)
    }
}

#[actix::test]
async fn a_poisoned_record_is_isolated_and_the_rest_of_its_batch_is_delivered_in_order() {
    let pool = WorkerPool::start(
        PoolConfig {
            name: "t".into(),
            workers: 2,
            queue_bound: 4,
            recycle_after: 3,
            component: None,
        },
        || Fragile(TransformWorker),
    );
    let t = Transformer::new(
        pool.clone(),
        TransformSpec {
            flatten: true,
            ..Default::default()
        },
        25,
    );
    let events: Vec<Arc<Event>> = (0..200)
        .map(|i| {
            let payload = if i == 77 {
                r#"{"poison":1}"#.to_string()
            } else {
                format!(r#"{{"n":{i},"a":{{"b":{i}}}}}"#)
            };
            Arc::new(
                Event::builder("s", "t")
                    .id(i.to_string())
                    .key(format!("k{}", i % 7))
                    .payload(payload)
                    .build(),
            )
        })
        .collect();
    let out = t.run(&events).await;
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(&*out.rejected[0].0.id, "77");
    assert!(
        out.rejected[0].1.contains("transform bug triggered"),
        "{}",
        out.rejected[0].1
    );
    let ids: Vec<String> = out.events.iter().map(|e| e.id.to_string()).collect();
    let expected: Vec<String> = (0..200).filter(|i| *i != 77).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected, "the batch keeps its order");
    assert_eq!(out.events[0].json().unwrap()["a.b"], 0);
    let s = pool.stats().snapshot();
    assert!(s.panics >= 3 && s.failed >= 2, "{s:?}");
    assert!(s.recycled > 0, "workers recycled after 3 batches: {s:?}");
    // The pool keeps serving.
    assert_eq!(t.run(&events[..10]).await.events.len(), 10);
}

#[test]
fn masking_leaves_no_clear_text_and_is_stable_per_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = format!(
        r#"{}[transform]
workers = 2
chunk_size = 50
recycle_after_batches = 3

[[source]]
name = "hook"
kind = "webhook"
path = "/in"
secret_env = "HOOK_SECRET"

[[listener]]
name = "warehouse"
topics = ["v2.>"]
transform = {{ flatten = true, timestamps = true, mask = ["ani", "dnis", "addressFrom", "addressTo", "participantName"], mask_mode = "hash", mask_key_env = "MASK_KEY" }}
sink = {{ kind = "file", path = "{}", batch_interval = "20ms" }}
"#,
        preamble(dir),
        dir.join("out").display()
    );
    let env = [("HOOK_SECRET", "s"), ("MASK_KEY", "mask-key-1")];
    let p = Proc::start_with(dir, &config, &env);
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let v = Verifier::new(b"s", "sha256=", SignatureEncoding::Base64);
    for i in 0..300u32 {
        let body = format!(
            r#"{{"topicName":"v2.detail.events.conversation.c{c}.customer.start","eventBody":{{"eventTime":{t},"conversationId":"c{c}","participants":[{{"participantName":"Alice Example","sessions":[{{"ani":"tel:+1555010{a}","dnis":"tel:+18005550199","addressFrom":"alice@example.com","addressTo":"support@example.com"}}]}}]}},"metadata":{{"CorrelationId":"m-{i}"}}}}"#,
            c = i % 10,
            t = 1_714_572_123_000u64 + i as u64,
            a = i % 3
        );
        let r = request(
            p.addr,
            "POST",
            "/in",
            &[("X-Hub-Signature-256", &v.sign(body.as_bytes()))],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 202);
    }
    wait_until("all written", Duration::from_secs(30), || {
        read_ndjson_dir(&dir.join("out")).len() == 300
    });
    let text: String = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    for clear in [
        "+1555010",
        "+18005550199",
        "alice@example.com",
        "support@example.com",
        "Alice Example",
    ] {
        assert!(!text.contains(clear), "clear text `{clear}` in the output");
    }
    let lines = read_ndjson_dir(&dir.join("out"));
    let mut by_ani: HashMap<u32, String> = HashMap::new();
    for l in &lines {
        let payload = &l["payload"];
        assert_eq!(
            payload["eventBody.eventTime"].as_str().unwrap().len(),
            24,
            "ISO-8601 UTC ms"
        );
        let session = &payload["eventBody.participants"][0]["sessions"][0];
        let hash = session["ani"].as_str().unwrap().to_string();
        assert!(hash.starts_with("sha256:"));
        let i: u32 = l["id"].as_str().unwrap()[2..].parse().unwrap();
        let prev = by_ani.entry(i % 3).or_insert_with(|| hash.clone());
        assert_eq!(*prev, hash, "the same number always gives the same hash");
    }
    assert_eq!(by_ani.values().collect::<std::collections::HashSet<_>>().len(), 3);
    let pool = component(&p.get("/status").json(), "transform-pool");
    assert!(pool["detail"]["stats"]["recycled"].as_u64().unwrap() > 0, "{pool}");
    assert!(!p.log_text().contains("mask-key-1"));
    assert!(p.terminate().success());
}

#[test]
fn per_key_order_holds_across_batches_through_the_worker_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Many small batches, tiny chunks, two workers recycled often: if a
    // key's events could take different workers, or batches overtake each
    // other, sequences would come out of order.
    let config = format!(
        r#"{}[transform]
workers = 2
chunk_size = 7
recycle_after_batches = 5

[[source]]
name = "gen"
kind = "generator"
topics = ["v2.detail.events.conversation.{{key}}.customer.start"]
rate = 20000
count = 20000
keys = 37
payload_bytes = 300

[[listener]]
name = "ordered"
topics = ["v2.>"]
batch = 100
transform = {{ flatten = true }}
sink = {{ kind = "file", path = "{}", batch_events = 100, batch_interval = "10ms", fsync = false }}
"#,
        preamble(dir),
        dir.join("out").display()
    );
    let p = Proc::start(dir, &config);
    wait_until("all written", Duration::from_secs(60), || {
        read_ndjson_dir(&dir.join("out")).len() >= 20_000
    });
    let lines = read_ndjson_dir(&dir.join("out"));
    assert_eq!(lines.len(), 20_000);
    let mut last: HashMap<String, i64> = HashMap::new();
    for l in &lines {
        let key = l["key"].as_str().unwrap().to_string();
        let seq = l["payload"]["sequence"].as_i64().unwrap();
        if let Some(prev) = last.insert(key.clone(), seq) {
            assert!(seq > prev, "key {key}: {seq} after {prev}");
        }
    }
    assert_eq!(last.len(), 37);
    let pool = component(&p.get("/status").json(), "transform-pool");
    assert!(pool["detail"]["stats"]["batches"].as_u64().unwrap() > 100, "{pool}");
    assert!(p.terminate().success());
}
