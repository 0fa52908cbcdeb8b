//! [`RbacLayer`]: configuration, and the state shared by every service it builds.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arc_swap::{ArcSwap, ArcSwapOption};
use gw_core::{FailMode, GatewayType, RouteSet, SharedFlags, StaticFlags};
use tower_layer::Layer;

use crate::cache::DecisionCache;
use crate::engine::{Authorizer, NativeAuthorizer};
use crate::mapping::RouteMapper;
use crate::policy::{Policy, PolicyError};
use crate::reload::PolicyHandle;
use crate::service::Rbac;

/// Feature flag that switches the layer: `enable_rbac_pp` (on when unset).
pub const DEFAULT_FLAG: &str = "enable_rbac_pp";

/// Paths the layer lets through without a principal (the seed's public endpoints).
pub const DEFAULT_BYPASS: [&str; 7] = [
    "/health",
    "/healthz",
    "/ready",
    "/metrics",
    "/docs/*",
    "/redoc/*",
    "/openapi.json",
];

/// State shared by the layer, its services and its [`PolicyHandle`].
pub(crate) struct Shared {
    pub(crate) engine: Arc<dyn Authorizer>,
    pub(crate) mapper: ArcSwap<RouteMapper>,
    pub(crate) revision: AtomicU64,
    pub(crate) cache: ArcSwapOption<DecisionCache>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("engine", &self.engine.name())
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// Per-layer settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) policy_name: Cow<'static, str>,
    pub(crate) runs_on: GatewayType,
    pub(crate) gateway: Option<GatewayType>,
    pub(crate) flags: SharedFlags,
    pub(crate) flag: Cow<'static, str>,
    pub(crate) fail_mode: FailMode,
    pub(crate) bypass: Arc<RouteSet>,
}

/// Role-based access control: maps each request to `resource:action`, asks the
/// [`Authorizer`] (through the decision cache) whether the [`Principal`](gw_core::Principal)
/// may, and answers 401 / 403 / 503 problems or lets the request through with a
/// [`UserInfo`](crate::UserInfo).
#[derive(Debug, Clone)]
pub struct RbacLayer {
    pub(crate) config: Config,
    pub(crate) shared: Arc<Shared>,
}

impl RbacLayer {
    /// A layer deciding with `engine`, mapping routes with `policy`'s overrides, behind a
    /// default [`DecisionCache`] (60 s, 10 000 entries).
    pub fn new(policy: &Policy, engine: impl Authorizer) -> Result<Self, PolicyError> {
        let mapper = RouteMapper::from_policy(policy)?;
        Ok(Self {
            config: Config {
                policy_name: Cow::Borrowed("rbac_pp"),
                runs_on: GatewayType::Pp,
                gateway: None,
                flags: Arc::new(StaticFlags::new()),
                flag: Cow::Borrowed(DEFAULT_FLAG),
                fail_mode: FailMode::Closed,
                bypass: Arc::new(RouteSet::from_routes(DEFAULT_BYPASS).expect("static routes")),
            },
            shared: Arc::new(Shared {
                engine: Arc::new(engine),
                mapper: ArcSwap::from_pointee(mapper),
                revision: AtomicU64::new(1),
                cache: ArcSwapOption::from_pointee(DecisionCache::default()),
            }),
        })
    }

    /// The native engine over `policy`, without a decision cache: a native decision costs
    /// less than a cache lookup. Add one with [`cache`](Self::cache) if you like.
    pub fn native(policy: &Policy) -> Result<Self, PolicyError> {
        Ok(Self::new(policy, NativeAuthorizer::new(policy)?)?.no_cache())
    }

    /// The native engine over the shipped policy ([`Policy::builtin`]), without a cache.
    pub fn builtin() -> Self {
        Self::native(&Policy::builtin()).expect("the shipped policy is valid")
    }

    /// The shipped Rego policy over `policy`'s data, evaluated in-process.
    #[cfg(feature = "rego")]
    pub fn rego(policy: &Policy) -> Result<Self, PolicyError> {
        Self::new(policy, crate::engine::RegoAuthorizer::new(policy)?)
    }

    /// Runs only on gateways of type `t` (default `pp`): requests whose [`GatewayType`]
    /// extension (or the layer's [`gateway_type`](Self::gateway_type)) differs are skipped.
    pub fn runs_on(mut self, t: GatewayType) -> Self {
        self.config.runs_on = t;
        self
    }

    /// The type of the gateway this layer is mounted in, for requests that carry no
    /// [`GatewayType`] extension. When neither is known, the layer runs.
    pub fn gateway_type(mut self, t: GatewayType) -> Self {
        self.config.gateway = Some(t);
        self
    }

    /// Feature flags to read the switch from (default: none set, so the layer is on).
    pub fn flags(mut self, flags: SharedFlags) -> Self {
        self.config.flags = flags;
        self
    }

    /// Name of the switch flag (default [`DEFAULT_FLAG`]).
    pub fn flag_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.config.flag = name.into();
        self
    }

    /// What to do when the engine is unavailable or times out (default closed: 503).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.config.fail_mode = mode;
        self
    }

    /// Paths let through without any check (default [`DEFAULT_BYPASS`]).
    pub fn bypass(mut self, routes: RouteSet) -> Self {
        self.config.bypass = Arc::new(routes);
        self
    }

    /// Policy name in recorded decisions (default `rbac_pp`).
    pub fn policy_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.config.policy_name = name.into();
        self
    }

    /// Replaces the decision cache (default: 60 s TTL, 10 000 entries). The cache lives
    /// in the state shared with clones of this layer and their services.
    pub fn cache(self, cache: DecisionCache) -> Self {
        self.shared.cache.store(Some(Arc::new(cache)));
        self
    }

    /// Asks the engine for every request.
    pub fn no_cache(self) -> Self {
        self.shared.cache.store(None);
        self
    }

    /// A handle to reload the policy of this layer and every service built from it.
    pub fn handle(&self) -> PolicyHandle {
        PolicyHandle::new(self.shared.clone())
    }
}

impl<S> Layer<S> for RbacLayer {
    type Service = Rbac<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Rbac::new(inner, Arc::new(self.config.clone()), self.shared.clone())
    }
}
