//! The HTTP client a [`JwksSource`](super::JwksSource) fetches with.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

/// A JWKS fetch that failed; the last good key set keeps serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError(pub String);

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JWKS fetch failed: {}", self.0)
    }
}

impl std::error::Error for FetchError {}

/// Fetches a document by `GET`. Implement it to use another client (TLS, proxies,
/// retries) or to fake one in tests.
pub trait HttpClient: Send + Sync + fmt::Debug + 'static {
    /// `GET uri`: the body of a 2xx response, anything else is an error.
    fn get(&self, uri: &Uri) -> BoxFuture<'static, Result<Bytes, FetchError>>;
}

/// The default [`HttpClient`]: hyper-util's pooled legacy client with a timeout and a
/// body size limit. Plain `http` with the default connector; pass an HTTPS connector
/// (such as hyper-rustls) to [`HyperClient::with_connector`] for `https` URLs.
#[derive(Clone)]
pub struct HyperClient<C = HttpConnector> {
    client: Client<C, Empty<Bytes>>,
    timeout: Duration,
    max_body: usize,
}

impl<C> fmt::Debug for HyperClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperClient")
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl Default for HyperClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HyperClient {
    /// A plain-HTTP client: 5 s timeout, 1 MiB body limit.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Self::with_connector(connector)
    }
}

impl<C> HyperClient<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    /// A client over `connector`.
    pub fn with_connector(connector: C) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: Duration::from_secs(5),
            max_body: 1 << 20,
        }
    }

    /// Sets the whole-request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest body accepted.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

impl<C> HttpClient for HyperClient<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    fn get(&self, uri: &Uri) -> BoxFuture<'static, Result<Bytes, FetchError>> {
        let client = self.client.clone();
        let (timeout, max_body) = (self.timeout, self.max_body);
        let uri = uri.clone();
        Box::pin(async move {
            let fetch = async {
                let res = client
                    .get(uri)
                    .await
                    .map_err(|e| FetchError(e.to_string()))?;
                if !res.status().is_success() {
                    return Err(FetchError(format!("status {}", res.status())));
                }
                Limited::new(res.into_body(), max_body)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .map_err(|e| FetchError(e.to_string()))
            };
            tokio::time::timeout(timeout, fetch)
                .await
                .map_err(|_| FetchError("timed out".into()))?
        })
    }
}
