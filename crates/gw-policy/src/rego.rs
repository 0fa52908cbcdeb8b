//! The policies in Rego (`policy/*.rego`), loaded into a [`regorus`] engine.
//!
//! For deployments that keep policy in OPA: load the same files into OPA and query
//! `data.gw.trial_mode.decision`, `data.gw.governor_approval.decision` and
//! `data.gw.sandbox_routing.decision`. The inputs are documented at the top of each file;
//! the crate's tests check that these policies and the native ones decide alike.

use std::fmt;

use regorus::{Engine, Value};

/// `policy/trial_mode.rego`.
pub const TRIAL_MODE: &str = include_str!("../policy/trial_mode.rego");
/// `policy/governor_approval.rego`.
pub const GOVERNOR_APPROVAL: &str = include_str!("../policy/governor_approval.rego");
/// `policy/sandbox_routing.rego`.
pub const SANDBOX_ROUTING: &str = include_str!("../policy/sandbox_routing.rego");

/// Every shipped policy as `(file name, source)`.
pub const POLICIES: &[(&str, &str)] = &[
    ("trial_mode.rego", TRIAL_MODE),
    ("governor_approval.rego", GOVERNOR_APPROVAL),
    ("sandbox_routing.rego", SANDBOX_ROUTING),
];

/// A Rego load or evaluation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoError(pub String);

impl fmt::Display for RegoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rego: {}", self.0)
    }
}

impl std::error::Error for RegoError {}

fn err(e: impl fmt::Display) -> RegoError {
    RegoError(e.to_string())
}

/// A decision read back from a Rego policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoDecision {
    /// `allow` (for sandbox routing: whether a target was chosen).
    pub allow: bool,
    /// `reason`.
    pub reason: String,
    /// `action` (governor) or `target_backend` (sandbox), when set.
    pub detail: Option<String>,
}

/// The three shipped policies in one engine.
#[derive(Debug, Clone)]
pub struct RegoPolicies {
    engine: Engine,
}

impl RegoPolicies {
    /// Loads [`POLICIES`].
    pub fn load() -> Result<Self, RegoError> {
        let mut engine = Engine::new();
        for (name, source) in POLICIES {
            engine
                .add_policy((*name).to_owned(), (*source).to_owned())
                .map_err(err)?;
        }
        Ok(Self { engine })
    }

    /// The engine, to evaluate other rules or add data.
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Evaluates `data.gw.{package}.decision` for `input` (JSON).
    pub fn decide(
        &mut self,
        package: &str,
        input: &serde_json::Value,
    ) -> Result<RegoDecision, RegoError> {
        self.engine
            .set_input(Value::from_json_str(&input.to_string()).map_err(err)?);
        let v = self
            .engine
            .eval_rule(format!("data.gw.{package}.decision"))
            .map_err(err)?;
        let json: serde_json::Value =
            serde_json::from_str(&v.to_json_str().map_err(err)?).map_err(err)?;
        let reason = json["reason"]
            .as_str()
            .ok_or_else(|| RegoError(format!("{package}: no reason in {json}")))?
            .to_owned();
        let detail = json
            .get("action")
            .or_else(|| json.get("target_backend"))
            .and_then(|d| d.as_str())
            .map(str::to_owned);
        let allow = match json.get("allow") {
            Some(a) => a.as_bool().unwrap_or(false),
            None => detail.is_some(),
        };
        Ok(RegoDecision {
            allow,
            reason,
            detail,
        })
    }
}
