//! Reconnects: transient and permanent close codes, backoff with jitter,
//! silent sockets, socket switches and expiring tokens, as the
//! `notifications` source handles them.

use super::*;

/// Quick reconnects for the timing tests: ceilings 100, 200, 400, 400 ms.
const FAST_RETRIES: &str =
    "reconnect_base = \"100ms\"\nreconnect_cap = \"400ms\"\nping_interval = \"300ms\"\nsilence_timeout = \"1500ms\"\n";
/// Slack for a timer on a loaded 2-core machine (debug build).
const SLACK_MS: i64 = 400;
/// Slack for a delay that ends with the new socket's handshake (the
/// emulator records a socket once its upgrade is handled): a loaded CI
/// machine has taken 750 ms over one. The exact ceilings are the unit
/// tests' (`sources/notifications/reconnect.rs`); these check the wiring:
/// the same channel, promptly, with jitter.
const HANDSHAKE_SLACK_MS: i64 = 1000;

fn requests(e: &EmulatorHandle, method: &str, prefix: &str) -> usize {
    e.state()
        .log
        .count(|r| r.method == method && r.path.starts_with(prefix))
}

/// Injects `fault` and waits for the channel's next socket.
fn close_and_wait_reconnect(e: &EmulatorHandle, p: &Proc, id: &str, fault: Fault) -> RecordSnapshot {
    let before = record(e, id).connects;
    e.inject(fault);
    wait_until("a new socket", Duration::from_secs(20), || {
        record(e, id).connects > before && e.state().notifications.socket_open(id)
    });
    wait_until("the channel running again", Duration::from_secs(20), || {
        channel_status(p, 0)["state"] == "running"
    });
    record(e, id)
}

#[test]
fn transient_close_codes_reconnect_to_the_same_channel_within_the_backoff() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(quick());
    let p = start(tmp.path(), &e, &source(3, FAST_RETRIES));
    wait_connected(&p, &e, 1);
    let id = only_channel(&e);
    let created = requests(&e, "POST", "/api/v2/notifications/channels");
    let cases: Vec<(Fault, &str)> = vec![
        (
            Fault::CloseSocket {
                channel: Some(id.clone()),
                code: 1000,
            },
            "1000",
        ),
        (
            Fault::CloseSocket {
                channel: Some(id.clone()),
                code: 1001,
            },
            "1001",
        ),
        (
            Fault::DropSocket {
                channel: Some(id.clone()),
            },
            "abnormal",
        ),
        (
            Fault::CloseSocket {
                channel: Some(id.clone()),
                code: 1011,
            },
            "1011",
        ),
        (
            Fault::CloseSocket {
                channel: Some(id.clone()),
                code: 1012,
            },
            "1012",
        ),
        (
            Fault::CloseSocket {
                channel: Some(id.clone()),
                code: 1013,
            },
            "1013",
        ),
    ];
    for (i, (fault, label)) in cases.iter().enumerate() {
        let r = close_and_wait_reconnect(&e, &p, &id, fault.clone());
        // From the moment cxrelay saw the socket end to its next socket (a
        // dropped connection is seen when the emulator's HTTP server lets
        // go of it, up to a second after the drop).
        let seen_at = channel_status(&p, 0)["detail"]["last_close_at_ms"].as_i64().unwrap();
        let reconnected_at = *r.connected_at_ms.last().unwrap();
        let delay = reconnected_at - seen_at;
        // One failure after a stable socket: the first ceiling (100 ms).
        assert!(
            (0..=100 + HANDSHAKE_SLACK_MS).contains(&delay),
            "{label}: reconnected {delay} ms after the close"
        );
        wait_until("the disconnect counted", Duration::from_secs(5), || {
            channel_status(&p, 0)["detail"]["reconnects"][label] == 1
        });
        wait_until("the gap recorded", Duration::from_secs(5), || {
            channel_status(&p, 0)["detail"]["gaps"]["count"] == (i + 1) as u64
        });
    }
    // Same channel all along: no new channel, no new subscription.
    assert_eq!(e.state().notifications.channel_ids(), vec![id.clone()]);
    assert_eq!(requests(&e, "POST", "/api/v2/notifications/channels"), created);
    let gap = &channel_status(&p, 0)["detail"]["gaps"]["recent"][0];
    assert!(gap["to_ms"].as_i64().unwrap() >= gap["from_ms"].as_i64().unwrap());
    assert!(gap["reason"].as_str().unwrap().contains("1000"), "{gap}");
    let m = p.get("/metrics").text();
    assert_eq!(
        metric(
            &m,
            "cxrelay_notification_gaps_total{source=\"queues\",channel=\"queues/channel-0\"}"
        ),
        Some(6.0)
    );
    assert_eq!(undeclared_metrics(&m), Vec::<String>::new());
    assert!(p.terminate().success());
}

