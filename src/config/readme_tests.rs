//! The README documents every key of every config table with the default
//! the code has: each `| key | default | meaning |` table is compared with
//! the serde defaults of the struct it documents, both ways.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::sinks::{SinkCommon, SinkSpec};
use crate::sources::SourceSpec;

const README: &str = include_str!("../../README.md");

/// One documented table: the heading's first code span, and its rows
/// (keys, default cell).
struct Documented {
    id: String,
    rows: Vec<(Vec<String>, String)>,
}

fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

fn documented_tables() -> Vec<Documented> {
    let mut out: Vec<Documented> = Vec::new();
    let mut heading = String::new();
    let mut in_table = false;
    for line in README.lines() {
        if line.starts_with('#') {
            heading = code_spans(line).into_iter().next().unwrap_or_default();
            in_table = false;
        } else if line.starts_with("| key | default | meaning |") {
            in_table = true;
            out.push(Documented {
                id: heading.clone(),
                rows: Vec::new(),
            });
        } else if in_table && line.starts_with('|') {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            if cells[0].starts_with("---") {
                continue;
            }
            let table = out.last_mut().expect("a table was started");
            table
                .rows
                .push((code_spans(cells[0]), cells.get(1).unwrap_or(&"").to_string()));
        } else {
            in_table = false;
        }
    }
    out
}

/// What the code says about one table: its keys, the defaults as written
/// back, and the keys that are required.
struct Expected {
    keys: Vec<&'static str>,
    defaults: toml::Table,
    required: Vec<&'static str>,
}

fn table_of<T: serde::Serialize>(value: &T) -> toml::Table {
    toml::Table::try_from(value).expect("a config struct writes back as a table")
}

fn expected<T: for<'de> Deserialize<'de> + serde::Serialize>(minimal: &str) -> Expected {
    let value: T = toml::from_str(minimal).unwrap_or_else(|e| panic!("minimal `{minimal}`: {e}"));
    let minimal: toml::Table = toml::from_str(minimal).expect("minimal table");
    Expected {
        keys: keys_of::<T>().to_vec(),
        defaults: table_of(&value),
        required: keys_of::<T>()
            .iter()
            .copied()
            .filter(|k| minimal.contains_key(*k))
            .collect(),
    }
}

/// The smallest table each source and sink kind accepts (its required keys).
fn minimal_of_kind(kind: &str) -> &'static str {
    match kind {
        "generator" | "notifications" => "topics = ['a.b']",
        "webhook" => "path = '/in'",
        "recordings" => "recordings = []\noutput = 'rec'",
        "file" => "path = 'out'",
        "http" => "url = 'http://127.0.0.1:1/'",
        "object_store" => "bucket = 'cx-events'",
        _ => "",
    }
}

fn expected_for(id: &str) -> Option<Expected> {
    let kind_of = |prefix: &str| {
        id.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix('"'))
            .map(str::to_string)
    };
    if let Some(kind) = kind_of("kind = \"") {
        let minimal = minimal_of_kind(&kind);
        let spec = SourceSpec::parse(&kind, toml::de::Deserializer::parse(minimal).ok()?)?
            .unwrap_or_else(|e| panic!("minimal `{kind}` source: {e}"));
        let minimal: toml::Table = toml::from_str(minimal).ok()?;
        let keys = SourceSpec::keys_of(&kind)?.to_vec();
        return Some(Expected {
            required: keys.iter().copied().filter(|k| minimal.contains_key(*k)).collect(),
            keys,
            defaults: spec.to_table().ok()?,
        });
    }
    if let Some(kind) = kind_of("sink.kind = \"") {
        let minimal = minimal_of_kind(&kind);
        let spec = SinkSpec::parse(&kind, toml::de::Deserializer::parse(minimal).ok()?)?
            .unwrap_or_else(|e| panic!("minimal `{kind}` sink: {e}"));
        let minimal: toml::Table = toml::from_str(minimal).ok()?;
        let keys = SinkSpec::keys_of(&kind)?.to_vec();
        return Some(Expected {
            required: keys.iter().copied().filter(|k| minimal.contains_key(*k)).collect(),
            keys,
            defaults: spec.to_table().ok()?,
        });
    }
    Some(match id {
        "[service]" => expected::<ServiceConfig>(""),
        "[http]" => expected::<HttpConfig>(""),
        "[genesys]" => expected::<GenesysConfig>("environment = 'emulator'"),
        "[transform]" => expected::<TransformConfig>(""),
        "[cluster]" => expected::<crate::cluster::ClusterConfig>(""),
        "transform = { ... }" => expected::<ListenerTransform>(""),
        "[[listener]]" => {
            let mut e = expected::<ListenerKeys>("name = 'l'\ntopics = ['a']");
            e.keys = ListenerKeys::keys();
            e.required.push("sink");
            e
        }
        "[[source]]" => Expected {
            keys: SOURCE_COMMON_KEYS.to_vec(),
            defaults: toml::from_str("enabled = true").ok()?,
            required: vec!["name", "kind"],
        },
        "sink = { kind = ..., ... }" => {
            let mut e = expected::<SinkCommon>("");
            e.keys.insert(0, "kind");
            e.required.push("kind");
            e
        }
        _ => return None,
    })
}

