//! [`PostgresSink`]: binary COPY into a staging table, then one idempotent insert.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gw_core::BackendError;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

use super::{AuditSink, BoxFuture};
use crate::record::AuditRecord;

mod copy;

pub use copy::MAX_INDEXED_TEXT;
use copy::{COLUMNS, STAGING_DDL};

/// The migration: table, indexes, partition and retention functions, RLS policies.
pub const MIGRATION: &str = include_str!("../../migrations/001_gateway_audit_logs.sql");

const BACKEND: &str = "audit-postgres";

/// A database error whose SQLSTATE says the rows themselves were refused (class 22 data
/// exception, 23 integrity constraint violation, 54 program limit exceeded, such as an
/// index row too large) becomes an `invalid` error: the same rows would be refused
/// again, so the writer isolates and drops them instead of retrying (the sink itself
/// retries a 23514 once, which may be a month partition dropped meanwhile). Anything else
/// (connection, server state, permissions, schema) is `unavailable`: retried and spooled.
fn err(e: tokio_postgres::Error) -> BackendError {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let text = format!("{} ({code}): {}", db.severity(), db.message());
            if refuses_rows(code) {
                BackendError::invalid(BACKEND, text)
            } else {
                BackendError::unavailable(BACKEND, text)
            }
        }
        None => BackendError::unavailable(BACKEND, e),
    }
}

/// A failed batch: the error, and whether it may be a row with no month partition.
struct Failed {
    error: BackendError,
    /// SQLSTATE 23514, which PostgreSQL gives for "no partition of relation found for
    /// row" (and for any other check violation).
    no_partition: bool,
}

impl From<tokio_postgres::Error> for Failed {
    fn from(e: tokio_postgres::Error) -> Self {
        Self {
            no_partition: e.code() == Some(&SqlState::CHECK_VIOLATION),
            error: err(e),
        }
    }
}

impl From<BackendError> for Failed {
    fn from(error: BackendError) -> Self {
        Self {
            error,
            no_partition: false,
        }
    }
}

/// Whether SQLSTATE `code` is about the data written rather than the server.
fn refuses_rows(code: &str) -> bool {
    matches!(code.get(..2), Some("22" | "23" | "54"))
}

/// Checks that `schema` is a plain lower-case identifier (`[a-z_][a-z0-9_]*`, at most 63).
fn check_schema(schema: &str) -> Result<(), BackendError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(BackendError::invalid(
            BACKEND,
            format!("schema {schema:?} is not a plain lower-case identifier"),
        ))
    }
}

/// Applies the migration into `schema` (created if missing) and creates the partitions
/// for this month and the next. Idempotent.
pub async fn migrate(client: &Client, schema: &str) -> Result<(), BackendError> {
    check_schema(schema)?;
    client
        .batch_execute(&MIGRATION.replace("{schema}", schema))
        .await
        .map_err(err)?;
    let ensure = format!("SELECT {schema}.gateway_audit_ensure_partition($1)");
    let now = SystemTime::now();
    for at in [now, now + Duration::from_secs(31 * 86_400)] {
        client.execute(&ensure, &[&at]).await.map_err(err)?;
    }
    Ok(())
}

