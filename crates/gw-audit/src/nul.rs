//! U+0000 in record text: PostgreSQL's `text` and `jsonb` refuse it, so it is replaced
//! with U+FFFD before a record reaches the queue, the spool or a sink.
//!
//! What the layer captures is clean by construction where it can be: header names and
//! values and the request path cannot hold a NUL (`http` refuses them), the query decoder
//! writes U+FFFD for `%00`, and a captured JSON body is scrubbed when its text holds a
//! `\u0000` escape (the only way JSON can carry a NUL). The rest (the caller's identity,
//! names an authorization layer recorded, records pushed by hand or read back from the
//! spool) is checked with [`AuditRecord::scrub_nul`] or its parts.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::record::AuditRecord;

/// What a NUL becomes.
pub(crate) const REPLACEMENT: char = '\u{fffd}';

/// Whether JSON text `bytes` may hold an escaped NUL (`\u0000`); false positives (an
/// escaped backslash followed by `u0000`) only cost a scrub that finds nothing.
pub(crate) fn may_hold_escaped_nul(bytes: &[u8]) -> bool {
    bytes
        .split(|&b| b == b'\\')
        .skip(1)
        .any(|after| after.starts_with(b"u0000"))
}

/// `s` without NULs, copied only if it has one.
fn replaced(s: &str) -> Option<String> {
    has_nul(s).then(|| s.replace('\0', REPLACEMENT.encode_utf8(&mut [0; 4])))
}

/// `s` without NULs, borrowed when it has none.
pub(crate) fn clean(s: &str) -> Cow<'_, str> {
    replaced(s).map_or(Cow::Borrowed(s), Cow::Owned)
}

/// Whether `s` holds a NUL. The strings of a record are short, so eight bytes at a time
/// with the zero-byte test beats `memchr`'s set-up.
pub(crate) fn has_nul(s: &str) -> bool {
    const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut words = s.as_bytes().chunks_exact(8);
    let found = words.by_ref().any(|w| {
        let x = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        x.wrapping_sub(LOW) & !x & HIGH != 0
    });
    found || words.remainder().contains(&0)
}

pub(crate) fn scrub_string(s: &mut String) {
    if let Some(clean) = replaced(s) {
        *s = clean;
    }
}

pub(crate) fn scrub_arc(s: &mut Arc<str>) {
    if let Some(clean) = replaced(s) {
        *s = clean.into();
    }
}

pub(crate) fn scrub_cow(s: &mut Cow<'static, str>) {
    if let Some(clean) = replaced(s) {
        *s = Cow::Owned(clean);
    }
}

/// [`scrub_cow`] for text that is usually the program's own: a borrowed `'static` string
/// (a layer's policy and reason names) is a literal in the code, not request data, and is
/// left as it is; only owned text is checked.
fn scrub_owned_cow(s: &mut Cow<'static, str>) {
    if let Cow::Owned(owned) = s {
        scrub_string(owned);
    }
}

fn scrub_opt_arc(s: &mut Option<Arc<str>>) {
    if let Some(s) = s {
        scrub_arc(s);
    }
}

fn scrub_opt_string(s: &mut Option<String>) {
    if let Some(s) = s {
        scrub_string(s);
    }
}

