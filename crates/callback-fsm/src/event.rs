//! [`CallbackEvent`]: the validated callback body, and its idempotency fingerprint.

use std::fmt;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::fsm::TransitionTable;
use crate::strict::StrictValue;
use crate::time::Timestamp;

/// Longest accepted `event_id`, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 256;

/// Why a callback body was refused (answered as 409 `VALIDATION_ERROR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The offending field, when one can be named.
    pub field: Option<&'static str>,
    /// What is wrong, safe to show to the caller.
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(field: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ValidationError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    event_id: Option<String>,
    status: String,
    occurred_at: String,
    #[serde(default)]
    actor_type: Option<String>,
    #[serde(default)]
    artifact_updates: Option<StrictValue>,
    #[serde(default)]
    failure_code: Option<String>,
    #[serde(default)]
    failure_message: Option<String>,
    #[serde(default)]
    failed_stage: Option<String>,
}

/// A validated status callback.
///
/// Optional fields sent as `null` are the same as absent ones.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackEvent {
    /// Caller-chosen id of this event, unique per job (the idempotency key).
    pub event_id: String,
    /// The status the job moves to.
    pub status: String,
    /// When the status change happened (orders events per job).
    pub occurred_at: Timestamp,
    /// Who caused the change (`system`, `user`, ...).
    pub actor_type: Option<String>,
    /// Artifact changes that come with the status (a JSON object or array).
    pub artifact_updates: Option<Value>,
    /// Machine-readable failure reason.
    pub failure_code: Option<String>,
    /// Human-readable failure reason.
    pub failure_message: Option<String>,
    /// The stage that failed.
    pub failed_stage: Option<String>,
    fingerprint: [u8; 32],
}

impl CallbackEvent {
    /// Parses and validates a body: strict JSON (unknown and duplicate fields refused, and
    /// repeated keys at any depth of `artifact_updates`),
    /// required `event_id`, `status` (a status of `table`) and RFC 3339 `occurred_at`,
    /// and no U+0000 in any string or key (PostgreSQL cannot store it).
    pub fn from_json(body: &[u8], table: &TransitionTable) -> Result<Self, ValidationError> {
        Self::parse(body, table, None)
    }

    /// Like [`from_json`](Self::from_json) for a body whose event id comes from elsewhere
    /// (the `webhook-id` header): `event_id` may be left out of the body, and if present
    /// must equal `event_id`.
    pub fn from_json_with_id(
        body: &[u8],
        table: &TransitionTable,
        event_id: &str,
    ) -> Result<Self, ValidationError> {
        Self::parse(body, table, Some(event_id))
    }

