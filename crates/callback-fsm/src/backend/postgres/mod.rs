//! [`PgJobStore`]: jobs and their event ledger in PostgreSQL, and [`migrate`].

mod migrate;

pub use migrate::{MIGRATIONS, migrate};

use std::fmt;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use gw_core::BackendError;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Transaction};

use crate::event::CallbackEvent;
use crate::fsm::TransitionTable;
use crate::store::{
    AppliedEvent, BoxFuture, Change, JobSnapshot, JobStore, Outcome, StoreError,
    Transition as TransitionHook, decide,
};
use crate::time::Timestamp;

const BACKEND: &str = "postgres";

pub(super) fn pg_error(e: impl fmt::Display) -> BackendError {
    BackendError::unavailable(BACKEND, e)
}

/// Checks that `schema` is a plain lowercase identifier (it is spliced into SQL).
pub(super) fn check_schema(schema: &str) -> Result<(), BackendError> {
    let mut chars = schema.chars();
    let ok = schema.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(BackendError::invalid(
            BACKEND,
            "schema must match [a-z_][a-z0-9_]{0,62}",
        ))
    }
}

/// A hook run inside the PostgreSQL transaction.
type PgHook = Arc<dyn for<'t> TransitionHook<Transaction<'t>>>;

struct Sql {
    lock_job: String,
    find_event: String,
    update_job: String,
    insert_event: String,
    insert_job: String,
    select_job: String,
    select_history: String,
}

impl Sql {
    fn new(s: &str) -> Self {
        Self {
            lock_job: format!(
                "SELECT status, latest_occurred_ns, applied_events FROM {s}.callback_jobs \
                 WHERE job_id = $1 FOR UPDATE"
            ),
            find_event: format!(
                "SELECT fingerprint FROM {s}.callback_events WHERE job_id = $1 AND event_id = $2"
            ),
            update_job: format!(
                "UPDATE {s}.callback_jobs SET status = $2, latest_occurred_ns = $3, \
                 applied_events = $4, updated_at = now() WHERE job_id = $1"
            ),
            insert_event: format!(
                "INSERT INTO {s}.callback_events (job_id, event_id, seq, fingerprint, \
                 from_status, to_status, occurred_ns, occurred_at, payload) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, ($8::text)::timestamptz, ($9::text)::jsonb)"
            ),
            insert_job: format!(
                "INSERT INTO {s}.callback_jobs (job_id, status) VALUES ($1, $2) \
                 ON CONFLICT (job_id) DO NOTHING"
            ),
            select_job: format!(
                "SELECT status, latest_occurred_ns, applied_events FROM {s}.callback_jobs \
                 WHERE job_id = $1"
            ),
            select_history: format!(
                "SELECT seq, event_id, from_status, to_status, occurred_ns, fingerprint \
                 FROM {s}.callback_events WHERE job_id = $1 ORDER BY seq"
            ),
        }
    }
}

/// A [`JobStore`] in PostgreSQL (tables from [`migrate`]).
///
/// [`JobStore::apply`] is one transaction: `SELECT ... FOR UPDATE` on the job row, the
/// ledger lookup, [`decide`], the job update and ledger insert, the hook, commit. The
/// row lock serializes callbacks per job; the ledger's primary key `(job_id, event_id)`
/// backs it up (a unique violation is retried once, then answers as the rules say).
#[derive(Clone)]
pub struct PgJobStore {
    pool: Pool,
    schema: Arc<str>,
    sql: Arc<Sql>,
    hook: Option<PgHook>,
}

