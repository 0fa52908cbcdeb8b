//! Alert levels, thresholds, and where alerts go.

use std::fmt;
use std::sync::Arc;

use gw_core::FeatureFlags;
use serde::Serialize;

use crate::scope::ScopeKind;

/// How close a scope is to its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    /// Below the warning threshold.
    None,
    /// At or above the warning threshold (80% by default).
    Warning,
    /// At or above the high threshold (95% by default).
    High,
    /// At or above the critical threshold (100% by default).
    Critical,
}

impl AlertLevel {
    /// The wire name, as sent in `X-Budget-Alert-Level`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Warning => "warning",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// The levels that fire alerts, lowest first.
    pub const ALERTING: [Self; 3] = [Self::Warning, Self::High, Self::Critical];

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AlertLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Utilization thresholds of the alert levels, in basis points (1/100 of a percent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thresholds {
    /// Warning threshold (default 8000 = 80%).
    pub warning: u32,
    /// High threshold (default 9500 = 95%).
    pub high: u32,
    /// Critical threshold (default 10000 = 100%).
    pub critical: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Feature flag names that override the thresholds, in percent (`budget_alert_threshold_*`).
pub const THRESHOLD_FLAGS: [&str; 3] = [
    "budget_alert_threshold_warning",
    "budget_alert_threshold_high",
    "budget_alert_threshold_critical",
];

impl Thresholds {
    /// 80%, 95%, 100%.
    pub const DEFAULT: Self = Self::percent(80, 95, 100);

    /// Thresholds in whole percent.
    pub const fn percent(warning: u32, high: u32, critical: u32) -> Self {
        Self {
            warning: warning.saturating_mul(100),
            high: high.saturating_mul(100),
            critical: critical.saturating_mul(100),
        }
    }

    /// The thresholds with any `budget_alert_threshold_{warning,high,critical}` flag
    /// (a percentage such as `75` or `92.5`) applied. Negative values are ignored.
    pub fn with_flags(mut self, flags: &dyn FeatureFlags) -> Self {
        let slots = [&mut self.warning, &mut self.high, &mut self.critical];
        for (name, slot) in THRESHOLD_FLAGS.into_iter().zip(slots) {
            if let Some(pct) = flags.number(name).filter(|p| *p >= 0.0) {
                *slot = (pct * 100.0).round().min(f64::from(u32::MAX)) as u32;
            }
        }
        self
    }

    /// The thresholds as `[warning, high, critical]` basis points.
    pub const fn as_array(&self) -> [u32; 3] {
        [self.warning, self.high, self.critical]
    }

    /// The highest level whose threshold `utilization` (basis points) reaches.
    pub fn level(&self, utilization: u64) -> AlertLevel {
        let mut level = AlertLevel::None;
        for (lvl, t) in AlertLevel::ALERTING.into_iter().zip(self.as_array()) {
            if utilization >= u64::from(t) {
                level = level.max(lvl);
            }
        }
        level
    }
}

/// Utilization of `limit` by `spent`, in basis points (a zero limit counts as full).
pub fn utilization_bp(spent: u64, limit: u64) -> u64 {
    if limit == 0 {
        return 10_000;
    }
    u64::try_from(u128::from(spent) * 10_000 / u128::from(limit)).unwrap_or(u64::MAX)
}

/// Basis points as a percentage.
pub(crate) fn bp_percent(bp: u64) -> f64 {
    bp as f64 / 100.0
}

/// A threshold crossed by one scope in one period; sent once across all replicas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetAlert {
    /// The scope that crossed the threshold.
    pub scope: ScopeKind,
    /// The agent or customer id; `None` for the platform.
    pub scope_id: Option<Arc<str>>,
    /// The period, `2026-11` or `2026-11-22`.
    pub period: String,
    /// The level reached.
    pub level: AlertLevel,
    /// The threshold of that level, percent.
    pub threshold_percent: f64,
    /// The budget, micro-USD.
    pub limit: u64,
    /// Spent (including reservations in flight) when the threshold was crossed, micro-USD.
    pub spent: u64,
    /// `spent / limit`, percent.
    pub utilization_percent: f64,
}

/// Where budget alerts go. Called once per (scope, period, threshold); must not block
/// (hand slow work to a task).
pub trait AlertSink: Send + Sync + 'static {
    /// Delivers one alert.
    fn send(&self, alert: &BudgetAlert);
}

impl<F> AlertSink for F
where
    F: Fn(&BudgetAlert) + Send + Sync + 'static,
{
    fn send(&self, alert: &BudgetAlert) {
        self(alert)
    }
}

/// Logs alerts through `tracing`: `warn` for warning and high, `error` for critical.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAlertSink;

impl AlertSink for TracingAlertSink {
    fn send(&self, a: &BudgetAlert) {
        let id = a.scope_id.as_deref().unwrap_or("");
        if a.level == AlertLevel::Critical {
            tracing::error!(scope = %a.scope, scope_id = id, period = %a.period, level = %a.level,
                spent = a.spent, limit = a.limit, utilization_percent = a.utilization_percent,
                "budget alert");
        } else {
            tracing::warn!(scope = %a.scope, scope_id = id, period = %a.period, level = %a.level,
                spent = a.spent, limit = a.limit, utilization_percent = a.utilization_percent,
                "budget alert");
        }
    }
}

/// Pauses an agent whose budget reached critical; runs once per agent and period.
/// Must not block (hand slow work, such as a call to the agent platform, to a task).
pub trait AgentPauser: Send + Sync + 'static {
    /// Pauses agent `agent_id`; `alert` is the critical alert that caused it.
    fn pause(&self, agent_id: &str, alert: &BudgetAlert);
}

impl<F> AgentPauser for F
where
    F: Fn(&str, &BudgetAlert) + Send + Sync + 'static,
{
    fn pause(&self, agent_id: &str, alert: &BudgetAlert) {
        self(agent_id, alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gw_core::StaticFlags;

    #[test]
    fn levels_follow_thresholds() {
        let t = Thresholds::DEFAULT;
        assert_eq!(t.level(7_999), AlertLevel::None);
        assert_eq!(t.level(8_000), AlertLevel::Warning);
        assert_eq!(t.level(9_499), AlertLevel::Warning);
        assert_eq!(t.level(9_500), AlertLevel::High);
        assert_eq!(t.level(10_000), AlertLevel::Critical);
        assert_eq!(utilization_bp(1, 3), 3_333);
        assert_eq!(utilization_bp(0, 0), 10_000);
    }

    #[test]
    fn flags_override_thresholds() {
        let flags = StaticFlags::new()
            .set("budget_alert_threshold_warning", "50")
            .set("budget_alert_threshold_high", "92.5")
            .set("budget_alert_threshold_critical", "nonsense");
        let t = Thresholds::DEFAULT.with_flags(&flags);
        assert_eq!(
            t,
            Thresholds {
                warning: 5_000,
                high: 9_250,
                critical: 10_000
            }
        );
        assert_eq!(t.level(6_000), AlertLevel::Warning);
    }
}
