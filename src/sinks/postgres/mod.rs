//! `kind = "postgres"`: batches inserted into a PostgreSQL table, one row
//! per event, idempotent on the event id; the committed transaction is the
//! commit.

mod config;
mod pool;
mod sql;

pub use config::PostgresSinkConfig;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use cxrelay_actors::Event;
use futures_util::future::{join_all, LocalBoxFuture};
use tokio_postgres_rustls::MakeRustlsConnect;

use self::pool::{Conn, Pool};
use self::sql::Columns;
use crate::sinks::{SinkError, SinkWriter};

/// Fewest rows worth a connection of their own: below that, another
/// connection's round trips cost more than its share of the work saves.
const MIN_ROWS_PER_CONNECTION: usize = 500;

/// Where and how a postgres sink writes, fixed when it is built.
pub struct PgSettings {
    /// The connection settings (from the secret URL; never shown).
    pub config: tokio_postgres::Config,
    /// The TLS connector, when `tls = true`.
    pub tls: Option<MakeRustlsConnect>,
    /// The table, as validated.
    pub table: String,
    /// Most connections, and so most parallel inserts of one batch.
    pub pool_size: usize,
    /// Longest a batch may take, connecting included.
    pub timeout: Duration,
    /// The server as shown in status and errors (no user, no password).
    pub shown: String,
}

/// Inserts each batch into the table, split over up to `pool_size`
/// connections, each part in its own transaction; resolves once every part
/// has committed. A part that committed before another failed is harmless:
/// the batch is written again and its rows are skipped as already there.
pub struct PostgresWriter {
    settings: Arc<PgSettings>,
    pool: Rc<RefCell<Pool>>,
    inserted: Rc<Cell<u64>>,
    skipped: Rc<Cell<u64>>,
}

impl PostgresWriter {
    /// A writer with no connection yet (they open with the first batch, on
    /// the sink's thread).
    pub fn new(settings: Arc<PgSettings>) -> Self {
        PostgresWriter {
            pool: Pool::new(settings.clone()),
            settings,
            inserted: Rc::default(),
            skipped: Rc::default(),
        }
    }
}

/// The sink error for `e`. A row the server refuses for what it holds
/// (SQLSTATE classes 22, data exception, and 23, integrity violation) is
/// refused again on every retry: the batch is rejected (dead letters at
/// once). Anything else (connection lost, server shutting down, lock
/// timeout, permissions) is retried.
fn sink_error(e: &tokio_postgres::Error, shown: &str, from_insert: bool) -> SinkError {
    // The client's own text is only the kind ("error connecting to
    // server"): the cause ("Connection refused", the server's message) is
    // in its sources. Neither ever holds the password.
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    let error = SinkError::Transport {
        url: shown.to_string(),
        message,
    };
    let class = e.code().map(|c| &c.code()[..2]);
    match class {
        Some("22" | "23") if from_insert => SinkError::Rejected(Box::new(error)),
        _ => error,
    }
}

/// Writes one part in its own transaction: the rows it added, and the
/// connection back when it is still fit for use.
async fn write_part(mut conn: Conn, cols: Columns) -> (Result<u64, tokio_postgres::Error>, Option<Conn>) {
    let written = async {
        let tx = conn.client.transaction().await?;
        let n = tx
            .execute(
                &conn.insert,
                &[
                    &cols.id,
                    &cols.seq,
                    &cols.source,
                    &cols.topic,
                    &cols.key,
                    &cols.event_ms,
                    &cols.received_ms,
                    &cols.payload,
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }
    .await;
    match written {
        Ok(n) => (Ok(n), Some(conn)),
        // Its state is unknown (a transaction may be open): never reuse it.
        Err(e) => (Err(e), None),
    }
}

impl SinkWriter for PostgresWriter {
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        let s = self.settings.clone();
        let parts = events
            .len()
            .div_ceil(MIN_ROWS_PER_CONNECTION)
            .clamp(1, s.pool_size.max(1));
        let per_part = events.len().div_ceil(parts).max(1);
        let columns: Vec<Columns> = events.chunks(per_part).map(Columns::of).collect();
        let rows = events.len() as u64;
        let (pool, inserted, skipped) = (self.pool.clone(), self.inserted.clone(), self.skipped.clone());
        let write = async move {
            if columns.is_empty() {
                return Ok(());
            }
            // One connection first: it creates the table if need be.
            let mut conns = vec![Pool::take(&pool).await.map_err(|e| sink_error(&e, &s.shown, false))?];
            let more = join_all((1..columns.len()).map(|_| Pool::take(&pool))).await;
            for c in more {
                conns.push(c.map_err(|e| sink_error(&e, &s.shown, false))?);
            }
            let results = join_all(conns.into_iter().zip(columns).map(|(c, cols)| write_part(c, cols))).await;
            let mut added = 0;
            let mut failed = None;
            for (result, conn) in results {
                if let Some(conn) = conn {
                    pool.borrow_mut().give_back(conn);
                }
                match result {
                    Ok(n) => added += n,
                    Err(e) => failed = failed.or(Some(sink_error(&e, &s.shown, true))),
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            inserted.set(inserted.get() + added);
            skipped.set(skipped.get() + rows.saturating_sub(added));
            Ok(())
        };
        let (timeout, shown) = (self.settings.timeout, self.settings.shown.clone());
        Box::pin(async move {
            // On a timeout the connections in use are dropped with the
            // future: closed, so the server rolls their transactions back.
            tokio::time::timeout(timeout, write).await.unwrap_or_else(|_| {
                Err(SinkError::Transport {
                    url: shown,
                    message: format!("batch not committed within {timeout:?}"),
                })
            })
        })
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "server": self.settings.shown,
            "table": self.settings.table,
            "idle_connections": self.pool.borrow().idle(),
            "rows_inserted": self.inserted.get(),
            "duplicates_skipped": self.skipped.get(),
        })
    }
}
