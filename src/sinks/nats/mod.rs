//! `kind = "nats"`: each event published to a NATS JetStream subject, with
//! its id as `Nats-Msg-Id`; a batch is committed once the stream has
//! acknowledged every message of it.
//!
//! A batch is pipelined: every message is published, then the
//! acknowledgements are awaited together (one round trip per batch, not per
//! event; a batch of more than 4096 messages goes in windows of 4096). A batch that fails in part is published again whole: the stream
//! drops the messages it already holds, by `Nats-Msg-Id`, within its
//! duplicate window (2 minutes by default, longer than any retry while the
//! broker is reachable). A broker that cannot be reached pauses the
//! listener (not ready) while the batch is retried with backoff.

mod config;
mod subject;
pub mod telemetry;

pub use config::NatsSinkConfig;

use std::cell::RefCell;
use std::future::IntoFuture;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use async_nats::ServerAddr;
use bytes::Bytes;
use cxrelay_actors::Event;
use futures_util::future::{join_all, LocalBoxFuture};

use self::subject::SubjectTemplate;
use self::telemetry::{BatchPublished, NatsStatus};
use crate::nats_client::{connect_options, NatsAuth};
use crate::sinks::file::Encoding;
use crate::sinks::{SinkError, SinkWriter};

/// Messages published before their acknowledgements are awaited: a batch
/// larger than this goes in windows of it. It bounds what the client holds
/// for one batch (the acknowledgement futures, their permits) whatever the
/// batch size.
const WINDOW: usize = 4096;

/// Where and how a nats sink publishes, fixed when it is built.
pub struct NatsSettings {
    /// The listener published for.
    pub listener: String,
    /// The servers.
    pub servers: Vec<ServerAddr>,
    /// The servers as shown (no credentials).
    pub shown: Vec<String>,
    /// The subject template.
    pub subject: SubjectTemplate,
    /// Message bodies.
    pub encoding: Encoding,
    /// The stream to check or create, and its subjects.
    pub stream: Option<(String, Vec<String>)>,
    /// The duplicate window of a stream this sink creates.
    pub duplicate_window: Duration,
    /// Credentials.
    pub auth: NatsAuth,
    /// Require TLS.
    pub tls: bool,
    /// Extra CA certificates.
    pub tls_ca_file: Option<PathBuf>,
    /// Longest a batch's publishes and acknowledgements may take.
    pub timeout: Duration,
}

impl NatsSettings {
    fn error(&self, message: impl std::fmt::Display) -> SinkError {
        SinkError::Transport {
            url: self.shown.join(","),
            message: message.to_string(),
        }
    }
}

/// A connection and its JetStream context.
struct Conn {
    client: async_nats::Client,
    js: jetstream::Context,
}

/// Publishes batches to JetStream and waits for the stream's
/// acknowledgements.
pub struct NatsWriter {
    settings: Arc<NatsSettings>,
    conn: Rc<RefCell<Option<Rc<Conn>>>>,
    status: Rc<RefCell<NatsStatus>>,
    /// Failed batches in a row while the broker was unreachable (the pause
    /// grows with them).
    unreachable: Rc<RefCell<u32>>,
}

impl NatsWriter {
    /// A writer with no connection yet (it opens with the first batch, on
    /// the sink's thread, and reconnects by itself after).
    pub fn new(settings: Arc<NatsSettings>) -> Self {
        let status = NatsStatus {
            servers: settings.shown.clone(),
            connection: "not connected",
            stream: settings.stream.as_ref().map(|(name, _)| name.clone()),
            ..NatsStatus::default()
        };
        NatsWriter {
            settings,
            conn: Rc::default(),
            status: Rc::new(RefCell::new(status)),
            unreachable: Rc::default(),
        }
    }
}

/// Connects, and checks or creates the stream.
async fn connect(s: &NatsSettings) -> Result<Conn, SinkError> {
    let options = connect_options(
        &s.auth,
        s.tls,
        s.tls_ca_file.as_deref(),
        format!("cxrelay/{}", s.listener),
    )
    .await
    .map_err(|e| s.error(e))?
    // The sink holds its batch while reconnecting.
    .connection_timeout(s.timeout);
    let client = options
        .connect(s.servers.clone())
        .await
        .map_err(|e| unreachable(s, format!("connecting: {e}")))?;
    let js = jetstream::ContextBuilder::new()
        .timeout(s.timeout)
        // A window's acknowledgements are awaited before the next window
        // is published: never more in flight than this.
        .max_ack_inflight(WINDOW)
        .backpressure_on_inflight(true)
        .build(client.clone());
    if let Some((name, subjects)) = &s.stream {
        ensure_stream(s, &js, name, subjects).await?;
    }
    Ok(Conn { client, js })
}

/// Checks that stream `name` takes `subjects`, creating it if absent.
async fn ensure_stream(
    s: &NatsSettings,
    js: &jetstream::Context,
    name: &str,
    subjects: &[String],
) -> Result<(), SinkError> {
    match js.get_stream(name).await {
        Ok(found) => {
            let has = &found.cached_info().config.subjects;
            let missing: Vec<&String> = subjects.iter().filter(|x| !has.contains(x)).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(s.error(format!(
                    "stream `{name}` takes {has:?}, not {missing:?}: add them to it, or set `stream_subjects`"
                )))
            }
        }
        Err(e)
            if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            let config = stream::Config {
                name: name.to_string(),
                subjects: subjects.to_vec(),
                duplicate_window: s.duplicate_window,
                ..stream::Config::default()
            };
            js.create_stream(config)
                .await
                .map(drop)
                .map_err(|e| s.error(format!("creating stream `{name}`: {e}")))
        }
        Err(e) => Err(s.error(format!("looking up stream `{name}`: {e}"))),
    }
}

