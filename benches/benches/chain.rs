//! The whole gateway chain in process: `oneshot` calls through Problem, Audit, Auth,
//! service auth, RBAC, Policy and Budget (embedded backends, audit to a counting sink) in
//! front of the fixed handler the HTTP load benchmark serves, against that handler alone,
//! with the gateway's Prometheus recorder installed.
//!
//! `cargo bench -p gw-benches --bench chain -- --warm-up-time 1 --measurement-time 3`

use std::cell::Cell;
use std::hint::black_box;

use axum::body::Body;
use criterion::measurement::Measurement;
use criterion::{Criterion, criterion_group, criterion_main};
use gw_benches::ThreadCpuTime;
use gw_benches::load::{
    Alg, BenchService, ROUTE, Upto, bare_service, build_chain, chain_config, chain_layers,
    chain_upto, now, token_pool,
};
use http::Request;
use tower::ServiceExt;

fn request(bearer: Option<&str>) -> Request<Body> {
    let mut b = Request::get(ROUTE).header("x-correlation-id", "bench-chain-0001");
    if let Some(t) = bearer {
        b = b.header("authorization", t);
    }
    b.body(Body::empty()).unwrap()
}

fn bench<M: Measurement + 'static>(c: &mut Criterion<M>, group: &str) {
    // The layers count outcomes through `metrics`; the gateway installs a Prometheus
    // recorder, and so does this bench (once: the second group finds it installed).
    gateway::install_metrics();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cached = rt
        .block_on(build_chain(&chain_config(Alg::Rs256), 10_000, Upto::Budget))
        .unwrap();
    let uncached = rt
        .block_on(build_chain(&chain_config(Alg::EdDsa), 0, Upto::Budget))
        .unwrap();
    let rs = format!(
        "Bearer {}",
        token_pool(Alg::Rs256, 1, now(), 3_600).unwrap()[0]
    );
    let ed = format!(
        "Bearer {}",
        token_pool(Alg::EdDsa, 1, now(), 3_600).unwrap()[0]
    );
    // One service called request after request, as `gateway::serve` calls its
    // per-connection clone: `oneshot` on `&mut` readies and calls it without a clone.
    //
    // A call's future is ready at once, so `block_on` never runs the runtime's other
    // tasks: the audit writer would never take its batches, its queue would fill, and
    // every later record would take the overflow path instead of the writer's. Every
    // batch-size calls the runtime gets one turn, as a server's would, so the writer
    // takes the batch the layer notified it of (and the time it takes is measured).
    let audit_batch = chain_config(Alg::Rs256).audit.batch_size.max(1);
    let calls = Cell::new(0usize);
    let call = |svc: &mut BenchService, bearer: Option<&str>| {
        let res = rt.block_on(svc.oneshot(request(bearer))).unwrap();
        assert_eq!(res.status(), 200);
        let n = calls.get() + 1;
        calls.set(n);
        if n.is_multiple_of(audit_batch) {
            rt.block_on(tokio::task::yield_now());
        }
        black_box(res)
    };
    // The earlier way: a clone of the whole chain for every call (a dozen reference
    // counts and three boxes), kept to compare with older figures.
    let call_cloned = |svc: &BenchService, bearer: Option<&str>| call(&mut svc.clone(), bearer);

    let mut g = c.benchmark_group(group);
    let mut bare = bare_service();
    let mut chain = cached.service.clone();
    let mut no_cache = uncached.service.clone();
    g.bench_function("bare-handler", |b| b.iter(|| call(&mut bare, None)));
    g.bench_function("full-chain-cached-rs256", |b| {
        b.iter(|| call(&mut chain, Some(&rs)))
    });
    g.bench_function("full-chain-no-cache-eddsa", |b| {
        b.iter(|| call(&mut no_cache, Some(&ed)))
    });
    g.bench_function("bare-handler-clone-per-call", |b| {
        b.iter(|| call_cloned(&bare, None))
    });
    g.bench_function("full-chain-cached-rs256-clone-per-call", |b| {
        b.iter(|| call_cloned(&cached.service, Some(&rs)))
    });
    g.finish();
    for (name, writer) in [("cached", &cached.audit), ("no-cache", &uncached.audit)] {
        let dropped = writer.stats().dropped;
        assert_eq!(
            dropped, 0,
            "{name}: audit records dropped: not the writer's path"
        );
    }

    // The chain cut after each layer, to see where the time goes.
    let (layers, _sink) = rt
        .block_on(chain_layers(&chain_config(Alg::Rs256)))
        .unwrap();
    let mut prefixes: Vec<(&str, BenchService)> = [
        ("1-problem-audit", Upto::Audit),
        ("2-plus-auth", Upto::Auth),
        ("3-plus-service-auth", Upto::ServiceAuth),
        ("4-plus-rbac", Upto::Rbac),
        ("5-plus-policy", Upto::Policy),
    ]
    .into_iter()
    .map(|(name, upto)| (name, chain_upto(&layers, upto)))
    .collect();
    let mut g = c.benchmark_group(format!("{group}-prefix"));
    for (name, svc) in &mut prefixes {
        g.bench_function(*name, |b| b.iter(|| call(svc, Some(&rs))));
    }
    g.finish();
    assert_eq!(
        layers.audit_writer.stats().dropped,
        0,
        "prefixes: audit records dropped"
    );
}

fn wall(c: &mut Criterion) {
    bench(c, "chain");
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    bench(c, "chain-cpu");
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
