//! One WebSocket of a channel: reads frames, hands events to ingest with
//! group commit, pings and watches for silence, keeps malformed frames in
//! dead letters, and tells its channel actor when it goes live, when
//! Genesys announces maintenance, and how it ended.
//!
//! It runs as a task on its channel actor's thread (awc is not `Send`) and
//! owns the socket; the actor steers it with [`SocketCommand`]s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_codec::Framed;
use actix_ws::Item;
use awc::error::WsProtocolError;
use awc::ws::{CloseCode, CloseReason, Frame, Message};
use bytes::{Bytes, BytesMut};
use cxrelay_actors::event::now_ms;
use futures_util::future::LocalBoxFuture;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;

use super::counters::ChannelCounters;
use super::frames::{Classified, FrameReader, MalformedReason, SystemMessage};
use super::group_commit::{GroupCommit, Submitted};
use super::reassembly::{Assembled, Reassembly};
use super::reconnect::Closed;
use crate::ingest::Ingest;
use crate::store::{DeadLetter, PutDeadLetters};

/// The client health check.
const PING: &str = r#"{"message":"ping"}"#;
/// Submits in flight before the socket stops being read.
const MAX_IN_FLIGHT: usize = 3;
/// Events per submit at most.
const MAX_BATCH: usize = 500;
/// Malformed frames waiting for the dead-letter table before the socket
/// stops being read.
const MAX_PENDING_DEAD_LETTERS: usize = 64;
/// Raw bytes of a malformed frame kept in its dead letter.
const DEAD_LETTER_RAW: usize = 16 * 1024;
/// Frames read in one go before timers and commits get a look in.
const READ_BURST: usize = 64;
/// Waits of 100 ms for an unavailable store when a socket has ended.
const DRAIN_WAITS: usize = 300;

/// The socket's read buffer. The WebSocket client reads at most 8 KiB at a
/// time into its own: a busy channel then costs a `recv` for every five
/// frames, and each `recv` that frees the receive window sends an ACK
/// (on loopback the sender's delivery runs inside that call too).
const READ_BUFFER_BYTES: usize = 64 << 10;

/// `framed` reading into a buffer of `READ_BUFFER_BYTES` (64 KiB): the client
/// keeps reusing a buffer of the size it started with once the frames read
/// from it are gone, and refills it whole.
pub fn with_read_buffer<T, U>(framed: Framed<T, U>) -> Framed<T, U> {
    let mut parts = framed.into_parts();
    if parts.read_buf.capacity() < READ_BUFFER_BYTES {
        let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
        buf.extend_from_slice(&parts.read_buf);
        parts.read_buf = buf;
    }
    Framed::from_parts(parts)
}

/// What a socket tells its channel actor.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum SocketEvent {
    /// The first frame of socket `gen` arrived at `at_ms`.
    Live {
        /// The socket.
        generation: u64,
        /// ms since the epoch.
        at_ms: i64,
    },
    /// Genesys announced maintenance on socket `gen`.
    Closing {
        /// The socket.
        generation: u64,
    },
    /// A `v2.system.*` message about the channel arrived on socket `gen`.
    System {
        /// The socket.
        generation: u64,
        /// Which.
        message: SystemMessage,
        /// When (ms since the epoch).
        at_ms: i64,
    },
    /// Socket `gen` ended; what it read is committed (or counted lost).
    Ended {
        /// The socket.
        generation: u64,
        /// How.
        closed: Closed,
        /// Its last frame (ms since the epoch), if any.
        last_frame_ms: Option<i64>,
        /// How long it was up.
        up_for: Duration,
    },
}

/// What a channel actor tells its socket.
#[derive(Debug, Clone)]
pub enum SocketCommand {
    /// A newer socket took over: stop pinging and watching for silence,
    /// keep reading until Genesys closes this one.
    Retire,
    /// Commit what was read, close with 1000 and end.
    Close,
    /// The channel's topics changed.
    Topics(Vec<String>),
}

