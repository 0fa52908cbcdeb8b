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
}
