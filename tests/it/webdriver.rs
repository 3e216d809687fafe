//! Just enough WebDriver to drive a headless Chromium from the tests:
//! Debian's `chromium` and `chromedriver` (package `chromium-driver`),
//! spoken to over plain HTTP. No client
//! crate: the tests need a session, a page, a script and a screenshot.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use super::common::read_message;

/// Where the browser and its driver are.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// The first of `names` on `PATH`.
pub fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver (`CXRELAY_CHROMIUM` and
/// `CXRELAY_CHROMEDRIVER` override the search of `PATH`), or why not.
pub fn find_tools() -> Result<Tools, String> {
    let pick = |var: &str, names: &[&str]| std::env::var_os(var).map(PathBuf::from).or_else(|| on_path(names));
    let chromium = pick("CXRELAY_CHROMIUM", &["chromium", "chromium-browser"])
        .ok_or("no `chromium` on PATH (Debian package `chromium`)")?;
    let chromedriver = pick("CXRELAY_CHROMEDRIVER", &["chromedriver"])
        .ok_or("no `chromedriver` on PATH (Debian package `chromium-driver`)")?;
    Ok(Tools { chromium, chromedriver })
}

/// Whether the tests run in CI (`CI` set and not empty): there a missing
/// tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// A missing tool: fails in CI, else says loudly that the test did not
/// run (and why) and lets it pass.
pub fn skip_or_fail(test: &str, why: &str, install: &str) {
    assert!(!in_ci(), "{test}: {why}; CI must have it ({install})");
    eprintln!(
        "\n**********************************************************************\n\
         SKIPPED {test}: {why}.\n\
         Install it ({install}; scripts/test.sh does) to run it. With CI set, this fails.\n\
         **********************************************************************\n"
    );
}

/// A headless Chromium under chromedriver, one session. Dropping it ends
/// the session (and the browser) and stops the driver.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session
    /// in a window of `width` x `height`.
    pub fn start(tools: &Tools, width: u32, height: u32) -> Browser {
        // A driver that dies or stays silent while the machine is busy is
        // the environment, not the page: start another, twice at most.
        let mut failures = Vec::new();
        let (driver, port) = loop {
            match launch(tools) {
                Ok(started) => break started,
                Err(why) if failures.len() < 2 => failures.push(why),
                Err(why) => {
                    failures.push(why);
                    panic!("chromedriver did not start, three times:\n{}", failures.join("\n"));
                }
            }
        };
        let mut b = Browser {
            driver,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                // No sandbox: the tests may run as root or in a container
                // without user namespaces; the page is our own, on loopback.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1",
                         format!("--window-size={width},{height}")],
            },
        }}});
        let v = b.call("POST", "/session", caps);
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {v}"))
            .to_string();
        b
    }

    /// One WebDriver command; its `value`. A WebDriver error panics with
    /// the driver's message.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if method == "GET" || method == "DELETE" {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (status, reply) =
            send(self.addr, method, path, &body).unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let v: Value = serde_json::from_slice(&reply).unwrap_or_else(|e| {
            panic!(
                "chromedriver {method} {path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&reply)
            )
        });
        assert!(
            status == 200,
            "chromedriver {method} {path}: {status} {}",
            v["value"]["message"]
        );
        v["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url` (returns once the page has loaded).
    pub fn goto(&self, url: &str) {
        self.call("POST", &self.session_path("/url"), json!({ "url": url }));
    }

    /// Runs `script` (a function body: `return ...`) in the page; its
    /// result.
    pub fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            json!({ "script": script, "args": [] }),
        )
    }

    /// Resizes the window.
    pub fn set_size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            &self.session_path("/window/rect"),
            json!({ "width": width, "height": height }),
        );
    }

    /// Saves a PNG of the window at `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.call("GET", &self.session_path("/screenshot"), Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

/// One request to chromedriver; the status and body of its answer.
/// chromedriver keeps connections open whatever the request says, so the
/// answer is read by its Content-Length, not to the end of the stream; and
/// it wants a loopback `Host`.
fn send(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    // Starting a browser on a busy machine can take a while.
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    let raw = read_message(&mut conn, &mut Vec::new())?;
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let status = String::from_utf8_lossy(&raw[..head_end])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, raw[(head_end + 4).min(raw.len())..].to_vec()))
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Ends the browser too; errors do not matter any more.
            let _ = send(self.addr, "DELETE", &self.session_path(""), b"");
        }
        kill_group(&mut self.driver);
    }
}

/// Starts chromedriver on a free port: the driver and the port it took, or
/// why not (with what it said on stderr).
fn launch(tools: &Tools) -> Result<(Child, u16), String> {
    // Its own process group, with the browser it starts: dropping the
    // Browser ends them all, even when no session was made (a browser
    // outliving its driver would run on, orphaned).
    let mut driver = Command::new(&tools.chromedriver)
        .arg("--port=0")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", tools.chromedriver.display()));
    // The driver names the port it took on stdout; read on a thread so
    // the wait has a deadline.
    let (tx, rx) = mpsc::channel();
    let stdout = driver.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line
                .split("started successfully on port ")
                .nth(1)
                .and_then(|p| p.trim_end_matches('.').trim().parse::<u16>().ok())
            {
                let _ = tx.send(port);
            }
        }
    });
    // Its last lines on stderr, for the failure message.
    let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stderr = driver.stderr.take().expect("piped stderr");
    let keep = said.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut said = keep.lock().unwrap();
            if said.len() == 20 {
                said.remove(0);
            }
            said.push(line);
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(port) => Ok((driver, port)),
        Err(e) => {
            kill_group(&mut driver);
            let why = match e {
                mpsc::RecvTimeoutError::Timeout => "said no port within 30 s",
                mpsc::RecvTimeoutError::Disconnected => "closed its output without a port",
            };
            Err(format!("chromedriver {why}; stderr: {:?}", said.lock().unwrap()))
        }
    }
}

/// Kills chromedriver's process group (the driver and any browser it
/// started) and reaps the driver.
fn kill_group(driver: &mut Child) {
    if let Ok(pgid) = i32::try_from(driver.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group,
        // which `process_group(0)` made for this driver alone.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = driver.kill();
    let _ = driver.wait();
}

/// Where test artifacts (screenshots) are kept: `target/test-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("test-artifacts")
}