/// Replaces NULs in every string and object key of `value`.
pub(crate) fn scrub_value(value: &mut Value) {
    match value {
        Value::String(s) => scrub_string(s),
        Value::Array(items) => items.iter_mut().for_each(scrub_value),
        Value::Object(map) => {
            if map.keys().any(|k| has_nul(k)) {
                let old = std::mem::take(map);
                *map = old
                    .into_iter()
                    .map(|(k, v)| (replaced(&k).unwrap_or(k), v))
                    .collect::<Map<_, _>>();
            }
            map.values_mut().for_each(scrub_value);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

impl AuditRecord {
    /// Replaces NULs in the text that comes from the caller's identity and from inner
    /// layers (user, customer, e-mail, roles, decisions, action, resource): the layer's
    /// own captures are clean by construction (see the module docs).
    pub(crate) fn scrub_nul_identity(&mut self) {
        scrub_opt_arc(&mut self.user_id);
        scrub_opt_arc(&mut self.customer_id);
        scrub_opt_arc(&mut self.email);
        if self.roles.iter().any(|r| has_nul(r)) {
            self.roles = self
                .roles
                .iter()
                .map(|r| replaced(r).unwrap_or_else(|| r.clone()))
                .collect();
        }
        for d in &mut self.decisions {
            scrub_owned_cow(&mut d.policy);
            if let Some(reason) = &mut d.reason {
                scrub_owned_cow(reason);
            }
        }
        self.policies_evaluated.iter_mut().for_each(scrub_owned_cow);
        scrub_opt_string(&mut self.action);
        scrub_opt_string(&mut self.resource);
        scrub_opt_string(&mut self.resource_id);
    }

    /// Replaces NULs in every string of the record: for records built elsewhere
    /// ([`AuditWriter::push`](crate::AuditWriter::push)) or read back from the spool.
    pub(crate) fn scrub_nul(&mut self) {
        self.scrub_nul_identity();
        scrub_arc(&mut self.correlation_id);
        scrub_opt_arc(&mut self.causation_id);
        if let Some(g) = &mut self.gateway_type {
            scrub_cow(g);
        }
        scrub_string(&mut self.request_id);
        scrub_cow(&mut self.http_method);
        scrub_string(&mut self.endpoint);
        scrub_value(&mut self.query_params);
        if let Some(body) = &mut self.request_body {
            scrub_value(body);
        }
        self.request_headers.scrub_nul();
        self.response_headers.scrub_nul();
        for d in &mut self.decisions {
            scrub_cow(&mut d.layer);
            scrub_cow(&mut d.outcome);
        }
        if let Some(t) = &mut self.error_type {
            scrub_cow(t);
        }
        if let Some(m) = &mut self.error_message {
            scrub_cow(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn has_nul_agrees_with_a_byte_search() {
        let mut text = String::new();
        for len in 0..40 {
            for at in 0..=len {
                text.clear();
                text.extend((0..len).map(|i| {
                    if i == at {
                        '\0'
                    } else {
                        char::from(b'a' + (i % 26) as u8)
                    }
                }));
                assert_eq!(has_nul(&text), at < len, "{len} {at}");
            }
        }
        // Bytes that borrow in the subtraction (0x01 after 0x00, 0x80 and above).
        assert!(!has_nul("\u{1}\u{1}\u{80}\u{ff}ab\u{1}c"));
        assert!(!has_nul("é\u{1}é\u{1}é\u{1}"));
    }

    #[test]
    fn escaped_nuls_are_spotted_and_scrubbed_in_strings_and_keys() {
        assert!(may_hold_escaped_nul(br#"{"a":"\u0000"}"#));
        assert!(may_hold_escaped_nul(br#"{"\u0000":1}"#));
        assert!(!may_hold_escaped_nul(br#"{"a":"\u0001","b":"\\"}"#));
        let mut v: Value =
            serde_json::from_slice(br#"{"a\u0000":["x\u0000y",{"k":"\u0000"}],"n":1}"#).unwrap();
        scrub_value(&mut v);
        assert_eq!(
            v,
            json!({"a\u{fffd}": ["x\u{fffd}y", {"k": "\u{fffd}"}], "n": 1})
        );
        assert!(!v.to_string().contains("\\u0000"));
    }

    #[test]
    fn every_text_field_of_a_record_is_scrubbed() {
        let mut r = crate::record::sample(1);
        r.user_id = Some("u\0".into());
        r.email = Some("e\0@x".into());
        r.roles = vec!["r\0".to_owned()].into();
        r.endpoint = "/p\0".into();
        r.correlation_id = "c\0".into();
        r.resource_id = Some("id\0".into());
        r.query_params = json!({"q\0": "\0"});
        r.request_body = Some(json!({"b": ["\0"]}));
        r.error_message = Some(Cow::Owned("m\0".into()));
        r.decisions[0].reason = Some(Cow::Owned("why\0".into()));
        r.request_headers =
            serde_json::from_value(json!({"x-a": "v\0", "x-b": ["w", "\0\0"], "ok": "1"})).unwrap();
        r.scrub_nul();
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("\\u0000"), "{text}");
        assert_eq!(r.user_id.as_deref(), Some("u\u{fffd}"));
        assert_eq!(r.query_params, json!({"q\u{fffd}": "\u{fffd}"}));
        assert_eq!(
            serde_json::to_value(&r.request_headers).unwrap(),
            json!({"x-a": "v\u{fffd}", "x-b": ["w", "\u{fffd}\u{fffd}"], "ok": "1"})
        );
    }
}
