//! Correlation and causation ids carried by every request.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use http::header::HeaderName;

/// Header that carries the [`CorrelationId`]: `X-Correlation-ID`.
pub const CORRELATION_ID_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");
/// Header that carries the [`CausationId`]: `X-Request-ID`.
pub const CAUSATION_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest inbound id we accept.
pub const MAX_ID_LEN: usize = 128;

/// Whether `value` is an acceptable inbound id: 1 to 128 characters of `[A-Za-z0-9._:-]`.
///
/// Anything else (empty, too long, spaces, quotes, control characters, non-ASCII) could be
/// used to inject into logs or headers downstream, so it is refused.
pub fn is_valid_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Accepts `value` if it passes [`is_valid_id`].
            pub fn parse(value: &[u8]) -> Option<Self> {
                if is_valid_id(value) {
                    // Valid ids are ASCII, hence UTF-8.
                    std::str::from_utf8(value).ok().map(|s| Self(Arc::from(s)))
                } else {
                    None
                }
            }

            /// Accepts a header value if it passes [`is_valid_id`].
            pub fn from_header(value: &HeaderValue) -> Option<Self> {
                Self::parse(value.as_bytes())
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as a header value.
            pub fn to_header_value(&self) -> HeaderValue {
                HeaderValue::from_str(&self.0).expect("validated ids are valid header values")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&&*self.0).finish()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// The id's shared string, without a copy.
        impl From<$name> for Arc<str> {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

id_type! {
    /// The id that ties together every log line, audit record and upstream call of one
    /// logical request (`X-Correlation-ID`). Taken from the client when valid, otherwise a
    /// fresh UUIDv7.
    CorrelationId
}

id_type! {
    /// The id of the request that caused this one (`X-Request-ID`), when the caller sent one.
    CausationId
}

impl CorrelationId {
    /// A fresh, time-ordered UUIDv7 id.
    pub fn generate() -> Self {
        let mut buf = uuid::Uuid::encode_buffer();
        let s = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
        Self(Arc::from(&*s))
    }

    /// The inbound id if there is one and it is valid, otherwise a fresh one.
    pub fn from_header_or_generate(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(Self::from_header)
            .unwrap_or_else(Self::generate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_ids() {
        for ok in ["abc", "A-1_b.c:d", &"x".repeat(128)] {
            assert!(CorrelationId::parse(ok.as_bytes()).is_some(), "{ok}");
        }
    }

    #[test]
    fn refuses_hostile_ids() {
        for bad in [
            "",
            " ",
            "a b",
            "a\r\nx-evil: 1",
            "ünï",
            "a/b",
            "<script>",
            &"x".repeat(129),
        ] {
            assert!(CorrelationId::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn generates_uuid_v7_when_missing_or_invalid() {
        let bad = HeaderValue::from_static("not valid!");
        for id in [
            CorrelationId::from_header_or_generate(None),
            CorrelationId::from_header_or_generate(Some(&bad)),
        ] {
            let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
            assert_eq!(parsed.get_version_num(), 7);
        }
        let good = HeaderValue::from_static("req-42");
        assert_eq!(
            CorrelationId::from_header_or_generate(Some(&good)).as_str(),
            "req-42"
        );
    }
}
