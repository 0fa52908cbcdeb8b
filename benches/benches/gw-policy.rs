//! gw-policy per-request overhead: all three policies (trial mode, governor approval,
//! sandbox routing) with in-memory stores, against the same service without the layer.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use gw_core::{Decisions, Principal, TrialInfo};
use gw_policy::{PolicyLayer, TrialConfig};
use http::{Method, Request, Response};
use http_body_util::Full;
use tower::{Service, ServiceBuilder};

type Body = Full<Bytes>;

fn principal(trial: bool) -> Principal {
    Principal {
        sub: "u1".into(),
        user_id: "u1".into(),
        email: "u1@example.com".into(),
        customer_id: "c1".into(),
        roles: Arc::from(["developer".to_string()]),
        governor_agent_id: Some("gov-1".into()),
        trial: trial.then_some(TrialInfo { expires_at: None }),
    }
}

fn request(method: Method, path: &str, p: &Principal) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::default())
        .unwrap();
    req.extensions_mut().insert(p.clone());
    req.extensions_mut().insert(Decisions::new());
    req
}

fn policy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handler =
        |_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::default())) };
    let mut bare = ServiceBuilder::new().service_fn(handler);
    // A limit that never runs out, so every iteration takes the counted-task path.
    let mut layered = ServiceBuilder::new()
        .layer(PolicyLayer::new().trial(TrialConfig::new().limit(u64::MAX)))
        .service_fn(handler);
    let trial = principal(true);
    let paid = principal(false);

    let mut g = c.benchmark_group("gw-policy");
    g.bench_function("bare/trial_task", |b| {
        b.iter(|| {
            rt.block_on(bare.call(request(Method::POST, "/api/v1/agents/42/run", &trial)))
                .unwrap()
        })
    });
    g.bench_function("all_three/trial_task", |b| {
        b.iter(|| {
            let res = rt
                .block_on(layered.call(request(Method::POST, "/api/v1/agents/42/run", &trial)))
                .unwrap();
            black_box(res)
        })
    });
    g.bench_function("all_three/paid_read", |b| {
        b.iter(|| {
            let res = rt
                .block_on(layered.call(request(Method::GET, "/api/v1/agents/42", &paid)))
                .unwrap();
            black_box(res)
        })
    });
    g.bench_function("all_three/sensitive_redirect", |b| {
        b.iter(|| {
            let res = rt
                .block_on(layered.call(request(Method::DELETE, "/api/v1/agents/42", &paid)))
                .unwrap();
            black_box(res)
        })
    });
    g.finish();
}

criterion_group!(benches, policy);
criterion_main!(benches);
