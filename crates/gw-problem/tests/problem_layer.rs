//! ProblemLayer and Problem behaviour.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use gw_core::{CausationId, CorrelationId, PathError};
use gw_problem::{BareErrors, Problem, ProblemContext, ProblemLayer, ProblemType};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

async fn json_body(res: Response<Body>) -> Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::default()).unwrap()
}

#[test]
fn serializes_rfc9457_section3_example() {
    // RFC 9457, section 3: the out-of-credit example, with its extension members.
    const OUT_OF_CREDIT: ProblemType = ProblemType::new(
        "out-of-credit",
        "You do not have enough credit.",
        StatusCode::FORBIDDEN,
        "The account balance does not cover the cost.",
    );
    let p = Problem::new(OUT_OF_CREDIT)
        .type_base("https://example.com/probs")
        .detail("Your current balance is 30, but that costs 50.")
        .instance("/account/12345/msgs/abc")
        .with("balance", 30)
        .with("accounts", ["/account/12345", "/account/67890"]);
    let got: Value = serde_json::from_slice(&p.to_json()).unwrap();
    assert_eq!(
        got,
        json!({
            "type": "https://example.com/probs/out-of-credit",
            "title": "You do not have enough credit.",
            "status": 403,
            "detail": "Your current balance is 30, but that costs 50.",
            "instance": "/account/12345/msgs/abc",
            "balance": 30,
            "accounts": ["/account/12345", "/account/67890"],
            "code": "out-of-credit"
        })
    );
}

#[test]
fn serializes_rfc9457_validation_example_and_about_blank() {
    // RFC 9457, section 3: the validation example with an `errors` array.
    let p = Problem::new(ProblemType::new(
        "validation-error",
        "Your request is not valid.",
        StatusCode::UNPROCESSABLE_ENTITY,
        "",
    ))
    .type_base("https://example.net")
    .with(
        "errors",
        json!([
            {"detail": "must be a positive integer", "pointer": "#/age"},
            {"detail": "must be 'green', 'red' or 'blue'", "pointer": "#/profile/color"}
        ]),
    );
    let got: Value = serde_json::from_slice(&p.to_json()).unwrap();
    assert_eq!(got["type"], "https://example.net/validation-error");
    assert_eq!(got["status"], 422);
    assert_eq!(got["errors"][1]["pointer"], "#/profile/color");

    // Section 4.2.1: about:blank uses the status phrase as title and is never prefixed.
    let blank =
        Problem::new(ProblemType::for_status(StatusCode::IM_A_TEAPOT)).type_base("https://x");
    let got: Value = serde_json::from_slice(&blank.to_json()).unwrap();
    assert_eq!(got["type"], "about:blank");
    assert_eq!(got["title"], "I'm a teapot");
}

#[test]
fn reserved_members_cannot_be_overridden() {
    let p = Problem::new(ProblemType::CONFLICT)
        .with("status", 200)
        .with("type", "x")
        .code("EVENT_ID_PAYLOAD_MISMATCH");
    let got: Value = serde_json::from_slice(&p.to_json()).unwrap();
    assert_eq!(got["status"], 409);
    assert_eq!(got["type"], "/problems/conflict");
    assert_eq!(got["code"], "EVENT_ID_PAYLOAD_MISMATCH");
    assert_eq!(p.reason_code(), "EVENT_ID_PAYLOAD_MISMATCH");
}

#[test]
fn path_errors_become_400_with_stable_code() {
    let res: Response<Body> = Problem::from(PathError::EncodedSlash).into_response();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let p = res.extensions().get::<Problem>().unwrap();
    assert_eq!(p.reason_code(), "ambiguous-path");
    assert_eq!(p.extension("path_error").unwrap(), "encoded-slash");
}

