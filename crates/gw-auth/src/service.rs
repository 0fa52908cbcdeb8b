//! [`Auth`]: the service the [`AuthLayer`](crate::AuthLayer) wraps around `inner`.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use gw_core::{
    Decision, Decisions, Outcome, PathError, RouteSet, SharedClock, Stopwatch, normalize_path,
};
use gw_problem::Problem;
use http::header::{ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request, Response};
use tower_service::Service;

use crate::cache::Verified;
use crate::error::AuthError;
use crate::future::ResponseFuture;
use crate::verify::{Attempt, Verifier};

/// Authenticates each request before handing it to `inner`; see [`AuthLayer`](crate::AuthLayer).
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// State shared by every service of one layer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) public: Arc<RouteSet>,
    pub(crate) cors_preflight: bool,
    pub(crate) realm: Option<Arc<str>>,
    pub(crate) clock: SharedClock,
}

/// What to do with a request.
pub(crate) enum Step {
    /// Public path or pre-flight: pass through untouched.
    Bypass,
    /// Authenticated.
    Pass(Arc<Verified>),
    /// Answer with this refusal.
    Reject(Rejection),
    /// Unknown `kid`: wait for the refetch, then decide.
    Refetch(futures_util::future::BoxFuture<'static, ()>),
}

impl<S> Auth<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl Shared {
    pub(crate) fn step<B>(&self, req: &Request<B>) -> Step {
        if self.cors_preflight
            && req.method() == Method::OPTIONS
            && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        {
            return Step::Bypass;
        }
        match normalize_path(req.uri().path()) {
            Err(e) => return Step::Reject(Rejection::Path(e)),
            Ok(path) if self.public.matches(req.method(), &path) => return Step::Bypass,
            Ok(_) => {}
        }
        let raw = match bearer_raw(req.headers()) {
            Ok(t) => t,
            Err(e) => return Step::Reject(self.rejected(e)),
        };
        let now = self.clock.unix_seconds();
        // A hit is a byte-exact repeat of a token that passed every check before.
        if let Some(hit) = self.verifier.cached(raw, now) {
            return Step::Pass(hit);
        }
        if self.verifier.too_large(raw) {
            return Step::Reject(self.rejected(AuthError::invalid("token-too-large")));
        }
        let token = match token_format(raw) {
            Ok(t) => t,
            Err(e) => return Step::Reject(self.rejected(e)),
        };
        match self.verifier.attempt_uncached(token, now) {
            Attempt::Done(Ok(v)) => Step::Pass(v),
            Attempt::Done(Err(e)) => Step::Reject(self.rejected(e)),
            Attempt::UnknownKid(source) => match self.verifier.refetch(source) {
                Some(wait) => Step::Refetch(wait),
                // No refetch allowed now; one that just ended may have brought the key.
                None => match self.verifier.after_refetch(token, now) {
                    Ok(v) => Step::Pass(v),
                    Err(e) => Step::Reject(self.rejected(e)),
                },
            },
        }
    }

    /// The decision after a refetch: verify once more, an unknown `kid` is final.
    pub(crate) fn step_after_refetch<B>(
        &self,
        req: &Request<B>,
    ) -> Result<Arc<Verified>, Rejection> {
        let token = bearer(req.headers()).map_err(|e| self.rejected(e))?;
        self.verifier
            .after_refetch(token, self.clock.unix_seconds())
            .map_err(|e| self.rejected(e))
    }

    fn rejected(&self, e: AuthError) -> Rejection {
        tracing::debug!(
            code = e.code(),
            reason = e.reason(),
            "gw-auth: request rejected"
        );
        metrics::counter!("gw_auth_requests_total", "outcome" => "rejected", "reason" => e.reason())
            .increment(1);
        Rejection::Auth(e, self.realm.clone())
    }
}

/// A refusal: an authentication failure (with the realm for its challenge), or a path
/// too ambiguous to match.
pub(crate) enum Rejection {
    Auth(AuthError, Option<Arc<str>>),
    Path(PathError),
}

impl Rejection {
    /// The finer reason (`bad-signature`, `ambiguous-path`, ...).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Auth(e, _) => e.reason(),
            Self::Path(_) => "ambiguous-path",
        }
    }

    /// The response; authentication failures carry their `WWW-Authenticate` challenge.
    pub(crate) fn respond<ReqB, ResB: From<Bytes>>(self, req: &Request<ReqB>) -> Response<ResB> {
        match self {
            Self::Path(e) => Problem::from(e).response_for(req),
            Self::Auth(e, realm) => {
                let mut res = e.problem().response_for(req);
                res.headers_mut()
                    .insert(WWW_AUTHENTICATE, e.www_authenticate(realm.as_deref()));
                res
            }
        }
    }
}

