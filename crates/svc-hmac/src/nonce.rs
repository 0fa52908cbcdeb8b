//! The replay cache: each nonce is accepted once per service while its signature is fresh.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use gw_core::BackendError;

/// Remembers nonces of verified requests.
pub trait NonceCache: Send + Sync + fmt::Debug + 'static {
    /// Records `nonce` for `service_id` for `ttl`. Returns `true` if it was new, `false` if
    /// it was already recorded (a replay).
    fn check_and_record<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// The answer of [`check_and_record`](Self::check_and_record) when it is available
    /// without waiting (in-memory caches); `None` (the default) means "call it".
    fn check_and_record_now(
        &self,
        service_id: &str,
        nonce: &str,
        ttl: Duration,
    ) -> Option<Result<bool, BackendError>> {
        let _ = (service_id, nonce, ttl);
        None
    }
}

impl<T: NonceCache + ?Sized> NonceCache for Arc<T> {
    fn check_and_record<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        (**self).check_and_record(service_id, nonce, ttl)
    }

    fn check_and_record_now(
        &self,
        service_id: &str,
        nonce: &str,
        ttl: Duration,
    ) -> Option<Result<bool, BackendError>> {
        (**self).check_and_record_now(service_id, nonce, ttl)
    }
}
