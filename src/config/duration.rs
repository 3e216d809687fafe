//! Durations in configuration: humantime text (`"200ms"`, `"30s"`, `"5m"`)
//! both ways, so a config struct can be read and its defaults written back.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses a humantime duration ("200ms", "30s", "5m").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration `{s}`: {e} (use e.g. \"200ms\", \"30s\", \"5m\")"))
}

/// `#[serde(with = "duration")]` for a `Duration` field.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// Writes a duration the way it is read.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// `#[serde(default, with = "duration::option")]` for an `Option<Duration>` field.
pub mod option {
    use super::*;

    /// Reads an optional duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }

    /// Writes an optional duration (absent when `None`).
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}
