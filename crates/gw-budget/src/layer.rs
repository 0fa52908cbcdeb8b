//! [`BudgetLayer`]: configuration of the budget guard.

use std::fmt;
use std::sync::Arc;

use gw_core::{FailMode, RouteSet, SharedClock, SharedFlags, SystemClock};
use http::StatusCode;
use tower_layer::Layer;

use crate::alert::{AgentPauser, AlertSink, Thresholds, TracingAlertSink};
use crate::backend::SpendStore;
use crate::backend::memory::MemorySpendStore;
use crate::cost::{CostModel, FlatCost};
use crate::extract::{AgentIdExtractor, NoAgent};
use crate::period::{PeriodKind, UtcOffset};
use crate::service::Budget;

/// $100, the reference system's monthly platform budget, in micro-USD.
pub const DEFAULT_PLATFORM_LIMIT: u64 = 100_000_000;
/// $1, the reference system's daily agent budget, in micro-USD.
pub const DEFAULT_AGENT_LIMIT: u64 = 1_000_000;
/// Feature flag that switches enforcement off when set to a false value.
pub const ENABLE_FLAG: &str = "enable_budget_enforcement";

/// The limit and period of one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeLimit {
    /// Budget per period, micro-USD.
    pub limit: u64,
    /// How long a period lasts.
    pub period: PeriodKind,
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) store: Arc<dyn SpendStore>,
    pub(crate) clock: SharedClock,
    pub(crate) flags: Option<SharedFlags>,
    pub(crate) offset: UtcOffset,
    pub(crate) platform: ScopeLimit,
    pub(crate) agent: ScopeLimit,
    pub(crate) customer: Option<ScopeLimit>,
    pub(crate) agent_id: Arc<dyn AgentIdExtractor>,
    pub(crate) cost: Arc<dyn CostModel>,
    pub(crate) thresholds: Thresholds,
    pub(crate) sinks: Vec<Arc<dyn AlertSink>>,
    pub(crate) pauser: Option<Arc<dyn AgentPauser>>,
    pub(crate) fail_mode: FailMode,
    pub(crate) skip: RouteSet,
    pub(crate) upgrade_url: Arc<str>,
    pub(crate) contact_sales: Arc<str>,
    /// Error statuses charged all the same (see [`BudgetLayer::charge_status`]).
    pub(crate) charged: Arc<[StatusCode]>,
}

impl Config {
    /// Whether a response with `status` keeps its charge: any status below 400, and the
    /// error statuses listed as charged.
    pub(crate) fn is_charged(&self, status: StatusCode) -> bool {
        !(status.is_client_error() || status.is_server_error()) || self.charged.contains(&status)
    }
}

/// Applies spend budgets: reserves the estimated cost in the platform, agent and customer
/// budgets before the handler, settles it to the actual cost after.
///
/// Defaults: in-memory store, platform $100 per month, agent $1 per day (no agent
/// extractor, so no agent scope until one is set), no customer scope, $0.001 per request,
/// thresholds 80/95/100%, UTC periods, system clock, fail-open, alerts logged via tracing,
/// error responses (4xx, 5xx) not charged.
#[derive(Clone)]
pub struct BudgetLayer {
    cfg: Config,
}

impl BudgetLayer {
    /// A layer with the default settings over `store`.
    pub fn new(store: impl SpendStore) -> Self {
        Self {
            cfg: Config {
                store: Arc::new(store),
                clock: Arc::new(SystemClock),
                flags: None,
                offset: UtcOffset::UTC,
                platform: ScopeLimit {
                    limit: DEFAULT_PLATFORM_LIMIT,
                    period: PeriodKind::Month,
                },
                agent: ScopeLimit {
                    limit: DEFAULT_AGENT_LIMIT,
                    period: PeriodKind::Day,
                },
                customer: None,
                agent_id: Arc::new(NoAgent),
                cost: Arc::new(FlatCost::default()),
                thresholds: Thresholds::DEFAULT,
                sinks: vec![Arc::new(TracingAlertSink)],
                pauser: None,
                fail_mode: FailMode::Open,
                skip: RouteSet::new(),
                upgrade_url: "/billing/upgrade".into(),
                contact_sales: "/contact-sales".into(),
                charged: Arc::from([]),
            },
        }
    }

    /// A layer over a fresh [`MemorySpendStore`] (one process only).
    pub fn in_memory() -> Self {
        Self::new(MemorySpendStore::new())
    }

    /// Platform budget per period, micro-USD (default $100).
    pub fn platform_limit(mut self, micro_usd: u64) -> Self {
        self.cfg.platform.limit = micro_usd;
        self
    }

