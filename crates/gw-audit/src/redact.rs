//! Redaction of headers, query parameters and JSON body fields.
//!
//! Headers are matched by exact name; body and query fields by the rules in [`names`]
//! (normalized names, secret words anywhere in them).

use std::sync::Arc;

use http::HeaderMap;
use http::header::HeaderName;
use serde_json::map::Entry;
use serde_json::{Map, Value};

use crate::record::HeaderFields;
use crate::{nul, size};

mod names;

use names::Secrecy;
pub use names::{DEFAULT_REDACTED_FIELDS, SECRET_FIELD_WORDS};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "***REDACTED***";

/// Headers that are always redacted: `Authorization`, `Proxy-Authorization`, `Cookie`,
/// `Set-Cookie`, `X-API-Key`, `X-Callback-Secret`, `X-Service-Signature`,
/// `X-Governor-Approval` (gw-policy's approval token) and `X-Auth-Token`. Header names are
/// matched exactly (add others with `AuditLayer::redact_headers`).
pub const DEFAULT_REDACTED_HEADERS: [&str; 9] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-callback-secret",
    "x-service-signature",
    "x-governor-approval",
    "x-auth-token",
];

/// The redaction rules of one [`AuditLayer`](crate::AuditLayer).
#[derive(Debug, Clone)]
pub(crate) struct Redactor {
    headers: Arc<[HeaderName]>,
    // The `name_bit`s of the redacted header names: most other headers are told apart by
    // one test, without comparing names.
    header_bits: u64,
    // Field names redacted on an exact match, in normal form (see `names`).
    fields: Arc<[Box<[u8]>]>,
    // Bit `n` is set when a listed field name is `n` bytes long (63 for 63 and more).
    field_lengths: u64,
}

impl Default for Redactor {
    fn default() -> Self {
        let mut redactor = Self {
            headers: Arc::from([]),
            header_bits: 0,
            fields: Arc::from([]),
            field_lengths: 0,
        };
        redactor.add_headers(DEFAULT_REDACTED_HEADERS.map(HeaderName::from_static));
        redactor.add_fields(DEFAULT_REDACTED_FIELDS.map(str::to_owned));
        redactor
    }
}

/// One of 64 bits for a header name, from its length and three of its bytes: cheap to
/// compute, and for the default redacted names it tells the common other headers apart.
fn name_bit(name: &str) -> u64 {
    let b = name.as_bytes();
    let (first, mid, last) = match b {
        [] => (0, 0, 0),
        [first, .., last] => (*first, b[b.len() / 2], *last),
        [only] => (*only, *only, *only),
    };
    let h = 2 * b.len() + 2 * usize::from(last) + 4 * usize::from(first) + usize::from(mid);
    1 << (h % 64)
}

fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

impl Redactor {
    /// Redacts the headers `names` too.
    pub(crate) fn add_headers(&mut self, names: impl IntoIterator<Item = HeaderName>) {
        let mut all = self.headers.to_vec();
        all.extend(names);
        self.header_bits = all.iter().fold(0, |m, n| m | name_bit(n.as_str()));
        self.headers = all.into();
    }

    /// Redacts the fields `names` too (compared in normal form).
    pub(crate) fn add_fields(&mut self, names: impl IntoIterator<Item = String>) {
        let mut all = self.fields.to_vec();
        all.extend(
            names
                .into_iter()
                .map(|n| names::normal(&n))
                .filter(|n| !n.is_empty())
                .map(|n| n.into_bytes().into_boxed_slice()),
        );
        self.field_lengths = all.iter().fold(0, |m, n| m | length_bit(n.len()));
        self.fields = all.into();
    }

    /// Whether the header `name` (whose text is `text`) is redacted.
    fn is_redacted_header(&self, name: &HeaderName, text: &str) -> bool {
        self.header_bits & name_bit(text) != 0 && self.headers.contains(name)
    }

    /// A snapshot of `headers` in which every redacted header's values are replaced.
    pub(crate) fn headers(&self, headers: &HeaderMap) -> HeaderFields {
        HeaderFields::snapshot(
            headers,
            |name, text| self.is_redacted_header(name, text),
            REDACTED,
        )
    }

