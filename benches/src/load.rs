//! The whole gateway chain around a fixed handler, and the tokens to drive it with.
//!
//! The chain is the example gateway's (`gateway::stack::build`): Problem, Audit, Auth,
//! service auth, RBAC, Policy, Budget, in the order `gateway::build_with` composes them,
//! but in front of [`fixed_router`] instead of the network proxy, so the bare server and
//! the chain answer with the same handler.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use gateway::Config;
use gw_audit::{AuditLayer, AuditRecord, AuditSink, AuditWriter, WriterConfig};
use gw_core::{BackendError, GatewayType};
use gw_problem::ProblemLayer;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

/// The route every benchmark request goes to (a developer may `GET` it under RBAC).
pub const ROUTE: &str = "/api/v1/agents";
/// The fixed JSON body the handler answers with.
pub const BODY: &str = r#"{"agents":[],"total":0}"#;
/// Issuer of the benchmark tokens (required by the chain's auth layer).
pub const ISSUER: &str = "gw-load";

/// The service type both the bare server and the chain are served as.
pub type BenchService = BoxCloneSyncService<Request<Body>, Response, Infallible>;

/// The JWT algorithm of the token pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RS256 with a 2048-bit key (the seed's algorithm).
    Rs256,
    /// EdDSA with an Ed25519 key (the gateway's demo mode).
    EdDsa,
}

impl std::str::FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "rs256" => Ok(Self::Rs256),
            "eddsa" | "ed25519" => Ok(Self::EdDsa),
            other => Err(format!("unknown algorithm {other:?} (rs256, eddsa)")),
        }
    }
}

impl Alg {
    fn stem(self) -> &'static str {
        match self {
            Self::Rs256 => "rsa1",
            Self::EdDsa => "ed25519",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    /// The public key file (a fixture of gw-auth's tests), for `[auth] public_key_file`.
    pub fn public_key_file(self) -> PathBuf {
        keys_dir().join(format!("{}.pub.pem", self.stem()))
    }

    fn private_pem(self) -> Result<Vec<u8>, String> {
        let path = keys_dir().join(format!("{}.pem", self.stem()));
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn encoding_key(self) -> Result<EncodingKey, String> {
        let pem = self.private_pem()?;
        match self {
            Self::Rs256 => EncodingKey::from_rsa_pem(&pem),
            Self::EdDsa => EncodingKey::from_ed_pem(&pem),
        }
        .map_err(|e| format!("signing key: {e}"))
    }

    fn decoding_key(self) -> Result<DecodingKey, String> {
        let path = self.public_key_file();
        let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        match self {
            Self::Rs256 => DecodingKey::from_rsa_pem(&pem),
            Self::EdDsa => DecodingKey::from_ed_pem(&pem),
        }
        .map_err(|e| format!("verification key: {e}"))
    }
}

fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/gw-auth/tests/keys")
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `n` distinct developer tokens signed with `alg`, valid for `ttl_secs` from `now`
/// (token `i` has `iat = now - i`, so no two are equal).
pub fn token_pool(alg: Alg, n: usize, now: i64, ttl_secs: i64) -> Result<Vec<String>, String> {
    let key = alg.encoding_key()?;
    let header = Header::new(alg.jwt());
    (0..n)
        .map(|i| {
            let claims = json!({
                "sub": format!("load-{i}"),
                "user_id": format!("load-{i}"),
                "email": format!("load-{i}@bench.example"),
                "customer_id": "cust-load",
                "roles": ["developer"],
                "iat": now - i as i64,
                "exp": now + ttl_secs,
                "iss": ISSUER,
                "trial_mode": false,
            });
            jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("token: {e}"))
        })
        .collect()
}

/// Raw signature verifications per second (`jsonwebtoken::decode`, one thread, for about
/// `duration`), and how many were done.
pub fn verify_rate(alg: Alg, duration: Duration) -> Result<(f64, u64), String> {
    let key = alg.decoding_key()?;
    let token = token_pool(alg, 1, now(), 3_600)?.remove(0);
    let mut validation = Validation::new(alg.jwt());
    validation.set_issuer(&[ISSUER]);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        for _ in 0..50 {
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
                .map_err(|e| format!("decode: {e}"))?;
        }
        n += 50;
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), n))
}

/// The bare server: one route answering [`BODY`] as JSON.
pub fn fixed_router() -> Router {
    Router::new().route(
        ROUTE,
        get(|| async { ([("content-type", "application/json")], BODY) }),
    )
}

/// An audit sink that only counts what it was given (the embedded backend of the bench).
#[derive(Debug, Clone, Default)]
pub struct CountingSink(Arc<AtomicU64>);

impl CountingSink {
    /// Records written so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl AuditSink for CountingSink {
    fn write<'a>(
        &'a self,
        batch: &'a [AuditRecord],
    ) -> Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send + 'a>> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The gateway configuration of the benchmark chain: partner gateway (RBAC on), tokens of