#[tokio::test]
async fn correlation_id_is_accepted_or_generated_and_echoed() {
    let svc = ServiceBuilder::new().layer(ProblemLayer::new()).service_fn(
        |req: Request<Body>| async move {
            let id = req.extensions().get::<CorrelationId>().unwrap().clone();
            assert_eq!(req.headers()["x-correlation-id"], id.as_str());
            let cause = req.extensions().get::<CausationId>().map(|c| c.to_string());
            let body = format!("{id}|{}", cause.unwrap_or_default());
            Ok::<_, Infallible>(Response::new(Body::from(body)))
        },
    );

    let req = Request::get("/")
        .header("x-correlation-id", "abc-123")
        .header("x-request-id", "parent-9")
        .body(Body::default())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-correlation-id"], "abc-123");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "abc-123|parent-9");

    // Invalid inbound id (header injection attempt): replaced by a UUIDv7.
    let req = Request::get("/")
        .header("x-correlation-id", "evil id\"")
        .body(Body::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let echoed = res.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(echoed, "evil id\"");
    assert_eq!(uuid_version(&echoed), 7);
}

fn uuid_version(s: &str) -> u32 {
    // xxxxxxxx-xxxx-Vxxx-...
    s.as_bytes()[14].to_ascii_lowercase() as u32 - b'0' as u32
}

/// A service whose `call` itself panics (before returning a future).
#[derive(Clone)]
struct PanicInCall;

impl Service<Request<Body>> for PanicInCall {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        panic!("secret in call: token=abc");
    }
}

/// A future that panics when polled.
struct PanicInPoll;

impl Future for PanicInPoll {
    type Output = Result<Response<Body>, Infallible>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        panic!("secret in future: token=abc");
    }
}

async fn assert_internal_error(res: Response<Body>, id: &str, leaked: bool) {
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["x-correlation-id"], id);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body = json_body(res).await;
    assert_eq!(body["type"], "/problems/internal-server-error");
    assert_eq!(body["code"], "internal-server-error");
    assert_eq!(body["correlation_id"], id);
    assert_eq!(body["instance"], "/panic");
    let text = body.to_string();
    assert_eq!(text.contains("token=abc"), leaked, "{text}");
}

fn panic_req() -> Request<Body> {
    Request::get("/panic")
        .header("x-correlation-id", "cid-1")
        .body(Body::default())
        .unwrap()
}

#[tokio::test]
async fn panic_in_call_becomes_500_without_leaking() {
    for dev in [false, true] {
        let svc = ProblemLayer::new().development(dev).layer_svc(PanicInCall);
        let res = svc.oneshot(panic_req()).await.unwrap();
        assert_internal_error(res, "cid-1", dev).await;
    }
}

#[tokio::test]
async fn panic_in_future_becomes_500_without_leaking() {
    for dev in [false, true] {
        let svc = ServiceBuilder::new()
            .layer(ProblemLayer::new().development(dev))
            .service_fn(|_req: Request<Body>| PanicInPoll);
        let res = svc.oneshot(panic_req()).await.unwrap();
        assert_internal_error(res, "cid-1", dev).await;
    }
}

#[tokio::test]
async fn inner_errors_become_500() {
    let svc =
        ServiceBuilder::new()
            .layer(ProblemLayer::new())
            .service_fn(|_req: Request<Body>| async {
                Err::<Response<Body>, _>("db down: password=x")
            });
    let res = svc.oneshot(panic_req()).await.unwrap();
    assert_internal_error(res, "cid-1", false).await;
}