#[test]
fn a_silent_socket_is_declared_dead_and_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(quick());
    let p = start(tmp.path(), &e, &source(3, FAST_RETRIES));
    wait_connected(&p, &e, 1);
    let id = only_channel(&e);
    // Pings keep a quiet socket alive: no false alarm for twice the timeout.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(record(&e, &id).connects, 1);
    assert!(record(&e, &id).pongs >= 5, "pings are answered");
    let silenced = cxrelay_actors::event::now_ms();
    let r = close_and_wait_reconnect(
        &e,
        &p,
        &id,
        Fault::SilenceSocket {
            channel: Some(id.clone()),
        },
    );
    // Declared dead when cxrelay ended the socket (the emulator records
    // the end): the reconnect's handshake after it takes what a loaded
    // machine gives it, and is not what is measured here.
    let ended = r.closes.last().expect("the silent socket's end").at_ms;
    assert!(*r.connected_at_ms.last().unwrap() >= ended, "replaced after it ended");
    let after = ended - silenced;
    // The silence counts from the last frame heard, which may be a pong up
    // to one ping interval (300 ms) before the fault was set.
    assert!(
        (1500 - 300..=1500 + 250 + 100 + SLACK_MS).contains(&after),
        "declared dead {after} ms after the socket went silent"
    );
    wait_until("the silence recorded", Duration::from_secs(5), || {
        let c = channel_status(&p, 0);
        c["detail"]["reconnects"]["silent"] == 1 && c["detail"]["gaps"]["count"] == 1
    });
    // Heartbeats and pongs were consumed, never published.
    let lines = read_ndjson_dir(&tmp.path().join("out"));
    assert!(
        lines.iter().all(|l| l["topic"] != "channel.metadata"),
        "{}",
        lines.len()
    );
    assert!(p.terminate().success());
}

#[test]
fn a_1008_refreshes_the_token_checks_the_channel_and_recreates_it_when_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(quick());
    let p = start(tmp.path(), &e, &source(3, FAST_RETRIES));
    wait_connected(&p, &e, 1);
    let id = only_channel(&e);
    // 1008 while the channel is still valid: new token, HEAD 200, same channel.
    let (tokens, heads) = (
        requests(&e, "POST", "/oauth/token"),
        requests(&e, "HEAD", "/api/v2/notifications"),
    );
    close_and_wait_reconnect(
        &e,
        &p,
        &id,
        Fault::CloseSocket {
            channel: Some(id.clone()),
            code: 1008,
        },
    );
    assert_eq!(
        requests(&e, "POST", "/oauth/token"),
        tokens + 1,
        "the token was refreshed"
    );
    assert_eq!(
        requests(&e, "HEAD", "/api/v2/notifications"),
        heads + 1,
        "the channel was checked"
    );
    assert_eq!(e.state().notifications.channel_ids(), vec![id.clone()]);
    // The channel expires: 1008, HEAD 404, a new channel with the same topics.
    let created = requests(&e, "POST", "/api/v2/notifications/channels");
    e.inject(Fault::ExpireChannel {
        channel: Some(id.clone()),
    });
    wait_until("a new channel connected", Duration::from_secs(20), || {
        let ids = e.state().notifications.channel_ids();
        ids.len() == 1 && ids[0] != id && e.state().notifications.socket_open(&ids[0])
    });
    let new_id = only_channel(&e);
    assert_eq!(requests(&e, "POST", "/api/v2/notifications/channels"), created + 1);
    let mut topics = e.state().notifications.topics_of(&new_id).unwrap();
    topics.sort();
    assert_eq!(
        topics,
        [
            "v2.routing.queues.q0.conversations",
            "v2.routing.queues.q1.conversations",
            "v2.routing.queues.q2.conversations"
        ]
    );
    wait_until("running on the new channel", Duration::from_secs(10), || {
        let c = channel_status(&p, 0);
        c["state"] == "running" && c["detail"]["channel_id"] == new_id.as_str() && c["detail"]["channels_created"] == 2
    });
    // Events flow on the new channel.
    traffic(&e, Some(2000.0), 200);
    wait_until("events written", Duration::from_secs(20), || {
        written_ids(tmp.path()).len() == 200
    });
    assert!(p.terminate().success());
}

