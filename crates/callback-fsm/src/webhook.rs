//! [`WebhookKeys`]: Standard Webhooks signatures as the callback's authentication.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gw_core::{SharedClock, SystemClock};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::secret::SecretError;

/// `webhook-id` header: the event id.
pub const WEBHOOK_ID_HEADER: &str = "webhook-id";
/// `webhook-timestamp` header: Unix seconds when the message was signed.
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// `webhook-signature` header: space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "webhook-signature";

/// Shortest signing key accepted, in decoded bytes (the Standard Webhooks minimum).
pub const MIN_WEBHOOK_KEY_LEN: usize = 24;

/// Default accepted clock skew for `webhook-timestamp`.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Signing keys for [Standard Webhooks](https://www.standardwebhooks.com/) signatures:
/// `v1,` base64 HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`.
///
/// Keys are given as `whsec_<base64>` (or bare base64), several at once for rotation,
/// each at least [`MIN_WEBHOOK_KEY_LEN`] bytes. Every presented signature is checked
/// against every key with `Mac::verify_slice`, without stopping at a match. `Debug` never
/// prints the keys.
#[derive(Clone)]
pub struct WebhookKeys {
    keys: Arc<[Vec<u8>]>,
    tolerance: Duration,
    clock: SharedClock,
}

impl fmt::Debug for WebhookKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookKeys")
            .field("count", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl WebhookKeys {
    /// Accepts `secrets` (`whsec_<base64>` or base64). A key that does not decode counts
    /// as too short.
    pub fn new<I, S>(secrets: I) -> Result<Self, SecretError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut keys = Vec::new();
        for (index, secret) in secrets.into_iter().enumerate() {
            let secret = secret.as_ref();
            let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
            match STANDARD.decode(encoded) {
                Ok(key) if key.len() >= MIN_WEBHOOK_KEY_LEN => keys.push(key),
                _ => return Err(SecretError::TooShort { index }),
            }
        }
        if keys.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self {
            keys: keys.into(),
            tolerance: DEFAULT_TOLERANCE,
            clock: Arc::new(SystemClock),
        })
    }

    /// Accepts timestamps at most `tolerance` away from now (default 5 minutes).
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Reads "now" from `clock` (tests use `gw_core::ManualClock`).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the headers that can be checked before the body arrives: present,
    /// well-formed, timestamp within the tolerance. Returns the message id and timestamp.
    pub(crate) fn precheck(&self, headers: &HeaderMap) -> Option<Signed> {
        let one = |name: &str| {
            let mut all = headers.get_all(name).iter();
            let first = all.next()?;
            all.next().is_none().then_some(first)?.to_str().ok()
        };
        let id = one(WEBHOOK_ID_HEADER)?;
        let timestamp = one(WEBHOOK_TIMESTAMP_HEADER)?;
        let signatures = one(WEBHOOK_SIGNATURE_HEADER)?;
        if id.is_empty() || timestamp.len() > 12 || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let at: i64 = timestamp.parse().ok()?;
        let now = self.clock.unix_seconds();
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        if now.abs_diff(at) > tolerance.unsigned_abs() {
            return None;
        }
        let signatures = signatures
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| STANDARD.decode(s).ok())
            .collect::<Vec<_>>();
        if signatures.is_empty() {
            return None;
        }
        Some(Signed {
            id: id.to_owned(),
            timestamp: timestamp.to_owned(),
            signatures,
        })
    }

    /// Whether one of `signed.signatures` is a valid signature of `body` under one of the
    /// keys.
    pub(crate) fn verify(&self, signed: &Signed, body: &[u8]) -> bool {
        let mut ok = Choice::from(0u8);
        for key in self.keys.iter() {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(signed.id.as_bytes());
            mac.update(b".");
            mac.update(signed.timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            let expected = mac.finalize().into_bytes();
            for sig in &signed.signatures {
                ok |= expected.as_slice().ct_eq(sig);
            }
        }
        bool::from(ok)
    }

    /// The `webhook-signature` value for `body` under the first key (for senders and
    /// tests).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.keys[0]).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The signature headers of a request, prechecked.
#[derive(Debug)]
pub(crate) struct Signed {
    pub(crate) id: String,
    timestamp: String,
    signatures: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use gw_core::ManualClock;
    use http::HeaderValue;

    // The Standard Webhooks specification's test vector.
    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(WEBHOOK_ID_HEADER, HeaderValue::from_str(id).unwrap());
        h.insert(WEBHOOK_TIMESTAMP_HEADER, HeaderValue::from_str(ts).unwrap());
        h.insert(
            WEBHOOK_SIGNATURE_HEADER,
            HeaderValue::from_str(sig).unwrap(),
        );
        h
    }

    fn keys() -> WebhookKeys {
        WebhookKeys::new([KEY])
            .unwrap()
            .clock(Arc::new(ManualClock::at_unix(TS as u64)))
    }

    #[test]
    fn spec_vector_verifies() {
        let keys = keys();
        assert_eq!(keys.sign(ID, TS, BODY), SIG);
        let signed = keys.precheck(&headers(ID, &TS.to_string(), SIG)).unwrap();
        assert!(keys.verify(&signed, BODY));
        assert!(!keys.verify(&signed, br#"{"test": 2432232315}"#));
        // Several signatures (rotation on the sender side): any valid one is enough.
        let both = format!("v1,AAAA {SIG} v2,zzz");
        let signed = keys.precheck(&headers(ID, &TS.to_string(), &both)).unwrap();
        assert!(keys.verify(&signed, BODY));
        // Another id or timestamp breaks the signature.
        let signed = keys
            .precheck(&headers("msg_other", &TS.to_string(), SIG))
            .unwrap();
        assert!(!keys.verify(&signed, BODY));
    }

    #[test]
    fn rotation_and_key_rules() {
        let other = format!("whsec_{}", STANDARD.encode([7u8; 32]));
        let rotated = WebhookKeys::new([other.as_str(), KEY])
            .unwrap()
            .clock(Arc::new(ManualClock::at_unix(TS as u64)));
        let signed = rotated
            .precheck(&headers(ID, &TS.to_string(), SIG))
            .unwrap();
        assert!(rotated.verify(&signed, BODY));
        assert_eq!(
            WebhookKeys::new([format!("whsec_{}", STANDARD.encode([1u8; 16]))]).unwrap_err(),
            SecretError::TooShort { index: 0 }
        );
        assert!(WebhookKeys::new(["whsec_not base64!"]).is_err());
        assert_eq!(
            WebhookKeys::new(Vec::<String>::new()).unwrap_err(),
            SecretError::Empty
        );
        assert!(!format!("{rotated:?}").contains("MfKQ"));
    }

    #[test]
    fn precheck_refuses_bad_headers_and_stale_timestamps() {
        let keys = keys();
        let ts = TS.to_string();
        assert!(
            keys.precheck(&headers(ID, &(TS - 300).to_string(), SIG))
                .is_some()
        );
        assert!(
            keys.precheck(&headers(ID, &(TS + 300).to_string(), SIG))
                .is_some()
        );
        for h in [
            headers(ID, &(TS - 301).to_string(), SIG),
            headers(ID, &(TS + 301).to_string(), SIG),
            headers(ID, "-5", SIG),
            headers(ID, "1614265330.5", SIG),
            headers("", &ts, SIG),
            headers(ID, &ts, "v2,abc"),
            headers(ID, &ts, "g0hM9SsE"),
            HeaderMap::new(),
        ] {
            assert!(keys.precheck(&h).is_none(), "{h:?}");
        }
        let mut twice = headers(ID, &ts, SIG);
        twice.append(WEBHOOK_ID_HEADER, HeaderValue::from_static("msg_2"));
        assert!(keys.precheck(&twice).is_none());
    }
}
