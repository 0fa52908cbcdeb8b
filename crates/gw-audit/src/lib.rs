//! An audit record for every request, written in batches, and none lost silently.
//!
//! [`AuditLayer`] sits just inside `gw_problem::ProblemLayer`. For each request it keeps
//! an [`AuditRecord`]: correlation and causation ids, method, path, query, headers and
//! JSON body (secrets redacted to `***REDACTED***`), the caller, the decisions inner
//! layers recorded in `gw_core::Decisions`, the status and problem code, and latencies.
//! The record is written when the response body ends or is dropped, also for requests
//! inner layers rejected, that panicked, or whose client went away.
//!
//! Records go to an [`AuditWriter`]: a bounded queue and a background worker that
//! writes batches (every 100 records or 5 s; under a backlog up to two at once) to an
//! [`AuditSink`] ([`JsonLinesSink`], [`MemorySink`], or `PostgresSink` with the
//! `postgres` feature), retries with backoff, then falls back to a durable on-disk spool
//! that is replayed once the sink is healthy again. The queue is bounded by records and
//! by (estimated) bytes; a full queue follows an explicit [`OverflowPolicy`]; counters for written, retried, spooled and dropped records are
//! exported through `metrics`.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use gw_audit::{AuditLayer, AuditWriter, MemorySink, WriterConfig};
//! use gw_problem::ProblemLayer;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let sink = MemorySink::new();
//! let writer = AuditWriter::spawn(sink.clone(), WriterConfig::new()).unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(ProblemLayer::new())
//!     .layer(AuditLayer::new(writer.clone()))
//!     .service(service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
//!     }));
//!
//! let req = Request::get("/api/v1/agents?page=2")
//!     .header("authorization", "Bearer secret")
//!     .body(Full::default())
//!     .unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! res.into_body().collect().await.unwrap(); // the record is written when the body ends
//!
//! let report = writer.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(report.flushed, 1);
//! let record = &sink.records()[0];
//! assert_eq!(record.endpoint, "/api/v1/agents");
//! assert_eq!(record.query_params["page"], "2");
//! assert_eq!(record.request_headers.get("authorization"), Some("***REDACTED***"));
//! assert_eq!(record.status_code, 200);
//! # }
//! ```

mod body;
mod future;
mod layer;
mod nul;
mod pending;
mod record;
mod redact;
mod service;
pub mod sink;
mod size;
mod writer;

pub use body::AuditBody;
pub use future::ResponseFuture;
pub use layer::{AuditLayer, DEFAULT_BODY_CAP};
pub use record::{AuditDecision, AuditRecord, HeaderFields};
pub use redact::{DEFAULT_REDACTED_FIELDS, DEFAULT_REDACTED_HEADERS, REDACTED, SECRET_FIELD_WORDS};
pub use service::Audit;
pub use sink::{AuditSink, JsonLinesSink, MemorySink};
#[cfg(feature = "postgres")]
pub use sink::{PostgresSink, migrate};
pub use writer::{
    AuditStats, AuditWriter, DEFAULT_CAPACITY_BYTES, OverflowPolicy, ShutdownReport, WriterConfig,
};
