//! Test helpers: committed test keys, token minting, a handler that echoes the caller.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use gw_auth::{AuthLayer, Claims};
use gw_core::Principal;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::{BoxError, ServiceBuilder, ServiceExt};

pub type Body = Full<Bytes>;

pub const ISS: &str = "https://id.example.com";
/// The time the tests' manual clocks stand at.
pub const NOW: i64 = 1_750_000_000;

pub fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A private key by file stem (`rsa1`, `ec256`, ...) and the algorithm it signs with.
pub fn signer(name: &str) -> (EncodingKey, Algorithm) {
    let pem = key_file(&format!("{name}.pem"));
    match name {
        n if n.starts_with("rsa") => (EncodingKey::from_rsa_pem(&pem).unwrap(), Algorithm::RS256),
        "ec256" => (EncodingKey::from_ec_pem(&pem).unwrap(), Algorithm::ES256),
        "ec384" => (EncodingKey::from_ec_pem(&pem).unwrap(), Algorithm::ES384),
        "ed25519" => (EncodingKey::from_ed_pem(&pem).unwrap(), Algorithm::EdDSA),
        other => panic!("no test key {other}"),
    }
}

pub fn public_pem(name: &str) -> Vec<u8> {
    key_file(&format!("{name}.pub.pem"))
}

/// Claims that satisfy the contract, valid at [`NOW`] for ten minutes.
pub fn claims() -> Value {
    json!({
        "sub": "user-1", "user_id": "user-1", "email": "ada@example.com",
        "customer_id": "cust-1", "roles": ["developer", "viewer"],
        "iat": NOW - 10, "exp": NOW + 600, "iss": ISS, "aud": "gw",
        "plan": {"tier": "gold"},
    })
}

/// Signs `claims` with key `name` (its default algorithm) and `kid`.
pub fn mint(name: &str, kid: Option<&str>, claims: &Value) -> String {
    let (key, alg) = signer(name);
    mint_with(&key, alg, kid, claims)
}

pub fn mint_with(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A token from raw JSON header and payload and an arbitrary signature.
pub fn raw_token(header: &Value, payload: &Value, sig: &[u8]) -> String {
    use base64::Engine;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        e.encode(serde_json::to_vec(header).unwrap()),
        e.encode(serde_json::to_vec(payload).unwrap()),
        e.encode(sig)
    )
}

/// A JWK of key `name`'s public half, with `kid`.
pub fn jwk(name: &str, kid: &str) -> Value {
    if name == "ed25519" {
        // jsonwebtoken cannot export Ed25519 JWKs: the raw key is the SPKI's last 32 bytes.
        use base64::Engine;
        let pem = String::from_utf8(public_pem(name)).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
        return json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
    }
    let (key, alg) = signer(name);
    let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).unwrap()
}

pub fn jwks(keys: &[(&str, &str)]) -> String {
    let keys: Vec<Value> = keys.iter().map(|(name, kid)| jwk(name, kid)).collect();
    json!({ "keys": keys }).to_string()
}

/// What the echo handler saw.
#[derive(Debug)]
pub struct Seen {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Value,
}

/// Sends `req` through `layer` to a handler that answers 200 with the principal and
/// claims it found as JSON (`null` when absent).
pub async fn send(layer: &AuthLayer, req: Request<Body>) -> Seen {
    let svc =
        ServiceBuilder::new()
            .layer(layer.clone())
            .service_fn(|req: Request<Body>| async move {
                let principal = req.extensions().get::<Principal>().cloned();
                let claims = req.extensions().get::<Arc<Claims>>().cloned();
                let body = json!({
                    "principal": principal,
                    "claims": claims.as_deref(),
                });
                Ok::<_, Infallible>(Response::new(Body::from(body.to_string())))
            });
    let res = svc.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(BoxError::from)
        .unwrap()
        .to_bytes();
    Seen {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap(),
    }
}

pub fn get(path: &str, authorization: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(a) = authorization {
        b = b.header("authorization", a);
    }
    b.body(Body::default()).unwrap()
}

pub fn bearer(path: &str, token: &str) -> Request<Body> {
    get(path, Some(&format!("Bearer {token}")))
}
