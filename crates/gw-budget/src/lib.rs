//! Spend budgets that never overshoot: reserve the cost in every budget before the
//! handler, settle it to the actual cost after.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use gw_budget::{BudgetLayer, FlatCost, PathParam};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = BudgetLayer::in_memory()
//!     .agent_id(PathParam::new(["/api/v1/agents/{agent_id}/*"], "agent_id").unwrap())
//!     .agent_limit(2_000) // $0.002 per day
//!     .cost(FlatCost(1_000)); // $0.001 per request
//! let svc = ServiceBuilder::new().layer(layer).service(service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
//! }));
//!
//! let run = || Request::post("/api/v1/agents/a1/run").body(Full::default()).unwrap();
//! let res = svc.clone().oneshot(run()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["x-agent-utilization"], "50.00");
//! assert_eq!(res.headers()["x-budget-alert-level"], "none");
//!
//! let res = svc.clone().oneshot(run()).await.unwrap();
//! assert_eq!(res.headers()["x-budget-alert-level"], "critical");
//!
//! // The third would pass 100%: 402 budget-exceeded, the handler never runs.
//! let res = svc.oneshot(run()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
//! # }
//! ```
//!
//! # Model
//!
//! - Scopes: the platform (default $100 per calendar month), the agent named by an
//!   [`AgentIdExtractor`] (default $1 per calendar day), and optionally the customer of the
//!   authenticated [`Principal`](gw_core::Principal) (per month). Money is integer
//!   micro-USD; periods follow the calendar in a configured [`UtcOffset`], with the time
//!   from a [`gw_core::Clock`].
//! - Before the handler the estimated cost ([`CostModel`]) is reserved in every scope in
//!   one atomic step ([`SpendStore::reserve`]); if any scope would pass its limit, nothing
//!   is reserved and the answer is 402 `budget-exceeded` with `scope`, `limit`, `spent`,
//!   `remaining`, `utilization_percent`, `upgrade_url` and `contact_sales`. So concurrent
//!   requests can never be admitted past a limit.
//! - When the handler's response (head) is returned, the reservation is settled: released
//!   when the handler failed or refused (an inner error, a 4xx or a 5xx, unless that
//!   status is listed with [`BudgetLayer::charge_status`]), set to the actual cost when
//!   the cost model reports a different one (such as [`UpstreamReportedCost`]), and left
//!   as is otherwise (no store call). So a caller whose request the upstream refuses
//!   (401, 403, 404) is not charged to the agent it named. Settling happens before the response is handed on, not at
//!   the end of the body; a body that fails while streaming is still charged. A request
//!   dropped after it was handed to the handler (client gone, timeout) is charged its
//!   reservation: the upstream may still do the work. Only a request dropped before the
//!   handler was called (while the reserve is in flight) releases it, in the background.
//! - Responses carry `X-Budget-Alert-Level` (`none`, `warning`, `high`, `critical`),
//!   `X-Platform-Utilization`, `X-Agent-Utilization` (and `X-Customer-Utilization`).
//! - Each (scope, period, threshold) fires one [`BudgetAlert`] to the [`AlertSink`]s,
//!   across replicas when the store is shared; an agent reaching critical (or being
//!   refused) runs the [`AgentPauser`] once.
//! - If the store is unreachable, times out, or answers that it cannot serve right now
//!   (Redis `LOADING`, `READONLY`, `OOM`, `BUSY`, `CLUSTERDOWN`, ...) the request is
//!   admitted (fail-open, logged and counted as `gw_budget_fail_open_total`) or refused
//!   with 503 `budget-store-unavailable` ([`FailMode::Closed`](gw_core::FailMode)); a
//!   store that answers something unusable (such as `CROSSSLOT` on a cluster, or a
//!   script error) is a misconfiguration and always refused with 503. Each decision is recorded in
//!   [`gw_core::Decisions`] as layer `budget`, policy `agent_budget`.
//!
//! The agent id a [`PathParam`] or [`HeaderAgentId`] finds is whatever the caller sent:
//! it is not bound to the caller. Any caller can name another tenant's agent, and the
//! request is charged to that agent's budget from the reservation until the response
//! (error responses are then released, successful ones charged; one whose caller hangs
//! up after the handoff stays charged), so concurrent, slow or abandoned requests can
//! hold or spend that budget, fire its alerts and run the [`AgentPauser`]. Bind the
//! id before this layer: an ownership check (authorization of the agent for the
//! `Principal`) in an outer layer, or [`ClaimAgentId`] when the token names the agent.
//!
//! A reserve that times out leaves its outcome unknown: the store may have made the
//! reservation and only the answer been lost (Redis ran the script, the reply came
//! after the response timeout). Failing open, such a request is admitted without a
//! reservation to settle, so if the store did reserve, the estimate stays charged for
//! the period whatever the response (also an error response, also when the actual cost
//! differs); if it did not, the request is not charged at all. Each case is one
//! estimate per timed-out request, counted in `gw_budget_fail_open_total`. Settling it
//! exactly would take a marker per reservation in the store, written on every request,
//! for this rare case; the store does not do that. A reserve that has not answered when
//! the request is dropped is different: the handler was never called, so its
//! reservation, if made, is released.
//!
//! Reserved spend counts as spent: alerts fire and utilization is reported when the
//! reservation is made. A cost reported by the upstream above the estimate is charged in
//! full and can take a scope past its limit; later requests are then refused.

mod alert;
pub mod backend;
mod cost;
mod extract;
mod future;
mod inflight;
mod layer;
mod outcome;
mod period;
mod scope;
mod service;
#[cfg(feature = "webhook")]
mod webhook;

pub use alert::{
    AgentPauser, AlertLevel, AlertSink, BudgetAlert, THRESHOLD_FLAGS, Thresholds, TracingAlertSink,
    utilization_bp,
};
pub use backend::SpendStore;
pub use backend::memory::MemorySpendStore;
#[cfg(feature = "redis")]
pub use backend::redis::RedisSpendStore;
pub use cost::{
    CostModel, DEFAULT_COST, FlatCost, RouteCost, UPSTREAM_COST_HEADER, UpstreamReportedCost,
};
pub use extract::{
    AgentIdExtractor, ClaimAgentId, FirstOf, HeaderAgentId, NoAgent, PathParam, RequestInfo,
};
pub use future::ResponseFuture;
pub use layer::{
    BudgetLayer, DEFAULT_AGENT_LIMIT, DEFAULT_PLATFORM_LIMIT, ENABLE_FLAG, ScopeLimit,
};
pub use outcome::{
    AGENT_UTILIZATION_HEADER, ALERT_LEVEL_HEADER, CUSTOMER_UTILIZATION_HEADER,
    PLATFORM_UTILIZATION_HEADER,
};
pub use period::{Period, PeriodKind, UtcOffset};
pub use scope::{Charge, ScopeKey, ScopeKind, valid_id};
pub use service::Budget;
#[cfg(feature = "webhook")]
pub use webhook::WebhookAlertSink;
