//! What happens around the handler: reservation outcomes, settling, headers, alerts.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use gw_core::{BackendError, FailMode, Outcome};
use gw_problem::{Problem, ProblemType};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};

use crate::alert::{AlertLevel, BudgetAlert, Thresholds, bp_percent, utilization_bp};
use crate::backend::{Fired, ReserveOutcome, ReserveRequest, SettleOutcome, SettleRequest};
use crate::layer::Config;
use crate::scope::{Charge, ScopeKind};
use crate::service::record;

/// `X-Budget-Alert-Level`: the highest alert level over the request's scopes.
pub const ALERT_LEVEL_HEADER: HeaderName = HeaderName::from_static("x-budget-alert-level");
/// `X-Platform-Utilization`: platform spend in percent of its limit, two decimals.
pub const PLATFORM_UTILIZATION_HEADER: HeaderName =
    HeaderName::from_static("x-platform-utilization");
/// `X-Agent-Utilization`: agent spend in percent of its limit (when there is an agent).
pub const AGENT_UTILIZATION_HEADER: HeaderName = HeaderName::from_static("x-agent-utilization");
/// `X-Customer-Utilization`: customer spend in percent of its limit (when budgeted).
pub const CUSTOMER_UTILIZATION_HEADER: HeaderName =
    HeaderName::from_static("x-customer-utilization");

/// A reservation about to be made.
pub(crate) struct Pending {
    pub(crate) cfg: Arc<Config>,
    pub(crate) charges: Arc<[Charge]>,
    pub(crate) amount: u64,
    pub(crate) thresholds: Thresholds,
    pub(crate) now: i64,
    pub(crate) started: crate::service::DecisionTimer,
}

pub(crate) enum Next<B> {
    /// Call the handler; settle afterwards if there is a ticket.
    Call(Option<Ticket>),
    /// Answer without calling the handler.
    Respond(Response<B>),
}

impl Pending {
    pub(crate) fn reserve_request(&self) -> ReserveRequest {
        ReserveRequest {
            charges: self.charges.clone(),
            amount: self.amount,
            thresholds: self.thresholds,
            now: self.now,
        }
    }

    pub(crate) fn release_request(&self) -> SettleRequest {
        SettleRequest {
            charges: self.charges.clone(),
            reserved: self.amount,
            actual: 0,
            thresholds: self.thresholds,
            now: self.now,
        }
    }

    pub(crate) fn resolve<ReqB, B: From<Bytes>>(
        self,
        outcome: Result<ReserveOutcome, BackendError>,
        req: &Request<ReqB>,
    ) -> Next<B> {
        let latency = self.started.elapsed();
        match outcome {
            Ok(ReserveOutcome::Admitted { spent, fired }) => {
                record(req, Outcome::Allow, "within-budget", latency);
                gw_core::hot_counter!("gw_budget_requests_total", "outcome" => "allow")
                    .increment(1);
                fire(&self.cfg, &self.charges, &spent, &fired, &self.thresholds);
                Next::Call(Some(Ticket {
                    cfg: self.cfg,
                    charges: self.charges,
                    amount: self.amount,
                    spent,
                    thresholds: self.thresholds,
                    now: self.now,
                    release_on_drop: true,
                }))
            }
            Ok(ReserveOutcome::Rejected {
                index,
                spent,
                fired,
            }) => {
                record(req, Outcome::Deny, "budget-exceeded", latency);
                gw_core::hot_counter!("gw_budget_requests_total", "outcome" => "deny").increment(1);
                let mut all = vec![0; self.charges.len()];
                all[index] = spent;
                fire(&self.cfg, &self.charges, &all, &fired, &self.thresholds);
                let c = &self.charges[index];
                let mut res = exceeded(&self.cfg, c, spent, self.amount, req);
                let h = res.headers_mut();
                h.insert(ALERT_LEVEL_HEADER, HeaderValue::from_static("critical"));
                h.insert(header_for(c.key.kind), percent(spent, c.limit));
                Next::Respond(res)
            }
            Err(e) if e.is_unavailable() && self.cfg.fail_mode == FailMode::Open => {
                tracing::warn!(error = %e, "budget store unavailable; admitting the request (fail-open)");
                metrics::counter!("gw_budget_fail_open_total").increment(1);
                record(req, Outcome::FailOpen, "budget-store-unavailable", latency);
                Next::Call(None)
            }
            Err(e) => {
                tracing::error!(error = %e, "budget store failed; rejecting the request (fail-closed)");
                metrics::counter!("gw_budget_fail_closed_total").increment(1);
                record(
                    req,
                    Outcome::FailClosed,
                    "budget-store-unavailable",
                    latency,
                );
                Next::Respond(
                    Problem::new(ProblemType::SERVICE_UNAVAILABLE)
                        .code("budget-store-unavailable")
                        .detail("Budgets cannot be checked right now; try again shortly.")
                        .response_for(req),
                )
            }
        }
    }
}

