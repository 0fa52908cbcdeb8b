//! Trial task limits, governor approval and sandbox routing, evaluated concurrently for
//! every request by one tower layer.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//!
//! use bytes::Bytes;
//! use gw_core::{Principal, PrincipalData, TargetBackend, TrialInfo};
//! use gw_policy::{PolicyLayer, TrialConfig};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(PolicyLayer::new().trial(TrialConfig::new().limit(1)))
//!     .service_fn(|req: Request<Full<Bytes>>| async move {
//!         // The policy decided where this request goes.
//!         assert_eq!(req.extensions().get(), Some(&TargetBackend::Sandbox));
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
//!     });
//!
//! let trial_user = Principal::from(PrincipalData {
//!     sub: "u1".into(),
//!     user_id: "u1".into(),
//!     email: "u1@example.com".into(),
//!     customer_id: "c1".into(),
//!     roles: Arc::from([]),
//!     governor_agent_id: None,
//!     trial: Some(TrialInfo { expires_at: None }),
//! });
//! let task = || {
//!     let mut req = Request::post("/api/v1/tasks").body(Full::default()).unwrap();
//!     req.extensions_mut().insert(trial_user.clone());
//!     req
//! };
//!
//! let res = svc.clone().oneshot(task()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["x-target-backend"], "sandbox");
//! assert_eq!(res.headers()["ratelimit-policy"], "\"trial\";q=1;w=86400");
//!
//! // The day's single task is used up.
//! let res = svc.oneshot(task()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert!(res.headers().contains_key("retry-after"));
//! # }
//! ```
//!
//! # The policies
//!
//! - **Trial mode** ([`TrialConfig`]): principals with [`TrialInfo`](gw_core::TrialInfo)
//!   may run `limit` tasks (default 10; a task is a route of a [`RouteSet`](gw_core::RouteSet),
//!   default every `POST`/`PUT`/`PATCH`/`DELETE`) per day, the day ending at midnight in
//!   a configured UTC offset. Over the limit: 429 `trial-limit-exceeded` with
//!   `Retry-After`, `limit`, `task_count`, `reset_at`, `upgrade_url`, and the
//!   `RateLimit-Policy` / `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers-09
//!   (`RateLimit-Policy: "trial";q=10;w=86400`, `RateLimit: "trial";r=0;t=3600`);
//!   admitted tasks carry the same fields with their remaining count. An expired trial
//!   gets 403 `trial-expired`. Counting is exact under concurrency: a [`UsageStore`]
//!   checks and increments atomically and never counts a refused task.
//! - **Governor approval** ([`GovernorConfig`]): sensitive actions (`delete_agent`,
//!   `update_billing`, `change_subscription`, `export_data`, `delete_customer`), each
//!   mapped from a route, need an approval token in the `X-Governor-Approval` header,
//!   validated by an [`ApprovalStore`]: bound to action, resource (the normalized path)
//!   and user, expiring, single use.
//! - **Sandbox routing** ([`SandboxConfig`]): trial principals go to
//!   [`TargetBackend::Sandbox`](gw_core::TargetBackend), others to production; the
//!   target is set as a request extension and as `X-Target-Backend` on the forwarded
//!   request and on the response. A client's own `X-Target-Backend` is removed.
//!
//! Each policy has [`PolicySettings`]: a timeout (default 2 s), a fail mode (default
//! fail-open, as in the reference system; it applies to a backend that is down or slow,
//! while one that answers unusably fails closed) and shadow mode (evaluate, record and
//! count, never enforce). The feature flags `enable_trial_mode`, `enable_governor_approval` and
//! `enable_sandbox_routing` switch them at run time (unset means on). Every evaluation is
//! recorded in [`gw_core::Decisions`] (layer `policy`, policies `trial_mode`,
//! `governor_approval`, `sandbox_routing`).
//!
//! When one policy rejects a request that another admitted, the admitted one's use is
//! given back: the counted task is released and a consumed approval restored. The same
//! happens when the service inside refuses the request: a response carrying a
//! [`Problem`](gw_problem::Problem) in its extensions (every gw layer's rejection, such as
//! an inner budget layer's 402) with a 3xx, 4xx or 503 status did not run the task. A
//! task is work handed to the service, so everything else counts: any plain upstream
//! answer, whatever its status (the upstream got the request), and 500, 502 or 504
//! problems (the handler failed, or the upstream was tried and gave no answer, so the
//! work may have been done). A request whose response future is dropped after it was
//! handed on (the client went away) keeps its task and approval used: it may be running,
//! and giving them back would let a client run unlimited tasks by disconnecting.
//!
//! # 307 or 428 for approvals
//!
//! The reference system answers an unapproved sensitive request with `307 Temporary
//! Redirect` to `{approval_ui_url}/approval?action=..&user_id=..&resource=..&governor_id=..`
//! plus `X-Governor-Approval-Required: true`, `X-Governor-Action` and
//! `X-Governor-Agent-ID`. That is the default ([`ApprovalResponse::Redirect`]): a browser
//! lands on the approval page. But 307 obliges a client to repeat the same method *and
//! body* at the new location, so API clients that follow redirects automatically send a
//! `DELETE` or a billing payload to the approval UI, and most HTTP libraries follow 307
//! by default. [`ApprovalResponse::PreconditionRequired`] answers `428 Precondition
//! Required` with an `approval-required` problem (the approval URL in `Location` and in
//! the body, the same `X-Governor-*` headers) instead: nothing is resent, and the client
//! retries with the approval token once it has one. Prefer 428 for machine clients, 307
//! only where a browser drives the request.
//!
//! # Backends
//!
//! In-memory stores are the default. With the `redis` feature,
//! [`store::redis::RedisUsageStore`] counts with one Lua script per check (check, `INCR`,
//! `PEXPIREAT` at the reset) and [`store::redis::RedisApprovalStore`] consumes approvals
//! with one Lua script (binding check, `DEL`, expiry check). The same policies in Rego
//! ship in `policy/*.rego`; the `rego` feature loads them into a `regorus` engine
//! ([`rego`]).

mod config;
mod eval;
mod future;
pub mod governor;
mod layer;
pub mod sandbox;
mod service;
pub mod store;
mod time;
pub mod trial;
mod undo;

#[cfg(feature = "rego")]
pub mod rego;

pub use config::{
    DEFAULT_TIMEOUT, FLAG_GOVERNOR_APPROVAL, FLAG_SANDBOX_ROUTING, FLAG_TRIAL_MODE, PolicySettings,
};
pub use future::ResponseFuture;
pub use governor::{ApprovalResponse, GovernorConfig};
pub use layer::PolicyLayer;
pub use sandbox::SandboxConfig;
pub use service::Policy;
pub use store::memory::{MemoryApprovalStore, MemoryUsageStore};
pub use store::{ApprovalBinding, ApprovalCheck, ApprovalStore, Usage, UsageStore};
pub use trial::TrialConfig;
