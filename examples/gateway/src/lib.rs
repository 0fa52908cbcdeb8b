//! The example gw gateway: the layers composed into one server, as an operator runs it.
//!
//! [`build`] turns a [`Config`] into a service; [`serve`] runs it on a listener until a
//! shutdown signal, finishing in-flight requests. The binary (`cargo run -p gateway`)
//! wires these to the command line, a TOML file and `GW_*` environment variables.
//!
//! Every request passes through `ProblemLayer` and `AuditLayer`, then is routed to the
//! operator endpoints (`/health`, `/healthz`, `/ready`, `/metrics`, `/openapi.json`,
//! `/problems/{slug}`), the job-status callback route, or, through authentication, service
//! authentication, RBAC, policies and budget, to the upstream proxy. Without an upstream
//! URL, a built-in demo upstream that echoes requests is started on a loopback port (with a
//! warning in the log).
//! See `docs/architecture.md` for the order and why.
//!
//! # Example
//!
//! ```
//! use axum::body::Body;
//! use gateway::{Config, build};
//! use http::Request;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let gw = build(&Config::default(), None).await.unwrap();
//! let res = gw
//!     .service
//!     .oneshot(Request::get("/health").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), 200);
//! assert!(res.headers().contains_key("x-correlation-id"));
//! # }
//! ```

pub mod config;
pub mod demo;
pub mod ops;
pub mod proxy;
pub mod ready;
mod server;
pub mod stack;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::{any, get};
use gw_audit::{AuditWriter, ShutdownReport};
use gw_problem::{Problem, ProblemLayer, ProblemType};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::service_fn;
use tower::util::BoxCloneSyncService;

pub use config::Config;
use config::Environment;
use ops::Ops;
use proxy::Proxy;
pub use server::serve;

/// The composed gateway service.
pub type GatewayService = BoxCloneSyncService<Request<Body>, Response, Infallible>;

/// What [`build`] produced.
pub struct Gateway {
    /// The service to serve.
    pub service: GatewayService,
    /// Where requests are proxied to (the demo upstream's address when none was configured).
    pub upstream: String,
    /// The audit writer: drain it with [`Gateway::shutdown`].
    pub audit: AuditWriter,
    /// One line per configured backend, for the startup banner.
    pub backends: Vec<String>,
    /// The callback job store, when callbacks are enabled.
    pub jobs: Option<Arc<dyn callback_fsm::JobStore>>,
}

impl Gateway {
    /// Drains the audit writer (waiting at most `deadline`) and reports what happened.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.audit.shutdown(deadline).await
    }
}

/// Installs the process-wide Prometheus recorder; `None` if one was installed already.
pub fn install_metrics() -> Option<PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok()
}

/// Builds the gateway from `config`.
pub async fn build(config: &Config, metrics: Option<PrometheusHandle>) -> Result<Gateway, String> {
    build_with(config, metrics, None).await
}

/// Builds the gateway from `config`, verifying JWTs with the demo key instead of the
/// configured key source when `demo` is given (demo mode).
pub async fn build_with(
    config: &Config,
    metrics: Option<PrometheusHandle>,
    demo: Option<&demo::DemoAuth>,
) -> Result<Gateway, String> {
    let upstream = match &config.upstream.production_url {
        Some(url) => url.clone(),
        None => {
            let addr = demo::spawn()
                .await
                .map_err(|e| format!("cannot start the demo upstream: {e}"))?;
            tracing::warn!(
                %addr,
                "no upstream configured (upstream.production_url, GW_UPSTREAM_URL): \
                 requests go to the built-in demo upstream, which echoes them"
            );
            format!("http://{addr}")
        }
    };
    let proxy = Arc::new(Proxy::new(
        &upstream,
        config.upstream.sandbox_url.as_deref(),
        config.upstream.timeout(),
    )?);
    let mut layers = stack::build(config, demo).await?;

    let upstream_service = service_fn(move |req: Request| {
        let proxy = proxy.clone();
        async move { Ok::<_, Infallible>(proxy.forward(req).await) }
    });
    let protected = layers.protect(upstream_service);

    let mut openapi = ops::base_openapi();
    let callback_route = "/internal/jobs/{jobId}/status";
    let mut router = Router::new();
    match layers.callbacks.take() {
        Some(callbacks) => {
            ops::merge_openapi(&mut openapi, &callbacks.openapi());
            router = router.route_service(callback_route, callbacks);
        }
        None => {
            router = router.route(
                callback_route,
                any(|| async {
                    Problem::new(ProblemType::NOT_FOUND)
                        .code("callbacks-disabled")
                        .detail("no callback secrets are configured")
                }),
            );
        }
    }
    if let Some(demo) = demo {
        let jwks = Arc::new(demo.jwks.clone());
        router = router.route(
            "/.well-known/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move { axum::Json((*jwks).clone()) }
            }),
        );
    }

    let ops = Ops {
        readiness: Arc::new(ready::Readiness::new(
            ready::checks(config, layers.auth.clone()),
            ready::CACHE_TTL,
        )),
        metrics,
        openapi: Arc::new(openapi),
    };
    let router = router
        .route("/health", get(ops::health))
        .route("/healthz", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/problems", get(ops::problems))
        .route("/problems/{slug}", get(ops::problem_page))
        // Every operator route above: axum adds the `Allow` header.
        .method_not_allowed_fallback(ops::method_not_allowed)
        .with_state(ops)
        .fallback_service(protected);

    let problems = ProblemLayer::new()
        .type_base(config.problem_type_base.clone())
        .development(config.environment == Environment::Development);
    let service = layers.enclose(problems, router);
    Ok(Gateway {
        service,
        upstream,
        audit: layers.audit_writer,
        backends: layers.backends,
        jobs: layers.jobs,
    })
}
