//! The postgres sink against a real PostgreSQL started by the test (see
//! `pg.rs`): rows as documented, no duplicates through replays and
//! `kill -9`, the connection string never shown.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::pg::{PgCluster, PASSWORD};

fn generator(count: u64) -> String {
    format!(
        "[[source]]\nname = \"gen\"\nkind = \"generator\"\ntopics = [\"calls.{{key}}.start\"]\nrate = 1000000\ncount = {count}\nkeys = 100\npayload_bytes = 200\n\n"
    )
}

fn listener(table: &str, batch: usize) -> String {
    format!(
        "[[listener]]\nname = \"pg\"\ntopics = [\"calls.>\"]\nsink = {{ kind = \"postgres\", url_env = \"CXRELAY_TEST_PG_URL\", table = \"{table}\", batch_events = {batch}, batch_interval = \"50ms\" }}\nmailbox = 4096\n\n"
    )
}

#[test]
fn rows_are_typed_replays_add_nothing_and_the_url_is_never_shown() {
    let Some(pg) = PgCluster::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = format!("{}{}{}", preamble(dir), generator(300), listener("Audit_events", 100));
    let env = [("CXRELAY_TEST_PG_URL", pg.url("postgres"))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = Proc::start_with(dir, &config, &env);
    wait_until("300 rows", Duration::from_secs(60), || {
        pg.query("SELECT to_regclass('\"Audit_events\"') IS NOT NULL")[0].as_deref() == Some("t")
            && pg.count("SELECT count(*) FROM \"Audit_events\"") == 300
    });
    // The sink's status is refreshed after its commit returns, a moment
    // after the rows are visible.
    wait_until("300 rows in /status", Duration::from_secs(10), || {
        component(&p.get("/status").json(), "pg")["detail"]["writer"]["rows_inserted"] == 300
    });
    let status = p.get("/status");
    let pg_status = component(&status.json(), "pg");
    assert!(!status.text().contains(PASSWORD), "the password shows in /status");
    assert!(
        pg_status["detail"]["writer"]["server"]
            .as_str()
            .is_some_and(|s| s.starts_with("postgres://127.0.0.1:")),
        "{pg_status}"
    );
    assert!(p.terminate().success());
    for (n, log) in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).enumerate() {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        assert!(!text.contains(PASSWORD), "the password shows in {:?} ({n})", log.path());
    }
    // Columns as documented.
    let types = pg.query(
        "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'Audit_events'",
    );
    assert_eq!(
        types[0].as_deref(),
        Some("id:text,seq:bigint,source:text,topic:text,key:text,event_time:timestamp with time zone,received_at:timestamp with time zone,payload:jsonb")
    );
    assert_eq!(pg.count("SELECT count(*) FROM \"Audit_events\" WHERE payload ? 'eventId' AND source = 'gen' AND topic LIKE 'calls.%.start' AND received_at > now() - interval '1 hour'"), 300);
    assert_eq!(pg.count("SELECT count(DISTINCT id) FROM \"Audit_events\""), 300);

    // A replay of the same events (the journal gone, the generator starting
    // over with the same ids) adds no row.
    std::fs::remove_dir_all(dir.join("data")).unwrap();
    let p = Proc::start_with(dir, &config, &env);
    wait_until("the replay written", Duration::from_secs(60), || {
        component(&p.get("/status").json(), "pg")["detail"]["committed_events"] == 300
    });
    let pg_status = component(&p.get("/status").json(), "pg");
    assert_eq!(pg_status["detail"]["writer"]["duplicates_skipped"], 300, "{pg_status}");
    assert!(p.terminate().success());
    assert_eq!(pg.count("SELECT count(*) FROM \"Audit_events\""), 300);
}

#[test]
fn a_server_that_is_down_holds_events_and_says_so_then_takes_them() {
    let Some(pg) = PgCluster::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Nothing listens on this port yet: the sink fails and retries.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{down}/postgres");
    let config = format!("{}{}{}", preamble(dir), generator(500), listener("events", 100));
    let p = Proc::start_with(dir, &config, &[("CXRELAY_TEST_PG_URL", &url)]);
    wait_until("the sink reports the failure", Duration::from_secs(30), || {
        component(&p.get("/status").json(), "pg")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("127.0.0.1") && e.contains("refused") && !e.contains(PASSWORD))
    });
    // Its events cannot be written: a clean shutdown would wait for them.
    p.kill9();
    assert_eq!(pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'events'"), 0);
    // The right server now: everything held in the journal is written.
    let p = Proc::start_with(dir, &config, &[("CXRELAY_TEST_PG_URL", &pg.url("postgres"))]);
    wait_until("500 rows", Duration::from_secs(60), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'events'") == 1
            && pg.count("SELECT count(*) FROM events") == 500
    });
    assert!(p.terminate().success());
}

