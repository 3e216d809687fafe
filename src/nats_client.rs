//! What the `nats` sink and cluster mode share about reaching NATS: the
//! credential and TLS keys, their checks, and the connect options they
//! make. Each keeps its own typed config (serde's `flatten` does not go
//! with `deny_unknown_fields`) and lends its keys here.

use std::path::{Path, PathBuf};

use async_nats::ConnectOptions;

use crate::config::{KeyProblems, Secret};

/// How a connection authenticates.
#[derive(Clone)]
pub enum NatsAuth {
    /// No credentials.
    None,
    /// A token.
    Token(Secret),
    /// A user and a password.
    UserPassword(Secret, Secret),
    /// A credentials file (JWT and NKey seed).
    CredsFile(PathBuf),
}

/// A config's credential and TLS keys, as written.
pub struct NatsKeys<'a> {
    /// `token_env`.
    pub token_env: Option<&'a str>,
    /// `user_env`.
    pub user_env: Option<&'a str>,
    /// `password_env`.
    pub password_env: Option<&'a str>,
    /// `creds_file`.
    pub creds_file: Option<&'a Path>,
    /// `tls`.
    pub tls: bool,
    /// `tls_ca_file`.
    pub tls_ca_file: Option<&'a Path>,
}

impl<'a> NatsKeys<'a> {
    /// Records what is wrong with the keys together.
    pub fn check(&self, p: &mut KeyProblems) {
        let methods = [
            self.token_env.is_some(),
            self.user_env.is_some(),
            self.creds_file.is_some(),
        ];
        p.check(
            methods.iter().filter(|m| **m).count() <= 1,
            "token_env",
            "use one of `token_env`, `user_env`/`password_env` and `creds_file`",
        );
        p.check(
            self.user_env.is_some() == self.password_env.is_some(),
            if self.user_env.is_some() {
                "password_env"
            } else {
                "user_env"
            },
            "set both `user_env` and `password_env`",
        );
        p.check(
            self.tls_ca_file.is_none() || self.tls,
            "tls_ca_file",
            "is used only with `tls = true`",
        );
    }

    /// The variables holding secrets, by key.
    pub fn secret_vars(&self) -> Vec<(&'static str, &'a str)> {
        [
            ("token_env", self.token_env),
            ("user_env", self.user_env),
            ("password_env", self.password_env),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// The authentication the keys name, with the secrets `secret` finds
    /// by key; the error names the key whose variable is not set.
    pub fn auth(&self, secret: impl Fn(&str) -> Option<Secret>) -> Result<NatsAuth, String> {
        let get = |key: &str| secret(key).ok_or_else(|| format!("`{key}`: its environment variable is not set"));
        Ok(if self.token_env.is_some() {
            NatsAuth::Token(get("token_env")?)
        } else if self.user_env.is_some() {
            NatsAuth::UserPassword(get("user_env")?, get("password_env")?)
        } else if let Some(path) = self.creds_file {
            NatsAuth::CredsFile(path.to_path_buf())
        } else {
            NatsAuth::None
        })
    }
}

/// Connect options with `auth` and TLS set; reconnecting for ever (the
/// caller waits, holding its work, meanwhile). The error names the
/// credentials file, never what is in it.
pub async fn connect_options(
    auth: &NatsAuth,
    tls: bool,
    tls_ca_file: Option<&Path>,
    name: String,
) -> Result<ConnectOptions, String> {
    let options = match auth {
        NatsAuth::None => ConnectOptions::new(),
        NatsAuth::Token(t) => ConnectOptions::new().token(t.expose().to_string()),
        NatsAuth::UserPassword(u, p) => {
            ConnectOptions::new().user_and_password(u.expose().to_string(), p.expose().to_string())
        }
        NatsAuth::CredsFile(path) => ConnectOptions::new()
            .credentials_file(path)
            .await
            .map_err(|e| format!("`creds_file` {}: {e}", path.display()))?,
    };
    let mut options = options.name(name).max_reconnects(None::<usize>).require_tls(tls);
    if let Some(ca) = tls_ca_file {
        options = options.add_root_certificates(ca.to_path_buf());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<'a>(token: Option<&'a str>, user: Option<&'a str>, password: Option<&'a str>) -> NatsKeys<'a> {
        NatsKeys {
            token_env: token,
            user_env: user,
            password_env: password,
            creds_file: None,
            tls: false,
            tls_ca_file: Some(Path::new("ca.pem")),
        }
    }

    #[test]
    fn keys_are_checked_together_and_name_the_missing_variable() {
        let mut p = KeyProblems::new();
        keys(Some("T"), Some("U"), None).check(&mut p);
        let problems = p.finish(|| ()).unwrap_err();
        let at: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(at, ["token_env", "password_env", "tls_ca_file"]);
        let k = keys(None, Some("U"), Some("P"));
        assert_eq!(k.secret_vars(), vec![("user_env", "U"), ("password_env", "P")]);
        let err = k
            .auth(|key| (key == "user_env").then(|| Secret::new("u")))
            .err()
            .unwrap();
        assert_eq!(err, "`password_env`: its environment variable is not set");
        assert!(matches!(keys(None, None, None).auth(|_| None), Ok(NatsAuth::None)));
    }
}