fn exceeded<ReqB, B: From<Bytes>>(
    cfg: &Config,
    c: &Charge,
    spent: u64,
    amount: u64,
    req: &Request<ReqB>,
) -> Response<B> {
    let scope = c.key.kind;
    let mut p = Problem::new(ProblemType::BUDGET_EXCEEDED)
        .code("budget-exceeded")
        .detail(format!(
            "The {scope} budget for {} is used up.",
            c.key.period
        ))
        .with("scope", scope)
        .with("period", c.key.period.to_string())
        .with("limit", c.limit)
        .with("spent", spent)
        .with("remaining", c.limit.saturating_sub(spent))
        .with("cost", amount)
        .with("currency", "USD")
        .with("unit", "micro_usd")
        .with(
            "utilization_percent",
            bp_percent(utilization_bp(spent, c.limit)),
        )
        .with("upgrade_url", &*cfg.upgrade_url)
        .with("contact_sales", &*cfg.contact_sales);
    if let Some(id) = &c.key.id {
        p = p.with(format!("{scope}_id"), &**id);
    }
    p.response_for(req)
}

/// An admitted reservation, to be settled once the handler answered.
pub(crate) struct Ticket {
    cfg: Arc<Config>,
    charges: Arc<[Charge]>,
    amount: u64,
    spent: Vec<u64>,
    thresholds: Thresholds,
    now: i64,
    /// Until the inner service has been called, a dropped request releases its
    /// reservation; afterwards the request may have run and the reservation is the charge.
    release_on_drop: bool,
}

impl Ticket {
    pub(crate) fn store(&self) -> &dyn crate::backend::SpendStore {
        &*self.cfg.store
    }

    /// Records that the request went to the inner service: from now on a dropped request
    /// (client gone, timeout) is charged its reservation, as the upstream may do the work.
    pub(crate) fn handed_on(&mut self) {
        self.release_on_drop = false;
    }

    fn settle_request(&self, actual: u64) -> SettleRequest {
        SettleRequest {
            charges: self.charges.clone(),
            reserved: self.amount,
            actual,
            thresholds: self.thresholds,
            now: self.now,
        }
    }

    /// The settle to run for the handler's result, if the actual cost differs from the
    /// reservation: a release (actual cost 0) after an inner error or an error status
    /// (4xx, 5xx) not listed as charged, the cost model's actual cost otherwise.
    pub(crate) fn after<B, E>(&mut self, out: &Result<Response<B>, E>) -> Option<SettleRequest> {
        self.release_on_drop = false;
        let actual = match out {
            Err(_) => 0,
            Ok(res) if !self.cfg.is_charged(res.status()) => 0,
            Ok(res) => self.cfg.cost.actual(self.amount, res.headers()),
        };
        (actual != self.amount).then(|| self.settle_request(actual))
    }

    /// Fires alerts of the settle and adds the budget headers to the response.
    pub(crate) fn finish<B, E>(
        self,
        out: Result<Response<B>, E>,
        settled: Option<Result<SettleOutcome, BackendError>>,
    ) -> Result<Response<B>, E> {
        let spent = match settled {
            Some(Ok(o)) => {
                fire(
                    &self.cfg,
                    &self.charges,
                    &o.spent,
                    &o.fired,
                    &self.thresholds,
                );
                o.spent
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "budget settle failed; the reservation stands");
                metrics::counter!("gw_budget_settle_errors_total").increment(1);
                self.spent.clone()
            }
            None => self.spent.clone(),
        };
        out.map(|mut res| {
            add_headers(res.headers_mut(), &self.charges, &spent, &self.thresholds);
            res
        })
    }
}

