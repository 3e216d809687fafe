//! Shared helpers for the black-box tests: run the binary, talk HTTP to
//! it, read its output files, wait on conditions with deadlines.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Waits, in an async test, until `cond` answers true, for up to 20 s.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `cond` until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP response, as much as the tests need.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    // A whole URL goes to its own host (the emulator serves logins,
    // downloads and sockets on hosts of their own, as the platform does).
    let (addr, path) = match path.strip_prefix("http://").and_then(|rest| rest.split_once('/')) {
        Some((host, rest)) => match host.parse::<SocketAddr>() {
            Ok(a) => (a, format!("/{rest}")),
            Err(_) => (addr, path.to_string()),
        },
        None => (addr, path.to_string()),
    };
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Ok(Response { status, headers, body })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = nl + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
}

/// GET `path`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The binary under test: this build's, or the one `CXRELAY_TEST_BIN`
/// names (the ignored benchmarks measure a release build that way).
pub fn binary() -> PathBuf {
    std::env::var_os("CXRELAY_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cxrelay")))
}

/// A running cxrelay process with its own directory.
pub struct Proc {
    pub child: Child,
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

/// Config preamble: data under `dir`, HTTP on a free port, JSON logs.
pub fn preamble(dir: &Path) -> String {
    format!(
        "[service]\ndata_dir = \"{}\"\nlog_format = \"json\"\nlog_level = \"info\"\nshutdown_timeout = \"20s\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n",
        dir.join("data").display()
    )
}

impl Proc {
    /// Writes `config` into `dir/config.toml` and starts `cxrelay run`.
    pub fn start(dir: &Path, config: &str) -> Proc {
        Self::start_with(dir, config, &[])
    }

    /// Like [`Proc::start`] with extra environment variables.
    pub fn start_with(dir: &Path, config: &str, env: &[(&str, &str)]) -> Proc {
        Self::start_command(dir, config, env, "run")
    }

    /// Writes `config` into `dir/config.toml` and starts `cxrelay <command>`.
    pub fn start_command(dir: &Path, config: &str, env: &[(&str, &str)], command: &str) -> Proc {
        fs::create_dir_all(dir).unwrap();
        let cfg = dir.join("config.toml");
        fs::write(&cfg, config).unwrap();
        let n = fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("cxrelay-"))
            })
            .count();
        let log = dir.join(format!("cxrelay-{n}.log"));
        let mut cmd = Command::new(binary());
        cmd.arg(command)
            .arg("--config")
            .arg(&cfg)
            .current_dir(dir)
            .stdout(Stdio::from(
                fs::File::create(dir.join(format!("cxrelay-{n}.stdout"))).unwrap(),
            ))
            .stderr(Stdio::from(fs::File::create(&log).unwrap()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting cxrelay");
        let mut p = Proc {
            child,
            dir: dir.to_path_buf(),
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = p.find_listen_addr() {
                p.addr = addr;
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("cxrelay exited with {status} before listening:\n{}", p.log_text());
            }
            assert!(Instant::now() < deadline, "cxrelay did not start:\n{}", p.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn find_listen_addr(&self) -> Option<SocketAddr> {
        let text = fs::read_to_string(&self.log).ok()?;
        text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v.get("message")?
                .as_str()?
                .strip_prefix("http server listening on ")?
                .parse()
                .ok()
        })
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.addr, path)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        signal(&self.child, "TERM");
        let status = wait_exit(&mut self.child, Duration::from_secs(60));
        if !status.success() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("cxrelay exited with {status}; last log lines:");
            for l in tail.iter().rev() {
                eprintln!("  {l}");
            }
        }
        status
    }

    /// `kill -9`, and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // The test failed: show what the service said.
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for l in tail.iter().rev() {
                eprintln!("  {}", &l[..l.len().min(400)]);
            }
        }
    }
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{sig} failed");
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "process did not exit within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every complete NDJSON line in every file under `dir`, parsed, in file
/// name order.
pub fn read_ndjson_dir(dir: &Path) -> Vec<serde_json::Value> {
    // A file renamed while the directory is read (a part file closed) is
    // read again under its new name: the listing starts over.
    'listing: loop {
        let Ok(rd) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let bytes = match fs::read(&f) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue 'listing,
                Err(_) => continue,
            };
            for line in bytes.split_inclusive(|b| *b == b'\n') {
                if !line.ends_with(b"\n") {
                    continue; // being written right now
                }
                out.push(
                    serde_json::from_slice(line).unwrap_or_else(|e| {
                        panic!("bad line in {}: {e}: {}", f.display(), String::from_utf8_lossy(line))
                    }),
                );
            }
        }
        return out;
    }
}

/// Resident set size of a process in bytes (Linux).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Finds a metric sample `name{labels}` in Prometheus text.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == name_and_labels).then(|| v.parse().ok()).flatten()
    })
}

