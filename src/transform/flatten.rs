//! Nested objects into dotted keys: `{"a":{"b":1}}` -> `{"a.b":1}`. Arrays
//! stay arrays (a conversation's participants are a list, not columns);
//! objects inside them are flattened in place.

use serde_json::{Map, Value};

/// Flattens `obj`.
pub fn flatten(obj: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in obj {
        put(&mut out, k, v);
    }
    out
}

fn put(out: &mut Map<String, Value>, key: String, value: Value) {
    match value {
        Value::Object(inner) if !inner.is_empty() => {
            for (k, v) in inner {
                let mut dotted = String::with_capacity(key.len() + 1 + k.len());
                dotted.push_str(&key);
                dotted.push('.');
                dotted.push_str(&k);
                put(out, dotted, v);
            }
        }
        Value::Array(items) => {
            let items = items
                .into_iter()
                .map(|v| match v {
                    Value::Object(o) => Value::Object(flatten(o)),
                    other => other,
                })
                .collect();
            out.insert(key, Value::Array(items));
        }
        other => {
            out.insert(key, other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_flatten_and_arrays_keep_their_shape() {
        let v = json!({"a":{"b":{"c":1},"d":[{"e":{"f":2}},3]},"g":{}});
        let Value::Object(o) = v else { unreachable!() };
        let f = Value::Object(flatten(o));
        assert_eq!(f, json!({"a.b.c":1,"a.d":[{"e.f":2},3],"g":{}}));
    }
}