#[test]
fn permanent_close_codes_stop_with_the_reason_until_an_operator_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(quick());
    let p = start(tmp.path(), &e, &source(3, FAST_RETRIES));
    wait_connected(&p, &e, 1);
    let id = only_channel(&e);
    for (n, code) in [(1u64, 1003u16), (2, 1009)] {
        e.inject(Fault::CloseSocket {
            channel: Some(id.clone()),
            code,
        });
        wait_until("the channel failed", Duration::from_secs(10), || {
            channel_status(&p, 0)["state"] == "failed"
        });
        let c = channel_status(&p, 0);
        let why = c["last_error"].as_str().unwrap();
        assert!(why.contains(&code.to_string()) && why.contains("not retrying"), "{why}");
        let ready = p.get("/health/ready");
        assert_eq!(ready.status, 503);
        assert!(ready.json()["components"]["queues/channel-0"]
            .as_str()
            .unwrap()
            .contains(&code.to_string()));
        // No retry.
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(record(&e, &id).connects, n);
        // The operator fixed the cause: restart through the admin API.
        let r = admin(&p, "POST", "/admin/notifications/queues/channels/0/restart", "");
        assert_eq!(r.status, 200, "{}", r.text());
        wait_connected(&p, &e, 1);
    }
    let r = admin(&p, "POST", "/admin/notifications/queues/channels/0/restart", "");
    assert_eq!(r.status, 409, "a running channel is not restarted");
    assert!(p.terminate().success());
}

#[test]
fn failures_in_a_row_back_off_within_full_jitter_bounds_then_fail_the_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(quick());
    let p = start(tmp.path(), &e, &source(3, &format!("{FAST_RETRIES}retry_limit = 5\n")));
    wait_connected(&p, &e, 1);
    let id = only_channel(&e);
    // Every socket from now on is closed at once: the first and 5 retries.
    for _ in 0..6 {
        e.inject(Fault::CloseSocket {
            channel: Some(id.clone()),
            code: 1011,
        });
    }
    wait_until("the channel failed", Duration::from_secs(30), || {
        channel_status(&p, 0)["state"] == "failed"
    });
    let r = record(&e, &id);
    assert_eq!(r.connects, 6, "the first socket and 5 retries");
    let ceilings = [100i64, 200, 400, 400, 400];
    let delays: Vec<i64> = (0..5).map(|k| r.connected_at_ms[k + 1] - r.closes[k].at_ms).collect();
    for (k, (d, c)) in delays.iter().zip(ceilings).enumerate() {
        assert!(
            (0..=c + HANDSHAKE_SLACK_MS).contains(d),
            "retry {}: {d} ms, ceiling {c} ms ({delays:?})",
            k + 1
        );
    }
    let c = channel_status(&p, 0);
    assert!(
        c["last_error"]
            .as_str()
            .unwrap()
            .contains("gave up after 5 failed attempts"),
        "{c}"
    );
    assert_eq!(p.get("/health/ready").status, 503);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(record(&e, &id).connects, 6, "no retry past the limit");
    assert!(p.terminate().success());
}

