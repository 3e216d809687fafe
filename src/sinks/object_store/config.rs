//! `kind = "object_store"`: its keys, their defaults and checks, and how it
//! is built.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::naming::{check_prefix, installation_tag, Naming};
use super::{ObjectSettings, ObjectStoreWriter};
use crate::config::{duration, KeyProblem, KeyProblems, Secret};
use crate::sinks::builder::{SinkBuilder, SinkContext, SinkStarter};
use crate::sinks::file::partition::PartitionTemplate;
use crate::sinks::file::{Compression, Encoding};
use crate::sinks::SinkError;

/// The smallest part S3 takes in a multipart upload (but the last).
const MIN_PART_BYTES: u64 = 5 << 20;
/// The largest part S3 takes.
const MAX_PART_BYTES: u64 = 5 << 30;

/// An object_store sink's keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreSinkConfig {
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside the bucket (`""`: none).
    #[serde(default)]
    pub prefix: String,
    /// Partition template under the prefix.
    #[serde(default = "default_partition")]
    pub partition: String,
    /// The bucket's region.
    #[serde(default = "default_region")]
    pub region: String,
    /// An S3-compatible endpoint instead of AWS's (MinIO, Ceph, R2...).
    pub endpoint: Option<String>,
    /// Environment variable holding the access key id (absent: the
    /// instance's or container's role).
    pub access_key_id_env: Option<String>,
    /// Environment variable holding the secret access key.
    pub secret_access_key_env: Option<String>,
    /// Environment variable holding a session token (temporary keys).
    pub session_token_env: Option<String>,
    /// `none`, `gzip` or `zstd`.
    #[serde(default = "default_compression")]
    pub compression: Compression,
    /// `envelope` or `payload`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Objects larger than this are uploaded in parts of this size.
    #[serde(default = "default_part_bytes")]
    pub part_bytes: u64,
    /// Longest one batch's upload may take.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

