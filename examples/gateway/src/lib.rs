//! The example gw gateway: the layers composed into one server, as an operator runs it.
//!
//! [`build`] turns a [`Config`] into a service; [`serve`] runs it on a listener until a
//! shutdown signal, finishing in-flight requests. The binary (`cargo run -p gateway`)
//! wires these to the command line, a TOML file and `GW_*` environment variables.
//!
//! Every request passes through [`gw_problem::ProblemLayer`] first, then is routed to the
//! operator endpoints (`/health`, `/healthz`, `/ready`, `/metrics`, `/openapi.json`,
//! `/problems/{slug}`) or proxied to the upstream. Without an upstream URL, a built-in demo
//! upstream that echoes requests is started on a loopback port.
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

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::ServiceExt as _;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use gw_problem::ProblemLayer;
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

pub use config::Config;
use config::Environment;
use ops::Ops;
use proxy::Proxy;

/// The composed gateway service.
pub type GatewayService = BoxCloneSyncService<Request<Body>, Response, Infallible>;

/// What [`build`] produced.
pub struct Gateway {
    /// The service to serve.
    pub service: GatewayService,
    /// Where requests are proxied to (the demo upstream's address when none was configured).
    pub upstream: String,
}

/// Installs the process-wide Prometheus recorder; `None` if one was installed already.
pub fn install_metrics() -> Option<PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok()
}

/// Builds the gateway from `config`.
pub async fn build(config: &Config, metrics: Option<PrometheusHandle>) -> Result<Gateway, String> {
    let upstream = match &config.upstream.production_url {
        Some(url) => url.clone(),
        None => {
            let addr = demo::spawn()
                .await
                .map_err(|e| format!("cannot start the demo upstream: {e}"))?;
            format!("http://{addr}")
        }
    };
    let proxy = Arc::new(Proxy::new(
        &upstream,
        config.upstream.sandbox_url.as_deref(),
        config.upstream.timeout(),
    )?);

    let ops = Ops {
        checks: Arc::from(Vec::new()),
        metrics,
        openapi: Arc::new(ops::base_openapi()),
    };
    let router = Router::new()
        .route("/health", get(ops::health))
        .route("/healthz", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/problems", get(ops::problems))
        .route("/problems/{slug}", get(ops::problem_page))
        .with_state(ops)
        .fallback(move |req: Request| {
            let proxy = proxy.clone();
            async move { proxy.forward(req).await }
        });

    let problems = ProblemLayer::new()
        .type_base(config.problem_type_base.clone())
        .development(config.environment == Environment::Development);
    let service = ServiceBuilder::new().layer(problems).service(router);
    Ok(Gateway {
        service: BoxCloneSyncService::new(service),
        upstream,
    })
}

/// Serves `service` on `listener` until `shutdown` completes, then waits for in-flight
/// requests to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: GatewayService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, service.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}
