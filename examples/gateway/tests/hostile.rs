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

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::raw::*;
use common::{now, serve_on_loopback};
use gateway::build;
use serde_json::{Value, json};

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
        // The router serves `/health` exactly; a near miss is proxied and needs a token.
        case("trailing slash on an operator path", "GET", "/health/")
            .h("x-gateway-user-id", "admin-1")
            .h("X-Gateway-Roles", "admin")
            .expect(401, "unauthorized"),
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
        // HEAD runs the GET handler upstream: it needs the GET route's permission.
        case(
            "export by a viewer (reports:read only)",
            "GET",
            "/api/v1/reports/9/export",
        )
        .h("authorization", fx.bearer("viewer"))
        .expect(403, "permission-denied"),
        case(
            "HEAD on a GET-only export route",
            "HEAD",
            "/api/v1/reports/9/export",
        )
        .h("authorization", fx.bearer("viewer"))
        .expect_status(403),
        // PostgreSQL refuses U+0000 in audit text: stored as U+FFFD, answered as usual.
        case(
            "encoded NUL in the query",
            "GET",
            "/api/v1/agents?q=%00&%00=x",
        )
        .h("authorization", &dev)
        .expect_status(200),
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
    assert!(
        groups.iter().flat_map(|(_, g)| g).all(|c| c.status < 500),
        "hostile input never expects a 5xx"
    );
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

/// On the customer gateway (RBAC off by default) only gw-auth stands between a client and
/// the upstream: near misses of operator paths, which the router does not serve, need a
/// token like any other proxied request (the finding in docs/security.md, fixed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_gateway_operator_path_twins_need_a_token() {
    let fx = Fixture::new();
    let mut config = fx.config();
    config.gateway_type = gw_core::GatewayType::Cp;
    let gw = build(&config, None).await.unwrap();
    let addr = serve_on_loopback(&gw).await;
    let cases = [
        case("cp: below a problem page", "GET", "/problems/a/b")
            .h("x-gateway-user-id", "admin-1")
            .expect(401, "unauthorized"),
        case("cp: trailing slash on /ready", "GET", "/ready/").expect(401, "unauthorized"),
        case("cp: trailing slash on /metrics", "GET", "/metrics/").expect(401, "unauthorized"),
        // The protected API itself still needs a token.
        case("cp: protected route", "GET", "/api/v1/agents").expect(401, "unauthorized"),
        case("cp: case twin", "GET", "/PROBLEMS/a/b").expect(401, "unauthorized"),
    ];
    run(addr, &cases).await;
}

/// An exemption over a service-only route would open it to anyone (exempt wins over every
/// svc-hmac group, and service-only routes skip JWT and RBAC): the gateway refuses it. A
/// frontend exemption beside it leaves the service-only route closed to unsigned callers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exempt_route_cannot_open_a_service_only_route() {
    let fx = Fixture::new();
    let mut config = fx.config();
    config.service_auth.exempt = vec!["/api/*".into()];
    let err = build(&config, None).await.err().expect("started");
    assert!(
        err.contains("\"/api/*\" overlaps service-only \"/api/npu/*\""),
        "{err}"
    );

    config.service_auth.exempt = vec!["/api/chats/*".into()];
    let gw = build(&config, None).await.unwrap();
    let addr = serve_on_loopback(&gw).await;
    let cases = [
        case(
            "beside an exemption: unsigned, no token",
            "GET",
            "/api/npu/status",
        )
        .expect(401, "missing-headers"),
        case(
            "exempt frontend route still needs its JWT",
            "GET",
            "/api/chats/1",
        )
        .expect(401, "unauthorized"),
    ];
    run(addr, &cases).await;
}

/// Anonymous requests on the public paths are not charged: a flood of them cannot spend
/// the platform budget that paying customers share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_public_requests_do_not_spend_the_platform_budget() {
    let fx = Fixture::new();
    let mut config = fx.config();
    config.budget.platform_monthly_micro_usd = 3_000;
    config.budget.cost_per_request_micro_usd = 1_000;
    let gw = build(&config, None).await.unwrap();
    let addr = serve_on_loopback(&gw).await;
    let anonymous: Vec<Case> = (0..5)
        .map(|_| case("anonymous public request", "GET", "/docs/x").expect_status(200))
        .collect();
    run(addr, &anonymous).await;
    let dev = fx.bearer("dev");
    let paying: Vec<Case> = (0..3)
        .map(|_| {
            case("paying customer after the flood", "GET", "/api/v1/agents")
                .h("authorization", &dev)
                .expect_status(200)
        })
        .collect();
    run(addr, &paying).await;
    // The platform budget still holds exactly: the fourth paid request is refused.
    let over = case("over the platform budget", "GET", "/api/v1/agents")
        .h("authorization", &dev)
        .expect(402, "budget-exceeded");
    run(addr, &[over]).await;
}
