//! A few reusable connections. The console is a page for one person: connections are made on demand, kept idle
//! for the next request, and dropped when the server closed them.

use std::sync::Mutex;

use pgstrata::Database;
use pgstrata_conn::ConnectOptions;

use crate::error::{Error, Result};

/// Settings of every console connection: a name in `pg_stat_activity`, and bounds so that a page never waits
/// long on a lock or a slow query.
const SESSION_SQL: &str = "SET application_name = 'strata console';
SET statement_timeout = '15s';
SET lock_timeout = '3s';
SET idle_in_transaction_session_timeout = '60s'";

/// At most this many idle connections are kept.
const MAX_IDLE: usize = 4;

pub(crate) struct Pool {
    options: ConnectOptions,
    idle: Mutex<Vec<Database>>,
}

/// A connection out of the pool; it goes back when dropped (unless the server closed it).
pub(crate) struct Conn<'a> {
    db: Option<Database>,
    pool: &'a Pool,
}

impl Pool {
    pub(crate) fn new(options: ConnectOptions) -> Pool {
        Pool {
            options,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The connection settings without the password.
    pub(crate) fn target(&self) -> String {
        self.options.redacted()
    }

    pub(crate) async fn get(&self) -> Result<Conn<'_>> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let db = match reused {
            Some(db) if !db.client().is_closed() => db,
            _ => {
                let db = Database::connect(&self.options).await?;
                db.client()
                    .batch_execute(SESSION_SQL)
                    .await
                    .map_err(Error::db("setting up the console's session"))?;
                db
            }
        };
        Ok(Conn {
            db: Some(db),
            pool: self,
        })
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        // Always Some until drop.
        self.db
            .as_ref()
            .unwrap_or_else(|| unreachable!("a pooled connection is taken only on drop"))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(db) = self.db.take()
            && !db.client().is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(db);
        }
    }
}
