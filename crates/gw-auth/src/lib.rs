//! JWT bearer authentication for gw: verifies `Authorization: Bearer <token>` and puts the
//! caller's [`Claims`] and [`gw_core::Principal`] into the request.
//!
//! - **Algorithms pinned by key**: an RSA key verifies RS256/384/512 and PS256/384/512
//!   only, a P-256 key ES256, a P-384 key ES384, an Ed25519 key EdDSA (a JWK `alg` pins
//!   it further). `none` and `HS*` never verify: there are no shared secrets here, so an
//!   RSA public key can never be used as an HMAC secret.
//! - **Cheap refusals first**: tokens over 8 KiB are refused before decoding; issuer(s),
//!   audience(s) and `exp`/`nbf` with a 30 s leeway are checked after the signature.
//! - **Key sources** ([`KeySource`]): [`StaticKeys`] (PEM, JWK, a JWKS file) and
//!   [`JwksSource`] (a JWKS URL refreshed in the background, refetched single-flight at
//!   most once per interval on an unknown `kid`, last good keys kept when the endpoint is
//!   down, age exposed for readiness). With [`AuthLayer::by_issuer`], the token's
//!   unverified `iss` selects the key set in one lookup.
//! - **Verified-token cache**: a hit (same token, same key set, before `exp`) skips
//!   signature verification; bounded, shared, cleared when a key set changes.
//! - **Refusals**: 401 problems with a stable `code` (`unauthorized`,
//!   `invalid-token-format`, `token-expired`, `invalid-token`), a finer `reason`, and an
//!   RFC 6750 `WWW-Authenticate: Bearer ...` challenge.
//! - Public paths (default [`DEFAULT_PUBLIC_PATHS`]) bypass authentication, matched with
//!   the gw-core segment-aware matcher on the normalized path.
//!
//! Crypto: `jsonwebtoken` 10 with its `aws_lc_rs` backend.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use bytes::Bytes;
//! use gw_auth::AuthLayer;
//! use gw_core::Principal;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
//! let public_pem = std::fs::read(format!("{dir}/rsa1.pub.pem")).unwrap();
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::from_pem(&public_pem).unwrap().issuer("https://id.example.com"))
//!     .service_fn(|req: Request<Full<Bytes>>| async move {
//!         // Authenticated requests carry the caller; public paths do not.
//!         let user = req.extensions().get::<Principal>().map(|p| p.user_id.to_string());
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(user.unwrap_or_default())))
//!     });
//!
//! // The issuer signs a token (here with the matching test private key).
//! let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
//! let claims = serde_json::json!({
//!     "sub": "u-1", "user_id": "u-1", "email": "ada@example.com", "customer_id": "c-1",
//!     "roles": ["developer"], "iat": now, "exp": now + 600, "iss": "https://id.example.com",
//! });
//! let private_pem = std::fs::read(format!("{dir}/rsa1.pem")).unwrap();
//! let key = EncodingKey::from_rsa_pem(&private_pem).unwrap();
//! let token = encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
//!
//! let req = Request::get("/api/v1/me")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(Full::default())
//!     .unwrap();
//! assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
//!
//! // No credentials: 401 with an RFC 6750 challenge and the `unauthorized` code.
//! let req = Request::get("/api/v1/me").body(Full::default()).unwrap();
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer");
//!
//! // Public paths need no token.
//! let req = Request::get("/health").body(Full::default()).unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```
//!
//! # Metrics
//!
//! `gw_auth_requests_total{outcome, reason}`, `gw_auth_cache_total{result}`,
//! `gw_auth_jwks_fetch_total{result}`, `gw_auth_jwks_refetch_total`,
//! `gw_auth_jwks_age_seconds`.

mod cache;
mod claims;
mod error;
mod future;
mod keys;
mod layer;
mod pem;
mod service;
mod source;
mod verify;

#[cfg(feature = "axum")]
mod axum;

pub use cache::{DEFAULT_CACHE_CAPACITY, Verified};
pub use claims::{Claims, GOVERNOR_ROLE};
pub use error::{AuthError, ErrorKind};
pub use future::ResponseFuture;
pub use jsonwebtoken::Algorithm;
pub use keys::{KeyError, KeySet, KeyType, VerifyKey};
pub use layer::{AuthLayer, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, DEFAULT_PUBLIC_PATHS};
pub use service::Auth;
pub use source::{
    FetchError, HttpClient, HyperClient, JwksSource, JwksSourceBuilder, KeySource, StaticKeys,
};
pub use verify::Verifier;

#[cfg(feature = "axum")]
pub use crate::axum::{AuthClaims, AuthPrincipal};