/// Appends the layer's decision to the request's decision log, if it has one.
pub(crate) fn record<B>(
    req: &Request<B>,
    outcome: Outcome,
    reason: &'static str,
    started: Stopwatch,
) {
    Decisions::record(
        req.extensions(),
        Decision::new("auth", "jwt", outcome, started.elapsed()).reason(reason),
    );
}

/// Puts the claims and the principal into the request.
pub(crate) fn authenticate<B>(req: &mut Request<B>, v: &Verified) {
    gw_core::hot_counter!("gw_auth_requests_total", "outcome" => "authenticated", "reason" => "ok")
        .increment(1);
    let ext = req.extensions_mut();
    ext.insert(v.claims.clone());
    ext.insert(v.principal.clone());
}

const fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// The raw token bytes of exactly one `Authorization: Bearer <token>` header; the token
/// itself is checked by [`token_format`].
pub(crate) fn bearer_raw(headers: &HeaderMap) -> Result<&[u8], AuthError> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let value = all.next().ok_or(AuthError::missing())?;
    if all.next().is_some() {
        return Err(AuthError::format("duplicate-header"));
    }
    let value = value.as_bytes().trim_ascii();
    let (scheme, token) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::format("not-bearer"));
    }
    let token = token.trim_ascii_start();
    if token.is_empty() {
        return Err(AuthError::format("empty-token"));
    }
    Ok(token)
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn token_format(token: &[u8]) -> Result<&str, AuthError> {
    let body = token
        .iter()
        .position(|&b| !is_b64token_char(b))
        .unwrap_or(token.len());
    let rest = &token[body..];
    let padding = rest.iter().take_while(|&&b| b == b'=').count();
    let trailing = &rest[padding..];
    if trailing.iter().any(|&b| b == b' ' || b == b'\t') {
        return Err(AuthError::format("extra-parts"));
    }
    if trailing.iter().any(|&b| !(0x20..0x7f).contains(&b)) {
        return Err(AuthError::format("not-ascii"));
    }
    if body == 0 || !trailing.is_empty() {
        return Err(AuthError::format("bad-characters"));
    }
    // Every byte is ASCII here.
    std::str::from_utf8(token).map_err(|_| AuthError::format("not-ascii"))
}

/// The checked token of exactly one `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    token_format(bearer_raw(headers)?)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Timed only when someone (an audit layer) keeps a decision log.
        let started = req
            .extensions()
            .get::<Decisions>()
            .is_some()
            .then(Stopwatch::start);
        let step = self.shared.step(&req);
        if let Some(started) = started {
            let (outcome, reason) = match &step {
                Step::Bypass => (Outcome::Skip, "public-path"),
                Step::Pass(_) => (Outcome::Allow, "verified"),
                Step::Reject(r) => (Outcome::Deny, r.reason()),
                Step::Refetch(_) => (Outcome::Skip, "refetching-keys"),
            };
            record(&req, outcome, reason, started);
        }
        // Called now, the inner service needs no clone; only a key refetch calls it later,
        // taking the readied service and leaving a clone in its place.
        match step {
            Step::Bypass => ResponseFuture::inner(self.inner.call(req)),
            Step::Pass(v) => {
                authenticate(&mut req, &v);
                ResponseFuture::inner(self.inner.call(req))
            }
            Step::Reject(r) => ResponseFuture::reject(r.respond(&req)),
            Step::Refetch(wait) => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::refetch(wait, inner, req, self.shared.clone())
            }
        }
    }
}
