//! gw-core and gw-problem hot paths: path normalization, route matching, and the
//! ProblemLayer's per-request overhead against a bare service.

// The benchmark allocator (mimalloc), as in every benchmark binary.
use gw_benches as _;

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use gw_core::{RouteSet, normalize_path};
use gw_problem::ProblemLayer;
use http::{Method, Request, Response};
use http_body_util::Full;
use tower::{Service, ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

fn paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("path");
    g.bench_function("normalize/clean", |b| {
        b.iter(|| normalize_path(black_box("/api/v1/agents/42/runs")))
    });
    g.bench_function("normalize/encoded", |b| {
        b.iter(|| normalize_path(black_box("/api/v1/agents/a%20b/runs/")))
    });
    let public = RouteSet::from_routes([
        "/health",
        "/healthz",
        "/ready",
        "/metrics",
        "/docs/*",
        "/redoc/*",
        "/openapi.json",
    ])
    .unwrap();
    g.bench_function("routeset/7-public-miss", |b| {
        b.iter(|| public.matches(black_box(&Method::GET), black_box("/api/v1/agents/42")))
    });
    let mut table = RouteSet::new();
    for (i, r) in [
        "POST /api/v1/deployments",
        "DELETE /api/v1/agents/{id}",
        "PUT,PATCH /api/v1/billing/*",
        "POST /api/v1/subscriptions/{id}/change",
        "GET /api/v1/data/export",
        "DELETE /api/v1/customers/{id}",
        "/api/v1/*",
    ]
    .into_iter()
    .enumerate()
    {
        table.insert(r, i).unwrap();
    }
    g.bench_function("routeset/7-table-find", |b| {
        b.iter(|| table.find(black_box(&Method::DELETE), black_box("/api/v1/agents/42")))
    });
    g.finish();
}

fn problem_layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handler =
        |_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::default())) };
    let bare = ServiceBuilder::new().service_fn(handler);
    let layered = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .service_fn(handler);
    let req = || {
        Request::get("/api/v1/agents/42")
            .header("x-correlation-id", "bench-1")
            .body(Body::default())
            .unwrap()
    };

    let mut g = c.benchmark_group("problem_layer");
    g.bench_function("bare", |b| {
        b.iter(|| rt.block_on(bare.oneshot(req())).unwrap())
    });
    g.bench_function("with_inbound_id", |b| {
        b.iter(|| rt.block_on(layered.clone().oneshot(req())).unwrap())
    });
    g.bench_function("generated_id", |b| {
        let mut svc = layered.clone();
        b.iter(|| {
            rt.block_on(svc.call(Request::get("/").body(Body::default()).unwrap()))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, paths, problem_layer);
criterion_main!(benches);
