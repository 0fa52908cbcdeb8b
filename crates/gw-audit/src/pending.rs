//! The record of one in-flight request, written exactly once when it is finished or
//! dropped.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use gw_core::{
    CORRELATION_ID_HEADER, CausationId, CorrelationId, DecisionLog, Decisions, Principal, Stopwatch,
};
use gw_problem::{Problem, ProblemType};
use http::{Method, Request, Response, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::layer::Config;
use crate::record::{AuditDecision, AuditRecord, HeaderFields, micros};
use crate::writer::AuditWriter;

/// Status recorded when the client went away before any response.
pub(crate) const CLIENT_CLOSED: u16 = 499;

/// What the layer knows about one request, as cheaply as it can be kept: turned into an
/// [`AuditRecord`] by the writer's worker, off the request path.
pub(crate) struct Raw {
    config: Arc<Config>,
    start: Stopwatch,
    elapsed: Duration,
    timestamp: SystemTime,
    correlation_id: CorrelationId,
    causation_id: Option<CausationId>,
    method: Method,
    // The request path, then `?` and the query if there is one: copied once here, and
    // on the worker the path part becomes the record's `endpoint` as it is.
    target: String,
    path_len: usize,
    request_headers: HeaderFields,
    request_body: Option<Value>,
    // Estimated heap bytes of `request_body`.
    body_bytes: usize,
    principal: Option<Principal>,
    decisions: Decisions,
    log: DecisionLog,
    status: Option<StatusCode>,
    response_headers: HeaderFields,
    error_type: Option<&'static str>,
    error_message: Option<Cow<'static, str>>,
    complete: bool,
}

/// The in-flight record of one request; pushed to the writer exactly once, when
/// finished or dropped.
pub(crate) struct Pending {
    writer: AuditWriter,
    reserved: bool,
    raw: Option<Box<Raw>>,
}

impl Pending {
    pub(crate) fn new<B>(
        req: &Request<B>,
        decisions: Decisions,
        writer: AuditWriter,
        reserved: bool,
        config: Arc<Config>,
    ) -> Self {
        let ext = req.extensions();
        let correlation_id = ext.get::<CorrelationId>().cloned().unwrap_or_else(|| {
            CorrelationId::from_header_or_generate(req.headers().get(&CORRELATION_ID_HEADER))
        });
        let (path, query) = (req.uri().path(), req.uri().query());
        let mut target = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
        target.push_str(path);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        let raw = Box::new(Raw {
            start: Stopwatch::start(),
            elapsed: Duration::ZERO,
            timestamp: config.clock.now(),
            correlation_id,
            causation_id: ext.get::<CausationId>().cloned(),
            method: req.method().clone(),
            target,
            path_len: path.len(),
            request_headers: config.redactor.headers(req.headers()),
            request_body: None,
            body_bytes: 0,
            principal: ext.get::<Principal>().cloned(),
            decisions,
            log: DecisionLog::default(),
            status: None,
            response_headers: HeaderFields::default(),
            error_type: None,
            error_message: None,
            complete: false,
            config,
        });
        Self {
            writer,
            reserved,
            raw: Some(raw),
        }
    }

    fn raw(&mut self) -> &mut Raw {
        self.raw.as_mut().expect("present until dropped")
    }

    /// Records that the JSON body was too large to capture.
    pub(crate) fn body_omitted(&mut self) {
        let raw = self.raw();
        raw.request_body = Some(serde_json::json!({ "_omitted": "too-large" }));
        raw.body_bytes = OMITTED_BYTES;
    }

    /// Takes what the response tells: status, headers, and the problem, if any.
    pub(crate) fn response<B>(&mut self, res: &Response<B>) {
        let raw = self.raw();
        let status = res.status();
        raw.status = Some(status);
        if !res.headers().is_empty() {
            raw.response_headers = raw.config.redactor.headers(res.headers());
        }
        if let Some(problem) = res.extensions().get::<Problem>() {
            raw.error_type = Some(problem.kind().slug);
            raw.error_message = Some(Cow::Owned(problem.reason_code().to_owned()));
        } else if status.is_client_error() || status.is_server_error() {
            raw.error_type = Some(ProblemType::for_status(status).slug);
        }
    }

    /// Keeps a captured JSON request body, with redacted fields.
    pub(crate) fn capture_body(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let raw = self.raw();
        let (body, body_bytes) = match serde_json::from_slice::<Value>(bytes) {
            Ok(mut v) => {
                let mut body_bytes = raw.config.redactor.json(&mut v);
                if crate::nul::may_hold_escaped_nul(bytes) {
                    crate::nul::scrub_value(&mut v);
                    // U+FFFD is longer than a NUL: count again (rare).
                    body_bytes = crate::size::value_bytes(&v);
                }
                (v, body_bytes)
            }
            Err(_) => (
                serde_json::json!({ "_omitted": "invalid-json" }),
                OMITTED_BYTES,
            ),
        };
        raw.request_body = Some(body);
        raw.body_bytes = body_bytes;
    }

    /// Marks a request that ended without a response of its own (panic, inner error).
    pub(crate) fn fail(&mut self, problem: ProblemType, code: &'static str) {
        let raw = self.raw();
        raw.status = Some(problem.status);
        raw.error_type = Some(problem.slug);
        raw.error_message = Some(Cow::Borrowed(code));
    }

    /// Writes the record now; `complete` says whether the body was sent to the end.
    pub(crate) fn finish(mut self, complete: bool) {
        self.raw().complete = complete;
        // Pushed by `Drop`.
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut raw) = self.raw.take() {
            raw.elapsed = raw.start.elapsed();
            raw.log = raw.decisions.take();
            self.writer.push_raw(raw, self.reserved);
        }
    }
}

