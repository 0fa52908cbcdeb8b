//! Enforcement modes, the run-time mode switch and the environment mapping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Environment variable read by [`ModeSwitch::try_from_env`] and [`ModeSwitch::from_env`], as
/// in the seed rollout.
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

    /// Every spelling `FromStr` accepts (case-insensitive, `-` read as `_`), for messages
    /// and docs.
    pub const SPELLINGS: &'static str = "enforce (enforcing, true, 1, on, yes), \
         log_only (log, logging, false, 0, no) or off (disabled, none)";

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

    /// Accepts the mode names and the seed's booleans, as listed in [`Mode::SPELLINGS`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "enforce" | "enforcing" | "true" | "1" | "on" | "yes" => Ok(Self::Enforce),
            "log_only" | "logging" | "log" | "false" | "0" | "no" => Ok(Self::LogOnly),
            "off" | "disabled" | "none" => Ok(Self::Off),
            other => Err(format!("unknown service auth mode {other:?}")),
        }
    }
}

/// [`ENFORCEMENT_MODE_ENV`] is set, but to no [`Mode`] (empty, misspelt or not UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeEnvError {
    value: String,
}

impl ModeEnvError {
    /// The refused value (lossily decoded if it was not UTF-8).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Display for ModeEnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{ENFORCEMENT_MODE_ENV}: unknown service auth mode {:?}: use {}, or unset it",
            self.value,
            Mode::SPELLINGS
        )
    }
}

impl std::error::Error for ModeEnvError {}

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

    /// A switch set from [`ENFORCEMENT_MODE_ENV`], strictly: unset means [`Mode::LogOnly`]
    /// (the seed's default, `false`); a value that names no mode is an error, so a typo
    /// cannot quietly open service-only routes. Prefer this to [`from_env`](Self::from_env).
    pub fn try_from_env() -> Result<Self, ModeEnvError> {
        let mode = match std::env::var(ENFORCEMENT_MODE_ENV) {
            Ok(value) => Self::try_parse_env(Some(&value))?,
            Err(std::env::VarError::NotPresent) => Mode::LogOnly,
            Err(std::env::VarError::NotUnicode(raw)) => {
                return Err(ModeEnvError {
                    value: raw.to_string_lossy().into_owned(),
                });
            }
        };
        Ok(Self::new(mode))
    }

    /// The strict mapping [`try_from_env`](Self::try_from_env) uses for a variable's value
    /// (`None`: unset).
    pub fn try_parse_env(value: Option<&str>) -> Result<Mode, ModeEnvError> {
        match value {
            None => Ok(Mode::LogOnly),
            Some(v) => v.parse().map_err(|_| ModeEnvError {
                value: v.to_owned(),
            }),
        }
    }

    /// A switch set from [`ENFORCEMENT_MODE_ENV`], leniently (the seed's behaviour): unset
    /// **or a value that names no mode (empty, misspelt)** means [`Mode::LogOnly`], with an
    /// error logged; that opens routes a deployment meant to enforce. Use
    /// [`try_from_env`](Self::try_from_env) to refuse to start instead.
    pub fn from_env() -> Self {
        Self::new(Self::parse_env(
            std::env::var(ENFORCEMENT_MODE_ENV).ok().as_deref(),
        ))
    }

    /// The lenient mapping [`from_env`](Self::from_env) uses for a variable's value: like
    /// [`try_parse_env`](Self::try_parse_env), with an error mapped to [`Mode::LogOnly`].
    pub fn parse_env(value: Option<&str>) -> Mode {
        Self::try_parse_env(value).unwrap_or_else(|error| {
            tracing::error!(%error, "svc-hmac: using log_only");
            Mode::LogOnly
        })
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
    fn strict_env_mapping_refuses_what_it_does_not_understand() {
        assert_eq!(ModeSwitch::try_parse_env(None), Ok(Mode::LogOnly));
        assert_eq!(ModeSwitch::try_parse_env(Some(" On ")), Ok(Mode::Enforce));
        assert_eq!(
            ModeSwitch::try_parse_env(Some("log-only")),
            Ok(Mode::LogOnly)
        );
        for bad in ["", " ", "banana", "enforced", "log only", "2"] {
            let err = ModeSwitch::try_parse_env(Some(bad)).unwrap_err();
            assert_eq!(err.value(), bad);
            let text = err.to_string();
            assert!(
                text.starts_with("SERVICE_AUTH_ENFORCEMENT_MODE: unknown service auth mode"),
                "{text}"
            );
            assert!(text.contains(Mode::SPELLINGS), "{text}");
        }
    }

    #[test]
    fn spellings_lists_exactly_what_parses() {
        let mut listed: Vec<&str> = Mode::SPELLINGS
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty() && *w != "or")
            .collect();
        for word in &listed {
            assert!(word.parse::<Mode>().is_ok(), "{word}");
        }
        // The arms of `from_str`, by hand: a new spelling must be added to both.
        let mut arms = vec![
            "enforce",
            "enforcing",
            "true",
            "1",
            "on",
            "yes",
            "log_only",
            "logging",
            "log",
            "false",
            "0",
            "no",
            "off",
            "disabled",
            "none",
        ];
        listed.sort_unstable();
        arms.sort_unstable();
        assert_eq!(listed, arms);
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
