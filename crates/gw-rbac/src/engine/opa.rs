//! The OPA engine: OPA's REST Data API, `POST /v1/data/<path>` with `{"input": ...}`.

use std::time::Duration;

use bytes::Bytes;
use gw_core::BackendError;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{Authorization, Authorizer, AuthzDecision, AuthzInput, DecisionDoc};
use crate::policy::PolicyError;

/// Default time an OPA query may take: 2 s.
pub const DEFAULT_OPA_TIMEOUT: Duration = Duration::from_secs(2);

/// Default decision path: `rbac_pp/decision` (the shipped Rego's `decision` rule).
pub const DEFAULT_OPA_PATH: &str = "rbac_pp/decision";

/// Asks an OPA server (plain HTTP, e.g. a sidecar on localhost) for each decision.
///
/// Deploy [`BUILTIN_POLICY_REGO`](crate::BUILTIN_POLICY_REGO) and
/// [`Policy::to_data_json`](crate::Policy::to_data_json) to the server. Needs a Tokio
/// runtime. Connection errors and 5xx answers are `unavailable`, the timeout is `timeout`
/// (both subject to the layer's fail mode); anything else unusable is `invalid`.
#[derive(Debug, Clone)]
pub struct OpaAuthorizer {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    timeout: Duration,
}

impl OpaAuthorizer {
    /// A client for the OPA server at `base_url` (`http://127.0.0.1:8181`), querying
    /// [`DEFAULT_OPA_PATH`] with a [`DEFAULT_OPA_TIMEOUT`].
    pub fn new(base_url: &str) -> Result<Self, PolicyError> {
        Self::with_path(base_url, DEFAULT_OPA_PATH)
    }

    /// Like [`OpaAuthorizer::new`], for the decision at `path` (`rbac_pp/decision`).
    pub fn with_path(base_url: &str, path: &str) -> Result<Self, PolicyError> {
        let uri: Uri = format!(
            "{}/v1/data/{}",
            base_url.trim_end_matches('/'),
            path.trim_matches('/')
        )
        .parse()
        .map_err(|e| PolicyError::new(format!("OPA url: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(PolicyError::new("OPA url must be http://host:port"));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            client,
            uri,
            timeout: DEFAULT_OPA_TIMEOUT,
        })
    }

    /// Sets how long a query may take (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The full query URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
}

async fn query(
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    body: Bytes,
) -> Result<AuthzDecision, BackendError> {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| BackendError::invalid("opa", e))?;
    let res = client
        .request(req)
        .await
        .map_err(|e| BackendError::unavailable("opa", e))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| BackendError::unavailable("opa", e))?
        .to_bytes();
    if status.is_server_error() {
        return Err(BackendError::unavailable("opa", format!("status {status}")));
    }
    if status != StatusCode::OK {
        return Err(BackendError::invalid("opa", format!("status {status}")));
    }
    let mut doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| BackendError::invalid("opa", e))?;
    let result = doc
        .get_mut("result")
        .map(serde_json::Value::take)
        .ok_or_else(|| BackendError::invalid("opa", "decision is undefined (no result)"))?;
    DecisionDoc::parse(result, "opa")
}

impl Authorizer for OpaAuthorizer {
    fn name(&self) -> &'static str {
        "opa"
    }

    fn authorize(&self, input: &AuthzInput<'_>) -> Authorization {
        let body = serde_json::json!({ "input": input.to_json() });
        let body = Bytes::from(serde_json::to_vec(&body).expect("json serializes"));
        let fut = query(self.client.clone(), self.uri.clone(), body);
        let timeout = self.timeout;
        Authorization::pending(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(BackendError::timeout(
                    "opa",
                    format!("no answer within {timeout:?}"),
                )),
            }
        })
    }
}
