//! Internal job-status callbacks: a constant-time secret gate, strict body validation,
//! idempotency, strict ordering and a status machine, applied atomically per job.
//!
//! An orchestrator reports job status changes with `POST /internal/jobs/{jobId}/status`.
//! [`CallbackService`] is that endpoint; [`CallbackLayer`] answers the same route in front
//! of any service and passes everything else on. The checks run in the contract's order:
//!
//! 1. `X-Callback-Secret` against every configured secret ([`CallbackSecrets`]), in
//!    constant time, before the body is read or the store touched: else 401 `UNAUTHORIZED`.
//! 2. The body ([`CallbackEvent`]): size cap, strict JSON, required `event_id`, `status`,
//!    RFC 3339 `occurred_at`: else 409 `VALIDATION_ERROR`.
//! 3. to 7., one atomic unit in the [`JobStore`]: unknown job 404 `RESOURCE_NOT_FOUND`;
//!    same event and payload 200 (replay); same event, other payload 409
//!    `EVENT_ID_PAYLOAD_MISMATCH`; `occurred_at` not after the latest 409
//!    `CALLBACK_OUT_OF_ORDER`; transition not in the [`TransitionTable`] 409
//!    `FSM_TRANSITION_INVALID` (with `allowed_next_states`); applied 204.
//!
//! Backends: [`MemoryJobStore`] (per-job lock) and, with the `postgres` feature,
//! `PgJobStore` (one transaction, `SELECT ... FOR UPDATE` on the job row, an event ledger
//! unique on `(job_id, event_id)`). A [`Transition`] hook runs the application's side
//! effects inside the same unit. [`openapi::fragment`] describes the route.
//!
//! Optionally, [`CallbackLayer::standard_webhooks`] authenticates callers by
//! [Standard Webhooks](https://www.standardwebhooks.com/) signature ([`WebhookKeys`])
//! instead of the shared secret, with `webhook-id` as the event id.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use callback_fsm::{CallbackLayer, CallbackSecrets, JobStore, MemoryJobStore};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let secret = "orchestrator-secret-at-least-32-bytes";
//! let store = MemoryJobStore::new();
//! store.create_job("job-1", "queued").await.unwrap();
//!
//! let svc = ServiceBuilder::new()
//!     .layer(CallbackLayer::new(CallbackSecrets::new([secret]).unwrap(), store.clone()))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
//!     });
//!
//! let callback = |secret: &str, body: &'static str| {
//!     Request::post("/internal/jobs/job-1/status")
//!         .header("x-callback-secret", secret)
//!         .header("content-type", "application/json")
//!         .body(Full::new(Bytes::from_static(body.as_bytes())))
//!         .unwrap()
//! };
//! let body = r#"{"event_id":"e1","status":"dispatched","occurred_at":"2026-01-01T00:00:00Z"}"#;
//!
//! let res = svc.clone().oneshot(callback("wrong", body)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//!
//! let res = svc.clone().oneshot(callback(secret, body)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NO_CONTENT);
//! // The same event again is an idempotent replay.
//! let res = svc.oneshot(callback(secret, body)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(store.job("job-1").await.unwrap().unwrap().status, "dispatched");
//! # }
//! ```

pub mod backend;
mod config;
mod event;
mod fsm;
mod future;
mod handler;
mod layer;
pub mod openapi;
mod secret;
mod service;
mod store;
mod strict;
mod time;
mod webhook;

pub use backend::memory::{MemoryJobStore, StoreStats};
#[cfg(feature = "postgres")]
pub use backend::postgres::{PgJobStore, migrate};
pub use config::{DEFAULT_BODY_LIMIT, DEFAULT_ROUTE, RouteError};
pub use event::{CallbackEvent, MAX_EVENT_ID_LEN, ValidationError, canonical_json};
pub use fsm::TransitionTable;
pub use future::{CallbackFuture, ResponseFuture};
pub use handler::codes;
pub use layer::{Callback, CallbackLayer};
pub use secret::{CALLBACK_SECRET_HEADER, CallbackSecrets, MIN_SECRET_LEN, SecretError};
pub use service::CallbackService;
pub use store::{
    AppliedEvent, BoxFuture, Change, JobSnapshot, JobStore, Outcome, StoreError, Transition,
    TransitionError, decide,
};
pub use time::{Timestamp, TimestampError};
pub use webhook::{
    DEFAULT_TOLERANCE, MIN_WEBHOOK_KEY_LEN, WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER, WebhookKeys,
};
