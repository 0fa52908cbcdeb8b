//! Where spend counters live: the [`SpendStore`] trait and its implementations.
//!
//! A store does three things atomically: reserve an amount in every scope of a request
//! (all or nothing, never past a limit), settle a reservation to the actual cost, and mark
//! each alert threshold of a counter as fired exactly once.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use gw_core::BackendError;

use crate::alert::{AlertLevel, Thresholds};
use crate::scope::{Charge, ScopeKey};

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

/// A boxed, sendable future, as store methods return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Reserve `amount` in every scope of `charges`, or in none.
#[derive(Debug, Clone)]
pub struct ReserveRequest {
    /// The counters of the request, with their limits.
    pub charges: Arc<[Charge]>,
    /// The estimated cost, micro-USD.
    pub amount: u64,
    /// Alert thresholds to mark when crossed.
    pub thresholds: Thresholds,
    /// The current time, unix seconds (from the layer's clock).
    pub now: i64,
}

/// Change a reservation of `reserved` into a charge of `actual` (0 releases it).
#[derive(Debug, Clone)]
pub struct SettleRequest {
    /// The counters the reservation was made in (as reserved, same period).
    pub charges: Arc<[Charge]>,
    /// What was reserved, micro-USD.
    pub reserved: u64,
    /// What the request actually cost, micro-USD.
    pub actual: u64,
    /// Alert thresholds to mark when crossed.
    pub thresholds: Thresholds,
    /// The current time, unix seconds (from the layer's clock).
    pub now: i64,
}

/// An alert threshold a counter crossed for the first time in its period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fired {
    /// Index of the counter in the request's charges.
    pub index: usize,
    /// The level whose threshold was crossed.
    pub level: AlertLevel,
}

/// What a reserve did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Reserved in every scope; spent per charge after the reservation.
    Admitted {
        /// Spent per charge (same order), micro-USD, including this reservation.
        spent: Vec<u64>,
        /// Thresholds crossed for the first time.
        fired: Vec<Fired>,
    },
    /// Reserved nowhere: the charge at `index` would pass its limit.
    Rejected {
        /// Index of the first charge that would pass its limit.
        index: usize,
        /// Spent in that counter, micro-USD.
        spent: u64,
        /// The critical alert of that counter, if this was its first rejection.
        fired: Vec<Fired>,
    },
}

/// What a settle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleOutcome {
    /// Spent per charge (same order) after settling, micro-USD.
    pub spent: Vec<u64>,
    /// Thresholds crossed for the first time (only when the actual cost was higher).
    pub fired: Vec<Fired>,
}

/// Spend counters shared by every request (and, for real backends, every replica).
pub trait SpendStore: Send + Sync + Debug + 'static {
    /// Atomically reserves `req.amount` in every charge, unless one would pass its limit.
    fn reserve(&self, req: ReserveRequest) -> BoxFuture<Result<ReserveOutcome, BackendError>>;

    /// Adjusts every charge by `actual - reserved` (never below zero).
    fn settle(&self, req: SettleRequest) -> BoxFuture<Result<SettleOutcome, BackendError>>;

    /// What counter `key` has spent so far, micro-USD (0 if unknown).
    fn spent(&self, key: &ScopeKey) -> BoxFuture<Result<u64, BackendError>>;

    /// [`SpendStore::reserve`] for stores that answer without waiting (in-memory); the
    /// layer tries this first and awaits `reserve` on `None` (the default).
    fn reserve_sync(&self, _req: &ReserveRequest) -> Option<Result<ReserveOutcome, BackendError>> {
        None
    }

    /// [`SpendStore::settle`] for stores that answer without waiting; `None` by default.
    fn settle_sync(&self, _req: &SettleRequest) -> Option<Result<SettleOutcome, BackendError>> {
        None
    }
}

impl<T: SpendStore + ?Sized> SpendStore for Arc<T> {
    fn reserve(&self, req: ReserveRequest) -> BoxFuture<Result<ReserveOutcome, BackendError>> {
        (**self).reserve(req)
    }

    fn settle(&self, req: SettleRequest) -> BoxFuture<Result<SettleOutcome, BackendError>> {
        (**self).settle(req)
    }

    fn spent(&self, key: &ScopeKey) -> BoxFuture<Result<u64, BackendError>> {
        (**self).spent(key)
    }

    fn reserve_sync(&self, req: &ReserveRequest) -> Option<Result<ReserveOutcome, BackendError>> {
        (**self).reserve_sync(req)
    }

    fn settle_sync(&self, req: &SettleRequest) -> Option<Result<SettleOutcome, BackendError>> {
        (**self).settle_sync(req)
    }
}

/// The spend at which each threshold is reached for `limit`: `ceil(limit * bp / 10000)`.
#[cfg(feature = "redis")]
pub(crate) fn threshold_amounts(limit: u64, t: &Thresholds) -> [u64; 3] {
    t.as_array().map(|bp| {
        let v = (u128::from(limit) * u128::from(bp)).div_ceil(10_000);
        u64::try_from(v).unwrap_or(u64::MAX)
    })
}
