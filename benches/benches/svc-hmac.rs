//! svc-hmac: verification of signed requests (digest + MAC + nonce) through the full
//! `ServiceAuthLayer`, the unverified (exempt) path against a bare service, and signing.
//!
//! Each verified request is signed in the untimed setup with a fresh nonce. Two manual
//! clocks step one second per request, the signer's in the setup and the verifier's in the
//! routine, so request i is signed and verified at the same second (criterion sets up a whole
//! batch before running it) and the in-memory nonce cache stays at its steady size (~600).
//! The routine asserts 200, so a fast rejection can never pass for a verification.
//!
//! Every scenario runs twice: group `svc-hmac` measures wall time (criterion's default),
//! group `svc-hmac-cpu` measures the benchmark thread's CPU time, which stays meaningful
//! when other processes load the machine (everything runs on that one thread: the runtime
//! is current-thread and the stores are in memory).

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::{Measurement, WallTime};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gw_benches::ThreadCpuTime;
use gw_core::ManualClock;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use svc_hmac::{
    KeyRing, MemoryKeyStore, MemoryNonceCache, Mode, ServiceAuthLayer, ServiceKey, Signer,
    VerifiedBody, wire,
};
use tower::{ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

fn scenarios<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let clock = ManualClock::at_unix(1_760_000_000);
    let sign_clock = ManualClock::at_unix(1_760_000_000);
    let keys = MemoryKeyStore::new()
        .with_ring(KeyRing::new("npu-worker").key(ServiceKey::new("k1", "npu-worker-secret-0001")));
    let layer = ServiceAuthLayer::new(keys)
        .clock(Arc::new(clock.clone()))
        .nonce_cache(MemoryNonceCache::new(100_000).clock(Arc::new(clock.clone())))
        .default_mode(Mode::Off)
        .service_only("/api/npu/*");
    let handler = |_req: Request<VerifiedBody<Body>>| async {
        Ok::<_, Infallible>(Response::new(Body::default()))
    };
    let svc = ServiceBuilder::new().layer(layer).service_fn(handler);
    let bare = ServiceBuilder::new().service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::default()))
    });
    let signer = Signer::new("npu-worker", "k1", "npu-worker-secret-0001")
        .unwrap()
        .clock(Arc::new(sign_clock.clone()));
    let payload = Bytes::from(vec![b'x'; 1024]);
    let signed = |method: Method, uri: &str, body: &Bytes| {
        sign_clock.advance(Duration::from_secs(1));
        let (mut parts, ()) = Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts();
        signer.sign(&mut parts, body).unwrap();
        Request::from_parts(parts, Body::new(body.clone()))
    };
    let verified = |req| {
        clock.advance(Duration::from_secs(1));
        let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res
    };
    clock.advance(Duration::from_secs(1));
    let res = rt
        .block_on(
            svc.clone()
                .oneshot(signed(Method::POST, "/api/npu/results/42", &payload)),
        )
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let mut g = c.benchmark_group(group);
    g.bench_function("verify/post-1KiB", |b| {
        b.iter_batched(
            || signed(Method::POST, "/api/npu/results/42", &payload),
            verified,
            BatchSize::SmallInput,
        )
    });
    g.bench_function("verify/get-query", |b| {
        b.iter_batched(
            || signed(Method::GET, "/api/npu/status?verbose=1", &Bytes::new()),
            verified,
            BatchSize::SmallInput,
        )
    });
    g.bench_function("reject/missing-headers", |b| {
        b.iter_batched(
            || {
                Request::post("/api/npu/results/42")
                    .body(Body::new(payload.clone()))
                    .unwrap()
            },
            |req| rt.block_on(svc.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("off-path/bare", |b| {
        b.iter_batched(
            || Request::get("/api/chats/1").body(Body::default()).unwrap(),
            |req| rt.block_on(bare.oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("off-path/layered", |b| {
        b.iter_batched(
            || Request::get("/api/chats/1").body(Body::default()).unwrap(),
            |req| rt.block_on(svc.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("sign/post-1KiB", |b| {
        let (parts, ()) = Request::post("/api/npu/results/42")
            .body(())
            .unwrap()
            .into_parts();
        b.iter_batched(
            || parts.clone(),
            |mut parts| signer.sign(&mut parts, black_box(&payload)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("digest/1KiB", |b| {
        b.iter(|| wire::content_digest(black_box(&payload)))
    });
    g.finish();
}

fn wall(c: &mut Criterion<WallTime>) {
    scenarios(c, "svc-hmac");
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    scenarios(c, "svc-hmac-cpu");
}

criterion_group!(benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(benches, cpu_benches);