#[test]
fn with_tls_the_server_is_verified_and_the_connection_encrypted() {
    let Some(pg) = PgCluster::start_tls() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let env = [("CXRELAY_TEST_PG_URL", pg.url("postgres"))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Without the run's CA the certificate does not verify: nothing written.
    let config = format!("{}{}{}", preamble(dir), generator(200), listener("events", 100))
        .replace("table = ", "tls = true, table = ");
    let p = Proc::start_with(dir, &config, &env);
    wait_until("the certificate refused", Duration::from_secs(30), || {
        component(&p.get("/status").json(), "pg")["last_error"]
            .as_str()
            .is_some_and(|e| e.to_ascii_lowercase().contains("certificate"))
    });
    p.kill9();
    assert_eq!(pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'events'"), 0);
    // Trusting the CA: written, over TLS.
    let config = config.replace(
        "tls = true, ",
        &format!("tls = true, tls_ca_file = \"{}\", ", pg.ca_file().display()),
    );
    let p = Proc::start_with(dir, &config, &env);
    wait_until("200 rows", Duration::from_secs(60), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'events'") == 1
            && pg.count("SELECT count(*) FROM events") == 200
    });
    let encrypted = pg.count(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.application_name = 'cxrelay/pg'",
    );
    let plain = pg.count(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE NOT s.ssl AND a.application_name = 'cxrelay/pg'",
    );
    assert!(
        encrypted >= 1 && plain == 0,
        "{encrypted} TLS and {plain} plain connections"
    );
    assert!(p.terminate().success());
}

/// 100k events from a generator at full speed; cxrelay killed with -9
/// twice while it writes, then run to the end: every event is a row, once.
#[test]
fn a_hundred_thousand_events_survive_two_kill_9s_with_one_row_each() {
    let Some(pg) = PgCluster::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let total: u64 = 100_000;
    let batch = 2000;
    let config = format!("{}{}{}", preamble(dir), generator(total), listener("events", batch));
    let url = pg.url("postgres");
    let env = [("CXRELAY_TEST_PG_URL", url.as_str())];
    let rows = || {
        if pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'events'") == 0 {
            0
        } else {
            pg.count("SELECT count(*) FROM events")
        }
    };
    let mut at_kill = Vec::new();
    for threshold in [20_000, 55_000] {
        let p = Proc::start_with(dir, &config, &env);
        wait_until("rows arrive", Duration::from_secs(120), || rows() >= threshold);
        p.kill9();
        at_kill.push(rows());
    }
    let p = Proc::start_with(dir, &config, &env);
    let (t, from) = (Instant::now(), rows());
    wait_until("every event is a row", Duration::from_secs(300), || rows() >= total);
    let elapsed = t.elapsed();
    let status = p.get("/status").json();
    let writer = component(&status, "pg")["detail"]["writer"].clone();
    assert!(p.terminate().success());
    assert_eq!(pg.count("SELECT count(*) FROM events"), total);
    assert_eq!(pg.count("SELECT count(DISTINCT id) FROM events"), total);
    // Exactly gen-0 .. gen-99999.
    assert_eq!(
        pg.count("SELECT count(*) FROM events WHERE substr(id, 5)::bigint BETWEEN 0 AND 99999 AND id LIKE 'gen-%'"),
        total
    );
    let rate = (total - from) as f64 / elapsed.as_secs_f64();
    eprintln!(
        "postgres kill -9 test: rows at each kill {at_kill:?}; last run wrote {} rows in {:.1}s = {rate:.0} rows/s \
         (batch_events {batch}, pool_size 2); replayed rows skipped in the last run: {}",
        total - from,
        elapsed.as_secs_f64(),
        writer["duplicates_skipped"]
    );
    assert!(
        at_kill.windows(2).all(|w| w[1] >= w[0]) && at_kill[0] < total,
        "{at_kill:?}"
    );
}

/// Rows per second through the whole pipeline (generator at full speed,
/// journal, router, sink) for a few batch and pool sizes; the figures in
/// the README. Ignored by default: `cargo test --test it pg_throughput --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn pg_throughput_by_batch_and_pool_size() {
    let Some(pg) = PgCluster::start() else { return };
    let total: u64 = 100_000;
    let url = pg.url("postgres");
    for (batch, pool) in [
        (500, 1),
        (1000, 1),
        (1000, 2),
        (2000, 1),
        (2000, 2),
        (2000, 4),
        (5000, 2),
        (5000, 4),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let table = format!("events_{batch}_{pool}");
        let config = format!("{}{}{}", preamble(dir), generator(total), listener(&table, batch))
            .replace("batch_interval", &format!("pool_size = {pool}, batch_interval"))
            // The router hands the sink at most `batch` events at once: the
            // same as batch_events, so that batches are the size named.
            .replace("mailbox = 4096\n", &format!("mailbox = 10000\nbatch = {batch}\n"));
        let p = Proc::start_with(dir, &config, &[("CXRELAY_TEST_PG_URL", url.as_str())]);
        let committed = |p: &Proc| {
            component(&p.get("/status").json(), "pg")["detail"]["committed_events"]
                .as_u64()
                .unwrap_or(0)
        };
        wait_until("first rows", Duration::from_secs(60), || committed(&p) > 0);
        let (t, from) = (Instant::now(), committed(&p));
        wait_until("all rows", Duration::from_secs(300), || committed(&p) >= total);
        let rate = (total - from) as f64 / t.elapsed().as_secs_f64();
        assert!(p.terminate().success());
        assert_eq!(pg.count(&format!("SELECT count(*) FROM {table}")), total);
        eprintln!("postgres throughput: batch_events {batch}, pool_size {pool}: {rate:.0} rows/s");
    }
}
