//! The contract (steps 3 to 7) as a suite run against every backend.

use callback_fsm::{JobStore, Timestamp, TransitionTable};
use http::StatusCode;
use rand::seq::SliceRandom;
use serde_json::json;

use super::{body, json_callback, layered, post, send, ts};

pub async fn steps<S: JobStore + Clone>(store: S) {
    store.create_job("job-a", "queued").await.unwrap();
    let svc = layered(store.clone(), TransitionTable::default());

    // 3. Unknown job.
    let (status, problem) = send(
        &svc,
        json_callback("nope", &body("e1", "dispatched", &ts(1))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "RESOURCE_NOT_FOUND");

    // 7. Applied.
    let first = body("e1", "dispatched", &ts(1));
    assert_eq!(
        post(&svc, "job-a", &first).await,
        (StatusCode::NO_CONTENT, String::new())
    );
    let job = store.job("job-a").await.unwrap().unwrap();
    assert_eq!(job.status, "dispatched");
    assert_eq!(job.applied_events, 1);
    assert_eq!(
        job.latest_occurred_at,
        Some(Timestamp::parse_rfc3339(&ts(1)).unwrap())
    );

    // 4. Replay (same payload, keys reordered and an explicit null) -> 200, no change.
    let reordered = json!({"occurred_at": ts(1), "failure_code": null, "status": "dispatched", "event_id": "e1"});
    let (status, replay) = send(&svc, json_callback("job-a", &reordered)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        replay,
        json!({"job_id": "job-a", "event_id": "e1", "status": "dispatched", "replayed": true})
    );
    // Same event id, other payload -> 409.
    let mut changed = first.clone();
    changed["actor_type"] = json!("system");
    let (status, problem) = send(&svc, json_callback("job-a", &changed)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "EVENT_ID_PAYLOAD_MISMATCH");
    assert_eq!(problem["event_id"], "e1");

    // 5. Ordering: equal and earlier timestamps.
    let (status, problem) =
        send(&svc, json_callback("job-a", &body("e2", "running", &ts(1)))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "CALLBACK_OUT_OF_ORDER");
    assert_eq!(problem["latest_applied_occurred_at"], ts(1));
    let same_instant =
        json!({"event_id": "e2", "status": "running", "occurred_at": "2026-03-01T01:00:01+01:00"});
    assert_eq!(
        post(&svc, "job-a", &same_instant).await.1,
        "CALLBACK_OUT_OF_ORDER"
    );
    assert_eq!(
        post(
            &svc,
            "job-a",
            &body("e2", "running", "2026-02-28T23:59:59Z")
        )
        .await
        .1,
        "CALLBACK_OUT_OF_ORDER"
    );

    // 6. FSM.
    let (status, problem) = send(
        &svc,
        json_callback("job-a", &body("e2", "succeeded", &ts(2))),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "FSM_TRANSITION_INVALID");
    assert_eq!(problem["current_state"], "dispatched");
    assert_eq!(problem["requested_state"], "succeeded");
    assert_eq!(
        problem["allowed_next_states"],
        json!(["running", "cancelled"])
    );

    // Nothing above changed the job.
    let job = store.job("job-a").await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.applied_events), ("dispatched", 1));

    // A sub-second later event is in order.
    let later = json!({"event_id": "e2", "status": "running", "occurred_at": "2026-03-01T00:00:01.000000001Z"});
    assert_eq!(post(&svc, "job-a", &later).await.0, StatusCode::NO_CONTENT);
    let failed = json!({"event_id": "e3", "status": "failed", "occurred_at": ts(3),
        "failure_code": "OOM", "failure_message": "out of memory", "failed_stage": "render",
        "actor_type": "system", "artifact_updates": [{"name": "log", "uri": "s3://x"}]});
    assert_eq!(post(&svc, "job-a", &failed).await.0, StatusCode::NO_CONTENT);
    // Terminal: nothing allowed next.
    let (status, problem) = send(
        &svc,
        json_callback("job-a", &body("e4", "cancelled", &ts(4))),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["allowed_next_states"], json!([]));
    // An old event replays even though it is older than the latest.
    assert_eq!(post(&svc, "job-a", &first).await.0, StatusCode::OK);

    let history = store.history("job-a").await.unwrap();
    let trail: Vec<_> = history
        .iter()
        .map(|e| {
            (
                e.seq,
                e.event_id.as_str(),
                e.from_status.as_str(),
                e.to_status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            (1, "e1", "queued", "dispatched"),
            (2, "e2", "dispatched", "running"),
            (3, "e3", "running", "failed")
        ]
    );
    assert_eq!(history[1].occurred_at.unix_nanos() % 1_000_000_000, 1);
    let job = store.job("job-a").await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.applied_events), ("failed", 3));
    assert!(!store.create_job("job-a", "queued").await.unwrap());
    assert_eq!(store.job("job-a").await.unwrap().unwrap().status, "failed");
}