    /// Whether field `name` is secret (see [`names`] for the rules).
    fn secrecy(&self, name: &str) -> Secrecy {
        names::with_normal(name, |n| {
            if self.is_listed(n) {
                Secrecy::Secret
            } else if n.may_hold_word {
                names::words(n.text)
            } else {
                Secrecy::Plain
            }
        })
    }

    /// Whether a part of `n`, or its parts joined, is a listed field name.
    fn is_listed(&self, n: names::Normal<'_>) -> bool {
        let listed = |len: usize, eq: &dyn Fn(&[u8]) -> bool| {
            self.field_lengths & length_bit(len) != 0 && self.fields.iter().any(|f| eq(f))
        };
        if !n.nested {
            return listed(n.text.len(), &|f| f == n.text);
        }
        n.parts().any(|p| listed(p.len(), &|f| f == p))
            || listed(n.joined_len(), &|f| n.joined_eq(f))
    }

    /// Replaces the values of secret fields, at any depth; returns the estimated heap
    /// bytes of the result (`crate::size`), counted on the way.
    pub(crate) fn json(&self, value: &mut Value) -> usize {
        let own = size::node_bytes(value);
        own + match value {
            Value::Object(map) => {
                let mut bytes = 0;
                for (k, v) in map.iter_mut() {
                    bytes += k.capacity();
                    match self.secrecy(k) {
                        Secrecy::Secret => *v = Value::String(REDACTED.to_owned()),
                        Secrecy::TokenCount if !v.is_number() => {
                            *v = Value::String(REDACTED.to_owned());
                        }
                        Secrecy::TokenCount | Secrecy::Plain => {
                            bytes += self.json(v);
                            continue;
                        }
                    }
                    bytes += REDACTED.len();
                }
                bytes
            }
            Value::Array(items) => items.iter_mut().map(|v| self.json(v)).sum(),
            _ => 0,
        }
    }

    /// The query string as a JSON object, with redacted fields.
    pub(crate) fn query(&self, query: Option<&str>) -> Value {
        let mut map = Map::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k);
            let v = match self.secrecy(&k) {
                Secrecy::Secret => REDACTED.to_owned(),
                Secrecy::TokenCount if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) => {
                    REDACTED.to_owned()
                }
                Secrecy::TokenCount | Secrecy::Plain => percent_decode(v),
            };
            match map.entry(k) {
                Entry::Vacant(slot) => {
                    slot.insert(Value::String(v));
                }
                Entry::Occupied(mut slot) => match slot.get_mut() {
                    Value::Array(items) => items.push(Value::String(v)),
                    prev => {
                        let first = prev.take();
                        *prev = Value::Array(vec![first, Value::String(v)]);
                    }
                },
            }
        }
        Value::Object(map)
    }
}

