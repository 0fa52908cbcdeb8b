//! The built-in demo upstream: a small HTTP server that echoes what reached it.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use serde_json::{Map, Value, json};

/// Starts the demo upstream on a free loopback port and returns its address.
pub async fn spawn() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(echo);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "demo upstream stopped");
        }
    });
    Ok(addr)
}

/// Echoes method, path, query, headers and body size as JSON.
async fn echo(req: Request) -> Json<Value> {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let headers: Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                json!(v.to_str().unwrap_or("<binary>")),
            )
        })
        .collect();
    Json(json!({
        "upstream": "demo",
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": body.len(),
    }))
}

/// Demo mode: an ephemeral Ed25519 signing key, its JWKS, and tokens for demo users.
pub struct DemoAuth {
    /// The verification keys, for the auth layer.
    pub keys: gw_auth::StaticKeys,
    /// The public JWKS, served at `/.well-known/jwks.json`.
    pub jwks: Value,
    /// The issuer put into demo tokens.
    pub issuer: String,
    /// The demo service's HMAC secret.
    pub service_secret: String,
    /// A callback secret for `X-Callback-Secret`.
    pub callback_secret: String,
    encoding: jsonwebtoken::EncodingKey,
}

/// Service id of the demo service.
pub const DEMO_SERVICE: &str = "demo-svc";
/// Key id of the demo service key.
pub const DEMO_SERVICE_KEY_ID: &str = "k1";

/// Key id of the demo key.
pub const DEMO_KID: &str = "demo-1";

/// A user to mint a demo token for.
#[derive(Debug, Clone)]
pub struct DemoUser {
    /// User id and subject.
    pub user_id: &'static str,
    /// Roles.
    pub roles: &'static [&'static str],
    /// On a trial plan.
    pub trial: bool,
    /// Governor agent acting for the user.
    pub governor_agent_id: Option<&'static str>,
}

/// The demo users whose tokens `--demo` prints.
pub const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        user_id: "admin-1",
        roles: &["admin"],
        trial: false,
        governor_agent_id: Some("gov-1"),
    },
    DemoUser {
        user_id: "dev-1",
        roles: &["developer"],
        trial: false,
        governor_agent_id: None,
    },
    DemoUser {
        user_id: "viewer-1",
        roles: &["viewer"],
        trial: false,
        governor_agent_id: None,
    },
    DemoUser {
        user_id: "trial-1",
        roles: &["developer"],
        trial: true,
        governor_agent_id: None,
    },
];

impl DemoAuth {
    /// A fresh key pair; nothing is written to disk.
    pub fn generate(issuer: impl Into<String>) -> Result<Self, String> {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        use base64::Engine as _;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| format!("demo key: {e}"))?;
        let pair =
            Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| format!("demo key: {e}"))?;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": DEMO_KID, "alg": "EdDSA", "use": "sig"}]});
        let keys = gw_auth::StaticKeys::from_jwks(jwks.to_string())
            .map_err(|e| format!("demo jwks: {e}"))?;
        Ok(Self {
            keys,
            jwks,
            issuer: issuer.into(),
            service_secret: random_hex(&rng)?,
            callback_secret: random_hex(&rng)?,
            encoding: jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
        })
    }

    /// A token for `user`, valid for `ttl_secs` from `now` (Unix seconds).
    pub fn token(&self, user: &DemoUser, now: i64, ttl_secs: i64) -> Result<String, String> {
        let mut claims = json!({
            "sub": user.user_id,
            "user_id": user.user_id,
            "email": format!("{}@demo.example", user.user_id),
            "customer_id": "cust-demo",
            "roles": user.roles,
            "iat": now,
            "exp": now + ttl_secs,
            "iss": self.issuer,
            "trial_mode": user.trial,
        });
        if user.trial {
            claims["trial_expires_at"] = json!(now + 7 * 86_400);
        }
        if let Some(gov) = user.governor_agent_id {
            claims["governor_agent_id"] = json!(gov);
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(DEMO_KID.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| format!("demo token: {e}"))
    }
}

impl DemoAuth {
    /// The demo service's key ring, for the service-auth key store.
    pub fn service_key_ring(&self) -> svc_hmac::KeyRing {
        svc_hmac::KeyRing::new(DEMO_SERVICE).key(svc_hmac::ServiceKey::new(
            DEMO_SERVICE_KEY_ID,
            svc_hmac::Secret::new(self.service_secret.as_bytes().to_vec()),
        ))
    }

    /// The signing headers for a body-less `method path` request by the demo service.
    pub fn service_headers(
        &self,
        method: &str,
        path: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let signer = svc_hmac::Signer::new(
            DEMO_SERVICE,
            DEMO_SERVICE_KEY_ID,
            svc_hmac::Secret::new(self.service_secret.as_bytes().to_vec()),
        )
        .map_err(|e| format!("demo signer: {e:?}"))?;
        let (mut parts, ()) = http::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .map_err(|e| e.to_string())?
            .into_parts();
        signer
            .sign(&mut parts, b"")
            .map_err(|e| format!("demo signature: {e:?}"))?;
        Ok(parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }
}

fn random_hex(rng: &aws_lc_rs::rand::SystemRandom) -> Result<String, String> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    rng.fill(&mut bytes).map_err(|e| format!("random: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
