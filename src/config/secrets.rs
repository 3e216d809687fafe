//! Secrets: read from the environment variables the config names, never
//! from the file, and never printed.

use std::collections::HashMap;

use super::locate::{KeyPath, Locator};
use super::{Config, ConfigError, Problem, Secret};

/// Secrets resolved from the environment variables the config names.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// OAuth client id and secret, when a non-emulator org is configured.
    pub genesys: Option<(Secret, Secret)>,
    /// Admin bearer token, when its variable is set.
    pub admin_token: Option<Secret>,
    /// Components' secrets, by component name and the key naming the
    /// variable (relative to the component's table: `secret_env`,
    /// `sink.authorization_env`, `transform.mask_key_env`).
    components: HashMap<(String, String), Secret>,
}

impl Secrets {
    /// The secret of `component` named by `key`.
    pub fn component(&self, component: &str, key: &str) -> Option<&Secret> {
        self.components.get(&(component.to_string(), key.to_string()))
    }

    /// Every secret of `component` under `prefix` (e.g. `sink.`), keyed
    /// relative to it.
    pub fn under(&self, component: &str, prefix: &str) -> Vec<(String, Secret)> {
        self.components
            .iter()
            .filter(|((c, k), _)| c == component && k.starts_with(prefix))
            .map(|((_, k), s)| (k[prefix.len()..].to_string(), s.clone()))
            .collect()
    }

    /// Sets a component's secret (for embedders building a config by hand).
    pub fn set(&mut self, component: &str, key: &str, secret: Secret) {
        self.components.insert((component.to_string(), key.to_string()), secret);
    }
}

/// Reads every secret the config names from the environment. A variable
/// that is required and missing is an error naming the key, the line and
/// the variable (never a value).
pub fn resolve_secrets(config: &Config, text: &str, file: &str) -> Result<Secrets, ConfigError> {
    resolve_secrets_with(config, text, file, |k| std::env::var(k).ok())
}

/// [`resolve_secrets`] with an injectable environment (for tests).
pub fn resolve_secrets_with(
    config: &Config,
    text: &str,
    file: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secrets, ConfigError> {
    let locator = Locator::new(text);
    let mut problems = Vec::new();
    let mut require = |path: KeyPath, var: &str| -> Option<Secret> {
        match env(var).filter(|s| !s.is_empty()) {
            Some(val) => Some(Secret::new(val)),
            None => {
                let (line, col) = locator
                    .span_of(&path)
                    .map(|s| locator.line_col(s.start))
                    .map_or((None, None), |(l, c)| (Some(l), Some(c)));
                problems.push(Problem {
                    line,
                    col,
                    key: Some(path.to_string()),
                    message: format!("environment variable `{var}` is not set"),
                });
                None
            }
        }
    };
    let mut secrets = Secrets::default();
    let root = KeyPath::root();
    if let Some(g) = config.genesys.as_ref().filter(|g| !g.is_emulator()) {
        let genesys = root.key("genesys");
        let id = require(genesys.key("client_id_env"), &g.client_id_env);
        let secret = require(genesys.key("client_secret_env"), &g.client_secret_env);
        secrets.genesys = id.zip(secret);
    } else if let Some(g) = &config.genesys {
        // The emulator accepts its own default client unless both are set.
        let get = |var: &str| env(var).filter(|s| !s.is_empty()).map(Secret::new);
        secrets.genesys = get(&g.client_id_env).zip(get(&g.client_secret_env));
    }
    let mut wanted: Vec<(String, KeyPath, String, String)> = Vec::new();
    for (i, s) in config.source.iter().enumerate().filter(|(_, s)| s.enabled) {
        for (key, var) in s.spec.builder().secret_vars() {
            let path = root.key("source").index(i).key(key);
            wanted.push((s.name.clone(), path, key.to_string(), var.to_string()));
        }
    }
    for (i, l) in config.listener.iter().enumerate() {
        let at = root.key("listener").index(i);
        if let Some(var) = l.transform.as_ref().and_then(|t| t.mask_key_env.as_ref()) {
            let path = at.key("transform").key("mask_key_env");
            wanted.push((l.name.clone(), path, "transform.mask_key_env".into(), var.clone()));
        }
        for (key, var) in l.sink.spec.builder().secret_vars() {
            let path = at.key("sink").key(key);
            wanted.push((l.name.clone(), path, format!("sink.{key}"), var.to_string()));
        }
    }
    for (component, path, key, var) in wanted {
        if let Some(secret) = require(path, &var) {
            secrets.components.insert((component, key), secret);
        }
    }
    if let Some(var) = &config.http.admin_token_env {
        secrets.admin_token = env(var).filter(|s| !s.is_empty()).map(Secret::new);
    }
    if problems.is_empty() {
        Ok(secrets)
    } else {
        Err(ConfigError::Invalid {
            file: file.to_string(),
            problems,
        })
    }
}