/// `alg` with the [`ISSUER`], budgets out of reach (every request passes every layer).
pub fn chain_config(alg: Alg) -> Config {
    let mut config = Config {
        gateway_type: GatewayType::Pp,
        ..Config::default()
    };
    config.auth.public_key_file = Some(alg.public_key_file().display().to_string());
    config.auth.issuer = Some(ISSUER.into());
    config.budget.platform_monthly_micro_usd = 1 << 60;
    config.budget.cost_per_request_micro_usd = 1;
    config
}

/// A count kept by many threads at once: one cache line per stripe, each thread adding
/// to its own, so the bench's counting of answered requests does not add a cross-core
/// cache-line transfer to every request it measures (a single shared atomic would).
#[derive(Debug, Default)]
pub struct StripedCounter([Stripe; STRIPES]);

const STRIPES: usize = 16;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

impl StripedCounter {
    /// Adds one, on the calling thread's stripe.
    pub fn increment(&self) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local! {
            static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        }
        let i = MINE.with(|i| *i);
        self.0[i].0.fetch_add(1, Ordering::Relaxed);
    }

    /// The total over all stripes.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// What [`build_chain`] made.
pub struct Chain {
    /// The chain (or the part of it [`build_chain`] was asked for) in front of
    /// [`fixed_router`].
    pub service: BenchService,
    /// The audit writer (drain it before counting rows).
    pub audit: AuditWriter,
    /// With embedded backends, the sink the audit records end up in.
    pub sink: Option<CountingSink>,
    /// Requests the chain answered (counted outside every layer).
    pub answered: Arc<StripedCounter>,
}

/// The gateway's layers from `config`; without a database, the audit layer writes to the
/// returned [`CountingSink`] instead of JSON lines on stdout.
pub async fn chain_layers(
    config: &Config,
) -> Result<(gateway::stack::Layers, Option<CountingSink>), String> {
    let mut layers = gateway::stack::build(config, None).await?;
    let mut sink = None;
    if config.database_url.is_none() {
        // Replace the stdout writer (idle from here on) with a counting one.
        let counting = CountingSink::default();
        let writer = AuditWriter::spawn(
            counting.clone(),
            WriterConfig::new()
                .batch_size(config.audit.batch_size)
                .flush_interval(Duration::from_millis(config.audit.flush_interval_ms)),
        )
        .map_err(|e| format!("audit writer: {e}"))?;
        layers.audit = AuditLayer::new(writer.clone()).gateway_type(config.gateway_type);
        layers.audit_writer = writer;
        sink = Some(counting);
    }
    Ok((layers, sink))
}

/// Where a benchmark cuts the chain: the outer part (Problem and Audit) always runs, and
/// the protected layers up to and including this one. [`Upto::Budget`] is the whole chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Upto {
    /// Problem and Audit only.
    Audit,
    /// Then Auth.
    Auth,
    /// Then service auth (HMAC).
    ServiceAuth,
    /// Then RBAC.
    Rbac,
    /// Then Policy.
    Policy,
    /// Then Budget: the whole chain.
    Budget,
}

impl std::str::FromStr for Upto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "audit" => Self::Audit,
            "auth" => Self::Auth,
            "service-auth" => Self::ServiceAuth,
            "rbac" => Self::Rbac,
            "policy" => Self::Policy,
            "budget" => Self::Budget,
            other => {
                return Err(format!(
                    "unknown layer {other:?} (audit, auth, service-auth, rbac, policy, budget)"
                ));
            }
        })
    }
}

/// The chain around [`fixed_router`], cut after `upto`, composed as the gateway composes
/// the whole one: [`Layers::enclose`](gateway::stack::Layers::enclose) around the
/// protected layers in one boxed service, in the order of
/// [`Layers::protect`](gateway::stack::Layers::protect) (which builds the whole chain's).
pub fn chain_upto(layers: &gateway::stack::Layers, upto: Upto) -> BenchService {
    let svc_auth = || {
        ServiceBuilder::new()
            .layer(layers.service_auth.clone())
            .map_request(|r: Request<svc_hmac::VerifiedBody<Body>>| {
                r.map(|b| b.into_passthrough().unwrap_or_else(Body::new))
            })
    };
    let protected: BenchService = match upto {
        Upto::Audit => BoxCloneSyncService::new(fixed_router()),
        Upto::Auth => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(layers.auth.clone())
                .service(fixed_router()),
        ),
        Upto::ServiceAuth => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(layers.auth.clone())
                .layer(svc_auth())
                .service(fixed_router()),
        ),
        Upto::Rbac => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(layers.auth.clone())
                .layer(svc_auth())
                .layer(layers.rbac.clone())
                .map_response(|r: http::Response<_>| r.map(Body::new))
                .service(fixed_router()),
        ),
        Upto::Policy => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(layers.auth.clone())
                .layer(svc_auth())
                .layer(layers.rbac.clone())
                .layer(layers.policy.clone())
                .map_response(|r: http::Response<_>| r.map(Body::new))
                .service(fixed_router()),
        ),
        Upto::Budget => layers.protect(fixed_router()),
    };
    layers.enclose(ProblemLayer::new(), protected)
}

