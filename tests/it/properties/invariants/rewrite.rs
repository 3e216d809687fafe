//! Invariants of the JSON rewriter (a part of `invariants.rs`).

use std::collections::BTreeMap;
use std::fmt;

use cxrelay::transform::{MaskMode, Masker, TransformError, TransformSpec, REDACTED};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Checked;

/// `src/transform/rewrite.rs`: a record's output may be at most
/// The rewriter's own bounds (the checks use the real constants).
pub use cxrelay::transform::{GROWTH_SLACK, MAX_GROWTH};

/// The largest output a rewrite of `input_len` bytes may produce.
pub fn output_bound(input_len: usize) -> usize {
    input_len.saturating_mul(MAX_GROWTH) + GROWTH_SLACK
}

/// A transform to check, and what it is expected to preserve.
pub struct RewriteCase<'a> {
    /// The spec applied.
    pub spec: &'a TransformSpec,
    /// The field names its masker masks (the `Masker` does not tell).
    pub masked: &'a [String],
}

/// One leaf of a JSON document: a scalar, or an empty container.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    EmptyObject,
    EmptyArray,
}

/// A leaf, where it is, and whether a masked field holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// Keys from the last array (or the top) joined by `.`, then `[i]` for
    /// each array: flattening `{"a":{"b":[{"c":{"d":1}}]}}` keeps this path
    /// (`a.b[0]c.d`) for the leaf `1`.
    pub path: String,
    pub leaf: Leaf,
    pub masked: bool,
}

/// The leaves of `json` in document order, duplicate keys kept (a `Value`
/// would keep only the last). `None` when serde_json would not parse it
/// into a `Value` (syntax, depth > 127, out-of-range numbers, lone
/// surrogates) or when it is not an object.
pub fn leaves(json: &[u8], masked: &[String]) -> Option<Vec<Placed>> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(json);
    let top = Node {
        out: &mut out,
        names: masked,
        path: String::new(),
        fresh: true,
        ancestor_masked: false,
        named_masked: false,
        top: true,
    };
    top.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(out)
}

struct Node<'a> {
    out: &'a mut Vec<Placed>,
    names: &'a [String],
    path: String,
    /// No key since the top or the last array: the next key is not
    /// preceded by a dot.
    fresh: bool,
    ancestor_masked: bool,
    /// The member holding this value has a masked name (a null stays).
    named_masked: bool,
    top: bool,
}

