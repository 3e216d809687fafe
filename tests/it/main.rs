//! Black-box tests of cxrelay, compiled into one test binary: each module
//! starts the binary or the service in-process, with the bundled emulator
//! and real targets, and asserts on what a user would see.

mod analytics_job;
mod backfill;
mod backfill_command;
mod cli;
mod cluster;
mod cluster_dead_letters;
mod common;
mod contract;
mod demo;
mod durability;
mod emulator_bulk;
mod emulator_core;
mod emulator_notifications;
mod export_download;
mod file_sink;
mod genesys_client;
mod http_sink;
mod in_process;
mod metrics_reference;
mod nats;
mod nats_sink;
mod notifications;
mod object_store_sink;
mod packaging;
mod pg;
mod platform_client;
mod postgres_sink;
mod properties;
mod recordings;
mod s3;
mod service_shell;
mod status_page;
mod strict_emulator;
mod transform;
mod webdriver;
mod webhook;
mod webhook_bodies;