fn default_partition() -> String {
    "{listener}/{date}/{hour}".into()
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_compression() -> Compression {
    Compression::Gzip
}
fn default_part_bytes() -> u64 {
    8 << 20
}
fn default_timeout() -> Duration {
    Duration::from_secs(120)
}

/// An object per this many events...
pub const DEFAULT_BATCH_EVENTS: usize = 5000;
/// ...or once the oldest is this old.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_secs(5);

/// `endpoint` checked: an absolute http(s) URL without credentials or
/// query; answers whether it is plain http.
fn check_endpoint(endpoint: &str) -> Result<bool, String> {
    let uri: awc::http::Uri = endpoint.parse().map_err(|e| format!("not a URL: {e}"))?;
    let http = match uri.scheme_str() {
        Some("http") => true,
        Some("https") => false,
        _ => return Err("must start with http:// or https://".into()),
    };
    let authority = uri.authority().ok_or("has no host")?;
    if authority.as_str().contains('@') {
        return Err("must not hold credentials (use access_key_id_env and secret_access_key_env)".into());
    }
    if uri.query().is_some() {
        return Err("must not have a query".into());
    }
    Ok(http)
}

impl SinkBuilder for ObjectStoreSinkConfig {
    fn check(&self) -> Vec<KeyProblem> {
        let mut p = KeyProblems::new();
        // S3's rules for new buckets, loosely: compatible stores accept less.
        p.check(
            (3..=63).contains(&self.bucket.len())
                && self
                    .bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'),
            "bucket",
            "must be a bucket name (3 to 63 lowercase letters, digits, `-`, `.`, `_`)",
        );
        if let Err(e) = check_prefix(&self.prefix) {
            p.at("prefix", e);
        }
        if let Err(e) = PartitionTemplate::parse(&self.partition) {
            p.at("partition", e);
        }
        p.check(!self.region.is_empty(), "region", "must not be empty");
        if let Some(Err(e)) = self.endpoint.as_deref().map(check_endpoint) {
            p.at("endpoint", e);
        }
        p.check(
            self.access_key_id_env.is_some() == self.secret_access_key_env.is_some(),
            if self.access_key_id_env.is_some() {
                "secret_access_key_env"
            } else {
                "access_key_id_env"
            },
            "set both `access_key_id_env` and `secret_access_key_env`, or neither (the instance's role)",
        );
        p.check(
            self.session_token_env.is_none() || self.access_key_id_env.is_some(),
            "session_token_env",
            "is used only with `access_key_id_env` and `secret_access_key_env`",
        );
        p.check(
            (MIN_PART_BYTES..=MAX_PART_BYTES).contains(&self.part_bytes),
            "part_bytes",
            format!("must be from {MIN_PART_BYTES} (5 MiB, S3's smallest part) to {MAX_PART_BYTES} (5 GiB)"),
        );
        p.check(!self.timeout.is_zero(), "timeout", "must be more than 0");
        p.into_vec()
    }

    fn secret_vars(&self) -> Vec<(&'static str, &str)> {
        let mut vars = Vec::new();
        for (key, var) in [
            ("access_key_id_env", &self.access_key_id_env),
            ("secret_access_key_env", &self.secret_access_key_env),
            ("session_token_env", &self.session_token_env),
        ] {
            if let Some(v) = var {
                vars.push((key, v.as_str()));
            }
        }
        vars
    }

    fn describe(&self) -> String {
        let mut s = format!("object store s3://{}", self.bucket);
        if let Ok(prefix) = check_prefix(&self.prefix) {
            if !prefix.is_empty() {
                s.push_str(&format!("/{prefix}"));
            }
        }
        s.push_str(&format!("/{}", self.partition));
        if let Some(e) = &self.endpoint {
            s.push_str(&format!(" at {}", crate::urls::redacted(e)));
        }
        s
    }

    fn default_batching(&self) -> Option<(usize, Duration)> {
        Some((DEFAULT_BATCH_EVENTS, DEFAULT_BATCH_INTERVAL))
    }

    fn build(&self, cx: SinkContext) -> Result<SinkStarter, SinkError> {
        let bad = |message: String| SinkError::Transport {
            url: format!("s3://{}", self.bucket),
            message,
        };
        let problems = self.check();
        if let Some(p) = problems.first() {
            return Err(bad(format!("`{}`: {}", p.key, p.message)));
        }
        let secret = |key: &str, var: &Option<String>| -> Result<Option<Secret>, SinkError> {
            match var {
                None => Ok(None),
                Some(v) => cx
                    .secret(key)
                    .map(Some)
                    .ok_or_else(|| bad(format!("`{key}`: environment variable `{v}` is not set"))),
            }
        };
        let access_key_id = secret("access_key_id_env", &self.access_key_id_env)?;
        let secret_access_key = secret("secret_access_key_env", &self.secret_access_key_env)?;
        let session_token = secret("session_token_env", &self.session_token_env)?;
        let naming = Naming {
            prefix: check_prefix(&self.prefix).map_err(bad)?,
            partition: PartitionTemplate::parse(&self.partition).map_err(bad)?,
            listener: crate::sinks::file::partition::sanitised(&cx.listener),
            extension: self.compression.extension(),
        };
        let settings = Arc::new(ObjectSettings {
            listener: cx.listener.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            allow_http: self.endpoint.as_deref().map(check_endpoint) == Some(Ok(true)),
            access_key_id,
            secret_access_key,
            session_token,
            compression: self.compression,
            encoding: self.encoding,
            part_bytes: self.part_bytes,
            timeout: self.timeout,
            // Kept with the journal; made now, so an unwritable data
            // directory fails the start rather than the first batch.
            tag: installation_tag(&cx.state_dir, &cx.listener)?,
            naming,
        });
        crate::telemetry::install_tls_provider();
        crate::telemetry::counters_at_zero(super::telemetry::METRICS, "listener", &cx.listener);
        Ok(cx.starter(move || ObjectStoreWriter::new(settings.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> ObjectStoreSinkConfig {
        toml::from_str(&format!("bucket = 'cx-events'\n{extra}")).unwrap()
    }

    #[test]
    fn defaults_and_checks() {
        let c = config("");
        assert!(c.check().is_empty(), "{:?}", c.check());
        assert_eq!((c.compression, c.encoding), (Compression::Gzip, Encoding::Envelope));
        assert_eq!(
            (c.part_bytes, c.partition.as_str()),
            (8 << 20, "{listener}/{date}/{hour}")
        );
        assert!(c.secret_vars().is_empty());
        let c: ObjectStoreSinkConfig = toml::from_str(
            "bucket = 'X'\nprefix = '/a'\npartition = '{nope}'\nendpoint = 'ftp://h'\naccess_key_id_env = 'K'\npart_bytes = 1024",
        )
        .unwrap();
        let keys: Vec<String> = c.check().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "bucket",
                "prefix",
                "partition",
                "endpoint",
                "secret_access_key_env",
                "part_bytes"
            ]
        );
        assert_eq!(c.default_batching(), Some((5000, Duration::from_secs(5))));
    }

    #[test]
    fn endpoints_are_plain_urls() {
        assert_eq!(check_endpoint("http://127.0.0.1:9000"), Ok(true));
        assert_eq!(check_endpoint("https://s3.example.com/"), Ok(false));
        for bad in ["ftp://h", "http://user:pw@h", "http://h/?x=1", "h:9000"] {
            let e = check_endpoint(bad).unwrap_err();
            assert!(!e.contains("pw"), "{e}");
        }
        let c = config("endpoint = 'http://127.0.0.1:9000'\naccess_key_id_env = 'AK'\nsecret_access_key_env = 'SK'");
        assert!(c.check().is_empty());
        assert_eq!(
            c.secret_vars(),
            vec![("access_key_id_env", "AK"), ("secret_access_key_env", "SK")]
        );
        assert!(c
            .describe()
            .contains("s3://cx-events/{listener}/{date}/{hour} at http://127.0.0.1:9000"));
    }
}