fn percent_decode(s: &str) -> String {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    match h << 4 | l {
                        // PostgreSQL cannot store a NUL: `%00` is kept as U+FFFD.
                        0 => out.extend_from_slice(
                            nul::REPLACEMENT.encode_utf8(&mut [0; 4]).as_bytes(),
                        ),
                        b => out.push(b),
                    }
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_headers_are_redacted_and_others_kept() {
        let mut h = HeaderMap::new();
        for name in DEFAULT_REDACTED_HEADERS {
            h.insert(HeaderName::from_static(name), "s3cr3t".parse().unwrap());
        }
        h.append("cookie", "second=1".parse().unwrap());
        h.insert("accept", "application/json".parse().unwrap());
        let out = serde_json::to_value(Redactor::default().headers(&h)).unwrap();
        for name in DEFAULT_REDACTED_HEADERS {
            if name == "cookie" {
                // Each value is replaced; the number of values stays visible.
                assert_eq!(out[name], json!([REDACTED, REDACTED]));
            } else {
                assert_eq!(out[name], REDACTED, "{name}");
            }
        }
        assert_eq!(out["accept"], "application/json");
        assert!(!out.to_string().contains("s3cr3t") && !out.to_string().contains("second"));
    }

    #[test]
    fn values_that_are_not_utf8_are_kept_lossily_and_still_redacted() {
        let mut h = HeaderMap::new();
        h.insert("accept", "text/plain".parse().unwrap());
        h.insert(
            "authorization",
            http::HeaderValue::from_bytes(b"s3cr3t\xff").unwrap(),
        );
        h.append("x-bin", http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
        h.append("x-bin", "plain".parse().unwrap());
        h.insert("cookie", "s3cr3t=1".parse().unwrap());
        let out = Redactor::default().headers(&h);
        assert_eq!(out.len(), 5);
        assert_eq!(out.get("accept"), Some("text/plain"));
        assert_eq!(out.get("authorization"), Some(REDACTED));
        assert_eq!(out.get("cookie"), Some(REDACTED));
        assert_eq!(
            out.get_all("x-bin").collect::<Vec<_>>(),
            ["caf\u{fffd}", "plain"]
        );
        assert!(!out.iter().any(|(_, v)| v.contains("s3cr3t")));
    }

    #[test]
    fn nested_fields_and_query_params_are_redacted() {
        let r = Redactor::default();
        let mut body = json!({"user": {"Password": "p", "name": "n"},
                              "items": [{"token": "t"}], "secret": {"deep": 1}});
        r.json(&mut body);
        assert_eq!(
            body,
            json!({"user": {"Password": REDACTED, "name": "n"},
                   "items": [{"token": REDACTED}], "secret": REDACTED})
        );
        let q = r.query(Some("a=1&a=2&token=xyz&name=J%C3%BCrgen+M&flag&bad=%zz%4"));
        assert_eq!(
            q,
            json!({"a": ["1", "2"], "token": REDACTED, "name": "Jürgen M", "flag": "",
                   "bad": "%zz%4"})
        );
    }

    #[test]
    fn a_secret_word_in_any_part_of_a_nested_name_redacts_it() {
        let r = Redactor::default();
        let q = r.query(Some(
            "token[0]=abc&password[0]=p&api_key[0]=k&secret[value]=s&private.key=pk\
             &user[pin]=1234&pin[0]=4321&max_tokens[0]=5&tokens[sms]=123456\
             &usage.prompt_tokens=7&page[0]=2",
        ));
        assert_eq!(
            q,
            json!({"token[0]": REDACTED, "password[0]": REDACTED, "api_key[0]": REDACTED,
                   "secret[value]": REDACTED, "private.key": REDACTED,
                   "user[pin]": REDACTED, "pin[0]": REDACTED, "max_tokens[0]": "5",
                   "tokens[sms]": REDACTED, "usage.prompt_tokens": "7", "page[0]": "2"})
        );
        let mut body = json!({"password[0]": "p", "secret.value": "s", "a.b": "kept"});
        r.json(&mut body);
        assert_eq!(
            body,
            json!({"password[0]": REDACTED, "secret.value": REDACTED, "a.b": "kept"})
        );
    }

    #[test]
    fn numbers_are_kept_only_under_names_that_count_tokens() {
        let r = Redactor::default();
        let q = r.query(Some(
            "token_sms=123456&tokenSerial=42&token_counter=7&max_tokens=100\
             &tokens_used=9&prompt_tokens=3&token_count=4&tokens=abc",
        ));
        assert_eq!(
            q,
            json!({"token_sms": REDACTED, "tokenSerial": REDACTED, "token_counter": REDACTED,
                   "max_tokens": "100", "tokens_used": "9", "prompt_tokens": "3",
                   "token_count": "4", "tokens": REDACTED})
        );
        let mut body = json!({"token_sms": 123456, "tokenSerial": 42, "max_tokens": 100,
                              "usage": {"total_tokens": 12}});
        r.json(&mut body);
        assert_eq!(
            body,
            json!({"token_sms": REDACTED, "tokenSerial": REDACTED, "max_tokens": 100,
                   "usage": {"total_tokens": 12}})
        );
    }

    #[test]
    fn listed_names_match_any_part_or_the_parts_joined() {
        let mut r = Redactor::default();
        r.add_fields(["session_id".to_owned(), "card[number]".to_owned()]);
        let q = r.query(Some(
            "user[session-id]=a&sessionId=b&card.number=c&cardNumber=d&number=e&card=f",
        ));
        assert_eq!(
            q,
            json!({"user[session-id]": REDACTED, "sessionId": REDACTED,
                   "card.number": REDACTED, "cardNumber": REDACTED, "number": "e",
                   "card": "f"})
        );
    }
}
