//! gw-policy per-request overhead: all three policies (trial mode, governor approval,
//! sandbox routing) with in-memory stores, against the same service without the layer.
//!
//! Two groups: `gw-policy` measures wall time as usual; `gw-policy-cpu` measures the
//! benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which stays meaningful when
//! the machine is shared and the thread gets descheduled.

// The benchmark allocator (mimalloc), as in every benchmark binary.
use gw_benches as _;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use gw_core::{Decisions, Principal, PrincipalData, TrialInfo};
use gw_policy::{PolicyLayer, TrialConfig};
use http::{Method, Request, Response};
use http_body_util::Full;
use tower::{Service, ServiceBuilder};

type Body = Full<Bytes>;

fn principal(trial: bool) -> Principal {
    Principal::from(PrincipalData {
        sub: "u1".into(),
        user_id: "u1".into(),
        email: "u1@example.com".into(),
        customer_id: "c1".into(),
        roles: Arc::from(["developer".to_string()]),
        governor_agent_id: Some("gov-1".into()),
        trial: trial.then_some(TrialInfo { expires_at: None }),
    })
}

/// A request as it reaches gw-policy in a gateway: authenticated (gw-auth ran before and
/// put the principal in), so it carries at least `Host` and `Authorization`.
fn request(method: Method, path: &str, p: &Principal) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "api.example.com")
        .header(
            http::header::AUTHORIZATION,
            "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        )
        .body(Body::default())
        .unwrap();
    req.extensions_mut().insert(p.clone());
    req.extensions_mut().insert(Decisions::new());
    req
}

type Case = (&'static str, Method, &'static str, bool);

const CASES: [Case; 4] = [
    (
        "bare/trial_task",
        Method::POST,
        "/api/v1/agents/42/run",
        true,
    ),
    (
        "all_three/trial_task",
        Method::POST,
        "/api/v1/agents/42/run",
        true,
    ),
    (
        "all_three/paid_read",
        Method::GET,
        "/api/v1/agents/42",
        false,
    ),
    (
        "all_three/sensitive_redirect",
        Method::DELETE,
        "/api/v1/agents/42",
        false,
    ),
];

fn policy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // An API handler's answer: a JSON body, so its header map is in use already.
    let handler = |_req: Request<Body>| async {
        let mut res = Response::new(Body::from(&b"{}"[..]));
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok::<_, Infallible>(res)
    };
    let mut bare = ServiceBuilder::new().service_fn(handler);
    // A limit no run reaches (a few million iterations at most), so every iteration
    // takes the counted-task path and answers with `RateLimit` headers.
    let mut layered = ServiceBuilder::new()
        .layer(PolicyLayer::new().trial(TrialConfig::new().limit(1_000_000_000)))
        .service_fn(handler);
    let trial = principal(true);
    let paid = principal(false);

    for (group, cpu) in [("gw-policy", false), ("gw-policy-cpu", true)] {
        let mut g = c.benchmark_group(group);
        for (name, method, path, is_trial) in CASES {
            let who = if is_trial { &trial } else { &paid };
            g.bench_function(name, |b: &mut Bencher<'_>| {
                let mut one = || {
                    let req = request(method.clone(), path, who);
                    if name.starts_with("bare") {
                        black_box(rt.block_on(bare.call(req)).unwrap());
                    } else {
                        black_box(rt.block_on(layered.call(req)).unwrap());
                    }
                };
                if cpu {
                    b.iter_custom(|iters| {
                        let start = cpu_time::ThreadTime::now();
                        for _ in 0..iters {
                            one();
                        }
                        start.elapsed()
                    });
                } else {
                    b.iter(&mut one);
                }
            });
        }
        g.finish();
    }
}

criterion_group!(benches, policy);
criterion_main!(benches);
