//! The verified-token cache: a hit skips signature verification entirely.

use std::fmt;
use std::sync::Arc;

use gw_core::Principal;
use quick_cache::sync::Cache;

use crate::claims::Claims;

/// Default capacity of the verified-token cache: 10 000 tokens.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// A token that verified: its claims and the principal built from them.
#[derive(Debug)]
pub struct Verified {
    /// The claims.
    pub claims: Arc<Claims>,
    /// The principal.
    pub principal: Principal,
    pub(crate) source: usize,
    pub(crate) generation: u64,
}

/// A bounded map from token to [`Verified`], shared by all clones of a layer.
///
/// Keyed by the token itself: lookups hash it with a per-process random seed
/// (foldhash) and compare the full token on a hash match, so a collision can never
/// return another token's claims. Entries are valid until the token's `exp` and only
/// for the key-set generation they were verified under; the whole cache is cleared
/// when a key set changes. Eviction is S3-FIFO (`quick_cache`) once full.
pub(crate) struct TokenCache {
    map: Cache<Box<[u8]>, Arc<Verified>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.map.len())
            .field("capacity", &self.map.capacity())
            .finish()
    }
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Cache::new(capacity.max(1)),
        }
    }

    /// The entry for `token` if it is still valid at `now` for `generation(source)`.
    pub(crate) fn get(
        &self,
        token: &[u8],
        now: i64,
        generation: impl Fn(usize) -> u64,
    ) -> Option<Arc<Verified>> {
        let hit = self.map.get(token)?;
        if now < hit.claims.exp && hit.generation == generation(hit.source) {
            Some(hit)
        } else {
            self.map.remove(token);
            None
        }
    }

    pub(crate) fn insert(&self, token: &str, v: Arc<Verified>) {
        self.map.insert(token.as_bytes().into(), v);
    }

    pub(crate) fn clear(&self) {
        self.map.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}
