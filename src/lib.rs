//! cxrelay: gets contact-center events out of Genesys Cloud and into the
//! systems that need them, reliably.
//!
//! The binary is a thin CLI over this library; embedders start a
//! [`service::Service`] and register their own listener actors with the
//! router through [`cxrelay_actors::Subscribe`].

pub mod cluster;
pub mod config;
pub mod dlq;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod genesys;
pub mod http;
pub mod ingest;
pub mod json;
pub mod nats_client;
pub mod service;
pub mod sinks;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod transform;
pub mod urls;
pub mod wire;