    /// Platform period (default a calendar month).
    pub fn platform_period(mut self, period: PeriodKind) -> Self {
        self.cfg.platform.period = period;
        self
    }

    /// Budget of each agent per period, micro-USD (default $1).
    pub fn agent_limit(mut self, micro_usd: u64) -> Self {
        self.cfg.agent.limit = micro_usd;
        self
    }

    /// Agent period (default a calendar day).
    pub fn agent_period(mut self, period: PeriodKind) -> Self {
        self.cfg.agent.period = period;
        self
    }

    /// Adds a budget per customer (`Principal::customer_id`) per calendar month.
    pub fn customer_limit(mut self, micro_usd: u64) -> Self {
        self.cfg.customer = Some(ScopeLimit {
            limit: micro_usd,
            period: PeriodKind::Month,
        });
        self
    }

    /// Customer period, once [`BudgetLayer::customer_limit`] is set (default a month).
    pub fn customer_period(mut self, period: PeriodKind) -> Self {
        if let Some(c) = &mut self.cfg.customer {
            c.period = period;
        }
        self
    }

    /// Where days and months begin (default UTC).
    pub fn utc_offset(mut self, offset: UtcOffset) -> Self {
        self.cfg.offset = offset;
        self
    }

    /// The clock periods are computed from (default the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.cfg.clock = clock;
        self
    }

    /// Feature flags: `enable_budget_enforcement` (default on) and
    /// `budget_alert_threshold_{warning,high,critical}` (percent).
    pub fn flags(mut self, flags: SharedFlags) -> Self {
        self.cfg.flags = Some(flags);
        self
    }

    /// How the agent id is found (default: no agent scope).
    pub fn agent_id(mut self, extractor: impl AgentIdExtractor) -> Self {
        self.cfg.agent_id = Arc::new(extractor);
        self
    }

    /// How requests are priced (default [`FlatCost`] of $0.001).
    pub fn cost(mut self, model: impl CostModel) -> Self {
        self.cfg.cost = Arc::new(model);
        self
    }

    /// Alert thresholds (default 80/95/100%); flags override them per request.
    pub fn thresholds(mut self, thresholds: Thresholds) -> Self {
        self.cfg.thresholds = thresholds;
        self
    }

    /// Adds an alert sink (a tracing sink is always there).
    pub fn alert_sink(mut self, sink: impl AlertSink) -> Self {
        self.cfg.sinks.push(Arc::new(sink));
        self
    }

    /// Runs `pauser` once per agent and period when the agent's budget reaches critical.
    pub fn agent_pauser(mut self, pauser: impl AgentPauser) -> Self {
        self.cfg.pauser = Some(Arc::new(pauser));
        self
    }

    /// What to do when the store is unreachable (default [`FailMode::Open`]).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.cfg.fail_mode = mode;
        self
    }

    /// Routes that are never charged (health checks, docs, ...).
    pub fn skip(mut self, routes: RouteSet) -> Self {
        self.cfg.skip = routes;
        self
    }

    /// `upgrade_url` in budget-exceeded problems (default `/billing/upgrade`).
    pub fn upgrade_url(mut self, url: impl Into<Arc<str>>) -> Self {
        self.cfg.upgrade_url = url.into();
        self
    }

    /// Charges responses with error status `status` too (by default every 4xx and 5xx
    /// releases its reservation): for an upstream that does billable work before it
    /// answers with that error, such as a 422 from a model that ran. A status that any
    /// caller can provoke on another tenant's agent (401, 403, 404) is better left
    /// uncharged; see [`PathParam`](crate::PathParam).
    pub fn charge_status(mut self, status: StatusCode) -> Self {
        let mut all = self.cfg.charged.to_vec();
        if !all.contains(&status) {
            all.push(status);
        }
        self.cfg.charged = all.into();
        self
    }

    /// `contact_sales` in budget-exceeded problems (default `/contact-sales`).
    pub fn contact_sales(mut self, contact: impl Into<Arc<str>>) -> Self {
        self.cfg.contact_sales = contact.into();
        self
    }
}

impl fmt::Debug for BudgetLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.cfg;
        f.debug_struct("BudgetLayer")
            .field("store", &c.store)
            .field("platform", &c.platform)
            .field("agent", &c.agent)
            .field("customer", &c.customer)
            .field("agent_id", &c.agent_id)
            .field("cost", &c.cost)
            .field("thresholds", &c.thresholds)
            .field("offset", &c.offset)
            .field("fail_mode", &c.fail_mode)
            .field("alert_sinks", &c.sinks.len())
            .field("agent_pauser", &c.pauser.is_some())
            .field("skip", &c.skip)
            .field("charged_statuses", &c.charged)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Budget::new(inner, Arc::new(self.cfg.clone()))
    }
}
