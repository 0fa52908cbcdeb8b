//! The client side: [`Signer`] credentials, [`SigningLayer`] for outgoing requests, and
//! [`ServiceClient::from_env`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use gw_core::{Clock, SharedClock, SystemClock};
use http::{HeaderValue, Request, request::Parts};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower_layer::Layer;
use tower_service::Service;

use crate::keyfile::parse_key_file;
use crate::keys::Secret;
use crate::wire::{
    self, CONTENT_DIGEST, CanonicalRequest, HmacSha256, InvalidField, MAX_SIGNATURES, SERVICE_ID,
    SERVICE_KEY_ID, SERVICE_NONCE, SERVICE_SIGNATURE, SERVICE_TIMESTAMP, hmac_for, valid_id,
};

/// Boxed error of the signing service.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A service's signing credentials: its id and one key, or several during rotation.
#[derive(Clone)]
pub struct Signer {
    service_id: Arc<str>,
    keys: Vec<(Arc<str>, HmacSha256)>,
    clock: SharedClock,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("service_id", &self.service_id)
            .field(
                "key_ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Signs as `service_id` with key `key_id`.
    pub fn new(
        service_id: &str,
        key_id: &str,
        secret: impl Into<Secret>,
    ) -> Result<Self, InvalidField> {
        if !valid_id(service_id) {
            return Err(InvalidField("service id"));
        }
        Self {
            service_id: service_id.into(),
            keys: Vec::new(),
            clock: Arc::new(SystemClock),
        }
        .also_sign_with(key_id, secret)
    }

    /// Adds a second (third, fourth) key: each request then carries one signature per key,
    /// so it verifies on servers that know either the old or the new key.
    pub fn also_sign_with(
        mut self,
        key_id: &str,
        secret: impl Into<Secret>,
    ) -> Result<Self, InvalidField> {
        if !valid_id(key_id) || self.keys.iter().any(|(id, _)| &**id == key_id) {
            return Err(InvalidField("key id"));
        }
        if self.keys.len() == MAX_SIGNATURES {
            return Err(InvalidField("key count"));
        }
        self.keys
            .push((key_id.into(), hmac_for(secret.into().expose())));
        Ok(self)
    }

    /// Uses `clock` for `X-Service-Timestamp`.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The service id.
    pub fn service_id(&self) -> &str {
        &self.service_id
    }

    /// Sets the signing headers on `parts` for `body`, with the current time and a fresh
    /// nonce. Existing signing headers are replaced.
    pub fn sign(&self, parts: &mut Parts, body: &[u8]) -> Result<(), InvalidField> {
        let ts = self.clock.unix_seconds().to_string();
        self.sign_with(parts, body, &ts, &wire::new_nonce())
    }

    /// Like [`sign`](Self::sign) with a given timestamp and nonce (test vectors).
    pub fn sign_with(
        &self,
        parts: &mut Parts,
        body: &[u8],
        timestamp: &str,
        nonce: &str,
    ) -> Result<(), InvalidField> {
        let digest = wire::content_digest(body);
        let key_ids = wire::join_spaced(self.keys.iter().map(|(id, _)| &**id));
        let canonical = CanonicalRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            timestamp,
            nonce,
            service_id: &self.service_id,
            key_ids: &key_ids,
            content_digest: &digest,
        };
        canonical.validate()?;
        let canonical = canonical.to_canonical_string();
        let signatures = wire::join_spaced(
            self.keys
                .iter()
                .map(|(_, mac)| wire::sign(mac, &canonical))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        );
        let h = &mut parts.headers;
        let value = |s: &str| HeaderValue::from_str(s).map_err(|_| InvalidField("header"));
        h.insert(SERVICE_ID, value(&self.service_id)?);
        h.insert(SERVICE_KEY_ID, value(&key_ids)?);
        h.insert(SERVICE_TIMESTAMP, value(timestamp)?);
        h.insert(SERVICE_NONCE, value(nonce)?);
        h.insert(CONTENT_DIGEST, value(&digest)?);
        h.insert(SERVICE_SIGNATURE, value(&signatures)?);
        Ok(())
    }
}

/// Signs every outgoing request: buffers the body, sets `Content-Digest` and the
/// `X-Service-*` headers, and hands a `Request<Full<Bytes>>` to the client service (for
/// example hyper-util's legacy `Client`).
#[derive(Debug, Clone)]
pub struct SigningLayer {
    signer: Arc<Signer>,
}

impl SigningLayer {
    /// A layer signing with `signer`.
    pub fn new(signer: Signer) -> Self {
        Self {
            signer: Arc::new(signer),
        }
    }
}

impl<S> Layer<S> for SigningLayer {
    type Service = Signing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Signing {
            inner,
            signer: self.signer.clone(),
        }
    }
}

/// The service built by [`SigningLayer`].
#[derive(Debug, Clone)]
pub struct Signing<S> {
    inner: S,
    signer: Arc<Signer>,
}

impl<S, B> Service<Request<B>> for Signing<S>
where
    S: Service<Request<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let signer = self.signer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let bytes = body.collect().await.map_err(Into::into)?.to_bytes();
            signer.sign(&mut parts, &bytes)?;
            inner
                .call(Request::from_parts(parts, Full::new(bytes)))
                .await
                .map_err(Into::into)
        })
    }
}

/// A calling service's identity and keys, as the seed's `create_service_client_from_env`.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    signer: Signer,
}

/// `SERVICE_ID` / `SERVICE_KEY_FILE` missing or unusable.
#[derive(Debug)]
pub struct ClientConfigError(pub String);

impl fmt::Display for ClientConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service client configuration: {}", self.0)
    }
}

impl std::error::Error for ClientConfigError {}

impl ServiceClient {
    /// Reads `SERVICE_ID` and the key file named by `SERVICE_KEY_FILE`.
    pub fn from_env() -> Result<Self, ClientConfigError> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| ClientConfigError(format!("{name} is not set")))
        };
        Self::from_key_file(&var("SERVICE_ID")?, Path::new(&var("SERVICE_KEY_FILE")?))
    }

    /// Reads the key file at `path` for `service_id`; signs with every active, unexpired key
    /// in it (normally just `SERVICE_KEY`).
    pub fn from_key_file(service_id: &str, path: &Path) -> Result<Self, ClientConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientConfigError(format!("cannot read {}: {e}", path.display())))?;
        let ring =
            parse_key_file(service_id, &text).map_err(|e| ClientConfigError(e.to_string()))?;
        let now = SystemClock.now();
        let mut signer: Option<Signer> = None;
        for key in ring.signing_keys(now) {
            let secret = key.secret().clone();
            signer = Some(
                match signer {
                    None => Signer::new(service_id, key.key_id(), secret),
                    Some(s) => s.also_sign_with(key.key_id(), secret),
                }
                .map_err(|e| ClientConfigError(e.to_string()))?,
            );
        }
        let signer = signer
            .ok_or_else(|| ClientConfigError("no active, unexpired key in the key file".into()))?;
        Ok(Self { signer })
    }

    /// Wraps existing credentials.
    pub fn new(signer: Signer) -> Self {
        Self { signer }
    }

    /// The credentials.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The layer to put in front of an HTTP client service.
    pub fn layer(&self) -> SigningLayer {
        SigningLayer::new(self.signer.clone())
    }
}
