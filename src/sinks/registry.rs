//! Every sink kind cxrelay knows: one line each. A new kind is its folder
//! (typed config implementing [`SinkBuilder`]) plus one line here.

use super::builder::SinkBuilder;
use crate::config::component_kinds;

component_kinds! {
    /// A listener's sink kind, with its typed config.
    pub enum SinkSpec: dyn SinkBuilder {
        /// NDJSON files.
        File(super::file::FileSinkConfig) = "file",
        /// NDJSON on standard output.
        Stdout(super::stdout::StdoutSinkConfig) = "stdout",
        /// NDJSON batches POSTed to a URL.
        Http(super::http::HttpSinkConfig) = "http",
        /// Rows in a PostgreSQL table, idempotent on the event id.
        Postgres(super::postgres::PostgresSinkConfig) = "postgres",
        /// NDJSON objects in an S3 bucket.
        ObjectStore(super::object_store::ObjectStoreSinkConfig) = "object_store",
        /// Each event published to a NATS JetStream subject.
        Nats(super::nats::NatsSinkConfig) = "nats",
        /// Counted, then dropped.
        Blackhole(super::blackhole::BlackholeSinkConfig) = "blackhole",
    }
}
