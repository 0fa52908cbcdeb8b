//! Operator endpoints: liveness, readiness, metrics, problem type pages, OpenAPI.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use gw_problem::{CATALOGUE, Problem, ProblemType};
use http::{StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};

use crate::ready::Readiness;

/// A readiness check: a backend the gateway needs (Redis, PostgreSQL, the JWKS endpoint).
pub trait ReadyCheck: Send + Sync + 'static {
    /// Name shown in the `/ready` report.
    fn name(&self) -> &str;
    /// `Ok` when ready, otherwise why not (no secrets: this is served to clients).
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// State shared by the operator endpoints.
#[derive(Clone)]
pub struct Ops {
    /// The checks behind `/ready` (cached briefly, one run at a time).
    pub readiness: Arc<Readiness>,
    /// Renders `/metrics`; `None` when another recorder was already installed.
    pub metrics: Option<PrometheusHandle>,
    /// The document served at `/openapi.json`.
    pub openapi: Arc<Value>,
}

/// `GET /health`, `/healthz`: the process is up.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: every check passes (200) or not (503), with a per-check report. The
/// report may be up to [`CACHE_TTL`](crate::ready::CACHE_TTL) old.
pub async fn ready(State(ops): State<Ops>) -> Response {
    let report = ops.readiness.report().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report.body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(ops): State<Ops>) -> Response {
    match &ops.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => Problem::new(ProblemType::SERVICE_UNAVAILABLE)
            .code("metrics-unavailable")
            .into_response(),
    }
}

/// `GET /openapi.json`.
pub async fn openapi(State(ops): State<Ops>) -> Json<Value> {
    Json((*ops.openapi).clone())
}

/// `GET /problems`: the catalogue as JSON.
pub async fn problems() -> Json<Value> {
    Json(Value::Array(
        CATALOGUE
            .iter()
            .map(|t| json!({"slug": t.slug, "title": t.title, "status": t.status.as_u16(), "description": t.description}))
            .collect(),
    ))
}

/// Any method but `GET` and `HEAD` on an operator endpoint: 405 `method-not-allowed`.
pub async fn method_not_allowed() -> Response {
    Problem::new(ProblemType::METHOD_NOT_ALLOWED)
        .code("method-not-allowed")
        .into_response()
}

/// `GET /problems/{slug}`: a human-readable page, so problem `type` URIs resolve. A slug
/// that does not decode (`%ff`) names no type either: 404 like an unknown one.
pub async fn problem_page(slug: Result<Path<String>, PathRejection>) -> Response {
    let t = slug.ok().and_then(|Path(slug)| ProblemType::by_slug(&slug));
    let Some(t) = t else {
        return Problem::new(ProblemType::NOT_FOUND)
            .code("unknown-problem-type")
            .into_response();
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>HTTP status <strong>{status}</strong></p><p>{desc}</p>\
         <p>Problem type <code>{slug}</code>. Responses of this type are \
         <code>application/problem+json</code> documents with a stable <code>code</code> \
         member and the request's <code>correlation_id</code>.</p></body></html>",
        title = t.title,
        status = t.status.as_u16(),
        desc = t.description,
        slug = t.slug,
    ))
    .into_response()
}

/// The base OpenAPI 3.1 document: the operator endpoints. Layer crates add their routes.
pub fn base_openapi() -> Value {
    let simple = |summary: &str| json!({"get": {"summary": summary, "security": [], "responses": {"200": {"description": "OK"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "gw example gateway", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/health": simple("Liveness"),
            "/healthz": simple("Liveness"),
            "/ready": {"get": {"summary": "Readiness of every backend", "security": [], "responses": {
                "200": {"description": "Ready"}, "503": {"description": "A backend is not ready"}}}},
            "/metrics": simple("Prometheus metrics"),
            "/problems/{slug}": {"get": {"summary": "Problem type documentation", "security": [],
                "parameters": [{"name": "slug", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "HTML page"}, "404": {"description": "Unknown type"}}}}
        },
        "components": {"securitySchemes": {}}
    })
}

/// Adds a fragment's `paths` and `components` to `doc`.
pub fn merge_openapi(doc: &mut Value, fragment: &Value) {
    for section in ["paths", "components"] {
        let Some(src) = fragment.get(section).and_then(Value::as_object) else {
            continue;
        };
        let dst = doc[section]
            .as_object_mut()
            .expect("base document has the section");
        for (k, v) in src {
            match (dst.get_mut(k), v) {
                (Some(Value::Object(d)), Value::Object(s)) => {
                    d.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())))
                }
                _ => {
                    dst.insert(k.clone(), v.clone());
                }
            }
        }
    }
}
