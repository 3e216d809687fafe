//! `kind = "object_store"`: each batch becomes objects in an S3 bucket (AWS
//! or an S3-compatible store), NDJSON, gzip by default; acknowledged once
//! every object of the batch is uploaded.
//!
//! - A batch is split by partition (`{listener}/{date}/{hour}` by
//!   default) into one object per partition, named by the journal
//!   positions it holds (`naming`). An object is only ever visible whole:
//!   a single PUT up to `part_bytes`, a multipart upload beyond (its parts
//!   are invisible until the upload completes, and aborted on failure).
//! - Effectively once: a writer that starts (after a crash, a restart) or
//!   retries a failed upload first looks for an object starting at the
//!   first position it is about to write, and drops what that object
//!   already holds. Replayed events are not stored twice (see
//!   [`ObjectStoreWriter::commit`]).

mod config;
mod naming;
pub mod telemetry;
#[cfg(test)]
mod tests;

pub use config::ObjectStoreSinkConfig;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ::object_store::aws::AmazonS3Builder;
use ::object_store::path::{Path as ObjectPath, PathPart};
use ::object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    RetryConfig,
};
use bytes::Bytes;
use cxrelay_actors::Event;
use futures_util::future::LocalBoxFuture;
use futures_util::{StreamExt, TryStreamExt};

use self::naming::Naming;
use self::telemetry::{AlreadyStored, ObjectStoreStatus, ObjectUploaded};
use crate::config::Secret;
use crate::sinks::file::{Compression, Encoding};
use crate::sinks::{SinkError, SinkWriter};

/// Objects of one batch uploaded at once (a batch spanning many partitions
/// would otherwise open a connection per partition).
const OBJECTS_IN_FLIGHT: usize = 4;
/// Directories whose stored ranges are kept before those holding nothing
/// ahead are forgotten.
const MAX_DIRS_KEPT: usize = 1024;
/// Parts of one multipart upload sent at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Where and how an object_store sink writes, fixed when it is built.
pub struct ObjectSettings {
    /// The listener written for.
    pub listener: String,
    /// The bucket.
    pub bucket: String,
    /// Its region.
    pub region: String,
    /// An S3-compatible endpoint, if not AWS.
    pub endpoint: Option<String>,
    /// Whether the endpoint is plain http.
    pub allow_http: bool,
    /// Static credentials (absent: the instance's or container's role).
    pub access_key_id: Option<Secret>,
    /// The secret half.
    pub secret_access_key: Option<Secret>,
    /// A session token, for temporary credentials.
    pub session_token: Option<Secret>,
    /// Compression of objects.
    pub compression: Compression,
    /// Line encoding.
    pub encoding: Encoding,
    /// Objects larger than this go in parts of this size.
    pub part_bytes: u64,
    /// Longest one batch's upload may take.
    pub timeout: Duration,
    /// The installation's tag in names.
    pub tag: String,
    /// Prefix, partition and name rules.
    pub naming: Naming,
}

impl ObjectSettings {
    /// The target as shown in status and errors: bucket, prefix and
    /// endpoint, never a credential.
    fn shown(&self) -> String {
        let mut s = format!("s3://{}", self.bucket);
        if !self.naming.prefix.is_empty() {
            s.push('/');
            s.push_str(&self.naming.prefix);
        }
        if let Some(e) = &self.endpoint {
            s.push_str(" at ");
            s.push_str(&crate::urls::redacted(e));
        }
        s
    }

    /// `message` without any credential in it: S3's error answers can
    /// quote the access key id (and a misconfigured client more).
    fn scrub(&self, message: String) -> String {
        let mut message = message;
        for secret in [&self.access_key_id, &self.secret_access_key, &self.session_token]
            .into_iter()
            .flatten()
        {
            let value = secret.expose();
            if value.len() >= 4 {
                message = message.replace(value, "<redacted>");
            }
        }
        message
    }

    fn error(&self, e: impl std::fmt::Display) -> SinkError {
        SinkError::Transport {
            url: self.shown(),
            message: self.scrub(e.to_string()),
        }
    }

    fn content_type(&self) -> &'static str {
        match self.compression {
            Compression::None => "application/x-ndjson",
            Compression::Gzip => "application/gzip",
            Compression::Zstd => "application/zstd",
        }
    }
}

/// What a writer keeps between batches.
struct WriterState {
    /// Per directory, the position ranges of this installation's objects
    /// there that later events may fall in: listed once per directory (a
    /// killed run may have stored objects past its acknowledgement, in any
    /// order), then kept up to date with this writer's own uploads, and
    /// pruned as positions move past them. Forgotten after a failed commit
    /// (an upload whose answer was lost may be stored after all).
    stored: HashMap<String, Vec<(u64, u64)>>,
    /// With the journal off (no positions): this writer's own tag, and its
    /// objects counted in their names instead.
    run_tag: String,
    counter: u64,
    status: ObjectStoreStatus,
}

/// Uploads each batch as one object per partition; resolves once all are
/// stored.
pub struct ObjectStoreWriter {
    settings: Arc<ObjectSettings>,
    store: Arc<dyn ObjectStore>,
    state: Rc<RefCell<WriterState>>,
}