/// 100 identical callbacks at once: applied exactly once, 99 replays.
pub async fn concurrent_identical<S: JobStore + Clone>(store: S) {
    store.create_job("job-dup", "queued").await.unwrap();
    let svc = layered(store.clone(), TransitionTable::default());
    let event = body("dup-1", "dispatched", &ts(10));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let svc = svc.clone();
            let event = event.clone();
            tokio::spawn(async move { post(&svc, "job-dup", &event).await.0 })
        })
        .collect();
    let mut applied = 0;
    let mut replayed = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::NO_CONTENT => applied += 1,
            StatusCode::OK => replayed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((applied, replayed), (1, 99));
    let history = store.history("job-dup").await.unwrap();
    assert_eq!(history.len(), 1);
    let job = store.job("job-dup").await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.applied_events), ("dispatched", 1));
}

/// 100 different valid events on one job at once, in random order: whatever subset is
/// applied forms a consistent history, and the job agrees with it.
pub async fn concurrent_different<S: JobStore + Clone>(store: S) {
    store.create_job("job-many", "running").await.unwrap();
    let table = TransitionTable::job_lifecycle().allow("running", ["running"]);
    let svc = layered(store.clone(), table);
    let mut events: Vec<_> = (1..=100u32)
        .map(|i| body(&format!("ev-{i:03}"), "running", &ts(100 + i)))
        .collect();
    events.shuffle(&mut rand::rng());
    let tasks: Vec<_> = events
        .iter()
        .cloned()
        .map(|event| {
            let svc = svc.clone();
            tokio::spawn(async move { post(&svc, "job-many", &event).await })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            (StatusCode::NO_CONTENT, _) => applied += 1,
            (StatusCode::CONFLICT, code) => assert_eq!(code, "CALLBACK_OUT_OF_ORDER"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(applied >= 1);
    let history = store.history("job-many").await.unwrap();
    assert_eq!(history.len(), applied);
    for (i, e) in history.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(
            (e.from_status.as_str(), e.to_status.as_str()),
            ("running", "running")
        );
        if i > 0 {
            assert!(
                e.occurred_at > history[i - 1].occurred_at,
                "history out of order"
            );
        }
    }
    let job = store.job("job-many").await.unwrap().unwrap();
    assert_eq!(job.applied_events, applied as u64);
    assert_eq!(
        job.latest_occurred_at,
        history.last().map(|e| e.occurred_at)
    );
    // The ledger agrees: applied events replay, the rest stay out of order.
    let mut replays = 0;
    for event in &events {
        match post(&svc, "job-many", event).await {
            (StatusCode::OK, _) => replays += 1,
            (StatusCode::CONFLICT, code) => assert_eq!(code, "CALLBACK_OUT_OF_ORDER"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(replays, applied);
}

/// Bodies that are valid JSON but hold U+0000, which PostgreSQL text and JSONB cannot
/// store: 409 `VALIDATION_ERROR` naming the field on every backend, nothing written.
pub async fn nul_characters_are_refused<S: JobStore + Clone>(store: S) {
    store.create_job("job-nul", "queued").await.unwrap();
    let svc = layered(store.clone(), TransitionTable::default());
    let cases = [
        ("failure_message", json!("a\u{0}b")),
        ("actor_type", json!("system\u{0}")),
        ("failed_stage", json!("\u{0}")),
        ("failure_code", json!("OOM\u{0}")),
        ("artifact_updates", json!({"k\u{0}": 1})),
        (
            "artifact_updates",
            json!([{"name": "log", "uri": ["s3://x\u{0}"]}]),
        ),
    ];
    for (i, (field, value)) in cases.into_iter().enumerate() {
        let mut event = body(&format!("nul-{i}"), "dispatched", &ts(1));
        event[field] = value;
        let (status, problem) = send(&svc, json_callback("job-nul", &event)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{event}: {problem}");
        assert_eq!(problem["code"], "VALIDATION_ERROR", "{event}");
        assert_eq!(problem["field"], field, "{event}");
    }
    let job = store.job("job-nul").await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.applied_events), ("queued", 0));
    assert!(store.history("job-nul").await.unwrap().is_empty());
    // The same event without the NUL applies.
    let mut event = body("nul-ok", "dispatched", &ts(1));
    event["failure_message"] = json!("ab");
    assert_eq!(
        post(&svc, "job-nul", &event).await.0,
        StatusCode::NO_CONTENT
    );
}
