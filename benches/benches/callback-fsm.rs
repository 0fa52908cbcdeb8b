//! callback-fsm hot paths: the secret gate, body parsing and fingerprinting, the layer's
//! pass-through overhead, and whole callbacks against the in-memory store.

// The benchmark allocator (mimalloc), as in every benchmark binary.
use gw_benches as _;

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use callback_fsm::{
    CallbackEvent, CallbackLayer, CallbackSecrets, JobStore, MemoryJobStore, TransitionTable,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

const SECRET: &str = "bench-callback-secret-0123456789abcdef";
const EVENT: &str = r#"{"event_id":"evt-0001","status":"running","occurred_at":"2026-03-01T00:00:01.250Z","actor_type":"system","artifact_updates":{"log":"s3://bucket/job/log.txt"}}"#;

fn secrets(c: &mut Criterion) {
    let one = CallbackSecrets::new([SECRET]).unwrap();
    let three = CallbackSecrets::new([
        "old-callback-secret-0123456789abcdefgh",
        "older-callback-secret-0123456789abcdefg",
        SECRET,
    ])
    .unwrap();
    let mut g = c.benchmark_group("callback_secret");
    g.bench_function("verify/1-secret", |b| {
        b.iter(|| one.verify(black_box(Some(SECRET.as_bytes()))))
    });
    g.bench_function("verify/3-secrets", |b| {
        b.iter(|| three.verify(black_box(Some(SECRET.as_bytes()))))
    });
    g.bench_function("verify/3-secrets-wrong", |b| {
        b.iter(|| three.verify(black_box(Some(b"wrong".as_slice()))))
    });
    g.finish();

    let table = TransitionTable::default();
    c.bench_function("callback_event/parse+fingerprint", |b| {
        b.iter(|| CallbackEvent::from_json(black_box(EVENT.as_bytes()), &table).unwrap())
    });
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handler =
        |_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::default())) };
    let store = MemoryJobStore::new();
    rt.block_on(store.create_job("job-1", "running")).unwrap();
    let table = TransitionTable::job_lifecycle().allow("running", ["running"]);
    let bare = ServiceBuilder::new().service_fn(handler);
    let layered = ServiceBuilder::new()
        .layer(
            CallbackLayer::new(CallbackSecrets::new([SECRET]).unwrap(), store).transitions(table),
        )
        .service_fn(handler);
    let callback = |secret: &str, body: Bytes| {
        Request::post("/internal/jobs/job-1/status")
            .header("x-callback-secret", secret)
            .header("content-type", "application/json")
            .body(Body::new(body))
            .unwrap()
    };

    let mut g = c.benchmark_group("callback_layer");
    let other = || {
        Request::get("/api/v1/agents/42")
            .body(Body::default())
            .unwrap()
    };
    g.bench_function("bare", |b| {
        b.iter(|| rt.block_on(bare.oneshot(other())).unwrap())
    });
    g.bench_function("pass_through", |b| {
        b.iter(|| rt.block_on(layered.clone().oneshot(other())).unwrap())
    });
    let other_post = || {
        Request::post("/api/v1/agents/42/runs")
            .body(Body::default())
            .unwrap()
    };
    g.bench_function("bare_post", |b| {
        b.iter(|| rt.block_on(bare.oneshot(other_post())).unwrap())
    });
    g.bench_function("pass_through_post", |b| {
        b.iter(|| rt.block_on(layered.clone().oneshot(other_post())).unwrap())
    });
    g.bench_function("reject_secret", |b| {
        b.iter(|| {
            rt.block_on(
                layered
                    .clone()
                    .oneshot(callback("wrong", Bytes::from_static(EVENT.as_bytes()))),
            )
            .unwrap()
        })
    });
    // First application, then every iteration is an idempotent replay.
    let replay = Bytes::from_static(EVENT.as_bytes());
    assert_eq!(
        rt.block_on(layered.clone().oneshot(callback(SECRET, replay.clone())))
            .unwrap()
            .status(),
        204
    );
    g.bench_function("replay_200", |b| {
        b.iter(|| {
            rt.block_on(layered.clone().oneshot(callback(SECRET, replay.clone())))
                .unwrap()
        })
    });
    let mut n: u64 = 0;
    g.bench_function("apply_204", |b| {
        b.iter_batched(
            || {
                n += 1;
                let body = format!(
                    r#"{{"event_id":"apply-{n}","status":"running","occurred_at":"2026-03-02T00:00:00.{n:09}Z"}}"#
                );
                callback(SECRET, Bytes::from(body))
            },
            |req| {
                let res = rt.block_on(layered.clone().oneshot(req)).unwrap();
                debug_assert_eq!(res.status(), 204);
                res
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, secrets, layer);
criterion_main!(benches);
