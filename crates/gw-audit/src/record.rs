//! The [`AuditRecord`]: one row per request.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use gw_core::Decision;
use http::{HeaderMap, HeaderName};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::nul;

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
    pub correlation_id: Arc<str>,
    /// The id of the request that caused this one (`X-Request-ID`), if sent.
    pub causation_id: Option<Arc<str>>,
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
    pub user_id: Option<Arc<str>>,
    /// Caller's customer (tenant) id, if authenticated.
    pub customer_id: Option<Arc<str>>,
    /// Caller's e-mail, if authenticated.
    pub email: Option<Arc<str>>,
    /// Caller's roles (shared with the request's `gw_core::Principal`).
    pub roles: Arc<[String]>,
    /// Whether the caller is on a trial plan.
    pub trial_mode: bool,
    /// Policies evaluated, in order (`layer/policy`).
    pub policies_evaluated: Vec<Cow<'static, str>>,
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
    /// `layer/policy`, as listed in [`AuditRecord::policies_evaluated`]. Built once per
    /// pair of static names and shared afterwards; only a policy named at run time
    /// (an owned name) costs an allocation per record.
    pub fn qualified_policy(&self) -> Cow<'static, str> {
        match (&self.layer, &self.policy) {
            (Cow::Borrowed(layer), Cow::Borrowed(policy)) => {
                Cow::Borrowed(qualified_static(layer, policy))
            }
            (layer, policy) => Cow::Owned(qualify(layer, policy)),
        }
    }
}

fn qualify(layer: &str, policy: &str) -> String {
    let mut s = String::with_capacity(layer.len() + 1 + policy.len());
    s.push_str(layer);
    s.push('/');
    s.push_str(policy);
    s
}

/// `layer/policy` for two static names, leaked once per pair. The pairs are the layers'
/// own literals, so the lists stay short; they are looked up by address (no hashing), in
/// the asking thread's own list first, so a record takes no lock.
fn qualified_static(layer: &'static str, policy: &'static str) -> &'static str {
    type Names = Vec<([usize; 4], &'static str)>;
    static SHARED: Mutex<Names> = Mutex::new(Vec::new());
    thread_local! {
        static LOCAL: RefCell<Names> = const { RefCell::new(Vec::new()) };
    }
    let key = [
        layer.as_ptr().addr(),
        layer.len(),
        policy.as_ptr().addr(),
        policy.len(),
    ];
    let find = |names: &Names| names.iter().find(|(k, _)| *k == key).map(|(_, n)| *n);
    LOCAL.with_borrow_mut(|local| {
        if let Some(name) = find(local) {
            return name;
        }
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        let name = find(&shared).unwrap_or_else(|| {
            let name: &'static str = Box::leak(qualify(layer, policy).into_boxed_str());
            shared.push((key, name));
            name
        });
        local.push((key, name));
        name
    })
}

/// Headers of a record: a compact, read-only snapshot of a `HeaderMap` (names and values
/// in one string, so taking it costs two allocations however many headers there are).
///
/// Serializes as a JSON object of name to value, or to an array of values when a header is
/// repeated. Values that are not UTF-8 are kept lossily (`U+FFFD`). Names are lower case.
///
/// ```
/// use gw_audit::HeaderFields;
/// use http::HeaderMap;
///
/// let mut h = HeaderMap::new();
/// h.insert("accept", "application/json".parse().unwrap());
/// h.append("x-tag", "a".parse().unwrap());
/// h.append("x-tag", "b".parse().unwrap());
/// let fields = HeaderFields::from(&h);
/// assert_eq!(fields.get("Accept"), Some("application/json"));
/// assert_eq!(fields.get_all("x-tag").collect::<Vec<_>>(), ["a", "b"]);
/// assert_eq!(
///     serde_json::to_value(&fields).unwrap(),
///     serde_json::json!({ "accept": "application/json", "x-tag": ["a", "b"] })
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct HeaderFields {
    // Name and value of entry `i` are `text[start..name_end]` and `text[name_end..end]`,
    // where `start` is the previous entry's `end` (0 for the first). Values of one name
    // are adjacent, as `HeaderMap::iter` yields them.
    text: String,
    ends: Vec<(usize, usize)>,
}

impl HeaderFields {
    /// A snapshot of `headers`, with the value of every header `redact` (given the name
    /// and its text) says yes to replaced by `replacement`.
    pub(crate) fn snapshot(
        headers: &HeaderMap,
        redact: impl Fn(&HeaderName, &str) -> bool,
        replacement: &str,
    ) -> Self {
        // Room for typical headers (a second pass to size it exactly costs more than the
        // occasional growth).
        let mut text = Vec::with_capacity(headers.len() * 40);
        let mut ends = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let name_text = name.as_str();
            text.extend_from_slice(name_text.as_bytes());
            let name_end = text.len();
            if redact(name, name_text) {
                text.extend_from_slice(replacement.as_bytes());
            } else {
                text.extend_from_slice(value.as_bytes());
            }
            ends.push((name_end, text.len()));
        }
        // Names and the replacement are text, so the whole is UTF-8 exactly when every
        // value is: one check for all of them, and only in the rare other case a second
        // pass that replaces what is not UTF-8 value by value.
        match String::from_utf8(text) {
            Ok(text) => Self { text, ends },
            Err(_) => Self::snapshot_lossy(headers, redact, replacement),
        }
    }

    fn snapshot_lossy(
        headers: &HeaderMap,
        redact: impl Fn(&HeaderName, &str) -> bool,
        replacement: &str,
    ) -> Self {
        let mut out = Self {
            text: String::with_capacity(headers.len() * 40),
            ends: Vec::with_capacity(headers.len()),
        };
        for (name, value) in headers {
            if redact(name, name.as_str()) {
                out.push(name.as_str(), replacement);
            } else {
                out.push(name.as_str(), &String::from_utf8_lossy(value.as_bytes()));
            }
        }
        out
    }

    /// Replaces NULs in names and values (only a deserialized snapshot can hold one).
    pub(crate) fn scrub_nul(&mut self) {
        if nul::has_nul(&self.text) {
            let mut clean = Self::default();
            for (name, value) in self.iter() {
                clean.push(&nul::clean(name), &nul::clean(value));
            }
            *self = clean;
        }
    }

    fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len()));
    }

    /// Heap bytes of the snapshot.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * std::mem::size_of::<(usize, usize)>()
    }

    /// Number of header values (a repeated header counts once per value).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Every `(name, value)`, in order; the values of a repeated header are adjacent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, end)| {
            let name_start = std::mem::replace(&mut start, end);
            (&self.text[name_start..name_end], &self.text[name_end..end])
        })
    }

    /// The first value of `name` (compared case-insensitively).
    pub fn get<'a>(&'a self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every value of `name` (compared case-insensitively), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Equal when both hold the same values for every name, in the same order per name; the
