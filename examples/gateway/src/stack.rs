//! Builds every layer, with in-memory backends or Redis/PostgreSQL when configured.

use std::sync::Arc;
use std::time::Duration;

use callback_fsm::{CallbackSecrets, CallbackService, JobStore, MemoryJobStore, PgJobStore};
use gw_audit::{AuditLayer, AuditWriter, JsonLinesSink, PostgresSink, WriterConfig};
use gw_auth::{AuthLayer, JwksSource, KeySource, StaticKeys};
use gw_budget::{BudgetLayer, FlatCost, MemorySpendStore, PathParam, RedisSpendStore};
use gw_core::{EnvFlags, FeatureFlags, GatewayType, RouteSet, SharedFlags, StaticFlags};
use gw_policy::store::redis::{RedisApprovalStore, RedisUsageStore};
use gw_policy::{ApprovalResponse, GovernorConfig, PolicyLayer, TrialConfig};
use gw_rbac::{Policy, RbacLayer};
use svc_hmac::{
    DirKeyStore, MemoryKeyStore, Mode, RedisKeyStore, RedisNonceCache, ServiceAuthLayer,
};

use std::convert::Infallible;

use axum::body::Body;
use axum::response::Response;
use gw_problem::ProblemLayer;
use http::Request;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};

use crate::GatewayService;
use crate::config::Config;
use crate::demo::DemoAuth;

mod service_routes;

use service_routes::{service_routes, warn_if_service_only_open};

/// Every layer, configured.
pub struct Layers {
    /// Audit (just inside ProblemLayer).
    pub audit: AuditLayer,
    /// The audit writer, drained at shutdown.
    pub audit_writer: AuditWriter,
    /// JWT authentication.
    pub auth: AuthLayer,
    /// Service-to-service HMAC verification.
    pub service_auth: ServiceAuthLayer,
    /// RBAC.
    pub rbac: RbacLayer,
    /// Trial / approval / sandbox.
    pub policy: PolicyLayer,
    /// Spend budgets.
    pub budget: BudgetLayer,
    /// The callback endpoint, when secrets are configured.
    pub callbacks: Option<CallbackService<axum::body::Body>>,
    /// The callback job store (the application creates jobs; callbacks move them).
    pub jobs: Option<Arc<dyn JobStore>>,
    /// Names of the configured backends, for the startup banner.
    pub backends: Vec<String>,
}

impl Layers {
    /// The protected part of the chain around `inner`: Auth, service auth, RBAC, Policy,
    /// Budget. The one place that fixes their order.
    pub fn protect<S>(&self, inner: S) -> GatewayService
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(self.auth.clone())
                .layer(self.service_auth.clone())
                .map_request(|r: Request<svc_hmac::VerifiedBody<Body>>| {
                    // A body the verifier did not read goes on as it came, not boxed again.
                    r.map(|b| b.into_passthrough().unwrap_or_else(Body::new))
                })
                .layer(self.rbac.clone())
                .layer(self.policy.clone())
                .layer(self.budget.clone())
                .map_response(|r: http::Response<_>| r.map(Body::new))
                .service(inner),
        )
    }

    /// The outer part of the chain around `inner`: `problems`, then Audit.
    pub fn enclose<S>(&self, problems: ProblemLayer, inner: S) -> GatewayService
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(problems)
                .map_response(|r: http::Response<_>| r.map(Body::new))
                .layer(self.audit.clone())
                .service(inner),
        )
    }
}

fn flags(config: &Config) -> SharedFlags {
    // File values first, `GW_FLAG_*` variables (already folded into `config.flags` by
    // `Config::load`) win; both end up in one static map.
    let mut flags = StaticFlags::new();
    for (k, v) in &config.flags {
        flags = flags.set(k.clone(), v.clone());
    }
    let env = EnvFlags::from_env("GW_FLAG_");
    for k in config.flags.keys() {
        if let Some(v) = env.value(k) {
            flags = flags.set(k.clone(), v.to_owned());
        }
    }
    Arc::new(flags)
}

