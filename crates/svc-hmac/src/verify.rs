//! Rejection reasons and the synchronous checks: header parsing, freshness, key selection
//! and the MAC.

use std::sync::Arc;
use std::time::SystemTime;

use gw_problem::{Problem, ProblemType};
use hmac::Mac;
use http::HeaderMap;
use http::request::Parts;

use crate::keys::{KeyRing, KeyUnusable};
use crate::wire::{
    self, CONTENT_DIGEST, CanonicalRequest, MAX_SIGNATURES, SERVICE_ID, SERVICE_KEY_ID,
    SERVICE_NONCE, SERVICE_SIGNATURE, SERVICE_TIMESTAMP,
};

/// Why a request failed service authentication. Each has a stable [`code`](Self::code),
/// used as the problem `code` and as the metric `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// A signing header is missing, duplicated or malformed.
    MissingHeaders,
    /// `X-Service-Timestamp` is outside the window (in either direction).
    StaleTimestamp,
    /// No key ring for `X-Service-ID`.
    UnknownService,
    /// None of the key ids is in the service's ring.
    UnknownKey,
    /// The named keys are expired or revoked.
    KeyExpired,
    /// No signature verifies.
    BadSignature,
    /// The nonce was already used.
    Replayed,
    /// The body does not match `Content-Digest`.
    DigestMismatch,
    /// The body exceeds the size cap (413).
    PayloadTooLarge,
    /// The body could not be read (400).
    BodyUnreadable,
    /// The key store failed (503).
    KeyStoreUnavailable,
    /// The nonce cache failed and the fail mode is closed (503).
    NonceStoreUnavailable,
}

impl Rejection {
    /// The stable reason code, e.g. `bad-signature`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::MissingHeaders => "missing-headers",
            Self::StaleTimestamp => "stale-timestamp",
            Self::UnknownService => "unknown-service",
            Self::UnknownKey => "unknown-key",
            Self::KeyExpired => "key-expired",
            Self::BadSignature => "bad-signature",
            Self::Replayed => "replayed",
            Self::DigestMismatch => "digest-mismatch",
            Self::PayloadTooLarge => "payload-too-large",
            Self::BodyUnreadable => "body-unreadable",
            Self::KeyStoreUnavailable => "key-store-unavailable",
            Self::NonceStoreUnavailable => "nonce-store-unavailable",
        }
    }

    /// The problem type: 401 `service-unauthorized` for authentication failures.
    pub const fn problem_type(self) -> ProblemType {
        match self {
            Self::PayloadTooLarge => ProblemType::PAYLOAD_TOO_LARGE,
            Self::BodyUnreadable => ProblemType::BAD_REQUEST,
            Self::KeyStoreUnavailable | Self::NonceStoreUnavailable => {
                ProblemType::SERVICE_UNAVAILABLE
            }
            _ => ProblemType::SERVICE_UNAUTHORIZED,
        }
    }

    /// The problem to answer with. `detail` must not contain secrets.
    pub fn problem(self, detail: &'static str) -> Problem {
        Problem::new(self.problem_type())
            .code(self.code())
            .detail(detail)
    }
}

/// A rejection with its client-facing detail.
pub(crate) type Failure = (Rejection, &'static str);

/// The signing headers of a request, borrowed.
#[derive(Debug)]
pub(crate) struct Signed<'a> {
    pub canonical: CanonicalRequest<'a>,
    pub timestamp: i64,
    pub signatures: &'a str,
    /// The decoded `sha-256` member of `Content-Digest`.
    pub digest: [u8; 32],
}

fn one<'a>(headers: &'a HeaderMap, name: &http::HeaderName) -> Result<&'a str, Failure> {
    let mut values = headers.get_all(name).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return Err((
            Rejection::MissingHeaders,
            "a service signing header is missing or repeated",
        ));
    };
    v.to_str().map_err(|_| {
        (
            Rejection::MissingHeaders,
            "a service signing header is not visible ASCII",
        )
    })
}

