//! The http sink's decisions, without the service: what each answer of a
//! scripted target becomes (a [`SinkError`] variant, a wait, a breaker
//! state), and how the sink actor acts on those variants (waits, pauses,
//! dead letters at once).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use cxrelay_actors::queue::QueueStats;
use cxrelay_actors::registry::{ComponentState, Registry};
use cxrelay_actors::router::AckHandle;
use cxrelay_actors::{Deliver, Event};
use futures_util::future::LocalBoxFuture;
use parking_lot::Mutex;

use super::*;
use crate::sinks::{SinkActor, SinkOptions};
use crate::store::{DeadLetter, PutDeadLetters};

/// A target answering each request with the next scripted answer (then
/// 200), recording when each request came.
struct Scripted {
    addr: SocketAddr,
    times: Arc<Mutex<Vec<Instant>>>,
    heads: Arc<Mutex<Vec<String>>>,
}

fn scripted(answers: &[&str]) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answers: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(answers.iter().map(|a| a.to_string()).collect()));
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let (t, h) = (times.clone(), heads.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let (answers, t, h) = (answers.clone(), t.clone(), h.clone());
            std::thread::spawn(move || loop {
                // One request: its head, then Content-Length bytes.
                let mut raw = Vec::new();
                let mut byte = [0u8; 1];
                while !raw.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    raw.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&raw).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                if conn.read_exact(&mut body).is_err() {
                    return;
                }
                t.lock().push(Instant::now());
                h.lock().push(head);
                let answer = answers
                    .lock()
                    .pop_front()
                    .unwrap_or_else(|| "200 OK\r\nContent-Length: 2\r\n\r\nok".into());
                if conn.write_all(format!("HTTP/1.1 {answer}").as_bytes()).is_err() {
                    return;
                }
            });
        }
    });
    Scripted { addr, times, heads }
}

fn settings(addr: SocketAddr) -> Arc<HttpSettings> {
    Arc::new(HttpSettings {
        url: format!("http://{addr}/in?token=hunter2"),
        timeout: Duration::from_secs(5),
        headers: vec![(HeaderName::from_static("x-api-key"), HeaderValue::from_static("k-123"))],
        format: BodyFormat::Ndjson,
        compression: Compression::None,
        retry_after_max: Duration::from_secs(3),
    })
}

fn batch() -> Vec<Arc<Event>> {
    (0..3)
        .map(|i| Arc::new(Event::builder("gen", "a.b").id(format!("e{i}")).seq(i + 1).build()))
        .collect()
}

