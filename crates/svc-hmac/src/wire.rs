//! The wire format: header names, the canonical string, signatures and `Content-Digest`.
//!
//! The canonical string is nine newline-separated fields, in this order, with no trailing
//! newline:
//!
//! ```text
//! gw-svc-hmac-v1
//! <METHOD>
//! <path exactly as sent>
//! <query exactly as sent, empty when absent>
//! <X-Service-Timestamp>
//! <X-Service-Nonce>
//! <X-Service-ID>
//! <X-Service-Key-ID>
//! <Content-Digest>
//! ```
//!
//! Newline separation is unambiguous because the number of fields is fixed and no field can
//! contain a newline: the method, path and query come from a parsed request line and the rest
//! from header values, none of which may hold CR or LF, and [`CanonicalRequest::validate`]
//! checks every field's character set again before anything is signed or verified.
//!
//! The receiver (`Host`, scheme, port) is not signed, as in the seed: a captured request
//! verifies at every receiver holding the same service key, and can be replayed once within
//! the window to a receiver whose nonce cache has not seen it. Use one key per receiver or
//! a shared nonce cache (see `docs/svc-hmac.md`, "Nonce caches").

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use http::HeaderName;
use sha2::{Digest, Sha256};

/// HMAC-SHA256.
pub type HmacSha256 = Hmac<Sha256>;

/// First line of the canonical string; bumped with any change to the format.
pub const VERSION: &str = "gw-svc-hmac-v1";
/// Prefix of a signature in `X-Service-Signature`.
pub const SIGNATURE_PREFIX: &str = "v1=";

/// `X-Service-ID`: the calling service.
pub const SERVICE_ID: HeaderName = HeaderName::from_static("x-service-id");
/// `X-Service-Key-ID`: the key (or space-separated keys, during rotation) that signed.
pub const SERVICE_KEY_ID: HeaderName = HeaderName::from_static("x-service-key-id");
/// `X-Service-Timestamp`: unix seconds when the request was signed.
pub const SERVICE_TIMESTAMP: HeaderName = HeaderName::from_static("x-service-timestamp");
/// `X-Service-Nonce`: at least 128 random bits, base64url or hex.
pub const SERVICE_NONCE: HeaderName = HeaderName::from_static("x-service-nonce");
/// `X-Service-Signature`: `v1=<base64>`, space-separated when several keys signed.
pub const SERVICE_SIGNATURE: HeaderName = HeaderName::from_static("x-service-signature");
/// `Content-Digest` (RFC 9530), always `sha-256=:<base64>:` from the signer.
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");

/// Shortest accepted nonce: 22 base64url characters carry 132 bits (32 hex carry 128).
pub const MIN_NONCE_LEN: usize = 22;
/// Longest accepted nonce.
pub const MAX_NONCE_LEN: usize = 128;
/// Longest accepted service id or key id.
pub const MAX_ID_LEN: usize = 64;
/// Most signatures (and key ids) accepted in one request.
pub const MAX_SIGNATURES: usize = 4;

/// The signed fields of one request, as they appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalRequest<'a> {
    /// HTTP method (`POST`).
    pub method: &'a str,
    /// Path exactly as sent (not normalized, not decoded).
    pub path: &'a str,
    /// Query exactly as sent, without `?`; empty when absent.
    pub query: &'a str,
    /// `X-Service-Timestamp` as sent.
    pub timestamp: &'a str,
    /// `X-Service-Nonce`.
    pub nonce: &'a str,
    /// `X-Service-ID`.
    pub service_id: &'a str,
    /// `X-Service-Key-ID` as sent (one id, or several separated by single spaces).
    pub key_ids: &'a str,
    /// `Content-Digest` as sent.
    pub content_digest: &'a str,
}

/// Which field of a [`CanonicalRequest`] is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidField(pub &'static str);

impl std::fmt::Display for InvalidField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed {}", self.0)
    }
}

impl std::error::Error for InvalidField {}

impl CanonicalRequest<'_> {
    /// Checks every field's character set (so none can contain a newline).
    pub fn validate(&self) -> Result<(), InvalidField> {
        self.validate_digest().map(|_| ())
    }

    /// Like [`validate`](Self::validate); returns the decoded `sha-256` digest.
    pub(crate) fn validate_digest(&self) -> Result<[u8; 32], InvalidField> {
        let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if self.method.is_empty() || !self.method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(InvalidField("method"));
        }
        if !self.path.starts_with('/') || !visible(self.path) {
            return Err(InvalidField("path"));
        }
        if !visible(self.query) {
            return Err(InvalidField("query"));
        }
        parse_timestamp(self.timestamp).ok_or(InvalidField("x-service-timestamp"))?;
        if !valid_nonce(self.nonce) {
            return Err(InvalidField("x-service-nonce"));
        }
        if !valid_id(self.service_id) {
            return Err(InvalidField("x-service-id"));
        }
        let mut n = 0;
        for id in self.key_ids.split(' ') {
            n += 1;
            if !valid_id(id) || n > MAX_SIGNATURES {
                return Err(InvalidField("x-service-key-id"));
            }
        }
        sha256_member(self.content_digest).ok_or(InvalidField("content-digest"))
    }

    /// Writes the canonical string into `out` (cleared first). Call
    /// [`validate`](Self::validate) before trusting the result.
    pub fn write_to(&self, out: &mut String) {
        out.clear();
        for (i, field) in [
            VERSION,
            self.method,
            self.path,
            self.query,
            self.timestamp,
            self.nonce,
            self.service_id,
            self.key_ids,
            self.content_digest,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(field);
        }
    }

    /// The canonical string.
    pub fn to_canonical_string(&self) -> String {
        let mut out = String::with_capacity(160 + self.path.len() + self.query.len());
        self.write_to(&mut out);
        out
    }
}