/// Extracts and validates the signing headers.
pub(crate) fn extract(parts: &Parts) -> Result<Signed<'_>, Failure> {
    let h = &parts.headers;
    let canonical = CanonicalRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        timestamp: one(h, &SERVICE_TIMESTAMP)?,
        nonce: one(h, &SERVICE_NONCE)?,
        service_id: one(h, &SERVICE_ID)?,
        key_ids: one(h, &SERVICE_KEY_ID)?,
        content_digest: one(h, &CONTENT_DIGEST)?,
    };
    let signatures = one(h, &SERVICE_SIGNATURE)?;
    let Ok(digest) = canonical.validate_digest() else {
        return Err((
            Rejection::MissingHeaders,
            "a service signing header is malformed",
        ));
    };
    let n_sigs = signatures.split(' ').count();
    if n_sigs > MAX_SIGNATURES || n_sigs != canonical.key_ids.split(' ').count() {
        return Err((
            Rejection::MissingHeaders,
            "X-Service-Signature must hold one signature per key id",
        ));
    }
    let timestamp = wire::parse_timestamp(canonical.timestamp).expect("validated");
    Ok(Signed {
        canonical,
        timestamp,
        signatures,
        digest,
    })
}

/// Checks the timestamp window.
pub(crate) fn check_fresh(timestamp: i64, now: i64, window: i64) -> Result<(), Failure> {
    if timestamp.abs_diff(now) > window.unsigned_abs() {
        return Err((
            Rejection::StaleTimestamp,
            "X-Service-Timestamp is outside the accepted window",
        ));
    }
    Ok(())
}

/// Verifies the signatures against the ring; returns the key id that verified.
///
/// Key ids and signatures pair up by position. The outcome names the most advanced failure:
/// `bad-signature` if some usable key was tried, else `key-expired` if a named key exists
/// but is expired or revoked, else `unknown-key`.
pub(crate) fn check_mac(
    ring: &KeyRing,
    signed: &Signed<'_>,
    canonical: &str,
    now: SystemTime,
) -> Result<Arc<str>, Failure> {
    let mut tried = false;
    let mut unusable = None;
    for (key_id, token) in signed
        .canonical
        .key_ids
        .split(' ')
        .zip(signed.signatures.split(' '))
    {
        let Some(key) = ring.find(key_id) else {
            continue;
        };
        if let Err(why) = key.check_usable(now) {
            unusable = Some(why);
            continue;
        }
        tried = true;
        let Some(sig) = wire::decode_v1(token) else {
            continue;
        };
        let mac = key.mac().clone().chain_update(canonical.as_bytes());
        if mac.verify_slice(&sig).is_ok() {
            return Ok(key.key_id().clone());
        }
    }
    Err(match (tried, unusable) {
        (true, _) => (Rejection::BadSignature, "no signature verifies"),
        (false, Some(KeyUnusable::Expired)) => {
            (Rejection::KeyExpired, "the signing key has expired")
        }
        (false, Some(KeyUnusable::Revoked)) => {
            (Rejection::KeyExpired, "the signing key was revoked")
        }
        (false, None) => (Rejection::UnknownKey, "the signing key is not known"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        assert_eq!(Rejection::Replayed.code(), "replayed");
        assert_eq!(Rejection::BadSignature.problem_type().status.as_u16(), 401);
        assert_eq!(
            Rejection::PayloadTooLarge.problem_type().status.as_u16(),
            413
        );
        assert_eq!(
            Rejection::NonceStoreUnavailable
                .problem_type()
                .status
                .as_u16(),
            503
        );
        let p = Rejection::DigestMismatch.problem("x");
        assert_eq!(p.reason_code(), "digest-mismatch");
    }

    #[test]
    fn window_is_symmetric() {
        assert!(check_fresh(1_000, 1_300, 300).is_ok());
        assert!(check_fresh(1_600, 1_300, 300).is_ok());
        assert_eq!(
            check_fresh(1_601, 1_300, 300).unwrap_err().0,
            Rejection::StaleTimestamp
        );
        assert_eq!(
            check_fresh(999, 1_300, 300).unwrap_err().0,
            Rejection::StaleTimestamp
        );
    }
}
