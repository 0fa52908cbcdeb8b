//! Raw HTTP/1.1 hostile-request helpers shared by `hostile.rs` and `faults.rs`: a gateway
//! configuration with its own JWT key, service key and callback secret, a table-case type,
//! and a client that writes requests byte by byte.

use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway::Config;
use gw_core::GatewayType;
use serde_json::{Value, json};
use svc_hmac::wire::{self, CanonicalRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::now;
pub const ISSUER: &str = "https://issuer.hostile.test";
pub const KID: &str = "hostile-1";
pub const SERVICE: &str = "svc-a";
pub const SERVICE_KEY_ID: &str = "k1";
pub const SERVICE_SECRET: &str = "0123456789abcdef0123456789abcdef-service";
pub const CALLBACK_SECRET: &str = "callback-secret-0123456789abcdef0123456789";
pub const JOB: &str = "job-h1";

/// The signing key, its public half, and the files the gateway is configured with.
pub struct Fixture {
    dir: PathBuf,
    encoding: jsonwebtoken::EncodingKey,
    pub public_raw: Vec<u8>,
}

impl Fixture {
    pub fn new() -> Self {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public_raw = pair.public_key().as_ref().to_vec();
        let dir = std::env::temp_dir().join(format!(
            "gw-hostile-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&public_raw), "kid": KID, "alg": "EdDSA", "use": "sig"}]});
        std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
        std::fs::write(
            dir.join("keys").join(format!("{SERVICE}.env")),
            format!("SERVICE_KEY={SERVICE_SECRET}\nSERVICE_KEY_ID={SERVICE_KEY_ID}\n"),
        )
        .unwrap();
        Self {
            dir,
            encoding: jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
            public_raw,
        }
    }

    pub fn config(&self) -> Config {
        let mut config = Config {
            gateway_type: GatewayType::Pp,
            ..Config::default()
        };
        config.auth.jwks_file = Some(self.dir.join("jwks.json").display().to_string());
        config.auth.issuer = Some(ISSUER.into());
        // An operator-configured public area proxied to the upstream without a token.
        config.auth.public_paths = vec!["/docs/*".into()];
        config.service_auth.keys_dir = Some(self.dir.join("keys").display().to_string());
        config.callbacks.secrets = vec![CALLBACK_SECRET.into()];
        config.policy.trial_daily_limit = 1;
        config.audit.spool_dir = None;
        config
    }

    /// Claims of a valid token for `user` (`admin`, `dev`, `viewer`, `trial`).
    pub fn claims(&self, user: &str) -> Value {
        let t = now();
        let roles = match user {
            "admin" => json!(["admin"]),
            "viewer" => json!(["viewer"]),
            _ => json!(["developer"]),
        };
        let mut c = json!({
            "sub": user, "user_id": user, "email": format!("{user}@hostile.test"),
            "customer_id": "cust-h", "roles": roles, "iat": t, "exp": t + 600,
            "iss": ISSUER, "trial_mode": user == "trial",
        });
        if user == "trial" {
            c["trial_expires_at"] = json!(t + 86_400);
        }
        c
    }

    /// `claims` signed with the real key (EdDSA, kid `hostile-1`).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// `claims` signed with the real key under a hand-written JOSE header.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{h}.{p}");
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &self.encoding,
            jsonwebtoken::Algorithm::EdDSA,
        )
        .unwrap();
        format!("{message}.{sig}")
    }

    pub fn bearer(&self, user: &str) -> String {
        format!("Bearer {}", self.sign(&self.claims(user)))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Signing headers for `method target` with `body`, at `ts`, with `nonce`.
pub fn service_headers(
    method: &str,
    target: &str,
    body: &[u8],
    ts: i64,
    nonce: &str,
    secret: &str,
) -> Vec<(String, String)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let ts = ts.to_string();
    let digest = wire::content_digest(body);
    let canonical = CanonicalRequest {
        method,
        path,
        query,
        timestamp: &ts,
        nonce,
        service_id: SERVICE,
        key_ids: SERVICE_KEY_ID,
        content_digest: &digest,
    };
    canonical.validate().unwrap();
    let sig = wire::sign(
        &wire::hmac_for(secret.as_bytes()),
        &canonical.to_canonical_string(),
    );
    vec![
        ("x-service-id".into(), SERVICE.into()),
        ("x-service-key-id".into(), SERVICE_KEY_ID.into()),
        ("x-service-timestamp".into(), ts),
        ("x-service-nonce".into(), nonce.into()),
        ("content-digest".into(), digest),
        ("x-service-signature".into(), sig),
    ]
}

pub fn nonce(i: usize) -> String {
    format!("hostile-nonce-{i:016}-{}", now())
}

pub fn replace(
    mut headers: Vec<(String, String)>,
    name: &str,
    value: &str,
) -> Vec<(String, String)> {
    for (k, v) in &mut headers {
        if k == name {
            *v = value.into();
        }
    }
    headers
}

/// An extra check on a response: `Err(why)` fails the case.
pub type Check = fn(&Raw) -> Result<(), String>;

/// One hostile request and what it must come to.
pub struct Case {
    pub name: &'static str,
    pub method: &'static str,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Write this `Content-Length` instead of the body's length.
    pub no_length: bool,
    pub status: u16,
    pub code: Option<&'static str>,
    /// An extra check on the response: `Err(why)` fails the case.
    pub check: Option<Check>,
}

pub fn case(name: &'static str, method: &'static str, target: &str) -> Case {
    Case {
        name,
        method,
        target: target.into(),
        headers: Vec::new(),
        body: Vec::new(),
        no_length: false,
        status: 0,
        code: None,
        check: None,
    }
}

impl Case {
    pub fn h(mut self, k: &str, v: impl AsRef<[u8]>) -> Self {
        self.headers.push((k.into(), v.as_ref().to_vec()));
        self
    }
    pub fn hs(mut self, headers: Vec<(String, String)>) -> Self {
        for (k, v) in headers {
            self.headers.push((k, v.into_bytes()));
        }
        self
    }
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }
    /// Content-Length headers are written by the case itself.
    pub fn raw_length(mut self) -> Self {
        self.no_length = true;
        self
    }
    pub fn callback(self, body: impl AsRef<[u8]>) -> Self {
        self.h("x-callback-secret", CALLBACK_SECRET)
            .h("content-type", "application/json")
            .body(body)
    }
    pub fn expect(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = Some(code);
        self
    }
    pub fn expect_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
    pub fn check(mut self, f: Check) -> Self {
        self.check = Some(f);
        self
    }
}

/// A response read off the socket.
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `c` as HTTP/1.1 on a fresh connection and reads the whole response.
pub async fn send_raw(addr: SocketAddr, c: &Case) -> Raw {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n",
        c.method, c.target
    )
    .into_bytes();
    for (k, v) in &c.headers {
        head.extend_from_slice(k.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v);
        head.extend_from_slice(b"\r\n");
    }
    if !c.no_length && (!c.body.is_empty() || c.method == "POST") {
        head.extend_from_slice(format!("content-length: {}\r\n", c.body.len()).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(&c.body);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading everything (oversized input).
    let _ = stream.write_all(&head).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    parse_response(&buf).unwrap_or_else(|| {
        panic!(
            "{}: no HTTP response: {:?}",
            c.name,
            String::from_utf8_lossy(&buf)
        )
    })
}

pub fn parse_response(buf: &[u8]) -> Option<Raw> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(Raw {
        status,
        headers,
        body,
    })
}

pub fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Sends every case, asserting status, problem code and "never 5xx".
pub async fn run(addr: SocketAddr, cases: &[Case]) {
    let failures = failures(addr, cases).await;
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Sends every case; what went wrong, one line per failed case.
pub async fn failures(addr: SocketAddr, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        let r = send_raw(addr, c).await;
        let body = String::from_utf8_lossy(&r.body);
        // A 5xx only where the case expects it (a fail-closed backend in the fault tests).
        if r.status >= 500 && r.status != c.status {
            failures.push(format!("{}: 5xx {} {body}", c.name, r.status));
            continue;
        }
        if r.status != c.status {
            failures.push(format!(
                "{}: status {} (want {}) {body}",
                c.name, r.status, c.status
            ));
            continue;
        }
        if let Some(check) = c.check
            && let Err(why) = check(&r)
        {
            failures.push(format!("{}: {why} {body}", c.name));
            continue;
        }
        if let Some(code) = c.code {
            let ct = r.header("content-type").unwrap_or_default();
            if ct != "application/problem+json" {
                failures.push(format!("{}: content-type {ct:?} {body}", c.name));
                continue;
            }
            let problem: Value = match serde_json::from_slice(&r.body) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{}: problem body {e}: {body}", c.name));
                    continue;
                }
            };
            if problem["code"] != code {
                failures.push(format!(
                    "{}: code {} (want {code}) {problem}",
                    c.name, problem["code"]
                ));
            }
            // No secret ever comes back in a problem body.
            for secret in [CALLBACK_SECRET, SERVICE_SECRET] {
                if body.contains(secret) {
                    failures.push(format!("{}: secret echoed", c.name));
                }
            }
        }
    }
    failures
}
