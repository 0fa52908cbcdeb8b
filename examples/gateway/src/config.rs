//! Gateway configuration: a TOML file, then `GW_*` environment overrides.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use gw_core::GatewayType;
use serde::Deserialize;

/// Everything the gateway is configured with. Every field has a default, so an empty file
/// (or none) runs the gateway with embedded backends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`GW_LISTEN`).
    pub listen: SocketAddr,
    /// Which gateway this is: `cp` (customer portal) or `pp` (partner portal)
    /// (`GW_GATEWAY_TYPE`).
    #[serde(deserialize_with = "gateway_type")]
    pub gateway_type: GatewayType,
    /// `production` or `development`; development puts panic messages into 500 problems
    /// (`GW_ENVIRONMENT`).
    pub environment: Environment,
    /// Base of problem `type` URIs (`GW_PROBLEM_TYPE_BASE`).
    pub problem_type_base: String,
    /// Redis for shared state; unset keeps state in memory (`GW_REDIS_URL`).
    pub redis_url: Option<String>,
    /// PostgreSQL for audit and callback jobs; unset uses stdout / memory (`GW_DATABASE_URL`).
    pub database_url: Option<String>,
    /// Where requests are proxied to.
    pub upstream: UpstreamConfig,
}

/// Runtime environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// No internals in responses.
    #[default]
    Production,
    /// 500 problems include the panic or error message.
    Development,
}

/// The upstream ("Plant API") the gateway forwards to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Production upstream base URL; unset starts the built-in demo upstream
    /// (`GW_UPSTREAM_URL`).
    pub production_url: Option<String>,
    /// Sandbox upstream base URL for trial users; unset uses the production one
    /// (`GW_SANDBOX_UPSTREAM_URL`).
    pub sandbox_url: Option<String>,
    /// Upstream timeout in milliseconds; past it the client gets 504 (`GW_UPSTREAM_TIMEOUT_MS`).
    pub timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            gateway_type: GatewayType::Cp,
            environment: Environment::Production,
            problem_type_base: gw_problem::DEFAULT_TYPE_BASE.to_owned(),
            redis_url: None,
            database_url: None,
            upstream: UpstreamConfig::default(),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            production_url: None,
            sandbox_url: None,
            timeout_ms: 30_000,
        }
    }
}

impl UpstreamConfig {
    /// The upstream timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

fn gateway_type<'de, D: serde::Deserializer<'de>>(d: D) -> Result<GatewayType, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

impl Config {
    /// Reads `path` (if given), then applies the `GW_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, String> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => Config::default(),
        };
        for (key, value) in env {
            config.apply_env(&key, value)?;
        }
        Ok(config)
    }

    fn apply_env(&mut self, key: &str, value: String) -> Result<(), String> {
        let bad = |e: &dyn std::fmt::Display| format!("{key}: {e}");
        match key {
            "GW_LISTEN" => self.listen = value.parse().map_err(|e| bad(&e))?,
            "GW_GATEWAY_TYPE" => self.gateway_type = value.parse().map_err(|e| bad(&e))?,
            "GW_ENVIRONMENT" => {
                self.environment = match value.as_str() {
                    "production" => Environment::Production,
                    "development" => Environment::Development,
                    other => return Err(bad(&format!("unknown environment {other:?}"))),
                }
            }
            "GW_PROBLEM_TYPE_BASE" => self.problem_type_base = value,
            "GW_REDIS_URL" => self.redis_url = non_empty(value),
            "GW_DATABASE_URL" => self.database_url = non_empty(value),
            "GW_UPSTREAM_URL" => self.upstream.production_url = non_empty(value),
            "GW_SANDBOX_UPSTREAM_URL" => self.upstream.sandbox_url = non_empty(value),
            "GW_UPSTREAM_TIMEOUT_MS" => {
                self.upstream.timeout_ms = value.parse().map_err(|e| bad(&e))?
            }
            _ => {}
        }
        Ok(())
    }
}

fn non_empty(v: String) -> Option<String> {
    (!v.trim().is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env() {
        let dir = std::env::temp_dir().join(format!("gw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gw.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9999\"\ngateway_type = \"pp\"\n[upstream]\ntimeout_ms = 5\n",
        )
        .unwrap();
        let env = [
            ("GW_LISTEN".to_string(), "127.0.0.1:7000".to_string()),
            ("GW_REDIS_URL".to_string(), "redis://x".to_string()),
            ("UNRELATED".to_string(), "1".to_string()),
        ];
        let c = Config::load(Some(&file), env).unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.gateway_type, GatewayType::Pp);
        assert_eq!(c.upstream.timeout(), Duration::from_millis(5));
        assert_eq!(c.redis_url.as_deref(), Some("redis://x"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<Config>("nope = 1").is_err());
        assert!(Config::load(None, [("GW_LISTEN".into(), "x".into())]).is_err());
        assert!(Config::load(None, [("GW_GATEWAY_TYPE".into(), "zz".into())]).is_err());
    }
}

#[cfg(test)]
mod example_file {
    #[test]
    fn the_commented_example_parses() {
        let c: super::Config = toml::from_str(include_str!("../gw.example.toml")).unwrap();
        assert_eq!(c.listen.port(), 8080);
    }
}
