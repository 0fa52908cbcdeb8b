//! [`PolicyLayer`]: configuration of the three policies.

use std::sync::Arc;

use gw_core::{Clock, FeatureFlags, SharedClock, SharedFlags, StaticFlags, SystemClock};
use tower_layer::Layer;

use crate::governor::GovernorConfig;
use crate::sandbox::SandboxConfig;
use crate::service::Policy;
use crate::trial::TrialConfig;

/// Applies trial mode, governor approval and sandbox routing to every request.
#[derive(Debug, Clone)]
pub struct PolicyLayer {
    pub(crate) trial: TrialConfig,
    pub(crate) governor: GovernorConfig,
    pub(crate) sandbox: SandboxConfig,
    pub(crate) clock: SharedClock,
    pub(crate) flags: SharedFlags,
}

impl Default for PolicyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl PolicyLayer {
    /// All three policies with their defaults, in-memory stores, the system clock, and
    /// no flags set (every policy on).
    pub fn new() -> Self {
        Self {
            trial: TrialConfig::new(),
            governor: GovernorConfig::new(""),
            sandbox: SandboxConfig::new(),
            clock: Arc::new(SystemClock),
            flags: Arc::new(StaticFlags::new()),
        }
    }

    /// Sets the trial-mode configuration.
    pub fn trial(mut self, trial: TrialConfig) -> Self {
        self.trial = trial;
        self
    }

    /// Sets the governor-approval configuration.
    pub fn governor(mut self, governor: GovernorConfig) -> Self {
        self.governor = governor;
        self
    }

    /// Sets the sandbox-routing configuration.
    pub fn sandbox(mut self, sandbox: SandboxConfig) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Sets the clock (day boundaries, trial expiry, approval expiry).
    pub fn clock(self, clock: impl Clock) -> Self {
        self.shared_clock(Arc::new(clock))
    }

    /// Sets a shared clock.
    pub fn shared_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the feature flags (`enable_trial_mode`, `enable_governor_approval`,
    /// `enable_sandbox_routing`; unset means on).
    pub fn flags(self, flags: impl FeatureFlags) -> Self {
        self.shared_flags(Arc::new(flags))
    }

    /// Sets shared feature flags.
    pub fn shared_flags(mut self, flags: SharedFlags) -> Self {
        self.flags = flags;
        self
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = Policy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Policy::new(inner, Arc::new(self.clone()))
    }
}
