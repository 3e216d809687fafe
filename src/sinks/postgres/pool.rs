//! The few connections one PostgreSQL sink writer uses.
//!
//! A sink writes one batch at a time, on its own arbiter thread, and a
//! batch is split over at most `pool_size` connections: so the pool is a
//! list of idle connections, opened when a batch needs one more and dropped
//! when one breaks. That is all of deadpool-postgres this writer would use
//! (its semaphore, recycling hooks and runtime abstraction serve many tasks
//! sharing a pool across threads), so it is kept here in a page.

use std::cell::RefCell;
use std::rc::Rc;

use tokio_postgres::{Client, NoTls, Statement};

use super::PgSettings;

/// An open connection with the batch statement prepared on it.
pub struct Conn {
    /// The connection.
    pub client: Client,
    /// The prepared insert.
    pub insert: Statement,
}

/// Idle connections of one writer.
pub struct Pool {
    settings: std::sync::Arc<PgSettings>,
    idle: Vec<Conn>,
    /// The table was created (or found) by a connection of this pool.
    table_ready: bool,
}

/// Why a connection could not be had.
pub type ConnectError = tokio_postgres::Error;

impl Pool {
    /// An empty pool; nothing is opened until a batch needs it.
    pub fn new(settings: std::sync::Arc<PgSettings>) -> Rc<RefCell<Pool>> {
        Rc::new(RefCell::new(Pool {
            settings,
            idle: Vec::new(),
            table_ready: false,
        }))
    }

    /// Idle connections now.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }

    /// Gives a connection back after a committed write (at most
    /// `pool_size` are kept).
    pub fn give_back(&mut self, conn: Conn) {
        if !conn.client.is_closed() && self.idle.len() < self.settings.pool_size {
            self.idle.push(conn);
        }
    }

    /// An open connection: an idle one, or a new one. The first one a pool
    /// opens creates the table if it is absent, before any other is opened
    /// (two connections racing on `CREATE TABLE IF NOT EXISTS` can fail).
    pub async fn take(pool: &Rc<RefCell<Pool>>) -> Result<Conn, ConnectError> {
        let settings = {
            let mut p = pool.borrow_mut();
            while let Some(conn) = p.idle.pop() {
                if !conn.client.is_closed() {
                    return Ok(conn);
                }
            }
            p.settings.clone()
        };
        let client = open(&settings).await?;
        if !pool.borrow().table_ready {
            client.batch_execute(&super::sql::create_table(&settings.table)).await?;
            pool.borrow_mut().table_ready = true;
        }
        let insert = client.prepare(&super::sql::insert(&settings.table)).await?;
        Ok(Conn { client, insert })
    }
}

/// Opens a connection; its I/O runs as a task on this thread until the
/// client is dropped.
async fn open(s: &PgSettings) -> Result<Client, ConnectError> {
    match &s.tls {
        None => {
            let (client, connection) = s.config.connect(NoTls).await?;
            actix_rt::spawn(drive(connection));
            Ok(client)
        }
        Some(tls) => {
            let (client, connection) = s.config.connect(tls.clone()).await?;
            actix_rt::spawn(drive(connection));
            Ok(client)
        }
    }
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "postgres connection ended");
    }
}
