//! Where the agent id of a request comes from.

use std::fmt::Debug;
use std::sync::Arc;

use gw_core::{PatternError, Principal, RouteSet};
use http::{Extensions, HeaderMap, HeaderName, Method};

/// What extractors and cost models see of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The method.
    pub method: &'a Method,
    /// The normalized path.
    pub path: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request extensions (`Principal`, ...).
    pub extensions: &'a Extensions,
}

/// Finds the agent a request spends for; `None` means only the platform (and customer)
/// budgets apply.
pub trait AgentIdExtractor: Send + Sync + Debug + 'static {
    /// The agent id of the request, if it names one.
    fn agent_id(&self, req: &RequestInfo<'_>) -> Option<Arc<str>>;
}

/// No agent scope at all (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAgent;

impl AgentIdExtractor for NoAgent {
    fn agent_id(&self, _: &RequestInfo<'_>) -> Option<Arc<str>> {
        None
    }
}

/// The agent id is a path parameter, e.g. `agent_id` in `/api/v1/agents/{agent_id}/*`.
///
/// The id is not bound to the caller: bind it in an outer layer, or use [`ClaimAgentId`]
/// (see the [crate docs](crate)).
#[derive(Debug, Clone)]
pub struct PathParam {
    routes: RouteSet,
    param: Arc<str>,
}

impl PathParam {
    /// Takes parameter `param` from the most specific of `routes` that matches.
    pub fn new<I, S>(routes: I, param: &str) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self {
            routes: RouteSet::from_routes(routes)?,
            param: param.into(),
        })
    }
}

impl AgentIdExtractor for PathParam {
    fn agent_id(&self, req: &RequestInfo<'_>) -> Option<Arc<str>> {
        self.routes
            .find(req.method, req.path)?
            .param(&self.param)
            .map(Arc::from)
    }
}

/// The agent id is a request header, e.g. `X-Agent-ID`.
///
/// Only use this behind a layer that sets or verifies the header: a client choosing its
/// own agent id chooses its own agent budget.
#[derive(Debug, Clone)]
pub struct HeaderAgentId(HeaderName);

impl HeaderAgentId {
    /// Reads header `name`.
    pub const fn new(name: HeaderName) -> Self {
        Self(name)
    }
}

impl AgentIdExtractor for HeaderAgentId {
    fn agent_id(&self, req: &RequestInfo<'_>) -> Option<Arc<str>> {
        let v = req.headers.get(&self.0)?.to_str().ok()?.trim();
        (!v.is_empty()).then(|| Arc::from(v))
    }
}

/// The agent id is the `governor_agent_id` claim of the authenticated [`Principal`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimAgentId;

impl AgentIdExtractor for ClaimAgentId {
    fn agent_id(&self, req: &RequestInfo<'_>) -> Option<Arc<str>> {
        let p = req.extensions.get::<Principal>()?;
        p.governor_agent_id.as_deref().map(Arc::from)
    }
}

/// The first id any of several extractors finds, tried in order.
#[derive(Debug, Clone)]
pub struct FirstOf(Arc<[Arc<dyn AgentIdExtractor>]>);

impl FirstOf {
    /// Tries `extractors` in order.
    pub fn new(extractors: impl IntoIterator<Item = Arc<dyn AgentIdExtractor>>) -> Self {
        Self(extractors.into_iter().collect())
    }
}

impl AgentIdExtractor for FirstOf {
    fn agent_id(&self, req: &RequestInfo<'_>) -> Option<Arc<str>> {
        self.0.iter().find_map(|e| e.agent_id(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gw_core::PrincipalData;

    fn info<'a>(path: &'a str, headers: &'a HeaderMap, ext: &'a Extensions) -> RequestInfo<'a> {
        RequestInfo {
            method: &Method::POST,
            path,
            headers,
            extensions: ext,
        }
    }

    #[test]
    fn extractors() {
        let mut headers = HeaderMap::new();
        headers.insert("x-agent-id", "h1".parse().unwrap());
        let mut ext = Extensions::new();
        ext.insert(Principal::from(PrincipalData {
            sub: "u".into(),
            user_id: "u".into(),
            email: "u@x".into(),
            customer_id: "c".into(),
            roles: Arc::from(Vec::<String>::new()),
            governor_agent_id: Some("g1".into()),
            trial: None,
        }));
        let path = PathParam::new(["/api/v1/agents/{agent_id}/*"], "agent_id").unwrap();
        let r = info("/api/v1/agents/a7/run", &headers, &ext);
        assert_eq!(path.agent_id(&r).as_deref(), Some("a7"));
        assert_eq!(
            path.agent_id(&info("/api/v1/agentsX/a7", &headers, &ext)),
            None
        );
        assert_eq!(
            HeaderAgentId::new(HeaderName::from_static("x-agent-id"))
                .agent_id(&r)
                .as_deref(),
            Some("h1")
        );
        assert_eq!(ClaimAgentId.agent_id(&r).as_deref(), Some("g1"));
        let chain = FirstOf::new([
            Arc::new(path) as Arc<dyn AgentIdExtractor>,
            Arc::new(ClaimAgentId),
        ]);
        assert_eq!(
            chain.agent_id(&info("/other", &headers, &ext)).as_deref(),
            Some("g1")
        );
        assert_eq!(NoAgent.agent_id(&r), None);
    }
}
