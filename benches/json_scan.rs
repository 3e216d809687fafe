//! The one-pass JSON readers on the notification path, per frame, against
//! serde_json's own validating pass over the same text: the frame reader
//! (`Frame::parse`: validation plus the envelope and body fields), the
//! validating cursor alone (`Cursor::skip_value`), and the transform's
//! rewriter (flatten + keyed-hash masking + timestamps). The frames have
//! the shape of `compare.sh notifications` traffic: ~1.5 KB queue
//! conversation events with three participants.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cxrelay::genesys::notification::Frame;
use cxrelay::json::Cursor;
use cxrelay::transform::{MaskMode, Masker, TransformSpec};

/// A deterministic id of UUID shape from `n` (as the emulator makes them).
fn id(n: u64) -> String {
    cxrelay::emulator::ids::uuid(0x6a73, &[n])
}

/// Frame `i` of a stream over 50 queues.
fn frame(i: u64) -> String {
    let queue = id(1_000_000 + i % 50);
    let base = 1_714_564_800_000 + i as i64 * 37;
    let phone = format!("tel:+1317555{:04}", i * 7919 % 10_000);
    let dnis = format!("tel:+1800555{:04}", i * 104_729 % 10_000);
    let agent = id(2_000_000 + i % 997);
    let offset_time = |ms: i64| {
        let t = cxrelay::wire::time::iso_ms(ms - 5 * 3_600_000);
        format!("{}-05:00", &t[..23])
    };
    serde_json::json!({
        "topicName": format!("v2.routing.queues.{queue}.conversations"),
        "version": "2",
        "eventBody": {
            "id": id(i),
            "seq": i,
            "startTime": offset_time(base),
            "recordingState": "active",
            "participants": [
                {
                    "id": id(i * 3 + 1), "purpose": "customer", "address": phone,
                    "name": "Maria Garcia", "ani": phone, "dnis": dnis,
                    "startTime": base, "connectedTime": cxrelay::wire::time::iso_ms(base + 1200),
                    "queueId": queue,
                    "calls": [{"state": "connected", "direction": "inbound", "recording": true, "held": false, "provider": "Edge"}],
                    "attributes": {"accountId": format!("ACC-{:05}", i % 100_000), "language": "en-US", "priority": (i % 5).to_string()}
                },
                {
                    "id": id(i * 3 + 2), "purpose": "acd", "address": dnis, "name": "Support Queue",
                    "connectedTime": offset_time(base + 1500), "queueId": queue,
                    "calls": [{"state": "disconnected", "direction": "inbound", "recording": false}],
                    "attributes": {}
                },
                {
                    "id": id(i * 3 + 3), "purpose": "agent",
                    "address": format!("sip:{}@example.mypurecloud.com", &agent[..8]),
                    "name": "Li Wang", "userId": agent, "connectedTime": (base + 9000) / 1000, "queueId": queue,
                    "calls": [{"state": "connected", "direction": "inbound", "recording": true, "held": false}],
                    "attributes": {"skill": "billing"}
                }
            ]
        },
        "metadata": {"CorrelationId": id(3_000_000 + i), "sentAtUs": "0000000000000000"}
    })
    .to_string()
}

fn json_scan(c: &mut Criterion) {
    let frames: Vec<String> = (0..1000).map(frame).collect();
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    eprintln!("frames: 1000 x {} bytes on average", bytes / 1000);
    let spec = TransformSpec {
        flatten: true,
        timestamps: true,
        mask: Some(Masker::new(
            MaskMode::Hash,
            &["ani", "dnis", "addressFrom", "addressTo", "address"].map(String::from),
            Some(b"bench-key"),
        )),
        ..Default::default()
    };
    let mut group = c.benchmark_group("notification_frame_1000");
    group.throughput(Throughput::Bytes(bytes));
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(20);
    group.bench_function("frame_parse", |b| {
        b.iter(|| {
            for f in &frames {
                let parsed = Frame::parse(f).expect("a frame");
                assert!(parsed.topic_name.is_some());
            }
        })
    });
    group.bench_function("cursor_skip_value", |b| {
        b.iter(|| {
            for f in &frames {
                let mut cur = Cursor::new(f);
                cur.skip_value().expect("JSON");
                cur.end().expect("nothing after it");
            }
        })
    });
    group.bench_function("serde_json_ignored_any", |b| {
        b.iter(|| {
            for f in &frames {
                serde_json::from_str::<serde::de::IgnoredAny>(f).expect("JSON");
            }
        })
    });
    let mut out = Vec::with_capacity(1 << 20);
    group.bench_function("rewrite_flatten_mask_timestamps", |b| {
        b.iter(|| {
            out.clear();
            for f in &frames {
                spec.append(f.as_bytes(), &mut out).expect("a record");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, json_scan);
criterion_main!(benches);
