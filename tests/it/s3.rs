//! A throwaway S3-compatible server for the tests: moto's server mode
//! (PyPI `moto[server]`) on a free loopback port, killed when dropped.
//! Missing outside CI: a loud SKIPPED; in CI (`CI` set): a failure.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};

/// The credentials the tests give cxrelay (moto takes any).
pub const ACCESS_KEY_ID: &str = "AKIACXRELAYTESTKEY01";
/// The secret half: it must never show in logs or `/status`.
pub const SECRET_ACCESS_KEY: &str = "cxrelay-test-secret-key-do-not-show";

/// A running moto server.
pub struct Moto {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its address on 127.0.0.1.
    pub addr: SocketAddr,
}

/// How to start moto: `moto_server` on PATH, else the module.
fn moto_command() -> Option<Command> {
    let on_path =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("moto_server").is_file()));
    if on_path {
        return Some(Command::new("moto_server"));
    }
    let module = Command::new("python3")
        .args(["-c", "import moto.server, flask"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    module.then(|| {
        let mut c = Command::new("python3");
        c.args(["-m", "moto.server"]);
        c
    })
}

impl Moto {
    /// Starts moto, or answers `None` after a loud notice when it is not
    /// installed. In CI (`CI` set) a missing moto fails the test instead.
    pub fn start() -> Option<Moto> {
        let Some(mut cmd) = moto_command() else {
            let notice =
                "SKIPPED: moto not found (no moto_server on PATH, no python3 module; pip install 'moto[server]')";
            assert!(std::env::var_os("CI").is_none(), "{notice}, and CI is set");
            eprintln!("\n*** {notice} ***\n");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("cxrelay-moto-").tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let child = cmd
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting moto");
        let mut m = Moto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&m.addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("moto exited with {status}: {}", m.log());
            }
            assert!(Instant::now() < deadline, "moto did not start: {}", m.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(m)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("moto.log")).unwrap_or_default()
    }

    /// The endpoint to give the sink.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of `bucket` on this server.
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        // reqwest is built without a bundled provider: cxrelay's (ring).
        cxrelay::telemetry::install_tls_provider();
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_bucket_name(bucket)
                .with_access_key_id(ACCESS_KEY_ID)
                .with_secret_access_key(SECRET_ACCESS_KEY)
                .build()
                .unwrap(),
        )
    }

    /// Creates `bucket` (a path-style `PUT /bucket`).
    pub fn create_bucket(&self, bucket: &str) {
        let r = crate::common::request(self.addr, "PUT", &format!("/{bucket}"), &[], b"").unwrap();
        assert_eq!(r.status, 200, "creating bucket {bucket}: {}", r.text());
    }

    /// Every object in `bucket` with its bytes, sorted by key.
    pub fn objects(&self, bucket: &str) -> Vec<(String, Vec<u8>)> {
        let store = self.store(bucket);
        block_on(async move {
            use futures_util::TryStreamExt;
            let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
            let mut out = Vec::new();
            for m in metas {
                let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
                out.push((m.location.to_string(), bytes.to_vec()));
            }
            out.sort();
            out
        })
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub fn open_uploads(&self, bucket: &str) -> usize {
        let r = crate::common::request(self.addr, "GET", &format!("/{bucket}?uploads"), &[], b"").unwrap();
        r.text().matches("<UploadId>").count()
    }
}

/// Runs `fut` on a throwaway runtime.
pub fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
