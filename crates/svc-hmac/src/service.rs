//! [`ServiceAuth`]: the verifying service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gw_core::{Decision, Decisions, FailMode, Outcome, ServiceIdentity, Stopwatch, normalize_path};
use gw_problem::Problem;
use http::{Request, Response, header::CONTENT_LENGTH, request::Parts};
use http_body::Body;
use tower_service::Service;

use crate::body::{Read, VerifiedBody, read_capped};
use crate::config::Mode;
use crate::future::ResponseFuture;
use crate::layer::Shared;
use crate::verify::{self, Failure, Rejection};

/// Counter of verification outcomes, labelled `mode` and `outcome` (`ok`, `fail_open` or a
/// rejection code).
pub const REQUESTS_COUNTER: &str = "svc_hmac_requests_total";

/// The service built by [`ServiceAuthLayer`](crate::ServiceAuthLayer).
#[derive(Clone)]
pub struct ServiceAuth<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for ServiceAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ServiceAuth<S>
where
    S: Service<Request<VerifiedBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let mode = match normalize_path(req.uri().path()) {
            Ok(path) => self.shared.mode_for(req.method(), &path),
            Err(e) => return ResponseFuture::ready(Ok(Problem::from(e).response_for(&req))),
        };
        if mode == Mode::Off {
            return ResponseFuture::inner(self.inner.call(req.map(VerifiedBody::passthrough)));
        }
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::verifying(Box::pin(verify_and_call(
            self.shared.clone(),
            mode,
            inner,
            req,
        )))
    }
}

async fn verify_and_call<S, B, R>(
    shared: Arc<Shared>,
    mode: Mode,
    mut inner: S,
    req: Request<B>,
) -> Result<Response<R>, S::Error>
where
    S: Service<Request<VerifiedBody<B>>, Response = Response<R>>,
    B: Body,
    R: From<Bytes>,
{
    let (mut parts, body) = req.into_parts();
    // Latency is only recorded when someone keeps decisions (an audit layer).
    let started = parts
        .extensions
        .get::<Decisions>()
        .map(|_| Stopwatch::start());
    let (result, body) = authenticate(&shared, &parts, body).await;
    let latency = started.map_or(Duration::ZERO, |s| s.elapsed());
    match result {
        Ok((identity, fail_open)) => {
            let outcome = if fail_open {
                Outcome::FailOpen
            } else {
                Outcome::Allow
            };
            // The passing outcomes have literal labels: hot counters, no registry lookup.
            match (mode, fail_open) {
                (Mode::Enforce, false) => {
                    gw_core::hot_counter!(REQUESTS_COUNTER, "mode" => "enforce", "outcome" => "ok")
                        .increment(1)
                }
                (_, false) => {
                    gw_core::hot_counter!(REQUESTS_COUNTER, "mode" => "log_only", "outcome" => "ok")
                        .increment(1)
                }
                (_, true) => metrics::counter!(REQUESTS_COUNTER, "mode" => mode.as_str(), "outcome" => "fail_open")
                    .increment(1),
            }
            tracing::debug!(service = %identity.service_id, key_id = %identity.key_id, mode = mode.as_str(), "svc-hmac: service authenticated");
            Decisions::record(
                &parts.extensions,
                Decision::new("svc-hmac", "service_auth", outcome, latency),
            );
            parts.extensions.insert(identity);
            inner.call(Request::from_parts(parts, body)).await
        }
        Err((rejection, detail)) => {
            let code = rejection.code();
            metrics::counter!(REQUESTS_COUNTER, "mode" => mode.as_str(), "outcome" => code)
                .increment(1);
            let claimed = parts
                .headers
                .get(crate::wire::SERVICE_ID)
                .and_then(|v| v.to_str().ok());
            tracing::warn!(
                code,
                mode = mode.as_str(),
                path = parts.uri.path(),
                claimed_service = claimed,
                "svc-hmac: service auth failed"
            );
            let unavailable = matches!(
                rejection,
                Rejection::KeyStoreUnavailable | Rejection::NonceStoreUnavailable
            );
            // A body whose stream failed part way was consumed: the handler cannot be given
            // the request as sent, so it is answered 400 in every mode that read it.
            let answer = mode == Mode::Enforce || rejection == Rejection::BodyUnreadable;
            let outcome = match (answer, unavailable) {
                (true, true) => Outcome::FailClosed,
                (true, false) => Outcome::Deny,
                (false, _) => Outcome::ShadowDeny,
            };
            Decisions::record(
                &parts.extensions,
                Decision::new("svc-hmac", "service_auth", outcome, latency).reason(code),
            );
            if answer {
                let req = Request::from_parts(parts, ());
                Ok(rejection.problem(detail).response_for(&req))
            } else {
                inner.call(Request::from_parts(parts, body)).await
            }
        }
    }
}

