//! The callback contract, in order: secret, body, then the store's atomic unit.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gw_core::{Decision, Decisions, Outcome as DecisionOutcome};
use gw_problem::{Problem, ProblemType};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::config::{Auth, Shared};
use crate::event::{CallbackEvent, ValidationError};
use crate::future::CallbackFuture;
use crate::secret::{CALLBACK_SECRET_HEADER, CallbackSecrets};
use crate::store::{Outcome, StoreError};
use crate::webhook::Signed;

/// Reason codes in problem bodies (the seed's contract).
pub mod codes {
    /// 401: missing or wrong `X-Callback-Secret`.
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    /// 409: the body is not a valid callback.
    pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
    /// 404: no such job (or one the caller may not see).
    pub const RESOURCE_NOT_FOUND: &str = "RESOURCE_NOT_FOUND";
    /// 409: the event id was applied before with another payload.
    pub const EVENT_ID_PAYLOAD_MISMATCH: &str = "EVENT_ID_PAYLOAD_MISMATCH";
    /// 409: `occurred_at` is not after the latest applied event.
    pub const CALLBACK_OUT_OF_ORDER: &str = "CALLBACK_OUT_OF_ORDER";
    /// 409: the FSM does not allow the transition.
    pub const FSM_TRANSITION_INVALID: &str = "FSM_TRANSITION_INVALID";
    /// 503: the job store failed.
    pub const STORE_UNAVAILABLE: &str = "STORE_UNAVAILABLE";
    /// 500: the application's transition hook failed.
    pub const TRANSITION_HOOK_FAILED: &str = "TRANSITION_HOOK_FAILED";
}

const MAX_JOB_ID_LEN: usize = 256;
const LAYER: &str = "callback";
const POLICY: &str = "callback_fsm";

/// Step 1, synchronous: the authentication gate (shared secret, or the Standard Webhooks
/// headers). Only if it passes is the rest (body, store) started.
pub(crate) fn handle<ReqB, ResB>(
    shared: &Arc<Shared>,
    req: Request<ReqB>,
    job_id: String,
) -> CallbackFuture<ResB>
where
    ReqB: Body + Send + 'static,
    ReqB::Data: Send,
    ReqB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResB: From<Bytes> + Send + 'static,
{
    let started = Instant::now();
    let signed = match &shared.auth {
        Auth::Secret(secrets) if secret_ok(secrets, req.headers()) => None,
        Auth::Webhook(keys) => match keys.precheck(req.headers()) {
            Some(signed) => Some(signed),
            None => {
                return CallbackFuture::ready(unauthorized(
                    &req,
                    started,
                    "webhook signature headers",
                ));
            }
        },
        Auth::Secret(_) => {
            return CallbackFuture::ready(unauthorized(&req, started, "X-Callback-Secret"));
        }
    };
    CallbackFuture::boxed(Box::pin(process(
        shared.clone(),
        req,
        job_id,
        signed,
        started,
    )))
}

fn unauthorized<B, ResB: From<Bytes>>(
    req: &Request<B>,
    started: Instant,
    what: &str,
) -> Response<ResB> {
    tracing::warn!(path = %req.uri().path(), "callback rejected: missing or invalid {what}");
    reject(
        req,
        started,
        Problem::new(ProblemType::UNAUTHORIZED)
            .code(codes::UNAUTHORIZED)
            .detail(format!("missing or invalid {what}")),
    )
}

fn secret_ok(secrets: &CallbackSecrets, headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CALLBACK_SECRET_HEADER).iter();
    let first = values.next();
    let repeated = values.next().is_some();
    // Always run the comparison, so a repeated header costs the same as any other.
    let ok = secrets.verify(first.map(HeaderValue::as_bytes));
    ok && !repeated
}

