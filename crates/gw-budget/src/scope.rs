//! Budget scopes and the counters the store keeps for them.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::Serialize;

use crate::period::Period;

/// Which budget a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    /// The whole platform (monthly by default).
    Platform,
    /// One agent (daily by default).
    Agent,
    /// One customer (monthly by default).
    Customer,
}

impl ScopeKind {
    /// The wire name: `platform`, `agent` or `customer`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Agent => "agent",
            Self::Customer => "customer",
        }
    }
}

impl fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One counter: a scope, the agent or customer id (none for the platform) and a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeKey {
    /// The scope.
    pub kind: ScopeKind,
    /// The agent or customer id; `None` for the platform.
    pub id: Option<Arc<str>>,
    /// The calendar period the counter covers.
    pub period: Period,
}

impl ScopeKey {
    /// The platform counter for `period`.
    pub const fn platform(period: Period) -> Self {
        Self {
            kind: ScopeKind::Platform,
            id: None,
            period,
        }
    }

    /// The counter of agent `id` for `period`.
    pub fn agent(id: impl Into<Arc<str>>, period: Period) -> Self {
        Self {
            kind: ScopeKind::Agent,
            id: Some(id.into()),
            period,
        }
    }

    /// The counter of customer `id` for `period`.
    pub fn customer(id: impl Into<Arc<str>>, period: Period) -> Self {
        Self {
            kind: ScopeKind::Customer,
            id: Some(id.into()),
            period,
        }
    }
}

impl Hash for ScopeKey {
    /// Scope and period as one word, then the id: fewer hasher calls than derived.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (month, n) = match self.period {
            Period::Day(d) => (0u64, d),
            Period::Month(m) => (1u64, m),
        };
        let word = (self.kind as u64) << 62 | month << 61 | (n as u64 & ((1 << 61) - 1));
        state.write_u64(word);
        state.write(self.id.as_deref().unwrap_or("").as_bytes());
    }
}

/// A counter with its limit and when it may be forgotten, as handed to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The counter.
    pub key: ScopeKey,
    /// The budget of the period, micro-USD.
    pub limit: u64,
    /// Unix seconds after which the counter (and its alert marks) may be dropped.
    pub expires_at: i64,
}

/// Whether `id` is usable as an agent or customer id: 1 to 128 bytes of
/// `[A-Za-z0-9._@-]`. Ids end up in store keys, so anything else is refused.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_confuse_keys_are_refused() {
        assert!(valid_id("agent-7") && valid_id("a.b_c@d"));
        for bad in ["", "a:b", "{tag}", "a b", "a*", &"x".repeat(129)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