    fn parse(
        body: &[u8],
        table: &TransitionTable,
        external_id: Option<&str>,
    ) -> Result<Self, ValidationError> {
        let mut wire: Wire = serde_json::from_slice(body).map_err(|e| {
            let msg = e.to_string();
            // serde_json appends " at line L column C"; keep the message short.
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            ValidationError::new(None, msg)
        })?;
        let event_id = match (wire.event_id.take(), external_id) {
            (None, None) => return Err(ValidationError::new(None, "missing field `event_id`")),
            (Some(id), None) => id,
            (None, Some(external)) => external.to_owned(),
            (Some(id), Some(external)) if id == external => id,
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    Some("event_id"),
                    "must equal the webhook-id header",
                ));
            }
        };
        let id = &event_id;
        if id.is_empty() || id.len() > MAX_EVENT_ID_LEN || id.chars().any(char::is_control) {
            return Err(ValidationError::new(
                Some("event_id"),
                format!("must be 1 to {MAX_EVENT_ID_LEN} bytes without control characters"),
            ));
        }
        if !table.is_status(&wire.status) {
            return Err(ValidationError::new(Some("status"), "unknown status"));
        }
        let occurred_at = Timestamp::parse_rfc3339(&wire.occurred_at)
            .map_err(|e| ValidationError::new(Some("occurred_at"), e.to_string()))?;
        // Repeated keys anywhere inside are refused: `serde_json::Value` would keep the last.
        let artifact_updates = wire
            .artifact_updates
            .map(|v| v.0)
            .transpose()
            .map_err(|why| ValidationError::new(Some("artifact_updates"), why))?;
        if artifact_updates
            .as_ref()
            .is_some_and(|v| !(v.is_object() || v.is_array() || v.is_null()))
        {
            return Err(ValidationError::new(
                Some("artifact_updates"),
                "must be an object or an array",
            ));
        }
        // Valid JSON, but PostgreSQL text and JSONB cannot hold U+0000: refused here, so
        // every store answers the same.
        let texts = [
            ("actor_type", &wire.actor_type),
            ("failure_code", &wire.failure_code),
            ("failure_message", &wire.failure_message),
            ("failed_stage", &wire.failed_stage),
        ];
        for (field, text) in texts {
            if text.as_deref().is_some_and(|t| t.contains('\0')) {
                return Err(ValidationError::new(Some(field), NUL_MESSAGE));
            }
        }
        if artifact_updates.as_ref().is_some_and(has_nul) {
            return Err(ValidationError::new(Some("artifact_updates"), NUL_MESSAGE));
        }
        let mut event = Self {
            event_id,
            status: wire.status,
            occurred_at,
            actor_type: wire.actor_type,
            artifact_updates: artifact_updates.filter(|v| !v.is_null()),
            failure_code: wire.failure_code,
            failure_message: wire.failure_message,
            failed_stage: wire.failed_stage,
            fingerprint: [0; 32],
        };
        event.fingerprint = Sha256::digest(event.canonical_json()).into();
        Ok(event)
    }

    /// The event as canonical JSON: sorted keys, no whitespace, absent fields left out,
    /// `occurred_at` in canonical UTC form.
    pub fn canonical_json(&self) -> String {
        // Members in byte order of their keys, written directly (no intermediate map).
        let mut out = String::with_capacity(128);
        out.push('{');
        let mut first = true;
        let mut member =
            |out: &mut String, key: &str, value: Option<&Value>, text: Option<&str>| {
                if value.is_none() && text.is_none() {
                    return;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                push_str(out, key);
                out.push(':');
                match (value, text) {
                    (Some(v), _) => write_canonical(v, out),
                    (None, Some(t)) => push_str(out, t),
                    (None, None) => {}
                }
            };
        let at = self.occurred_at.to_string();
        member(&mut out, "actor_type", None, self.actor_type.as_deref());
        member(
            &mut out,
            "artifact_updates",
            self.artifact_updates.as_ref(),
            None,
        );
        member(&mut out, "event_id", None, Some(&self.event_id));
        member(&mut out, "failed_stage", None, self.failed_stage.as_deref());
        member(&mut out, "failure_code", None, self.failure_code.as_deref());
        member(
            &mut out,
            "failure_message",
            None,
            self.failure_message.as_deref(),
        );
        member(&mut out, "occurred_at", None, Some(&at));
        member(&mut out, "status", None, Some(&self.status));
        out.push('}');
        out
    }

    /// SHA-256 of [`canonical_json`](Self::canonical_json): equal for the same payload
    /// whatever its key order, whitespace or `null`s.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }
}

const NUL_MESSAGE: &str = "must not contain U+0000 (NUL)";

/// Whether U+0000 occurs in a string or an object key of `value`, at any depth.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// `value` as JSON with object keys sorted (by UTF-8 bytes) at every level and no
/// whitespace, whatever the `serde_json` map order.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, k);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

