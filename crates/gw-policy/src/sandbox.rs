//! Sandbox routing: trial principals to `sandbox`, paid ones to `production`.

use gw_core::{BackendError, Principal, TargetBackend};

use crate::config::PolicySettings;
use crate::eval::{Effects, PolicyResult};

/// Configuration of the sandbox-routing policy. It has no backend, so only shadow mode
/// of its [`PolicySettings`] matters: in shadow mode the decision is recorded but no
/// target is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxConfig {
    pub(crate) settings: PolicySettings,
}

impl SandboxConfig {
    /// Routing on, enforcing.
    pub const fn new() -> Self {
        Self {
            settings: PolicySettings::new(),
        }
    }

    /// Sets the policy settings.
    pub const fn settings(mut self, settings: PolicySettings) -> Self {
        self.settings = settings;
        self
    }
}

/// The routing decision: `None` without a principal, otherwise sandbox for trial
/// principals and production for the others.
pub fn decide(principal: Option<&Principal>) -> Option<TargetBackend> {
    principal.map(|p| {
        if p.is_trial() {
            TargetBackend::Sandbox
        } else {
            TargetBackend::Production
        }
    })
}

pub(crate) fn evaluate(
    cfg: &SandboxConfig,
    principal: Option<&Principal>,
) -> Result<PolicyResult, BackendError> {
    let Some(target) = decide(principal) else {
        return Ok(PolicyResult::skip("no-principal"));
    };
    if cfg.settings.shadow {
        let reason = match target {
            TargetBackend::Sandbox => "shadow-sandbox",
            TargetBackend::Production => "shadow-production",
        };
        return Ok(PolicyResult::allow(reason, Effects::default()));
    }
    Ok(PolicyResult::allow(
        target.as_str(),
        Effects {
            target: Some(target),
            ..Effects::default()
        },
    ))
}
