//! Regressions: bugs found, reproduced (these fail until fixed).

use cxrelay::config::{load_str, ConfigError};
use cxrelay::sources::webhook::parse_body;
use cxrelay::transform::TransformSpec;

use super::*;

/// Found reading `key_separator` in `src/transform/rewrite.rs` (random
/// inputs rarely land on the boundary): the growth limit is checked before
/// each member is written, not after, so the last member may take the
/// output past 16x the input + 64 KiB, by up to one member (a key path of
/// up to `MAX_FLAT_KEY` bytes and its value). Bounded, but not the bound.
#[test]
fn regression_flattened_output_can_exceed_the_growth_bound_by_its_last_member() {
    let spec = TransformSpec {
        flatten: true,
        ..Default::default()
    };
    // 9 nested 100-byte keys over 99 tiny leaves: each leaf repeats the
    // ~900-byte path, and the 99th starts just under the limit.
    let key = "k".repeat(100);
    let leaves: Vec<String> = (0..99).map(|i| format!("\"{}\":0", i % 10)).collect();
    let record = format!(
        "{{\"p\":\"\",{}{{{}}}{}}}",
        format!("\"{key}\":{{").repeat(8) + &format!("\"{key}\":"),
        leaves.join(","),
        "}".repeat(8)
    );
    assert!(serde_json::from_str::<Value>(&record).is_ok(), "the record is JSON");
    match spec.apply(record.as_bytes()) {
        Ok(out) => assert!(
            out.len() <= output_bound(record.len()),
            "{} bytes of output for {} bytes of input: over the bound of {}",
            out.len(),
            record.len(),
            output_bound(record.len())
        ),
        Err(e) => assert!(matches!(e, cxrelay::transform::TransformError::TooLarge(_)), "{e}"),
    }
}

/// Found by `webhook_envelopes`: `topicName` and `timestamp` are read as
/// borrowed `&str` (`genesys::notification::Envelope`), which serde_json
/// cannot give for a string with an escape, so a valid envelope whose
/// topic or timestamp has one (`\/`, `\u0065`: what some JSON writers
/// emit) is refused as `unrecognized_envelope`, and its events are lost.
#[test]
fn regression_webhook_envelope_with_an_escaped_topic_or_timestamp_is_refused() {
    let plain = br#"{"topicName":"v2.users.u1.presence","eventBody":{}}"#;
    assert!(parse_body(plain, "hook").is_ok());
    for body in [
        &br#"{"topicName":"v2.users.u1.presenc\u0065","eventBody":{}}"#[..],
        br#"{"topicName":"v2.users.u1.presence","timestamp":"2024-05-01T14:02:03\u005a","eventBody":{}}"#,
        br#"{"id":"eb-1","detail":{"topicName":"v2.users.u1.presenc\u0065"}}"#,
    ] {
        let r = parse_body(body, "hook");
        assert!(r.is_ok(), "{}: {:?}", String::from_utf8_lossy(body), r.err());
    }
}

/// Found by the `webhook_envelope` fuzz target (`"CorrelationId": ""`): an
/// empty EventBridge `id` or `CorrelationId` becomes an empty idempotency
/// key (and an empty event id), so every later event with an empty id from
/// that source is dropped as a duplicate for the key retention window.
#[test]
fn regression_webhook_empty_ids_give_empty_idempotency_keys() {
    for body in [
        &br#"{"id":"","detail":{"topicName":"v2.users.u1.presence"}}"#[..],
        br#"{"topicName":"v2.users.u1.presence","metadata":{"CorrelationId":""}}"#,
    ] {
        let p = parse_body(body, "hook").expect("a valid envelope");
        assert_ne!(
            p.keys[0].as_deref(),
            Some(""),
            "{}: an empty key",
            String::from_utf8_lossy(body)
        );
        assert!(!p.events[0].id.is_empty(), "an empty event id");
    }
}

/// Found by `config_mutations` (a `[genesys]` table left without its
/// `environment`): a missing key of a section is reported as
/// `environment`, not `genesys.environment`, and without a line or column
/// (`Reader::serde_error` in `src/config/load.rs` keys a "missing field"
/// from the root), so `cxrelay check` cannot point at it.
#[test]
fn regression_config_missing_key_of_a_section_is_reported_without_section_or_line() {
    let text = "[service]\ndata_dir = \"data\"\n\n[genesys]\nrequests_per_minute = 300\n";
    let Err(ConfigError::Invalid { problems, .. }) = load_str(text, "c.toml") else {
        panic!("a [genesys] table without `environment` must be refused");
    };
    let p = &problems[0];
    assert!(p.message.contains("environment"), "{p:?}");
    assert_eq!(
        (p.key.as_deref(), p.line),
        (Some("genesys.environment"), Some(4)),
        "{p:?}"
    );
}
