//! In-memory stores: the default, exact within one process.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use gw_core::BackendError;

use super::{
    ApprovalBinding, ApprovalCheck, ApprovalStore, BoxFuture, Usage, UsageStore, new_token,
    token_id,
};

/// Prune finished days once the map holds this many keys.
const PRUNE_AT: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single lookup and update, so a poisoned lock still
    // holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Task counters in a mutex-guarded map: one process, exact under concurrency.
#[derive(Debug, Default)]
pub struct MemoryUsageStore {
    // Keys are verified principals' user ids (and the day), which clients cannot choose
    // freely, so a fast seeded hash is enough here.
    counters: Mutex<HashMap<Box<str>, (u64, SystemTime), foldhash::fast::RandomState>>,
}

impl MemoryUsageStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current count of `key` (0 if unknown).
    pub fn count(&self, key: &str) -> u64 {
        lock(&self.counters).get(key).map_or(0, |(c, _)| *c)
    }

    fn count_task(&self, key: &str, limit: u64, reset_at: SystemTime) -> Usage {
        let mut map = lock(&self.counters);
        if let Some((count, _)) = map.get_mut(key) {
            if *count >= limit {
                return Usage {
                    admitted: false,
                    count: *count,
                };
            }
            *count += 1;
            return Usage {
                admitted: true,
                count: *count,
            };
        }
        if limit == 0 {
            return Usage {
                admitted: false,
                count: 0,
            };
        }
        if map.len() >= PRUNE_AT {
            // Keys of finished days reset before the current one.
            map.retain(|_, (_, at)| *at >= reset_at);
        }
        map.insert(key.into(), (1, reset_at));
        Usage {
            admitted: true,
            count: 1,
        }
    }
}

impl UsageStore for MemoryUsageStore {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        reset_at: SystemTime,
    ) -> BoxFuture<'a, Result<Usage, BackendError>> {
        let usage = self.count_task(key, limit, reset_at);
        Box::pin(std::future::ready(Ok(usage)))
    }

    fn acquire_now(
        &self,
        key: &str,
        limit: u64,
        reset_at: SystemTime,
    ) -> Option<Result<Usage, BackendError>> {
        Some(Ok(self.count_task(key, limit, reset_at)))
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        if let Some((count, _)) = lock(&self.counters).get_mut(key) {
            *count = count.saturating_sub(1);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn is_local(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct Grant {
    binding: String,
    expires_at: SystemTime,
}

/// Approvals in a mutex-guarded map, keyed by the SHA-256 of the token.
#[derive(Debug, Default)]
pub struct MemoryApprovalStore {
    grants: Mutex<HashMap<String, Grant>>,
}

impl MemoryApprovalStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored (unused, possibly expired) approvals.
    pub fn len(&self) -> usize {
        lock(&self.grants).len()
    }

    /// Whether no approval is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(
        &self,
        token: &str,
        binding: ApprovalBinding<'_>,
        expires_at: SystemTime,
        now: SystemTime,
    ) {
        let mut map = lock(&self.grants);
        if map.len() >= PRUNE_AT {
            map.retain(|_, g| g.expires_at > now);
        }
        map.insert(
            token_id(token),
            Grant {
                binding: binding.encode(),
                expires_at,
            },
        );
    }
}

impl ApprovalStore for MemoryApprovalStore {
    fn issue<'a>(
        &'a self,
        binding: ApprovalBinding<'a>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        let token = new_token();
        self.insert(&token, binding, expires_at, now);
        Box::pin(std::future::ready(Ok(token)))
    }

    fn consume<'a>(
        &'a self,
        token: &'a str,
        binding: ApprovalBinding<'a>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<ApprovalCheck, BackendError>> {
        let id = token_id(token);
        let mut map = lock(&self.grants);
        let check = match map.get(&id) {
            Some(g) if g.binding != binding.encode() => ApprovalCheck::Invalid,
            Some(g) if g.expires_at <= now => {
                map.remove(&id);
                ApprovalCheck::Invalid
            }
            Some(g) => {
                let expires_at = g.expires_at;
                map.remove(&id);
                ApprovalCheck::Approved { expires_at }
            }
            None => ApprovalCheck::Invalid,
        };
        Box::pin(std::future::ready(Ok(check)))
    }

    fn restore<'a>(
        &'a self,
        token: &'a str,
        binding: ApprovalBinding<'a>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        if expires_at > now {
            self.insert(token, binding, expires_at, now);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn is_local(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn usage_counts_up_to_the_limit_and_releases() {
        let store = MemoryUsageStore::new();
        let reset = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
        for i in 1..=3 {
            let u = store.acquire("u:0", 3, reset).await.unwrap();
            assert_eq!(
                u,
                Usage {
                    admitted: true,
                    count: i
                }
            );
        }
        let u = store.acquire("u:0", 3, reset).await.unwrap();
        assert_eq!(
            u,
            Usage {
                admitted: false,
                count: 3
            }
        );
        store.release("u:0").await.unwrap();
        assert_eq!(store.count("u:0"), 2);
        assert!(store.acquire("u:0", 3, reset).await.unwrap().admitted);
        assert!(!store.acquire("other", 0, reset).await.unwrap().admitted);
        store.release("never").await.unwrap();
        assert_eq!(store.count("never"), 0);
    }

    #[tokio::test]
    async fn approvals_are_bound_single_use_and_expire() {
        let store = MemoryApprovalStore::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let exp = now + Duration::from_secs(60);
        let b = ApprovalBinding {
            action: "delete_agent",
            resource: "/api/v1/agents/1",
            user_id: "u1",
        };
        let token = store.issue(b, exp, now).await.unwrap();
        let other = ApprovalBinding { user_id: "u2", ..b };
        assert_eq!(
            store.consume(&token, other, now).await.unwrap(),
            ApprovalCheck::Invalid
        );
        assert_eq!(
            store.consume(&token, b, now).await.unwrap(),
            ApprovalCheck::Approved { expires_at: exp }
        );
        assert_eq!(
            store.consume(&token, b, now).await.unwrap(),
            ApprovalCheck::Invalid
        );
        store.restore(&token, b, exp, now).await.unwrap();
        assert_eq!(
            store.consume(&token, b, exp).await.unwrap(),
            ApprovalCheck::Invalid,
            "expired at its expiry instant"
        );
        assert!(store.is_empty());
    }
}
