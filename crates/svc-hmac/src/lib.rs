//! Service-to-service HMAC authentication: [`SigningLayer`] signs outgoing requests,
//! [`ServiceAuthLayer`] verifies them and inserts a [`gw_core::ServiceIdentity`].
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use gw_core::ServiceIdentity;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use svc_hmac::{KeyRing, MemoryKeyStore, Mode, ServiceAuthLayer, ServiceKey, Signer, VerifiedBody};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let keys = MemoryKeyStore::new()
//!     .with_ring(KeyRing::new("npu-worker").key(ServiceKey::new("k1", "s3cret-key")));
//! let svc = ServiceBuilder::new()
//!     .layer(
//!         ServiceAuthLayer::new(keys)
//!             .default_mode(Mode::Off)
//!             .group("/api/npu/*", Mode::Enforce)
//!             .exempt("/api/npu/health"),
//!     )
//!     .service_fn(|req: Request<VerifiedBody<Full<Bytes>>>| async move {
//!         let who = req.extensions().get::<ServiceIdentity>().map(|s| s.service_id.to_string());
//!         let body = req.into_body().collect().await.unwrap().to_bytes();
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("{who:?} {}", body.len())))))
//!     });
//!
//! // Signed by the client side.
//! let signer = Signer::new("npu-worker", "k1", "s3cret-key").unwrap();
//! let (mut parts, ()) = Request::post("/api/npu/results/7").body(()).unwrap().into_parts();
//! signer.sign(&mut parts, b"{\"ok\":true}").unwrap();
//! let req = Request::from_parts(parts, Full::new(Bytes::from_static(b"{\"ok\":true}")));
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "Some(\"npu-worker\") 11");
//!
//! // Unsigned: rejected with a 401 problem.
//! let req = Request::post("/api/npu/results/7").body(Full::default()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
//! # Wire format
//!
//! | header | value |
//! |---|---|
//! | `X-Service-ID` | calling service, `[A-Za-z0-9._-]{1,64}` |
//! | `X-Service-Key-ID` | key id, or several separated by one space during rotation |
//! | `X-Service-Timestamp` | unix seconds |
//! | `X-Service-Nonce` | 22-128 chars `[A-Za-z0-9_-]` (the signer sends 128 random bits, base64url) |
//! | `Content-Digest` | `sha-256=:<base64>:` (RFC 9530), also for an empty body |
//! | `X-Service-Signature` | `v1=<base64 HMAC-SHA256>`, one per key id, same order, space-separated |
//!
//! The signature covers the canonical string described in [`wire`]: version, method, path
//! and query exactly as sent, timestamp, nonce, service id, key ids and the content digest,
//! newline-separated. The verifier recomputes the digest from the bytes it received.
//!
//! # Verification order
//!
//! Content-Length over the cap (413) -> headers (`missing-headers`) -> timestamp window
//! (`stale-timestamp`) -> key ring (`unknown-service`) -> key (`unknown-key`,
//! `key-expired`) -> MAC (`bad-signature`) -> body read with cap (413) -> digest
//! (`digest-mismatch`) -> nonce (`replayed`). The nonce is recorded only for a request
//! that passed everything before it, so forged requests cannot burn nonces, and is kept
//! until its timestamp leaves the window.
//!
//! # Modes
//!
//! Per route group: [`Mode::Off`], [`Mode::LogOnly`] (verify, log, count, never block) and
//! [`Mode::Enforce`]; exempt routes are never verified. One exception to "never block":
//! a body whose stream fails while the verifier reads it is answered 400 `body-unreadable`
//! in both modes that read it, since part of it is consumed and the handler could only get
//! a truncated body. A [`ModeSwitch`] caps all groups at
//! run time; [`ModeSwitch::try_from_env`] reads `SERVICE_AUTH_ENFORCEMENT_MODE` and refuses
//! a value it does not understand ([`ModeSwitch::from_env`], the seed's lenient reading,
//! takes it as `log_only`).

mod backend;
mod body;
mod config;
mod future;
pub mod keyfile;
mod keys;
mod layer;
mod nonce;
mod service;
mod signer;
mod verify;
pub mod wire;

pub use backend::{DEFAULT_NONCE_CAPACITY, DirKeyStore, MemoryKeyStore, MemoryNonceCache};
#[cfg(feature = "redis")]
pub use backend::{RedisKeyStore, RedisNonceCache};
pub use body::VerifiedBody;
pub use config::{ENFORCEMENT_MODE_ENV, Mode, ModeEnvError, ModeSwitch};
pub use future::ResponseFuture;
pub use keys::{
    KEY_EXPIRY_GAUGE, KeyRing, KeyState, KeyStore, KeyUnusable, MAX_EXPIRY_UNIX, Secret,
    ServiceKey, report_key_expiry,
};
pub use layer::{DEFAULT_MAX_BODY, DEFAULT_WINDOW, ServiceAuthLayer};
pub use nonce::NonceCache;
pub use service::{REQUESTS_COUNTER, ServiceAuth};
pub use signer::{BoxError, ClientConfigError, ServiceClient, Signer, Signing, SigningLayer};
pub use verify::Rejection;
