//! Transforms applied to a listener's events on the worker pool: flatten,
//! timestamp normalisation, PII masking, rename, drop, select.
//!
//! Order: mask, timestamps, flatten, rename, drop, select. Masking and
//! timestamps match field names anywhere in the record; rename, drop and
//! select name top-level keys (the flattened dotted keys when `flatten` is
//! on). Unknown fields pass through untouched: a record gaining fields is
//! not an error.

mod flatten;
mod mask;
mod pipeline;
mod timestamps;
mod worker;

use std::collections::BTreeMap;

pub use mask::{MaskMode, Masker};
pub use pipeline::{Transformed, Transformer};
pub use worker::{TransformJob, TransformOutput, TransformWorker};

use serde_json::{Map, Value};

/// What to do to each record.
#[derive(Debug, Clone, Default)]
pub struct TransformSpec {
    /// Nested objects become dotted keys.
    pub flatten: bool,
    /// Time fields become ISO-8601 UTC with milliseconds.
    pub timestamps: bool,
    /// Fields whose values are masked, by name, anywhere.
    pub mask: Option<Masker>,
    /// Keys renamed.
    pub rename: BTreeMap<String, String>,
    /// Keys removed.
    pub drop: Vec<String>,
    /// If set, only these keys are kept.
    pub select: Vec<String>,
}

/// Why a record was refused (it goes to dead letters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The payload is not JSON.
    #[error("payload is not valid JSON: {0}")]
    NotJson(String),
    /// The payload is JSON but not an object.
    #[error("payload is a JSON {0}, not an object")]
    NotAnObject(&'static str),
}

impl TransformSpec {
    /// True when the spec changes nothing.
    pub fn is_identity(&self) -> bool {
        !self.flatten
            && !self.timestamps
            && self.mask.is_none()
            && self.rename.is_empty()
            && self.drop.is_empty()
            && self.select.is_empty()
    }

    /// Transforms one JSON payload.
    pub fn apply(&self, payload: &[u8]) -> Result<Vec<u8>, TransformError> {
        let value: Value = serde_json::from_slice(payload).map_err(|e| TransformError::NotJson(e.to_string()))?;
        let mut obj = match value {
            Value::Object(m) => m,
            Value::Array(_) => return Err(TransformError::NotAnObject("array")),
            Value::String(_) => return Err(TransformError::NotAnObject("string")),
            Value::Number(_) => return Err(TransformError::NotAnObject("number")),
            Value::Bool(_) => return Err(TransformError::NotAnObject("boolean")),
            Value::Null => return Err(TransformError::NotAnObject("null")),
        };
        if let Some(m) = &self.mask {
            m.mask_object(&mut obj);
        }
        if self.timestamps {
            timestamps::normalise_object(&mut obj);
        }
        if self.flatten {
            obj = flatten::flatten(obj);
        }
        for (from, to) in &self.rename {
            if let Some(v) = obj.remove(from) {
                obj.insert(to.clone(), v);
            }
        }
        for k in &self.drop {
            obj.remove(k);
        }
        if !self.select.is_empty() {
            let mut kept = Map::new();
            for k in &self.select {
                if let Some(v) = obj.remove(k) {
                    kept.insert(k.clone(), v);
                }
            }
            obj = kept;
        }
        // Serialising a Map of Values cannot fail.
        Ok(serde_json::to_vec(&Value::Object(obj)).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steps_compose_in_order() {
        let spec = TransformSpec {
            flatten: true,
            timestamps: true,
            mask: Some(Masker::new(MaskMode::Redact, &["ani".to_string()], None)),
            rename: [("conversation.id".to_string(), "conversation_id".to_string())]
                .into_iter()
                .collect(),
            drop: vec!["noise".into()],
            select: vec![],
        };
        let out = spec
            .apply(br#"{"conversation":{"id":"c1","startTime":"2024-05-01T16:02:03+02:00"},"ani":"tel:+1555","noise":1,"new":{"x":true}}"#)
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["conversation_id"], "c1");
        assert_eq!(v["conversation.startTime"], "2024-05-01T14:02:03.000Z");
        assert_eq!(v["ani"], "[REDACTED]");
        assert!(v.get("noise").is_none());
        assert_eq!(v["new.x"], true, "unknown fields pass through");
    }

    #[test]
    fn select_keeps_only_what_is_named() {
        let spec = TransformSpec {
            select: vec!["a".into(), "missing".into()],
            ..TransformSpec::default()
        };
        let out = spec.apply(br#"{"a":1,"b":2}"#).unwrap();
        assert_eq!(out, br#"{"a":1}"#);
    }

    #[test]
    fn records_that_are_not_objects_are_refused() {
        let spec = TransformSpec::default();
        assert_eq!(spec.apply(b"[1]").unwrap_err(), TransformError::NotAnObject("array"));
        assert!(matches!(spec.apply(b"{oops").unwrap_err(), TransformError::NotJson(_)));
    }
}
