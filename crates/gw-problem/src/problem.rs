//! The [`Problem`] document and how it becomes a response.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use gw_core::{CORRELATION_ID_HEADER, CorrelationId, PathError};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Extensions, Request, Response, StatusCode};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::catalogue::{ABOUT_BLANK, ProblemType};

/// Media type of problem documents: `application/problem+json`.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Type URI base used when no [`ProblemLayer`](crate::ProblemLayer) configured one: a
/// relative reference, resolved against the request URI, that the example gateway serves.
pub const DEFAULT_TYPE_BASE: &str = "/problems";

const RESERVED: [&str; 5] = ["type", "title", "status", "detail", "instance"];

/// Per-request problem settings, put into the request extensions by a
/// [`ProblemLayer`](crate::ProblemLayer) whose `type` base is not [`DEFAULT_TYPE_BASE`],
/// and read by [`Problem::for_request`]. Without one, a problem gets the default base and
/// the request's [`CorrelationId`].
#[derive(Debug, Clone)]
pub struct ProblemContext {
    pub(crate) type_base: Arc<str>,
    pub(crate) correlation_id: CorrelationId,
}

impl ProblemContext {
    /// The request's correlation id.
    pub fn correlation_id(&self) -> &CorrelationId {
        &self.correlation_id
    }
}

/// An RFC 9457 problem details document.
///
/// Serializes as `type` (`{base}/{slug}`), `title`, `status`, `detail`, `instance` and the
/// extension members at top level. Every problem has a `code` member: the one set with
/// [`Problem::code`], or the type's slug.
///
/// The response built by [`Problem::into_response`] carries the `Problem` itself in its
/// extensions, so outer layers (audit) can read the type and code without parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    kind: ProblemType,
    pub(crate) type_base: Option<Arc<str>>,
    detail: Option<Cow<'static, str>>,
    pub(crate) instance: Option<String>,
    extensions: Map<String, Value>,
}

impl Problem {
    /// A problem of type `kind`.
    pub fn new(kind: ProblemType) -> Self {
        Self {
            kind,
            type_base: None,
            detail: None,
            instance: None,
            extensions: Map::new(),
        }
    }

    /// Sets the human-readable explanation of this occurrence. Never put secrets or
    /// internal error text here: it goes to the client.
    pub fn detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the URI reference of this occurrence (by default the request path).
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Sets the stable machine-readable reason code (the `code` member).
    pub fn code(self, code: impl Into<Cow<'static, str>>) -> Self {
        let code: Cow<'static, str> = code.into();
        self.with("code", code.as_ref())
    }

    /// Adds an extension member. Names of the standard members (`type`, `title`,
    /// `status`, `detail`, `instance`) are ignored, as RFC 9457 requires; values that fail
    /// to serialize are stored as `null`.
    pub fn with(mut self, name: impl Into<String>, value: impl Serialize) -> Self {
        let name = name.into();
        if !RESERVED.contains(&name.as_str()) {
            let value = serde_json::to_value(value).unwrap_or(Value::Null);
            self.extensions.insert(name, value);
        }
        self
    }

    /// Sets the `correlation_id` member.
    pub fn correlation_id(self, id: &CorrelationId) -> Self {
        self.with("correlation_id", id.as_str())
    }

    /// Sets the base the `type` URI is built from (`{base}/{slug}`).
    pub fn type_base(mut self, base: impl Into<Arc<str>>) -> Self {
        self.type_base = Some(base.into());
        self
    }

    /// Fills in what the request knows: the correlation id and type base from the
    /// [`ProblemContext`] (or a bare [`CorrelationId`]) in its extensions, and the request
    /// path as `instance`. Values already set are kept.
    pub fn for_request<B>(self, req: &Request<B>) -> Self {
        let mut p = self.with_extensions(req.extensions());
        if p.instance.is_none() {
            p.instance = Some(req.uri().path().to_owned());
        }
        p
    }

    /// Like [`Problem::for_request`], from request extensions only (no `instance`).
    pub fn with_extensions(mut self, ext: &Extensions) -> Self {
        let ctx = ext.get::<ProblemContext>();
        if self.type_base.is_none() {
            self.type_base = ctx.map(|c| c.type_base.clone());
        }
        if !self.extensions.contains_key("correlation_id")
            && let Some(id) = ctx
                .map(|c| &c.correlation_id)
                .or_else(|| ext.get::<CorrelationId>())
        {
            self = self.correlation_id(id);
        }
        self
    }

    /// Shorthand for `self.for_request(req).into_response()`: what layers call to reject.
    pub fn response_for<ReqB, B: From<Bytes>>(self, req: &Request<ReqB>) -> Response<B> {
        self.for_request(req).into_response()
    }

    /// The problem type.
    pub fn kind(&self) -> &ProblemType {
        &self.kind
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.status
    }

    /// The reason code: the `code` member, or the type's slug.
    pub fn reason_code(&self) -> &str {
        match self.extensions.get("code") {
            Some(Value::String(code)) => code,
            _ => self.kind.slug,
        }
    }

    /// The `detail` member.
    pub fn detail_text(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The `type` URI.
    pub fn type_uri(&self) -> String {
        if self.kind.slug == ABOUT_BLANK {
            return ABOUT_BLANK.to_owned();
        }
        let base = self.type_base.as_deref().unwrap_or(DEFAULT_TYPE_BASE);
        format!("{}/{}", base.trim_end_matches('/'), self.kind.slug)
    }

    /// An extension member.
    pub fn extension(&self, name: &str) -> Option<&Value> {
        self.extensions.get(name)
    }

    /// The JSON document.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("problem documents always serialize")
    }

    /// The response: status, `Content-Type: application/problem+json`, the
    /// `X-Correlation-ID` header when known, the JSON body, and the problem in the
    /// response extensions.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut res = Response::new(B::from(Bytes::from(self.to_json())));
        *res.status_mut() = self.kind.status;
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(Ok(id)) = self
            .extensions
            .get("correlation_id")
            .and_then(Value::as_str)
            .map(HeaderValue::from_str)
        {
            headers.insert(CORRELATION_ID_HEADER, id);
        }
        res.extensions_mut().insert(self);
        res
    }
}

impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", &self.type_uri())?;
        map.serialize_entry("title", self.kind.title)?;
        map.serialize_entry("status", &self.kind.status.as_u16())?;
        if let Some(detail) = &self.detail {
            map.serialize_entry("detail", detail)?;
        }
        if let Some(instance) = &self.instance {
            map.serialize_entry("instance", instance)?;
        }
        if !self.extensions.contains_key("code") {
            map.serialize_entry("code", self.kind.slug)?;
        }
        for (k, v) in &self.extensions {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl From<PathError> for Problem {
    /// A 400 `bad-request` with code `ambiguous-path` and the refusal reason.
    fn from(e: PathError) -> Self {
        Problem::new(ProblemType::BAD_REQUEST)
            .detail(e.to_string())
            .code("ambiguous-path")
            .with("path_error", e.code())
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Problem {
    /// Renders without request context; a [`ProblemLayer`](crate::ProblemLayer) outside
    /// the handler adds the correlation id, type base and instance afterwards.
    fn into_response(self) -> axum::response::Response {
        Problem::into_response(self)
    }
}
