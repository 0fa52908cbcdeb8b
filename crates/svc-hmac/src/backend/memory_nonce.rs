//! In-process nonce cache: bounded, swept by expiry second, fair between services.
//!
//! Sizing: the layer keeps a nonce until its timestamp leaves the window
//! (`ts + window + 1 s`, about 301 s by default), so a replica verifies at most
//! `capacity / 301` requests per second summed over all services (3 300 per second at the
//! default capacity, 2 900 for services at equal rates, which fill 7/8 of it). An entry is
//! a 128-bit fingerprint of `(service id, nonce)` under two per-process random SipHash
//! keys, 50 to 95 bytes with the expiry slot and growth slack and no allocation of its
//! own, so a full default cache takes at most about 95 MB, taken as it fills (300 requests
//! per second hold about 90 000 nonces, under 9 MB). Two distinct nonces are confused only
//! on a 128-bit collision.
//!
//! Fairness: once the cache is 7/8 full, a service holding at least the average share
//! (entries divided by the services holding entries, counting the caller) is refused; the
//! last eighth goes to services below the average.
//!
//! Expiry: nonces are grouped by the second they expire in (rounded up, never early) and
//! dropped a whole second at a time by the next call, so no call scans the cache.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::{BoxFuture, ready};
use gw_core::{BackendError, SharedClock, SystemClock};

use crate::nonce::NonceCache;

/// Default capacity of [`MemoryNonceCache`]: 1 000 000 nonces, enough for about 3 300
/// verified requests per second per replica with the default 300 s window (a nonce is kept
/// about 301 s).
pub const DEFAULT_NONCE_CAPACITY: usize = 1_000_000;

/// A bounded in-process nonce cache for one replica, good for about `capacity / 301`
/// verified requests per second with the default window. When full it refuses to record
/// more (a [`BackendError`], so the layer's fail mode decides) rather than forget a live
/// nonce, and keeps its last eighth for services below the average share.
#[derive(Debug)]
pub struct MemoryNonceCache {
    state: Mutex<State>,
    capacity: usize,
    clock: SharedClock,
    keys: (RandomState, RandomState),
}

/// A keyed 128-bit fingerprint of `(service id, nonce)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint(u64, u64);

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed hash: one word is enough to place it.
        state.write_u64(self.0);
    }
}

/// Hasher for keys that already are keyed hashes: keeps the last word written.
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
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A nonce's fingerprint and the index of its service in [`State::held`].
type Held = (Fingerprint, u32);

#[derive(Debug, Default)]
struct State {
    /// Unexpired nonces: every entry here is also in exactly one bucket of `by_expiry`.
    live: HashSet<Fingerprint, BuildHasherDefault<Passthrough>>,
    /// Nonces by the Unix second from which they have expired.
    by_expiry: BTreeMap<u64, Vec<Held>>,
    /// Service id -> index into `held`.
    services: HashMap<Arc<str>, u32>,
    /// Live nonces per service index.
    held: Vec<usize>,
    /// Services holding at least one live nonce.
    active: usize,
    /// Emptied bucket vectors, reused so a steady rate allocates nothing.
    spare: Vec<Vec<Held>>,
}

/// How many emptied bucket vectors are kept for reuse.
const SPARE_BUCKETS: usize = 4;

impl Default for MemoryNonceCache {
    fn default() -> Self {
        Self::new(DEFAULT_NONCE_CAPACITY)
    }
}

impl MemoryNonceCache {
    /// A cache holding at most `capacity` unexpired nonces (see [`DEFAULT_NONCE_CAPACITY`]
    /// for the rate a capacity allows).
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

    /// Number of nonces held (expired ones are counted until the next call sweeps them).
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fingerprint(&self, service_id: &str, nonce: &str) -> Fingerprint {
        let half = |state: &RandomState| {
            let mut h = state.build_hasher();
            h.write(service_id.as_bytes());
            h.write_u8(b'\n');
            h.write(nonce.as_bytes());
            h.finish()
        };
        Fingerprint(half(&self.keys.0), half(&self.keys.1))
    }

    fn record(&self, service_id: &str, nonce: &str, ttl: Duration) -> Result<bool, BackendError> {
        let now = millis(self.clock.now());
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        // Kept while `now < until * 1000`: rounded up to a whole second, never early.
        let until = now.saturating_add(ttl).div_ceil(1000);
        let fp = self.fingerprint(service_id, nonce);
        let mut st = self.lock();
        st.sweep(now / 1000);
        if st.live.contains(&fp) {
            return Ok(false);
        }
        let total = st.live.len();
        if total >= self.capacity {
            return Err(BackendError::unavailable("memory", "nonce cache is full"));
        }
        let svc = st.service(service_id);
        let held = st.held[svc as usize];
        let sharing = st.active + usize::from(held == 0);
        let reserve = self.capacity / 8;
        if total >= self.capacity - reserve && held.saturating_mul(sharing) >= total {
            return Err(BackendError::unavailable(
                "memory",
                "nonce cache is nearly full and this service holds at least its share",
            ));
        }
        st.insert(fp, svc, until);
        Ok(true)
    }
}

