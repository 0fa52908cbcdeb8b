//! Shared vocabulary for the gw middleware crates: who is calling, what was decided, and
//! how paths are matched.
//!
//! This crate has no layer of its own. Layers hand each other what they learn as typed
//! request extensions defined here, so every crate works alone or behind any other that
//! inserts the same types:
//!
//! - [`CorrelationId`] / [`CausationId`]: request ids (`X-Correlation-ID`, `X-Request-ID`).
//! - [`Principal`], [`ServiceIdentity`]: the authenticated user or service.
//! - [`Decisions`]: the request-scoped log each layer appends its decision to.
//! - [`TargetBackend`], [`GatewayType`]: routing facts shared by policy, proxy and audit.
//! - [`normalize_path`] and [`RouteSet`]: the one segment-aware path matcher.
//! - [`Clock`], [`FeatureFlags`], [`BackendError`], [`FailMode`]: the seams layers are
//!   configured and tested through.
//! - [`hot_counter!`]: outcome counters of the per-request path, without a registry
//!   lookup per increment.
//!
//! # Example
//!
//! ```
//! use gw_core::{RouteSet, normalize_path};
//! use http::Method;
//!
//! let public = RouteSet::from_routes(["/health", "/docs/*", "GET /api/v1/status"]).unwrap();
//!
//! let path = normalize_path("/docs/intro/").unwrap();
//! assert!(public.matches(&Method::GET, &path));
//! // Segment-aware: a prefix twin is not covered.
//! assert!(!public.matches(&Method::GET, &normalize_path("/docsX").unwrap()));
//! // Method-scoped.
//! assert!(!public.matches(&Method::POST, "/api/v1/status"));
//! // Ambiguous paths are refused, not guessed.
//! assert_eq!(normalize_path("/docs%2F..%2Fadmin").unwrap_err().code(), "encoded-slash");
//! ```

pub mod calendar;
pub mod clock;
pub mod correlation;
pub mod decisions;
pub mod error;
pub mod flags;
pub mod identity;
pub mod metrics;
pub mod path;
pub mod route;
mod swar;

pub use clock::{Clock, ManualClock, SharedClock, Stopwatch, SystemClock};
pub use correlation::{CAUSATION_ID_HEADER, CORRELATION_ID_HEADER, CausationId, CorrelationId};
pub use decisions::{Decision, DecisionLog, Decisions, Outcome, ResourceAction};
pub use error::{BackendError, BackendErrorKind, FailMode, redis_code_is_outage};
pub use flags::{EnvFlags, FeatureFlags, SharedFlags, StaticFlags};
pub use identity::{
    GatewayType, Principal, PrincipalData, ServiceIdentity, TargetBackend, TrialInfo,
};
pub use path::{PathError, normalize_path};
pub use route::{PatternError, RouteMatch, RouteSet};
