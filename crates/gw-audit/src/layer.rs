//! [`AuditLayer`]: configuration of the audit middleware.

use std::sync::Arc;

use gw_core::{GatewayType, SharedClock, SystemClock};
use http::HeaderName;
use tower_layer::Layer;

use crate::redact::Redactor;
use crate::service::Audit;
use crate::writer::AuditWriter;

/// Default cap on captured JSON request bodies: 8 KiB.
pub const DEFAULT_BODY_CAP: usize = 8 * 1024;

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) redactor: Redactor,
    pub(crate) body_cap: usize,
    pub(crate) capture_body: bool,
    pub(crate) gateway_type: Option<GatewayType>,
    pub(crate) clock: SharedClock,
}

/// Writes one [`AuditRecord`](crate::AuditRecord) per request to an [`AuditWriter`].
///
/// Place it just inside `gw_problem::ProblemLayer`. It installs a `gw_core::Decisions`
/// log in the request extensions for inner layers to record into, captures the request
/// (method, path, query, redacted headers, and JSON bodies up to a cap, with redacted
/// fields), and writes the record when the response body has ended or was dropped
/// (client went away). Requests that never got a response (panic, inner error, client
/// gone before the headers) are recorded too.
///
/// Bodies are captured only when the request is `application/json` (or `+json`) and its
/// size hint says at most the cap; the body is then buffered and the inner service gets
/// an equivalent one built with `From<Bytes>` (trailers are not carried over).
#[derive(Debug, Clone)]
pub struct AuditLayer {
    pub(crate) writer: AuditWriter,
    pub(crate) config: Arc<Config>,
}

impl AuditLayer {
    /// Audits into `writer`, with the default redaction lists, an 8 KiB body cap and the
    /// system clock.
    pub fn new(writer: AuditWriter) -> Self {
        Self {
            writer,
            config: Arc::new(Config {
                redactor: Redactor::default(),
                body_cap: DEFAULT_BODY_CAP,
                capture_body: true,
                gateway_type: None,
                clock: Arc::new(SystemClock),
            }),
        }
    }

    fn map(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let old = &self.config;
        let mut config = Config {
            redactor: old.redactor.clone(),
            body_cap: old.body_cap,
            capture_body: old.capture_body,
            gateway_type: old.gateway_type,
            clock: old.clock.clone(),
        };
        f(&mut config);
        self.config = Arc::new(config);
        self
    }

    /// Records which gateway (`cp`/`pp`) this is.
    pub fn gateway_type(self, gateway: GatewayType) -> Self {
        self.map(|c| c.gateway_type = Some(gateway))
    }

    /// Redacts these headers too, besides the default list.
    pub fn redact_headers(self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        let extra: Vec<HeaderName> = names.into_iter().collect();
        self.map(|c| c.redactor.add_headers(extra))
    }

    /// Redacts these JSON body and query fields too, besides the defaults (names
    /// holding a word of [`SECRET_FIELD_WORDS`](crate::SECRET_FIELD_WORDS) such as
    /// `token`, `secret`, `password`, `apikey`, and the names in
    /// [`DEFAULT_REDACTED_FIELDS`](crate::DEFAULT_REDACTED_FIELDS)). Names are compared
    /// exactly in normal form, lower case, without `-`, `_` and spaces, against each
    /// `[...]` or `.` part of a field name and against its parts joined (`session_id`
    /// also redacts `sessionId` and `user[session-id]`; `card[number]` redacts
    /// `card.number`, not `number`).
    pub fn redact_fields<T: Into<String>>(self, names: impl IntoIterator<Item = T>) -> Self {
        let extra: Vec<String> = names.into_iter().map(Into::into).collect();
        self.map(|c| c.redactor.add_fields(extra))
    }

    /// Largest JSON request body captured, in bytes (larger ones are recorded as
    /// `{"_omitted": "too-large"}`).
    pub fn body_cap(self, bytes: usize) -> Self {
        self.map(|c| c.body_cap = bytes)
    }

    /// Whether to capture JSON request bodies at all (default on).
    pub fn capture_body(self, on: bool) -> Self {
        self.map(|c| c.capture_body = on)
    }

    /// The clock record timestamps come from.
    pub fn clock(self, clock: SharedClock) -> Self {
        self.map(|c| c.clock = clock)
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit {
            inner,
            writer: self.writer.clone(),
            config: self.config.clone(),
        }
    }
}
