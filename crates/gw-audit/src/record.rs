//! The [`AuditRecord`]: one row per request.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gw_core::Decision;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

/// Everything the audit layer keeps about one request. Response bodies are never kept;
/// secrets are redacted before a record is built.
///
/// Serialized (JSON lines, spool) it is one flat object with these field names; the
/// PostgreSQL sink writes the same fields into the same-named columns. Fields that are
/// usually fixed strings (`gateway_type`, `http_method`, `error_type`, `error_message`)
/// are [`Cow`]s, so building a record does not copy them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Record id, a time-ordered UUIDv7 (primary key together with `timestamp`).
    pub id: Uuid,
    /// The request's correlation id (`X-Correlation-ID`).
    pub correlation_id: String,
    /// The id of the request that caused this one (`X-Request-ID`), if sent.
    pub causation_id: Option<String>,
    /// When the request arrived (from the layer's clock).
    #[serde(with = "rfc3339")]
    pub timestamp: SystemTime,
    /// `cp` or `pp`, if configured.
    pub gateway_type: Option<Cow<'static, str>>,
    /// This request's own id: the record id as text, handy for log joins.
    pub request_id: String,
    /// HTTP method.
    pub http_method: Cow<'static, str>,
    /// Request path, as received.
    pub endpoint: String,
    /// Query parameters (name to value, or to an array of values when repeated), with
    /// redacted fields.
    pub query_params: Value,
    /// Request headers, with redacted headers.
    pub request_headers: HeaderFields,
    /// The JSON request body, redacted, if it was captured.
    pub request_body: Option<Value>,
    /// Caller's user id, if authenticated.
    pub user_id: Option<String>,
    /// Caller's customer (tenant) id, if authenticated.
    pub customer_id: Option<String>,
    /// Caller's e-mail, if authenticated.
    pub email: Option<String>,
    /// Caller's roles (shared with the request's `gw_core::Principal`).
    pub roles: Arc<[String]>,
    /// Whether the caller is on a trial plan.
    pub trial_mode: bool,
    /// Policies evaluated, in order (`layer/policy`).
    pub policies_evaluated: Vec<String>,
    /// The decisions recorded by inner layers, in order (a JSON array of objects with
    /// `layer`, `policy`, `outcome`, `reason` and `latency` in microseconds).
    pub decisions: Vec<AuditDecision>,
    /// Sum of the decisions' latencies, in microseconds.
    pub policy_latency_us: i64,
    /// Response status (499 when the client went away before a response).
    pub status_code: i32,
    /// Response headers, with redacted headers.
    pub response_headers: HeaderFields,
    /// The problem `type` slug when the response is an error.
    pub error_type: Option<Cow<'static, str>>,
    /// The problem's reason `code` when the response is a problem.
    pub error_message: Option<Cow<'static, str>>,
    /// From request start to the end of the response body, in microseconds.
    pub total_latency_us: i64,
    /// Upstream latency in microseconds, when a proxy recorded it.
    pub upstream_latency_us: Option<i64>,
    /// Action mapped by an authorization layer (`read`, `delete`, ...).
    pub action: Option<String>,
    /// Resource mapped by an authorization layer (`agents`, ...).
    pub resource: Option<String>,
    /// The addressed resource instance.
    pub resource_id: Option<String>,
    /// Whether the response body was sent to the end (false: client went away, body
    /// error, or the request never got a response).
    pub response_complete: bool,
}

/// One decision of a record: a `gw_core::Decision` as it is stored, serialized with the
/// same fields (`latency` in whole microseconds). Built from a decision by moving its
/// strings, never copying them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDecision {
    /// The deciding layer (`auth`, `rbac`, `policy`, `budget`, ...).
    pub layer: Cow<'static, str>,
    /// The policy within the layer (`trial_mode`, `rbac_pp`, ...).
    pub policy: Cow<'static, str>,
    /// The outcome's snake_case name (`allow`, `deny`, `skip`, `shadow_deny`,
    /// `fail_open`, `fail_closed`).
    pub outcome: Cow<'static, str>,
    /// Stable reason code, if any.
    pub reason: Option<Cow<'static, str>>,
    /// Time spent deciding, in microseconds.
    pub latency: u64,
}

