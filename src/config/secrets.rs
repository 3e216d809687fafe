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

/// A secret the config names: where, which variable, what for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSecret {
    /// The key naming the variable, e.g. `listener[0].sink.url_env`.
    pub key: String,
    /// The environment variable.
    pub var: String,
    /// Whether cxrelay refuses to start without it (else a feature is off
    /// without it, e.g. the admin API).
    pub required: bool,
    /// The component it belongs to and its key relative to the component
    /// (how builders ask for it), when it belongs to one.
    pub component: Option<(String, String)>,
}

/// Every secret `config` names, in file order: what `cxrelay check
/// --offline` lists and what [`resolve_secrets`] reads.
pub fn named_secrets(config: &Config) -> Vec<(KeyPath, NamedSecret)> {
    let root = KeyPath::root();
    let mut out = Vec::new();
    let mut push = |path: KeyPath, var: &str, required: bool, component: Option<(String, String)>| {
        let key = path.to_string();
        out.push((
            path,
            NamedSecret {
                key,
                var: var.to_string(),
                required,
                component,
            },
        ));
    };
    if let Some(var) = &config.http.admin_token_env {
        push(root.key("http").key("admin_token_env"), var, false, None);
    }
    if let Some(g) = &config.genesys {
        // The emulator accepts its own default client unless both are set.
        let required = !g.is_emulator();
        let genesys = root.key("genesys");
        push(genesys.key("client_id_env"), &g.client_id_env, required, None);
        push(genesys.key("client_secret_env"), &g.client_secret_env, required, None);
    }
    if let Some(c) = &config.cluster {
        for (key, var) in c.secret_vars() {
            push(
                root.key("cluster").key(key),
                var,
                true,
                Some(("cluster".into(), key.into())),
            );
        }
    }
    for (i, s) in config.source.iter().enumerate().filter(|(_, s)| s.enabled) {
        for (key, var) in s.spec.builder().secret_vars() {
            let path = root.key("source").index(i).key(key);
            push(path, var, true, Some((s.name.clone(), key.to_string())));
        }
    }
    for (i, l) in config.listener.iter().enumerate() {
        let at = root.key("listener").index(i);
        if let Some(var) = l.transform.as_ref().and_then(|t| t.mask_key_env.as_ref()) {
            let path = at.key("transform").key("mask_key_env");
            push(path, var, true, Some((l.name.clone(), "transform.mask_key_env".into())));
        }
        for (key, var) in l.sink.spec.builder().secret_vars() {
            let path = at.key("sink").key(key);
            push(path, var, true, Some((l.name.clone(), format!("sink.{key}"))));
        }
    }
    out
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
    let mut secrets = Secrets::default();
    let (mut genesys_id, mut genesys_secret) = (None, None);
    for (path, named) in named_secrets(config) {
        let value = env(&named.var).filter(|s| !s.is_empty()).map(Secret::new);
        if value.is_none() && named.required {
            let (line, col) = locator
                .span_of(&path)
                .map(|s| locator.line_col(s.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            problems.push(Problem {
                line,
                col,
                key: Some(named.key.clone()),
                message: format!("environment variable `{}` is not set", named.var),
            });
        }
        let Some(value) = value else {
            continue;
        };
        match (named.key.as_str(), named.component) {
            ("http.admin_token_env", _) => secrets.admin_token = Some(value),
            ("genesys.client_id_env", _) => genesys_id = Some(value),
            ("genesys.client_secret_env", _) => genesys_secret = Some(value),
            (_, Some(component)) => {
                secrets.components.insert(component, value);
            }
            _ => {}
        }
    }
    secrets.genesys = genesys_id.zip(genesys_secret);
    if problems.is_empty() {
        Ok(secrets)
    } else {
        Err(ConfigError::Invalid {
            file: file.to_string(),
            problems,
        })
    }
}
