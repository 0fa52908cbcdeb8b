//! gw-rbac: per-decision cost of each engine, the decision cache, the route mapper, and
//! the layer's per-request overhead against a bare service.

// The benchmark allocator (mimalloc), as in every benchmark binary.
use gw_benches as _;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use gw_core::{Principal, PrincipalData};
use gw_rbac::{
    AuthzInput, DecisionCache, NativeAuthorizer, Policy, RbacLayer, RegoAuthorizer, RouteMapper,
};
use http::{Method, Request, Response};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

fn principal(roles: &[&str]) -> Principal {
    Principal::from(PrincipalData {
        sub: "u1".into(),
        user_id: "u1".into(),
        email: "u1@example.com".into(),
        customer_id: "c1".into(),
        roles: roles
            .iter()
            .map(|r| r.to_string())
            .collect::<Arc<[String]>>(),
        governor_agent_id: None,
        trial: None,
    })
}

fn decisions(c: &mut Criterion) {
    let policy = Policy::builtin();
    let native = NativeAuthorizer::new(&policy).unwrap();
    let rego = RegoAuthorizer::new(&policy).unwrap();
    let dev = principal(&["developer"]);
    let viewer = principal(&["viewer"]);
    let allow = AuthzInput {
        principal: &dev,
        resource: "deployments",
        action: "deploy",
    };
    let deny = AuthzInput {
        principal: &viewer,
        resource: "agents",
        action: "delete",
    };

    let mut g = c.benchmark_group("rbac/decision");
    g.bench_function("native/allow", |b| {
        b.iter(|| native.decide(black_box(&allow)))
    });
    g.bench_function("native/deny", |b| {
        b.iter(|| native.decide(black_box(&deny)))
    });
    let cache = DecisionCache::default();
    cache.insert(1, &allow, native.decide(&allow));
    g.bench_function("cache/hit", |b| b.iter(|| cache.get(1, black_box(&allow))));
    g.bench_function("rego/allow", |b| {
        b.iter(|| rego.decide(black_box(&allow)).unwrap())
    });
    g.finish();

    let mapper = RouteMapper::from_policy(&policy).unwrap();
    let mut g = c.benchmark_group("rbac/mapping");
    g.bench_function("default", |b| {
        b.iter(|| {
            mapper
                .map(black_box(&Method::DELETE), black_box("/api/v1/agents/42"))
                .is_some()
        })
    });
    g.bench_function("override", |b| {
        b.iter(|| {
            mapper
                .map(black_box(&Method::POST), black_box("/api/v1/deployments"))
                .is_some()
        })
    });
    g.finish();
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handler =
        |_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::default())) };
    let dev = principal(&["developer"]);
    let req = || {
        let mut r = Request::get("/api/v1/agents/42")
            .body(Body::default())
            .unwrap();
        r.extensions_mut().insert(dev.clone());
        r
    };
    let policy = Policy::builtin();
    let bare = ServiceBuilder::new().service_fn(handler);
    let native = ServiceBuilder::new()
        .layer(RbacLayer::native(&policy).unwrap().no_cache())
        .service_fn(handler);
    let cached = ServiceBuilder::new()
        .layer(RbacLayer::builtin())
        .service_fn(handler);
    let rego_cached = ServiceBuilder::new()
        .layer(RbacLayer::rego(&policy).unwrap())
        .service_fn(handler);

    let mut g = c.benchmark_group("rbac/layer");
    g.bench_function("bare", |b| {
        b.iter(|| rt.block_on(bare.oneshot(req())).unwrap())
    });
    g.bench_function("native", |b| {
        b.iter(|| rt.block_on(native.clone().oneshot(req())).unwrap())
    });
    g.bench_function("native-cached", |b| {
        b.iter(|| rt.block_on(cached.clone().oneshot(req())).unwrap())
    });
    g.bench_function("rego-cached", |b| {
        b.iter(|| rt.block_on(rego_cached.clone().oneshot(req())).unwrap())
    });
    g.finish();
}

criterion_group!(benches, decisions, layer);
criterion_main!(benches);
