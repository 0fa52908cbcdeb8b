//! The catalogue of problem types, as data.

use http::StatusCode;

/// A problem type: what a `type` URI stands for.
///
/// The `type` URI of a problem is `{base}/{slug}`, where the base is configured on the
/// [`ProblemLayer`](crate::ProblemLayer) (default [`DEFAULT_TYPE_BASE`](crate::DEFAULT_TYPE_BASE)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProblemType {
    /// Last segment of the type URI, e.g. `token-expired`; also the default `code`.
    pub slug: &'static str,
    /// Short human-readable summary; the same for every occurrence.
    pub title: &'static str,
    /// HTTP status code used with this type.
    pub status: StatusCode,
    /// One line saying when this problem occurs.
    pub description: &'static str,
}

macro_rules! catalogue {
    ($($(#[$doc:meta])* $name:ident = ($slug:literal, $status:ident, $title:literal, $desc:literal);)*) => {
        impl ProblemType {
            $(
                $(#[$doc])*
                pub const $name: ProblemType = ProblemType {
                    slug: $slug,
                    title: $title,
                    status: StatusCode::$status,
                    description: $desc,
                };
            )*
        }

        /// Every problem type the gw crates use, in one list (served as documentation
        /// pages by the example gateway at `/problems/{slug}`).
        pub const CATALOGUE: &[ProblemType] = &[$(ProblemType::$name),*];
    };
}

catalogue! {
    /// 401: no credentials.
    UNAUTHORIZED = ("unauthorized", UNAUTHORIZED, "Unauthorized",
        "The request has no credentials (no Authorization header).");
    /// 401: credentials present but not `Bearer <token>`.
    INVALID_TOKEN_FORMAT = ("invalid-token-format", UNAUTHORIZED, "Invalid token format",
        "The Authorization header is not of the form 'Bearer <token>'.");
    /// 401: the token has expired.
    TOKEN_EXPIRED = ("token-expired", UNAUTHORIZED, "Token expired",
        "The bearer token's exp claim is in the past.");
    /// 401: the token did not verify.
    INVALID_TOKEN = ("invalid-token", UNAUTHORIZED, "Invalid token",
        "The bearer token failed verification (signature, key, issuer, audience, or claims).");
    /// 401: a service request signature did not verify.
    SERVICE_UNAUTHORIZED = ("service-unauthorized", UNAUTHORIZED, "Service authentication failed",
        "The service-to-service request signature is missing or did not verify.");
    /// 403: authorization denied.
    PERMISSION_DENIED = ("permission-denied", FORBIDDEN, "Permission denied",
        "The caller lacks the permission this request needs.");
    /// 403: the trial has ended.
    TRIAL_EXPIRED = ("trial-expired", FORBIDDEN, "Trial expired",
        "The caller's trial period has ended; upgrade to continue.");
    /// 429: the trial's daily task limit is used up.
    TRIAL_LIMIT_EXCEEDED = ("trial-limit-exceeded", TOO_MANY_REQUESTS, "Trial limit exceeded",
        "The caller's trial has used all of today's tasks; the count resets at midnight.");
    /// 428: a governor must approve this action first.
    APPROVAL_REQUIRED = ("approval-required", PRECONDITION_REQUIRED, "Approval required",
        "This action needs a governor's approval before it can run.");
    /// 402: a spend budget is used up.
    BUDGET_EXCEEDED = ("budget-exceeded", PAYMENT_REQUIRED, "Budget exceeded",
        "A spend budget for this request's scope is used up for the current period.");
    /// 400: the request is malformed (including ambiguous paths).
    BAD_REQUEST = ("bad-request", BAD_REQUEST, "Bad request",
        "The request is malformed or ambiguous (for example an encoded '/' or '..' in the path).");
    /// 400: the request failed validation.
    VALIDATION_ERROR = ("validation-error", BAD_REQUEST, "Validation error",
        "The request body or parameters failed validation.");
    /// 404: nothing here (or nothing the caller may see).
    NOT_FOUND = ("not-found", NOT_FOUND, "Not found",
        "The resource does not exist or is not visible to the caller.");
    /// 405: method not allowed on this resource.
    METHOD_NOT_ALLOWED = ("method-not-allowed", METHOD_NOT_ALLOWED, "Method not allowed",
        "The resource does not support this HTTP method.");
    /// 409: conflicts with the resource's current state.
    CONFLICT = ("conflict", CONFLICT, "Conflict",
        "The request conflicts with the current state of the resource.");
    /// 413: the body is larger than allowed.
    PAYLOAD_TOO_LARGE = ("payload-too-large", PAYLOAD_TOO_LARGE, "Payload too large",
        "The request body is larger than this endpoint accepts.");
    /// 415: the body's media type is not accepted.
    UNSUPPORTED_MEDIA_TYPE = ("unsupported-media-type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type",
        "The request body's Content-Type is not accepted by this endpoint.");
    /// 429: too many requests.
    TOO_MANY_REQUESTS = ("too-many-requests", TOO_MANY_REQUESTS, "Too many requests",
        "The caller sent too many requests; retry after the indicated time.");
    /// 500: something unexpected failed.
    INTERNAL_SERVER_ERROR = ("internal-server-error", INTERNAL_SERVER_ERROR, "Internal server error",
        "An unexpected error occurred; quote the correlation id when reporting it.");
    /// 502: the upstream answered badly or not at all.
    BAD_GATEWAY = ("bad-gateway", BAD_GATEWAY, "Bad gateway",
        "The upstream service could not be reached or gave an invalid answer.");
    /// 503: a dependency is down.
    SERVICE_UNAVAILABLE = ("service-unavailable", SERVICE_UNAVAILABLE, "Service unavailable",
        "A service this request depends on is unavailable; retry later.");
    /// 504: the upstream did not answer in time.
    GATEWAY_TIMEOUT = ("gateway-timeout", GATEWAY_TIMEOUT, "Gateway timeout",
        "The upstream service did not answer in time.");
}

impl ProblemType {
    /// A problem type of your own (for types outside the catalogue).
    pub const fn new(
        slug: &'static str,
        title: &'static str,
        status: StatusCode,
        description: &'static str,
    ) -> Self {
        Self {
            slug,
            title,
            status,
            description,
        }
    }

    /// The catalogue entry with this slug.
    pub fn by_slug(slug: &str) -> Option<&'static ProblemType> {
        CATALOGUE.iter().find(|t| t.slug == slug)
    }

    /// The type used when a bare error response of `status` is turned into a problem: the
    /// catalogue's generic entry for the status, or `about:blank` with the status's
    /// reason phrase as title (RFC 9457 section 4.2.1).
    pub fn for_status(status: StatusCode) -> ProblemType {
        let generic = match status {
            StatusCode::UNAUTHORIZED => Some(Self::UNAUTHORIZED),
            StatusCode::FORBIDDEN => Some(Self::PERMISSION_DENIED),
            StatusCode::BAD_REQUEST => Some(Self::BAD_REQUEST),
            StatusCode::NOT_FOUND => Some(Self::NOT_FOUND),
            StatusCode::METHOD_NOT_ALLOWED => Some(Self::METHOD_NOT_ALLOWED),
            StatusCode::CONFLICT => Some(Self::CONFLICT),
            StatusCode::PAYLOAD_TOO_LARGE => Some(Self::PAYLOAD_TOO_LARGE),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(Self::UNSUPPORTED_MEDIA_TYPE),
            StatusCode::TOO_MANY_REQUESTS => Some(Self::TOO_MANY_REQUESTS),
            StatusCode::INTERNAL_SERVER_ERROR => Some(Self::INTERNAL_SERVER_ERROR),
            StatusCode::BAD_GATEWAY => Some(Self::BAD_GATEWAY),
            StatusCode::SERVICE_UNAVAILABLE => Some(Self::SERVICE_UNAVAILABLE),
            StatusCode::GATEWAY_TIMEOUT => Some(Self::GATEWAY_TIMEOUT),
            _ => None,
        };
        generic.unwrap_or(Self {
            slug: ABOUT_BLANK,
            title: status.canonical_reason().unwrap_or("Error"),
            status,
            description: "A problem with no more specific type.",
        })
    }

    /// Whether this is the `about:blank` type.
    pub fn is_about_blank(&self) -> bool {
        self.slug == ABOUT_BLANK
    }
}

/// The slug of the `about:blank` type, which is never prefixed with a base.
pub(crate) const ABOUT_BLANK: &str = "about:blank";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalogue_is_complete_and_unique() {
        let slugs: HashSet<_> = CATALOGUE.iter().map(|t| t.slug).collect();
        assert_eq!(slugs.len(), CATALOGUE.len());
        for seed in [
            "unauthorized",
            "invalid-token-format",
            "token-expired",
            "invalid-token",
            "permission-denied",
            "trial-expired",
            "trial-limit-exceeded",
            "approval-required",
            "budget-exceeded",
            "not-found",
            "validation-error",
            "conflict",
            "service-unavailable",
            "gateway-timeout",
            "internal-server-error",
            "bad-request",
            "payload-too-large",
            "unsupported-media-type",
        ] {
            assert!(slugs.contains(seed), "{seed} missing");
        }
        for t in CATALOGUE {
            assert!(t.status.is_client_error() || t.status.is_server_error());
            assert!(!t.description.is_empty() && !t.title.is_empty());
        }
    }

    #[test]
    fn status_fallback() {
        assert_eq!(
            ProblemType::for_status(StatusCode::NOT_FOUND).slug,
            "not-found"
        );
        let teapot = ProblemType::for_status(StatusCode::IM_A_TEAPOT);
        assert!(teapot.is_about_blank());
        assert_eq!(teapot.title, "I'm a teapot");
        assert_eq!(ProblemType::by_slug("budget-exceeded").unwrap().status, 402);
    }
}