/// Metric names in Prometheus text that no telemetry module of cxrelay
/// declares (every name must come from one, and so be documented).
pub fn undeclared_metrics(text: &str) -> Vec<String> {
    let declared = cxrelay::telemetry::metric_names();
    // A histogram's samples are its name with `_bucket`, `_sum`, `_count`.
    let is_declared = |name: &str| {
        declared.contains(&name)
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s).is_some_and(|base| declared.contains(&base)))
    };
    let out: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .filter(|name| name.starts_with("cxrelay_") && !is_declared(name))
        .map(str::to_string)
        .collect();
    out.into_iter().collect()
}

/// Reads one HTTP/1.1 message (headers, then Content-Length bytes) from
/// `conn`, keeping what follows it in `buf`; the message's bytes.
pub fn read_message(conn: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut chunk = [0u8; 65536];
    let mut fill = |conn: &mut dyn Read, buf: &mut Vec<u8>| -> std::io::Result<()> {
        match conn.read(&mut chunk)? {
            0 => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed")),
            n => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    };
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        fill(conn, buf)?;
    };
    let len: usize = String::from_utf8_lossy(&buf[..head_end])
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < head_end + 4 + len {
        fill(conn, buf)?;
    }
    Ok(buf.drain(..head_end + 4 + len).collect())
}

/// Reads one HTTP/1.1 request from `conn` (see [`read_message`]): its head
/// and body; `None` when the peer is gone.
pub fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let raw = read_message(conn, buf).ok()?;
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((
        String::from_utf8_lossy(&raw[..head_end]).to_string(),
        raw[head_end + 4..].to_vec(),
    ))
}

/// A tiny HTTP/1.1 server standing in for a sink's target: records NDJSON
/// lines of every 2xx-answered POST, and can be told to fail (503) or to
/// redirect (302 to `/landing`, which answers any method 200 and is counted).
pub struct TargetServer {
    pub addr: SocketAddr,
    pub fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub redirect: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub landings: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TargetServer {
    pub fn start() -> TargetServer {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fail = Arc::new(AtomicBool::new(false));
        let redirect = Arc::new(AtomicBool::new(false));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let landings = Arc::new(AtomicUsize::new(0));
        let modes = (fail.clone(), redirect.clone());
        let (l, r, g) = (lines.clone(), requests.clone(), landings.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (m, l, r, g) = (modes.clone(), l.clone(), r.clone(), g.clone());
                std::thread::spawn(move || serve(conn, &m.0, &m.1, &l, &r, &g));
            }
        });
        fn serve(
            mut conn: TcpStream,
            fail: &AtomicBool,
            redirect: &AtomicBool,
            lines: &Mutex<Vec<String>>,
            requests: &AtomicUsize,
            landings: &AtomicUsize,
        ) {
            let mut buf = Vec::new();
            loop {
                let Some((head, body)) = read_request(&mut conn, &mut buf) else {
                    return;
                };
                requests.fetch_add(1, Ordering::SeqCst);
                let reply: &[u8] = if head.split(' ').nth(1) == Some("/landing") {
                    landings.fetch_add(1, Ordering::SeqCst);
                    b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nlanding"
                } else if redirect.load(Ordering::SeqCst) {
                    b"HTTP/1.1 302 Found\r\nLocation: /landing\r\nContent-Length: 0\r\n\r\n"
                } else if fail.load(Ordering::SeqCst) {
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n\r\nunavailable"
                } else {
                    let text = String::from_utf8_lossy(&body).to_string();
                    lines.lock().unwrap().extend(text.lines().map(str::to_string));
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                };
                if conn.write_all(reply).is_err() {
                    return;
                }
            }
        }
        TargetServer {
            addr,
            fail,
            redirect,
            lines,
            requests,
            landings,
        }
    }

    pub fn set_failing(&self, failing: bool) {
        self.fail.store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set_redirecting(&self, redirecting: bool) {
        self.redirect.store(redirecting, std::sync::atomic::Ordering::SeqCst);
    }

    /// Distinct event ids received, and the total number of lines.
    pub fn ids(&self) -> (std::collections::HashSet<String>, usize) {
        let lines = self.lines.lock().unwrap();
        let ids = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["id"].as_str().map(str::to_string))
            .collect();
        (ids, lines.len())
    }
}

/// Runs `cxrelay <args>` with `--config dir/config.toml`; returns exit code,
/// stdout and stderr.
pub fn cxrelay_cmd(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A component's entry in `/status`.
pub fn component(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["components"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// One keep-alive HTTP/1.1 connection, for load.
pub struct KeepAlive {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> Self {
        KeepAlive {
            addr,
            stream: None,
            buf: Vec::with_capacity(8192),
        }
    }

    /// Sends a request and reads the response (Content-Length framed).
    /// Reconnects once if the connection was closed.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        match self.try_send(method, path, headers, body) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.stream = None;
                self.try_send(method, path, headers, body)
            }
        }
    }

    fn try_send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.stream = Some(s);
            self.buf.clear();
        }
        let s = self.stream.as_mut().expect("connected above");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: cxrelay\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(k);
            req.push_str(": ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        out.extend_from_slice(body);
        s.write_all(&out)?;
        let raw = read_message(s, &mut self.buf)?;
        parse_response(&raw)
    }
}

