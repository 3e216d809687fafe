//! `kind = "blackhole"`: counts what it is given and keeps nothing. For
//! benchmarks (the pipeline's cost without a write) and for trying a
//! config out.

use std::sync::Arc;

use cxrelay_actors::Event;
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::builder::{SinkBuilder, SinkContext, SinkStarter};
use super::{SinkError, SinkWriter};
use crate::config::KeyProblem;

/// A blackhole sink has no keys of its own.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeSinkConfig {}

/// Acknowledges every batch at once (the sink actor counts the events).
#[derive(Default)]
pub struct BlackholeWriter;

impl SinkWriter for BlackholeWriter {
    fn commit(&mut self, _events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl SinkBuilder for BlackholeSinkConfig {
    fn check(&self) -> Vec<KeyProblem> {
        Vec::new()
    }

    fn describe(&self) -> String {
        "blackhole (counted, then dropped)".into()
    }

    fn build(&self, cx: SinkContext) -> Result<SinkStarter, SinkError> {
        Ok(cx.starter(|| Ok(BlackholeWriter)))
    }
}
