//! Service keys, key rings with states and expiry, and the [`KeyStore`] trait.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use gw_core::{BackendError, Clock};

use crate::wire::{HmacSha256, hmac_for};

/// Name of the gauge with the days until each key expires (negative once expired), labelled
/// `service` and `key_id`.
pub const KEY_EXPIRY_GAUGE: &str = "svc_hmac_key_expiry_days";

/// The latest key expiry accepted as Unix seconds: 9999-12-31T23:59:59Z. Key files and
/// Redis entries with a later `expires_at` are refused: the value is a mistake (often
/// milliseconds for seconds), and past `i64::MAX` it is not even a time.
pub const MAX_EXPIRY_UNIX: u64 = 253_402_300_799;

/// The time `secs` after the Unix epoch, if it is at most [`MAX_EXPIRY_UNIX`].
pub(crate) fn expiry_from_unix(secs: u64) -> Option<SystemTime> {
    (secs <= MAX_EXPIRY_UNIX).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Key material. Never printed: `Debug` shows only the length.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// Wraps raw key bytes.
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self(bytes.into())
    }

    /// The raw key bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for Secret {
    /// The UTF-8 bytes of `s`, as written in a key file (no decoding).
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.0.len())
    }
}

/// Lifecycle state of a key.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Signs and verifies.
    #[default]
    Active,
    /// Verifies only: an old key during rotation, or a new one not yet handed out.
    VerifyOnly,
    /// Refused everywhere.
    Revoked,
}

impl KeyState {
    /// The wire name: `active`, `verify_only` or `revoked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::VerifyOnly => "verify_only",
            Self::Revoked => "revoked",
        }
    }
}

impl std::str::FromStr for KeyState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "active" => Ok(Self::Active),
            "verify_only" => Ok(Self::VerifyOnly),
            "revoked" => Ok(Self::Revoked),
            other => Err(format!("unknown key state {other:?}")),
        }
    }
}

