//! A throwaway PostgreSQL cluster for the tests: `initdb` and `pg_ctl` in
//! a temporary directory, on a free loopback port with its socket in that
//! directory, stopped (immediately) when dropped. As root it runs as the
//! `postgres` user if there is one, else as `nobody` (initdb refuses root).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The password of the cluster's `postgres` user (TCP logins need it).
pub const PASSWORD: &str = "pg-s3cret-pw";

/// A running cluster.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<String>,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

/// Where the server binaries are: Debian's versioned directory (newest
/// first), else `initdb` on PATH.
fn find_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path().join("bin"))).collect())
        .unwrap_or_default();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(d) = dirs
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
    {
        return Some(d);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

impl PgCluster {
    /// Starts a cluster, or answers `None` after a loud notice when the
    /// binaries are missing. In CI (`CI` set) a missing PostgreSQL fails
    /// the test instead.
    pub fn start() -> Option<PgCluster> {
        Self::start_with(false)
    }

    /// Like [`PgCluster::start`], serving TLS with a certificate for
    /// 127.0.0.1 signed by a CA made for the run ([`PgCluster::ca_file`]).
    pub fn start_tls() -> Option<PgCluster> {
        Self::start_with(true)
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_with(tls: bool) -> Option<PgCluster> {
        let Some(bin) = find_bin() else {
            let notice = "SKIPPED: PostgreSQL not found (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH; apt-get install -y postgresql)";
            assert!(std::env::var_os("CI").is_none(), "{notice}, and CI is set");
            eprintln!("\n*** {notice} ***\n");
            return None;
        };
        let user = is_root().then(|| {
            if user_exists("postgres") {
                "postgres".to_string()
            } else {
                "nobody".to_string()
            }
        });
        let dir = tempfile::Builder::new().prefix("cxrelay-pg-").tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), PASSWORD).unwrap();
        if tls {
            make_certificates(dir.path());
        }
        if let Some(u) = &user {
            let ok = Command::new("chown")
                .args(["-R", u])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the cluster directory to {u} failed");
        }
        let mut c = PgCluster {
            dir,
            bin,
            user,
            port: 0,
        };
        let data = c.data();
        c.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                c.dir.path().join("pw").to_str().unwrap(),
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        // A free port can be taken between the probe and the start: try a
        // few.
        for _ in 0..5 {
            c.port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut opts = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=50",
                c.port,
                c.dir.path().display()
            );
            if tls {
                let d = c.dir.path().display();
                opts.push_str(&format!(
                    " -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key"
                ));
            }
            let log = c.dir.path().join("server.log");
            if c.try_run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-o",
                    &opts,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ) {
                return Some(c);
            }
        }
        panic!(
            "PostgreSQL did not start:\n{}",
            std::fs::read_to_string(c.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> bool {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"));
        if !out.status.success() {
            eprintln!(
                "{tool} failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        assert!(self.try_run(tool, args), "{tool} failed");
    }

    /// A URL for database `db` over TCP, with the password.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs `sql` and answers the first column of every row as text.
    pub fn query(&self, sql: &str) -> Vec<Option<String>> {
        let url = self.url("postgres");
        let sql = sql.to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connecting to the test cluster");
            let driver = tokio::spawn(conn);
            let rows = client.simple_query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            drop(client);
            let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
            rows.into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                    _ => None,
                })
                .collect()
        })
    }

    /// `query` for one number.
    pub fn count(&self, sql: &str) -> u64 {
        self.query(sql)
            .first()
            .cloned()
            .flatten()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{sql}: not a number"))
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`
/// (openssl; the key readable by its owner only, as the server demands).
fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=cxrelay test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}
