//! The OpenAPI 3.1 fragment of the callback route.

use callback_fsm::{
    CallbackLayer, CallbackSecrets, CallbackService, MemoryJobStore, TransitionTable, openapi,
};
use serde_json::{Value, json};

const SECRET: &str = "primary-callback-secret-0123456789abcdef";

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn fragment_matches_the_contract() {
    let doc = CallbackService::new(
        CallbackSecrets::new([SECRET]).unwrap(),
        MemoryJobStore::new(),
    )
    .openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths.keys().collect::<Vec<_>>(),
        ["/internal/jobs/{jobId}/status"]
    );
    let op = &doc["paths"]["/internal/jobs/{jobId}/status"]["post"];
    assert_eq!(
        paths["/internal/jobs/{jobId}/status"]
            .as_object()
            .unwrap()
            .len(),
        1,
        "POST only"
    );

    let mut codes: Vec<&str> = op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, ["200", "204", "401", "404", "409"]);

    assert_eq!(op["security"], json!([{"internalCallbackSecret": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["internalCallbackSecret"],
        json!({"type": "apiKey", "in": "header", "name": "X-Callback-Secret",
               "description": "Shared secret of the orchestrator (compared in constant time)."})
    );
    assert_eq!(op["parameters"][0]["name"], "jobId");
    assert_eq!(op["parameters"][0]["in"], "path");

    let schemas = &doc["components"]["schemas"];
    let req = &schemas["StatusCallbackRequest"];
    assert_eq!(req["additionalProperties"], false);
    assert_eq!(
        req["required"],
        json!(["event_id", "status", "occurred_at"])
    );
    let mut fields: Vec<&str> = req["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "actor_type",
            "artifact_updates",
            "event_id",
            "failed_stage",
            "failure_code",
            "failure_message",
            "occurred_at",
            "status"
        ]
    );
    assert_eq!(req["properties"]["occurred_at"]["format"], "date-time");
    assert_eq!(
        req["properties"]["status"]["enum"],
        json!([
            "cancelled",
            "dispatched",
            "failed",
            "queued",
            "running",
            "succeeded"
        ])
    );

    // 409 is one of the four conflicts, told apart by `code`.
    let one_of = op["responses"]["409"]["content"]["application/problem+json"]["schema"]["oneOf"]
        .as_array()
        .unwrap();
    let mut conflict_codes: Vec<&str> = one_of
        .iter()
        .map(|r| {
            let name = r["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
            schemas[name]["properties"]["code"]["const"]
                .as_str()
                .unwrap()
        })
        .collect();
    conflict_codes.sort_unstable();
    assert_eq!(
        conflict_codes,
        [
            "CALLBACK_OUT_OF_ORDER",
            "EVENT_ID_PAYLOAD_MISMATCH",
            "FSM_TRANSITION_INVALID",
            "VALIDATION_ERROR"
        ]
    );
    assert_eq!(
        schemas["FsmTransitionError"]["properties"]["allowed_next_states"]["type"],
        "array"
    );
    assert_eq!(
        schemas["UnauthorizedError"]["properties"]["code"]["const"],
        "UNAUTHORIZED"
    );
    assert_eq!(
        schemas["NoLeakNotFoundError"]["properties"]["code"]["const"],
        "RESOURCE_NOT_FOUND"
    );
    assert!(op["responses"]["204"].get("content").is_none());

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() >= 8);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.get(name).is_some(), "{r} does not resolve");
    }
}

#[test]
fn fragment_follows_route_and_table() {
    let table = TransitionTable::empty().allow("new", ["done"]);
    let layer = CallbackLayer::new(
        CallbackSecrets::new([SECRET]).unwrap(),
        MemoryJobStore::new(),
    )
    .transitions(table.clone())
    .route("/v2/jobs/{job_id}/callback")
    .unwrap();
    let doc = layer.openapi();
    let op = &doc["paths"]["/v2/jobs/{jobId}/callback"]["post"];
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/StatusCallbackRequest"
    );
    assert_eq!(
        doc["components"]["schemas"]["StatusCallbackRequest"]["properties"]["status"]["enum"],
        json!(["done", "new"])
    );
    assert_eq!(openapi::fragment("/v2/jobs/{job_id}/callback", &table), doc);
}