impl Node<'_> {
    fn push(self, leaf: Leaf) {
        let masked = self.ancestor_masked || (self.named_masked && leaf != Leaf::Null);
        self.out.push(Placed {
            path: self.path,
            leaf,
            masked,
        });
    }

    fn scalar<E: de::Error>(self, leaf: Leaf) -> Result<(), E> {
        if self.top {
            return Err(E::custom("not an object"));
        }
        self.push(leaf);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(Leaf::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(Leaf::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(Leaf::Num(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(Leaf::Num(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let n = serde_json::Number::from_f64(v).ok_or_else(|| E::custom("not finite"))?;
        self.scalar(Leaf::Num(n))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(Leaf::Str(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.top {
            return Err(de::Error::custom("not an object"));
        }
        let masked = self.ancestor_masked || self.named_masked;
        let mut i = 0;
        loop {
            let child = Node {
                out: &mut *self.out,
                names: self.names,
                path: format!("{}[{i}]", self.path),
                fresh: true,
                ancestor_masked: masked,
                named_masked: false,
                top: false,
            };
            if seq.next_element_seed(child)?.is_none() {
                break;
            }
            i += 1;
        }
        if i == 0 {
            self.push(Leaf::EmptyArray);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let masked = self.ancestor_masked || self.named_masked;
        let mut members = 0;
        while let Some(key) = map.next_key::<String>()? {
            members += 1;
            let path = if self.fresh {
                format!("{}{key}", self.path)
            } else {
                format!("{}.{key}", self.path)
            };
            map.next_value_seed(Node {
                out: &mut *self.out,
                names: self.names,
                path,
                fresh: false,
                ancestor_masked: masked,
                named_masked: self.names.contains(&key),
                top: false,
            })?;
        }
        if members == 0 && !self.top {
            self.push(Leaf::EmptyObject);
        }
        Ok(())
    }
}

/// Whether `s` is what masking writes.
fn is_mask_token(s: &str) -> bool {
    s == REDACTED || (s.len() == 7 + 64 && s.starts_with("sha256:") && s[7..].bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `s` is a time as timestamp normalisation writes it.
fn is_normal_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24 && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z'
}

/// Checks one rewrite of `input`: no panic (the caller sees it), output
/// bounded, output valid JSON (and a `Value` whenever the input is one),
/// masking total, and for the identity and flatten-only specs the exact
/// leaves preserved. Answers the output, if the rewrite succeeded.
pub fn check_rewrite(case: &RewriteCase<'_>, input: &[u8]) -> Checked<Option<Vec<u8>>> {
    let spec = case.spec;
    let result = spec.apply(input);
    let reference = leaves(input, case.masked);
    let out = match result {
        Ok(out) => out,
        Err(TransformError::TooLarge(m)) => {
            ensure!(!m.is_empty(), "TooLarge without a message");
            return Ok(None);
        }
        Err(e) => {
            // Refused as malformed: serde_json must refuse it too, or it is
            // a document the rewriter cannot take that the rest of the
            // service would (only nesting over the rewriter's 128 levels).
            ensure!(
                reference.is_none(),
                "refused ({e}) a record serde_json reads as an object: {}",
                String::from_utf8_lossy(&input[..input.len().min(300)])
            );
            return Ok(None);
        }
    };
    ensure!(
        out.len() <= output_bound(input.len()),
        "output of {} bytes for {} bytes of input exceeds the bound of {}",
        out.len(),
        input.len(),
        output_bound(input.len())
    );
    ensure!(
        serde_json::from_slice::<IgnoredAny>(&out).is_ok(),
        "output is not JSON: {}",
        String::from_utf8_lossy(&out[..out.len().min(300)])
    );
    let Some(reference) = reference else {
        // The input was JSON serde_json would not make a Value of (a
        // number out of f64's range, a lone surrogate escape, nesting of
        // 128 levels): the rewriter copies those as they are.
        return Ok(Some(out));
    };
    let Some(got) = leaves(&out, &[]) else {
        return Err(format!(
            "the input is a JSON object but the output is not one serde_json reads: {}",
            String::from_utf8_lossy(&out[..out.len().min(300)])
        ));
    };
    if spec.mask.is_some() {
        check_masked(spec, &reference, &got)?;
    }
    // Where each leaf is and what it is; whether it was masked is the
    // input's business.
    let placed = |l: &[Placed]| l.iter().map(|p| (p.path.clone(), p.leaf.clone())).collect::<Vec<_>>();
    let (reference, got) = (placed(&reference), placed(&got));
    if spec.is_identity() {
        ensure!(
            reference == got,
            "identity spec changed the leaves:\n in:  {reference:?}\n out: {got:?}"
        );
        let a: serde_json::Value = serde_json::from_slice(input).map_err(|e| e.to_string())?;
        let b: serde_json::Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
        ensure!(a == b, "identity round trip differs:\n in:  {a}\n out: {b}");
    }
    let flatten_only = spec.flatten
        && !spec.timestamps
        && spec.mask.is_none()
        && spec.rename.is_empty()
        && spec.drop.is_empty()
        && spec.select.is_empty();
    if flatten_only {
        ensure!(
            reference == got,
            "flatten lost, added or moved leaves:\n in:  {reference:?}\n out: {got:?}"
        );
    }
    Ok(Some(out))
}

/// Every value in the output came from an unmasked place of the input, or
/// is a mask token (or a normalised time): no masked value survives.
fn check_masked(spec: &TransformSpec, input: &[Placed], output: &[Placed]) -> Checked {
    let clear: Vec<&Leaf> = input.iter().filter(|p| !p.masked).map(|p| &p.leaf).collect();
    for p in output {
        let fine = match &p.leaf {
            Leaf::Null | Leaf::Bool(_) | Leaf::EmptyObject | Leaf::EmptyArray => true,
            Leaf::Str(s) => is_mask_token(s) || (spec.timestamps && is_normal_time(s)) || clear.contains(&&p.leaf),
            Leaf::Num(_) => clear.contains(&&p.leaf),
        };
        if !fine {
            let source = input.iter().find(|i| i.leaf == p.leaf);
            return Err(format!(
                "masked value leaked: {:?} at `{}` in the output (input: {source:?})",
                p.leaf, p.path
            ));
        }
    }
    Ok(())
}

/// Names the masking specs mask.
pub const MASKED: &[&str] = &["ani", "dnis", "attributes", "addressFrom"];

/// [`MASKED`], owned.
pub fn masked_names() -> Vec<String> {
    MASKED.iter().map(|s| s.to_string()).collect()
}

/// The specs every record is rewritten under: masking (hash and redact),
/// timestamps, flattening, the top-level key rules, and neither.
pub fn rewrite_specs() -> Vec<(&'static str, TransformSpec)> {
    let names = masked_names();
    let hash = Masker::new(MaskMode::Hash, &names, Some(b"property-key"));
    let redact = Masker::new(MaskMode::Redact, &names, None);
    vec![
        (
            "flatten+hash+timestamps",
            TransformSpec {
                flatten: true,
                timestamps: true,
                mask: Some(hash.clone()),
                ..Default::default()
            },
        ),
        (
            "redact+timestamps",
            TransformSpec {
                timestamps: true,
                mask: Some(redact.clone()),
                ..Default::default()
            },
        ),
        (
            "flatten+redact+rules",
            TransformSpec {
                flatten: true,
                mask: Some(redact),
                rename: BTreeMap::from([("a".into(), "renamed".into()), ("id".into(), "a.b".into())]),
                drop: vec!["dnis".into(), "renamed".into()],
                select: vec![],
                ..Default::default()
            },
        ),
        (
            "select",
            TransformSpec {
                mask: Some(hash),
                select: vec!["a".into(), "ani".into(), "eventTime".into()],
                ..Default::default()
            },
        ),
        ("identity", TransformSpec::default()),
        (
            "flatten",
            TransformSpec {
                flatten: true,
                ..Default::default()
            },
        ),
    ]
}

/// Checks the rewrite of `input` under every spec of [`rewrite_specs`].
pub fn rewrite_all(input: &[u8]) -> Checked {
    let names = masked_names();
    for (name, spec) in rewrite_specs() {
        let case = RewriteCase {
            spec: &spec,
            masked: &names,
        };
        check_rewrite(&case, input).map_err(|e| format!("spec {name}: {e}"))?;
    }
    Ok(())
}