impl ObjectStoreWriter {
    /// A writer with its client (no request is made until the first batch).
    pub fn new(settings: Arc<ObjectSettings>) -> Result<Self, SinkError> {
        let s = &settings;
        // Few retries inside the client: a failed batch is retried by the
        // sink, with its backoff, and shows in status meanwhile.
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: s.timeout,
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(&s.region)
            .with_retry(retry)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(s.timeout)
                    .with_connect_timeout(Duration::from_secs(10)),
            );
        if let Some(endpoint) = &s.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(s.allow_http);
        }
        if let (Some(id), Some(key)) = (&s.access_key_id, &s.secret_access_key) {
            builder = builder
                .with_access_key_id(id.expose())
                .with_secret_access_key(key.expose());
        }
        if let Some(token) = &s.session_token {
            builder = builder.with_token(token.expose());
        }
        let store = builder.build().map_err(|e| s.error(e))?;
        Ok(Self::with_store(settings, Arc::new(store)))
    }

    /// A writer storing into `store` (tests use an in-memory one).
    pub fn with_store(settings: Arc<ObjectSettings>, store: Arc<dyn ObjectStore>) -> Self {
        let s = &settings;
        let mut target = format!("s3://{}", s.bucket);
        if !s.naming.prefix.is_empty() {
            target = format!("{target}/{}", s.naming.prefix);
        }
        let state = WriterState {
            stored: HashMap::new(),
            run_tag: naming::random_tag(&s.listener),
            counter: 0,
            status: ObjectStoreStatus {
                target,
                endpoint: s.endpoint.as_deref().map(crate::urls::redacted),
                ..ObjectStoreStatus::default()
            },
        };
        ObjectStoreWriter {
            store,
            settings,
            state: Rc::new(RefCell::new(state)),
        }
    }
}

/// Everything one object's upload needs.
#[derive(Clone)]
struct Upload {
    settings: Arc<ObjectSettings>,
    store: Arc<dyn ObjectStore>,
    state: Rc<RefCell<WriterState>>,
}

impl Upload {
    /// Uploads the events of one directory, after dropping those an
    /// earlier run or attempt stored already.
    async fn group(self, dir: String, mut events: Vec<Arc<Event>>, journal: bool) -> Result<(), SinkError> {
        let s = &self.settings;
        let tag = if journal {
            s.tag.clone()
        } else {
            self.state.borrow().run_tag.clone()
        };
        let mut skipped = 0;
        if journal {
            let ranges = self.stored_in(&dir, &tag).await?;
            let before = events.len();
            events.retain(|e| !ranges.iter().any(|&(first, last)| (first..=last).contains(&e.seq)));
            skipped = (before - events.len()) as u64;
            // Positions only grow: a range below this group helps no more.
            if let Some(low) = events.iter().map(|e| e.seq).min() {
                if let Some(r) = self.state.borrow_mut().stored.get_mut(&dir) {
                    r.retain(|&(_, last)| last >= low);
                }
            }
        }
        if skipped > 0 {
            AlreadyStored {
                listener: &s.listener,
                dir: &dir,
                events: skipped,
            }
            .emit();
            self.state.borrow_mut().status.already_stored += skipped;
        }
        if events.is_empty() {
            return Ok(());
        }
        let (first, last) = if journal {
            let seqs = events.iter().map(|e| e.seq);
            (seqs.clone().min().unwrap_or(0), seqs.max().unwrap_or(0))
        } else {
            let mut st = self.state.borrow_mut();
            st.counter += 1;
            (st.counter, st.counter)
        };
        let key = format!("{dir}/{}", s.naming.name(&tag, first, last));
        let count = events.len() as u64;
        let (encoding, compression) = (s.encoding, s.compression);
        // Encoding and compressing a few MB is CPU work: off the sink's
        // thread, so the other objects' uploads go on meanwhile.
        let body = tokio::task::spawn_blocking(move || encode(&events, encoding, compression))
            .await
            .map_err(|e| s.error(format!("encoding {key}: {e}")))?
            .map_err(|e| s.error(format!("encoding {key}: {e}")))?;
        let bytes = body.len() as u64;
        self.upload(&ObjectPath::from(key.as_str()), Bytes::from(body))
            .await
            .map_err(|e| s.error(e))?;
        ObjectUploaded {
            listener: &s.listener,
            bytes,
        }
        .emit();
        let mut st = self.state.borrow_mut();
        if journal {
            st.stored.entry(dir).or_default().push((first, last));
        }
        st.status.objects += 1;
        st.status.bytes += bytes;
        st.status.events += count;
        st.status.last_object = Some(key);
        Ok(())
    }