type Authenticated = Result<(ServiceIdentity, bool), Failure>;

/// Runs every check; returns the outcome and the body in whatever state it was left.
async fn authenticate<B: Body>(
    shared: &Shared,
    parts: &Parts,
    body: B,
) -> (Authenticated, VerifiedBody<B>) {
    let passthrough = VerifiedBody::passthrough;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > shared.max_body as u64) {
        let failure = (
            Rejection::PayloadTooLarge,
            "the request body exceeds the size limit",
        );
        return (Err(failure), passthrough(body));
    }
    let signed = match verify::extract(parts) {
        Ok(s) => s,
        Err(f) => return (Err(f), passthrough(body)),
    };
    let now = shared.clock.now();
    let now_secs = gw_core::clock::unix_seconds(now);
    if let Err(f) = verify::check_fresh(signed.timestamp, now_secs, shared.window) {
        return (Err(f), passthrough(body));
    }
    let service_id = signed.canonical.service_id;
    let looked_up = match shared.keys.ring_now(service_id) {
        Some(now) => now,
        None => shared.keys.ring(service_id).await,
    };
    let ring = match looked_up {
        Ok(Some(ring)) => ring,
        Ok(None) => {
            let f = (
                Rejection::UnknownService,
                "the calling service is not known",
            );
            return (Err(f), passthrough(body));
        }
        Err(error) => {
            tracing::error!(%error, "svc-hmac: key store failed");
            let f = (
                Rejection::KeyStoreUnavailable,
                "service keys are unavailable",
            );
            return (Err(f), passthrough(body));
        }
    };
    let canonical = signed.canonical.to_canonical_string();
    let key_id = match verify::check_mac(&ring, &signed, &canonical, now) {
        Ok(k) => k,
        Err(f) => return (Err(f), passthrough(body)),
    };
    let (bytes, hash) = match read_capped(body, shared.max_body).await {
        Read::Done { bytes, hash } => (bytes, hash),
        Read::TooLarge { head, rest } => {
            let f = (
                Rejection::PayloadTooLarge,
                "the request body exceeds the size limit",
            );
            return (Err(f), VerifiedBody::partial(head, rest));
        }
        Read::Failed => {
            let f = (
                Rejection::BodyUnreadable,
                "the request body could not be read",
            );
            return (Err(f), VerifiedBody::buffered(Bytes::new()));
        }
    };
    let body = VerifiedBody::buffered(bytes);
    if signed.digest != hash {
        let f = (
            Rejection::DigestMismatch,
            "the body does not match Content-Digest",
        );
        return (Err(f), body);
    }
    // Replayable until the timestamp leaves the window: ts + window - now (+1 s margin).
    let ttl_secs = (signed.timestamp + shared.window - now_secs + 1).max(1);
    let ttl = Duration::from_secs(ttl_secs.unsigned_abs());
    let mut fail_open = false;
    let (id, nonce) = (ring.service_id(), signed.canonical.nonce);
    let recorded = match shared.nonces.check_and_record_now(id, nonce, ttl) {
        Some(now) => now,
        None => shared.nonces.check_and_record(id, nonce, ttl).await,
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            let f = (Rejection::Replayed, "the nonce was already used");
            return (Err(f), body);
        }
        Err(error) if shared.nonce_fail_mode == FailMode::Open => {
            tracing::warn!(%error, "svc-hmac: nonce cache failed, accepting without replay check (fail-open)");
            fail_open = true;
        }
        Err(error) => {
            tracing::error!(%error, "svc-hmac: nonce cache failed (fail-closed)");
            let f = (
                Rejection::NonceStoreUnavailable,
                "the replay cache is unavailable",
            );
            return (Err(f), body);
        }
    }
    let identity = ServiceIdentity {
        service_id: ring.service_id().clone(),
        key_id,
    };
    (Ok((identity, fail_open)), body)
}
