//! A component's `/status` details, published as typed parts.
//!
//! Each part is one `Serialize` struct, owned by whatever writes it (a
//! source's runner, the reader of its download, the supervisor): publishing
//! a part replaces that part's fields whole, so a field the struct stops
//! writing (an `Option` that became `None`) disappears, and parts written by
//! different owners never overwrite each other. `/status` shows the fields of
//! every part in one flat object, as it always has.

use serde::Serialize;
use serde_json::{Map, Value};

/// The published parts of one component, in the order they first came.
#[derive(Debug, Default)]
pub(super) struct StatusParts {
    /// Each part's fields, keyed by the name of its Rust type.
    parts: Vec<(&'static str, Map<String, Value>)>,
}

impl StatusParts {
    /// Replaces the part `part` with `fields`.
    pub(super) fn set(&mut self, part: &'static str, fields: Map<String, Value>) {
        match self.parts.iter_mut().find(|(p, _)| *p == part) {
            Some((_, old)) => *old = fields,
            None => self.parts.push((part, fields)),
        }
    }

    /// Every part's fields in one object (a later part wins a shared key;
    /// parts are meant not to share any).
    pub(super) fn merged(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for (_, fields) in &self.parts {
            out.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }
}

/// Why a status could not be published.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Serialisation failed (a map with keys that are not strings, say).
    #[error("cannot serialise the status: {0}")]
    Serialise(#[from] serde_json::Error),
    /// The status is not a struct or a map, so it has no fields to show.
    #[error("a status must serialise to an object, not {0}")]
    NotAnObject(&'static str),
}

/// The fields `status` serialises to.
pub(super) fn fields_of<S: Serialize + ?Sized>(status: &S) -> Result<Map<String, Value>, StatusError> {
    match serde_json::to_value(status)? {
        Value::Object(m) => Ok(m),
        Value::Null => Err(StatusError::NotAnObject("null")),
        Value::Bool(_) => Err(StatusError::NotAnObject("a boolean")),
        Value::Number(_) => Err(StatusError::NotAnObject("a number")),
        Value::String(_) => Err(StatusError::NotAnObject("a string")),
        Value::Array(_) => Err(StatusError::NotAnObject("an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize)]
    struct A {
        x: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        y: Option<u32>,
    }

    #[test]
    fn a_part_is_replaced_whole_and_parts_are_merged() {
        let mut parts = StatusParts::default();
        parts.set("A", fields_of(&A { x: 1, y: Some(2) }).unwrap());
        parts.set("B", fields_of(&json!({"z": 3})).unwrap());
        assert_eq!(Value::Object(parts.merged()), json!({"x": 1, "y": 2, "z": 3}));
        parts.set("A", fields_of(&A { x: 5, y: None }).unwrap());
        assert_eq!(
            Value::Object(parts.merged()),
            json!({"x": 5, "z": 3}),
            "y went with its part"
        );
    }

    #[test]
    fn only_objects_are_statuses() {
        assert!(matches!(fields_of(&3), Err(StatusError::NotAnObject("a number"))));
        assert!(matches!(fields_of(&()), Err(StatusError::NotAnObject("null"))));
    }
}
