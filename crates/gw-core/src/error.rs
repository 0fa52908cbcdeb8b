//! Backend failures, and what a layer does when its backend fails.

use std::fmt;

/// Why a backend (Redis, PostgreSQL, an OPA server, a JWKS endpoint) call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendErrorKind {
    /// The backend could not be reached or refused the connection.
    Unavailable,
    /// The backend did not answer in time.
    Timeout,
    /// The backend answered with something we could not use.
    Invalid,
}

/// A failed backend call. Layers use [`BackendError::is_unavailable`] together with their
/// [`FailMode`] to decide whether to let the request through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    /// What kind of failure.
    pub kind: BackendErrorKind,
    /// Which backend (`redis`, `postgres`, `opa`, ...), for logs and metric labels.
    pub backend: &'static str,
    /// Human-readable detail, for logs only (never sent to clients).
    pub message: String,
}

impl BackendError {
    /// A backend that could not be reached.
    pub fn unavailable(backend: &'static str, message: impl fmt::Display) -> Self {
        Self::new(BackendErrorKind::Unavailable, backend, message)
    }

    /// A backend that did not answer in time.
    pub fn timeout(backend: &'static str, message: impl fmt::Display) -> Self {
        Self::new(BackendErrorKind::Timeout, backend, message)
    }

    /// A backend that answered with something unusable.
    pub fn invalid(backend: &'static str, message: impl fmt::Display) -> Self {
        Self::new(BackendErrorKind::Invalid, backend, message)
    }

    fn new(kind: BackendErrorKind, backend: &'static str, message: impl fmt::Display) -> Self {
        Self {
            kind,
            backend,
            message: message.to_string(),
        }
    }

    /// Whether the backend was unreachable or timed out (as opposed to answering badly):
    /// the case a fail-open setting is meant for.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind,
            BackendErrorKind::Unavailable | BackendErrorKind::Timeout
        )
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            BackendErrorKind::Unavailable => "unavailable",
            BackendErrorKind::Timeout => "timed out",
            BackendErrorKind::Invalid => "invalid answer",
        };
        write!(f, "{} backend {kind}: {}", self.backend, self.message)
    }
}

impl std::error::Error for BackendError {}

/// Whether a Redis server error code (the reply's first word: `LOADING`, `OOM`, ...) means
/// the server cannot serve the call right now, for a reason that passes with no change on
/// our side: an outage, to which the layer's [`FailMode`] applies. Every other code
/// (`WRONGTYPE`, `NOPERM`, `CROSSSLOT`, `NOSCRIPT`, `ERR`, ...) is a misconfiguration,
/// refused in every fail mode. The one list all Redis backends classify by.
///
/// The outage codes: loading the data set after a restart (`LOADING`), a replica or a
/// demoted master during a failover (`READONLY`, `MASTERDOWN`), out of memory (`OOM`), busy
/// with a long script (`BUSY`), not persisting or short of replicas (`MISCONF`,
/// `NOREPLICAS`), a cluster resharding or down (`TRYAGAIN`, `CLUSTERDOWN`).
pub fn redis_code_is_outage(code: &str) -> bool {
    matches!(
        code,
        "LOADING"
            | "READONLY"
            | "MASTERDOWN"
            | "OOM"
            | "BUSY"
            | "MISCONF"
            | "NOREPLICAS"
            | "TRYAGAIN"
            | "CLUSTERDOWN"
    )
}

/// What a layer does when it cannot decide because its backend failed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Let the request through (logged and counted).
    Open,
    /// Reject the request with 503 (the default: safe unless a layer says otherwise).
    #[default]
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_failures() {
        assert!(BackendError::unavailable("redis", "refused").is_unavailable());
        assert!(BackendError::timeout("opa", "2s").is_unavailable());
        let e = BackendError::invalid("opa", "not json");
        assert!(!e.is_unavailable());
        assert_eq!(e.to_string(), "opa backend invalid answer: not json");
    }

    #[test]
    fn redis_codes_that_pass_are_outages_the_rest_misconfiguration() {
        for code in [
            "LOADING",
            "READONLY",
            "MASTERDOWN",
            "OOM",
            "BUSY",
            "MISCONF",
            "NOREPLICAS",
            "TRYAGAIN",
            "CLUSTERDOWN",
        ] {
            assert!(redis_code_is_outage(code), "{code}");
        }
        for code in [
            "ERR",
            "WRONGTYPE",
            "NOPERM",
            "CROSSSLOT",
            "NOSCRIPT",
            "EXECABORT",
            "MOVED",
            "ASK",
            "NOAUTH",
            "WRONGPASS",
            "oom",
            "",
            "BUSYGROUP",
        ] {
            assert!(!redis_code_is_outage(code), "{code}");
        }
    }
}
