//! Frames the emulator writes: the fixed ones (heartbeat, pong,
//! socket_closing), malformed ones for the `malformed_frames` fault, and
//! the cheap writers event bodies are rendered with (the generator renders
//! hundreds of thousands of frames a second, so no `format!` per field).

use crate::emulator::ids::{derive, mix};

/// The heartbeat frame.
pub(super) const HEARTBEAT: &str = r#"{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}"#;
/// The answer to `{"message":"ping"}`.
pub(super) const PONG: &str = r#"{"topicName":"channel.metadata","eventBody":{"message":"pong"}}"#;

/// The maintenance announcement: the socket closes `grace_ms` later.
pub(super) fn socket_closing(grace_ms: u64, correlation: &str) -> String {
    format!(
        r#"{{"topicName":"v2.system.socket_closing","version":"2","eventBody":{{"message":"This WebSocket will close in {} seconds for maintenance; open a new one"}},"metadata":{{"CorrelationId":"{correlation}"}}}}"#,
        grace_ms.div_ceil(1000)
    )
}

/// A `v2.system.<type>` message for `channel`: its body is the SDK's
/// SystemMessageSystemMessage.
pub(super) fn system_message(
    system_topic_type: &str,
    channel: &str,
    client_id: &str,
    reason: Option<&str>,
    correlation: &str,
) -> String {
    let mut body = serde_json::json!({
        "channelId": channel,
        "systemTopicType": system_topic_type,
        "correlationId": correlation,
        "oauthClientId": client_id,
        "message": format!("{system_topic_type}: this channel's subscriptions need attention"),
    });
    if let Some(r) = reason {
        body["reason"] = serde_json::Value::from(r);
    }
    serde_json::json!({
        "topicName": format!("v2.system.{system_topic_type}"),
        "version": "2",
        "eventBody": body,
        "metadata": {"CorrelationId": correlation},
    })
    .to_string()
}

/// The `n`-th malformed frame: bad JSON, no `topicName`, or oversized
/// (valid JSON of `oversized` bytes), in rotation.
pub(super) fn malformed(n: u64, oversized: usize) -> String {
    match n % 3 {
        0 => format!(
            r#"{{"topicName":"v2.routing.queues.malformed.conversations","eventBody":{{"id":"bad-{n}","participants":[{{"id":"#
        ),
        1 => format!(
            r#"{{"version":"2","eventBody":{{"id":"no-topic-{n}"}},"metadata":{{"CorrelationId":"malformed-{n}"}}}}"#
        ),
        _ => {
            let head = format!(
                r#"{{"topicName":"v2.routing.queues.oversized.conversations","eventBody":{{"id":"big-{n}","pad":""#
            );
            let tail = r#""}}"#;
            let pad = oversized.saturating_sub(head.len() + tail.len());
            let mut s = String::with_capacity(oversized);
            s.push_str(&head);
            s.extend(std::iter::repeat_n('x', pad));
            s.push_str(tail);
            s
        }
    }
}

/// A UUID-shaped id from a seed and a path, exactly as
/// [`crate::emulator::ids::uuid`] renders it, appended to `out`.
pub(super) fn push_uuid(out: &mut Vec<u8>, seed: u64, path: &[u64]) {
    let a = derive(seed, path);
    let b = mix(a ^ 0x5555_5555_5555_5555);
    push_hex(out, (a >> 32) as u32 as u64, 8);
    out.push(b'-');
    push_hex(out, (a >> 16) as u16 as u64, 4);
    out.extend_from_slice(b"-4");
    push_hex(out, (a as u16 & 0x0fff) as u64, 3);
    out.push(b'-');
    push_hex(out, (((b >> 48) as u16 & 0x3fff) | 0x8000) as u64, 4);
    out.push(b'-');
    push_hex(out, b & 0xffff_ffff_ffff, 12);
}

fn push_hex(out: &mut Vec<u8>, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (i * 4)) & 0xf) as usize]);
    }
}

/// Appends `v` in decimal.
pub(super) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `s` as a JSON string (escaped only when it has to be).
pub(super) fn push_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Appends `"YYYY-MM-DDTHH:MM:SS.mmmZ"` (quoted) for `ms` since the epoch.
pub(super) fn push_iso_ms(out: &mut Vec<u8>, ms: i64) {
    out.push(b'"');
    // Years past 9999 are cut to it, as the 4-digit form must.
    let form = crate::wire::time::iso_ms_form(ms).unwrap_or(*b"9999-12-31T23:59:59.999Z");
    out.extend_from_slice(&form);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::ids::uuid;

    #[test]
    fn iso_times_match_the_time_crate() {
        for ms in [
            0i64,
            1_714_572_123_120,
            951_782_400_000,
            4_102_444_799_999,
            1_709_164_800_001,
        ] {
            let expected = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
                .unwrap()
                .format(&time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                ))
                .unwrap();
            let mut quoted = Vec::new();
            push_iso_ms(&mut quoted, ms);
            assert_eq!(quoted, format!("\"{expected}\"").into_bytes());
        }
    }

    #[test]
    fn uuids_match_the_id_module() {
        let mut out = Vec::new();
        push_uuid(&mut out, 9, &[1, 2, 3]);
        assert_eq!(String::from_utf8(out).unwrap(), uuid(9, &[1, 2, 3]));
    }

    #[test]
    fn numbers_and_strings() {
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_u64(&mut out, 18_446_744_073_709_551_615);
        out.push(b' ');
        push_str(&mut out, "a\"b");
        assert_eq!(String::from_utf8(out).unwrap(), r#"0 18446744073709551615 "a\"b""#);
    }

    #[test]
    fn malformed_frames_rotate_through_their_kinds() {
        assert!(serde_json::from_str::<serde_json::Value>(&malformed(0, 100)).is_err());
        let no_topic: serde_json::Value = serde_json::from_str(&malformed(1, 100)).unwrap();
        assert!(no_topic.get("topicName").is_none());
        let big = malformed(2, 5000);
        assert_eq!(big.len(), 5000);
        assert!(serde_json::from_str::<serde_json::Value>(&big).is_ok());
        let closing: serde_json::Value = serde_json::from_str(&socket_closing(60_000, "c")).unwrap();
        assert_eq!(closing["topicName"], "v2.system.socket_closing");
    }
}