/// Builds the gateway's layers from `config` (Redis and PostgreSQL when configured there)
/// around [`fixed_router`], cut after `upto`. Without a database, audit records go to a
/// [`CountingSink`] instead of JSON lines on stdout. `cache_capacity` sets the
/// verified-token cache (`0` disables it: every request verifies its signature).
pub async fn build_chain(
    config: &Config,
    cache_capacity: usize,
    upto: Upto,
) -> Result<Chain, String> {
    let (mut layers, sink) = chain_layers(config).await?;
    layers.auth = layers.auth.cache_capacity(cache_capacity);
    let answered = Arc::new(StripedCounter::default());
    let counter = answered.clone();
    let chain = chain_upto(&layers, upto);
    let service = ServiceBuilder::new()
        .map_response(move |r: Response| {
            counter.increment();
            r
        })
        .service(chain);
    Ok(Chain {
        service: BoxCloneSyncService::new(service),
        audit: layers.audit_writer,
        sink,
        answered,
    })
}

/// The bare server as a [`BenchService`].
pub fn bare_service() -> BenchService {
    BoxCloneSyncService::new(fixed_router())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    fn get_req(token: Option<&str>) -> Request<Body> {
        let mut b = http::Request::get(ROUTE);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::empty()).unwrap()
    }

    #[test]
    fn pool_tokens_are_distinct() {
        let pool = token_pool(Alg::EdDsa, 50, now(), 60).unwrap();
        let set: std::collections::HashSet<_> = pool.iter().collect();
        assert_eq!(set.len(), 50);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chain_answers_like_bare_and_audits_every_request() {
        for (alg, cache) in [(Alg::Rs256, 1000), (Alg::EdDsa, 0)] {
            let chain = build_chain(&chain_config(alg), cache, Upto::Budget)
                .await
                .unwrap();
            let pool = token_pool(alg, 3, now(), 60).unwrap();
            for t in pool.iter().chain(pool.iter()) {
                let res = chain
                    .service
                    .clone()
                    .oneshot(get_req(Some(t)))
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "{alg:?}");
                assert!(res.headers().contains_key("x-correlation-id"));
                let body = res.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, BODY.as_bytes());
            }
            let res = chain.service.clone().oneshot(get_req(None)).await.unwrap();
            assert_eq!(res.status(), 401);
            drop(res); // the audit record is pushed when the response body is done
            chain.audit.shutdown(Duration::from_secs(5)).await;
            assert_eq!(chain.answered.get(), 7);
            assert_eq!(chain.sink.unwrap().count(), 7);
        }
        let res = bare_service().oneshot(get_req(None)).await.unwrap();
        assert_eq!(res.status(), 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_chain_cut_after_each_layer_runs_that_far() {
        let config = chain_config(Alg::EdDsa);
        let (layers, sink) = chain_layers(&config).await.unwrap();
        let token = &token_pool(Alg::EdDsa, 1, now(), 60).unwrap()[0];
        // The first response header each layer adds (the outer part adds the correlation id).
        let marks = [
            (Upto::Rbac, "x-rbac-user-id"),
            (Upto::Policy, "x-target-backend"),
            (Upto::Budget, "x-budget-alert-level"),
        ];
        let all = [
            Upto::Audit,
            Upto::Auth,
            Upto::ServiceAuth,
            Upto::Rbac,
            Upto::Policy,
            Upto::Budget,
        ];
        for upto in all {
            let svc = chain_upto(&layers, upto);
            let res = svc.clone().oneshot(get_req(Some(token))).await.unwrap();
            assert_eq!(res.status(), 200, "{upto:?}");
            assert!(res.headers().contains_key("x-correlation-id"), "{upto:?}");
            for (from, header) in marks {
                assert_eq!(
                    res.headers().contains_key(header),
                    upto >= from,
                    "{upto:?}: {header}"
                );
            }
            // Without a token, only a chain with Auth refuses.
            let res = svc.oneshot(get_req(None)).await.unwrap();
            let want = if upto >= Upto::Auth { 401 } else { 200 };
            assert_eq!(res.status(), want, "{upto:?}");
        }
        layers.audit_writer.shutdown(Duration::from_secs(5)).await;
        assert_eq!(sink.unwrap().count(), 2 * all.len() as u64);
        for (name, upto) in ["audit", "auth", "service-auth", "rbac", "policy", "budget"]
            .into_iter()
            .zip(all)
        {
            assert_eq!(name.parse::<Upto>(), Ok(upto));
        }
        assert!("everything".parse::<Upto>().is_err());
    }

    #[test]
    fn striped_counter_sums_every_thread() {
        let counter = Arc::new(StripedCounter::default());
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let c = counter.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.increment()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.get(), 20_000);
    }

    #[test]
    fn verify_rate_counts() {
        let (rate, n) = verify_rate(Alg::EdDsa, Duration::from_millis(20)).unwrap();
        assert!(n >= 50 && rate > 0.0);
    }
}
