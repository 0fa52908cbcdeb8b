//! Enforcement modes, the run-time mode switch and the environment mapping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Environment variable read by [`ModeSwitch::from_env`], as in the seed rollout.
pub const ENFORCEMENT_MODE_ENV: &str = "SERVICE_AUTH_ENFORCEMENT_MODE";

/// What the verifier does on a route group. Ordered: `Off < LogOnly < Enforce`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No verification; the request passes untouched.
    Off,
    /// Verify, log and count the outcome; never block a request for its signature (the
    /// rollback position). A body that fails to arrive is still answered 400
    /// `body-unreadable`: the request could not be served as sent.
    LogOnly,
    /// Verify and reject failures with 401 / 413.
    Enforce,
}

impl Mode {
    /// The wire name: `off`, `log_only` or `enforce` (also the metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::LogOnly => "log_only",
            Self::Enforce => "enforce",
        }
    }

    const fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Off,
            1 => Self::LogOnly,
            _ => Self::Enforce,
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    /// Accepts the mode names and the seed's booleans: `true`/`1`/`on`/`enforce` ->
    /// `Enforce`, `false`/`0`/`log_only`/`logging` -> `LogOnly`, `off`/`disabled` -> `Off`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "enforce" | "enforcing" | "true" | "1" | "on" | "yes" => Ok(Self::Enforce),
            "log_only" | "logging" | "log" | "false" | "0" | "no" => Ok(Self::LogOnly),
            "off" | "disabled" | "none" => Ok(Self::Off),
            other => Err(format!("unknown service auth mode {other:?}")),
        }
    }
}

/// A run-time ceiling on every route group's mode, shared by all clones.
///
/// A group configured `enforce` runs at `min(enforce, switch)`: setting the switch to
/// [`Mode::LogOnly`] is the whole-service rollback, without a restart; setting it back to
/// [`Mode::Enforce`] restores the configured modes.
#[derive(Debug, Clone)]
pub struct ModeSwitch(Arc<AtomicU8>);

impl Default for ModeSwitch {
    /// No ceiling: groups run at their configured mode.
    fn default() -> Self {
        Self::new(Mode::Enforce)
    }
}

impl ModeSwitch {
    /// A switch standing at `mode`.
    pub fn new(mode: Mode) -> Self {
        Self(Arc::new(AtomicU8::new(mode as u8)))
    }

    /// A switch set from [`ENFORCEMENT_MODE_ENV`]. Unset means [`Mode::LogOnly`] (the seed's
    /// default, `false`); an unparsable value also means `LogOnly`, logged.
    pub fn from_env() -> Self {
        Self::new(Self::parse_env(
            std::env::var(ENFORCEMENT_MODE_ENV).ok().as_deref(),
        ))
    }

    /// The mapping [`from_env`](Self::from_env) uses for a variable's value.
    pub fn parse_env(value: Option<&str>) -> Mode {
        match value.map(str::parse::<Mode>) {
            None => Mode::LogOnly,
            Some(Ok(mode)) => mode,
            Some(Err(error)) => {
                tracing::error!(%error, "svc-hmac: {ENFORCEMENT_MODE_ENV} not understood, using log_only");
                Mode::LogOnly
            }
        }
    }

    /// The current ceiling.
    pub fn get(&self) -> Mode {
        Mode::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Moves the ceiling.
    pub fn set(&self, mode: Mode) {
        tracing::warn!(
            mode = mode.as_str(),
            "svc-hmac: enforcement ceiling changed"
        );
        self.0.store(mode as u8, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_mapping_follows_the_seed() {
        assert_eq!(ModeSwitch::parse_env(None), Mode::LogOnly);
        assert_eq!(ModeSwitch::parse_env(Some("true")), Mode::Enforce);
        assert_eq!(ModeSwitch::parse_env(Some("FALSE")), Mode::LogOnly);
        assert_eq!(ModeSwitch::parse_env(Some("off")), Mode::Off);
        assert_eq!(ModeSwitch::parse_env(Some("log-only")), Mode::LogOnly);
        assert_eq!(ModeSwitch::parse_env(Some("banana")), Mode::LogOnly);
        assert!(Mode::Off < Mode::LogOnly && Mode::LogOnly < Mode::Enforce);
    }

    #[test]
    fn switch_is_shared_by_clones() {
        let s = ModeSwitch::default();
        let c = s.clone();
        c.set(Mode::LogOnly);
        assert_eq!(s.get(), Mode::LogOnly);
        assert_eq!(Mode::Enforce.min(s.get()), Mode::LogOnly);
    }
}
