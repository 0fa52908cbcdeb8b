//! The OpenAPI 3.1 description of the callback route.

use serde_json::{Value, json};

use crate::event::MAX_EVENT_ID_LEN;
use crate::fsm::TransitionTable;
use crate::handler::codes;
use crate::secret::CALLBACK_SECRET_HEADER;

/// Name of the security scheme in `components.securitySchemes`.
pub const SECURITY_SCHEME: &str = "internalCallbackSecret";

/// An OpenAPI 3.1 document fragment (`openapi`, `paths`, `components`) for `POST` on
/// `route` (a gw route pattern; `{job_id}` is documented as `{jobId}`), with `status`
/// enumerating the statuses of `table`. Responses are exactly 200, 204, 401, 404 and 409;
/// the security scheme is [`SECURITY_SCHEME`], an `apiKey` in header `X-Callback-Secret`.
/// Merge `paths` and `components` into the gateway's own document.
pub fn fragment(route: &str, table: &TransitionTable) -> Value {
    let path = route.replace("{job_id}", "{jobId}");
    let statuses: Vec<&str> = table.statuses().collect();
    let problem = |code: Value, extra: Value| {
        let mut schema = json!({
            "type": "object",
            "required": ["type", "title", "status", "code"],
            "properties": {
                "type": {"type": "string", "format": "uri-reference"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "code": code,
                "correlation_id": {"type": "string"}
            }
        });
        if let (Some(props), Value::Object(extra)) = (schema["properties"].as_object_mut(), extra) {
            props.extend(extra);
        }
        schema
    };
    let code = |c: &str| json!({"const": c});
    let reference = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let problem_content = |schema: Value| json!({"application/problem+json": {"schema": schema}});
    json!({
        "openapi": "3.1.0",
        "paths": {
            path: {
                "post": {
                    "operationId": "postInternalJobStatus",
                    "summary": "Report a job status change (internal orchestrator callback)",
                    "tags": ["internal"],
                    "security": [{SECURITY_SCHEME: []}],
                    "parameters": [{
                        "name": "jobId",
                        "in": "path",
                        "required": true,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 256}
                    }],
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": reference("StatusCallbackRequest")}}
                    },
                    "responses": {
                        "200": {
                            "description": "Idempotent replay: this event was already applied with the same payload; nothing changed.",
                            "content": {"application/json": {"schema": reference("CallbackReplayResponse")}}
                        },
                        "204": {"description": "The status change was applied."},
                        "401": {
                            "description": "Missing or invalid X-Callback-Secret.",
                            "content": problem_content(reference("UnauthorizedError"))
                        },
                        "404": {
                            "description": "No such job (indistinguishable from a job the caller may not see).",
                            "content": problem_content(reference("NoLeakNotFoundError"))
                        },
                        "409": {
                            "description": "Invalid body, event id reused with another payload, out-of-order event, or a transition the FSM does not allow.",
                            "content": problem_content(json!({"oneOf": [
                                reference("CallbackValidationError"),
                                reference("EventIdPayloadMismatchError"),
                                reference("CallbackOrderingError"),
                                reference("FsmTransitionError")
                            ]}))
                        }
                    }
                }
            }
        },
        "components": {
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": header_name(),
                    "description": "Shared secret of the orchestrator (compared in constant time)."
                }
            },
            "schemas": {
                "StatusCallbackRequest": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["event_id", "status", "occurred_at"],
                    "properties": {
                        "event_id": {"type": "string", "minLength": 1, "maxLength": MAX_EVENT_ID_LEN},
                        "status": {"type": "string", "enum": statuses},
                        "occurred_at": {"type": "string", "format": "date-time"},
                        "actor_type": {"type": ["string", "null"]},
                        "artifact_updates": {"type": ["object", "array", "null"]},
                        "failure_code": {"type": ["string", "null"]},
                        "failure_message": {"type": ["string", "null"]},
                        "failed_stage": {"type": ["string", "null"]}
                    }
                },
                "CallbackReplayResponse": {
                    "type": "object",
                    "required": ["job_id", "event_id", "status", "replayed"],
                    "properties": {
                        "job_id": {"type": "string"},
                        "event_id": {"type": "string"},
                        "status": {"type": "string", "description": "The job's current status."},
                        "replayed": {"const": true}
                    }
                },
                "UnauthorizedError": problem(code(codes::UNAUTHORIZED), json!({})),
                "NoLeakNotFoundError": problem(code(codes::RESOURCE_NOT_FOUND), json!({})),
                "CallbackValidationError": problem(
                    code(codes::VALIDATION_ERROR),
                    json!({"field": {"type": "string"}})
                ),
                "EventIdPayloadMismatchError": problem(
                    code(codes::EVENT_ID_PAYLOAD_MISMATCH),
                    json!({"event_id": {"type": "string"}})
                ),
                "CallbackOrderingError": problem(
                    code(codes::CALLBACK_OUT_OF_ORDER),
                    json!({
                        "occurred_at": {"type": "string", "format": "date-time"},
                        "latest_applied_occurred_at": {"type": "string", "format": "date-time"}
                    })
                ),
                "FsmTransitionError": problem(
                    code(codes::FSM_TRANSITION_INVALID),
                    json!({
                        "current_state": {"type": "string"},
                        "requested_state": {"type": "string"},
                        "allowed_next_states": {"type": "array", "items": {"type": "string"}}
                    })
                )
            }
        }
    })
}

fn header_name() -> &'static str {
    debug_assert_eq!(CALLBACK_SECRET_HEADER, "x-callback-secret");
    "X-Callback-Secret"
}

impl<B> crate::CallbackService<B> {
    /// [`fragment`] for this endpoint's route and transition table.
    pub fn openapi(&self) -> Value {
        fragment(&self.shared.route_spec, &self.shared.table)
    }
}

impl crate::CallbackLayer {
    /// [`fragment`] for this layer's route and transition table.
    pub fn openapi(&self) -> Value {
        self.service().openapi()
    }
}