impl Drop for Ticket {
    /// A ticket dropped before the inner service was called (its `call` panicked)
    /// releases the reservation. Once the request was handed on, a dropped request keeps
    /// the reservation as its charge: the upstream may still do the work.
    fn drop(&mut self) {
        if self.release_on_drop {
            let release = self.settle_request(0);
            if self.cfg.store.settle_sync(&release).is_none() {
                crate::inflight::detach(self.cfg.store.settle(release));
            }
        }
    }
}

fn header_for(kind: ScopeKind) -> HeaderName {
    match kind {
        ScopeKind::Platform => PLATFORM_UTILIZATION_HEADER,
        ScopeKind::Agent => AGENT_UTILIZATION_HEADER,
        ScopeKind::Customer => CUSTOMER_UTILIZATION_HEADER,
    }
}

/// `spent / limit` as a percentage with two decimals (`80.00`).
fn percent(spent: u64, limit: u64) -> HeaderValue {
    let bp = utilization_bp(spent, limit);
    if let Some(v) = usize::try_from(bp).ok().and_then(|bp| PERCENTS.get(bp)) {
        return v.clone();
    }
    HeaderValue::try_from(format!("{}.{:02}", bp / 100, bp % 100))
        .unwrap_or(HeaderValue::from_static("0.00"))
}

/// `0.00` to `100.00` as header values over one static string: cloning them does not
/// allocate, so the hot path writes its utilization headers without allocating.
static PERCENTS: LazyLock<Box<[HeaderValue]>> = LazyLock::new(|| {
    let mut all = String::with_capacity(10_001 * 6);
    let mut ends = Vec::with_capacity(10_001);
    for bp in 0..=10_000u32 {
        all.push_str(&format!("{}.{:02}", bp / 100, bp % 100));
        ends.push(all.len());
    }
    let all: &'static str = Box::leak(all.into_boxed_str());
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let v = HeaderValue::from_static(&all[start..end]);
            start = end;
            v
        })
        .collect()
});

pub(crate) fn add_headers(h: &mut HeaderMap, charges: &[Charge], spent: &[u64], t: &Thresholds) {
    // At most one growth of the map for this layer's headers.
    h.reserve(charges.len() + 1);
    let mut level = AlertLevel::None;
    for (c, s) in charges.iter().zip(spent) {
        level = level.max(t.level(utilization_bp(*s, c.limit)));
        h.insert(header_for(c.key.kind), percent(*s, c.limit));
    }
    h.insert(ALERT_LEVEL_HEADER, HeaderValue::from_static(level.as_str()));
}

fn fire(cfg: &Config, charges: &[Charge], spent: &[u64], fired: &[Fired], t: &Thresholds) {
    for f in fired {
        let (Some(c), Some(s)) = (charges.get(f.index), spent.get(f.index)) else {
            continue;
        };
        let threshold = t.as_array()[f.level.index() - 1];
        let alert = BudgetAlert {
            scope: c.key.kind,
            scope_id: c.key.id.clone(),
            period: c.key.period.to_string(),
            level: f.level,
            threshold_percent: bp_percent(u64::from(threshold)),
            limit: c.limit,
            spent: *s,
            utilization_percent: bp_percent(utilization_bp(*s, c.limit)),
        };
        metrics::counter!("gw_budget_alerts_total", "scope" => c.key.kind.as_str(),
            "level" => f.level.as_str())
        .increment(1);
        for sink in &cfg.sinks {
            sink.send(&alert);
        }
        if let (AlertLevel::Critical, ScopeKind::Agent, Some(p), Some(id)) =
            (f.level, c.key.kind, &cfg.pauser, &c.key.id)
        {
            p.pause(id, &alert);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percent_has_two_decimals() {
        for (spent, limit, want) in [
            (0, 10, "0.00"),
            (1, 3, "33.33"),
            (79, 100, "79.00"),
            (1, 10_000, "0.01"),
            (10, 10, "100.00"),
            (35, 10, "350.00"),
            // Saturates at u64::MAX basis points.
            (u64::MAX, 1, "184467440737095516.15"),
        ] {
            assert_eq!(percent(spent, limit), want, "{spent}/{limit}");
        }
    }
}
