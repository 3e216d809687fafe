//! Embedding cxrelay: start the service from a config, register your own
//! listener actor with a `Subscribe` message, and receive events.
//!
//! Run with `cargo run --example custom_listener`.

use std::time::Duration;

use actix::prelude::*;
use cxrelay::config::Loaded;
use cxrelay::service::Service;
use cxrelay_actors::{Deliver, Subscribe, WhenFull};

/// Your listener: any actor that handles `Deliver`.
struct PrintFirst {
    seen: usize,
    want: usize,
    done: Option<tokio::sync::oneshot::Sender<usize>>,
}

impl Actor for PrintFirst {
    type Context = Context<Self>;
}

impl Handler<Deliver> for PrintFirst {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
        for ev in &msg.events {
            if self.seen < self.want {
                println!("{} {} key={:?}", ev.topic, ev.id, ev.key);
            }
            self.seen += 1;
        }
        // Say the batch is handled; durable listeners do this after their
        // write is safe.
        msg.ack.ack_batch(&msg.events);
        if self.seen >= self.want {
            if let Some(done) = self.done.take() {
                let _ = done.send(self.seen);
            }
        }
    }
}

const CONFIG: &str = r#"
[service]
data_dir = "data/example"
[http]
listen = "127.0.0.1:0"

[[source]]
name = "demo"
kind = "generator"
topics = ["v2.detail.events.conversation.{key}.customer.start", "v2.users.u1.presence"]
rate = 200
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    System::new().block_on(async {
        let service = Service::start(Loaded::from_str(CONFIG, "example")?).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let me = PrintFirst {
            seen: 0,
            want: 10,
            done: Some(tx),
        }
        .start();
        let sub = service
            .router()
            .send(
                Subscribe::new("example", vec!["v2.detail.events.>".into()], me.recipient())
                    .capacity(256)
                    .when_full(WhenFull::DropOldest),
            )
            .await??;
        println!("subscribed as listener {}", sub.id);
        let seen = tokio::time::timeout(Duration::from_secs(10), rx).await??;
        println!("received {seen} events; queue: {:?}", sub.stats.snapshot());
        service.shutdown().await;
        Ok(())
    })
}
