//! The WebSocket endpoint, `GET /channels/{id}` (the channel's
//! `connectUri`; the URL is the authorisation, no header is checked).
//!
//! One socket per channel: a second connect cuts the first at once (it
//! closes with 1000; what was routed to it and not yet sent is lost). The
//! socket sends a heartbeat every `heartbeat_interval`, answers
//! `{"message":"ping"}` with a pong, carries the traffic generator's events
//! for its channel's topics, and acts out the socket faults.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Item, Message, MessageStream, Session};
use tokio::sync::mpsc;

use super::channel_record::ChannelRecord;
use super::frames::{malformed, socket_closing, HEARTBEAT, PONG};
use super::socket_messages::{Outgoing, SocketOrder};
use crate::emulator::error_body::error;
use crate::emulator::ids::random_uuid;
use crate::emulator::state::EmulatorState;

/// Event batches waiting for one socket before the generator waits.
pub(super) const SOCKET_QUEUE: usize = 8;
/// Housekeeping period (expiry, closing deadline, idle malformed frames).
const HOUSEKEEPING: Duration = Duration::from_millis(20);
/// Malformed frames sent per housekeeping tick when no traffic flows.
const IDLE_MALFORMED: u32 = 64;

enum End {
    Close(u16, String),
    Drop(String),
    ClientClosed(Option<CloseReason>),
    Gone(String),
}

/// `GET /channels/{id}`: upgrades to a WebSocket, or 404 if the channel
/// does not exist.
pub async fn connect(
    state: web::Data<Arc<EmulatorState>>,
    req: HttpRequest,
    body: web::Payload,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let n = &state.notifications;
    n.apply_pending_faults(&state.faults, &state.tokens);
    if !n.exists(&id) {
        return Ok(error(404, "not.found", &format!("Channel {id} not found")));
    }
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let (events_tx, events) = mpsc::channel(SOCKET_QUEUE);
    let (orders_tx, orders) = mpsc::channel(64);
    let Some((conn, record)) = n.attach(&id, events_tx, orders_tx) else {
        return Ok(error(404, "not.found", &format!("Channel {id} not found")));
    };
    tracing::debug!(channel = %id, conn, "emulator: socket connected");
    let socket = Socket {
        state: state.get_ref().clone(),
        id: id.into_inner(),
        conn,
        record,
        session,
        // Clients only send pings and closes.
        stream: stream.max_frame_size(64 * 1024),
        events,
        orders,
        silenced: false,
        malformed_left: 0,
        malformed_sent: 0,
        fragment_left: 0,
        closing_at: None,
        sent_since_tick: false,
    };
    actix_rt::spawn(socket.run());
    Ok(response)
}

struct Socket {
    state: Arc<EmulatorState>,
    id: String,
    conn: u64,
    record: Arc<ChannelRecord>,
    session: Session,
    stream: MessageStream,
    events: mpsc::Receiver<Outgoing>,
    orders: mpsc::Receiver<SocketOrder>,
    silenced: bool,
    malformed_left: u32,
    malformed_sent: u64,
    fragment_left: u32,
    closing_at: Option<Instant>,
    sent_since_tick: bool,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn is_ping(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(|m| m == "ping"))
        .unwrap_or(false)
}