    /// The position ranges of this installation's objects in `dir` (one
    /// listing the first time, then what this writer keeps).
    async fn stored_in(&self, dir: &str, tag: &str) -> Result<Vec<(u64, u64)>, SinkError> {
        if let Some(r) = self.state.borrow().stored.get(dir) {
            return Ok(r.clone());
        }
        let s = &self.settings;
        // Names are compared as stored: parts the path type percent-encodes
        // (a listener named with `%` or `{`) are encoded the same here.
        let head = PathPart::from(s.naming.head(tag).as_str()).as_ref().to_string();
        let listed = self
            .store
            .list_with_delimiter(Some(&ObjectPath::from(dir)))
            .await
            .map_err(|e| s.error(e))?;
        let ranges: Vec<(u64, u64)> = listed
            .objects
            .iter()
            .filter_map(|m| m.location.filename())
            .filter_map(|name| s.naming.range_of(name.strip_prefix(&head)?))
            .collect();
        let mut st = self.state.borrow_mut();
        // Directories are time partitions: those holding nothing ahead
        // are forgotten now and then (listing one again is harmless).
        if st.stored.len() >= MAX_DIRS_KEPT {
            st.stored.retain(|_, r| !r.is_empty());
        }
        st.stored.insert(dir.to_string(), ranges.clone());
        Ok(ranges)
    }

    /// Stores `body` at `path`, whole or not at all.
    async fn upload(&self, path: &ObjectPath, body: Bytes) -> Result<(), ::object_store::Error> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, self.settings.content_type().into());
        let part = usize::try_from(self.settings.part_bytes).unwrap_or(usize::MAX);
        if body.len() <= part {
            let opts = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            self.store.put_opts(path, PutPayload::from(body), opts).await?;
            return Ok(());
        }
        let opts = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        let mut upload = self.store.put_multipart_opts(path, opts).await?;
        let parts: Vec<_> = (0..body.len())
            .step_by(part)
            .map(|at| upload.put_part(PutPayload::from(body.slice(at..body.len().min(at + part)))))
            .collect();
        let sent = futures_util::stream::iter(parts)
            .buffer_unordered(PARTS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await;
        let done = match sent {
            Ok(_) => upload.complete().await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            // Parts of an incomplete upload are never visible, but they
            // are billed until aborted (or a lifecycle rule removes them).
            if let Err(abort) = upload.abort().await {
                tracing::warn!(listener = %self.settings.listener, error = %self.settings.scrub(abort.to_string()),
                    "aborting a failed multipart upload failed; a lifecycle rule removes its parts");
            }
            return Err(e);
        }
        Ok(())
    }
}

/// A batch's lines, compressed as configured (one gzip member or zstd
/// frame: an ordinary `.gz`/`.zst` file).
fn encode(events: &[Arc<Event>], encoding: Encoding, compression: Compression) -> std::io::Result<Vec<u8>> {
    let mut lines = Vec::with_capacity(events.len() * 512);
    for ev in events {
        encoding.encode(ev, &mut lines);
    }
    if compression == Compression::None {
        return Ok(lines);
    }
    let mut out = Vec::with_capacity(lines.len() / 4);
    compression.encode_unit(&lines, &mut out)?;
    Ok(out)
}

impl SinkWriter for ObjectStoreWriter {
    /// Splits the batch by directory and uploads an object per directory.
    ///
    /// Effectively once: after a crash the journal replays from the first
    /// batch not acknowledged, which the previous process may have stored
    /// in part or whole. The replayed events of one directory begin with
    /// the same position as the object stored for them (positions are
    /// deterministic, and so are partitions), so the writer finds that
    /// object by name, skips the positions it holds, and repeats with what
    /// is left, until nothing is found. A batch in which nothing was found
    /// ends the search.
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        let s = self.settings.clone();
        let mut groups: Vec<(String, Vec<Arc<Event>>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for ev in events {
            let dir = s.naming.dir(ev, &s.listener);
            match index.get(&dir) {
                Some(&i) => groups[i].1.push(ev.clone()),
                None => {
                    index.insert(dir.clone(), groups.len());
                    groups.push((dir, vec![ev.clone()]));
                }
            }
        }
        // Without the journal events have no positions (0): nothing is
        // replayed, and names count objects instead.
        let journal = events.iter().all(|e| e.seq > 0);
        let upload = Upload {
            settings: s.clone(),
            store: self.store.clone(),
            state: self.state.clone(),
        };
        let state = self.state.clone();
        let write = async move {
            let results: Vec<Result<(), SinkError>> = futures_util::stream::iter(
                groups
                    .into_iter()
                    .map(|(dir, evs)| upload.clone().group(dir, evs, journal)),
            )
            .buffer_unordered(OBJECTS_IN_FLIGHT)
            .collect()
            .await;
            results.into_iter().collect::<Result<(), SinkError>>()
        };
        let timeout = s.timeout;
        Box::pin(async move {
            let outcome = tokio::time::timeout(timeout, write).await.unwrap_or_else(|_| {
                Err(SinkError::Transport {
                    url: s.shown(),
                    message: format!("batch not stored within {timeout:?}"),
                })
            });
            if outcome.is_err() {
                // Some objects may be stored (or stored after all, the
                // answer lost): the retry lists again.
                state.borrow_mut().stored.clear();
            }
            outcome
        })
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::to_value(&self.state.borrow().status).unwrap_or_default()
    }
}