impl State {
    /// Drops every bucket whose second has come.
    fn sweep(&mut self, now_secs: u64) {
        while let Some(bucket) = self.by_expiry.first_entry() {
            if *bucket.key() > now_secs {
                break;
            }
            let mut entries = bucket.remove();
            for (fp, svc) in entries.drain(..) {
                self.live.remove(&fp);
                let held = &mut self.held[svc as usize];
                *held -= 1;
                if *held == 0 {
                    self.active -= 1;
                }
            }
            if self.spare.len() < SPARE_BUCKETS {
                self.spare.push(entries);
            }
        }
    }

    /// The index of `service_id`, added on first use.
    fn service(&mut self, service_id: &str) -> u32 {
        if let Some(&i) = self.services.get(service_id) {
            return i;
        }
        // Only services whose MAC verified get here: as many as the key store holds.
        let i = u32::try_from(self.held.len()).unwrap_or(u32::MAX);
        self.held.push(0);
        self.services.insert(service_id.into(), i);
        i
    }

    fn insert(&mut self, fp: Fingerprint, svc: u32, until: u64) {
        self.live.insert(fp);
        let bucket = match self.by_expiry.entry(until) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.spare.pop().unwrap_or_default()),
        };
        bucket.push((fp, svc));
        let held = &mut self.held[svc as usize];
        if *held == 0 {
            self.active += 1;
        }
        *held += 1;
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

    #[test]
    fn expired_nonces_leave_in_any_order_without_a_full_cache() {
        let clock = ManualClock::at_unix(1_000);
        let cache = MemoryNonceCache::new(100).clock(Arc::new(clock.clone()));
        // Recorded in an order that is not their expiry order (timestamps vary).
        assert_eq!(cache.record("a", "late", Duration::from_secs(20)), Ok(true));
        assert_eq!(
            cache.record("a", "early", Duration::from_millis(9_500)),
            Ok(true)
        );
        assert_eq!(cache.record("b", "mid", Duration::from_secs(15)), Ok(true));
        clock.advance(Duration::from_millis(9_999));
        assert_eq!(
            cache.record("a", "early", Duration::from_secs(1)),
            Ok(false)
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(cache.record("c", "x", Duration::from_secs(100)), Ok(true));
        assert_eq!(cache.len(), 3, "the early nonce left behind a later one");
        clock.advance(Duration::from_secs(10));
        assert_eq!(cache.record("c", "y", Duration::from_secs(100)), Ok(true));
        assert_eq!(
            cache.len(),
            2,
            "both expired nonces left, from two services"
        );
        assert_eq!(cache.record("a", "early", Duration::from_secs(1)), Ok(true));
        assert_eq!(cache.record("a", "late", Duration::from_secs(1)), Ok(true));
        let st = cache.lock();
        assert_eq!((st.active, st.held.iter().sum::<usize>()), (2, 4));
    }

    #[test]
    fn one_service_cannot_fill_the_cache_for_the_others() {
        let clock = ManualClock::at_unix(1_000);
        let cache = MemoryNonceCache::new(16).clock(Arc::new(clock.clone()));
        let ttl = Duration::from_secs(300);
        let mut n = 0..;
        let mut fill = |svc: &str| {
            (&mut n)
                .map(|i| cache.record(svc, &i.to_string(), ttl))
                .take_while(Result::is_ok)
                .count()
        };
        // Alone, a service fills all but the reserve (16 / 8 = 2).
        assert_eq!(fill("hog"), 14);
        // Another service still gets in, up to the hard bound.
        assert_eq!(fill("quiet"), 2);
        assert!(
            cache
                .record("third", "z", ttl)
                .unwrap_err()
                .is_unavailable()
        );
        assert_eq!(cache.len(), 16);
        // Above the average share, a service is refused in the reserve; below, it is not.
        let cache2 = MemoryNonceCache::new(16).clock(Arc::new(clock));
        for i in 0..10 {
            assert_eq!(cache2.record("hog", &i.to_string(), ttl), Ok(true));
        }
        for i in 0..4 {
            assert_eq!(cache2.record("quiet", &i.to_string(), ttl), Ok(true));
        }
        // 14 held: the reserve is reached. The hog (10 of 14, above the average of 7) is
        // refused; the quiet service (4) is not.
        assert!(cache2.record("hog", "x", ttl).unwrap_err().is_unavailable());
        assert_eq!(cache2.record("quiet", "x", ttl), Ok(true));
    }
}
