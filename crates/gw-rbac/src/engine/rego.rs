//! The Rego engine: the shipped `rbac_pp` policy evaluated in-process with `regorus`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use gw_core::BackendError;
use regorus::{CompiledPolicy, PolicyModule, Value};

use super::{Authorization, Authorizer, AuthzInput, DecisionDoc};
use crate::policy::{BUILTIN_POLICY_REGO, Policy, PolicyError};

/// The rule the Rego engine evaluates.
pub const DECISION_RULE: &str = "data.rbac_pp.decision";

/// Evaluates a Rego policy (by default [`BUILTIN_POLICY_REGO`]) with the policy's roles and
/// permissions as `data.gw_rbac`.
///
/// The policy is compiled once per load into a shared, immutable `regorus`
/// `CompiledPolicy`; each decision runs on its own short-lived evaluator, so concurrent
/// requests never wait on a lock.
pub struct RegoAuthorizer {
    rego: Arc<str>,
    compiled: ArcSwap<CompiledPolicy>,
}

impl std::fmt::Debug for RegoAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegoAuthorizer")
            .field("rule", &DECISION_RULE)
            .finish_non_exhaustive()
    }
}

impl RegoAuthorizer {
    /// The shipped Rego policy over `policy`'s data.
    pub fn new(policy: &Policy) -> Result<Self, PolicyError> {
        Self::with_rego(policy, BUILTIN_POLICY_REGO)
    }

    /// A custom Rego module (package `rbac_pp`, rule `decision`, same document shape)
    /// over `policy`'s data.
    pub fn with_rego(policy: &Policy, rego: &str) -> Result<Self, PolicyError> {
        let rego: Arc<str> = Arc::from(rego);
        let compiled = compile(&rego, policy)?;
        Ok(Self {
            rego,
            compiled: ArcSwap::from_pointee(compiled),
        })
    }

    /// Evaluates synchronously (what [`Authorizer::authorize`] wraps).
    pub fn decide(&self, input: &AuthzInput<'_>) -> Result<super::AuthzDecision, BackendError> {
        let compiled = self.compiled.load();
        let out = compiled
            .eval_with_input(Value::from(input.to_json()))
            .map_err(|e| BackendError::invalid("rego", e))?;
        if out == Value::Undefined {
            return Err(BackendError::invalid("rego", "decision is undefined"));
        }
        let json = serde_json::to_value(&out).map_err(|e| BackendError::invalid("rego", e))?;
        DecisionDoc::parse(json, "rego")
    }
}

fn compile(rego: &str, policy: &Policy) -> Result<CompiledPolicy, PolicyError> {
    policy.validate()?;
    let data = Value::from(policy.to_data_json());
    let modules = [PolicyModule {
        id: "rbac_pp.rego".into(),
        content: rego.into(),
    }];
    regorus::compile_policy_with_entrypoint(data, &modules, DECISION_RULE.into())
        .map_err(|e| PolicyError::new(format!("rego: {e}")))
}

impl Authorizer for RegoAuthorizer {
    fn name(&self) -> &'static str {
        "rego"
    }

    fn authorize(&self, input: &AuthzInput<'_>) -> Authorization {
        Authorization::ready(self.decide(input))
    }

    fn reload(&self, policy: &Policy) -> Result<(), PolicyError> {
        self.compiled.store(Arc::new(compile(&self.rego, policy)?));
        Ok(())
    }
}