/// Everything a socket task needs.
pub struct SocketSetup {
    /// The socket's number within its channel.
    pub generation: u64,
    /// The source's name.
    pub source: Arc<str>,
    /// The channel's component name (for dead letters and logs).
    pub component: String,
    /// The Genesys channel id.
    pub channel_id: String,
    /// The channel's topics.
    pub topics: Vec<String>,
    /// Time between pings.
    pub ping_interval: Duration,
    /// No frame for this long: dead.
    pub silence_timeout: Duration,
    /// Largest frame accepted.
    pub max_frame_bytes: usize,
    /// Where events go.
    pub ingest: Ingest,
    /// Where malformed frames go (none with the journal off).
    pub dead_letters: Option<Recipient<PutDeadLetters>>,
    /// The channel's counters.
    pub counters: Arc<ChannelCounters>,
    /// The channel actor.
    pub owner: Recipient<SocketEvent>,
    /// Its orders.
    pub commands: mpsc::Receiver<SocketCommand>,
}

/// Malformed frames on their way to the dead-letter table, one store
/// request at a time.
struct DeadLetters {
    to: Option<Recipient<PutDeadLetters>>,
    pending: Vec<DeadLetter>,
    in_flight: Option<LocalBoxFuture<'static, (usize, bool)>>,
    counters: Arc<ChannelCounters>,
    logged: u64,
}

impl DeadLetters {
    fn can_take_more(&self) -> bool {
        self.pending.len() < MAX_PENDING_DEAD_LETTERS
    }

    fn push(&mut self, letter: DeadLetter) {
        if self.to.is_none() {
            ChannelCounters::add(&self.counters.dead_letters_failed, 1);
            // Without the journal there is no dead-letter table: log some.
            self.logged += 1;
            if self.logged <= 10 || self.logged.is_power_of_two() {
                tracing::warn!(component = %letter.component, error = %letter.error, position = ?letter.position,
                    count = self.logged, "malformed frame (no journal: not kept)");
            }
            return;
        }
        self.pending.push(letter);
    }

    fn send_ready(&mut self) {
        if self.in_flight.is_some() || self.pending.is_empty() {
            return;
        }
        let Some(to) = self.to.clone() else { return };
        let letters = std::mem::take(&mut self.pending);
        let n = letters.len();
        self.in_flight = Some(Box::pin(async move {
            let ok = matches!(to.send(PutDeadLetters(letters)).await, Ok(Ok(_)));
            (n, ok)
        }));
    }

    async fn next_done(&mut self) {
        match self.in_flight.as_mut() {
            Some(f) => {
                let (n, ok) = f.await;
                self.in_flight = None;
                let c = if ok {
                    &self.counters.dead_lettered
                } else {
                    *self.counters.last_error.lock() = Some("the store refused dead letters".into());
                    &self.counters.dead_letters_failed
                };
                ChannelCounters::add(c, n as u64);
            }
            None => std::future::pending().await,
        }
    }

    async fn flush(&mut self) {
        loop {
            self.send_ready();
            if self.in_flight.is_none() {
                return;
            }
            self.next_done().await;
        }
    }
}

/// A socket task.
pub struct SocketTask {
    s: SocketSetup,
    reader: FrameReader,
    reassembly: Reassembly,
    commit: GroupCommit,
    dead: DeadLetters,
    frames: u64,
}

enum Step {
    Continue,
    End(Closed),
}

impl SocketTask {
    /// A task for `setup`.
    pub fn new(setup: SocketSetup) -> Self {
        let reader = FrameReader::new(
            setup.source.clone(),
            &setup.topics,
            setup.max_frame_bytes,
            format!("{}-{}", setup.channel_id, setup.generation),
        );
        SocketTask {
            reassembly: Reassembly::new(setup.max_frame_bytes),
            commit: GroupCommit::new(setup.ingest.clone(), MAX_IN_FLIGHT, MAX_BATCH)
                .with_checkpoint(setup.component.clone()),
            dead: DeadLetters {
                to: setup.dead_letters.clone(),
                pending: Vec::new(),
                in_flight: None,
                counters: setup.counters.clone(),
                logged: 0,
            },
            reader,
            frames: 0,
            s: setup,
        }
    }

