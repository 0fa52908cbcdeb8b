//! The contract against PostgreSQL (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`), each test in its own schema.
#![cfg(feature = "postgres")]

mod common;

use std::future::Future;
use std::panic::AssertUnwindSafe;

use callback_fsm::backend::postgres::MIGRATIONS;
use callback_fsm::{
    BoxFuture, Change, JobStore, PgJobStore, Transition, TransitionError, TransitionTable, migrate,
};
use common::*;
use futures_util::FutureExt;
use http::StatusCode;
use tokio_postgres::{NoTls, Transaction};

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&database_url(), NoTls)
        .await
        .expect("PostgreSQL must be reachable at DATABASE_URL");
    tokio::spawn(conn);
    client
}

/// Runs `test` against a fresh, migrated schema, and drops the schema afterwards (also
/// when the test fails).
async fn with_schema<F, Fut>(test: F)
where
    F: FnOnce(PgJobStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let schema = format!("cbfsm_test_{:016x}", rand::random::<u64>());
    let store = PgJobStore::connect(&database_url(), &schema, 8).unwrap();
    store.migrate().await.expect("migration");
    let outcome = AssertUnwindSafe(test(store.clone())).catch_unwind().await;
    admin()
        .await
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_steps() {
    with_schema(common::contract::steps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_not_503() {
    with_schema(common::contract::nul_characters_are_refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_identical_callbacks_apply_exactly_once() {
    with_schema(common::contract::concurrent_identical).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_different_events_keep_history_consistent() {
    with_schema(common::contract::concurrent_different).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_secret_leaves_database_untouched() {
    with_schema(|store| async move {
        store.create_job("job-1", "queued").await.unwrap();
        let svc = layered(store.clone(), TransitionTable::default());
        let event = body("e1", "dispatched", &ts(1)).to_string();
        for secret in [None, Some("wrong"), Some(&SECRET[1..])] {
            let (status, problem) = send(&svc, callback("job-1", secret, event.clone())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(problem["code"], "UNAUTHORIZED");
        }
        let job = store.job("job-1").await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), job.applied_events), ("queued", 0));
        let client = store.pool().get().await.unwrap();
        let row = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {s}.callback_events),
                            (SELECT updated_at = created_at FROM {s}.callback_jobs WHERE job_id = 'job-1')",
                    s = store.schema()
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 0);
        assert!(row.get::<_, bool>(1), "job row was never updated");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_row_holds_the_canonical_payload() {
    with_schema(|store| async move {
        store.create_job("job-1", "queued").await.unwrap();
        let svc = layered(store.clone(), TransitionTable::default());
        let event = serde_json::json!({"status": "dispatched", "event_id": "e1",
            "occurred_at": "2026-03-01T01:00:00.5+01:00", "artifact_updates": {"b": 1, "a": 2}});
        assert_eq!(post(&svc, "job-1", &event).await.0, StatusCode::NO_CONTENT);
        let client = store.pool().get().await.unwrap();
        let row = client
            .query_one(
                &format!(
                    "SELECT payload::text, occurred_at = '2026-03-01T00:00:00.5Z'::timestamptz, seq, octet_length(fingerprint)
                     FROM {}.callback_events WHERE job_id = 'job-1' AND event_id = 'e1'",
                    store.schema()
                ),
                &[],
            )
            .await
            .unwrap();
        let payload: serde_json::Value = serde_json::from_str(row.get(0)).unwrap();
        assert_eq!(payload["occurred_at"], "2026-03-01T00:00:00.5Z");
        assert_eq!(payload["artifact_updates"], serde_json::json!({"a": 2, "b": 1}));
        assert!(row.get::<_, bool>(1));
        assert_eq!(row.get::<_, i64>(2), 1);
        assert_eq!(row.get::<_, i32>(3), 32);
    })
    .await;
}

/// Writes an outbox row in the same transaction; refuses `cancelled`.
struct Outbox {
    schema: String,
}

impl<'t> Transition<Transaction<'t>> for Outbox {
    fn on_transition<'a>(
        &'a self,
        tx: &'a Transaction<'t>,
        change: &'a Change<'a>,
    ) -> BoxFuture<'a, Result<(), TransitionError>> {
        Box::pin(async move {
            tx.execute(
                &format!(
                    "INSERT INTO {}.outbox (job_id, status) VALUES ($1, $2)",
                    self.schema
                ),
                &[&change.job_id, &change.event.status],
            )
            .await
            .map_err(|e| TransitionError(e.to_string()))?;
            if change.event.status == "cancelled" {
                return Err(TransitionError("cancellation refused".into()));
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_shares_the_transaction() {
    with_schema(|store| async move {
        let schema = store.schema().to_owned();
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.outbox (job_id TEXT NOT NULL, status TEXT NOT NULL)"
            ))
            .await
            .unwrap();
        let store = store.with_hook(Outbox {
            schema: schema.clone(),
        });
        store.create_job("job-1", "queued").await.unwrap();
        let svc = layered(store.clone(), TransitionTable::default());
        assert_eq!(
            post(&svc, "job-1", &body("e1", "dispatched", &ts(1)))
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            post(&svc, "job-1", &body("e1", "dispatched", &ts(1)))
                .await
                .0,
            StatusCode::OK
        );
        let (status, code) = post(&svc, "job-1", &body("e2", "cancelled", &ts(2))).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "TRANSITION_HOOK_FAILED")
        );
        // The failed hook's own insert, the job update and the ledger row are all rolled back.
        let rows = client
            .query(&format!("SELECT job_id, status FROM {schema}.outbox"), &[])
            .await
            .unwrap();
        let outbox: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(outbox, [("job-1".to_owned(), "dispatched".to_owned())]);
        let job = store.job("job-1").await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), job.applied_events), ("dispatched", 1));
        assert_eq!(store.history("job-1").await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_recorded() {
    with_schema(|store| async move {
        let mut client = admin().await;
        migrate(&mut client, store.schema()).await.unwrap();
        store.migrate().await.unwrap();
        let versions: Vec<i32> = client
            .query(
                &format!("SELECT version FROM {}.callback_fsm_migrations ORDER BY version", store.schema()),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let shipped: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, shipped);
        // The ledger enforces one row per (job_id, event_id).
        store.create_job("j", "queued").await.unwrap();
        let insert = format!(
            "INSERT INTO {}.callback_events (job_id, event_id, seq, fingerprint, from_status, to_status, occurred_ns, occurred_at, payload)
             VALUES ('j', 'e', $1, decode(repeat('00', 32), 'hex'), 'queued', 'dispatched', 0, now(), '{{}}')",
            store.schema()
        );
        client.execute(&insert, &[&1i64]).await.unwrap();
        let dup = client.execute(&insert, &[&2i64]).await.unwrap_err();
        assert_eq!(dup.code(), Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION));
    })
    .await;
}

#[tokio::test]
async fn refuses_unsafe_schema_names() {
    for bad in [
        "",
        "Public",
        "a-b",
        "x;drop table y",
        "1abc",
        &"a".repeat(64),
    ] {
        assert!(
            PgJobStore::connect(&database_url(), bad, 1).is_err(),
            "{bad}"
        );
        let mut client = admin().await;
        assert!(migrate(&mut client, bad).await.is_err(), "{bad}");
    }
}

#[tokio::test]
async fn unreachable_database_is_503() {
    // Nothing listens on port 1.
    let store = PgJobStore::connect(
        "postgres://postgres@127.0.0.1:1/test",
        "cbfsm_unreachable",
        1,
    )
    .unwrap();
    let svc = layered(store, TransitionTable::default());
    let (status, code) = post(&svc, "job-1", &body("e1", "dispatched", &ts(1))).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE")
    );
    // The secret gate still answers without the database.
    let (status, _) = send(&svc, callback("job-1", Some("wrong"), "{}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Never finishes for `running`, so the request can be abandoned mid-transaction.
struct Stall;

impl<'t> Transition<Transaction<'t>> for Stall {
    fn on_transition<'a>(
        &'a self,
        _tx: &'a Transaction<'t>,
        change: &'a Change<'a>,
    ) -> BoxFuture<'a, Result<(), TransitionError>> {
        let stall = change.event.status == "running";
        Box::pin(async move {
            if stall {
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_request_rolls_back_and_releases_the_row() {
    with_schema(|store| async move {
        let store = store.with_hook(Stall);
        store.create_job("job-1", "dispatched").await.unwrap();
        let svc = layered(store.clone(), TransitionTable::default());
        // The client goes away while the transaction holds the row lock.
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            post(&svc, "job-1", &body("e1", "running", &ts(1))),
        )
        .await;
        assert!(abandoned.is_err(), "the stalled hook cannot have answered");
        // The row is free again and nothing of the abandoned event was kept.
        assert_eq!(
            post(&svc, "job-1", &body("e2", "cancelled", &ts(2)))
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        let history = store.history("job-1").await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].event_id, "e2");
        assert_eq!(
            store.job("job-1").await.unwrap().unwrap().status,
            "cancelled"
        );
    })
    .await;
}