impl Socket {
    async fn run(mut self) {
        let state = self.state.clone();
        let n = &state.notifications;
        // Faults armed before this socket existed apply to it now.
        n.apply_pending_faults(&state.faults, &state.tokens);
        let every = n.settings.heartbeat_interval.max(Duration::from_millis(10));
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let mut faults = self.state.faults.subscribe();
        // The orders channel closes when the table lets go of this socket
        // (replaced); its last orders are still read.
        let mut orders_open = true;
        let end = loop {
            tokio::select! {
                biased;
                order = self.orders.recv(), if orders_open => match order {
                    Some(order) => {
                        let end = self.order(order).await;
                        // Counted once in effect: what the socket sends next
                        // follows it.
                        self.record.count_order();
                        if let Some(end) = end {
                            break end;
                        }
                    }
                    None => orders_open = false,
                },
                out = self.events.recv() => match out {
                    Some(out) => {
                        if let Err(end) = self.send_events(out).await {
                            break end;
                        }
                    }
                    // Every sender is gone: this socket was replaced and has
                    // sent everything routed to it.
                    None => break End::Close(1000, "replaced by a new connection".into()),
                },
                msg = self.stream.recv() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if is_ping(&text) && !self.silenced {
                            if self.session.text(PONG).await.is_err() {
                                break End::Gone("socket closed".into());
                            }
                            self.record.count_pong();
                        }
                    }
                    Some(Ok(Message::Ping(bytes))) => {
                        if !self.silenced && self.session.pong(&bytes).await.is_err() {
                            break End::Gone("socket closed".into());
                        }
                    }
                    Some(Ok(Message::Close(reason))) => break End::ClientClosed(reason),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break End::Drop(format!("protocol error from the client: {e}")),
                    None => break End::Gone("the client went away".into()),
                },
                _ = heartbeat.tick() => {
                    if !self.silenced {
                        if self.session.text(HEARTBEAT).await.is_err() {
                            break End::Gone("socket closed".into());
                        }
                        self.record.count_heartbeat();
                    }
                }
                changed = faults.changed() => {
                    if changed.is_ok() {
                        n.apply_pending_faults(&state.faults, &state.tokens);
                    }
                }
                _ = housekeeping.tick() => {
                    if let Some(end) = self.housekeeping().await {
                        break end;
                    }
                }
            }
        };
        self.finish(end).await;
    }

    async fn order(&mut self, order: SocketOrder) -> Option<End> {
        tracing::debug!(channel = %self.id, conn = self.conn, ?order, "emulator: socket order");
        match order {
            SocketOrder::Close(code) => Some(End::Close(code, "closed by an injected fault".into())),
            SocketOrder::Drop => Some(End::Drop("dropped by an injected fault".into())),
            SocketOrder::Silence => {
                self.silenced = true;
                None
            }
            SocketOrder::Closing(grace) => {
                let frame = socket_closing(grace.as_millis() as u64, &random_uuid());
                if self.session.text(frame).await.is_err() {
                    return Some(End::Gone("socket closed".into()));
                }
                self.closing_at = Some(Instant::now() + grace);
                None
            }
            SocketOrder::Expired => Some(End::Close(1008, "channel expired".into())),
            SocketOrder::Evicted => Some(End::Close(
                1008,
                "channel removed: its OAuth client opened more channels than allowed".into(),
            )),
            SocketOrder::Replaced => Some(End::Close(1000, "replaced by a new connection".into())),
            SocketOrder::System(frame) => {
                if self.session.text(frame).await.is_err() {
                    return Some(End::Gone("socket closed".into()));
                }
                None
            }
            SocketOrder::Malformed(n) => {
                self.malformed_left = self.malformed_left.saturating_add(n);
                None
            }
            SocketOrder::Fragment(n) => {
                self.fragment_left = self.fragment_left.saturating_add(n);
                None
            }
        }
    }

    async fn send_malformed(&mut self) -> Result<(), End> {
        let frame = malformed(
            self.malformed_sent,
            self.state.notifications.settings.oversized_frame_bytes,
        );
        self.malformed_sent += 1;
        self.malformed_left -= 1;
        self.session
            .text(frame)
            .await
            .map_err(|_| End::Gone("socket closed".into()))?;
        self.record.count_malformed();
        Ok(())
    }

    async fn send_fragmented(&mut self, frame: String) -> Result<(), actix_ws::Closed> {
        let size = self.state.notifications.settings.fragment_bytes.max(1);
        let bytes = bytes::Bytes::from(frame);
        let mut pieces = (0..bytes.len())
            .step_by(size)
            .map(|i| bytes.slice(i..(i + size).min(bytes.len())));
        let first = pieces.next().unwrap_or_default();
        let rest: Vec<bytes::Bytes> = pieces.collect();
        self.record.count_fragmented();
        if rest.is_empty() {
            // One piece: a first frame and an empty last one.
            self.session.continuation(Item::FirstText(first)).await?;
            return self.session.continuation(Item::Last(bytes::Bytes::new())).await;
        }
        self.session.continuation(Item::FirstText(first)).await?;
        let last = rest.len() - 1;
        for (i, piece) in rest.into_iter().enumerate() {
            let item = if i == last {
                Item::Last(piece)
            } else {
                Item::Continue(piece)
            };
            self.session.continuation(item).await?;
        }
        Ok(())
    }

    async fn send_events(&mut self, out: Outgoing) -> Result<(), End> {
        if self.silenced {
            self.record.missed(out.run, out.events.iter().map(|e| e.0));
            return Ok(());
        }
        self.sent_since_tick = true;
        let mut sent = Vec::with_capacity(out.events.len());
        let mut events = out.events.into_iter();
        while let Some((index, frame)) = events.next() {
            let result = if self.fragment_left > 0 {
                self.fragment_left -= 1;
                self.send_fragmented(frame).await
            } else {
                self.session.text(frame).await
            };
            if result.is_err() {
                self.record.delivered(out.run, &sent);
                self.record
                    .missed(out.run, std::iter::once(index).chain(events.map(|e| e.0)));
                return Err(End::Gone("socket closed".into()));
            }
            sent.push((index, now_us()));
            if self.malformed_left > 0 {
                if let Err(end) = self.send_malformed().await {
                    self.record.delivered(out.run, &sent);
                    self.record.missed(out.run, events.map(|e| e.0));
                    return Err(end);
                }
            }
        }
        self.record.delivered(out.run, &sent);
        Ok(())
    }

    async fn housekeeping(&mut self) -> Option<End> {
        let now = Instant::now();
        if self.closing_at.is_some_and(|t| now >= t) {
            return Some(End::Close(1001, "closed for maintenance".into()));
        }
        let n = &self.state.notifications;
        match n.expires(&self.id) {
            // Removed: its order (expired, evicted) is on its way.
            None => {}
            Some(t) if t <= now => {
                // Purging sends this socket its `Expired` order.
                let _ = n.exists(&self.id);
            }
            Some(_) => {}
        }
        if !self.sent_since_tick && !self.silenced {
            // No traffic to interleave with: send the malformed frames now.
            for _ in 0..IDLE_MALFORMED.min(self.malformed_left) {
                if let Err(end) = self.send_malformed().await {
                    return Some(end);
                }
            }
        }
        self.sent_since_tick = false;
        None
    }

    async fn finish(mut self, end: End) {
        let n = &self.state.notifications;
        n.detach(&self.id, self.conn);
        let (code, reason) = match end {
            End::Close(code, reason) => {
                let close = CloseReason {
                    code: CloseCode::from(code),
                    description: Some(reason.clone()),
                };
                let _ = self.session.close(Some(close)).await;
                (Some(code), reason)
            }
            End::Drop(reason) => {
                // No close frame: the client sees the connection end (1006).
                drop(self.session);
                drop(self.stream);
                (None, reason)
            }
            End::ClientClosed(reason) => {
                let code = reason.as_ref().map(|r| u16::from(r.code));
                let _ = self.session.close(reason).await;
                (
                    None,
                    format!(
                        "closed by the client ({})",
                        code.map_or("no code".into(), |c| c.to_string())
                    ),
                )
            }
            End::Gone(reason) => (None, reason),
        };
        tracing::debug!(channel = %self.id, conn = self.conn, ?code, %reason, "emulator: socket ended");
        self.record.closed(code, &reason);
        // Whatever was routed here and not sent is missed.
        self.events.close();
        while let Ok(out) = self.events.try_recv() {
            self.record.missed(out.run, out.events.iter().map(|e| e.0));
        }
    }
}
