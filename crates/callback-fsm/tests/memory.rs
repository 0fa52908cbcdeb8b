//! The contract against the in-memory store: every step, concurrency, the hook.

mod common;

use std::sync::{Arc, Mutex};

use callback_fsm::{Change, JobStore, MemoryJobStore, TransitionError, TransitionTable};
use common::*;
use http::StatusCode;

#[tokio::test]
async fn contract_steps() {
    common::contract::steps(MemoryJobStore::new()).await;
}

#[tokio::test]
async fn nul_characters_are_refused() {
    common::contract::nul_characters_are_refused(MemoryJobStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_apply_once() {
    common::contract::concurrent_identical(MemoryJobStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_different_keep_history_consistent() {
    common::contract::concurrent_different(MemoryJobStore::new()).await;
}

#[tokio::test]
async fn hook_runs_in_the_unit_and_its_failure_rolls_back() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let store = MemoryJobStore::with_hook(move |change: &Change<'_>| {
        if change.event.status == "cancelled" {
            return Err(TransitionError("refusing to cancel".into()));
        }
        log.lock().unwrap().push(format!(
            "{}:{}->{}#{}",
            change.job_id, change.from, change.event.status, change.seq
        ));
        Ok(())
    });
    store.create_job("job-1", "queued").await.unwrap();
    let svc = layered(store.clone(), TransitionTable::default());
    assert_eq!(
        post(&svc, "job-1", &body("e1", "dispatched", &ts(1)))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    // Replays and conflicts do not run the hook.
    assert_eq!(
        post(&svc, "job-1", &body("e1", "dispatched", &ts(1)))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        post(&svc, "job-1", &body("e9", "succeeded", &ts(2)))
            .await
            .0,
        StatusCode::CONFLICT
    );
    let (status, code) = post(&svc, "job-1", &body("e2", "cancelled", &ts(2))).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "TRANSITION_HOOK_FAILED")
    );
    assert_eq!(*seen.lock().unwrap(), ["job-1:queued->dispatched#1"]);
    let job = store.job("job-1").await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.applied_events), ("dispatched", 1));
    // The refused event left no ledger entry: a different payload under its id is fine.
    assert_eq!(
        post(&svc, "job-1", &body("e2", "running", &ts(2))).await.0,
        StatusCode::NO_CONTENT
    );
}

struct Stall;

impl callback_fsm::Transition<()> for Stall {
    fn on_transition<'a>(
        &'a self,
        _unit: &'a (),
        change: &'a Change<'a>,
    ) -> callback_fsm::BoxFuture<'a, Result<(), TransitionError>> {
        let stall = change.event.status == "running";
        Box::pin(async move {
            if stall {
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }
}

#[tokio::test]
async fn abandoned_request_releases_the_job_lock_and_writes_nothing() {
    let store = MemoryJobStore::with_hook(Stall);
    store.create_job("job-1", "dispatched").await.unwrap();
    let svc = layered(store.clone(), TransitionTable::default());
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        post(&svc, "job-1", &body("e1", "running", &ts(1))),
    )
    .await;
    assert!(abandoned.is_err(), "the stalled hook cannot have answered");
    assert_eq!(
        post(&svc, "job-1", &body("e2", "cancelled", &ts(2)))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let history = store.history("job-1").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].event_id, "e2");
}
