//! In-process key store and nonce cache.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::{BoxFuture, ready};
use gw_core::{BackendError, SharedClock, SystemClock};

use crate::keys::{KeyRing, KeyStore};
use crate::nonce::NonceCache;

/// Key rings held in memory; change them at run time with [`insert`](Self::insert).
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    rings: RwLock<HashMap<Arc<str>, Arc<KeyRing>>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a ring, builder style.
    pub fn with_ring(self, ring: KeyRing) -> Self {
        self.insert(ring);
        self
    }

    /// Adds or replaces the ring of its service.
    pub fn insert(&self, ring: KeyRing) {
        let mut rings = self.rings.write().unwrap_or_else(PoisonError::into_inner);
        rings.insert(ring.service_id().clone(), Arc::new(ring));
    }

    /// Removes the ring of `service_id`.
    pub fn remove(&self, service_id: &str) -> Option<Arc<KeyRing>> {
        let mut rings = self.rings.write().unwrap_or_else(PoisonError::into_inner);
        rings.remove(service_id)
    }

    fn get(&self, service_id: &str) -> Option<Arc<KeyRing>> {
        let rings = self.rings.read().unwrap_or_else(PoisonError::into_inner);
        rings.get(service_id).cloned()
    }
}

impl KeyStore for MemoryKeyStore {
    fn ring<'a>(
        &'a self,
        service_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<KeyRing>>, BackendError>> {
        Box::pin(ready(Ok(self.get(service_id))))
    }

    fn rings(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRing>>, BackendError>> {
        let rings = self.rings.read().unwrap_or_else(PoisonError::into_inner);
        Box::pin(ready(Ok(rings.values().cloned().collect())))
    }

    fn ring_now(&self, service_id: &str) -> Option<Result<Option<Arc<KeyRing>>, BackendError>> {
        Some(Ok(self.get(service_id)))
    }
}

/// A bounded in-process nonce cache for a single replica.
///
/// When it is full of unexpired nonces it refuses to record more (a [`BackendError`], so
/// the layer's fail mode decides) rather than forgetting a nonce that could then be
/// replayed. Only requests whose MAC verified are recorded, so only key holders fill it.
///
/// Entries are 128-bit fingerprints of `(service id, nonce)` under two per-process random
/// SipHash keys, so an entry costs a few dozen bytes and no allocation; telling two distinct
/// nonces apart fails only on a 128-bit collision.
#[derive(Debug)]
pub struct MemoryNonceCache {
    state: Mutex<State>,
    capacity: usize,
    clock: SharedClock,
    keys: (RandomState, RandomState),
}

#[derive(Debug, Default)]
struct State {
    expiry: HashMap<u128, u64, BuildHasherDefault<Passthrough>>,
    order: VecDeque<(u64, u128)>,
}

/// Hasher for keys that already are keyed hashes: uses their low 64 bits.
#[derive(Debug, Default)]
struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Default capacity of [`MemoryNonceCache`].
pub const DEFAULT_NONCE_CAPACITY: usize = 100_000;

impl Default for MemoryNonceCache {
    fn default() -> Self {
        Self::new(DEFAULT_NONCE_CAPACITY)
    }
}

impl MemoryNonceCache {
    /// A cache holding at most `capacity` unexpired nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            capacity: capacity.max(1),
            clock: Arc::new(SystemClock),
            keys: (RandomState::new(), RandomState::new()),
        }
    }

    /// Uses `clock` for expiry (tests use a `ManualClock`).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Number of nonces held (expired ones may still be counted until swept).
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expiry
            .len()
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn record(&self, service_id: &str, nonce: &str, ttl: Duration) -> Result<bool, BackendError> {
        let now = millis(self.clock.now());
        let until = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let half = |state: &RandomState| {
            let mut h = state.build_hasher();
            h.write(service_id.as_bytes());
            h.write_u8(b'\n');
            h.write(nonce.as_bytes());
            h.finish()
        };
        let key = u128::from(half(&self.keys.0)) << 64 | u128::from(half(&self.keys.1));
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.sweep_front(now);
        if st.expiry.get(&key).is_some_and(|&exp| exp > now) {
            return Ok(false);
        }
        if st.expiry.len() >= self.capacity {
            st.expiry.retain(|_, exp| *exp > now);
            let State { expiry, order } = &mut *st;
            order.retain(|(exp, k)| expiry.get(k) == Some(exp));
            if st.expiry.len() >= self.capacity {
                return Err(BackendError::unavailable("memory", "nonce cache is full"));
            }
        }
        st.expiry.insert(key, until);
        st.order.push_back((until, key));
        Ok(true)
    }
}

impl State {
    fn sweep_front(&mut self, now: u64) {
        while let Some((exp, _)) = self.order.front() {
            if *exp > now {
                break;
            }
            let (exp, key) = self.order.pop_front().expect("front exists");
            if self.expiry.get(&key) == Some(&exp) {
                self.expiry.remove(&key);
            }
        }
    }
}

fn millis(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl NonceCache for MemoryNonceCache {
    fn check_and_record<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(ready(self.record(service_id, nonce, ttl)))
    }

    fn check_and_record_now(
        &self,
        service_id: &str,
        nonce: &str,
        ttl: Duration,
    ) -> Option<Result<bool, BackendError>> {
        Some(self.record(service_id, nonce, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gw_core::ManualClock;

    #[test]
    fn replays_refused_until_expiry_and_scoped_per_service() {
        let clock = ManualClock::at_unix(1_000);
        let cache = MemoryNonceCache::new(10).clock(Arc::new(clock.clone()));
        let ttl = Duration::from_secs(600);
        assert_eq!(cache.record("a", "n1", ttl), Ok(true));
        assert_eq!(cache.record("a", "n1", ttl), Ok(false));
        assert_eq!(cache.record("b", "n1", ttl), Ok(true));
        clock.advance(Duration::from_secs(599));
        assert_eq!(cache.record("a", "n1", ttl), Ok(false));
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.record("a", "n1", ttl), Ok(true));
    }

    #[test]
    fn full_cache_refuses_instead_of_forgetting() {
        let clock = ManualClock::at_unix(1_000);
        let cache = MemoryNonceCache::new(2).clock(Arc::new(clock.clone()));
        let ttl = Duration::from_secs(10);
        assert_eq!(cache.record("a", "1", ttl), Ok(true));
        assert_eq!(cache.record("a", "2", Duration::from_secs(20)), Ok(true));
        let err = cache.record("a", "3", ttl).unwrap_err();
        assert!(err.is_unavailable());
        assert_eq!(cache.record("a", "1", ttl), Ok(false));
        clock.advance(Duration::from_secs(10));
        assert_eq!(cache.record("a", "3", ttl), Ok(true));
        assert_eq!(cache.len(), 2);
    }
}
