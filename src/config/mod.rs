//! Configuration: the `config.toml` contract, loading with precise errors,
//! and the checks that span components.
//!
//! Every key is known: an unknown or misspelt key is an error naming the
//! file, line and key. Each source and sink kind owns its typed config (in
//! its folder, registered in `sources::registry` / `sinks::registry`); this
//! module holds the document, the sections that are not components, and
//! what spans components: unique names, reserved paths, the shared channel
//! budget, secrets and error locations. Secrets are never in the file,
//! only the names of the environment variables that hold them.

mod checks;
mod fields;
mod kinds;
mod listener;
mod load;
mod locate;
mod problem;
mod secret;
mod secrets;
mod sections;

pub use crate::wire::duration;
pub use crate::wire::duration::parse_duration;
pub use fields::keys_of;
pub(crate) use kinds::component_kinds;
pub use listener::{ListenerConfig, ListenerKeys, ListenerTransform, OrderBy, SinkConfig};
pub use load::{base_dir, check_file, load, load_str, Env, Loaded};
pub use locate::KeyPath;
pub use problem::{ConfigError, KeyProblem, KeyProblems, Named, Problem};
pub use secret::Secret;
pub use secrets::{named_secrets, resolve_secrets, resolve_secrets_with, NamedSecret, Secrets};
pub use sections::{GenesysConfig, HttpConfig, LogFormat, ServiceConfig, TransformConfig};

use serde::Deserialize;

use crate::sources::SourceSpec;

/// The `[emulator]` section's settings.
#[cfg(feature = "emulator")]
pub use crate::emulator::EmulatorSettings;

/// Without the emulator a file may keep its `[emulator]` section (the
/// shipped config has one); it is read and not used.
#[cfg(not(feature = "emulator"))]
pub type EmulatorSettings = toml::Table;

/// The whole configuration file.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Process-wide settings.
    pub service: ServiceConfig,
    /// The HTTP server (health, metrics, status, admin, webhooks).
    pub http: HttpConfig,
    /// The Genesys Cloud org (needed by the Genesys sources).
    pub genesys: Option<GenesysConfig>,
    /// The bundled emulator, used when `genesys.environment = "emulator"`
    /// (and by `cxrelay emulator` / `cxrelay demo`).
    pub emulator: Option<EmulatorSettings>,
    /// Sources, in file order.
    pub source: Vec<SourceConfig>,
    /// The transform worker pool.
    pub transform: TransformConfig,
    /// Listeners, in file order.
    pub listener: Vec<ListenerConfig>,
    /// Cluster mode on NATS JetStream; `None`: one process on the embedded
    /// store.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Config {
    /// Makes every relative path of the config (`data_dir`, file sink
    /// paths, recordings output, CA files...) relative to `base`, the
    /// config file's directory: the same file means the same places
    /// wherever cxrelay is started from.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        crate::sources::builder::resolve_path(&mut self.service.data_dir, base);
        if let Some(c) = &mut self.cluster {
            for p in [&mut c.creds_file, &mut c.tls_ca_file].into_iter().flatten() {
                crate::sources::builder::resolve_path(p, base);
            }
        }
        for s in &mut self.source {
            s.spec.builder_mut().resolve_paths(base);
        }
        for l in &mut self.listener {
            l.sink.spec.builder_mut().resolve_paths(base);
        }
    }
}

/// The sections of the file other than `[[source]]` and `[[listener]]`
/// (which the loader reads entry by entry, by kind).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Sections {
    #[serde(default)]
    service: ServiceConfig,
    #[serde(default)]
    http: HttpConfig,
    genesys: Option<GenesysConfig>,
    emulator: Option<EmulatorSettings>,
    #[serde(default)]
    transform: TransformConfig,
    cluster: Option<crate::cluster::ClusterConfig>,
}

/// One `[[source]]`: the keys every source has, and its kind's typed config.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name.
    pub name: String,
    /// Set to false to keep a source in the file without running it.
    pub enabled: bool,
    /// The kind and its settings.
    pub spec: SourceSpec,
}

impl SourceConfig {
    /// The kind as written in configuration.
    pub fn kind(&self) -> &'static str {
        self.spec.kind()
    }
}

/// The keys every `[[source]]` takes, whatever its kind.
pub const SOURCE_COMMON_KEYS: &[&str] = &["name", "kind", "enabled"];
#[cfg(test)]
mod readme_tests;
#[cfg(test)]
mod tests;