/// order of different names does not matter (as for `HeaderMap`).
impl PartialEq for HeaderFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(name, _)| self.get_all(name).eq(other.get_all(name)))
    }
}

impl Eq for HeaderFields {}

impl From<&HeaderMap> for HeaderFields {
    /// A snapshot of every header, nothing redacted.
    fn from(headers: &HeaderMap) -> Self {
        Self::snapshot(headers, |_, _| false, "")
    }
}

impl Serialize for HeaderFields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let all: Vec<(&str, &str)> = self.iter().collect();
        let runs = all.chunk_by(|a, b| a.0 == b.0);
        let mut map = s.serialize_map(Some(runs.clone().count()))?;
        for run in runs {
            if let [(name, value)] = run {
                map.serialize_entry(name, value)?;
            } else {
                let values: Vec<&str> = run.iter().map(|(_, v)| *v).collect();
                map.serialize_entry(run[0].0, &values)?;
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
        let mut out = Self::default();
        for (name, values) in raw {
            // Only valid header names, in the snapshot's lower case.
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(serde::de::Error::custom)?;
            match values {
                OneOrMany::One(v) => out.push(name.as_str(), &v),
                OneOrMany::Many(vs) => vs.iter().for_each(|v| out.push(name.as_str(), v)),
            }
        }
        Ok(out)
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
        correlation_id: format!("corr-{n}").into(),
        causation_id: None,
        timestamp: UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + u64::from(n)),
        gateway_type: Some("cp".into()),
        request_id: id.to_string(),
        http_method: "GET".into(),
        endpoint: "/api/v1/agents".into(),
        query_params: serde_json::json!({}),
        request_headers: HeaderFields::from(&HeaderMap::from_iter([(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
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
    fn qualified_policy_names_are_built_once_per_static_pair() {
        static LAYER: &str = "rbac";
        static POLICY: &str = "rbac_pp";
        let decision = |policy: Cow<'static, str>| AuditDecision {
            layer: Cow::Borrowed(LAYER),
            policy,
            outcome: Cow::Borrowed("allow"),
            reason: None,
            latency: 0,
        };
        let first = decision(Cow::Borrowed(POLICY)).qualified_policy();
        let again = decision(Cow::Borrowed(POLICY)).qualified_policy();
        let elsewhere =
            std::thread::spawn(move || decision(Cow::Borrowed(POLICY)).qualified_policy())
                .join()
                .unwrap();
        assert_eq!(first, "rbac/rbac_pp");
        for other in [&again, &elsewhere] {
            match (&first, other) {
                (Cow::Borrowed(a), Cow::Borrowed(b)) => assert!(std::ptr::eq(*a, *b)),
                _ => panic!("static names are shared, not built per record"),
            }
        }
        let owned = decision(Cow::Owned("custom".into())).qualified_policy();
        assert!(matches!(&owned, Cow::Owned(name) if name == "rbac/custom"));
    }

    #[test]
    fn header_fields_keep_repeats_in_order_and_compare_regardless_of_name_order() {
        let mut h = HeaderMap::new();
        h.append("x-tag", "a".parse().unwrap());
        h.insert("accept", "*/*".parse().unwrap());
        h.append("x-tag", "b".parse().unwrap());
        h.insert("x-bin", http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let fields = HeaderFields::from(&h);
        assert_eq!(fields.len(), 4);
        assert_eq!(fields.get_all("X-Tag").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(fields.get("x-bin"), Some("caf\u{fffd}"));
        assert_eq!(fields.get("missing"), None);

        // Through JSON (the spool) and back: names come back sorted, values per name in
        // order, and the two compare equal.
        let back: HeaderFields =
            serde_json::from_str(&serde_json::to_string(&fields).unwrap()).unwrap();
        assert_eq!(back.iter().next(), Some(("accept", "*/*")));
        assert_eq!(back, fields);

        let mut swapped = HeaderMap::new();
        swapped.append("x-tag", "b".parse().unwrap());
        swapped.append("x-tag", "a".parse().unwrap());
        swapped.insert("accept", "*/*".parse().unwrap());
        swapped.insert("x-bin", h["x-bin"].clone());
        assert_ne!(
            HeaderFields::from(&swapped),
            fields,
            "value order within a name counts"
        );
    }

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