#[test]
fn channels_dropped_together_do_not_reconnect_in_lockstep() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(quick());
    // One topic per channel: 6 channels.
    let extra = "reconnect_base = \"800ms\"\nreconnect_cap = \"800ms\"\nmax_topics_per_channel = 1\n";
    let p = start(tmp.path(), &e, &source(6, extra));
    wait_connected(&p, &e, 6);
    let ids = e.state().notifications.channel_ids();
    e.inject(Fault::CloseSocket {
        channel: None,
        code: 1012,
    });
    wait_until("every channel back", Duration::from_secs(20), || {
        ids.iter().all(|id| record(&e, id).connects == 2) && e.state().notifications.open_sockets() == 6
    });
    let delays: Vec<i64> = ids
        .iter()
        .map(|id| {
            let r = record(&e, id);
            r.connected_at_ms[1] - r.closes[0].at_ms
        })
        .collect();
    assert!(
        delays.iter().all(|d| (0..=800 + HANDSHAKE_SLACK_MS).contains(d)),
        "{delays:?}"
    );
    let spread = delays.iter().max().unwrap() - delays.iter().min().unwrap();
    assert!(spread >= 100, "reconnects within {spread} ms of each other: {delays:?}");
    assert!(p.terminate().success());
}

#[test]
fn socket_closing_switches_sockets_and_records_each_cut_as_a_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(quick());
    let p = start(tmp.path(), &e, &source(20, ""));
    wait_connected(&p, &e, 1);
    let id = only_channel(&e);
    traffic(&e, Some(3000.0), 15_000);
    // Three maintenance announcements while events flow.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1000));
        let before = record(&e, &id).connects;
        e.inject(Fault::SocketClosing {
            channel: Some(id.clone()),
            grace_ms: 2000,
        });
        wait_until("the replacement socket", Duration::from_secs(10), || {
            record(&e, &id).connects > before
        });
    }
    wait_until("traffic sent", Duration::from_secs(60), || traffic_done(&e));
    let r = record(&e, &id);
    assert_eq!(r.connects, 4);
    assert_eq!(r.delivered_count + r.missed_count, 15_000);
    let delivered = r.delivered_count as usize;
    wait_until("events written", Duration::from_secs(60), || {
        written_ids(tmp.path()).len() >= delivered
    });
    let written = written_ids(tmp.path());
    assert_eq!(written.len(), delivered, "everything sent on a socket is written");
    assert!(written.values().all(|n| *n == 1));
    // Same channel. A second connect to a channel cuts the first, as on the
    // platform: what was on its way to the old socket is lost, so each
    // switch is a recorded gap (and backfilled where a source can).
    assert_eq!(e.state().notifications.channel_ids(), vec![id]);
    let c = channel_status(&p, 0);
    assert_eq!(c["detail"]["gaps"]["count"], 3, "{c}");
    assert!(
        c["detail"]["gaps"]["recent"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("replacement socket cut")),
        "{c}"
    );
    assert_eq!(c["detail"]["counters"]["socket_closing"], 3);
    assert_eq!(c["state"], "running");
    assert!(p.terminate().success());
}

#[test]
fn five_second_tokens_cause_no_reconnect_and_no_expired_token_use() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        token_lifetime: Duration::from_secs(5),
        notifications: NotificationSettings {
            // Renewals (re-PUT of the subscriptions) every ~1.5 s.
            channel_lifetime: Duration::from_secs(3),
            ..quick()
        },
        ..EmulatorSettings::default()
    });
    let p = start(tmp.path(), &e, &source(10, ""));
    wait_connected(&p, &e, 1);
    let id = only_channel(&e);
    traffic(&e, Some(500.0), 7_000);
    wait_until("traffic sent", Duration::from_secs(60), || traffic_done(&e));
    let r = record(&e, &id);
    assert_eq!(r.connects, 1, "the socket stayed up through token expiry");
    assert_eq!((r.delivered_count, r.missed_count), (7_000, 0));
    wait_until("events written", Duration::from_secs(60), || {
        written_ids(tmp.path()).len() >= 7_000
    });
    assert_eq!(written_ids(tmp.path()).len(), 7_000);
    // Tokens were replaced several times, none was used once expired.
    assert!(requests(&e, "POST", "/oauth/token") >= 3);
    let refused = e.state().log.count(|r| r.status == 401);
    assert_eq!(refused, 0, "a request carried an expired token");
    let renewals = channel_status(&p, 0)["detail"]["renewals"].as_u64().unwrap();
    assert!(renewals >= 6, "renewals: {renewals}");
    assert_eq!(
        e.state().notifications.channel_ids(),
        vec![id],
        "the channel never expired"
    );
    assert!(p.terminate().success());
}
