//! The axum extractors behind an AuthLayer.
#![cfg(feature = "axum")]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::routing::get as route_get;
use common::*;
use gw_auth::{AuthClaims, AuthLayer, AuthPrincipal, StaticKeys};
use gw_core::ManualClock;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn app() -> Router {
    let keys = StaticKeys::from_pem(Some("k1"), public_pem("rsa1")).unwrap();
    let auth = AuthLayer::new(keys)
        .issuer(ISS)
        .clock(Arc::new(ManualClock::at_unix(NOW as u64)));
    Router::new()
        .route(
            "/me",
            route_get(
                |AuthPrincipal(p): AuthPrincipal, claims: AuthClaims| async move {
                    format!("{} {} {}", p.user_id, claims.email, claims.is_admin())
                },
            ),
        )
        .route(
            "/maybe",
            route_get(|claims: Option<AuthClaims>| async move {
                claims.map_or("anonymous".to_owned(), |c| c.sub.clone())
            }),
        )
        .layer(auth.public_routes(["/maybe"]).unwrap())
        .route(
            "/outside",
            route_get(|p: AuthPrincipal| async move { p.user_id.to_string() }),
        )
}

async fn call(req: Request<axum::body::Body>) -> (StatusCode, String) {
    let res = app().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn req(path: &str, token: Option<&str>) -> Request<axum::body::Body> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(axum::body::Body::empty()).unwrap()
}

#[tokio::test]
async fn extractors_read_what_the_layer_inserted() {
    let token = mint("rsa1", Some("k1"), &claims());
    assert_eq!(
        call(req("/me", Some(&token))).await,
        (StatusCode::OK, "user-1 ada@example.com false".to_owned())
    );
    let (status, body) = call(req("/me", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("\"code\":\"unauthorized\""), "{body}");

    // A public route: the optional extractor sees nobody.
    assert_eq!(
        call(req("/maybe", None)).await,
        (StatusCode::OK, "anonymous".to_owned())
    );

    // A route outside the layer: the extractor refuses with a 401 problem.
    let (status, body) = call(req("/outside", Some(&token))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("unauthorized"), "{body}");
}