/// Estimated bytes of an `{"_omitted": ...}` body.
const OMITTED_BYTES: usize = 1024;

impl Raw {
    /// Estimated bytes the capture holds (`crate::size`): the box, the path and query,
    /// both header snapshots, the body and the decision log.
    pub(crate) fn estimated_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.target.capacity()
            + self.request_headers.heap_bytes()
            + self.response_headers.heap_bytes()
            + self.body_bytes
            + self.log.decisions.capacity() * std::mem::size_of::<gw_core::Decision>()
    }

    /// The record; runs on the writer's worker.
    pub(crate) fn into_record(self: Box<Self>) -> AuditRecord {
        // Field by field out of the box: no copy of the whole `Raw` first.
        let config = self.config;
        let timestamp = self.timestamp;
        let (status, error_type, error_message) =
            (self.status, self.error_type, self.error_message);
        let log = self.log;
        let principal = self.principal;
        let mut target = self.target;
        let path_len = self.path_len;
        let (secs, nanos) = match timestamp.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => (d.as_secs().min(i64::MAX as u64), d.subsec_nanos()),
            Err(_) => (0, 0),
        };
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos));
        let (status, error_type, error_message) = match status {
            Some(s) => (s.as_u16(), error_type.map(Cow::Borrowed), error_message),
            None => (
                CLIENT_CLOSED,
                Some(Cow::Borrowed("client-closed-request")),
                Some(Cow::Borrowed("client-disconnected")),
            ),
        };
        let policy_latency_us = micros(log.policy_latency());
        let upstream_latency_us = log.upstream_latency.map(micros);
        let (action, resource, resource_id) = match log.resource {
            Some(r) => (Some(r.action), Some(r.resource), r.resource_id),
            None => (None, None, None),
        };
        let principal = log.principal.or(principal);
        let principal = principal.as_ref();
        let decisions: Vec<AuditDecision> =
            log.decisions.into_iter().map(AuditDecision::from).collect();
        let mut record = AuditRecord {
            id,
            correlation_id: self.correlation_id.into(),
            causation_id: self.causation_id.map(Into::into),
            timestamp,
            gateway_type: config.gateway_type.map(|g| Cow::Borrowed(g.as_str())),
            request_id: id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .to_owned(),
            http_method: method_name(&self.method),
            query_params: config.redactor.query(target.get(path_len + 1..)),
            endpoint: {
                target.truncate(path_len);
                target
            },
            request_headers: self.request_headers,
            request_body: self.request_body,
            user_id: principal.map(|p| p.user_id.clone()),
            customer_id: principal.map(|p| p.customer_id.clone()),
            email: principal.map(|p| p.email.clone()),
            roles: principal.map_or_else(|| NO_ROLES.clone(), |p| p.roles.clone()),
            trial_mode: principal.is_some_and(|p| p.is_trial()),
            policies_evaluated: decisions
                .iter()
                .map(AuditDecision::qualified_policy)
                .collect(),
            decisions,
            policy_latency_us,
            status_code: i32::from(status),
            response_headers: self.response_headers,
            error_type,
            error_message,
            total_latency_us: micros(self.elapsed),
            upstream_latency_us,
            action,
            resource,
            resource_id,
            response_complete: self.complete,
        };
        record.scrub_nul_identity();
        record
    }
}

/// The roles of a record without a caller: one shared empty list, not an allocation per
/// record.
static NO_ROLES: LazyLock<Arc<[String]>> = LazyLock::new(|| Arc::from([]));

/// The method's name, borrowed for the standard methods.
fn method_name(method: &Method) -> Cow<'static, str> {
    Cow::Borrowed(match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        other => return Cow::Owned(other.to_owned()),
    })
}
