//! Runtime feature flags (`enable_trial_mode`, `budget_alert_threshold_warning`, ...).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

/// A source of feature flag values, looked up by name.
pub trait FeatureFlags: Send + Sync + Debug + 'static {
    /// The raw value of flag `name`, if set.
    fn value(&self, name: &str) -> Option<&str>;

    /// Whether flag `name` is on: `true`, `1`, `yes`, `on` (any case) are on; `false`,
    /// `0`, `no`, `off` are off; unset or anything else gives `default`.
    fn is_enabled(&self, name: &str, default: bool) -> bool {
        match self.value(name).map(str::trim) {
            Some(v)
                if ["true", "1", "yes", "on"]
                    .iter()
                    .any(|t| v.eq_ignore_ascii_case(t)) =>
            {
                true
            }
            Some(v)
                if ["false", "0", "no", "off"]
                    .iter()
                    .any(|f| v.eq_ignore_ascii_case(f)) =>
            {
                false
            }
            _ => default,
        }
    }

    /// Flag `name` parsed as a number, if set and numeric.
    fn number(&self, name: &str) -> Option<f64> {
        self.value(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite())
    }
}

/// Shared feature flags, as layers hold them.
pub type SharedFlags = Arc<dyn FeatureFlags>;

/// Flags from a fixed map. The empty map (the default) leaves every flag at its default.
#[derive(Debug, Clone, Default)]
pub struct StaticFlags(HashMap<String, String>);

impl StaticFlags {
    /// No flags set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets flag `name` to `value`.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for StaticFlags {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl FeatureFlags for StaticFlags {
    fn value(&self, name: &str) -> Option<&str> {
        if self.0.is_empty() {
            // The common case on the request path: nothing set, nothing to hash.
            return None;
        }
        self.0.get(name).map(String::as_str)
    }
}

/// Flags read from environment variables: flag `enable_trial_mode` with prefix `GW_FLAG_`
/// is the variable `GW_FLAG_ENABLE_TRIAL_MODE`.
///
/// The environment is read once, when the value is built, so the hot path never touches
/// the process environment; build a new one to pick up changes.
#[derive(Debug, Clone)]
pub struct EnvFlags {
    prefix: String,
    values: StaticFlags,
}

impl EnvFlags {
    /// Reads every variable that starts with `prefix` (for example `GW_FLAG_`).
    pub fn from_env(prefix: impl Into<String>) -> Self {
        Self::from_vars(prefix, std::env::vars())
    }

    /// Like [`EnvFlags::from_env`], from the given variables instead of the process's.
    pub fn from_vars(
        prefix: impl Into<String>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let prefix = prefix.into();
        let values = vars
            .into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&prefix)
                    .map(|name| (name.to_ascii_lowercase(), v))
            })
            .collect();
        Self { prefix, values }
    }

    /// The prefix the variables were read with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl FeatureFlags for EnvFlags {
    fn value(&self, name: &str) -> Option<&str> {
        self.values.value(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_flags() {
        let f = StaticFlags::new()
            .set("enable_trial_mode", "TRUE")
            .set("enable_rbac_pp", "off")
            .set("budget_alert_threshold_warning", "75.5")
            .set("weird", "maybe");
        assert!(f.is_enabled("enable_trial_mode", false));
        assert!(!f.is_enabled("enable_rbac_pp", true));
        assert!(f.is_enabled("weird", true) && !f.is_enabled("weird", false));
        assert!(f.is_enabled("unset", true));
        assert_eq!(f.number("budget_alert_threshold_warning"), Some(75.5));
        assert_eq!(f.number("weird"), None);
    }

    #[test]
    fn env_flags_strip_prefix_and_lowercase() {
        let f = EnvFlags::from_vars(
            "GW_FLAG_",
            [
                (
                    "GW_FLAG_ENABLE_SANDBOX_ROUTING".to_string(),
                    "0".to_string(),
                ),
                ("OTHER".to_string(), "1".to_string()),
            ],
        );
        assert!(!f.is_enabled("enable_sandbox_routing", true));
        assert_eq!(f.value("other"), None);
        assert_eq!(f.prefix(), "GW_FLAG_");
    }
}
