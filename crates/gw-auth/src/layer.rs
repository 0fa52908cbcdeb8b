//! [`AuthLayer`]: configuration, built once into the state its services share.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gw_core::{PatternError, RouteSet, SharedClock, SystemClock};
use tower_layer::Layer;

use crate::cache::{DEFAULT_CACHE_CAPACITY, TokenCache};
use crate::keys::KeyError;
use crate::service::{Auth, Shared};
use crate::source::{KeySource, StaticKeys};
use crate::verify::Verifier;

/// Paths that bypass authentication by default.
pub const DEFAULT_PUBLIC_PATHS: &[&str] = &[
    "/health",
    "/healthz",
    "/ready",
    "/metrics",
    "/docs/*",
    "/redoc/*",
    "/openapi.json",
];

/// Default largest token accepted: 8 KiB.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Default clock-skew leeway for `exp` and `nbf`: 30 s.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Authenticates `Authorization: Bearer <JWT>` requests; see the [crate docs](crate).
///
/// Holds configuration only. The verifier (with its token cache) is built on first use
/// and shared by every service made from this layer and its clones; changing the
/// configuration afterwards starts a fresh one.
#[derive(Clone)]
pub struct AuthLayer {
    sources: Vec<Arc<dyn KeySource>>,
    by_issuer: Option<HashMap<Box<str>, usize>>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    max_token_bytes: usize,
    cache_capacity: usize,
    public: Arc<RouteSet>,
    cors_preflight: bool,
    realm: Option<Arc<str>>,
    clock: SharedClock,
    built: Arc<OnceLock<Arc<Shared>>>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("sources", &self.sources)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("cache_capacity", &self.cache_capacity)
            .field("public", &self.public.routes().collect::<Vec<_>>())
            .field("cors_preflight", &self.cors_preflight)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    fn with_sources(
        sources: Vec<Arc<dyn KeySource>>,
        by_issuer: Option<HashMap<Box<str>, usize>>,
    ) -> Self {
        Self {
            sources,
            by_issuer,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            public: Arc::new(
                RouteSet::from_routes(DEFAULT_PUBLIC_PATHS).expect("default public paths parse"),
            ),
            cors_preflight: false,
            realm: None,
            clock: Arc::new(SystemClock),
            built: Arc::default(),
        }
    }

    /// Verifies with the keys of `source` (any issuer unless [`issuer`](Self::issuer)
    /// restricts it).
    pub fn new(source: impl KeySource) -> Self {
        Self::with_sources(vec![Arc::new(source)], None)
    }

    /// Verifies with one PEM public key (RSA, EC P-256/P-384 or Ed25519). The key has no
    /// `kid`, so it answers tokens with any `kid` (or none) whose `alg` it allows.
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        Ok(Self::new(StaticKeys::from_pem(None, pem)?))
    }

    /// Several issuers, each with its own keys (add them with
    /// [`issuer_keys`](Self::issuer_keys)). A token's unverified `iss` picks the key set
    /// in one lookup; a token from any other issuer is `invalid-token`.
    pub fn by_issuer() -> Self {
        Self::with_sources(Vec::new(), Some(HashMap::new()))
    }

    /// Adds issuer `iss` with its key source (after [`by_issuer`](Self::by_issuer)).
    pub fn issuer_keys(mut self, iss: impl Into<String>, source: impl KeySource) -> Self {
        let map = self.by_issuer.get_or_insert_with(HashMap::new);
        map.insert(iss.into().into_boxed_str(), self.sources.len());
        self.sources.push(Arc::new(source));
        self.rebuilt()
    }

    /// Accepts tokens from `iss` (repeatable). Without any, every issuer is accepted.
    /// Ignored with [`by_issuer`](Self::by_issuer), where the issuer map decides.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuers.push(iss.into());
        self.rebuilt()
    }

    /// Requires `aud` to contain `audience` (repeatable: any one of them suffices).
    /// Without any, `aud` is not checked.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self.rebuilt()
    }

    /// Clock-skew allowance for `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self.rebuilt()
    }

    /// Tokens longer than this are refused before decoding (default 8 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self.rebuilt()
    }

    /// Capacity of the verified-token cache (default 10 000; `0` disables it).
    pub fn cache_capacity(mut self, tokens: usize) -> Self {
        self.cache_capacity = tokens;
        self.rebuilt()
    }

    /// Replaces the public paths (default [`DEFAULT_PUBLIC_PATHS`]).
    pub fn public_paths(mut self, routes: RouteSet) -> Self {
        self.public = Arc::new(routes);
        self.rebuilt()
    }

    /// Replaces the public paths with `routes` (gw-core route syntax).
    pub fn public_routes<I, S>(self, routes: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(self.public_paths(RouteSet::from_routes(routes)?))
    }

    /// Lets CORS pre-flight requests (`OPTIONS` with `Access-Control-Request-Method`)
    /// through without a token (default off).
    pub fn allow_cors_preflight(mut self, allow: bool) -> Self {
        self.cors_preflight = allow;
        self.rebuilt()
    }

    /// Adds `realm="..."` to every `WWW-Authenticate` challenge.
    pub fn realm(mut self, realm: impl Into<Arc<str>>) -> Self {
        self.realm = Some(realm.into());
        self.rebuilt()
    }

    /// The clock `exp`, `nbf` and the cache are checked against (default system time).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self.rebuilt()
    }

    fn rebuilt(mut self) -> Self {
        self.built = Arc::default();
        self
    }

    /// The verifier shared by this layer's services (built on first use).
    pub fn verifier(&self) -> Arc<Verifier> {
        self.shared().verifier.clone()
    }

    /// The oldest key-set age over all key sources, for readiness checks; `None` while
    /// some source has never loaded keys.
    pub fn key_set_age(&self) -> Option<Duration> {
        self.shared().verifier.key_set_age()
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.built
            .get_or_init(|| {
                let verifier = Verifier {
                    seen: self.sources.iter().map(|_| AtomicU64::new(0)).collect(),
                    sources: self.sources.clone(),
                    by_issuer: self.by_issuer.clone(),
                    issuers: self.issuers.clone(),
                    audiences: self.audiences.clone(),
                    leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
                    max_token_bytes: self.max_token_bytes,
                    cache: (self.cache_capacity > 0).then(|| TokenCache::new(self.cache_capacity)),
                };
                Arc::new(Shared {
                    verifier: Arc::new(verifier),
                    public: self.public.clone(),
                    cors_preflight: self.cors_preflight,
                    realm: self.realm.clone(),
                    clock: self.clock.clone(),
                })
            })
            .clone()
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth::new(inner, self.shared())
    }
}