#[tokio::test]
async fn bare_errors_are_converted_only_when_asked() {
    let handler = |req: Request<Body>| async move {
        let res = match req.uri().path() {
            "/empty" => Response::builder()
                .status(404)
                .header("retry-after", "5")
                .body(Body::default()),
            "/upstream-json" => Response::builder()
                .status(422)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"errors":["age"]}"#)),
            _ => Response::builder().status(200).body(Body::from("ok")),
        };
        Ok::<_, Infallible>(res.unwrap())
    };

    // Keep (default): untouched.
    let keep = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .service_fn(handler);
    let res = keep.oneshot(get("/empty")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers().get("content-type").is_none());

    // ConvertEmpty: the empty 404 becomes a problem, the upstream's JSON error survives.
    let some = ServiceBuilder::new()
        .layer(ProblemLayer::new().bare_errors(BareErrors::ConvertEmpty))
        .service_fn(handler);
    let res = some.clone().oneshot(get("/empty")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["retry-after"], "5");
    let body = json_body(res).await;
    assert_eq!(body["code"], "not-found");
    assert_eq!(body["instance"], "/empty");
    let res = some.oneshot(get("/upstream-json")).await.unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");

    // ConvertAll: every bare error becomes a problem, with about:blank for unknown codes.
    let all = ServiceBuilder::new()
        .layer(ProblemLayer::new().bare_errors(BareErrors::ConvertAll))
        .service_fn(handler);
    let res = all.clone().oneshot(get("/upstream-json")).await.unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert!(res.headers().get("content-length").is_none());
    let body = json_body(res).await;
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["title"], "Unprocessable Entity");
    let res = all.oneshot(get("/ok")).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn problems_built_without_context_get_it_from_the_layer() {
    // As an axum handler returning `Err(Problem)` would: no request context at build time.
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new().type_base("https://err.example"))
        .service_fn(|_req: Request<Body>| async {
            Ok::<Response<Body>, Infallible>(
                Problem::new(ProblemType::NOT_FOUND)
                    .code("RESOURCE_NOT_FOUND")
                    .into_response(),
            )
        });
    let res = svc.oneshot(panic_req()).await.unwrap();
    assert_eq!(res.headers()["x-correlation-id"], "cid-1");
    let body = json_body(res).await;
    assert_eq!(body["type"], "https://err.example/not-found");
    assert_eq!(body["correlation_id"], "cid-1");
    assert_eq!(body["instance"], "/panic");
    assert_eq!(body["code"], "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn inner_layers_pick_up_the_context() {
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new().type_base("https://err.example/"))
        .service_fn(|req: Request<Body>| async move {
            Ok::<Response<Body>, Infallible>(
                Problem::new(ProblemType::TOKEN_EXPIRED).response_for(&req),
            )
        });
    let res = svc.oneshot(panic_req()).await.unwrap();
    assert_eq!(res.status(), 401);
    let p = res.extensions().get::<Problem>().unwrap().clone();
    assert_eq!(p.type_uri(), "https://err.example/token-expired");
    let body = json_body(res).await;
    assert_eq!(body["correlation_id"], "cid-1");
    assert_eq!(body["instance"], "/panic");
}

#[tokio::test]
async fn with_the_default_base_inner_layers_need_only_the_correlation_id() {
    for (layer, base, context) in [
        (ProblemLayer::new(), gw_problem::DEFAULT_TYPE_BASE, false),
        (
            ProblemLayer::new().type_base("https://err.example"),
            "https://err.example",
            true,
        ),
        // Set explicitly to the default: still no context needed.
        (
            ProblemLayer::new().type_base(gw_problem::DEFAULT_TYPE_BASE),
            gw_problem::DEFAULT_TYPE_BASE,
            false,
        ),
    ] {
        let svc =
            ServiceBuilder::new()
                .layer(layer)
                .service_fn(move |req: Request<Body>| async move {
                    let has_context = req.extensions().get::<ProblemContext>().is_some();
                    assert_eq!(has_context, context, "{base}");
                    Ok::<Response<Body>, Infallible>(
                        Problem::new(ProblemType::TOKEN_EXPIRED).response_for(&req),
                    )
                });
        let res = svc.oneshot(panic_req()).await.unwrap();
        let p = res.extensions().get::<Problem>().unwrap().clone();
        assert_eq!(p.type_uri(), format!("{base}/token-expired"));
        let body = json_body(res).await;
        assert_eq!(body["correlation_id"], "cid-1", "{base}");
    }
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_handlers_can_return_problems() {
    let res = axum::response::IntoResponse::into_response(Problem::new(ProblemType::CONFLICT));
    assert_eq!(res.status(), 409);
    assert!(res.extensions().get::<Problem>().is_some());
}

trait LayerSvc {
    fn layer_svc<S>(self, s: S) -> gw_problem::ProblemService<S>;
}

impl LayerSvc for ProblemLayer {
    fn layer_svc<S>(self, s: S) -> gw_problem::ProblemService<S> {
        tower::Layer::layer(&self, s)
    }
}

#[tokio::test]
async fn duplicate_correlation_ids_are_replaced() {
    let svc = ServiceBuilder::new().layer(ProblemLayer::new()).service_fn(
        |req: Request<Body>| async move {
            let sent: Vec<_> = req.headers().get_all("x-correlation-id").iter().collect();
            assert_eq!(sent.len(), 1);
            assert_eq!(
                sent[0],
                req.extensions().get::<CorrelationId>().unwrap().as_str()
            );
            Ok::<_, Infallible>(Response::new(Body::default()))
        },
    );
    let req = Request::get("/")
        .header("x-correlation-id", "a")
        .header("x-correlation-id", "b")
        .body(Body::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let id = res.headers()["x-correlation-id"].to_str().unwrap();
    assert!(id != "a" && id != "b");
}
