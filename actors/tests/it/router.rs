use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use cxrelay_actors::router::{ListListeners, PublishOutcome};
use cxrelay_actors::{Deliver, Event, Publish, Router, Subscribe, Unsubscribe, WhenFull};
use tokio::sync::watch;

use crate::common::wait_for;

/// A listener that holds each batch until its gate opens.
struct Gated {
    open: watch::Receiver<bool>,
    received: Arc<AtomicUsize>,
}

impl Actor for Gated {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Gated {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) -> Self::Result {
        let mut open = self.open.clone();
        let received = self.received.clone();
        Box::pin(async move {
            let _ = open.wait_for(|o| *o).await;
            received.fetch_add(msg.events.len(), Ordering::SeqCst);
        })
    }
}

/// A listener that counts and can be told to stop.
struct Counting {
    received: Arc<AtomicUsize>,
}
impl Actor for Counting {
    type Context = Context<Self>;
}
impl Counting {
    /// A started listener counting into `received`.
    fn start_counting(received: &Arc<AtomicUsize>) -> Addr<Counting> {
        Counting {
            received: received.clone(),
        }
        .start()
    }
}
impl Handler<Deliver> for Counting {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
        self.received.fetch_add(msg.events.len(), Ordering::SeqCst);
    }
}
#[derive(Message)]
#[rtype(result = "()")]
struct Die;
impl Handler<Die> for Counting {
    type Result = ();
    fn handle(&mut self, _: Die, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

fn batch(start: usize, n: usize, payload: &bytes::Bytes) -> Vec<Arc<Event>> {
    (start..start + n)
        .map(|i| {
            Arc::new(
                Event::builder("test", "calls.queue.a")
                    .id(i.to_string())
                    .seq(i as u64 + 1)
                    .payload(payload.clone())
                    .build(),
            )
        })
        .collect()
}

#[actix::test]
async fn drop_newest_bounds_memory_under_a_million_events() {
    let router = Router::new().start();
    let (_gate, open) = watch::channel(false);
    let received = Arc::new(AtomicUsize::new(0));
    let listener = Gated {
        open,
        received: received.clone(),
    }
    .start();
    let sub = router
        .send(
            Subscribe::new("never-reads", vec!["calls.>".into()], listener.recipient())
                .capacity(1000)
                .when_full(WhenFull::DropNewest)
                .batch_max(100),
        )
        .await
        .unwrap()
        .unwrap();
    let payload = bytes::Bytes::from(vec![b'1'; 1024]);
    let total = 1_000_000;
    let mut max_depth = 0;
    for start in (0..total).step_by(10_000) {
        let out = router
            .send(Publish {
                events: batch(start, 10_000, &payload),
            })
            .await
            .unwrap();
        assert_eq!(
            out,
            PublishOutcome {
                routed: 10_000,
                unrouted: 0
            }
        );
        max_depth = max_depth.max(sub.stats.depth());
    }
    let s = sub.stats.snapshot();
    assert!(
        max_depth <= 1000 && s.high_water <= 1000,
        "depth exceeded its bound: {s:?}"
    );
    // One batch is held by the listener; everything beyond the bound and
    // that batch was dropped, and counted.
    let held = s.depth + s.in_flight;
    assert_eq!(held, 1000 + 100);
    assert_eq!(s.dropped_queue_full as usize, total - held);
    assert_eq!(received.load(Ordering::SeqCst), 0);
}

#[actix::test]
async fn block_holds_the_publisher_and_drops_nothing() {
    let router = Router::new().start();
    let (gate, open) = watch::channel(false);
    let received = Arc::new(AtomicUsize::new(0));
    let listener = Gated {
        open,
        received: received.clone(),
    }
    .start();
    let sub = router
        .send(
            Subscribe::new("slow", vec!["calls.*.a".into()], listener.recipient())
                .capacity(100)
                .when_full(WhenFull::Block)
                .batch_max(10),
        )
        .await
        .unwrap()
        .unwrap();
    let payload = bytes::Bytes::from_static(b"{}");
    // 110 fit (100 queued + 10 in flight); the next publish must wait.
    router
        .send(Publish {
            events: batch(0, 110, &payload),
        })
        .await
        .unwrap();
    wait_for("queue full", Duration::from_secs(5), || async {
        sub.stats.depth() == 100
    })
    .await;
    let held = router.send(Publish {
        events: batch(110, 1000, &payload),
    });
    let held = tokio::spawn(held);
    wait_for("publisher blocked", Duration::from_secs(5), || async {
        sub.stats.snapshot().blocked
    })
    .await;
    assert!(!held.is_finished(), "publisher must wait while the listener is full");
    gate.send(true).unwrap();
    held.await.unwrap().unwrap();
    wait_for("all delivered", Duration::from_secs(5), || async {
        received.load(Ordering::SeqCst) == 1110
    })
    .await;
    let s = sub.stats.snapshot();
    assert_eq!((s.dropped(), s.delivered), (0, 1110));
    assert!(s.high_water <= 100);
}

#[actix::test]
async fn order_is_kept_per_listener_through_blocking() {
    #[derive(Default)]
    struct Recorder(Arc<parking_lot::Mutex<Vec<u64>>>);
    impl Actor for Recorder {
        type Context = Context<Self>;
    }
    impl Handler<Deliver> for Recorder {
        type Result = ();
        fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
            self.0.lock().extend(msg.events.iter().map(|e| e.seq));
        }
    }
    let router = Router::new().start();
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let r = Recorder(seen.clone()).start();
    router
        .send(
            Subscribe::new("rec", vec![">".into()], r.recipient())
                .capacity(3)
                .batch_max(2),
        )
        .await
        .unwrap()
        .unwrap();
    let payload = bytes::Bytes::from_static(b"1");
    for start in (0..500).step_by(50) {
        router
            .send(Publish {
                events: batch(start, 50, &payload),
            })
            .await
            .unwrap();
    }
    wait_for("all seen", Duration::from_secs(5), || async {
        seen.lock().len() == 500
    })
    .await;
    assert_eq!(*seen.lock(), (1..=500).collect::<Vec<u64>>());
}

#[actix::test]
async fn a_dead_listener_is_pruned_and_counted() {
    let router = Router::new().start();
    let received = Arc::new(AtomicUsize::new(0));
    let a = Counting::start_counting(&received);
    let b = Counting::start_counting(&received);
    router
        .send(Subscribe::new("a", vec!["x.>".into()], a.clone().recipient()))
        .await
        .unwrap()
        .unwrap();
    router
        .send(Subscribe::new("b", vec!["x.>".into()], b.recipient()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(router.send(ListListeners).await.unwrap().len(), 2);
    a.send(Die).await.unwrap();
    drop(a);
    // No traffic needed: the router notices on its own.
    wait_for("dead listener pruned", Duration::from_secs(5), || {
        let router = router.clone();
        async move { router.send(ListListeners).await.unwrap().len() == 1 }
    })
    .await;
    let left = router.send(ListListeners).await.unwrap();
    assert_eq!(left[0].name, "b");
    let stats = router.send(cxrelay_actors::router::Drain {
        timeout: Duration::from_secs(1),
    });
    assert!(stats.await.unwrap());
}

#[actix::test]
async fn unsubscribe_and_unrouted_events() {
    let router = Router::new().start();
    let received = Arc::new(AtomicUsize::new(0));
    let a = Counting::start_counting(&received);
    let sub = router
        .send(Subscribe::new("a", vec!["only.this".into()], a.recipient()))
        .await
        .unwrap()
        .unwrap();
    let ev = |t: &str| Arc::new(Event::builder("s", t).build());
    let out = router
        .send(Publish {
            events: vec![ev("only.this"), ev("other.topic")],
        })
        .await
        .unwrap();
    assert_eq!(out, PublishOutcome { routed: 1, unrouted: 1 });
    assert!(router.send(Unsubscribe(sub.id)).await.unwrap());
    let out = router
        .send(Publish {
            events: vec![ev("only.this")],
        })
        .await
        .unwrap();
    assert_eq!(out.unrouted, 1);
    assert!(router.send(ListListeners).await.unwrap().is_empty());
}

#[actix::test]
async fn routes_follow_subscriptions_when_every_event_has_a_topic_of_its_own() {
    let router = Router::new().start();
    let (a_got, b_got) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a = Counting::start_counting(&a_got);
    let b = Counting::start_counting(&b_got);
    let sub_a = router
        .send(Subscribe::new("a", vec!["conv.>".into()], a.recipient()))
        .await
        .unwrap()
        .unwrap();
    let ev = |i: usize| Arc::new(Event::builder("s", format!("conv.{i}.end")).build());
    // More distinct topics than the route cache holds, in batches.
    for start in (0..10_000).step_by(500) {
        let out = router
            .send(Publish {
                events: (start..start + 500).map(ev).collect(),
            })
            .await
            .unwrap();
        assert_eq!(
            out,
            PublishOutcome {
                routed: 500,
                unrouted: 0
            }
        );
    }
    // Topics routed before reach a listener subscribed since.
    router
        .send(Subscribe::new("b", vec!["conv.*.end".into()], b.recipient()))
        .await
        .unwrap()
        .unwrap();
    router
        .send(Publish {
            events: (9_990..10_000).map(ev).collect(),
        })
        .await
        .unwrap();
    wait_for("both listeners' events", Duration::from_secs(10), || {
        let (a, b) = (a_got.load(Ordering::SeqCst), b_got.load(Ordering::SeqCst));
        async move { a == 10_010 && b == 10 }
    })
    .await;
    // And not a listener gone since.
    assert!(router.send(Unsubscribe(sub_a.id)).await.unwrap());
    let out = router
        .send(Publish {
            events: vec![ev(1), ev(2)],
        })
        .await
        .unwrap();
    assert_eq!(out, PublishOutcome { routed: 2, unrouted: 0 });
    wait_for("the remaining listener's events", Duration::from_secs(10), || {
        let b = b_got.load(Ordering::SeqCst);
        async move { b == 12 }
    })
    .await;
    assert_eq!(a_got.load(Ordering::SeqCst), 10_010);
}

#[actix::test]
async fn bad_patterns_are_refused() {
    let router = Router::new().start();
    let a = Counting::start_counting(&Arc::default());
    let r = router
        .send(Subscribe::new("a", vec!["a.>.b".into()], a.recipient()))
        .await
        .unwrap();
    assert!(r.is_err());
}

#[actix::test]
async fn a_kept_listener_hands_its_queue_and_in_flight_batch_to_a_replacement() {
    struct Crashy;
    impl Actor for Crashy {
        type Context = Context<Self>;
    }
    impl Handler<Deliver> for Crashy {
        type Result = ();
        fn handle(&mut self, _: Deliver, _: &mut Self::Context) {
            panic!("sink bug");
        }
    }
    struct Recorder(Arc<parking_lot::Mutex<Vec<u64>>>);
    impl Actor for Recorder {
        type Context = Context<Self>;
    }
    impl Handler<Deliver> for Recorder {
        type Result = ();
        fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
            self.0.lock().extend(msg.events.iter().map(|e| e.seq));
        }
    }
    let router = Router::new().start();
    let sub = |r: Recipient<Deliver>| {
        Subscribe::new("durable", vec![">".into()], r)
            .capacity(100)
            .batch_max(10)
            .keep_when_gone(true)
    };
    let first = router.send(sub(Crashy.start().recipient())).await.unwrap().unwrap();
    let payload = bytes::Bytes::from_static(b"1");
    router
        .send(Publish {
            events: batch(0, 50, &payload),
        })
        .await
        .unwrap();
    wait_for("orphaned", Duration::from_secs(5), || {
        let router = router.clone();
        async move { router.send(ListListeners).await.unwrap()[0].orphaned }
    })
    .await;
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let second = router
        .send(sub(Recorder(seen.clone()).start().recipient()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, first.id, "same listener, same queue");
    router
        .send(Publish {
            events: batch(50, 50, &payload),
        })
        .await
        .unwrap();
    wait_for("all seen", Duration::from_secs(5), || async {
        seen.lock().len() == 100
    })
    .await;
    assert_eq!(
        *seen.lock(),
        (1..=100).collect::<Vec<u64>>(),
        "nothing lost, order kept"
    );
    assert_eq!(second.stats.snapshot().dropped(), 0);
}

#[actix::test]
async fn a_kept_listener_replaced_while_its_actor_is_stuck_hands_over_queue_and_waiting_batch() {
    /// Takes the first batch, then hangs: its mailbox is never read again.
    struct Hangs(Arc<parking_lot::Mutex<Vec<u64>>>);
    impl Actor for Hangs {
        type Context = Context<Self>;
    }
    impl Handler<Deliver> for Hangs {
        type Result = ();
        fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
            self.0.lock().extend(msg.events.iter().map(|e| e.seq));
            ctx.wait(actix::fut::wrap_future(std::future::pending::<()>()));
        }
    }
    struct Recorder(Arc<parking_lot::Mutex<Vec<u64>>>);
    impl Actor for Recorder {
        type Context = Context<Self>;
    }
    impl Handler<Deliver> for Recorder {
        type Result = ();
        fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
            self.0.lock().extend(msg.events.iter().map(|e| e.seq));
        }
    }
    let router = Router::new().start();
    let sub = |r: Recipient<Deliver>| {
        Subscribe::new("durable", vec![">".into()], r)
            .capacity(100)
            .batch_max(10)
            .keep_when_gone(true)
    };
    let taken = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let stuck = Hangs(taken.clone()).start();
    let first = router.send(sub(stuck.clone().recipient())).await.unwrap().unwrap();
    let payload = bytes::Bytes::from_static(b"1");
    router
        .send(Publish {
            events: batch(0, 50, &payload),
        })
        .await
        .unwrap();
    // The first batch is taken; the second waits in the stuck mailbox.
    wait_for("first batch taken", Duration::from_secs(5), || async {
        taken.lock().len() == 10
    })
    .await;
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let second = router
        .send(sub(Recorder(seen.clone()).start().recipient()))
        .await
        .unwrap()
        .unwrap();
    assert!(stuck.connected(), "the old actor is still there");
    assert_eq!(second.id, first.id, "same listener, same queue");
    router
        .send(Publish {
            events: batch(50, 50, &payload),
        })
        .await
        .unwrap();
    wait_for("the rest seen", Duration::from_secs(5), || async {
        seen.lock().len() == 90
    })
    .await;
    assert_eq!(
        *seen.lock(),
        (11..=100).collect::<Vec<u64>>(),
        "from the waiting batch on, in order"
    );
    assert_eq!(router.send(ListListeners).await.unwrap().len(), 1, "no second queue");
}