    fn malformed(&mut self, reason: MalformedReason, raw: &[u8], total_len: usize) {
        self.s.counters.malformed(reason);
        let kept = &raw[..raw.len().min(DEAD_LETTER_RAW)];
        let mut letter = DeadLetter::for_raw(
            &self.s.source,
            &self.s.component,
            &format!("malformed frame: {}", reason.as_str()),
            kept,
            Some(format!(
                "channel {} socket {} frame {} ({total_len} bytes)",
                self.s.channel_id, self.s.generation, self.frames
            )),
        );
        letter.truncated |= total_len > kept.len();
        self.dead.push(letter);
    }

    fn committed(&mut self, done: Submitted) {
        let c = &self.s.counters;
        match done.result {
            Ok(receipt) => {
                ChannelCounters::add(&c.committed, receipt.accepted as u64);
                ChannelCounters::add(&c.duplicates, receipt.duplicates as u64);
            }
            Err(e) => {
                tracing::error!(component = %self.s.component, events = done.events, error = %e,
                    "events read from Genesys were refused by ingest and are lost");
                ChannelCounters::add(&c.lost, done.events as u64);
                *c.last_error.lock() = Some(format!("{} events lost: {e}", done.events));
            }
        }
    }

    /// Handles a whole text message read at `read_at_ms`: its event's
    /// `received_at`, the same instant the channel's checkpoint records as
    /// heard, so a restart's gap never starts after an event it carries.
    fn text(&mut self, bytes: Bytes, read_at_ms: i64) -> Step {
        let len = bytes.len();
        match self.reader.text(bytes.clone(), read_at_ms) {
            Classified::Event(ev) => {
                ChannelCounters::add(&self.s.counters.events, 1);
                self.commit.push(ev);
            }
            Classified::Heartbeat => ChannelCounters::add(&self.s.counters.heartbeats, 1),
            Classified::Pong => ChannelCounters::add(&self.s.counters.pongs, 1),
            Classified::Metadata => {}
            Classified::SocketClosing => {
                ChannelCounters::add(&self.s.counters.socket_closing, 1);
                // Control path: one message per announcement.
                self.s.owner.do_send(SocketEvent::Closing {
                    generation: self.s.generation,
                });
            }
            Classified::System(message) => {
                ChannelCounters::add(&self.s.counters.system[message.index()], 1);
                // Control path: one message per system message.
                self.s.owner.do_send(SocketEvent::System {
                    generation: self.s.generation,
                    message,
                    at_ms: now_ms(),
                });
            }
            Classified::Malformed(reason) => self.malformed(reason, &bytes, len),
        }
        Step::Continue
    }