/// An error while the broker cannot be reached: the listener pauses
/// (readiness shows it) for a while that the caller sets.
fn unreachable(s: &NatsSettings, message: String) -> SinkError {
    SinkError::Paused {
        wait: Duration::ZERO,
        reason: format!("NATS {} unreachable: {message}", s.shown.join(",")),
    }
}

/// The message id of `ev`: its id (unique within its source), or its
/// source and position for an event that has none.
fn message_id(ev: &Event) -> String {
    if ev.id.is_empty() {
        format!("{}:{}", ev.source, ev.seq)
    } else {
        ev.id.to_string()
    }
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Connected => "connected",
        State::Disconnected => "disconnected",
        State::Pending => "pending",
    }
}

impl SinkWriter for NatsWriter {
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        let s = self.settings.clone();
        // Subjects and bodies are made here, before the first await.
        let messages: Vec<(String, String, Bytes)> = events
            .iter()
            .map(|ev| {
                let mut body = Vec::with_capacity(ev.payload.len() + 200);
                s.encoding.encode(ev, &mut body);
                // One JSON document per message: no line break.
                body.pop();
                (s.subject.render(ev, &s.listener), message_id(ev), Bytes::from(body))
            })
            .collect();
        let (conn_slot, status, unreachable_count) = (self.conn.clone(), self.status.clone(), self.unreachable.clone());
        let publish = {
            let s = s.clone();
            let (conn_slot, status) = (conn_slot.clone(), status.clone());
            async move {
                let existing = conn_slot.borrow().clone();
                let conn = match existing {
                    Some(c) => c,
                    None => {
                        let c = Rc::new(connect(&s).await?);
                        *conn_slot.borrow_mut() = Some(c.clone());
                        c
                    }
                };
                let mut stored = 0;
                let mut duplicates = 0;
                let mut failed = None;
                let mut messages = messages.into_iter().peekable();
                while messages.peek().is_some() {
                    let mut acks = Vec::with_capacity(WINDOW);
                    for (subject, id, body) in messages.by_ref().take(WINDOW) {
                        let sent = conn
                            .js
                            .send_publish(subject.clone(), PublishMessage::build().payload(body).message_id(id))
                            .await;
                        match sent {
                            Ok(ack) => acks.push(ack.into_future()),
                            Err(e) => return Err(publish_error(&s, &conn, &subject, e)),
                        }
                    }
                    for ack in join_all(acks).await {
                        match ack {
                            Ok(a) if a.duplicate => duplicates += 1,
                            Ok(_) => stored += 1,
                            Err(e) => failed = failed.or(Some(e)),
                        }
                    }
                    if failed.is_some() {
                        break;
                    }
                }
                if let Some(e) = failed {
                    return Err(publish_error(&s, &conn, "", e));
                }
                BatchPublished {
                    listener: &s.listener,
                    stored,
                    duplicates,
                }
                .emit();
                let mut st = status.borrow_mut();
                st.published += stored;
                st.duplicates += duplicates;
                Ok::<(), SinkError>(())
            }
        };
        let timeout = s.timeout;
        Box::pin(async move {
            let outcome = match tokio::time::timeout(timeout * 2, publish).await {
                Ok(outcome) => outcome,
                Err(_) => Err(s.error(format!("batch not acknowledged within {:?}", timeout * 2))),
            };
            let state = conn_slot.borrow().as_ref().map(|c| c.client.connection_state());
            status.borrow_mut().connection = state.map_or("not connected", state_name);
            let mut n = unreachable_count.borrow_mut();
            match outcome {
                Ok(()) => {
                    *n = 0;
                    Ok(())
                }
                // A broker that cannot be reached: paused, the wait growing
                // from 250 ms to 10 s while it stays away.
                Err(SinkError::Paused { reason, .. }) => {
                    *n = n.saturating_add(1);
                    let wait = Duration::from_millis(250)
                        .saturating_mul(1u32 << (*n - 1).min(6))
                        .min(Duration::from_secs(10));
                    Err(SinkError::Paused { wait, reason })
                }
                Err(e) => {
                    *n = 0;
                    Err(e)
                }
            }
        })
    }

    fn describe(&self) -> serde_json::Value {
        let mut status = self.status.borrow().clone();
        if let Some(c) = self.conn.borrow().as_ref() {
            status.connection = state_name(c.client.connection_state());
        }
        serde_json::to_value(&status).unwrap_or_default()
    }
}

/// What a failed publish means for the batch.
fn publish_error(s: &NatsSettings, conn: &Conn, subject: &str, e: jetstream::context::PublishError) -> SinkError {
    let on = if subject.is_empty() {
        String::new()
    } else {
        format!(" to `{subject}`")
    };
    match e.kind() {
        // Too big for the server now, and on every retry.
        PublishErrorKind::MaxPayloadExceeded => SinkError::Rejected(Box::new(s.error(format!("publishing{on}: {e}")))),
        PublishErrorKind::StreamNotFound => s.error(format!(
            "publishing{on}: no stream takes this subject (set `stream` to create one)"
        )),
        _ if conn.client.connection_state() != State::Connected => unreachable(s, format!("publishing{on}: {e}")),
        _ => s.error(format!("publishing{on}: {e}")),
    }
}