/// The bundled emulator on its own thread, on a free loopback port; it
/// stops when the handle is dropped.
#[cfg(feature = "emulator")]
pub fn emulator(settings: cxrelay::emulator::EmulatorSettings) -> cxrelay::emulator::EmulatorHandle {
    cxrelay::emulator::start_in_thread(settings, "127.0.0.1:0").expect("starting the emulator")
}

/// An `Authorization: Basic` value for `id` and `secret`.
pub fn basic_auth(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// `POST /oauth/token` at the emulator with `authorization` and `body`.
#[cfg(feature = "emulator")]
pub fn token_request(e: &cxrelay::emulator::EmulatorHandle, authorization: &str, body: &str) -> Response {
    request(
        e.login_addr(),
        "POST",
        "/oauth/token",
        &[
            ("Authorization", authorization),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .unwrap()
}

/// A bearer token from the emulator for its configured client.
#[cfg(feature = "emulator")]
pub fn emulator_token(e: &cxrelay::emulator::EmulatorHandle) -> String {
    let settings = &e.state().settings;
    let r = token_request(
        e,
        &basic_auth(&settings.client_id, &settings.client_secret),
        "grant_type=client_credentials",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_string()
}

/// A `[genesys]` section pointing cxrelay at `emulator`.
#[cfg(feature = "emulator")]
pub fn genesys_section(emulator: &cxrelay::emulator::EmulatorHandle, requests_per_minute: u32) -> String {
    format!(
        "[genesys]\nenvironment = \"emulator\"\napi_url = \"{}\"\nlogin_url = \"{}\"\nrequests_per_minute = {requests_per_minute}\n\n",
        emulator.url(),
        emulator.login_url()
    )
}

/// Runs the service in process on `config` until listener `listener` has
/// committed `expected` events; the time from start to that commit.
pub fn run_until_committed(config: &str, listener: &str, expected: u64) -> Duration {
    let committed =
        |detail: &dyn Fn(&str) -> _| (count(&detail(listener), "committed_events") >= expected).then_some(());
    run_until(config, committed).0
}

/// Runs the service in process on `config` until `done` answers `Some`,
/// asked with a reader of a component's status detail by name; the time
/// from start to then, and what `done` answered.
pub fn run_until<T>(
    config: &str,
    mut done: impl FnMut(&dyn Fn(&str) -> serde_json::Map<String, serde_json::Value>) -> Option<T>,
) -> (Duration, T) {
    let config = cxrelay::config::Loaded::from_str(config, "bench").unwrap();
    actix::System::new().block_on(async move {
        let t = Instant::now();
        let service = cxrelay::service::Service::start(config).await.unwrap();
        let detail = |name: &str| service.registry().get(name).unwrap().snapshot().detail;
        let answer = loop {
            if let Some(answer) = done(&detail) {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let elapsed = t.elapsed();
        service.shutdown().await;
        (elapsed, answer)
    })
}

/// A counter in a status detail (0 while absent).
pub fn count(detail: &serde_json::Map<String, serde_json::Value>, key: &str) -> u64 {
    detail.get(key).and_then(|v| v.as_u64()).unwrap_or(0)
}

/// Starts cxrelay with `config` in `dir` and kills it with SIGKILL at a
/// random moment while events flow, `times` times; `after_each` looks at
/// what a kill left. The seed is returned for the test's output.
pub fn kill_9_at_random_moments(dir: &Path, config: &str, times: usize, mut after_each: impl FnMut()) -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut rng = seed | 1;
    for _ in 0..times {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let p = Proc::start(dir, config);
        // A random moment while events flow (the experiment, not
        // synchronisation).
        std::thread::sleep(Duration::from_millis(300 + rng % 1200));
        p.kill9();
        after_each();
    }
    seed
}

/// The conversations a fixed-interval analytics source delivers for the
/// ISO `interval` from the emulator: those that ended in it (each
/// conversation once, in its final state).
#[cfg(feature = "emulator")]
pub fn conversations_ended_in(e: &cxrelay::emulator::EmulatorHandle, interval: &str) -> Vec<String> {
    let interval = cxrelay::wire::Interval::parse(interval).expect("an ISO interval");
    ended_in(&e.state().bulk.timeline, interval)
}

/// The conversations of `tl` that ended in `interval`, both ends included
/// (one ending on a boundary is delivered by the window that ends there,
/// and by the next only if that one is the first to see it): what an
/// analytics job or backfill of it delivers.
#[cfg(feature = "emulator")]
pub fn ended_in(tl: &cxrelay::emulator::records::Timeline, interval: cxrelay::wire::Interval) -> Vec<String> {
    let back = cxrelay::wire::Interval::new(interval.start_ms - tl.max_duration_ms(), interval.end_ms);
    tl.range(back)
        .filter(|n| (interval.start_ms..=interval.end_ms).contains(&tl.end_ms(*n)))
        .map(|n| tl.conversation_id(n))
        .collect()
}