/// Builds the layers from `config`. In demo mode, `demo` replaces the configured JWT keys
/// and adds its service key.
pub async fn build(config: &Config, demo: Option<&DemoAuth>) -> Result<Layers, String> {
    // Every layer times its decisions with it: calibrate now, not on the first request.
    gw_core::Stopwatch::calibrate();
    let flags = flags(config);
    let mut backends = Vec::new();
    let redis = config.redis_url.as_deref();
    let prefix = |what: &str| format!("{}{what}:", config.redis_prefix);
    let pg = config.database_url.as_deref();

    // Audit.
    let writer_config = WriterConfig::new()
        .batch_size(config.audit.batch_size)
        .flush_interval(Duration::from_millis(config.audit.flush_interval_ms));
    let writer_config = match &config.audit.spool_dir {
        Some(dir) => writer_config.spool_dir(dir),
        None => writer_config,
    };
    let audit_writer = match pg {
        Some(url) => {
            migrate_audit(url, &config.audit.schema).await?;
            let sink = PostgresSink::connect_str(url, &config.audit.schema)
                .map_err(|e| format!("audit sink: {e}"))?;
            backends.push(format!("audit: postgres (schema {})", config.audit.schema));
            AuditWriter::spawn(sink, writer_config)
        }
        None => {
            backends.push("audit: JSON lines on stdout".into());
            AuditWriter::spawn(JsonLinesSink::stdout(), writer_config)
        }
    }
    .map_err(|e| format!("audit writer: {e}"))?;
    let audit = AuditLayer::new(audit_writer.clone()).gateway_type(config.gateway_type);

    // Service-auth routes first: the auth and RBAC bypasses below reuse service_only.
    let (groups, exempt) = service_routes(config)?;

    // Authentication.
    let source: Arc<dyn KeySource> = match demo {
        Some(demo) => Arc::new(demo.keys.clone()),
        None => auth_source(config).await?,
    };
    let mut auth = AuthLayer::new(source);
    if let Some(iss) = &config.auth.issuer {
        auth = auth.issuer(iss.clone());
    }
    if let Some(aud) = &config.auth.audience {
        auth = auth.audience(aud.clone());
    }
    // The router answers the operator endpoints and the callback route by their exact
    // paths before this stack, so none of them is public here: a near miss such as
    // `/health/` or `/problems/a/b` is proxied, and needs a token like any other request.
    // Public here: what the operator configures, and the service-only routes (services
    // sign with HMAC instead of a JWT).
    let public: Vec<&str> = config
        .auth
        .public_paths
        .iter()
        .chain(&config.service_auth.service_only)
        .map(String::as_str)
        .collect();
    let auth = auth
        .public_routes(&public)
        .map_err(|e| format!("auth.public_paths: {e}"))?;

    // Service authentication.
    let keys: Arc<dyn svc_hmac::KeyStore> = match (&config.service_auth.keys_dir, redis) {
        (Some(dir), _) => Arc::new(
            DirKeyStore::open(dir.clone())
                .map_err(|e| format!("service_auth.keys_dir {dir}: {e}"))?,
        ),
        (None, Some(url)) => {
            let store = RedisKeyStore::connect(url, &prefix("svc"))
                .await
                .map_err(|e| format!("service keys in redis: {e}"))?;
            if let Some(demo) = demo {
                let ring = demo.service_key_ring();
                for key in ring.keys() {
                    store
                        .put_key(ring.service_id(), key)
                        .await
                        .map_err(|e| format!("demo service key: {e}"))?;
                }
            }
            Arc::new(store)
        }
        (None, None) => {
            let store = MemoryKeyStore::new();
            if let Some(demo) = demo {
                store.insert(demo.service_key_ring());
            }
            Arc::new(store)
        }
    };
    let mode: Mode = config
        .service_auth
        .default_mode
        .parse()
        .map_err(|e| format!("service_auth.default_mode: {e}"))?;
    // The configured modes apply as written; SERVICE_AUTH_ENFORCEMENT_MODE, when set, caps
    // them (the seed's rollback switch, parsed strictly by `Config::load`).
    let switch = match config.service_auth.enforcement_cap {
        Some(cap) => {
            warn_if_service_only_open(config, cap);
            svc_hmac::ModeSwitch::new(cap)
        }
        None => svc_hmac::ModeSwitch::default(),
    };
    let mut service_auth = ServiceAuthLayer::with_shared_keys(keys)
        .default_mode(mode)
        .mode_switch(switch)
        .groups(groups)
        .exempt_routes(exempt);
    if let Some(url) = redis {
        let nonces = RedisNonceCache::connect(url, &prefix("svc"))
            .await
            .map_err(|e| format!("nonce cache in redis: {e}"))?;
        service_auth = service_auth.nonce_cache(nonces);
    }

    // RBAC: on the partner gateway (and on the customer one when asked).
    let policy_doc = match &config.rbac.policy_file {
        Some(path) => Policy::from_file(path).map_err(|e| format!("rbac.policy_file: {e}"))?,
        None => Policy::builtin(),
    };
    let rbac_bypass = RouteSet::from_routes(public.iter().copied())
        .map_err(|e| format!("auth.public_paths / service_auth.service_only: {e}"))?;
    let rbac = RbacLayer::native(&policy_doc)
        .map_err(|e| format!("rbac policy: {e}"))?
        .bypass(rbac_bypass)
        .flags(flags.clone())
        .gateway_type(config.gateway_type)
        .runs_on(if config.rbac.on_cp {
            config.gateway_type
        } else {
            GatewayType::Pp
        });
    if let Some(path) = &config.rbac.policy_file {
        rbac.handle().watch_file(path, Duration::from_secs(5));
    }

    // Policies.
    let approval = match config.policy.approval_response.as_str() {
        "redirect" => ApprovalResponse::Redirect,
        "precondition_required" => ApprovalResponse::PreconditionRequired,
        other => return Err(format!("policy.approval_response: unknown {other:?}")),
    };
    let mut trial = TrialConfig::new()
        .limit(config.policy.trial_daily_limit)
        .utc_offset_seconds(config.policy.utc_offset_seconds)
        .upgrade_url(config.policy.upgrade_url.clone());
    let mut governor =
        GovernorConfig::new(config.policy.approval_ui_url.clone()).response(approval);
    if let Some(url) = redis {
        let usage = RedisUsageStore::from_url(url).map_err(|e| format!("trial store: {e}"))?;
        trial = trial.store(usage.prefix(prefix("trial")));
        let approvals =
            RedisApprovalStore::from_url(url).map_err(|e| format!("approval store: {e}"))?;
        governor = governor.store(approvals.prefix(prefix("approval")));
    }
    let policy = PolicyLayer::new()
        .trial(trial)
        .governor(governor)
        .shared_flags(flags.clone());

    // Budget.
    let budget = match redis {
        Some(url) => {
            backends.push("trial, approvals, budgets, nonces, service keys: redis".into());
            BudgetLayer::new(
                RedisSpendStore::open(url)
                    .map_err(|e| format!("budget store: {e}"))?
                    .prefix(prefix("budget")),
            )
        }
        None => {
            backends.push("trial, approvals, budgets, nonces: in memory".into());
            BudgetLayer::new(MemorySpendStore::new())
        }
    };
    let mut budget = budget
        .platform_limit(config.budget.platform_monthly_micro_usd)
        .agent_limit(config.budget.agent_daily_micro_usd)
        .cost(FlatCost(config.budget.cost_per_request_micro_usd))
        .fail_mode(config.budget.fail_mode)
        .upgrade_url(config.budget.upgrade_url.clone())
        .flags(flags.clone())
        .agent_id(
            PathParam::new(["/api/v1/agents/{agent_id}/*"], "agent_id")
                .map_err(|e| format!("budget agent route: {e}"))?,
        );
    // Anonymous requests on the public paths are nobody's spend: charged to the platform
    // budget, a flood of them would block every paying customer. The service-only routes
    // stay charged (signed service calls are platform work).
    let budget_skip = RouteSet::from_routes(&config.auth.public_paths)
        .map_err(|e| format!("auth.public_paths: {e}"))?;
    budget = budget.skip(budget_skip);
    if let Some(limit) = config.budget.customer_monthly_micro_usd {
        budget = budget.customer_limit(limit);
    }

    // Callbacks.
    let callbacks = if config.callbacks.secrets.is_empty() {
        None
    } else {
        let secrets = CallbackSecrets::new(config.callbacks.secrets.iter().cloned())
            .map_err(|e| format!("callbacks.secrets: {e}"))?;
        let store: Arc<dyn JobStore> = match pg {
            Some(url) => {
                let store = PgJobStore::connect(url, &config.callbacks.schema, 16)
                    .map_err(|e| format!("callback store: {e}"))?;
                store
                    .migrate()
                    .await
                    .map_err(|e| format!("callback migration: {e}"))?;
                backends.push(format!(
                    "callback jobs: postgres (schema {})",
                    config.callbacks.schema
                ));
                Arc::new(store)
            }
            None => {
                backends.push("callback jobs: in memory".into());
                Arc::new(MemoryJobStore::new())
            }
        };
        Some((
            CallbackService::new(secrets, store.clone()).response_body::<axum::body::Body>(),
            store,
        ))
    };
    let (callbacks, jobs) = callbacks.unzip();

    Ok(Layers {
        audit,
        audit_writer,
        auth,
        service_auth,
        rbac,
        policy,
        budget,
        callbacks,
        jobs,
        backends,
    })
}

