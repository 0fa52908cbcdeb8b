//! [`migrate`]: the crate's schema, applied into a schema of your choice.

use gw_core::BackendError;

use super::{check_schema, pg_error};

/// The migrations shipped with the crate, in order: `(version, SQL)`, with `{schema}`
/// standing for the target schema.
pub const MIGRATIONS: &[(i32, &str)] =
    &[(1, include_str!("../../../migrations/0001_callback_fsm.sql"))];

/// Creates `schema` if needed and applies the [`MIGRATIONS`] not yet applied there, in one
/// transaction under an advisory lock (safe to run from several processes at once).
pub async fn migrate(
    client: &mut tokio_postgres::Client,
    schema: &str,
) -> Result<(), BackendError> {
    check_schema(schema)?;
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('callback_fsm_migrate:' || $1::text))",
        &[&schema],
    )
    .await
    .map_err(pg_error)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.callback_fsm_migrations (
             version INT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(pg_error)?;
    let applied: Vec<i32> = tx
        .query(
            &format!("SELECT version FROM {schema}.callback_fsm_migrations"),
            &[],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(&sql.replace("{schema}", schema))
            .await
            .map_err(pg_error)?;
        tx.execute(
            &format!("INSERT INTO {schema}.callback_fsm_migrations (version) VALUES ($1)"),
            &[version],
        )
        .await
        .map_err(pg_error)?;
        tracing::info!(schema, version, "callback-fsm migration applied");
    }
    tx.commit().await.map_err(pg_error)
}
