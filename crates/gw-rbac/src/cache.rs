//! The decision cache in front of any engine.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use gw_core::{SharedClock, SystemClock};

use crate::engine::AuthzDecision;
use crate::hash::U64Build;

/// Default time a decision is kept: 60 s.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default number of decisions kept: 10 000.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

const SHARDS: usize = 16;

#[derive(Debug)]
struct Entry {
    revision: u64,
    roles: Arc<[String]>,
    resource: Box<str>,
    action: Box<str>,
    expires: SystemTime,
    decision: AuthzDecision,
}

/// A bounded, sharded TTL cache of decisions keyed by (policy revision, roles, resource,
/// action). Engine errors are never cached. A reload bumps the revision, so older
/// decisions are never served, and clears the cache.
#[derive(Debug)]
pub struct DecisionCache {
    shards: Box<[Mutex<HashMap<u64, Entry, U64Build>>]>,
    hasher: RandomState,
    ttl: Duration,
    shard_capacity: usize,
    clock: SharedClock,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for DecisionCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_TTL, DEFAULT_CACHE_CAPACITY)
    }
}

impl DecisionCache {
    /// A cache keeping up to `capacity` decisions for `ttl` each.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            hasher: RandomState::new(),
            ttl,
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
            clock: Arc::new(SystemClock),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Uses `clock` for expiry (tests use `ManualClock`).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn key(&self, revision: u64, roles: &[String], resource: &str, action: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        revision.hash(&mut h);
        roles.hash(&mut h);
        resource.hash(&mut h);
        action.hash(&mut h);
        h.finish()
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, HashMap<u64, Entry, U64Build>> {
        // A panic while holding the lock leaves at worst a stale entry: still usable.
        // High bits pick the shard; the map inside uses the low bits for its buckets.
        self.shards[(key >> 60) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The cached decision, if fresh.
    pub fn get(
        &self,
        revision: u64,
        roles: &[String],
        resource: &str,
        action: &str,
    ) -> Option<AuthzDecision> {
        let key = self.key(revision, roles, resource, action);
        let now = self.clock.now();
        let shard = self.shard(key);
        let hit = shard.get(&key).filter(|e| {
            e.expires > now
                && e.revision == revision
                && *e.roles == *roles
                && *e.resource == *resource
                && *e.action == *action
        });
        match hit {
            Some(e) => {
                let d = e.decision.clone();
                drop(shard);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(d)
            }
            None => {
                drop(shard);
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Stores a decision.
    pub fn insert(
        &self,
        revision: u64,
        roles: &Arc<[String]>,
        resource: &str,
        action: &str,
        decision: AuthzDecision,
    ) {
        let key = self.key(revision, roles, resource, action);
        let now = self.clock.now();
        let mut shard = self.shard(key);
        if shard.len() >= self.shard_capacity && !shard.contains_key(&key) {
            shard.retain(|_, e| e.expires > now && e.revision == revision);
            if shard.len() >= self.shard_capacity
                && let Some(victim) = shard.keys().next().copied()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(
            key,
            Entry {
                revision,
                roles: roles.clone(),
                resource: resource.into(),
                action: action.into(),
                expires: now + self.ttl,
                decision,
            },
        );
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Number of entries (fresh or not).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups not answered from the cache.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::Permissions;
    use gw_core::ManualClock;

    fn decision(allowed: bool) -> AuthzDecision {
        AuthzDecision {
            allowed,
            deny_reason: None,
            role_level: Some(7),
            is_admin: false,
            permissions: Permissions::empty(),
        }
    }

    #[test]
    fn ttl_revision_bound_and_clear() {
        let clock = ManualClock::at_unix(1_000);
        let cache = DecisionCache::new(Duration::from_secs(60), 32).clock(Arc::new(clock.clone()));
        let roles: Arc<[String]> = Arc::from(["viewer".to_string()]);
        cache.insert(1, &roles, "agents", "read", decision(true));
        assert_eq!(cache.get(1, &roles, "agents", "read"), Some(decision(true)));
        assert_eq!(
            cache.get(2, &roles, "agents", "read"),
            None,
            "other revision"
        );
        assert_eq!(cache.get(1, &roles, "agents", "delete"), None);
        assert_eq!(cache.get(1, &["admin".to_string()], "agents", "read"), None);
        clock.advance(Duration::from_secs(61));
        assert_eq!(cache.get(1, &roles, "agents", "read"), None, "expired");
        assert_eq!((cache.hits(), cache.misses()), (1, 4));

        for i in 0..1_000 {
            cache.insert(1, &roles, &format!("r{i}"), "read", decision(false));
        }
        assert!(cache.len() <= 32, "bounded: {}", cache.len());
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn many_keys_all_hit() {
        let cache = DecisionCache::default();
        let roles: Arc<[String]> = Arc::from(["viewer".to_string(), "analyst".to_string()]);
        for i in 0..2_000 {
            cache.insert(3, &roles, &format!("r{i}"), "read", decision(i % 2 == 0));
        }
        assert_eq!(cache.len(), 2_000);
        for i in 0..2_000 {
            let d = cache.get(3, &roles, &format!("r{i}"), "read").unwrap();
            assert_eq!(d.allowed, i % 2 == 0);
        }
        assert_eq!(cache.hits(), 2_000);
    }
}
