//! Configuration: the `config.toml` contract, loading with precise errors,
//! and validation.
//!
//! Every key is known: an unknown or misspelt key is an error naming the
//! file, line and key. Secrets are never in the file, only the names of the
//! environment variables that hold them.

mod load;
mod locate;
mod secret;
mod types;

pub use load::{load, load_str, resolve_secrets, resolve_secrets_with, ConfigError, Loaded, Problem, Secrets};
pub use locate::KeyPath;
pub use secret::Secret;
pub use types::*;
