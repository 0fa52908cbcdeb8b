//! Settings shared by the three policies, and the feature flag names.

use std::time::Duration;

use gw_core::FailMode;

/// Feature flag switching trial mode (default on when unset).
pub const FLAG_TRIAL_MODE: &str = "enable_trial_mode";
/// Feature flag switching governor approval (default on when unset).
pub const FLAG_GOVERNOR_APPROVAL: &str = "enable_governor_approval";
/// Feature flag switching sandbox routing (default on when unset).
pub const FLAG_SANDBOX_ROUTING: &str = "enable_sandbox_routing";

/// Default per-policy timeout: 2 seconds, as in the reference system.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How one policy runs: its timeout, what happens when its backend fails, and whether it
/// enforces at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySettings {
    pub(crate) timeout: Duration,
    pub(crate) fail_mode: FailMode,
    pub(crate) shadow: bool,
}

impl PolicySettings {
    /// Timeout 2 s, fail-open, enforcing.
    pub const fn new() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            fail_mode: FailMode::Open,
            shadow: false,
        }
    }

    /// Sets how long the policy may take before it counts as failed.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets what happens when the backend is unavailable or times out: [`FailMode::Open`]
    /// lets the request through (the default), [`FailMode::Closed`] answers 503. A backend
    /// that answers unusably always gets 503.
    pub const fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// Shadow mode: evaluate, record and count, but never enforce.
    pub const fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// The timeout.
    pub const fn get_timeout(&self) -> Duration {
        self.timeout
    }

    /// The fail mode.
    pub const fn get_fail_mode(&self) -> FailMode {
        self.fail_mode
    }

    /// Whether shadow mode is on.
    pub const fn is_shadow(&self) -> bool {
        self.shadow
    }
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self::new()
    }
}