async fn process<ReqB, ResB>(
    shared: Arc<Shared>,
    req: Request<ReqB>,
    job_id: String,
    signed: Option<Signed>,
    started: Instant,
) -> Response<ResB>
where
    ReqB: Body + Send + 'static,
    ReqB::Data: Send,
    ReqB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResB: From<Bytes>,
{
    let (parts, body) = req.into_parts();
    let head = Request::from_parts(parts, ());
    let bytes = read_body(&shared, &head, body).await;
    if let (Auth::Webhook(keys), Some(signed)) = (&shared.auth, &signed) {
        // Not authenticated until the signature over the whole body is checked.
        if !bytes.as_ref().is_ok_and(|b| keys.verify(signed, b)) {
            return unauthorized(&head, started, "webhook signature");
        }
    }
    let event = bytes.and_then(|bytes| {
        check_content_type(&head)?;
        match &signed {
            Some(signed) => CallbackEvent::from_json_with_id(&bytes, &shared.table, &signed.id),
            None => CallbackEvent::from_json(&bytes, &shared.table),
        }
    });
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            let mut p = Problem::new(ProblemType::CONFLICT)
                .code(codes::VALIDATION_ERROR)
                .detail(e.message);
            if let Some(field) = e.field {
                p = p.with("field", field);
            }
            return reject(&head, started, p);
        }
    };
    if job_id.is_empty() || job_id.len() > MAX_JOB_ID_LEN || job_id.chars().any(char::is_control) {
        return reject(&head, started, not_found());
    }
    let outcome = match shared.store.apply(&job_id, &event, &shared.table).await {
        Ok(outcome) => outcome,
        Err(StoreError::Backend(e)) => {
            tracing::error!(job_id = %job_id, error = %e, "callback store failed");
            let p = Problem::new(ProblemType::SERVICE_UNAVAILABLE)
                .code(codes::STORE_UNAVAILABLE)
                .detail("the job store is unavailable; retry later");
            return reject(&head, started, p);
        }
        Err(StoreError::Transition(e)) => {
            tracing::error!(job_id = %job_id, error = %e, "callback transition hook failed");
            let p = Problem::new(ProblemType::INTERNAL_SERVER_ERROR)
                .code(codes::TRANSITION_HOOK_FAILED);
            return reject(&head, started, p);
        }
    };
    let event_id = event.event_id.as_str();
    let problem = match outcome {
        Outcome::Applied { from, to } => {
            tracing::info!(job_id = %job_id, event_id, from = %from, to = %to, "callback applied");
            record(&head, started, DecisionOutcome::Allow, "applied");
            let mut res = Response::new(ResB::from(Bytes::new()));
            *res.status_mut() = StatusCode::NO_CONTENT;
            return res;
        }
        Outcome::Replayed { status } => {
            tracing::debug!(job_id = %job_id, event_id, "callback replayed");
            record(&head, started, DecisionOutcome::Allow, "replayed");
            let body = serde_json::json!({
                "job_id": job_id,
                "event_id": event_id,
                "status": status,
                "replayed": true,
            });
            let mut res = Response::new(ResB::from(Bytes::from(body.to_string())));
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return res;
        }
        Outcome::NotFound => not_found(),
        Outcome::PayloadMismatch => Problem::new(ProblemType::CONFLICT)
            .code(codes::EVENT_ID_PAYLOAD_MISMATCH)
            .detail("this event_id was already applied with a different payload")
            .with("event_id", event_id),
        Outcome::OutOfOrder { latest } => Problem::new(ProblemType::CONFLICT)
            .code(codes::CALLBACK_OUT_OF_ORDER)
            .detail("occurred_at must be later than the latest applied event")
            .with("occurred_at", event.occurred_at.to_string())
            .with("latest_applied_occurred_at", latest.to_string()),
        Outcome::InvalidTransition { from, allowed } => Problem::new(ProblemType::CONFLICT)
            .code(codes::FSM_TRANSITION_INVALID)
            .detail(format!(
                "transition {from} -> {} is not allowed",
                event.status
            ))
            .with("current_state", from)
            .with("requested_state", event.status.as_str())
            .with("allowed_next_states", allowed),
    };
    reject(&head, started, problem)
}

fn check_content_type(head: &Request<()>) -> Result<(), ValidationError> {
    let mut values = head.headers().get_all(CONTENT_TYPE).iter();
    let Some(ct) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        // Two media types are ambiguous: a proxy may honour the other one.
        return Err(ValidationError::new(
            None,
            "Content-Type must appear at most once",
        ));
    }
    let essence = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let json = essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json");
    if json {
        Ok(())
    } else {
        Err(ValidationError::new(
            None,
            "Content-Type must be application/json",
        ))
    }
}

async fn read_body<ReqB>(
    shared: &Shared,
    head: &Request<()>,
    body: ReqB,
) -> Result<Bytes, ValidationError>
where
    ReqB: Body,
    ReqB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large =
        || ValidationError::new(None, format!("body exceeds {} bytes", shared.body_limit));
    let declared = head
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.body_limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, shared.body_limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(_) => Err(ValidationError::new(None, "the body could not be read")),
    }
}

fn not_found() -> Problem {
    Problem::new(ProblemType::NOT_FOUND)
        .code(codes::RESOURCE_NOT_FOUND)
        .detail("resource not found")
}

fn record<B>(req: &Request<B>, started: Instant, outcome: DecisionOutcome, reason: &'static str) {
    Decisions::record(
        req.extensions(),
        Decision::new(LAYER, POLICY, outcome, started.elapsed()).reason(reason),
    );
    metrics::counter!("gw_callback_requests_total", "outcome" => reason).increment(1);
}

fn reject<ReqB, ResB: From<Bytes>>(
    req: &Request<ReqB>,
    started: Instant,
    problem: Problem,
) -> Response<ResB> {
    let outcome = if problem.status().is_server_error() {
        DecisionOutcome::FailClosed
    } else {
        DecisionOutcome::Deny
    };
    let code = problem.reason_code().to_owned();
    Decisions::record(
        req.extensions(),
        Decision::new(LAYER, POLICY, outcome, started.elapsed()).reason(code.clone()),
    );
    metrics::counter!("gw_callback_requests_total", "outcome" => code).increment(1);
    problem.response_for(req)
}
