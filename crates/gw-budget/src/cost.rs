//! What a request costs: estimated before the handler, actual after it.

use std::fmt::Debug;
use std::sync::Arc;

use gw_core::RouteSet;
use http::{HeaderMap, HeaderName};

use crate::extract::RequestInfo;

/// $0.001, the reference system's flat price per request, in micro-USD.
pub const DEFAULT_COST: u64 = 1_000;

/// Prices requests in micro-USD.
pub trait CostModel: Send + Sync + Debug + 'static {
    /// The amount to reserve before the handler runs.
    fn estimate(&self, req: &RequestInfo<'_>) -> u64;

    /// The actual cost, known once the response head is there; by default the estimate.
    fn actual(&self, estimate: u64, _response: &HeaderMap) -> u64 {
        estimate
    }
}

/// The same price for every request (default: [`DEFAULT_COST`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlatCost(pub u64);

impl Default for FlatCost {
    fn default() -> Self {
        Self(DEFAULT_COST)
    }
}

impl CostModel for FlatCost {
    fn estimate(&self, _: &RequestInfo<'_>) -> u64 {
        self.0
    }
}

/// A price per route (the most specific matching route wins), and a default.
#[derive(Debug, Clone)]
pub struct RouteCost {
    table: RouteSet<u64>,
    default: u64,
}

impl RouteCost {
    /// Prices from `table`; requests matching no route cost `default`.
    pub const fn new(table: RouteSet<u64>, default: u64) -> Self {
        Self { table, default }
    }
}

impl CostModel for RouteCost {
    fn estimate(&self, req: &RequestInfo<'_>) -> u64 {
        self.table
            .find(req.method, req.path)
            .map_or(self.default, |m| *m.value)
    }
}

/// The upstream reports the actual cost in a response header (integer micro-USD); the
/// reservation uses an estimate from another model. A missing or unreadable header settles
/// at the estimate.
#[derive(Debug, Clone)]
pub struct UpstreamReportedCost {
    header: HeaderName,
    estimate: Arc<dyn CostModel>,
}

/// Default header for [`UpstreamReportedCost`]: `x-upstream-cost-micro-usd`.
pub const UPSTREAM_COST_HEADER: HeaderName = HeaderName::from_static("x-upstream-cost-micro-usd");

impl UpstreamReportedCost {
    /// Reads header `header`; reserves what `estimate` says.
    pub fn new(header: HeaderName, estimate: impl CostModel) -> Self {
        Self {
            header,
            estimate: Arc::new(estimate),
        }
    }

    /// Reads [`UPSTREAM_COST_HEADER`]; reserves the flat default.
    pub fn with_default_header() -> Self {
        Self::new(UPSTREAM_COST_HEADER, FlatCost::default())
    }
}

impl CostModel for UpstreamReportedCost {
    fn estimate(&self, req: &RequestInfo<'_>) -> u64 {
        self.estimate.estimate(req)
    }

    fn actual(&self, estimate: u64, response: &HeaderMap) -> u64 {
        response
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(estimate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Extensions, Method};

    #[test]
    fn models() {
        let (h, e) = (HeaderMap::new(), Extensions::new());
        let req = RequestInfo {
            method: &Method::POST,
            path: "/api/v1/llm/chat",
            headers: &h,
            extensions: &e,
        };
        assert_eq!(FlatCost::default().estimate(&req), 1_000);
        let table = RouteSet::new().route("POST /api/v1/llm/*", 50_000).unwrap();
        assert_eq!(RouteCost::new(table.clone(), 7).estimate(&req), 50_000);
        let get = RequestInfo {
            method: &Method::GET,
            ..req
        };
        assert_eq!(RouteCost::new(table, 7).estimate(&get), 7);

        let up = UpstreamReportedCost::with_default_header();
        let mut res = HeaderMap::new();
        assert_eq!(up.actual(1_000, &res), 1_000);
        res.insert(UPSTREAM_COST_HEADER, "2500".parse().unwrap());
        assert_eq!(up.actual(1_000, &res), 2_500);
        res.insert(UPSTREAM_COST_HEADER, "-3".parse().unwrap());
        assert_eq!(up.actual(1_000, &res), 1_000);
    }
}