    async fn frame<S>(&mut self, socket: &mut S, frame: Frame, read_at_ms: i64) -> Step
    where
        S: Sink<Message, Error = WsProtocolError> + Unpin,
    {
        self.frames += 1;
        match frame {
            Frame::Text(bytes) => {
                ChannelCounters::add(&self.s.counters.bytes, bytes.len() as u64);
                if self.reassembly.is_active() {
                    // A text frame inside a fragmented message: the pieces
                    // so far cannot be completed.
                    if let Assembled::Broken(held) = self.reassembly.push(Item::FirstText(Bytes::new())) {
                        let len = held.len();
                        self.malformed(MalformedReason::BrokenFragments, &held, len);
                    }
                    self.reassembly = Reassembly::new(self.s.max_frame_bytes);
                }
                self.text(bytes, read_at_ms)
            }
            Frame::Binary(bytes) => {
                let len = bytes.len();
                self.malformed(MalformedReason::Binary, &bytes, len);
                Step::Continue
            }
            Frame::Continuation(item) => {
                match self.reassembly.push(item) {
                    Assembled::Pending => {}
                    Assembled::Complete(bytes, false) => return self.text(bytes, read_at_ms),
                    Assembled::Complete(bytes, true) => {
                        let len = bytes.len();
                        self.malformed(MalformedReason::Binary, &bytes, len);
                    }
                    Assembled::Oversized(prefix, total) => self.malformed(MalformedReason::Oversized, &prefix, total),
                    Assembled::Broken(held) => {
                        let len = held.len();
                        self.malformed(MalformedReason::BrokenFragments, &held, len);
                    }
                }
                Step::Continue
            }
            Frame::Ping(bytes) => {
                if socket.send(Message::Pong(bytes)).await.is_err() {
                    return Step::End(Closed::Abnormal("cannot answer a ping".into()));
                }
                Step::Continue
            }
            Frame::Pong(_) => {
                ChannelCounters::add(&self.s.counters.pongs, 1);
                Step::Continue
            }
            Frame::Close(reason) => {
                // Echo the close (best effort), as RFC 6455 asks.
                let _ = socket.send(Message::Close(reason.clone())).await;
                let (code, description) = match reason {
                    Some(r) => (u16::from(r.code), r.description.unwrap_or_default()),
                    // No status code (1005): the server went away normally.
                    None => (1000, String::new()),
                };
                Step::End(Closed::Code(code, description))
            }
        }
    }

