//! Dead letters in cluster mode: a processing node keeps its listeners'
//! dead letters in its own store, and sends them back through the stream
//! to their one listener.

use std::time::Duration;

use crate::cluster::{cluster_section, file_listener, generator, written};
use crate::common::*;
use crate::nats::NatsServer;

/// One node (ingest and process) on one NATS server; an HTTP listener whose
/// target fails gives up after two retries: its events become dead letters
/// on the node, listed by `cxrelay dlq`, while the file listener writes
/// every event. Sent back once the target works, they reach the HTTP
/// listener through the stream, and the file listener gets none again.
#[test]
fn cluster_dead_letters_are_kept_by_the_node_and_sent_back_through_the_stream() {
    let Some(nats) = NatsServer::start(None, false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = TargetServer::start();
    target.set_failing(true);
    let config = format!(
        "{}{}{}{}[[listener]]\nname = \"web\"\ntopics = [\"conv.>\"]\nsink = {{ kind = \"http\", url = \"http://{}/ingest\", batch_events = 100, batch_interval = \"50ms\", timeout = \"2s\", max_retries = 2 }}\n",
        preamble(dir),
        cluster_section(&[nats.url()], "solo", "\"ingest\", \"process\"", 1),
        generator(300, 30, 1000),
        file_listener(dir, "\"conv.>\""),
        target.addr
    );
    let token = [("CXRELAY_ADMIN_TOKEN", "s3cret-token")];
    let p = Proc::start_with(dir, &config, &token);
    wait_until("300 dead letters on the node", Duration::from_secs(60), || {
        component(&p.get("/status").json(), "store")["detail"]["dead_letters"] == 300
    });
    assert_eq!(written(dir).len(), 300, "the file listener wrote every event once");
    let url = format!("http://{}", p.addr);
    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "list", "--json", "--url", &url], &token);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 300);
    assert!(listed.iter().all(|l| l["listener"] == "web"));

    target.set_failing(false);
    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "replay", "--all", "--url", &url], &token);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("300 dead letter(s) sent back"), "{out}");
    wait_until("the events sent back delivered to web", Duration::from_secs(30), || {
        target.ids().0.len() == 300
    });
    wait_until("no dead letter left", Duration::from_secs(10), || {
        component(&p.get("/status").json(), "store")["detail"]["dead_letters"] == 0
    });
    // Every message, the 300 sent back included, is acknowledged to the
    // stream once committed (none is delivered again).
    wait_until("every message acknowledged", Duration::from_secs(30), || {
        let c = component(&p.get("/status").json(), "cluster")["detail"].clone();
        c["consumed"] == 600 && c["acknowledged"] == 600
    });
    assert_eq!(target.lines.lock().unwrap().len(), 300, "sent back once each");
    // Marked for `web` in the stream: the file listener got none of them.
    assert!(p.terminate().success());
    assert_eq!(written(dir).len(), 300);
}
