//! Redis nonce cache (`SET NX PX`) and key store, shared by all replicas.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::BoxFuture;
use gw_core::BackendError;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::keys::{KeyRing, KeyState, KeyStore, MAX_EXPIRY_UNIX, ServiceKey, expiry_from_unix};
use crate::nonce::NonceCache;

/// Classifies a Redis error: unreachable, timed out or answering that it cannot serve right
/// now ([`gw_core::redis_code_is_outage`]) is unavailable; anything else is invalid.
fn unavailable(e: redis::RedisError) -> BackendError {
    if e.is_timeout() {
        BackendError::timeout("redis", e)
    } else if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.code().is_some_and(gw_core::redis_code_is_outage)
    {
        BackendError::unavailable("redis", e)
    } else {
        BackendError::invalid("redis", e)
    }
}

async fn connect(url: &str) -> Result<ConnectionManager, BackendError> {
    let client = redis::Client::open(url).map_err(|e| BackendError::invalid("redis", e))?;
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(unavailable)
}

/// Nonces in Redis: `SET {prefix}nonce:{service}:{nonce} 1 NX PX {ttl}`, so every replica
/// sees every nonce.
#[derive(Clone)]
pub struct RedisNonceCache {
    conn: ConnectionManager,
    prefix: Arc<str>,
}

impl RedisNonceCache {
    /// Connects to `url` (for example `redis://127.0.0.1:6379`); keys start with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BackendError> {
        Ok(Self::new(connect(url).await?, prefix))
    }

    /// Uses an existing connection.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }
}

// Debug shows the prefix only: the connection's Debug would print the Redis URL.
impl fmt::Debug for RedisNonceCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNonceCache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyStore")
            .field("prefix", &self.prefix)
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

impl NonceCache for RedisNonceCache {
    fn check_and_record<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let key = format!("{}nonce:{service_id}:{nonce}", self.prefix);
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?;
            Ok(set.is_some())
        })
    }
}

/// Key rings in Redis: one hash per service, `{prefix}keys:{service}`, field = key id,
/// value = JSON `{"secret_b64": "...", "state": "active", "expires_at": 1767225600}`.
///
/// Rings are cached in process for [`cache_ttl`](Self::cache_ttl) (default 5 s), which is
/// the longest a revocation takes to reach a replica.
#[derive(Clone)]
pub struct RedisKeyStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    cache_ttl: Duration,
    cache: Arc<Mutex<RingCache>>,
}

type RingCache = HashMap<Arc<str>, (Instant, Arc<KeyRing>)>;

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKey {
    secret_b64: String,
    #[serde(default)]
    state: KeyState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
}

impl RedisKeyStore {
    /// Connects to `url`; keys start with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BackendError> {
        Ok(Self::new(connect(url).await?, prefix))
    }

    /// Uses an existing connection.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            cache_ttl: Duration::from_secs(5),
            cache: Arc::default(),
        }
    }

    /// How long a fetched ring is reused (`Duration::ZERO`: always read Redis).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    fn hash_key(&self, service_id: &str) -> String {
        format!("{}keys:{service_id}", self.prefix)
    }

    /// Writes (adds or replaces) `key` in the ring of `service_id`.
    pub async fn put_key(&self, service_id: &str, key: &ServiceKey) -> Result<(), BackendError> {
        let stored = StoredKey {
            secret_b64: STANDARD.encode(key.secret().expose()),
            state: key.current_state(),
            // Before the epoch is already expired (0), not "no expiry".
            expires_at: key.expiry().map(|t| {
                t.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs().min(MAX_EXPIRY_UNIX))
            }),
        };
        let json = serde_json::to_string(&stored).map_err(|e| BackendError::invalid("redis", e))?;
        let () = self
            .conn
            .clone()
            .hset(self.hash_key(service_id), &**key.key_id(), json)
            .await
            .map_err(unavailable)?;
        self.forget(service_id);
        Ok(())
    }

    /// Removes the whole ring of `service_id`.
    pub async fn remove_service(&self, service_id: &str) -> Result<(), BackendError> {
        let () = self
            .conn
            .clone()
            .del(self.hash_key(service_id))
            .await
            .map_err(unavailable)?;
        self.forget(service_id);
        Ok(())
    }

    fn forget(&self, service_id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(service_id);
    }

    async fn fetch(&self, service_id: &str) -> Result<Option<Arc<KeyRing>>, BackendError> {
        if !self.cache_ttl.is_zero() {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((at, ring)) = cache.get(service_id)
                && at.elapsed() < self.cache_ttl
            {
                return Ok(Some(ring.clone()));
            }
        }
        let fields: HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(self.hash_key(service_id))
            .await
            .map_err(unavailable)?;
        if fields.is_empty() {
            return Ok(None);
        }
        let mut ring = KeyRing::new(service_id);
        let mut ids: Vec<_> = fields.keys().collect();
        ids.sort();
        for id in ids {
            match decode(id, &fields[id]) {
                Ok(key) => ring = ring.key(key),
                Err(reason) => {
                    tracing::error!(service = service_id, key_id = %id, reason, "svc-hmac: unreadable key in redis, ignored")
                }
            }
        }
        let ring = Arc::new(ring);
        if !self.cache_ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache.insert(ring.service_id().clone(), (Instant::now(), ring.clone()));
        }
        Ok(Some(ring))
    }

    async fn all(&self) -> Result<Vec<Arc<KeyRing>>, BackendError> {
        let pattern = format!("{}keys:*", self.prefix);
        let strip = format!("{}keys:", self.prefix);
        let mut conn = self.conn.clone();
        let mut cursor = 0u64;
        let mut services = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(100)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            services.extend(
                keys.into_iter()
                    .filter_map(|k| k.strip_prefix(&strip).map(str::to_owned)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        services.sort();
        services.dedup();
        let mut rings = Vec::with_capacity(services.len());
        for s in services {
            if let Some(ring) = self.fetch(&s).await? {
                rings.push(ring);
            }
        }
        Ok(rings)
    }
}

/// A stored key, or why it cannot be used (never the secret).
fn decode(key_id: &str, json: &str) -> Result<ServiceKey, &'static str> {
    let stored: StoredKey = serde_json::from_str(json).map_err(|_| "not a stored key (JSON)")?;
    let secret = STANDARD
        .decode(stored.secret_b64)
        .map_err(|_| "secret_b64 is not base64")?;
    let mut key = ServiceKey::new(key_id, crate::keys::Secret::new(secret)).state(stored.state);
    if let Some(at) = stored.expires_at {
        let at = expiry_from_unix(at).ok_or("expires_at is after year 9999")?;
        key = key.expires_at(at);
    }
    Ok(key)
}

impl KeyStore for RedisKeyStore {
    fn ring<'a>(
        &'a self,
        service_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<KeyRing>>, BackendError>> {
        Box::pin(self.fetch(service_id))
    }

    fn rings(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRing>>, BackendError>> {
        Box::pin(self.all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gw_core::BackendErrorKind;

    #[test]
    fn a_redis_that_cannot_serve_right_now_is_unavailable() {
        let kind = |code: &str| unavailable(redis::make_extension_error(code.into(), None)).kind;
        for code in [
            "OOM",
            "LOADING",
            "READONLY",
            "BUSY",
            "MISCONF",
            "CLUSTERDOWN",
        ] {
            assert_eq!(kind(code), BackendErrorKind::Unavailable, "{code}");
        }
        for code in ["NOPERM", "WRONGTYPE", "ERR"] {
            assert_eq!(kind(code), BackendErrorKind::Invalid, "{code}");
        }
    }
}
