//! Contract tests: the emulator's answers and frames, and the client's
//! request bodies, checked against JSON Schemas written from Genesys's SDK
//! models (`schemas/`, generated once by `scripts/contract_schemas.py`;
//! each names the SDK files and version it came from). Unknown fields,
//! enum values, types and required fields are all checked, so where the
//! emulator and the client agree with each other but not with the
//! platform, these fail.

mod answers;
mod frames;
mod requests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

/// Every schema, compiled.
pub struct Contracts {
    validators: BTreeMap<String, jsonschema::Validator>,
    /// Field count of each model (by model name, across files).
    models: BTreeMap<String, usize>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/contract/schemas")
}

impl Contracts {
    fn load() -> Contracts {
        let mut validators = BTreeMap::new();
        let mut models = BTreeMap::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
            .expect("schemas directory")
            .map(|e| e.expect("schema entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).expect("schema file");
            let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                schema["$comment"]
                    .as_str()
                    .is_some_and(|c| c.contains("platform-client-sdk-python")),
                "{} says which SDK it came from",
                path.display()
            );
            for (name, def) in schema["$defs"].as_object().expect("$defs") {
                let fields = def["properties"].as_object().map_or(0, |p| p.len());
                models.insert(name.clone(), fields);
            }
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            validators.insert(name, validator);
        }
        Contracts { validators, models }
    }

    /// The contracts, loaded once.
    pub fn get() -> &'static Contracts {
        static C: OnceLock<Contracts> = OnceLock::new();
        C.get_or_init(Contracts::load)
    }

    /// What is wrong with `value` as `schema` (the file's name without
    /// `.json`); empty when it conforms.
    pub fn violations(&self, schema: &str, value: &Value) -> Vec<String> {
        let v = self
            .validators
            .get(schema)
            .unwrap_or_else(|| panic!("no schema {schema}"));
        v.iter_errors(value)
            .map(|e| format!("{schema} at {}: {e}", e.instance_path()))
            .collect()
    }

    /// Panics, listing what is wrong, unless `value` conforms to `schema`.
    pub fn check(&self, schema: &str, what: &str, value: &Value) {
        let errors = self.violations(schema, value);
        assert!(
            errors.is_empty(),
            "{what} breaks the SDK model:\n{}\n{}",
            errors.join("\n"),
            truncate(&value.to_string())
        );
    }

    /// The same for a body that must be JSON.
    pub fn check_text(&self, schema: &str, what: &str, text: &str) {
        let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is not JSON ({e}): {text}"));
        self.check(schema, what, &value);
    }

    /// Models and fields described.
    pub fn counts(&self) -> (usize, usize) {
        (self.models.len(), self.models.values().sum())
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(2000) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

/// A caller of the emulator's API with a token (plain HTTP/1.1).
pub struct Http {
    /// The API host.
    pub addr: std::net::SocketAddr,
    bearer: String,
}

impl Http {
    /// With a fresh token of the emulator's client.
    pub fn new(e: &cxrelay::emulator::EmulatorHandle) -> Http {
        Http {
            addr: e.addr(),
            bearer: format!("Bearer {}", crate::common::emulator_token(e)),
        }
    }

    /// A request with the bearer token.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> crate::common::Response {
        crate::common::request(
            self.addr,
            method,
            path,
            &[("Authorization", &self.bearer), ("Content-Type", "application/json")],
            body.unwrap_or("").as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

/// Counts checks per schema, for the report each test prints.
#[derive(Default)]
pub struct Tally(BTreeMap<String, usize>);

impl Tally {
    /// Checks `value` against `schema` and counts it.
    pub fn check(&mut self, schema: &str, what: &str, value: &Value) {
        Contracts::get().check(schema, what, value);
        *self.0.entry(schema.to_string()).or_default() += 1;
    }

    /// The same for a JSON text.
    pub fn check_text(&mut self, schema: &str, what: &str, text: &str) {
        Contracts::get().check_text(schema, what, text);
        *self.0.entry(schema.to_string()).or_default() += 1;
    }

    /// Prints what was checked; answers how many documents.
    pub fn report(&self, title: &str) -> usize {
        let total: usize = self.0.values().sum();
        eprintln!("{title}: {total} documents checked against {} schemas", self.0.len());
        for (schema, n) in &self.0 {
            eprintln!("  {schema}: {n}");
        }
        total
    }

    /// How many documents were checked against `schema`.
    pub fn count(&self, schema: &str) -> usize {
        self.0.get(schema).copied().unwrap_or(0)
    }
}

#[test]
fn the_schemas_describe_the_sdk_models() {
    let c = Contracts::get();
    let (models, fields) = c.counts();
    eprintln!(
        "contract: {} schemas, {models} models, {fields} fields (Genesys platform-client-sdk-python)",
        c.validators.len()
    );
    assert!(
        c.validators.len() >= 25 && models >= 100 && fields >= 1000,
        "{models} models, {fields} fields"
    );
    // The checks bite: an unknown field, a wrong enum value, a wrong type
    // and a missing required field are each refused.
    let bad = [
        serde_json::json!({"entities": [{"id": "t", "state": "Permitted", "extra": 1}]}),
        serde_json::json!({"entities": [{"id": "t", "state": "Allowed"}]}),
        serde_json::json!({"entities": [{"id": 7, "state": "Permitted"}]}),
        serde_json::json!({"entities": [{"state": "Permitted"}]}),
    ];
    for b in bad {
        assert!(!c.violations("channel_topic_entity_listing", &b).is_empty(), "{b}");
    }
    assert!(c
        .violations(
            "channel_topic_entity_listing",
            &serde_json::json!({"entities": [{"id": "t", "state": "Rejected", "rejectionReason": "no", "missingPermissions": ["a:b:c"]}]})
        )
        .is_empty());
    // Dates are checked as dates.
    assert!(!c
        .violations(
            "channel",
            &serde_json::json!({"id": "c", "connectUri": "ws://x", "expires": "tomorrow"})
        )
        .is_empty());
}
