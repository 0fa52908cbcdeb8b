//! gw-auth: a cache miss (full RS256 verification) and a cache hit, beside raw
//! `jsonwebtoken::decode` of the same token and the `jwt-authorizer` layer.

// The benchmark allocator (mimalloc), as in every benchmark binary.
use gw_benches as _;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use gw_auth::{AuthLayer, StaticKeys};
use http::{Request, Response};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use tower::{Service, ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

const ISS: &str = "https://id.example.com";

fn key(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../crates/gw-auth/tests/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The seed's claims, for the raw decode and jwt-authorizer to deserialize.
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct SeedClaims {
    sub: String,
    user_id: String,
    email: String,
    customer_id: String,
    roles: Vec<String>,
    iat: i64,
    exp: i64,
    iss: String,
    governor_agent_id: Option<String>,
    trial_mode: Option<bool>,
}

fn token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "sub": "user-1", "user_id": "user-1", "email": "ada@example.com",
        "customer_id": "cust-1", "roles": ["developer", "viewer"],
        "iat": now, "exp": now + 3600, "iss": ISS,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let key = EncodingKey::from_rsa_pem(key("rsa1.pem").as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn verify(c: &mut Criterion) {
    let token = token();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let pem = key("rsa1.pub.pem");
    let static_keys = || StaticKeys::from_pem(Some("k1"), &pem).unwrap();

    let mut g = c.benchmark_group("gw-auth/verify");
    let raw_key = DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISS]);
    g.bench_function("jsonwebtoken-decode-rs256", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<SeedClaims>(black_box(&token), &raw_key, &validation).unwrap()
        })
    });
    let miss = AuthLayer::new(static_keys())
        .issuer(ISS)
        .cache_capacity(0)
        .verifier();
    g.bench_function("miss-rs256", |b| {
        b.iter(|| {
            miss.verify(black_box(&token), now)
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });
    let hit = AuthLayer::new(static_keys()).issuer(ISS).verifier();
    hit.verify(&token, now).now_or_never().unwrap().unwrap();
    g.bench_function("hit", |b| {
        b.iter(|| {
            hit.verify(black_box(&token), now)
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });
    g.finish();
}

fn layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = token();
    let authorization = format!("Bearer {token}");
    let pem = key("rsa1.pub.pem");
    let req = || {
        Request::get("/api/v1/agents/42")
            .header("authorization", &authorization)
            .body(Body::default())
            .unwrap()
    };
    let handler =
        |_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::default())) };
    let layer = || AuthLayer::new(StaticKeys::from_pem(Some("k1"), &pem).unwrap()).issuer(ISS);

    let mut g = c.benchmark_group("gw-auth/layer");
    g.throughput(Throughput::Elements(1));
    let bare = ServiceBuilder::new().service_fn(handler);
    // Requests are built outside the timed part, one per iteration (so the request is hot
    // in the CPU cache, as a freshly parsed one is): the figures are the service call,
    // the layer's work and dropping the request.
    g.bench_function("bare-service", |b| {
        b.iter_batched(
            req,
            |r| rt.block_on(bare.oneshot(r)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    let mut miss = ServiceBuilder::new()
        .layer(layer().cache_capacity(0))
        .service_fn(handler);
    g.bench_function("gw-auth-miss-rs256", |b| {
        b.iter_batched(
            req,
            |r| assert_eq!(rt.block_on(miss.call(r)).unwrap().status(), 200),
            BatchSize::PerIteration,
        )
    });
    let mut hit = ServiceBuilder::new().layer(layer()).service_fn(handler);
    g.bench_function("gw-auth-hit", |b| {
        b.iter_batched(
            req,
            |r| assert_eq!(rt.block_on(hit.call(r)).unwrap().status(), 200),
            BatchSize::PerIteration,
        )
    });

    g.bench_function("gw-auth-public-path", |b| {
        b.iter_batched(
            || Request::get("/health").body(Body::default()).unwrap(),
            |r| assert_eq!(rt.block_on(hit.call(r)).unwrap().status(), 200),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("gw-auth-no-token-401", |b| {
        b.iter_batched(
            || {
                Request::get("/api/v1/agents/42")
                    .body(Body::default())
                    .unwrap()
            },
            |r| assert_eq!(rt.block_on(hit.call(r)).unwrap().status(), 401),
            BatchSize::PerIteration,
        )
    });

    // The peer: jwt-authorizer (axum 0.7 response type), same key, same token.
    type PeerBody = axum07::body::Body;
    let authorizer = rt
        .block_on(
            jwt_authorizer::JwtAuthorizer::<SeedClaims>::from_rsa_pem_text(&pem)
                .validation(jwt_authorizer::Validation::new().iss(&[ISS]))
                .build(),
        )
        .unwrap();
    use jwt_authorizer::IntoLayer;
    let mut peer = ServiceBuilder::new()
        .layer(authorizer.into_layer())
        .service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(PeerBody::empty()))
        });
    g.bench_function("jwt-authorizer-rs256", |b| {
        b.iter_batched(
            req,
            |r| assert_eq!(rt.block_on(peer.call(r)).unwrap().status(), 200),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, verify, layers);
criterion_main!(benches);