fn push_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("strings always serialize"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<CallbackEvent, ValidationError> {
        CallbackEvent::from_json(v.to_string().as_bytes(), &TransitionTable::default())
    }

    #[test]
    fn canonical_json_is_a_fixed_point_for_floats() {
        // Found by the `callback_body` fuzz target: without correctly rounded float
        // parsing, re-parsing the canonical form changed the last digit.
        let body = br#"{"event_id":"e1","status":"dispatched","occurred_at":"2026-01-01T00:00:00Z","artifact_updates":[12345678901.5e-300,0.1,-0.0,1e308]}"#;
        let event = CallbackEvent::from_json(body, &TransitionTable::default()).unwrap();
        let canonical = event.canonical_json();
        let again =
            CallbackEvent::from_json(canonical.as_bytes(), &TransitionTable::default()).unwrap();
        assert_eq!(again.canonical_json(), canonical);
        assert_eq!(again.fingerprint(), event.fingerprint());
    }

    #[test]
    fn canonical_form_sorts_keys() {
        let v = json!({"b": [1, {"z": null, "a": "x\"y"}], "a": 1.5, "é": true});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":1.5,"b":[1,{"a":"x\"y","z":null}],"é":true}"#
        );
    }

    #[test]
    fn fingerprint_ignores_order_whitespace_nulls_and_offsets() {
        let a = CallbackEvent::from_json(
            br#"{"event_id":"e1","status":"running","occurred_at":"2026-01-01T01:00:00+01:00",
                "artifact_updates":{"b":2,"a":1},"failure_code":null}"#,
            &TransitionTable::default(),
        )
        .unwrap();
        let b = parse(
            json!({"artifact_updates": {"a": 1, "b": 2}, "status": "running",
            "occurred_at": "2026-01-01T00:00:00Z", "event_id": "e1"}),
        )
        .unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = parse(
            json!({"artifact_updates": {"a": 1, "b": 3}, "status": "running",
            "occurred_at": "2026-01-01T00:00:00Z", "event_id": "e1"}),
        )
        .unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(
            b.canonical_json(),
            r#"{"artifact_updates":{"a":1,"b":2},"event_id":"e1","occurred_at":"2026-01-01T00:00:00Z","status":"running"}"#
        );
    }

    #[test]
    fn external_event_id() {
        let t = TransitionTable::default();
        let without = br#"{"status":"running","occurred_at":"2026-01-01T00:00:00Z"}"#;
        let with =
            br#"{"event_id":"msg_1","status":"running","occurred_at":"2026-01-01T00:00:00Z"}"#;
        let a = CallbackEvent::from_json_with_id(without, &t, "msg_1").unwrap();
        let b = CallbackEvent::from_json_with_id(with, &t, "msg_1").unwrap();
        assert_eq!(a.event_id, "msg_1");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(
            CallbackEvent::from_json_with_id(with, &t, "msg_2")
                .unwrap_err()
                .field,
            Some("event_id")
        );
        assert!(CallbackEvent::from_json(without, &t).is_err());
        assert!(CallbackEvent::from_json_with_id(without, &t, "").is_err());
    }

    #[test]
    fn accepts_all_contract_fields() {
        let e = parse(json!({"event_id": "e", "status": "failed",
            "occurred_at": "2026-01-01T00:00:00Z", "actor_type": "system",
            "artifact_updates": [{"name": "log"}], "failure_code": "OOM",
            "failure_message": "out of memory", "failed_stage": "render"}))
        .unwrap();
        assert_eq!(e.failure_code.as_deref(), Some("OOM"));
        assert_eq!(e.failed_stage.as_deref(), Some("render"));
        assert_eq!(e.actor_type.as_deref(), Some("system"));
        // The direct writer agrees with the generic canonical form.
        let text = e.canonical_json();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&value), text);
        assert_eq!(value.as_object().unwrap().len(), 8);
    }

    #[test]
    fn refuses_nul_in_every_text_and_at_any_depth() {
        // Valid JSON that PostgreSQL cannot store: refused before any store sees it.
        let ok = json!({"event_id": "e", "status": "failed",
            "occurred_at": "2026-01-01T00:00:00Z"});
        let cases = [
            ("actor_type", json!("sys\u{0}")),
            ("failure_code", json!("\u{0}")),
            ("failure_message", json!("a\u{0}b")),
            ("failed_stage", json!("render\u{0}")),
            ("artifact_updates", json!({"k\u{0}": 1})),
            ("artifact_updates", json!({"k": "v\u{0}"})),
            ("artifact_updates", json!([1, [{"a": {"b\u{0}c": null}}]])),
            ("artifact_updates", json!([{"a": ["x", "y\u{0}"]}])),
        ];
        for (field, value) in cases {
            let mut body = ok.clone();
            body[field] = value;
            let err = parse(body.clone()).unwrap_err();
            assert_eq!(err.field, Some(field), "{body}");
            assert!(err.message.contains("U+0000"), "{body}: {err}");
        }
        // Other control characters and the escaped text "\\u0000" are fine.
        let mut body = ok;
        body["failure_message"] = json!("tab\tnewline\n\\u0000");
        body["artifact_updates"] = json!({"\u{1}": "\u{7f}"});
        assert!(parse(body).is_ok());
    }

    #[test]
    fn refuses_repeated_keys_inside_artifact_updates() {
        let t = TransitionTable::default();
        let head = r#"{"event_id":"e","status":"running","occurred_at":"2026-01-01T00:00:00Z""#;
        for updates in [
            r#"{"url":"https://good","url":"https://evil"}"#,
            r#"[{"name":"log","uri":"s3://a","uri":"s3://b"}]"#,
            r#"{"a":[1,{"b":{"c":1,"c":1}}]}"#,
        ] {
            let body = format!(r#"{head},"artifact_updates":{updates}}}"#);
            let err = CallbackEvent::from_json(body.as_bytes(), &t).unwrap_err();
            assert_eq!(err.field, Some("artifact_updates"), "{body}");
            assert!(err.message.contains("duplicate key"), "{body}: {err}");
        }
        // The same keys in sibling objects, and a lone key, are fine.
        let body = format!(r#"{head},"artifact_updates":[{{"url":"a"}},{{"url":"b"}}]}}"#);
        let e = CallbackEvent::from_json(body.as_bytes(), &t).unwrap();
        assert_eq!(
            e.artifact_updates,
            Some(json!([{"url": "a"}, {"url": "b"}]))
        );
        let body = format!(r#"{head},"artifact_updates":null}}"#);
        assert_eq!(
            CallbackEvent::from_json(body.as_bytes(), &t)
                .unwrap()
                .artifact_updates,
            None
        );
    }

    #[test]
    fn refuses_malformed_bodies() {
        let ok =
            json!({"event_id": "e", "status": "running", "occurred_at": "2026-01-01T00:00:00Z"});
        assert!(parse(ok.clone()).is_ok());
        let with = |k: &str, v: Value| {
            let mut o = ok.clone();
            o[k] = v;
            o
        };
        let without = |k: &str| {
            let mut o = ok.clone();
            o.as_object_mut().unwrap().remove(k);
            o
        };
        let cases = [
            (without("event_id"), None),
            (without("status"), None),
            (without("occurred_at"), None),
            (with("extra", json!(1)), None),
            (with("event_id", json!("")), Some("event_id")),
            (with("event_id", json!("x".repeat(257))), Some("event_id")),
            (with("event_id", json!(7)), None),
            (with("status", json!("paused")), Some("status")),
            (with("occurred_at", json!("yesterday")), Some("occurred_at")),
            (
                with("occurred_at", json!("2026-01-01T00:00:00")),
                Some("occurred_at"),
            ),
            (
                with("artifact_updates", json!("x")),
                Some("artifact_updates"),
            ),
            (with("failure_code", json!(5)), None),
        ];
        for (body, field) in cases {
            let err = parse(body.clone()).unwrap_err();
            assert_eq!(err.field, field, "{body}");
        }
        let table = TransitionTable::default();
        for raw in [
            &b""[..],
            b"[]",
            b"null",
            b"{",
            br#"{"event_id":"e","event_id":"f","status":"running","occurred_at":"2026-01-01T00:00:00Z"}"#,
            br#"{"event_id":"e","status":"running","occurred_at":"2026-01-01T00:00:00Z"} x"#,
        ] {
            assert!(CallbackEvent::from_json(raw, &table).is_err());
        }
    }
}