impl fmt::Debug for PgJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgJobStore")
            .field("schema", &self.schema)
            .field("pool", &self.pool.status())
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl PgJobStore {
    /// A store on `pool`, in `schema` (a lowercase identifier; run [`migrate`] first).
    pub fn new(pool: Pool, schema: &str) -> Result<Self, BackendError> {
        check_schema(schema)?;
        Ok(Self {
            pool,
            schema: Arc::from(schema),
            sql: Arc::new(Sql::new(schema)),
            hook: None,
        })
    }

    /// A store with its own pool of at most `max_connections` to `url` (no TLS).
    pub fn connect(url: &str, schema: &str, max_connections: usize) -> Result<Self, BackendError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| BackendError::invalid(BACKEND, e))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| BackendError::invalid(BACKEND, e))?;
        Self::new(pool, schema)
    }

    /// Runs `hook` inside the transaction of every applied transition, after the job row
    /// and ledger are written and before commit; an `Err` rolls everything back.
    pub fn with_hook<H>(mut self, hook: H) -> Self
    where
        H: for<'t> TransitionHook<Transaction<'t>>,
    {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// [`migrate`] this store's schema.
    pub async fn migrate(&self) -> Result<(), BackendError> {
        let mut client = self.pool.get().await.map_err(pg_error)?;
        migrate(&mut client, &self.schema).await
    }

    async fn apply_tx(
        &self,
        job_id: &str,
        event: &CallbackEvent,
        table: &TransitionTable,
    ) -> Result<Outcome, StoreError> {
        let mut client = self.pool.get().await.map_err(pg_error)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(&mut client, job_id, event, table).await {
                Err(Attempt::Unique) if attempt < 2 => continue,
                Err(Attempt::Unique) => {
                    return Err(pg_error("ledger unique violation persisted").into());
                }
                Err(Attempt::Store(e)) => return Err(e),
                Ok(outcome) => return Ok(outcome),
            }
        }
    }

    async fn attempt(
        &self,
        client: &mut deadpool_postgres::Object,
        job_id: &str,
        event: &CallbackEvent,
        table: &TransitionTable,
    ) -> Result<Outcome, Attempt> {
        let sql = &self.sql;
        let tx = client.transaction().await.map_err(Attempt::pg)?;
        let lock = tx
            .prepare_cached(&sql.lock_job)
            .await
            .map_err(Attempt::pg)?;
        let Some(row) = tx.query_opt(&lock, &[&job_id]).await.map_err(Attempt::pg)? else {
            tx.rollback().await.map_err(Attempt::pg)?;
            return Ok(Outcome::NotFound);
        };
        let job = snapshot(job_id, &row);
        let find = tx
            .prepare_cached(&sql.find_event)
            .await
            .map_err(Attempt::pg)?;
        let prior: Option<[u8; 32]> = tx
            .query_opt(&find, &[&job_id, &event.event_id])
            .await
            .map_err(Attempt::pg)?
            .and_then(|r| r.get::<_, Vec<u8>>(0).try_into().ok());
        let outcome = decide(&job, prior.as_ref(), event, table);
        let Outcome::Applied { from, .. } = &outcome else {
            tx.rollback().await.map_err(Attempt::pg)?;
            return Ok(outcome);
        };
        let seq = job.applied_events + 1;
        let seq_i64 = i64::try_from(seq).map_err(|e| Attempt::Store(pg_error(e).into()))?;
        let at_ns = event.occurred_at.unix_nanos();
        let update = tx
            .prepare_cached(&sql.update_job)
            .await
            .map_err(Attempt::pg)?;
        tx.execute(&update, &[&job_id, &event.status, &at_ns, &seq_i64])
            .await
            .map_err(Attempt::pg)?;
        let insert = tx
            .prepare_cached(&sql.insert_event)
            .await
            .map_err(Attempt::pg)?;
        let fingerprint = event.fingerprint().to_vec();
        tx.execute(
            &insert,
            &[
                &job_id,
                &event.event_id,
                &seq_i64,
                &fingerprint,
                from,
                &event.status,
                &at_ns,
                &event.occurred_at.to_string(),
                &event.canonical_json(),
            ],
        )
        .await
        .map_err(Attempt::pg)?;
        if let Some(hook) = &self.hook {
            let change = Change {
                job_id,
                from,
                event,
                seq,
            };
            hook.on_transition(&tx, &change)
                .await
                .map_err(|e| Attempt::Store(e.into()))?;
        }
        tx.commit().await.map_err(Attempt::pg)?;
        Ok(outcome)
    }
}

enum Attempt {
    Unique,
    Store(StoreError),
}

impl Attempt {
    fn pg(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            Self::Unique
        } else {
            Self::Store(pg_error(e).into())
        }
    }
}

fn snapshot(job_id: &str, row: &tokio_postgres::Row) -> JobSnapshot {
    let latest: Option<i64> = row.get(1);
    let applied: i64 = row.get(2);
    JobSnapshot {
        job_id: job_id.to_owned(),
        status: row.get(0),
        latest_occurred_at: latest.map(Timestamp::from_unix_nanos),
        applied_events: u64::try_from(applied).unwrap_or(0),
    }
}

impl JobStore for PgJobStore {
    fn apply<'a>(
        &'a self,
        job_id: &'a str,
        event: &'a CallbackEvent,
        table: &'a TransitionTable,
    ) -> BoxFuture<'a, Result<Outcome, StoreError>> {
        Box::pin(self.apply_tx(job_id, event, table))
    }

    fn create_job<'a>(
        &'a self,
        job_id: &'a str,
        status: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pg_error)?;
            let stmt = client
                .prepare_cached(&self.sql.insert_job)
                .await
                .map_err(pg_error)?;
            let n = client
                .execute(&stmt, &[&job_id, &status])
                .await
                .map_err(pg_error)?;
            Ok(n == 1)
        })
    }

    fn job<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<JobSnapshot>, BackendError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pg_error)?;
            let stmt = client
                .prepare_cached(&self.sql.select_job)
                .await
                .map_err(pg_error)?;
            let row = client
                .query_opt(&stmt, &[&job_id])
                .await
                .map_err(pg_error)?;
            Ok(row.map(|r| snapshot(job_id, &r)))
        })
    }

    fn history<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<AppliedEvent>, BackendError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pg_error)?;
            let stmt = client
                .prepare_cached(&self.sql.select_history)
                .await
                .map_err(pg_error)?;
            let rows = client.query(&stmt, &[&job_id]).await.map_err(pg_error)?;
            Ok(rows
                .iter()
                .map(|r| AppliedEvent {
                    seq: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
                    event_id: r.get(1),
                    from_status: r.get(2),
                    to_status: r.get(3),
                    occurred_at: Timestamp::from_unix_nanos(r.get(4)),
                    fingerprint: r.get::<_, Vec<u8>>(5).try_into().unwrap_or([0; 32]),
                })
                .collect())
        })
    }
}