async fn auth_source(config: &Config) -> Result<Arc<dyn KeySource>, String> {
    let a = &config.auth;
    if let Some(url) = &a.jwks_url {
        let uri = url.parse().map_err(|e| format!("auth.jwks_url: {e}"))?;
        let (source, first) = JwksSource::builder(uri).start().await;
        if let Err(e) = first {
            tracing::warn!(error = %e, "first JWKS fetch failed; retrying in the background");
        }
        return Ok(Arc::new(source));
    }
    if let Some(path) = &a.jwks_file {
        return Ok(Arc::new(
            StaticKeys::from_jwks_file(path).map_err(|e| format!("auth.jwks_file: {e}"))?,
        ));
    }
    if let Some(path) = &a.public_key_file {
        let pem = std::fs::read(path).map_err(|e| format!("auth.public_key_file {path}: {e}"))?;
        return Ok(Arc::new(
            StaticKeys::from_pem(None, pem).map_err(|e| format!("auth.public_key_file: {e}"))?,
        ));
    }
    tracing::warn!(
        "no JWT keys configured ([auth] jwks_url, jwks_file or public_key_file, or --demo): \
         every request outside the public paths is refused with 401"
    );
    Ok(Arc::new(
        StaticKeys::from_jwks(r#"{"keys":[]}"#).map_err(|e| format!("empty key set: {e}"))?,
    ))
}

async fn migrate_audit(url: &str, schema: &str) -> Result<(), String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("audit database: {e}"))?;
    let task = tokio::spawn(conn);
    let result = gw_audit::migrate(&client, schema)
        .await
        .map_err(|e| format!("audit migration: {e}"));
    drop(client);
    let _ = task.await;
    result
}
