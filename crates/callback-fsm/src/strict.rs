//! [`StrictValue`]: a JSON value read with repeated object keys refused at every depth.
//!
//! `serde_json::Value` keeps the last of repeated keys, so `{"url":"a","url":"b"}` would
//! be accepted as `{"url":"b"}`: two readers of the same body could disagree on what it
//! says. This reader builds the same `Value` but notes the first repeated key instead.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value, or why it is refused (a repeated key, named).
///
/// Deserializing never fails for a refusal: the rest of the document is still consumed,
/// so the caller can name the field it came from.
pub(crate) struct StrictValue(pub(crate) Result<Value, String>);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Ok(Value::Bool(v))))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Ok(Value::Number(v.into()))))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Ok(Value::Number(v.into()))))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictValue, E> {
        // JSON text has no NaN or infinity; mirror serde_json's own visitor anyway.
        Ok(StrictValue(Ok(
            Number::from_f64(v).map_or(Value::Null, Value::Number)
        )))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Ok(Value::String(v.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Ok(Value::String(v))))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Ok(Value::Null)))
    }

    fn visit_none<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Ok(Value::Null)))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StrictValue, D::Error> {
        StrictValue::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(StrictValue(item)) = seq.next_element()? {
            match item {
                Ok(item) => items.push(item),
                Err(why) => return drain_seq(seq, why),
            }
        }
        Ok(StrictValue(Ok(Value::Array(items))))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictValue, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                access.next_value::<IgnoredAny>()?;
                return drain_map(access, format!("duplicate key {key:?}"));
            }
            match access.next_value::<StrictValue>()?.0 {
                Ok(value) => {
                    map.insert(key, value);
                }
                Err(why) => return drain_map(access, why),
            }
        }
        Ok(StrictValue(Ok(Value::Object(map))))
    }
}

/// Reads the rest of a refused array (it must still be well-formed JSON).
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A, why: String) -> Result<StrictValue, A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(StrictValue(Err(why)))
}

/// Reads the rest of a refused object (it must still be well-formed JSON).
fn drain_map<'de, A: MapAccess<'de>>(mut map: A, why: String) -> Result<StrictValue, A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(StrictValue(Err(why)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Value, String> {
        serde_json::from_str::<StrictValue>(text)
            .map_err(|e| format!("syntax: {e}"))?
            .0
    }

    #[test]
    fn builds_the_same_value_as_serde_json() {
        for text in [
            r#"{"b":[1,-2,3.5,true,null,"x"],"a":{"c":{}},"é":[]}"#,
            r#"[{"a":1},{"a":1},[[]],18446744073709551615,-9223372036854775808,1e308]"#,
            r#""just a string""#,
            "0",
        ] {
            let want: Value = serde_json::from_str(text).unwrap();
            assert_eq!(read(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_repeated_keys_at_any_depth() {
        for (text, key) in [
            (r#"{"url":"https://good","url":"https://evil"}"#, "url"),
            (r#"{"a":{"x":1,"y":2,"x":1}}"#, "x"),
            (r#"[1,[{"k":[{"d":1,"d":2}]}],3]"#, "d"),
            (r#"{"a":{"b":{"c":1,"c":1}},"z":[1,2]}"#, "c"),
            (r#"{"":1,"":2}"#, ""),
        ] {
            assert_eq!(read(text), Err(format!("duplicate key {key:?}")), "{text}");
        }
        // Equal keys in sibling objects are not repeats.
        assert!(read(r#"[{"a":1},{"a":2},{"x":{"a":3}}]"#).is_ok());
    }

    #[test]
    fn malformed_json_after_a_repeat_is_still_a_syntax_error() {
        assert!(
            read(r#"{"a":1,"a":2,"b":}"#)
                .unwrap_err()
                .starts_with("syntax")
        );
        assert!(
            read(r#"[{"a":1,"a":2},"#)
                .unwrap_err()
                .starts_with("syntax")
        );
    }
}