/// One key of a service.
#[derive(Clone)]
pub struct ServiceKey {
    key_id: Arc<str>,
    secret: Secret,
    mac: HmacSha256,
    state: KeyState,
    expires_at: Option<SystemTime>,
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceKey")
            .field("key_id", &self.key_id)
            .field("secret", &self.secret)
            .field("state", &self.state)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl PartialEq for ServiceKey {
    fn eq(&self, other: &Self) -> bool {
        self.key_id == other.key_id
            && self.secret.expose() == other.secret.expose()
            && self.state == other.state
            && self.expires_at == other.expires_at
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUnusable {
    /// Past its expiry time.
    Expired,
    /// Revoked.
    Revoked,
}

impl ServiceKey {
    /// An active key with no expiry.
    pub fn new(key_id: impl Into<Arc<str>>, secret: impl Into<Secret>) -> Self {
        let secret = secret.into();
        Self {
            key_id: key_id.into(),
            mac: hmac_for(secret.expose()),
            secret,
            state: KeyState::Active,
            expires_at: None,
        }
    }

    /// Sets the state.
    pub fn state(mut self, state: KeyState) -> Self {
        self.state = state;
        self
    }

    /// Sets the expiry time.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets the expiry time from unix seconds. A value above [`MAX_EXPIRY_UNIX`] is taken
    /// as that latest time (key files and stores refuse such a value instead).
    pub fn expires_at_unix(self, secs: u64) -> Self {
        let secs = secs.min(MAX_EXPIRY_UNIX);
        self.expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// The key id.
    pub fn key_id(&self) -> &Arc<str> {
        &self.key_id
    }

    /// The key material.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The current state.
    pub fn current_state(&self) -> KeyState {
        self.state
    }

    /// The expiry time, if any.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The keyed HMAC, ready to clone per request.
    pub fn mac(&self) -> &HmacSha256 {
        &self.mac
    }

    /// Whether the key may verify at `now`.
    pub fn check_usable(&self, now: SystemTime) -> Result<(), KeyUnusable> {
        if self.state == KeyState::Revoked {
            return Err(KeyUnusable::Revoked);
        }
        match self.expires_at {
            Some(at) if at <= now => Err(KeyUnusable::Expired),
            _ => Ok(()),
        }
    }

    /// Days until expiry at `now` (fractional, negative once expired); `None` without expiry.
    pub fn days_until_expiry(&self, now: SystemTime) -> Option<f64> {
        let at = self.expires_at?;
        Some(match at.duration_since(now) {
            Ok(d) => d.as_secs_f64() / 86_400.0,
            Err(e) => -e.duration().as_secs_f64() / 86_400.0,
        })
    }
}

/// All keys of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRing {
    service_id: Arc<str>,
    keys: Vec<ServiceKey>,
}

impl KeyRing {
    /// An empty ring for `service_id`.
    pub fn new(service_id: impl Into<Arc<str>>) -> Self {
        Self {
            service_id: service_id.into(),
            keys: Vec::new(),
        }
    }

    /// Adds a key (a key with the same id is replaced).
    pub fn key(mut self, key: ServiceKey) -> Self {
        self.keys.retain(|k| k.key_id != key.key_id);
        self.keys.push(key);
        self
    }

    /// The service id.
    pub fn service_id(&self) -> &Arc<str> {
        &self.service_id
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> &[ServiceKey] {
        &self.keys
    }

    /// The key with id `key_id`.
    pub fn find(&self, key_id: &str) -> Option<&ServiceKey> {
        self.keys.iter().find(|k| &*k.key_id == key_id)
    }

    /// The active, unexpired keys at `now`: the ones a signer uses.
    pub fn signing_keys(&self, now: SystemTime) -> impl Iterator<Item = &ServiceKey> {
        self.keys
            .iter()
            .filter(move |k| k.state == KeyState::Active && k.check_usable(now).is_ok())
    }

    /// Sets the [`KEY_EXPIRY_GAUGE`] for every key with an expiry time.
    pub fn report_expiry(&self, now: SystemTime) {
        for key in &self.keys {
            if let Some(days) = key.days_until_expiry(now) {
                metrics::gauge!(
                    KEY_EXPIRY_GAUGE,
                    "service" => self.service_id.to_string(),
                    "key_id" => key.key_id.to_string(),
                )
                .set(days);
            }
        }
    }
}

/// Where the verifier finds the keys of a calling service.
pub trait KeyStore: Send + Sync + fmt::Debug + 'static {
    /// The key ring of `service_id`, or `None` for an unknown service.
    fn ring<'a>(
        &'a self,
        service_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<KeyRing>>, BackendError>>;

    /// Every key ring, for expiry reporting.
    fn rings(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRing>>, BackendError>>;

    /// The answer of [`ring`](Self::ring) when it is available without waiting (in-memory
    /// stores), saving the boxed future; `None` (the default) means "call `ring`".
    fn ring_now(&self, service_id: &str) -> Option<Result<Option<Arc<KeyRing>>, BackendError>> {
        let _ = service_id;
        None
    }
}

impl<T: KeyStore + ?Sized> KeyStore for Arc<T> {
    fn ring<'a>(
        &'a self,
        service_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<KeyRing>>, BackendError>> {
        (**self).ring(service_id)
    }

    fn rings(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRing>>, BackendError>> {
        (**self).rings()
    }

    fn ring_now(&self, service_id: &str) -> Option<Result<Option<Arc<KeyRing>>, BackendError>> {
        (**self).ring_now(service_id)
    }
}

/// Sets the [`KEY_EXPIRY_GAUGE`] for every key in `store`; returns how many rings were
/// reported. Call it on an interval (for example daily) to drive expiry alerts.
pub async fn report_key_expiry(
    store: &dyn KeyStore,
    clock: &dyn Clock,
) -> Result<usize, BackendError> {
    let rings = store.rings().await?;
    let now = clock.now();
    for ring in &rings {
        ring.report_expiry(now);
    }
    Ok(rings.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let k = ServiceKey::new("k1", "s3cret").expires_at(now + Duration::from_secs(86_400 * 2));
        assert_eq!(k.check_usable(now), Ok(()));
        assert_eq!(k.days_until_expiry(now), Some(2.0));
        assert_eq!(
            k.check_usable(now + Duration::from_secs(86_400 * 2)),
            Err(KeyUnusable::Expired)
        );
        let r = k.clone().state(KeyState::Revoked);
        assert_eq!(r.check_usable(now), Err(KeyUnusable::Revoked));
        assert!(!format!("{k:?}").contains("s3cret"));
        assert_eq!("verify-only".parse::<KeyState>(), Ok(KeyState::VerifyOnly));
        assert!("nope".parse::<KeyState>().is_err());
        // Past what SystemTime holds: the latest accepted time, not a panic.
        let far = ServiceKey::new("k", "s").expires_at_unix(u64::MAX);
        assert_eq!(far.expiry(), expiry_from_unix(MAX_EXPIRY_UNIX));
        assert_eq!(expiry_from_unix(MAX_EXPIRY_UNIX + 1), None);
    }

    #[test]
    fn ring_picks_active_unexpired_signing_keys() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ring = KeyRing::new("svc")
            .key(ServiceKey::new("old", "a").state(KeyState::VerifyOnly))
            .key(ServiceKey::new("gone", "b").expires_at(now))
            .key(ServiceKey::new("new", "c"))
            .key(ServiceKey::new("new", "d"));
        let ids: Vec<_> = ring.signing_keys(now).map(|k| &**k.key_id()).collect();
        assert_eq!(ids, ["new"]);
        assert_eq!(ring.find("new").unwrap().secret().expose(), b"d");
        assert_eq!(ring.keys().len(), 3);
    }
}
