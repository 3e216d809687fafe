//! `kind = "stdout"`: NDJSON on standard output.

use serde::{Deserialize, Serialize};

use super::StdoutWriter;
use crate::config::KeyProblem;
use crate::sinks::builder::{SinkBuilder, SinkContext, SinkStarter};
use crate::sinks::SinkError;

/// A stdout sink has no keys of its own.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {}

impl SinkBuilder for StdoutSinkConfig {
    fn check(&self) -> Vec<KeyProblem> {
        Vec::new()
    }

    fn describe(&self) -> String {
        "stdout".into()
    }

    fn build(&self, cx: SinkContext) -> Result<SinkStarter, SinkError> {
        Ok(cx.starter(|| Ok(StdoutWriter::default())))
    }
}
