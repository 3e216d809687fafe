//! `kind = "postgres"`: its keys, their defaults and checks, and how it is
//! built.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{sql, PgSettings, PostgresWriter};
use crate::config::{duration, KeyProblem, KeyProblems};
use crate::sinks::builder::{SinkBuilder, SinkContext, SinkStarter};
use crate::sinks::SinkError;

/// A postgres sink's keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    /// Environment variable holding the connection string (a
    /// `postgres://` URL or `key=value` pairs).
    #[serde(default = "default_url_env")]
    pub url_env: String,
    /// The table written (created if absent).
    #[serde(default = "default_table")]
    pub table: String,
    /// Most connections open at once.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Longest a batch may take, connecting included.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Require TLS and verify the server's certificate and name.
    #[serde(default)]
    pub tls: bool,
    /// A PEM file of extra CA certificates to trust (with `tls`).
    pub tls_ca_file: Option<PathBuf>,
}

fn default_url_env() -> String {
    "CXRELAY_PG_URL".into()
}
fn default_table() -> String {
    "cxrelay_events".into()
}
fn default_pool_size() -> usize {
    2
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The server as it may be shown: hosts, port and database, never the
/// user or password.
fn shown(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}:{port}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

/// The rustls connector: Mozilla's roots plus `ca_file`, the ring provider
/// (the one cxrelay's other TLS uses).
fn tls_connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("`tls_ca_file` {shown}: {e}"))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| format!("`tls_ca_file` {shown}: {e}"))?;
            roots.add(cert).map_err(|e| format!("`tls_ca_file` {shown}: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("`tls_ca_file` {shown}: no PEM certificate in it"));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

impl SinkBuilder for PostgresSinkConfig {
    fn check(&self) -> Vec<KeyProblem> {
        let mut p = KeyProblems::new();
        p.check(!self.url_env.is_empty(), "url_env", "must name an environment variable");
        p.check(
            sql::valid_table(&self.table),
            "table",
            format!(
                "`{}` is not a plain table name (letters, digits and `_`, optionally `schema.table`)",
                self.table
            ),
        );
        p.check((1..=32).contains(&self.pool_size), "pool_size", "must be from 1 to 32");
        p.check(!self.timeout.is_zero(), "timeout", "must be more than 0");
        p.check(
            self.tls_ca_file.is_none() || self.tls,
            "tls_ca_file",
            "is used only with `tls = true`",
        );
        p.into_vec()
    }

    fn secret_vars(&self) -> Vec<(&'static str, &str)> {
        vec![("url_env", self.url_env.as_str())]
    }

    fn describe(&self) -> String {
        let tls = match (&self.tls, &self.tls_ca_file) {
            (true, Some(ca)) => format!(", TLS verified against {}", ca.display()),
            (true, None) => ", TLS".to_string(),
            (false, _) => ", no TLS".to_string(),
        };
        format!(
            "postgres table {} (server from ${}, {} connection(s){tls})",
            self.table, self.url_env, self.pool_size
        )
    }

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(ca) = self.tls_ca_file.as_mut() {
            crate::sources::builder::resolve_path(ca, base);
        }
    }

    fn build(&self, cx: SinkContext) -> Result<SinkStarter, SinkError> {
        let bad = |message: String| SinkError::Transport {
            url: "postgres".into(),
            message,
        };
        let url = cx
            .secret("url_env")
            .ok_or_else(|| bad(format!("`url_env`: environment variable `{}` is not set", self.url_env)))?;
        // The parser's errors name the parameter, never its value.
        let mut config = tokio_postgres::Config::from_str(url.expose())
            .map_err(|e| bad(format!("the connection string in `{}`: {e}", self.url_env)))?;
        let tls = if self.tls {
            config.ssl_mode(SslMode::Require);
            Some(tls_connector(self.tls_ca_file.as_deref()).map_err(bad)?)
        } else {
            if config.get_ssl_mode() == SslMode::Require {
                return Err(bad(format!(
                    "the connection string in `{}` asks for sslmode=require: set `tls = true`",
                    self.url_env
                )));
            }
            config.ssl_mode(SslMode::Disable);
            None
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name(format!("cxrelay/{}", cx.listener));
        }
        let settings = Arc::new(PgSettings {
            shown: shown(&config),
            config,
            tls,
            table: self.table.clone(),
            pool_size: self.pool_size,
            timeout: self.timeout,
        });
        Ok(cx.starter(move || Ok(PostgresWriter::new(settings.clone()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> PostgresSinkConfig {
        toml::from_str(&format!("url_env = 'PG_URL'\n{extra}")).unwrap()
    }

    #[test]
    fn keys_are_checked() {
        assert!(config("").check().is_empty());
        let p = config("table = 'x; drop'\npool_size = 0\ntls_ca_file = 'ca.pem'").check();
        let text = format!("{p:?}");
        for want in ["not a plain table name", "from 1 to 32", "only with `tls = true`"] {
            assert!(text.contains(want), "no `{want}` in {text}");
        }
        assert_eq!(config("").secret_vars(), vec![("url_env", "PG_URL")]);
    }

    #[test]
    fn the_server_is_shown_without_credentials() {
        let c =
            tokio_postgres::Config::from_str("postgres://alice:s3cret@db.example:6543/events?sslmode=disable").unwrap();
        assert_eq!(shown(&c), "postgres://db.example:6543/events");
        let c = tokio_postgres::Config::from_str("host=/run/pg user=bob password=s3cret dbname=d").unwrap();
        let s = shown(&c);
        assert!(
            s.contains("/run/pg") && !s.contains("s3cret") && !s.contains("bob"),
            "{s}"
        );
        let e = tokio_postgres::Config::from_str("postgres://u:s3cret@h/d?sslmode=bogus").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn a_tls_connector_builds_with_the_default_roots_and_refuses_a_file_without_certificates() {
        assert!(tls_connector(None).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = tls_connector(Some(&empty)).err().unwrap();
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
