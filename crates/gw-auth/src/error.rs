//! Why a request was not authenticated, and how that is answered (401 problem +
//! RFC 6750 `WWW-Authenticate`).

use std::fmt;

use gw_problem::{Problem, ProblemType};
use http::HeaderValue;

/// The four outcomes a client can tell apart; each is one stable problem `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No `Authorization` header (`unauthorized`).
    Missing,
    /// The header is not exactly `Bearer <token>` (`invalid-token-format`).
    Format,
    /// The token verified but its `exp` has passed (`token-expired`).
    Expired,
    /// The token did not verify or its claims are unacceptable (`invalid-token`).
    Invalid,
}

impl ErrorKind {
    /// The stable problem `code`.
    pub const fn code(self) -> &'static str {
        self.problem_type().slug
    }

    /// The problem type answered with.
    pub const fn problem_type(self) -> ProblemType {
        match self {
            Self::Missing => ProblemType::UNAUTHORIZED,
            Self::Format => ProblemType::INVALID_TOKEN_FORMAT,
            Self::Expired => ProblemType::TOKEN_EXPIRED,
            Self::Invalid => ProblemType::INVALID_TOKEN,
        }
    }

    /// The RFC 6750 `error` attribute, if this kind carries one (section 3.1: a request
    /// without credentials gets none).
    pub const fn rfc6750_error(self) -> Option<&'static str> {
        match self {
            Self::Missing => None,
            Self::Format => Some("invalid_request"),
            Self::Expired | Self::Invalid => Some("invalid_token"),
        }
    }
}

/// An authentication failure: a [`ErrorKind`] and a finer, stable `reason`
/// (`bad-signature`, `unknown-kid`, `wrong-audience`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthError {
    kind: ErrorKind,
    reason: &'static str,
}

impl AuthError {
    /// An error of `kind` for `reason`.
    pub const fn new(kind: ErrorKind, reason: &'static str) -> Self {
        Self { kind, reason }
    }

    pub(crate) const fn missing() -> Self {
        Self::new(ErrorKind::Missing, "missing-authorization")
    }

    pub(crate) const fn format(reason: &'static str) -> Self {
        Self::new(ErrorKind::Format, reason)
    }

    pub(crate) const fn invalid(reason: &'static str) -> Self {
        Self::new(ErrorKind::Invalid, reason)
    }

    pub(crate) const fn expired() -> Self {
        Self::new(ErrorKind::Expired, "expired")
    }

    /// What the client is told.
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable problem `code` (`unauthorized`, `invalid-token-format`,
    /// `token-expired`, `invalid-token`).
    pub const fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The finer reason, also the `reason` member of the problem and a metrics label.
    pub const fn reason(&self) -> &'static str {
        self.reason
    }

    fn description(&self) -> &'static str {
        match self.kind {
            ErrorKind::Missing => "The request has no Authorization header.",
            ErrorKind::Format => "The Authorization header must be 'Bearer <token>'.",
            ErrorKind::Expired => "The access token expired.",
            ErrorKind::Invalid => "The access token is invalid.",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 section 3), with `realm` if given.
    pub fn www_authenticate(&self, realm: Option<&str>) -> HeaderValue {
        let mut v = String::from("Bearer");
        let mut sep = " ";
        if let Some(realm) = realm {
            v.push_str(sep);
            push_param(&mut v, "realm", realm);
            sep = ", ";
        }
        if let Some(error) = self.kind.rfc6750_error() {
            v.push_str(sep);
            push_param(&mut v, "error", error);
            v.push_str(", ");
            push_param(&mut v, "error_description", self.description());
        }
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// The problem document: the kind's type and `code`, the `reason` member.
    pub fn problem(&self) -> Problem {
        Problem::new(self.kind.problem_type())
            .code(self.code())
            .detail(self.description())
            .with("reason", self.reason)
    }
}

/// Appends `name="value"`, keeping only characters RFC 6750 allows in a quoted value.
fn push_param(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    out.extend(
        value
            .chars()
            .filter(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~')),
    );
    out.push('"');
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.reason)
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc6750() {
        assert_eq!(AuthError::missing().www_authenticate(None), "Bearer");
        assert_eq!(
            AuthError::missing().www_authenticate(Some("api")),
            "Bearer realm=\"api\""
        );
        assert_eq!(
            AuthError::expired().www_authenticate(Some("a\"b")),
            "Bearer realm=\"ab\", error=\"invalid_token\", error_description=\"The access token expired.\""
        );
        assert_eq!(
            AuthError::format("x").www_authenticate(None),
            "Bearer error=\"invalid_request\", error_description=\"The Authorization header must be 'Bearer <token>'.\""
        );
        let p = AuthError::invalid("bad-signature").problem();
        assert_eq!(p.reason_code(), "invalid-token");
        assert_eq!(p.extension("reason").unwrap(), "bad-signature");
    }
}
