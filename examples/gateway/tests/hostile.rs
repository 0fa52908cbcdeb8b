//! Hostile input against the composed gateway over raw HTTP/1.1: malformed, oversized,
//! duplicated and conflicting headers, JWT tricks, path encodings aimed at public, exempt,
//! service-only and callback paths, signature and timestamp tricks, and hostile callback
//! bodies. Every case states its status and problem `code`; none may answer 5xx, and the
//! rejected ones must not mutate state (the callback job, the trial counter).
//!
//! Requests are written byte by byte on a TCP socket, so the suite can send what a
//! well-behaved client library refuses to (duplicate `Content-Length`, backslashes,
//! raw `..` segments, non-UTF-8 header bytes).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{now, serve_on_loopback};
use gateway::{Config, build};
use gw_core::GatewayType;
use serde_json::{Value, json};
use svc_hmac::wire::{self, CanonicalRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISSUER: &str = "https://issuer.hostile.test";
const KID: &str = "hostile-1";
const SERVICE: &str = "svc-a";
const SERVICE_KEY_ID: &str = "k1";
const SERVICE_SECRET: &str = "0123456789abcdef0123456789abcdef-service";
const CALLBACK_SECRET: &str = "callback-secret-0123456789abcdef0123456789";
const JOB: &str = "job-h1";

/// The signing key, its public half, and the files the gateway is configured with.
struct Fixture {
    dir: PathBuf,
    encoding: jsonwebtoken::EncodingKey,
    public_raw: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
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

    fn config(&self) -> Config {
        let mut config = Config {
            gateway_type: GatewayType::Pp,
            ..Config::default()
        };
        config.auth.jwks_file = Some(self.dir.join("jwks.json").display().to_string());
        config.auth.issuer = Some(ISSUER.into());
        config.service_auth.keys_dir = Some(self.dir.join("keys").display().to_string());
        config.callbacks.secrets = vec![CALLBACK_SECRET.into()];
        config.policy.trial_daily_limit = 1;
        config.audit.spool_dir = None;
        config
    }

    /// Claims of a valid token for `user` (`admin`, `dev`, `viewer`, `trial`).
    fn claims(&self, user: &str) -> Value {
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
    fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// `claims` signed with the real key under a hand-written JOSE header.
    fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
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

    fn bearer(&self, user: &str) -> String {
        format!("Bearer {}", self.sign(&self.claims(user)))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Signing headers for `method target` with `body`, at `ts`, with `nonce`.
fn service_headers(
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

fn nonce(i: usize) -> String {
    format!("hostile-nonce-{i:016}-{}", now())
}

fn replace(mut headers: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    for (k, v) in &mut headers {
        if k == name {
            *v = value.into();
        }
    }
    headers
}

/// An extra check on a response: `Err(why)` fails the case.
type Check = fn(&Raw) -> Result<(), String>;

/// One hostile request and what it must come to.
struct Case {
    name: &'static str,
    method: &'static str,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// Write this `Content-Length` instead of the body's length.
    no_length: bool,
    status: u16,
    code: Option<&'static str>,
    /// An extra check on the response: `Err(why)` fails the case.
    check: Option<Check>,
}

fn case(name: &'static str, method: &'static str, target: &str) -> Case {
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
    fn h(mut self, k: &str, v: impl AsRef<[u8]>) -> Self {
        self.headers.push((k.into(), v.as_ref().to_vec()));
        self
    }
    fn hs(mut self, headers: Vec<(String, String)>) -> Self {
        for (k, v) in headers {
            self.headers.push((k, v.into_bytes()));
        }
        self
    }
    fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }
    /// Content-Length headers are written by the case itself.
    fn raw_length(mut self) -> Self {
        self.no_length = true;
        self
    }
    fn callback(self, body: impl AsRef<[u8]>) -> Self {
        self.h("x-callback-secret", CALLBACK_SECRET)
            .h("content-type", "application/json")
            .body(body)
    }
    fn expect(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = Some(code);
        self
    }
    fn expect_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
    fn check(mut self, f: Check) -> Self {
        self.check = Some(f);
        self
    }
}

/// A response read off the socket.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `c` as HTTP/1.1 on a fresh connection and reads the whole response.
async fn send_raw(addr: SocketAddr, c: &Case) -> Raw {
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

fn parse_response(buf: &[u8]) -> Option<Raw> {
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

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
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
async fn run(addr: SocketAddr, cases: &[Case]) {
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
async fn failures(addr: SocketAddr, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        let r = send_raw(addr, c).await;
        let body = String::from_utf8_lossy(&r.body);
        if r.status >= 500 {
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

/// The response's correlation id is a fresh, well-formed one (not the hostile input).
fn fresh_correlation_id(r: &Raw) -> Result<(), String> {
    let id = r.header("x-correlation-id").ok_or("no x-correlation-id")?;
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(format!("correlation id {id:?} echoed"));
    }
    Ok(())
}

/// The upstream echo shows no identity header at all.
fn no_identity_upstream(r: &Raw) -> Result<(), String> {
    let echo: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    let headers = echo["headers"].as_object().ok_or("not an upstream echo")?;
    for name in headers.keys() {
        if ["x-gateway-", "x-rbac-", "x-forwarded-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            return Err(format!("upstream saw {name}"));
        }
    }
    Ok(())
}

fn header_cases(fx: &Fixture) -> Vec<Case> {
    let dev = fx.bearer("dev");
    let agents = "/api/v1/agents";
    vec![
        case("no authorization", "GET", agents).expect(401, "unauthorized"),
        case("bearer without token", "GET", agents)
            .h("authorization", "Bearer")
            .expect(401, "invalid-token-format"),
        case("bearer with empty token", "GET", agents)
            .h("authorization", "Bearer ")
            .expect(401, "invalid-token-format"),
        // RFC 6750: `credentials = "Bearer" 1*SP b64token`, so extra spaces are allowed.
        case("bearer with two spaces (RFC 6750 1*SP)", "GET", agents)
            .h("authorization", dev.replacen(' ', "  ", 1))
            .expect_status(200),
        case("bearer with trailing garbage", "GET", agents)
            .h("authorization", format!("{dev} extra"))
            .expect(401, "invalid-token-format"),
        case("basic scheme", "GET", agents)
            .h("authorization", "Basic YWRtaW46YWRtaW4=")
            .expect(401, "invalid-token-format"),
        case("two valid authorization headers", "GET", agents)
            .h("authorization", &dev)
            .h("authorization", &dev)
            .expect(401, "invalid-token-format"),
        case("valid and garbage authorization", "GET", agents)
            .h("authorization", &dev)
            .h("authorization", "Bearer x.y.z")
            .expect(401, "invalid-token-format"),
        case("non-utf8 authorization", "GET", agents)
            .h("authorization", b"Bearer \xff\xfe.\xff.\xff")
            .expect(401, "invalid-token-format"),
        case("authorization with comma-joined tokens", "GET", agents)
            .h("authorization", format!("{dev}, {dev}"))
            .expect(401, "invalid-token-format"),
        case("huge correlation id", "GET", "/health")
            .h("x-correlation-id", "a".repeat(10_000))
            .expect_status(200)
            .check(fresh_correlation_id),
        case("correlation id with markup", "GET", "/health")
            .h("x-correlation-id", "<script>alert(1)</script>")
            .expect_status(200)
            .check(fresh_correlation_id),
        case("non-utf8 correlation id", "GET", "/health")
            .h("x-correlation-id", b"abc\xff\xfe")
            .expect_status(200)
            .check(fresh_correlation_id),
        case("duplicate correlation ids", "GET", agents)
            .h("x-correlation-id", "first-id")
            .h("x-correlation-id", "second-id")
            .expect(401, "unauthorized")
            .check(|r| {
                let id = r.header("x-correlation-id").unwrap_or_default();
                if id.contains(',') {
                    return Err(format!("joined correlation id {id:?}"));
                }
                fresh_correlation_id(r)
            }),
        case("conflicting content-length", "POST", agents)
            .h("authorization", &dev)
            .h("content-length", "2")
            .h("content-length", "3")
            .body("{}")
            .raw_length()
            .expect_status(400),
        // RFC 9112 6.3: chunked wins and Content-Length is dropped, so the request the
        // upstream sees is not ambiguous (no smuggling through the proxy).
        case("content-length and chunked", "POST", agents)
            .h("authorization", &dev)
            .h("content-length", "4")
            .h("transfer-encoding", "chunked")
            .body("2\r\n{}\r\n0\r\n\r\n")
            .raw_length()
            .expect_status(200)
            .check(|r| {
                let echo: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
                if echo["headers"].get("content-length").is_some() || echo["body_bytes"] != 2 {
                    return Err(format!("upstream saw {echo}"));
                }
                Ok(())
            }),
        case("non-numeric content-length", "POST", agents)
            .h("authorization", &dev)
            .h("content-length", "abc")
            .body("{}")
            .raw_length()
            .expect_status(400),
        case("negative content-length", "POST", agents)
            .h("authorization", &dev)
            .h("content-length", "-1")
            .raw_length()
            .expect_status(400),
        case("header block over the server limit", "GET", agents)
            .h("x-junk", "j".repeat(512 * 1024))
            .expect_status(431),
        case("too many headers", "GET", agents)
            .hs((0..200).map(|i| (format!("x-h{i}"), "v".into())).collect())
            .expect_status(431),
        case(
            "token-shaped x-service headers on a user route",
            "GET",
            agents,
        )
        .h("authorization", &dev)
        .h("x-service-id", "../../etc/passwd")
        .h("x-service-signature", "v1=AAAA")
        .expect_status(200),
    ]
}

fn jwt_cases(fx: &Fixture) -> Vec<Case> {
    let agents = "/api/v1/agents";
    let claims = fx.claims("dev");
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let good = fx.sign(&claims);
    let (gh, rest) = good.split_once('.').unwrap();
    let (_, gsig) = rest.split_once('.').unwrap();
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        fx.sign(&c)
    };
    let without = |k: &str| {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(k);
        fx.sign(&c)
    };
    let hs256 = |secret: &[u8]| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some(KID.into());
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
    };
    let kid = |kid: &str| fx.sign_with_header(&json!({"alg": "EdDSA", "kid": kid}), &claims);
    let mut admin = claims.clone();
    admin["roles"] = json!(["admin"]);
    let t = now();
    let bearer = |token: String| format!("Bearer {token}");
    let jwt = |name: &'static str, token: String| {
        case(name, "GET", agents).h("authorization", bearer(token))
    };
    vec![
        jwt("valid token (control)", good.clone()).expect_status(200),
        jwt(
            "alg none, empty signature",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims)),
        )
        .expect(401, "invalid-token"),
        jwt(
            "alg none with a signature",
            format!("{}.{}.{gsig}", b64(&json!({"alg": "none", "kid": KID})), b64(&claims)),
        )
        .expect(401, "invalid-token"),
        jwt("HS256 keyed with the raw public key", hs256(&fx.public_raw)).expect(401, "invalid-token"),
        jwt(
            "HS256 keyed with the JWK x value",
            hs256(URL_SAFE_NO_PAD.encode(&fx.public_raw).as_bytes()),
        )
        .expect(401, "invalid-token"),
        jwt("kid path traversal", kid("../../../../dev/null")).expect(401, "invalid-token"),
        jwt("kid sql injection", kid("x' OR '1'='1")).expect(401, "invalid-token"),
        jwt("kid url", kid("https://evil.example/jwks.json")).expect(401, "invalid-token"),
        jwt("kid 4 KiB", kid(&"k".repeat(4096))).expect(401, "invalid-token"),
        jwt(
            "jku and x5u headers ignored",
            fx.sign_with_header(
                &json!({"alg": "EdDSA", "kid": "evil", "jku": "https://evil.example/jwks", "x5u": "https://evil.example/cert"}),
                &claims,
            ),
        )
        .expect(401, "invalid-token"),
        jwt("alg case twin", fx.sign_with_header(&json!({"alg": "eddsa", "kid": KID}), &claims))
            .expect(401, "invalid-token"),
        jwt(
            "crit header",
            fx.sign_with_header(&json!({"alg": "EdDSA", "kid": KID, "crit": ["exp"]}), &claims),
        )
        .expect(401, "invalid-token"),
        jwt("token of 9 KiB", {
            let mut c = claims.clone();
            c["pad"] = json!("p".repeat(9 * 1024));
            fx.sign(&c)
        })
        .expect(401, "invalid-token"),
        jwt("token of 64 KiB", "a".repeat(64 * 1024)).expect(401, "invalid-token"),
        jwt("wrong issuer", with("iss", json!("https://evil.example"))).expect(401, "invalid-token"),
        jwt("missing exp", without("exp")).expect(401, "invalid-token"),
        jwt("missing sub", without("sub")).expect(401, "invalid-token"),
        jwt("missing roles", without("roles")).expect(401, "invalid-token"),
        jwt("empty user_id", with("user_id", json!("  "))).expect(401, "invalid-token"),
        jwt("exp as a string", with("exp", json!((t + 600).to_string()))).expect(401, "invalid-token"),
        jwt("roles as a string", with("roles", json!("admin"))).expect(401, "invalid-token"),
        jwt("nbf in the future", with("nbf", json!(t + 3_600))).expect(401, "invalid-token"),
        jwt("expired", with("exp", json!(t - 3_600))).expect(401, "token-expired"),
        jwt("exp far negative", with("exp", json!(i64::MIN))).expect(401, "token-expired"),
        // Characters outside RFC 6750 b64token never reach the JWT decoder...
        jwt("payload with non-b64token characters", format!("{gh}.!!!$$$.{gsig}"))
            .expect(401, "invalid-token-format"),
        // ...b64token characters that are not base64url do, and fail there.
        jwt("payload not base64url", format!("{gh}.~~~~+/+/.{gsig}")).expect(401, "invalid-token"),
        jwt("header not json", format!("{}.{}.{gsig}", URL_SAFE_NO_PAD.encode("nope"), b64(&claims)))
            .expect(401, "invalid-token"),
        jwt("extra segment", format!("{good}.AAAA")).expect(401, "invalid-token"),
        jwt("five segments (JWE shape)", format!("{gh}.a.b.c.{gsig}")).expect(401, "invalid-token"),
        jwt("two segments", format!("{gh}.{}", b64(&claims))).expect(401, "invalid-token"),
        jwt("roles escalated, signature reused", format!("{gh}.{}.{gsig}", b64(&admin)))
            .expect(401, "invalid-token"),
        jwt("signature of another token", {
            let other = fx.sign(&fx.claims("viewer"));
            let sig = other.rsplit('.').next().unwrap().to_owned();
            format!("{gh}.{}.{sig}", rest.split('.').next().unwrap())
        })
        .expect(401, "invalid-token"),
        jwt("padded base64 signature", format!("{good}==")).expect(401, "invalid-token"),
    ]
}

fn path_cases(fx: &Fixture) -> Vec<Case> {
    let dev = fx.bearer("dev");
    let amb =
        |name: &'static str, path: &str| case(name, "GET", path).expect(400, "ambiguous-path");
    vec![
        amb(
            "encoded slash after public prefix",
            "/health%2F..%2Fapi%2Fv1%2Fagents",
        ),
        amb(
            "raw dot-dot out of a public path",
            "/health/../api/v1/agents",
        ),
        amb("encoded dot-dot", "/%2e%2e/api/v1/agents"),
        amb("upper-case encoded dot-dot", "/docs/%2E%2E/api/v1/agents"),
        amb("dot segment", "/docs/./api"),
        amb("double slash", "//api/v1/agents"),
        amb("semicolon path parameter", "/health;/../api/v1/agents"),
        amb(
            "double-encoded slash",
            "/docs%252F..%252Fapi%252Fv1%252Fagents",
        ),
        amb("backslash traversal", "/docs\\..\\api\\v1\\agents"),
        amb("encoded backslash", "/docs%5C..%5Capi"),
        amb("encoded NUL", "/api/v1/agents/%00"),
        amb("overlong UTF-8 dot", "/docs/%C0%AE%C0%AE/api/v1/agents"),
        amb("encoded slash into service-only", "/api/npu%2Fstatus"),
        amb("dot-dot into service-only", "/api/v1/../npu/status"),
        amb(
            "encoded slash out of the callback route",
            "/internal/jobs/x/status%2F..%2F..%2F..%2Fapi%2Fv1%2Fagents",
        ),
        amb("dot-dot from metrics", "/metrics/../api/v1/agents"),
        case("case twin of a public path", "GET", "/HEALTH").expect(401, "unauthorized"),
        case("prefix twin of a public path", "GET", "/healthX").expect(401, "unauthorized"),
        case("prefix twin of a public subtree", "GET", "/docsX/api").expect(401, "unauthorized"),
        case(
            "prefix twin of service-only, no token",
            "GET",
            "/api/npuX/status",
        )
        .expect(401, "unauthorized"),
        case(
            "prefix twin of service-only, user token",
            "GET",
            "/api/npuX/status",
        )
        .h("authorization", &dev)
        .expect(403, "permission-denied"),
        case("case twin of service-only", "GET", "/API/npu/status").expect(401, "unauthorized"),
        case(
            "case twin of the callback route",
            "POST",
            "/Internal/jobs/x/status",
        )
        .callback("{}")
        .expect(401, "unauthorized"),
        case(
            "trailing slash on the callback route",
            "POST",
            &format!("/internal/jobs/{JOB}/status/"),
        )
        .callback("{}")
        .expect(401, "unauthorized"),
        case("extra segment under problems", "GET", "/problems/a/b").expect(401, "unauthorized"),
        // FINDING (design, see docs/security.md): the router serves `/health` exactly, so
        // `/health/` falls through to the protected stack, where gw-auth matches the
        // normalized path `/health` as public and the request is proxied upstream without
        // a token. It carries no identity: forged identity headers are stripped.
        case(
            "trailing slash on a public path reaches the upstream anonymously",
            "GET",
            "/health/",
        )
        .h("x-gateway-user-id", "admin-1")
        .h("X-Gateway-Roles", "admin")
        .expect_status(200)
        .check(no_identity_upstream),
        case(
            "forged identity headers on a proxied public path",
            "GET",
            "/docs/index.html",
        )
        .h("x-gateway-user-id", "admin-1")
        .h("X-GATEWAY-ROLES", "admin")
        .h("x-gateway-service-id", "demo-svc")
        .h("x-rbac-user-id", "admin-1")
        .h("x-forwarded-for", "10.0.0.1")
        .expect_status(200)
        .check(no_identity_upstream),
        case(
            "forged identity headers next to a real token",
            "GET",
            "/api/v1/agents",
        )
        .h("authorization", &dev)
        .h("x-gateway-user-id", "admin-1")
        .h("x-gateway-roles", "admin")
        .expect_status(200)
        .check(|r| {
            let echo: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
            let h = &echo["headers"];
            if h["x-gateway-user-id"] != "dev" || h["x-gateway-roles"] != "developer" {
                return Err(format!("upstream saw {h}"));
            }
            Ok(())
        }),
        case(
            "user token on a service-only path",
            "GET",
            "/api/npu/status",
        )
        .h("authorization", &dev)
        .expect(401, "missing-headers"),
        case(
            "absolute-form target to another host",
            "GET",
            "http://evil.example/api/v1/agents",
        )
        .expect(401, "unauthorized"),
    ]
}

fn service_cases(fx: &Fixture) -> Vec<Case> {
    let _ = fx;
    let t = now();
    let status = "/api/npu/status";
    let signed = |i: usize| service_headers("GET", status, b"", t, &nonce(i), SERVICE_SECRET);
    let svc =
        |name: &'static str, headers: Vec<(String, String)>| case(name, "GET", status).hs(headers);
    let replayed = signed(1);
    let mut dup = signed(2);
    dup.push(("x-service-id".into(), "svc-b".into()));
    vec![
        svc("signed (control)", signed(0)).expect_status(200),
        svc("replay: first use", replayed.clone()).expect_status(200),
        svc("replay: second use", replayed).expect(401, "replayed"),
        svc(
            "stale timestamp",
            service_headers("GET", status, b"", t - 1_000, &nonce(3), SERVICE_SECRET),
        )
        .expect(401, "stale-timestamp"),
        svc(
            "future timestamp",
            service_headers("GET", status, b"", t + 1_000, &nonce(4), SERVICE_SECRET),
        )
        .expect(401, "stale-timestamp"),
        svc(
            "timestamp zero",
            service_headers("GET", status, b"", 0, &nonce(5), SERVICE_SECRET),
        )
        .expect(401, "stale-timestamp"),
        svc(
            "timestamp not a number",
            replace(signed(6), "x-service-timestamp", "1e9"),
        )
        .expect(401, "missing-headers"),
        svc(
            "timestamp 13 digits",
            replace(signed(7), "x-service-timestamp", "9999999999999"),
        )
        .expect(401, "missing-headers"),
        svc(
            "timestamp negative",
            replace(signed(8), "x-service-timestamp", "-1"),
        )
        .expect(401, "missing-headers"),
        svc("duplicated x-service-id", dup).expect(401, "missing-headers"),
        svc(
            "nonce too short",
            replace(signed(9), "x-service-nonce", "short"),
        )
        .expect(401, "missing-headers"),
        svc(
            "nonce with separators",
            replace(signed(10), "x-service-nonce", "aaaaaaaaaa\naaaaaaaaaaaaa"),
        )
        .expect_status(400),
        svc(
            "service id traversal",
            replace(signed(11), "x-service-id", "../../etc/passwd"),
        )
        .expect(401, "missing-headers"),
        svc(
            "five key ids",
            replace(signed(12), "x-service-key-id", "k1 k1 k1 k1 k1"),
        )
        .expect(401, "missing-headers"),
        svc(
            "signature count mismatch",
            replace(signed(13), "x-service-key-id", "k1 k2"),
        )
        .expect(401, "missing-headers"),
        svc(
            "content-digest not sha-256",
            replace(signed(14), "content-digest", "md5=:AAAA:"),
        )
        .expect(401, "missing-headers"),
        svc(
            "missing signature",
            signed(15)
                .into_iter()
                .filter(|(k, _)| k != "x-service-signature")
                .collect(),
        )
        .expect(401, "missing-headers"),
        svc(
            "unknown service",
            replace(signed(16), "x-service-id", "svc-nobody"),
        )
        .expect(401, "unknown-service"),
        svc(
            "unknown key id",
            replace(signed(17), "x-service-key-id", "k9"),
        )
        .expect(401, "unknown-key"),
        svc(
            "wrong secret",
            service_headers("GET", status, b"", t, &nonce(18), "not-the-secret"),
        )
        .expect(401, "bad-signature"),
        svc(
            "signature of another version",
            replace(signed(19), "x-service-signature", "v2=AAAA"),
        )
        .expect(401, "bad-signature"),
        svc("signature bit-flipped", {
            let h = signed(20);
            let sig = h
                .iter()
                .find(|(k, _)| k == "x-service-signature")
                .unwrap()
                .1
                .clone();
            let flipped = if sig.ends_with("A=") {
                sig.replace("A=", "B=")
            } else {
                format!("{}A=", &sig[..sig.len() - 2])
            };
            replace(h, "x-service-signature", &flipped)
        })
        .expect(401, "bad-signature"),
        case("tampered query", "GET", "/api/npu/status?job=2")
            .hs(service_headers(
                "GET",
                "/api/npu/status?job=1",
                b"",
                t,
                &nonce(21),
                SERVICE_SECRET,
            ))
            .expect(401, "bad-signature"),
        case("tampered method", "DELETE", status)
            .hs(signed(22))
            .expect(401, "bad-signature"),
        case(
            "signed path, trailing slash sent",
            "GET",
            "/api/npu/status/",
        )
        .hs(signed(23))
        .expect(401, "bad-signature"),
        case("wrong content digest", "POST", "/api/npu/jobs")
            .hs(service_headers(
                "POST",
                "/api/npu/jobs",
                b"{\"a\":1}",
                t,
                &nonce(24),
                SERVICE_SECRET,
            ))
            .body("{\"a\":2}")
            .expect(401, "digest-mismatch"),
        case("service body over the cap", "POST", "/api/npu/jobs")
            .hs(service_headers(
                "POST",
                "/api/npu/jobs",
                b"",
                t,
                &nonce(25),
                SERVICE_SECRET,
            ))
            .h("content-length", "5000000")
            .raw_length()
            .expect(413, "payload-too-large"),
    ]
}

fn event(id: &str, status: &str) -> String {
    json!({"event_id": id, "status": status, "occurred_at": "2026-01-01T00:00:00Z"}).to_string()
}

fn callback_cases() -> Vec<Case> {
    let path = format!("/internal/jobs/{JOB}/status");
    let cb = |name: &'static str| case(name, "POST", &path);
    let valid = event("e-valid", "dispatched");
    let deep = format!(
        "{{\"event_id\":\"d\",\"status\":\"dispatched\",\"occurred_at\":\"2026-01-01T00:00:00Z\",\"artifact_updates\":{}{}}}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    vec![
        cb("no secret").h("content-type", "application/json").body(&valid).expect(401, "UNAUTHORIZED"),
        cb("wrong secret of the same length")
            .h("x-callback-secret", "x".repeat(CALLBACK_SECRET.len()))
            .h("content-type", "application/json")
            .body(&valid)
            .expect(401, "UNAUTHORIZED"),
        cb("secret prefix")
            .h("x-callback-secret", &CALLBACK_SECRET[..32])
            .h("content-type", "application/json")
            .body(&valid)
            .expect(401, "UNAUTHORIZED"),
        cb("secret with suffix")
            .h("x-callback-secret", format!("{CALLBACK_SECRET}x"))
            .h("content-type", "application/json")
            .body(&valid)
            .expect(401, "UNAUTHORIZED"),
        cb("empty secret")
            .h("x-callback-secret", "")
            .h("content-type", "application/json")
            .body(&valid)
            .expect(401, "UNAUTHORIZED"),
        cb("non-utf8 secret")
            .h("x-callback-secret", b"\xff\xfe\xfd")
            .h("content-type", "application/json")
            .body(&valid)
            .expect(401, "UNAUTHORIZED"),
        cb("secret twice").h("x-callback-secret", CALLBACK_SECRET).callback(&valid).expect(401, "UNAUTHORIZED"),
        cb("secret as bearer token")
            .h("authorization", format!("Bearer {CALLBACK_SECRET}"))
            .h("content-type", "application/json")
            .body(&valid)
            .expect(401, "UNAUTHORIZED"),
        cb("not json").callback("hello").expect(409, "VALIDATION_ERROR"),
        cb("empty body").callback("").expect(409, "VALIDATION_ERROR"),
        cb("json array").callback("[1,2,3]").expect(409, "VALIDATION_ERROR"),
        cb("json null").callback("null").expect(409, "VALIDATION_ERROR"),
        cb("nested 5000 deep").callback(&deep).expect(409, "VALIDATION_ERROR"),
        cb("body over the limit").callback(format!(
            "{{\"event_id\":\"big\",\"status\":\"dispatched\",\"occurred_at\":\"2026-01-01T00:00:00Z\",\"failure_message\":\"{}\"}}",
            "m".repeat(64 * 1024)
        )).expect(409, "VALIDATION_ERROR"),
        cb("declared length over the limit")
            .h("x-callback-secret", CALLBACK_SECRET)
            .h("content-type", "application/json")
            .h("content-length", "10000000")
            .raw_length()
            .body(&valid)
            .expect(409, "VALIDATION_ERROR"),
        cb("status is a number")
            .callback(r#"{"event_id":"t1","status":5,"occurred_at":"2026-01-01T00:00:00Z"}"#)
            .expect(409, "VALIDATION_ERROR"),
        cb("occurred_at is a number")
            .callback(r#"{"event_id":"t2","status":"dispatched","occurred_at":1767225600}"#)
            .expect(409, "VALIDATION_ERROR"),
        cb("event_id is an object")
            .callback(r#"{"event_id":{"$ne":""},"status":"dispatched","occurred_at":"2026-01-01T00:00:00Z"}"#)
            .expect(409, "VALIDATION_ERROR"),
        cb("unknown field")
            .callback(r#"{"event_id":"t3","status":"dispatched","occurred_at":"2026-01-01T00:00:00Z","admin":true}"#)
            .expect(409, "VALIDATION_ERROR"),
        cb("duplicate status field")
            .callback(r#"{"event_id":"t4","status":"dispatched","status":"completed","occurred_at":"2026-01-01T00:00:00Z"}"#)
            .expect(409, "VALIDATION_ERROR"),
        cb("missing event_id")
            .callback(r#"{"status":"dispatched","occurred_at":"2026-01-01T00:00:00Z"}"#)
            .expect(409, "VALIDATION_ERROR"),
        cb("event_id of 300 bytes").callback(event(&"e".repeat(300), "dispatched")).expect(409, "VALIDATION_ERROR"),
        cb("event_id with a control character").callback(event("e\u{7}", "dispatched")).expect(409, "VALIDATION_ERROR"),
        cb("unknown status").callback(event("t5", "hacked")).expect(409, "VALIDATION_ERROR"),
        cb("status case twin").callback(event("t6", "DISPATCHED")).expect(409, "VALIDATION_ERROR"),
        cb("occurred_at not RFC 3339")
            .callback(r#"{"event_id":"t7","status":"dispatched","occurred_at":"yesterday"}"#)
            .expect(409, "VALIDATION_ERROR"),
        cb("artifact_updates is a string")
            .callback(r#"{"event_id":"t8","status":"dispatched","occurred_at":"2026-01-01T00:00:00Z","artifact_updates":"x"}"#)
            .expect(409, "VALIDATION_ERROR"),
        cb("number out of range")
            .callback(r#"{"event_id":"t9","status":"dispatched","occurred_at":"2026-01-01T00:00:00Z","artifact_updates":[1e999]}"#)
            .expect(409, "VALIDATION_ERROR"),
        cb("invalid UTF-8 in a string")
            .callback(b"{\"event_id\":\"t\xff\",\"status\":\"dispatched\",\"occurred_at\":\"2026-01-01T00:00:00Z\"}")
            .expect(409, "VALIDATION_ERROR"),
        cb("byte order mark").callback(format!("\u{feff}{valid}")).expect(409, "VALIDATION_ERROR"),
        cb("trailing data").callback(format!("{valid}{valid}")).expect(409, "VALIDATION_ERROR"),
        cb("content-type text/plain")
            .h("x-callback-secret", CALLBACK_SECRET)
            .h("content-type", "text/plain")
            .body(&valid)
            .expect(409, "VALIDATION_ERROR"),
        cb("conflicting content-types")
            .h("content-type", "text/plain")
            .callback(&valid)
            .expect(409, "VALIDATION_ERROR"),
        cb("json content-type, then a conflicting one")
            .callback(&valid)
            .h("content-type", "text/plain")
            .expect(409, "VALIDATION_ERROR"),
        case("callback with GET", "GET", &path)
            .h("x-callback-secret", CALLBACK_SECRET)
            .expect_status(405),
        case("callback for an unknown job", "POST", "/internal/jobs/no-such-job/status")
            .callback(event("u1", "dispatched"))
            .expect(404, "RESOURCE_NOT_FOUND"),
        case("callback job id is dot-dot", "POST", "/internal/jobs/%2e%2e/status")
            .callback(event("u2", "dispatched"))
            .expect(400, "ambiguous-path"),
        case("callback job id with encoded slash", "POST", &format!("/internal/jobs/x%2F..%2F{JOB}/status"))
            .callback(event("u3", "dispatched"))
            .expect(400, "ambiguous-path"),
        cb("transition the table forbids")
            .callback(r#"{"event_id":"t10","status":"succeeded","occurred_at":"2026-01-02T00:00:00Z"}"#).expect(409, "FSM_TRANSITION_INVALID"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_5xx_never_mutates() {
    let fx = Fixture::new();
    let gw = build(&fx.config(), None).await.unwrap();
    let jobs = gw.jobs.clone().expect("callbacks are configured");
    assert!(jobs.create_job(JOB, "queued").await.unwrap());
    let addr = serve_on_loopback(&gw).await;
    let before = (
        jobs.job(JOB).await.unwrap(),
        jobs.history(JOB).await.unwrap(),
    );

    let groups = [
        ("headers", header_cases(&fx)),
        ("jwt", jwt_cases(&fx)),
        ("paths", path_cases(&fx)),
        ("service", service_cases(&fx)),
        ("callbacks", callback_cases()),
    ];
    let total: usize = groups.iter().map(|(_, g)| g.len()).sum();
    assert!(total >= 60, "only {total} cases");
    let mut failed = Vec::new();
    for (_, cases) in &groups {
        failed.extend(failures(addr, cases).await);
    }
    assert!(
        failed.is_empty(),
        "{} of {total} cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );

    // No rejected callback moved the job or entered its ledger...
    let after = (
        jobs.job(JOB).await.unwrap(),
        jobs.history(JOB).await.unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(after.0.as_ref().unwrap().status, "queued");
    assert!(after.1.is_empty());
    // ...and the gate is not simply closed: a correct callback is applied.
    let ok = case(
        "valid callback",
        "POST",
        &format!("/internal/jobs/{JOB}/status"),
    )
    .callback(event("e-valid", "dispatched"))
    .expect_status(204);
    run(addr, &[ok]).await;
    assert_eq!(jobs.job(JOB).await.unwrap().unwrap().status, "dispatched");
    assert_eq!(jobs.history(JOB).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_do_not_consume_the_trial() {
    let fx = Fixture::new();
    let gw = build(&fx.config(), None).await.unwrap();
    let addr = serve_on_loopback(&gw).await;
    let trial = fx.bearer("trial");
    let mut tampered = fx.claims("trial");
    tampered["trial_mode"] = json!(false);
    let good = fx.sign(&fx.claims("trial"));
    let (h, rest) = good.split_once('.').unwrap();
    let sig = rest.rsplit('.').next().unwrap();
    let tampered = format!(
        "Bearer {h}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(tampered.to_string())
    );
    let task = |name: &'static str, path: &str| case(name, "POST", path).body("{}");
    let rejected = vec![
        task("trial: tampered token", "/api/v1/agents")
            .h("authorization", &tampered)
            .expect(401, "invalid-token"),
        task("trial: duplicate authorization", "/api/v1/agents")
            .h("authorization", &trial)
            .h("authorization", &trial)
            .expect(401, "invalid-token-format"),
        task("trial: ambiguous path", "/api/v1/agents/%2e%2e")
            .h("authorization", &trial)
            .expect(400, "ambiguous-path"),
        task(
            "trial: dot-dot twin of the task route",
            "/api/v1/x/../agents",
        )
        .h("authorization", &trial)
        .expect(400, "ambiguous-path"),
        task("trial: expired token", "/api/v1/agents")
            .h(
                "authorization",
                format!("Bearer {}", {
                    let mut c = fx.claims("trial");
                    c["exp"] = json!(now() - 3_600);
                    fx.sign(&c)
                }),
            )
            .expect(401, "token-expired"),
    ];
    run(addr, &rejected).await;
    // The one task of the day is still there, and only one.
    let first = task("trial: first task", "/api/v1/agents")
        .h("authorization", &trial)
        .expect_status(200);
    let second = task("trial: second task", "/api/v1/agents")
        .h("authorization", &trial)
        .expect(429, "trial-limit-exceeded");
    run(addr, &[first, second]).await;
}
