//! Invariants of the notification frame reader (a part of `invariants.rs`).

use cxrelay::genesys::notification::Frame;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::Checked;

/// `Frame::parse` on `data`, the reader every socket frame goes through
/// (and, at its position, every pushed event's `detail`): no panic;
/// nothing serde_json's grammar refuses is read as a frame, nesting aside
/// (serde_json stops one level short of the reader's limit); and a frame
/// read is a JSON object whose `topicName` is the topic read. Answers
/// whether `data` was read as a frame.
pub fn check_frame(data: &[u8]) -> Checked<bool> {
    let Ok(text) = std::str::from_utf8(data) else {
        // A text frame is UTF-8 by then (the socket's reader checks it).
        return Ok(false);
    };
    let Ok(frame) = Frame::parse(text) else {
        return Ok(false);
    };
    if let Err(e) = serde_json::from_str::<IgnoredAny>(text) {
        ensure!(
            e.to_string().contains("recursion limit"),
            "read as a frame, but serde_json refuses it: {e}"
        );
        return Ok(true);
    }
    // Out-of-range numbers make no `Value`; the grammar held above.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(doc)) => {
            let topic = doc.get("topicName").and_then(Value::as_str);
            ensure!(
                frame.topic_name.as_deref() == topic,
                "topic {:?} read, the document's is {topic:?}",
                frame.topic_name
            );
        }
        Ok(other) => return Err(format!("read as a frame, but the document is not an object: {other}")),
        Err(_) => {}
    }
    Ok(true)
}
