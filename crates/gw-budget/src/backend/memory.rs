//! The in-process store: one mutex over all counters, so a reserve over several scopes
//! is atomic. Counts for this process only; use a shared store for several replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use gw_core::BackendError;

use super::{
    BoxFuture, Fired, ReserveOutcome, ReserveRequest, SettleOutcome, SettleRequest, SpendStore,
};
use crate::alert::{AlertLevel, Thresholds};
use crate::scope::ScopeKey;

#[derive(Debug, Clone, Copy)]
struct Counter {
    spent: u64,
    /// Bit `i` set: the alert of `AlertLevel::ALERTING[i]` fired.
    fired: u8,
    expires_at: i64,
}

#[derive(Debug, Default)]
struct State {
    counters: HashMap<ScopeKey, Counter>,
    ops_since_sweep: u32,
}

/// In-memory [`SpendStore`]; clones share the same counters.
#[derive(Debug, Clone, Default)]
pub struct MemorySpendStore {
    state: Arc<Mutex<State>>,
}

const SWEEP_EVERY: u32 = 4_096;
const CRITICAL_BIT: u8 = 1 << 2;

impl MemorySpendStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of counters held (expired ones are dropped now and then).
    pub fn len(&self) -> usize {
        self.lock().counters.len()
    }

    /// Whether no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below is completed before the guard drops and nothing in it can
        // panic halfway, so a poisoned lock still holds consistent counters.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The synchronous reserve behind [`SpendStore::reserve`].
    pub fn reserve_now(&self, req: &ReserveRequest) -> ReserveOutcome {
        let mut st = self.lock();
        st.maybe_sweep(req.now);
        for (index, c) in req.charges.iter().enumerate() {
            let spent = st.counters.get(&c.key).map_or(0, |e| e.spent);
            if spent.saturating_add(req.amount) > c.limit {
                let counter = st.counter(&c.key, c.expires_at);
                let mut fired = Vec::new();
                if counter.fired & CRITICAL_BIT == 0 {
                    counter.fired |= CRITICAL_BIT;
                    fired.push(Fired {
                        index,
                        level: AlertLevel::Critical,
                    });
                }
                return ReserveOutcome::Rejected {
                    index,
                    spent,
                    fired,
                };
            }
        }
        let mut spent = Vec::with_capacity(req.charges.len());
        let mut fired = Vec::new();
        for (index, c) in req.charges.iter().enumerate() {
            let counter = st.counter(&c.key, c.expires_at);
            counter.spent += req.amount;
            mark(counter, index, c.limit, &req.thresholds, &mut fired);
            spent.push(counter.spent);
        }
        ReserveOutcome::Admitted { spent, fired }
    }

    /// The synchronous settle behind [`SpendStore::settle`].
    pub fn settle_now(&self, req: &SettleRequest) -> SettleOutcome {
        let mut st = self.lock();
        let mut spent = Vec::with_capacity(req.charges.len());
        let mut fired = Vec::new();
        for (index, c) in req.charges.iter().enumerate() {
            let counter = st.counter(&c.key, c.expires_at);
            counter.spent = counter
                .spent
                .saturating_add(req.actual)
                .saturating_sub(req.reserved);
            if req.actual > req.reserved {
                mark(counter, index, c.limit, &req.thresholds, &mut fired);
            }
            spent.push(counter.spent);
        }
        SettleOutcome { spent, fired }
    }
}

fn mark(counter: &mut Counter, index: usize, limit: u64, t: &Thresholds, fired: &mut Vec<Fired>) {
    const ALL: u8 = 0b111;
    if counter.fired == ALL {
        return;
    }
    // spent / limit >= bp / 10000, without a division.
    let spent = u128::from(counter.spent) * 10_000;
    for (i, (level, bp)) in AlertLevel::ALERTING
        .into_iter()
        .zip(t.as_array())
        .enumerate()
    {
        let bit = 1u8 << i;
        if counter.fired & bit == 0 && spent >= u128::from(limit) * u128::from(bp) {
            counter.fired |= bit;
            fired.push(Fired { index, level });
        }
    }
}

impl State {
    fn counter(&mut self, key: &ScopeKey, expires_at: i64) -> &mut Counter {
        self.counters.entry(key.clone()).or_insert(Counter {
            spent: 0,
            fired: 0,
            expires_at,
        })
    }

    fn maybe_sweep(&mut self, now: i64) {
        self.ops_since_sweep += 1;
        if self.ops_since_sweep >= SWEEP_EVERY {
            self.ops_since_sweep = 0;
            self.counters.retain(|_, c| c.expires_at > now);
        }
    }
}

impl SpendStore for MemorySpendStore {
    fn reserve(&self, req: ReserveRequest) -> BoxFuture<Result<ReserveOutcome, BackendError>> {
        let out = self.reserve_now(&req);
        Box::pin(std::future::ready(Ok(out)))
    }

    fn settle(&self, req: SettleRequest) -> BoxFuture<Result<SettleOutcome, BackendError>> {
        let out = self.settle_now(&req);
        Box::pin(std::future::ready(Ok(out)))
    }

    fn spent(&self, key: &ScopeKey) -> BoxFuture<Result<u64, BackendError>> {
        let spent = self.lock().counters.get(key).map_or(0, |c| c.spent);
        Box::pin(std::future::ready(Ok(spent)))
    }

    fn reserve_sync(&self, req: &ReserveRequest) -> Option<Result<ReserveOutcome, BackendError>> {
        Some(Ok(self.reserve_now(req)))
    }

    fn settle_sync(&self, req: &SettleRequest) -> Option<Result<SettleOutcome, BackendError>> {
        Some(Ok(self.settle_now(req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::Period;
    use crate::scope::Charge;

    fn charges() -> Arc<[Charge]> {
        let p = Period::Month(1);
        vec![
            Charge {
                key: ScopeKey::platform(p),
                limit: 10,
                expires_at: i64::MAX,
            },
            Charge {
                key: ScopeKey::agent("a", Period::Day(1)),
                limit: 4,
                expires_at: i64::MAX,
            },
        ]
        .into()
    }

    fn reserve(s: &MemorySpendStore, amount: u64) -> ReserveOutcome {
        s.reserve_now(&ReserveRequest {
            charges: charges(),
            amount,
            thresholds: Thresholds::DEFAULT,
            now: 0,
        })
    }

    #[test]
    fn all_or_nothing_and_alerts_once() {
        let s = MemorySpendStore::new();
        assert_eq!(
            reserve(&s, 3),
            ReserveOutcome::Admitted {
                spent: vec![3, 3],
                fired: vec![]
            }
        );
        // Agent goes to 4/4: warning, high and critical at once for the agent.
        let ReserveOutcome::Admitted { spent, fired } = reserve(&s, 1) else {
            panic!()
        };
        assert_eq!(spent, vec![4, 4]);
        assert_eq!(fired.len(), 3);
        assert!(fired.iter().all(|f| f.index == 1));
        // Agent full: rejected, platform untouched, critical not fired again.
        assert_eq!(
            reserve(&s, 1),
            ReserveOutcome::Rejected {
                index: 1,
                spent: 4,
                fired: vec![]
            }
        );
        let out = s.settle_now(&SettleRequest {
            charges: charges(),
            reserved: 1,
            actual: 0,
            thresholds: Thresholds::DEFAULT,
            now: 0,
        });
        assert_eq!(
            out,
            SettleOutcome {
                spent: vec![3, 3],
                fired: vec![]
            }
        );
        assert_eq!(s.len(), 2);
    }
}
