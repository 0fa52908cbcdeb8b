//! In-process key store.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use futures_util::future::{BoxFuture, ready};
use gw_core::BackendError;

use crate::keys::{KeyRing, KeyStore};

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
