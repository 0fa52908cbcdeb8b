//! The decision cache in front of any engine.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use gw_core::{Principal, SharedClock, SystemClock};

use crate::engine::{AuthzDecision, AuthzInput};
use crate::hash::U64Build;

/// Default time a decision is kept: 60 s.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default number of decisions kept: 10 000.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

const SHARDS: usize = 16;

#[derive(Debug)]
struct Entry {
    revision: u64,
    principal: Principal,
    resource: Box<str>,
    action: Box<str>,
    expires: SystemTime,
    decision: AuthzDecision,
}

impl Entry {
    /// Whether this entry was decided from exactly `input` under `revision`.
    fn is_for(&self, revision: u64, input: &AuthzInput<'_>) -> bool {
        self.revision == revision
            && self.principal == *input.principal
            && *self.resource == *input.resource
            && *self.action == *input.action
    }
}

/// A bounded, sharded TTL cache of decisions keyed by everything an engine is given: the
/// policy revision and the whole [`AuthzInput`] (every field of the principal, resource,
/// action). A decision is only ever served to a request with the same input it was
/// computed from, so a policy that reads the user id, e-mail or customer (as an OPA or
/// Rego policy may) is cached per user, never shared across users with the same roles.
/// Engine errors are never cached. A reload bumps the revision, so older decisions are
/// never served, and clears the cache.
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

    fn key(&self, revision: u64, input: &AuthzInput<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        revision.hash(&mut h);
        input.resource.hash(&mut h);
        input.action.hash(&mut h);
        // Every field of the principal: an engine may read any of them.
        let p = &**input.principal;
        p.sub.hash(&mut h);
        p.user_id.hash(&mut h);
        p.email.hash(&mut h);
        p.customer_id.hash(&mut h);
        p.roles.hash(&mut h);
        p.governor_agent_id.hash(&mut h);
        p.trial.map(|t| t.expires_at).hash(&mut h);
        h.finish()
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, HashMap<u64, Entry, U64Build>> {
        // A panic while holding the lock leaves at worst a stale entry: still usable.
        // High bits pick the shard; the map inside uses the low bits for its buckets.
        self.shards[(key >> 60) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The decision cached for exactly `input` under `revision`, if fresh.
    pub fn get(&self, revision: u64, input: &AuthzInput<'_>) -> Option<AuthzDecision> {
        let key = self.key(revision, input);
        let now = self.clock.now();
        let shard = self.shard(key);
        let hit = shard
            .get(&key)
            .filter(|e| e.expires > now && e.is_for(revision, input));
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

    /// Stores the decision an engine made for `input` under `revision`.
    pub fn insert(&self, revision: u64, input: &AuthzInput<'_>, decision: AuthzDecision) {
        let key = self.key(revision, input);
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
                principal: input.principal.clone(),
                resource: input.resource.into(),
                action: input.action.into(),
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
    use gw_core::{ManualClock, PrincipalData, TrialInfo};

    fn decision(allowed: bool) -> AuthzDecision {
        AuthzDecision {
            allowed,
            deny_reason: None,
            role_level: Some(7),
            is_admin: false,
            permissions: Permissions::empty(),
        }
    }

    fn data(roles: &[&str]) -> PrincipalData {
        PrincipalData {
            sub: "s1".into(),
            user_id: "u1".into(),
            email: "u1@example.com".into(),
            customer_id: "c1".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            governor_agent_id: None,
            trial: None,
        }
    }

    fn input<'a>(p: &'a Principal, resource: &'a str, action: &'a str) -> AuthzInput<'a> {
        AuthzInput {
            principal: p,
            resource,
            action,
        }
    }

    #[test]
    fn ttl_revision_bound_and_clear() {
        let clock = ManualClock::at_unix(1_000);
        let cache = DecisionCache::new(Duration::from_secs(60), 32).clock(Arc::new(clock.clone()));
        let viewer = Principal::from(data(&["viewer"]));
        let admin = Principal::from(data(&["admin"]));
        cache.insert(1, &input(&viewer, "agents", "read"), decision(true));
        assert_eq!(
            cache.get(1, &input(&viewer, "agents", "read")),
            Some(decision(true))
        );
        assert_eq!(
            cache.get(2, &input(&viewer, "agents", "read")),
            None,
            "other revision"
        );
        assert_eq!(cache.get(1, &input(&viewer, "agents", "delete")), None);
        assert_eq!(cache.get(1, &input(&admin, "agents", "read")), None);
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            cache.get(1, &input(&viewer, "agents", "read")),
            None,
            "expired"
        );
        assert_eq!((cache.hits(), cache.misses()), (1, 4));

        for i in 0..1_000 {
            let r = format!("r{i}");
            cache.insert(1, &input(&viewer, &r, "read"), decision(false));
        }
        assert!(cache.len() <= 32, "bounded: {}", cache.len());
        cache.clear();
        assert!(cache.is_empty());
    }

    /// A decision is served only to the exact input it was made for: any other value in
    /// any field of the principal is another key.
    #[test]
    fn every_principal_field_is_part_of_the_key() {
        let cache = DecisionCache::default();
        let base = data(&["viewer"]);
        let cached = Principal::from(base.clone());
        cache.insert(1, &input(&cached, "agents", "read"), decision(true));
        let same = Principal::from(base.clone());
        assert_eq!(
            cache.get(1, &input(&same, "agents", "read")),
            Some(decision(true)),
            "an equal principal hits"
        );
        let variants = [
            PrincipalData {
                sub: "s2".into(),
                ..base.clone()
            },
            PrincipalData {
                user_id: "u2".into(),
                ..base.clone()
            },
            PrincipalData {
                email: "u2@example.com".into(),
                ..base.clone()
            },
            PrincipalData {
                customer_id: "c2".into(),
                ..base.clone()
            },
            PrincipalData {
                roles: Arc::from(["viewer".to_string(), "analyst".to_string()]),
                ..base.clone()
            },
            PrincipalData {
                governor_agent_id: Some("g1".into()),
                ..base.clone()
            },
            PrincipalData {
                trial: Some(TrialInfo { expires_at: None }),
                ..base.clone()
            },
        ];
        for v in variants {
            let other = Principal::from(v);
            assert_eq!(
                cache.get(1, &input(&other, "agents", "read")),
                None,
                "{other:?}"
            );
        }
    }

    #[test]
    fn many_keys_all_hit() {
        let cache = DecisionCache::default();
        let p = Principal::from(data(&["viewer", "analyst"]));
        for i in 0..2_000 {
            let r = format!("r{i}");
            cache.insert(3, &input(&p, &r, "read"), decision(i % 2 == 0));
        }
        assert_eq!(cache.len(), 2_000);
        for i in 0..2_000 {
            let r = format!("r{i}");
            let d = cache.get(3, &input(&p, &r, "read")).unwrap();
            assert_eq!(d.allowed, i % 2 == 0);
        }
        assert_eq!(cache.hits(), 2_000);
    }
}