#[actix::test]
async fn each_answer_becomes_the_error_that_tells_the_actor_what_to_do() {
    let target = scripted(&[
        "400 Bad Request\r\nContent-Length: 20\r\n\r\n{\"error\":\"bad time\"}",
        "429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
        "503 Service Unavailable\r\nRetry-After: 99999\r\nContent-Length: 4\r\n\r\nbusy",
        "302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
        "408 Request Timeout\r\nContent-Length: 0\r\n\r\n",
    ]);
    let shared = Arc::new(Shared::new(None, 0, Duration::from_secs(1)));
    let mut w = HttpWriter::new(settings(target.addr), shared.clone());
    let b = batch();

    let e = w.commit(&b).await.unwrap_err();
    assert!(
        matches!(&e, SinkError::Rejected(inner) if matches!(**inner, SinkError::Http { status: 400, .. })),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("HTTP 400") && text.contains("bad time") && text.contains("not retried"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "the URL's query is never shown: {text}");

    let e = w.commit(&b).await.unwrap_err();
    assert!(
        matches!(e, SinkError::RetryAfter { wait, .. } if wait == Duration::from_secs(1)),
        "{e:?}"
    );
    // Inside the window nothing is sent.
    let e = w.commit(&b).await.unwrap_err();
    assert!(
        matches!(e, SinkError::RetryAfter { wait, .. } if wait <= Duration::from_secs(1)),
        "{e:?}"
    );
    assert_eq!(target.times.lock().len(), 2);
    tokio::time::sleep(Duration::from_millis(1050)).await;

    // A 503's wait is capped at retry_after_max.
    let e = w.commit(&b).await.unwrap_err();
    assert!(
        matches!(e, SinkError::RetryAfter { wait, .. } if wait == Duration::from_secs(3)),
        "{e:?}"
    );
    *shared.not_before.lock() = None;

    let e = w.commit(&b).await.unwrap_err();
    assert!(
        matches!(e, SinkError::Http { status: 302, .. }),
        "a redirect is retried: {e:?}"
    );
    let e = w.commit(&b).await.unwrap_err();
    assert!(
        matches!(e, SinkError::Http { status: 408, .. }),
        "408 is retried: {e:?}"
    );
    w.commit(&b).await.unwrap();

    let heads = target.heads.lock();
    assert!(heads
        .iter()
        .all(|h| h.to_ascii_lowercase().contains("x-api-key: k-123")));
    assert!(heads[0].contains("POST /in?token=hunter2"));
    // Status shows header names, never their values.
    let shown = w.describe().to_string();
    assert!(
        shown.contains("x-api-key") && !shown.contains("k-123") && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[actix::test]
async fn the_breaker_opens_after_failures_in_a_row_and_one_trial_closes_it() {
    let fail = "500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops";
    let target = scripted(&[fail, fail, fail]);
    let shared = Arc::new(Shared::new(None, 2, Duration::from_millis(400)));
    let mut w = HttpWriter::new(settings(target.addr), shared);
    let b = batch();
    assert!(matches!(w.commit(&b).await, Err(SinkError::Http { status: 500, .. })));
    let e = w.commit(&b).await.unwrap_err();
    assert!(
        matches!(e, SinkError::Paused { wait, .. } if wait == Duration::from_millis(400)),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("circuit breaker open") && e.to_string().contains("HTTP 500"),
        "{e}"
    );
    // Open: nothing goes out.
    assert!(matches!(w.commit(&b).await, Err(SinkError::Paused { .. })));
    assert_eq!(target.times.lock().len(), 2);
    // After the cool-down one trial goes; it fails and the breaker opens again.
    tokio::time::sleep(Duration::from_millis(420)).await;
    assert!(matches!(w.commit(&b).await, Err(SinkError::Paused { .. })));
    assert_eq!(target.times.lock().len(), 3);
    tokio::time::sleep(Duration::from_millis(420)).await;
    w.commit(&b).await.unwrap();
    assert_eq!(w.describe()["breaker"], "closed");
}

#[actix::test]
async fn the_rate_limit_spaces_requests() {
    let target = scripted(&[]);
    let shared = Arc::new(Shared::new(Some(20.0), 0, Duration::from_secs(1)));
    let mut w = HttpWriter::new(settings(target.addr), shared);
    let b = batch();
    let t = Instant::now();
    for _ in 0..11 {
        w.commit(&b).await.unwrap();
    }
    // 20/s, no burst: the 11th request no sooner than 500 ms after the first.
    assert!(t.elapsed() >= Duration::from_millis(490), "{:?}", t.elapsed());
    // Arrival times carry the loopback's jitter, so only the span is
    // checked, with room for one late first arrival.
    let times = target.times.lock();
    assert!(times[10] - times[0] >= Duration::from_millis(440), "{times:?}");
}

/// A writer answering from a script, recording when it was asked.
struct ScriptedWriter {
    answers: Arc<Mutex<VecDeque<Result<(), SinkError>>>>,
    asked: Arc<Mutex<Vec<Instant>>>,
}

impl SinkWriter for ScriptedWriter {
    fn commit(&mut self, _: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        self.asked.lock().push(Instant::now());
        let answer = self.answers.lock().pop_front().unwrap_or(Ok(()));
        Box::pin(std::future::ready(answer))
    }
}

/// Keeps what it is given.
struct Letters(Arc<Mutex<Vec<DeadLetter>>>);

impl Actor for Letters {
    type Context = Context<Self>;
}

impl Handler<PutDeadLetters> for Letters {
    type Result = Result<Vec<u64>, String>;
    fn handle(&mut self, msg: PutDeadLetters, _: &mut Self::Context) -> Self::Result {
        let mut kept = self.0.lock();
        kept.extend(msg.0);
        Ok((0..kept.len() as u64).collect())
    }
}

struct Run {
    registry: Registry,
    asked: Arc<Mutex<Vec<Instant>>>,
    letters: Arc<Mutex<Vec<DeadLetter>>>,
    stats: Arc<QueueStats>,
}

/// A sink actor around a writer answering `answers`, given one batch.
fn run(answers: Vec<Result<(), SinkError>>, dead_letters: bool) -> Run {
    let registry = Registry::new();
    let component = registry.register("web", cxrelay_actors::ComponentKind::Listener, true);
    let letters: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let opts = SinkOptions {
        batch_events: 3,
        dead_letters: dead_letters.then(|| Letters(letters.clone()).start().recipient()),
        retry: cxrelay_actors::retry::BackoffPolicy {
            initial: Duration::from_millis(10),
            multiplier: 1.0,
            max: Duration::from_millis(10),
            randomization: 0.0,
            full_jitter: false,
        },
        // Short, so that a long wait shows it is not taken for a hang.
        stuck_after: Duration::from_millis(200),
        ..SinkOptions::default()
    };
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let asked: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let a = (answers, asked.clone());
    let sink = SinkActor::new(opts, component, move || {
        Ok(ScriptedWriter {
            answers: a.0.clone(),
            asked: a.1.clone(),
        })
    })
    .start();
    let stats = QueueStats::new(10);
    let deliver = Deliver {
        listener: 1,
        events: batch(),
        ack: AckHandle::new(stats.clone()),
    };
    sink.do_send(deliver);
    Run {
        registry,
        asked,
        letters,
        stats,
    }
}

fn http(status: u16) -> SinkError {
    SinkError::Http {
        status,
        url: "http://t/".into(),
        body: "no".into(),
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix::test]
async fn the_actor_waits_as_long_as_a_retry_after_says() {
    let wait = Duration::from_millis(600);
    let r = run(
        vec![Err(SinkError::RetryAfter {
            wait,
            error: Box::new(http(429)),
        })],
        true,
    );
    let c = r.registry.get("web").unwrap();
    until("the second attempt", || r.asked.lock().len() == 2).await;
    let asked = r.asked.lock().clone();
    assert!(asked[1] - asked[0] >= wait, "{:?}", asked[1] - asked[0]);
    until("committed", || c.state() == ComponentState::Running).await;
    assert!(r.letters.lock().is_empty());
}

#[actix::test]
async fn a_rejected_batch_goes_to_dead_letters_at_once_with_the_answer() {
    let r = run(vec![Err(SinkError::Rejected(Box::new(http(422))))], true);
    until("dead-lettered", || r.letters.lock().len() == 3).await;
    let letters = r.letters.lock().clone();
    assert_eq!(letters[0].attempts, 1);
    assert!(letters[0].error.contains("HTTP 422") && letters[0].error.contains("not retried"));
    assert_eq!(r.asked.lock().len(), 1, "never retried");
    until("acknowledged", || r.stats.snapshot().acked_seq == 3).await;
}

#[actix::test]
async fn without_dead_letters_a_rejected_batch_is_held_and_retried() {
    let r = run(vec![Err(SinkError::Rejected(Box::new(http(400))))], false);
    until("retried and written", || r.asked.lock().len() == 2).await;
    until("acknowledged", || r.stats.snapshot().acked_seq == 3).await;
}

#[actix::test]
async fn a_paused_sink_is_not_ready_until_a_write_succeeds() {
    let r = run(
        vec![Err(SinkError::Paused {
            wait: Duration::from_millis(700),
            reason: "circuit breaker open".into(),
        })],
        true,
    );
    let c = r.registry.get("web").unwrap();
    until("paused", || c.state() == ComponentState::Paused).await;
    let progress = c.progress_handle();
    let done_at_pause = progress.sample().done;
    let not_ready = r.registry.not_ready();
    assert_eq!(not_ready.len(), 1);
    assert_eq!(not_ready[0].0, "web");
    assert!(not_ready[0].1.contains("circuit breaker open"), "{not_ready:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Waiting 700 ms with stuck_after at 200 ms: progress is reported all
    // along, so a supervisor does not take the wait for a hung write.
    assert!(progress.sample().done > done_at_pause, "no progress while waiting");
    until("written", || r.asked.lock().len() == 2).await;
    until("ready again", || c.state() == ComponentState::Running).await;
    assert!(r.registry.not_ready().is_empty());
}