/// One connection, with the batch's statements prepared once for its life.
struct Conn {
    client: Client,
    task: JoinHandle<()>,
    generation: u64,
    copy: Statement,
    insert: Statement,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes batches into `{schema}.gateway_audit_logs` (see [`migrate`]).
///
/// Each batch is one transaction: `SET LOCAL gw_audit.role = 'system'`, binary `COPY`
/// into a session-local staging table, then `INSERT ... SELECT ... ON CONFLICT DO
/// NOTHING`, so a retried or replayed batch never duplicates a row (the primary key
/// `(id, timestamp)` is the only unique constraint; the conflict target is left out so
/// the statement needs only `INSERT` under row-level security, as a named target would
/// also apply the `SELECT` policies to the new rows). The commit is synchronous (the
/// server's `synchronous_commit`): a batch the sink reported written is durable. Month
/// partitions are created on demand. Text in indexed columns is cut to
/// [`MAX_INDEXED_TEXT`] bytes (a request path can be longer than an index row may be).
///
/// Concurrent writes (the writer's [`concurrency`](crate::WriterConfig::concurrency))
/// each use their own connection: connections are opened lazily, one per write in
/// flight, kept idle between batches with their statements prepared, and closed after
/// any error.
pub struct PostgresSink {
    /// The target, and a generation bumped by every `set_config`.
    config: Mutex<(tokio_postgres::Config, u64)>,
    schema: String,
    /// Idle connections.
    idle: Mutex<Vec<Conn>>,
    months: Mutex<HashSet<i64>>,
    insert_sql: String,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresSink {
    /// A sink writing into `schema` of the database `config` points at.
    ///
    /// Without a connect timeout in `config`, 5 s is used, so an unreachable host
    /// fails fast enough for the writer to spool.
    pub fn new(mut config: tokio_postgres::Config, schema: &str) -> Result<Self, BackendError> {
        check_schema(schema)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        Ok(Self {
            config: Mutex::new((config, 0)),
            schema: schema.to_owned(),
            idle: Mutex::new(Vec::new()),
            months: Mutex::new(HashSet::new()),
            insert_sql: format!(
                "INSERT INTO {schema}.gateway_audit_logs ({COLUMNS}) SELECT {COLUMNS} \
                 FROM pg_temp.gw_audit_staging ON CONFLICT DO NOTHING"
            ),
        })
    }

    /// Like [`PostgresSink::new`], from a connection string.
    pub fn connect_str(url: &str, schema: &str) -> Result<Self, BackendError> {
        let config = url.parse().map_err(|e| BackendError::invalid(BACKEND, e))?;
        Self::new(config, schema)
    }

    /// Points the sink at another database (e.g. after a failover or a credential
    /// rotation); the current connection is closed at the next write.
    pub fn set_config(&self, mut config: tokio_postgres::Config) {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let mut current = self.config.lock().unwrap_or_else(|p| p.into_inner());
        current.0 = config;
        current.1 += 1;
    }

    fn generation(&self) -> u64 {
        self.config.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    async fn open(&self) -> Result<Conn, BackendError> {
        let (config, generation) = self
            .config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (client, connection) = config.connect(NoTls).await.map_err(err)?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("audit postgres connection closed: {e}");
            }
        });
        let prepared = async {
            client.batch_execute(STAGING_DDL).await?;
            let copy = client
                .prepare(&format!(
                    "COPY pg_temp.gw_audit_staging ({COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .await?;
            let insert = client.prepare(&self.insert_sql).await?;
            Ok((copy, insert))
        }
        .await;
        match prepared {
            Ok((copy, insert)) => Ok(Conn {
                client,
                task,
                generation,
                copy,
                insert,
            }),
            Err(e) => {
                task.abort();
                Err(err(e))
            }
        }
    }

    async fn ensure_partitions(
        &self,
        client: &Client,
        batch: &[AuditRecord],
    ) -> Result<(), BackendError> {
        let mut missing = Vec::new();
        {
            let known = self.months.lock().unwrap_or_else(|p| p.into_inner());
            for r in batch {
                let m = month_index(r.timestamp);
                if !known.contains(&m) && !missing.iter().any(|(k, _)| *k == m) {
                    missing.push((m, r.timestamp));
                }
            }
        }
        let sql = format!("SELECT {}.gateway_audit_ensure_partition($1)", self.schema);
        for (m, at) in missing {
            client.execute(&sql, &[&at]).await.map_err(err)?;
            self.months
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(m);
        }
        Ok(())
    }

    async fn write_batch(&self, conn: &Conn, batch: &[AuditRecord]) -> Result<(), Failed> {
        let client = &conn.client;
        self.ensure_partitions(client, batch).await?;
        // Any error below drops the connection, which rolls the transaction back.
        client
            .batch_execute("BEGIN; SET LOCAL gw_audit.role = 'system'")
            .await?;
        copy::copy_in(client, &conn.copy, batch).await?;
        client.execute(&conn.insert, &[]).await?;
        client.batch_execute("COMMIT").await?;
        Ok(())
    }

    /// An idle connection to the current target, or a new one.
    async fn checkout(&self) -> Result<Conn, BackendError> {
        let generation = self.generation();
        loop {
            let conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match conn {
                Some(c) if !c.client.is_closed() && c.generation == generation => return Ok(c),
                Some(_stale) => {}
                None => return self.open().await,
            }
        }
    }
}

impl AuditSink for PostgresSink {
    fn write<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let mut retried = false;
            loop {
                let conn = self.checkout().await?;
                if let Err(failed) = self.write_batch(&conn, batch).await {
                    drop(conn);
                    // A month partition dropped behind our back (retention, by hand) is
                    // refused as "no partition" (23514): look the months up again, and
                    // try once more at once, which recreates it. A second 23514 is a
                    // check that refuses the rows.
                    self.months
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                    if failed.no_partition && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(failed.error);
                }
                // Only a connection that finished its batch goes back; after an error (or
                // a cancelled write) it is closed, and the next write starts afresh.
                self.idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(conn);
                return Ok(());
            }
        })
    }
}

/// Months since 1970-01 (UTC) of `t`.
fn month_index(t: SystemTime) -> i64 {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (year, month, _) = gw_core::calendar::civil_from_days(secs.div_euclid(86_400));
    (year - 1970) * 12 + (i64::from(month) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_index_follows_utc_months() {
        let at = |s: u64| month_index(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), 0);
        assert_eq!(at(31 * 86_400 - 1), 0);
        assert_eq!(at(31 * 86_400), 1);
        // 2024-02-29T12:00:00Z and 2024-03-01T00:00:00Z
        assert_eq!(at(1_709_208_000), (2024 - 1970) * 12 + 1);
        assert_eq!(at(1_709_251_200), (2024 - 1970) * 12 + 2);
    }

    #[test]
    fn data_errors_refuse_rows_and_the_rest_is_an_outage() {
        // 22P05 (\u0000 in jsonb), 22021 (NUL in text), 23514 (check, no partition),
        // 54000 (index row too large).
        for code in ["22P05", "22021", "23514", "54000"] {
            assert!(refuses_rows(code), "{code}");
        }
        // Connection, shutdown, permissions, missing table, serialization.
        for code in ["08006", "57P01", "42501", "42P01", "40001", "53300", ""] {
            assert!(!refuses_rows(code), "{code}");
        }
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(check_schema("audit_1").is_ok());
        for bad in ["", "1abc", "Audit", "a-b", "a;drop", &"x".repeat(64)] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }
}
