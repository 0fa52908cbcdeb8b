//! Gateway configuration: a TOML file, then `GW_*` environment overrides.

use std::net::SocketAddr;
use std::time::Duration;

use gw_core::GatewayType;
use serde::Deserialize;

mod env;
mod redact;
pub use redact::redact_url;

/// Everything the gateway is configured with. Every field has a default, so an empty file
/// (or none) runs the gateway with embedded backends. `Debug` shows no secret: callback
/// secrets as a count, URLs with their passwords masked ([`redact_url`]).
#[derive(Clone, Deserialize)]
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
    /// Prefix of every Redis key the gateway writes (`GW_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// PostgreSQL for audit and callback jobs; unset uses stdout / memory (`GW_DATABASE_URL`).
    pub database_url: Option<String>,
    /// Where requests are proxied to.
    pub upstream: UpstreamConfig,
    /// JWT bearer authentication.
    pub auth: AuthConfig,
    /// Service-to-service HMAC verification.
    pub service_auth: ServiceAuthConfig,
    /// Role-based access control.
    pub rbac: RbacConfig,
    /// Trial limit, governor approval, sandbox routing.
    pub policy: PolicyConfig,
    /// Spend budgets.
    pub budget: BudgetConfig,
    /// Audit records.
    pub audit: AuditConfig,
    /// Internal job-status callbacks.
    pub callbacks: CallbacksConfig,
    /// Feature flags (`enable_trial_mode = "false"`, ...); `GW_FLAG_*` variables override.
    pub flags: std::collections::BTreeMap<String, String>,
}

/// `[auth]`: where the JWT verification keys come from, and what tokens must say.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// JWKS endpoint, refreshed in the background (`GW_AUTH_JWKS_URL`).
    pub jwks_url: Option<String>,
    /// JWKS file.
    pub jwks_file: Option<String>,
    /// PEM public key file (RSA, EC or Ed25519).
    pub public_key_file: Option<String>,
    /// Required `iss` (`GW_AUTH_ISSUER`).
    pub issuer: Option<String>,
    /// Required `aud` (`GW_AUTH_AUDIENCE`).
    pub audience: Option<String>,
    /// Extra public paths (gw-core route syntax) on top of the operator endpoints.
    pub public_paths: Vec<String>,
}

/// `[service_auth]`: HMAC verification of service-to-service requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceAuthConfig {
    /// Directory of `<service-id>.env` key files (`GW_SERVICE_KEYS_DIR`); with `redis_url`
    /// and no directory, keys are read from Redis.
    pub keys_dir: Option<String>,
    /// Mode outside the listed groups: `off`, `log_only` or `enforce`.
    pub default_mode: String,
    /// Routes that only services may call (enforced).
    pub service_only: Vec<String>,
    /// Routes verified but never blocked for a bad or missing signature (a body that fails
    /// mid-stream is still answered 400).
    pub log_only: Vec<String>,
    /// Routes never checked.
    pub exempt: Vec<String>,
    /// Ceiling on every group's mode, set only from the `SERVICE_AUTH_ENFORCEMENT_MODE`
    /// environment variable by [`Config::load`] (a value that does not parse is an error);
    /// `None`: the configured modes apply as written.
    #[serde(skip)]
    pub enforcement_cap: Option<svc_hmac::Mode>,
}

impl Default for ServiceAuthConfig {
    fn default() -> Self {
        Self {
            keys_dir: None,
            default_mode: "off".into(),
            service_only: vec!["/api/npu/*".into()],
            log_only: Vec::new(),
            exempt: Vec::new(),
            enforcement_cap: None,
        }
    }
}

/// `[rbac]`: the role/permission policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RbacConfig {
    /// Policy TOML file (reloaded on change); unset: the built-in policy.
    pub policy_file: Option<String>,
    /// Also run RBAC on the customer gateway (by default it runs on `pp` only).
    pub on_cp: bool,
}

/// `[policy]`: trial mode, governor approval, sandbox routing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Tasks a trial user may run per day.
    pub trial_daily_limit: u64,
    /// Offset of the day boundary from UTC, in seconds.
    pub utc_offset_seconds: i32,
    /// Where trial users upgrade.
    pub upgrade_url: String,
    /// Base URL of the governor approval UI.
    pub approval_ui_url: String,
    /// `redirect` (307) or `precondition_required` (428 problem with `Location`).
    pub approval_response: String,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            trial_daily_limit: 10,
            utc_offset_seconds: 0,
            upgrade_url: "/upgrade".into(),
            approval_ui_url: "/governor".into(),
            approval_response: "redirect".into(),
        }
    }
}

/// `[budget]`: spend limits in micro-USD.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Platform limit per calendar month.
    pub platform_monthly_micro_usd: u64,
    /// Per-agent limit per day.
    pub agent_daily_micro_usd: u64,
    /// Per-customer limit per month; unset: no customer scope.
    pub customer_monthly_micro_usd: Option<u64>,
    /// Estimated cost of one request.
    pub cost_per_request_micro_usd: u64,
    /// `open` (default) or `closed` when the store is down.
    pub fail_mode: gw_core::FailMode,
    /// Where a blocked caller upgrades.
    pub upgrade_url: String,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            platform_monthly_micro_usd: 100_000_000,
            agent_daily_micro_usd: 1_000_000,
            customer_monthly_micro_usd: None,
            cost_per_request_micro_usd: 1_000,
            fail_mode: gw_core::FailMode::Open,
            upgrade_url: "/upgrade".into(),
        }
    }
}

/// `[audit]`: where audit records go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// PostgreSQL schema for `gateway_audit_logs` (with `database_url`).
    pub schema: String,
    /// Durable spool for batches the sink could not take.
    pub spool_dir: Option<String>,
    /// Write at this many records...
    pub batch_size: usize,
    /// ...or after this many milliseconds.
    pub flush_interval_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            schema: "audit".into(),
            spool_dir: None,
            batch_size: 100,
            flush_interval_ms: 5_000,
        }
    }
}

/// `[callbacks]`: `POST /internal/jobs/{jobId}/status`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// Accepted `X-Callback-Secret` values, each at least 32 bytes
    /// (`GW_CALLBACK_SECRETS`, comma-separated). None: the route answers 404.
    pub secrets: Vec<String>,
    /// PostgreSQL schema for jobs (with `database_url`).
    pub schema: String,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        Self {
            secrets: Vec::new(),
            schema: "callbacks".into(),
        }
    }
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
#[derive(Clone, Deserialize)]
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
            redis_prefix: "gw:".into(),
            database_url: None,
            upstream: UpstreamConfig::default(),
            auth: AuthConfig::default(),
            service_auth: ServiceAuthConfig::default(),
            rbac: RbacConfig::default(),
            policy: PolicyConfig::default(),
            budget: BudgetConfig::default(),
            audit: AuditConfig::default(),
            callbacks: CallbacksConfig::default(),
            flags: Default::default(),
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

#[cfg(test)]
mod example_file {
    #[test]
    fn the_commented_example_parses() {
        let c: super::Config = toml::from_str(include_str!("../gw.example.toml")).unwrap();
        assert_eq!(c.listen.port(), 8080);
    }
}