    /// Runs until the socket ends or the actor closes it.
    pub async fn run<S>(mut self, mut socket: S)
    where
        S: Stream<Item = Result<Frame, WsProtocolError>> + Sink<Message, Error = WsProtocolError> + Unpin,
    {
        let started = Instant::now();
        let silence = self.s.silence_timeout;
        let ping_every = self.s.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check =
            tokio::time::interval((silence / 8).clamp(Duration::from_millis(10), Duration::from_millis(250)));
        let mut last_frame = Instant::now();
        let mut last_frame_ms: Option<i64> = None;
        let mut retired = false;
        let mut stalled = false;
        let closed = 'outer: loop {
            let readable = self.commit.can_take_more() && self.dead.can_take_more();
            if !readable {
                stalled = true;
            } else if stalled {
                // Time spent not reading (backpressure) is not silence.
                stalled = false;
                last_frame = Instant::now();
            }
            tokio::select! {
                biased;
                command = self.s.commands.recv() => match command {
                    Some(SocketCommand::Retire) => retired = true,
                    Some(SocketCommand::Topics(t)) => self.reader.set_topics(&t),
                    // Closed on purpose, or the actor is gone: stop cleanly.
                    Some(SocketCommand::Close) | None => break Closed::ByUs,
                },
                done = self.commit.next_committed() => self.committed(done),
                _ = self.dead.next_done() => {}
                frame = socket.next(), if readable => {
                    // The burst is taken without waiting: one reading of
                    // the clocks serves all its frames (two a frame were
                    // half a percent of cxrelay's CPU on a busy channel).
                    let (now, at) = (Instant::now(), now_ms());
                    let mut next = Some(frame);
                    // A burst of frames that are already there, without a
                    // trip through the select for each.
                    for i in 0..READ_BURST {
                        let Some(frame) = next.take() else { break };
                        match frame {
                            Some(Ok(f)) => {
                                last_frame = now;
                                if last_frame_ms.is_none() {
                                    // Control path: once per socket.
                                    self.s.owner.do_send(SocketEvent::Live {
                                        generation: self.s.generation,
                                        at_ms: at,
                                    });
                                }
                                last_frame_ms = Some(at);
                                self.commit.saw_frame(at);
                                ChannelCounters::add(&self.s.counters.frames, 1);
                                if let Step::End(closed) = self.frame(&mut socket, f, at).await {
                                    break 'outer closed;
                                }
                            }
                            Some(Err(e)) => break 'outer Closed::Abnormal(format!("protocol error: {e}")),
                            None => break 'outer Closed::Abnormal("the connection ended".into()),
                        }
                        self.commit.submit_ready();
                        if i + 1 == READ_BURST || !(self.commit.can_take_more() && self.dead.can_take_more()) {
                            break;
                        }
                        next = socket.next().now_or_never();
                    }
                }
                _ = ping.tick(), if !retired => {
                    if socket.send(Message::Text(PING.into())).await.is_err() {
                        break Closed::Abnormal("cannot send a ping".into());
                    }
                    ChannelCounters::add(&self.s.counters.pings, 1);
                    self.commit.checkpoint_idle();
                }
                _ = check.tick() => {
                    if !retired && readable && last_frame.elapsed() >= silence {
                        break Closed::Silent(silence);
                    }
                }
            }
            self.commit.submit_ready();
            self.dead.send_ready();
        };
        if closed == Closed::ByUs {
            let _ = socket
                .send(Message::Close(Some(CloseReason {
                    code: CloseCode::Normal,
                    description: None,
                })))
                .await;
            let _ = socket.close().await;
        }
        drop(socket);
        // What was read is Genesys's only copy: wait a while for a store
        // that is briefly unavailable before counting it lost.
        for _ in 0..DRAIN_WAITS {
            for done in self.commit.flush().await {
                self.committed(done);
            }
            if self.commit.pending() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let left = self.commit.pending();
        if left > 0 {
            ChannelCounters::add(&self.s.counters.lost, left as u64);
            *self.s.counters.last_error.lock() = Some(format!("{left} events lost: the store stayed unavailable"));
        }
        self.dead.flush().await;
        // Control path: once per socket.
        self.s.owner.do_send(SocketEvent::Ended {
            generation: self.s.generation,
            closed,
            last_frame_ms,
            up_for: started.elapsed(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use actix_codec::{AsyncRead, Encoder, ReadBuf};
    use awc::ws::Codec;

    use super::*;

    /// A peer that has `data` ready and records the room each read offers.
    struct Peer {
        data: Vec<u8>,
        at: usize,
        offered: Vec<usize>,
    }

    impl AsyncRead for Peer {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.offered.push(buf.remaining());
            let n = buf.remaining().min(self.data.len() - self.at);
            buf.put_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    #[actix_rt::test]
    async fn a_busy_socket_is_read_in_large_pieces_for_as_long_as_it_runs() {
        let frame = format!(r#"{{"topicName":"v2.t","eventBody":{{"pad":"{}"}}}}"#, "x".repeat(1500));
        let mut server = Codec::new();
        let mut data = BytesMut::new();
        for _ in 0..400 {
            server.encode(Message::Text(frame.clone().into()), &mut data).unwrap();
        }
        let total = data.len();
        let peer = Peer {
            data: data.to_vec(),
            at: 0,
            offered: Vec::new(),
        };
        let mut socket = with_read_buffer(Framed::new(peer, Codec::new().client_mode()));
        let mut frames = 0;
        while let Some(f) = socket.next().await {
            match f.unwrap() {
                Frame::Text(b) => assert_eq!(b.len(), frame.len()),
                other => panic!("unexpected {other:?}"),
            }
            frames += 1;
        }
        assert_eq!(frames, 400);
        let offered = &socket.io_ref().offered;
        // Every read but the one that finds the end is offered nearly the
        // whole buffer (the unread part of a frame stays at its start), not
        // the client's 8 KiB.
        let full = &offered[..offered.len() - 1];
        assert!(
            full.len() <= total.div_ceil(READ_BUFFER_BYTES - 4096) + 1,
            "{offered:?}"
        );
        assert!(full.iter().all(|&n| n >= READ_BUFFER_BYTES - 4096), "{offered:?}");
    }
}