/// A code span that is a TOML value (`"30s"`, `1000`, `true`, `[]`).
fn literal(span: &str) -> Option<toml::Value> {
    let t: toml::Table = toml::from_str(&format!("v = {span}")).ok()?;
    t.get("v").cloned()
}

fn same(code: &toml::Value, doc: &toml::Value) -> bool {
    let duration = |v: &toml::Value| v.as_str().and_then(|s| humantime::parse_duration(s).ok());
    let number = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    match (code, doc) {
        (a, b) if duration(a).is_some() && duration(b).is_some() => duration(a) == duration(b),
        (a, b) if number(a).is_some() && number(b).is_some() => number(a) == number(b),
        (toml::Value::Table(a), toml::Value::Table(b)) => a.is_empty() && b.is_empty(),
        (a, b) => a == b,
    }
}

#[test]
fn every_key_is_documented_with_the_default_the_code_has() {
    let tables = documented_tables();
    let mut wrong = Vec::new();
    let mut checked = BTreeMap::new();
    for t in &tables {
        let Some(e) = expected_for(&t.id) else {
            // The emulator's own tables, and tables that are not config.
            assert!(
                t.id.starts_with("[emulator"),
                "README table under `{}` documents no known config table",
                t.id
            );
            continue;
        };
        checked.insert(t.id.clone(), t.rows.len());
        let documented: Vec<&str> = t.rows.iter().flat_map(|(k, _)| k.iter().map(String::as_str)).collect();
        for key in &e.keys {
            if !documented.contains(key) {
                wrong.push(format!("`{}`: key `{key}` is not documented", t.id));
            }
        }
        for (keys, cell) in &t.rows {
            let literals: Vec<toml::Value> = code_spans(cell).iter().filter_map(|s| literal(s)).collect();
            for (n, key) in keys.iter().enumerate() {
                if !e.keys.contains(&key.as_str()) {
                    wrong.push(format!(
                        "`{}`: README documents `{key}`, which the code does not take",
                        t.id
                    ));
                    continue;
                }
                let doc = match literals.len() {
                    0 => None,
                    1 => literals.first(),
                    _ => literals.get(n),
                };
                let required = e.required.contains(&key.as_str());
                match (e.defaults.get(key), doc) {
                    _ if required && !(cell.starts_with("required") || cell.starts_with("one of")) => {
                        wrong.push(format!("`{}`: `{key}` is required, README says `{cell}`", t.id));
                    }
                    _ if required => {}
                    (Some(code), Some(doc)) if !same(code, doc) => {
                        wrong.push(format!("`{}`: `{key}` defaults to {code}, README says {doc}", t.id));
                    }
                    (Some(code), None) => {
                        wrong.push(format!("`{}`: `{key}` defaults to {code}, README says `{cell}`", t.id));
                    }
                    (None, Some(doc)) => {
                        wrong.push(format!("`{}`: `{key}` has no default, README says {doc}", t.id));
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(wrong.is_empty(), "README and code disagree:\n{}", wrong.join("\n"));
    // Every table the code has is documented.
    for id in [
        "[service]",
        "[http]",
        "[genesys]",
        "[transform]",
        "[cluster]",
        "[[source]]",
        "[[listener]]",
        "transform = { ... }",
        "sink = { kind = ..., ... }",
    ] {
        assert!(checked.contains_key(id), "README has no table for `{id}`");
    }
    for kind in SourceSpec::KINDS {
        assert!(
            checked.contains_key(&format!("kind = \"{kind}\"")),
            "README has no table for the `{kind}` source"
        );
    }
    for kind in SinkSpec::KINDS {
        assert!(
            checked.contains_key(&format!("sink.kind = \"{kind}\"")),
            "README has no table for the `{kind}` sink"
        );
    }
}

#[test]
fn every_toml_example_in_the_readme_loads() {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    assert!(!blocks.is_empty());
    for block in blocks {
        // Examples of a source alone name no org: the emulator stands in.
        let text = if block.contains("[genesys]") {
            block.clone()
        } else {
            format!("{block}\n[genesys]\nenvironment = \"emulator\"\n")
        };
        if let Err(e) = load_str(&text, "README.md") {
            panic!("a README example does not load:\n{block}\n{e}");
        }
    }
}

#[test]
fn durations_write_back_as_they_read() {
    let s = ServiceConfig::default();
    let t = table_of(&s);
    let back: ServiceConfig = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
    assert_eq!(back.shutdown_timeout, Duration::from_secs(30));
}
