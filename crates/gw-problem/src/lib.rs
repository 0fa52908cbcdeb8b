//! RFC 9457 problem details for every gw layer, and [`ProblemLayer`], the outermost layer
//! that gives each request a correlation id and turns panics into problems.
//!
//! Layers reject a request by building a [`Problem`] from a [`ProblemType`] of the
//! [`CATALOGUE`], adding a stable reason `code`, and answering with
//! [`Problem::response_for`], which fills in the correlation id, the `type` base and the
//! request path from what [`ProblemLayer`] put into the request.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use gw_problem::{Problem, ProblemLayer, ProblemType};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(ProblemLayer::new().type_base("https://errors.example.com"))
//!     .service_fn(|req: Request<Full<Bytes>>| async move {
//!         if req.uri().path() == "/boom" {
//!             panic!("database password is hunter2");
//!         }
//!         let res: Response<Full<Bytes>> = Problem::new(ProblemType::PERMISSION_DENIED)
//!             .code("missing-permission")
//!             .response_for(&req);
//!         Ok::<_, Infallible>(res)
//!     });
//!
//! let req = Request::get("/api/x")
//!     .header("x-correlation-id", "req-1")
//!     .body(Full::default())
//!     .unwrap();
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert_eq!(res.headers()["x-correlation-id"], "req-1");
//! let body: serde_json::Value =
//!     serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
//! assert_eq!(body["type"], "https://errors.example.com/permission-denied");
//! assert_eq!(body["code"], "missing-permission");
//! assert_eq!(body["correlation_id"], "req-1");
//!
//! // A panic becomes a 500 problem; the message stays out of production responses.
//! let res = svc.oneshot(Request::get("/boom").body(Full::default()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert!(!String::from_utf8_lossy(&body).contains("hunter2"));
//! # }
//! ```

mod catalogue;
mod layer;
mod problem;

pub use catalogue::{CATALOGUE, ProblemType};
pub use layer::{BareErrors, ProblemLayer, ProblemService, ResponseFuture};
pub use problem::{DEFAULT_TYPE_BASE, PROBLEM_JSON, Problem, ProblemContext};
