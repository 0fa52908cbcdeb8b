//! Estimates of how much memory a queued record holds, for the writer's byte budget.
//!
//! Estimates, not measurements: what the allocations of a value amount to (string and
//! vector capacities, B-tree nodes of JSON objects), without the allocator's overhead.
//! They are computed where a record is built anyway: a captured JSON body during the
//! redaction walk, the rest from lengths at hand when the record is queued.

use std::mem::size_of;

use serde_json::Value;

use crate::record::AuditRecord;

/// Bytes of one B-tree node of a JSON object (`serde_json::Map` is a `BTreeMap` of up
/// to 11 `String` keys and `Value`s per node, with its links).
const MAP_NODE: usize = 11 * (size_of::<String>() + size_of::<Value>()) + 16;

/// Heap bytes of `value`'s own allocation (its string, its item vector, its map nodes),
/// not counting its items' or keys' own allocations.
pub(crate) fn node_bytes(value: &Value) -> usize {
    match value {
        Value::String(s) => s.capacity(),
        Value::Array(items) => items.capacity() * size_of::<Value>(),
        // One node up to 11 entries; past that, nodes are between half and fully used.
        Value::Object(map) => match map.len() {
            0 => 0,
            1..=11 => MAP_NODE,
            n => MAP_NODE * n.div_ceil(6),
        },
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// Heap bytes of `value` and everything in it.
pub(crate) fn value_bytes(value: &Value) -> usize {
    node_bytes(value)
        + match value {
            Value::Array(items) => items.iter().map(value_bytes).sum(),
            Value::Object(map) => map.iter().map(|(k, v)| k.capacity() + value_bytes(v)).sum(),
            _ => 0,
        }
}

impl AuditRecord {
    /// Bytes the record holds, itself and on the heap (shared strings counted in full).
    pub(crate) fn estimated_bytes(&self) -> usize {
        let opt = |s: &Option<std::sync::Arc<str>>| s.as_ref().map_or(0, |s| s.len());
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        size_of::<Self>()
            + self.correlation_id.len()
            + opt(&self.causation_id)
            + self.request_id.capacity()
            + self.endpoint.capacity()
            + value_bytes(&self.query_params)
            + self.request_headers.heap_bytes()
            + self.request_body.as_ref().map_or(0, value_bytes)
            + opt(&self.user_id)
            + opt(&self.customer_id)
            + opt(&self.email)
            + self.policies_evaluated.capacity() * size_of::<std::borrow::Cow<'static, str>>()
            + self.decisions.capacity() * size_of::<crate::record::AuditDecision>()
            + self.response_headers.heap_bytes()
            + text(&self.action)
            + text(&self.resource)
            + text(&self.resource_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_values_in_many_objects_weigh_far_more_than_their_text() {
        // 8 KiB of `{"a":0},` is a thousand one-entry objects: a B-tree node each.
        let text = format!("[{}]", vec![r#"{"a":0}"#; 1000].join(","));
        let v: Value = serde_json::from_str(&text).unwrap();
        let bytes = value_bytes(&v);
        assert!(bytes > 500 * 1024, "{bytes}");
        assert!(value_bytes(&json!({"page": "2"})) < 1024);
        assert_eq!(value_bytes(&json!(null)), 0);
    }
}
