//! The record of one in-flight request, written exactly once when it is finished or
//! dropped.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use gw_core::{CORRELATION_ID_HEADER, CausationId, CorrelationId, Decisions, Principal};
use gw_problem::{Problem, ProblemType};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use serde_json::Value;
use uuid::Uuid;

use crate::layer::Config;
use crate::record::{AuditRecord, HeaderFields, micros};
use crate::writer::AuditWriter;

/// Status recorded when the client went away before any response.
pub(crate) const CLIENT_CLOSED: u16 = 499;

pub(crate) struct Pending {
    writer: AuditWriter,
    reserved: bool,
    config: Arc<Config>,
    start: Instant,
    timestamp: SystemTime,
    correlation_id: CorrelationId,
    causation_id: Option<CausationId>,
    method: Method,
    uri: Uri,
    request_headers: HeaderMap,
    pub(crate) request_body: Option<Value>,
    principal: Option<Principal>,
    decisions: Decisions,
    status: Option<StatusCode>,
    response_headers: HeaderMap,
    error_type: Option<String>,
    error_message: Option<String>,
    complete: bool,
}

impl Pending {
    pub(crate) fn new<B>(
        req: &Request<B>,
        decisions: Decisions,
        writer: AuditWriter,
        reserved: bool,
        config: Arc<Config>,
    ) -> Box<Self> {
        let ext = req.extensions();
        let correlation_id = ext.get::<CorrelationId>().cloned().unwrap_or_else(|| {
            CorrelationId::from_header_or_generate(req.headers().get(CORRELATION_ID_HEADER))
        });
        let timestamp = config.clock.now();
        Box::new(Self {
            writer,
            reserved,
            start: Instant::now(),
            timestamp,
            correlation_id,
            causation_id: ext.get::<CausationId>().cloned(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            request_headers: config.redactor.headers(req.headers()),
            request_body: None,
            principal: ext.get::<Principal>().cloned(),
            decisions,
            status: None,
            response_headers: HeaderMap::new(),
            error_type: None,
            error_message: None,
            complete: false,
            config,
        })
    }

    /// Takes what the response tells: status, headers, and the problem, if any.
    pub(crate) fn response<B>(&mut self, res: &Response<B>) {
        let status = res.status();
        self.status = Some(status);
        self.response_headers = self.config.redactor.headers(res.headers());
        if let Some(problem) = res.extensions().get::<Problem>() {
            self.error_type = Some(problem.kind().slug.to_owned());
            self.error_message = Some(problem.reason_code().to_owned());
        } else if status.is_client_error() || status.is_server_error() {
            self.error_type = Some(ProblemType::for_status(status).slug.to_owned());
        }
    }

    /// Keeps a captured JSON request body, with redacted fields.
    pub(crate) fn capture_body(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.request_body = Some(match serde_json::from_slice::<Value>(bytes) {
            Ok(mut v) => {
                self.config.redactor.json(&mut v);
                v
            }
            Err(_) => serde_json::json!({ "_omitted": "invalid-json" }),
        });
    }

    /// Marks a request that ended without a response of its own (panic, inner error).
    pub(crate) fn fail(&mut self, problem: ProblemType, code: &str) {
        self.status = Some(problem.status);
        self.error_type = Some(problem.slug.to_owned());
        self.error_message = Some(code.to_owned());
    }

    /// Writes the record now; `complete` says whether the body was sent to the end.
    pub(crate) fn finish(mut self: Box<Self>, complete: bool) {
        self.complete = complete;
        // The record is built and pushed by `Drop`.
    }

    fn build(&mut self) -> AuditRecord {
        let log = self.decisions.take();
        let principal = log.principal.as_ref().or(self.principal.as_ref());
        let id = Uuid::now_v7();
        let (status, error_type, error_message) = match self.status {
            Some(s) => (
                s.as_u16(),
                self.error_type.take(),
                self.error_message.take(),
            ),
            None => (
                CLIENT_CLOSED,
                Some("client-closed-request".to_owned()),
                Some("client-disconnected".to_owned()),
            ),
        };
        let resource = log.resource.as_ref();
        AuditRecord {
            id,
            correlation_id: self.correlation_id.as_str().to_owned(),
            causation_id: self.causation_id.as_ref().map(|c| c.as_str().to_owned()),
            timestamp: self.timestamp,
            gateway_type: self.config.gateway_type.map(|g| g.as_str().to_owned()),
            request_id: id.to_string(),
            http_method: self.method.as_str().to_owned(),
            endpoint: self.uri.path().to_owned(),
            query_params: self.config.redactor.query(self.uri.query()),
            request_headers: HeaderFields(std::mem::take(&mut self.request_headers)),
            request_body: self.request_body.take(),
            user_id: principal.map(|p| p.user_id.clone()),
            customer_id: principal.map(|p| p.customer_id.clone()),
            email: principal.map(|p| p.email.clone()),
            roles: principal.map(|p| p.roles.to_vec()).unwrap_or_default(),
            trial_mode: principal.is_some_and(Principal::is_trial),
            policies_evaluated: log
                .decisions
                .iter()
                .map(|d| format!("{}/{}", d.layer, d.policy))
                .collect(),
            decisions: serde_json::to_value(&log.decisions).unwrap_or(Value::Null),
            policy_latency_us: micros(log.policy_latency()),
            status_code: i32::from(status),
            response_headers: HeaderFields(std::mem::take(&mut self.response_headers)),
            error_type,
            error_message,
            total_latency_us: micros(self.start.elapsed()),
            upstream_latency_us: log.upstream_latency.map(micros),
            action: resource.map(|r| r.action.clone()),
            resource: resource.map(|r| r.resource.clone()),
            resource_id: resource.and_then(|r| r.resource_id.clone()),
            response_complete: self.complete,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let record = self.build();
        self.writer.push_inner(record, self.reserved);
    }
}