impl From<Decision> for AuditDecision {
    fn from(d: Decision) -> Self {
        Self {
            layer: Cow::Borrowed(d.layer),
            policy: d.policy,
            outcome: Cow::Borrowed(d.outcome.as_str()),
            reason: d.reason,
            latency: u64::try_from(d.latency.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

impl AuditDecision {
    /// `layer/policy`, as listed in [`AuditRecord::policies_evaluated`].
    pub fn qualified_policy(&self) -> String {
        let mut s = String::with_capacity(self.layer.len() + 1 + self.policy.len());
        s.push_str(&self.layer);
        s.push('/');
        s.push_str(&self.policy);
        s
    }
}

/// Headers of a record; serializes as a JSON object of name to value, or to an array of
/// values when a header is repeated (values that are not UTF-8 are rendered lossily).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderFields(pub HeaderMap);

impl Serialize for HeaderFields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.keys_len()))?;
        for name in self.0.keys() {
            let mut values = self.0.get_all(name).iter();
            let first = values.next().map(|v| String::from_utf8_lossy(v.as_bytes()));
            let rest: Vec<_> = values
                .map(|v| String::from_utf8_lossy(v.as_bytes()))
                .collect();
            if rest.is_empty() {
                map.serialize_entry(name.as_str(), &first)?;
            } else {
                let all: Vec<_> = first.into_iter().chain(rest).collect();
                map.serialize_entry(name.as_str(), &all)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for HeaderFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let raw = std::collections::BTreeMap::<String, OneOrMany>::deserialize(d)?;
        let mut headers = HeaderMap::with_capacity(raw.len());
        for (name, values) in raw {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(serde::de::Error::custom)?;
            let values = match values {
                OneOrMany::One(v) => vec![v],
                OneOrMany::Many(v) => v,
            };
            for v in values {
                let v = HeaderValue::from_str(&v).map_err(serde::de::Error::custom)?;
                headers.append(name.clone(), v);
            }
        }
        Ok(Self(headers))
    }
}

/// Whole microseconds of `d`, saturating.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_micros(*t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        humantime::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) fn sample(n: u32) -> AuditRecord {
    use std::time::UNIX_EPOCH;
    let id = Uuid::now_v7();
    AuditRecord {
        id,
        correlation_id: format!("corr-{n}"),
        causation_id: None,
        timestamp: UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + u64::from(n)),
        gateway_type: Some("cp".into()),
        request_id: id.to_string(),
        http_method: "GET".into(),
        endpoint: "/api/v1/agents".into(),
        query_params: serde_json::json!({}),
        request_headers: HeaderFields(HeaderMap::from_iter([(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        )])),
        request_body: None,
        user_id: Some("u1".into()),
        customer_id: Some("c1".into()),
        email: None,
        roles: vec!["viewer".into()].into(),
        trial_mode: false,
        policies_evaluated: vec!["rbac/rbac_pp".into()],
        decisions: vec![AuditDecision::from(
            Decision::new(
                "rbac",
                "rbac_pp",
                gw_core::Outcome::Allow,
                Duration::from_micros(4),
            )
            .reason("role-granted"),
        )],
        policy_latency_us: 0,
        status_code: 200,
        response_headers: HeaderFields::default(),
        error_type: None,
        error_message: None,
        total_latency_us: 5,
        upstream_latency_us: None,
        action: None,
        resource: None,
        resource_id: None,
        response_complete: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_with_microsecond_timestamps() {
        let r = sample(7);
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            line.contains("\"timestamp\":\"2023-11-14T22:13:20.000007Z\""),
            "{line}"
        );
        assert!(
            line.contains(
                r#""decisions":[{"layer":"rbac","policy":"rbac_pp","outcome":"allow","reason":"role-granted","latency":4}]"#
            ),
            "{line}"
        );
        let back: AuditRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
    }
}