/// Parses `X-Service-Timestamp`: 1 to 12 ASCII digits.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whether `s` is an acceptable nonce: 22 to 128 characters of `[A-Za-z0-9_-]`.
pub fn valid_nonce(s: &str) -> bool {
    (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `s` is an acceptable service id or key id: 1 to 64 characters of
/// `[A-Za-z0-9._-]`, not starting with `.` (so it is also a safe file name).
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The `Content-Digest` value for `body`: `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    format_digest(&Sha256::digest(body).into())
}

/// Formats a SHA-256 hash as a `Content-Digest` value.
pub fn format_digest(hash: &[u8; 32]) -> String {
    let mut out = String::with_capacity(56);
    out.push_str("sha-256=:");
    STANDARD.encode_string(hash, &mut out);
    out.push(':');
    out
}

/// The decoded `sha-256` member of a `Content-Digest` dictionary, if present and well formed.
pub fn sha256_member(header: &str) -> Option<[u8; 32]> {
    for member in header.split(',') {
        let (name, value) = member.trim().split_once('=')?;
        if !name.eq_ignore_ascii_case("sha-256") {
            continue;
        }
        let b64 = value.strip_prefix(':')?.strip_suffix(':')?;
        if b64.len() != 44 {
            return None;
        }
        let mut out = [0u8; 33];
        return match STANDARD.decode_slice(b64, &mut out) {
            Ok(32) => out[..32].try_into().ok(),
            _ => None,
        };
    }
    None
}

/// The `v1` signature of `canonical` with `mac` (a keyed HMAC, cloned per use):
/// `v1=<base64>`.
pub fn sign(mac: &HmacSha256, canonical: &str) -> String {
    let tag = mac.clone().chain_update(canonical.as_bytes()).finalize();
    let mut out = String::with_capacity(48);
    out.push_str(SIGNATURE_PREFIX);
    STANDARD.encode_string(tag.into_bytes(), &mut out);
    out
}

/// A keyed HMAC-SHA256 for `secret`.
pub fn hmac_for(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// A fresh nonce: 16 random bytes as base64url without padding (22 characters).
pub fn new_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes the base64 part of a `v1=<base64>` token; `None` for other versions or bad base64.
pub(crate) fn decode_v1(token: &str) -> Option<[u8; 32]> {
    let b64 = token.strip_prefix(SIGNATURE_PREFIX)?;
    let mut out = [0u8; 32];
    match STANDARD.decode_slice(b64, &mut out) {
        Ok(32) => Some(out),
        _ => None,
    }
}

/// Appends `items` separated by single spaces.
pub(crate) fn join_spaced<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(digest: &'a str) -> CanonicalRequest<'a> {
        CanonicalRequest {
            method: "POST",
            path: "/api/npu/results/42",
            query: "",
            timestamp: "1700000000",
            nonce: "AAECAwQFBgcICQoLDA0ODw",
            service_id: "npu-worker",
            key_ids: "k1",
            content_digest: digest,
        }
    }

    #[test]
    fn digest_of_empty_body_is_the_rfc_value() {
        assert_eq!(
            content_digest(b""),
            "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
        );
        let d = content_digest(b"{\"hello\": \"world\"}");
        // RFC 9530 section B.1 example.
        assert_eq!(d, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
        assert_eq!(
            sha256_member(&d),
            Some(Sha256::digest(b"{\"hello\": \"world\"}").into())
        );
    }

    #[test]
    fn digest_dictionary_parsing() {
        let d = content_digest(b"x");
        let both = format!("sha-512=:AAAA:, {d}");
        assert!(sha256_member(&both).is_some());
        for bad in [
            "",
            "sha-256",
            "sha-256=AAAA",
            "sha-256=:!!:",
            "sha-256=:AAAA:",
            "md5=:AAAA:",
        ] {
            assert_eq!(sha256_member(bad), None, "{bad}");
        }
    }

    #[test]
    fn validation_refuses_fields_that_could_break_the_format() {
        let d = content_digest(b"");
        assert_eq!(req(&d).validate(), Ok(()));
        let bad = [
            CanonicalRequest {
                method: "post",
                ..req(&d)
            },
            CanonicalRequest {
                path: "/a\nb",
                ..req(&d)
            },
            CanonicalRequest {
                query: "a=1\n",
                ..req(&d)
            },
            CanonicalRequest {
                timestamp: "-5",
                ..req(&d)
            },
            CanonicalRequest {
                nonce: "short",
                ..req(&d)
            },
            CanonicalRequest {
                service_id: "../etc",
                ..req(&d)
            },
            CanonicalRequest {
                key_ids: "k1  k2",
                ..req(&d)
            },
            CanonicalRequest {
                key_ids: "a b c d e",
                ..req(&d)
            },
            CanonicalRequest {
                content_digest: "sha-256=:x:",
                ..req(&d)
            },
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
    }

    #[test]
    fn canonical_string_has_nine_lines() {
        let d = content_digest(b"");
        let s = req(&d).to_canonical_string();
        assert_eq!(s.lines().count(), 9);
        assert!(s.starts_with("gw-svc-hmac-v1\nPOST\n/api/npu/results/42\n\n1700000000\n"));
        assert!(!s.ends_with('\n'));
    }

    #[test]
    fn nonces_are_fresh_and_valid() {
        let (a, b) = (new_nonce(), new_nonce());
        assert!(valid_nonce(&a) && valid_nonce(&b));
        assert_ne!(a, b);
    }
}
