//! AuthLayer behaviour: every reason code, RFC 6750 challenges, algorithms, public paths.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use gw_auth::{AuthLayer, KeySource, StaticKeys, VerifyKey};
use gw_core::ManualClock;
use http::{HeaderValue, Method, Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

fn keys() -> StaticKeys {
    let k = |name: &str, kid: &str| VerifyKey::from_pem(Some(kid), &public_pem(name)).unwrap();
    StaticKeys::new([
        k("rsa1", "k1"),
        k("ec256", "ec256"),
        k("ec384", "ec384"),
        k("ed25519", "ed"),
    ])
}

fn layer() -> AuthLayer {
    AuthLayer::new(keys())
        .issuer(ISS)
        .audience("gw")
        .realm("gw")
        .clock(Arc::new(ManualClock::at_unix(NOW as u64)))
}

async fn expect_401(layer: &AuthLayer, req: Request<Body>, code: &str, reason: &str) -> Seen {
    let seen = send(layer, req).await;
    assert_eq!(
        seen.status,
        StatusCode::UNAUTHORIZED,
        "{reason}: {:?}",
        seen.body
    );
    assert_eq!(seen.body["code"], code, "{:?}", seen.body);
    assert_eq!(seen.body["reason"], reason, "{:?}", seen.body);
    assert_eq!(seen.headers["content-type"], "application/problem+json");
    let challenge = seen.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer realm=\"gw\""), "{challenge}");
    let rfc6750 = match code {
        "unauthorized" => None,
        "invalid-token-format" => Some("error=\"invalid_request\""),
        _ => Some("error=\"invalid_token\""),
    };
    match rfc6750 {
        Some(e) => assert!(challenge.contains(e), "{challenge}"),
        None => assert_eq!(challenge, "Bearer realm=\"gw\""),
    }
    seen
}

#[tokio::test]
async fn valid_token_inserts_claims_and_principal() {
    let token = mint("rsa1", Some("k1"), &claims());
    let seen = send(&layer(), bearer("/api/v1/me", &token)).await;
    assert_eq!(seen.status, StatusCode::OK);
    let p = &seen.body["principal"];
    assert_eq!(p["user_id"], "user-1");
    assert_eq!(p["customer_id"], "cust-1");
    assert_eq!(p["roles"], json!(["developer", "viewer"]));
    assert_eq!(p["trial"], json!(null));
    let c = &seen.body["claims"];
    assert_eq!(c["email"], "ada@example.com");
    assert_eq!(c["aud"], json!(["gw"]));
    assert_eq!(
        c["extra"]["plan"]["tier"], "gold",
        "extra claims stay as JSON"
    );
}

#[tokio::test]
async fn missing_header_is_unauthorized() {
    let seen = expect_401(
        &layer(),
        get("/api/v1/me", None),
        "unauthorized",
        "missing-authorization",
    )
    .await;
    assert_eq!(seen.body["instance"], "/api/v1/me");
}

#[tokio::test]
async fn malformed_headers_are_invalid_token_format() {
    let token = mint("rsa1", Some("k1"), &claims());
    let cases = [
        ("Basic dXNlcjpwYXNz".to_owned(), "not-bearer"),
        ("Token abc".to_owned(), "not-bearer"),
        (token.clone(), "not-bearer"),
        ("Bearer".to_owned(), "empty-token"),
        ("Bearer    ".to_owned(), "empty-token"),
        (format!("Bearer {token} extra"), "extra-parts"),
        ("Bearer a,b".to_owned(), "bad-characters"),
        ("Bearer ====".to_owned(), "bad-characters"),
        (String::new(), "not-bearer"),
    ];
    for (value, reason) in cases {
        expect_401(
            &layer(),
            get("/api/x", Some(&value)),
            "invalid-token-format",
            reason,
        )
        .await;
    }
    let mut req = bearer("/api/x", &token);
    req.headers_mut().append(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    expect_401(&layer(), req, "invalid-token-format", "duplicate-header").await;

    let mut req = get("/api/x", None);
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_bytes(b"Bearer \xe9t\xe9").unwrap(),
    );
    expect_401(&layer(), req, "invalid-token-format", "not-ascii").await;

    // The scheme is case-insensitive (RFC 7235).
    let seen = send(&layer(), get("/api/x", Some(&format!("bearer {token}")))).await;
    assert_eq!(seen.status, StatusCode::OK);
}

#[tokio::test]
async fn expiry_honours_leeway() {
    let mut c = claims();
    c["exp"] = json!(NOW - 31);
    let seen = expect_401(
        &layer(),
        bearer("/api", &mint("rsa1", Some("k1"), &c)),
        "token-expired",
        "expired",
    )
    .await;
    assert!(
        seen.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("expired")
    );

    c["exp"] = json!(NOW - 29);
    let seen = send(&layer(), bearer("/api", &mint("rsa1", Some("k1"), &c))).await;
    assert_eq!(seen.status, StatusCode::OK, "inside the 30 s leeway");

    let strict = layer().leeway(Duration::ZERO);
    expect_401(
        &strict,
        bearer("/api", &mint("rsa1", Some("k1"), &c)),
        "token-expired",
        "expired",
    )
    .await;
}

#[tokio::test]
async fn invalid_tokens_name_their_reason() {
    let l = layer();
    let ok = claims();
    let with = |k: &str, v: serde_json::Value| {
        let mut c = claims();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let cases = [
        (mint("rsa2", Some("k1"), &ok), "bad-signature"),
        (mint("rsa1", Some("nope"), &ok), "unknown-kid"),
        (
            mint(
                "rsa1",
                Some("k1"),
                &with("iss", json!("https://evil.example.com")),
            ),
            "wrong-issuer",
        ),
        (
            mint("rsa1", Some("k1"), &with("aud", json!(["other"]))),
            "wrong-audience",
        ),
        (mint("rsa1", Some("k1"), &without("aud")), "wrong-audience"),
        (
            mint("rsa1", Some("k1"), &with("nbf", json!(NOW + 120))),
            "not-yet-valid",
        ),
        (mint("rsa1", Some("k1"), &without("email")), "missing-claim"),
        (mint("rsa1", Some("k1"), &without("roles")), "missing-claim"),
        (mint("rsa1", Some("k1"), &without("exp")), "missing-claim"),
        (
            mint("rsa1", Some("k1"), &with("customer_id", json!(""))),
            "empty-claim",
        ),
        (
            mint("rsa1", Some("k1"), &with("sub", json!(null))),
            "missing-claim",
        ),
        (
            mint(
                "rsa1",
                Some("k1"),
                &with("trial_expires_at", json!("tomorrow")),
            ),
            "bad-claim",
        ),
        (
            mint("rsa1", Some("k1"), &with("exp", json!("never"))),
            "malformed",
        ),
        ("abc.def.ghi".to_owned(), "malformed"),
        ("abc.def".to_owned(), "malformed"),
        ("a.b.c.d".to_owned(), "malformed"),
        (
            mint("rsa1", Some("k1"), &with("pad", json!("x".repeat(9000)))),
            "token-too-large",
        ),
    ];
    for (token, reason) in cases {
        expect_401(&l, bearer("/api", &token), "invalid-token", reason).await;
    }
    // The size cap comes before any parsing, whatever the header holds.
    let huge = format!("{}!", "a".repeat(9000));
    expect_401(
        &l,
        bearer("/api", &huge),
        "invalid-token",
        "token-too-large",
    )
    .await;

    // Without a kid, only a set with exactly one fitting key answers (no key trying).
    assert_eq!(
        send(&l, bearer("/api", &mint("rsa1", None, &ok)))
            .await
            .status,
        StatusCode::OK
    );
    let two_rsa = AuthLayer::new(StaticKeys::new([
        VerifyKey::from_pem(Some("k1"), &public_pem("rsa1")).unwrap(),
        VerifyKey::from_pem(Some("k2"), &public_pem("rsa2")).unwrap(),
    ]))
    .realm("gw")
    .clock(Arc::new(ManualClock::at_unix(NOW as u64)));
    expect_401(
        &two_rsa,
        bearer("/api", &mint("rsa1", None, &ok)),
        "invalid-token",
        "kid-required",
    )
    .await;

    // A tampered payload under a valid signature.
    let token = mint("rsa1", Some("k1"), &ok);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = raw_token(
        &json!({"alg": "RS256", "kid": "k1"}),
        &with("roles", json!(["admin"])),
        b"x",
    );
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        forged.split('.').nth(1).unwrap(),
        parts[2]
    );
    expect_401(
        &l,
        bearer("/api", &forged),
        "invalid-token",
        "bad-signature",
    )
    .await;
}

#[tokio::test]
async fn alg_none_and_hmac_confusion_are_refused() {
    let l = layer();
    for sig in [&b""[..], b"sig"] {
        let none = raw_token(&json!({"alg": "none", "kid": "k1"}), &claims(), sig);
        let reason = if sig.is_empty() {
            "malformed"
        } else {
            "alg-not-allowed"
        };
        expect_401(&l, bearer("/api", &none), "invalid-token", reason).await;
    }
    let none = raw_token(&json!({"alg": "none", "kid": "k1"}), &claims(), b"");
    let none = format!("{}.", none.trim_end_matches('.'));
    expect_401(&l, bearer("/api", &none), "invalid-token", "malformed").await;

    // The RSA public key used as an HMAC secret: the classic RS256 -> HS256 confusion.
    for secret in [
        public_pem("rsa1"),
        public_pem("rsa1").trim_ascii_end().to_vec(),
    ] {
        let key = EncodingKey::from_secret(&secret);
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let token = mint_with(&key, alg, Some("k1"), &claims());
            expect_401(
                &l,
                bearer("/api", &token),
                "invalid-token",
                "alg-not-allowed",
            )
            .await;
        }
    }
    // An EC key is not an RSA key: the header's alg must fit the key's type.
    let (ec, _) = signer("ec256");
    let token = mint_with(&ec, Algorithm::ES256, Some("k1"), &claims());
    expect_401(
        &l,
        bearer("/api", &token),
        "invalid-token",
        "alg-key-mismatch",
    )
    .await;
    let token = mint("ec256", Some("ec384"), &claims());
    expect_401(
        &l,
        bearer("/api", &token),
        "invalid-token",
        "alg-key-mismatch",
    )
    .await;
}

#[tokio::test]
async fn every_supported_algorithm_verifies() {
    let l = layer();
    let (rsa, _) = signer("rsa1");
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        let seen = send(
            &l,
            bearer("/api", &mint_with(&rsa, alg, Some("k1"), &claims())),
        )
        .await;
        assert_eq!(seen.status, StatusCode::OK, "{alg:?}");
    }
    for (name, kid) in [("ec256", "ec256"), ("ec384", "ec384"), ("ed25519", "ed")] {
        let seen = send(&l, bearer("/api", &mint(name, Some(kid), &claims()))).await;
        assert_eq!(seen.status, StatusCode::OK, "{name}");
    }
    // A key pinned to one algorithm refuses the others of its family.
    let pinned = VerifyKey::from_pem(Some("k1"), &public_pem("rsa1"))
        .unwrap()
        .pin(Algorithm::PS256)
        .unwrap();
    let l =
        AuthLayer::new(StaticKeys::new([pinned])).clock(Arc::new(ManualClock::at_unix(NOW as u64)));
    let ok = send(
        &l,
        bearer(
            "/api",
            &mint_with(&rsa, Algorithm::PS256, Some("k1"), &claims()),
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    expect_401(
        &l.clone().realm("gw"),
        bearer(
            "/api",
            &mint_with(&rsa, Algorithm::RS256, Some("k1"), &claims()),
        ),
        "invalid-token",
        "alg-key-mismatch",
    )
    .await;
}

#[tokio::test]
async fn public_paths_bypass_but_prefix_twins_do_not() {
    let l = layer();
    for path in [
        "/health",
        "/healthz",
        "/ready",
        "/metrics",
        "/docs",
        "/docs/index.html",
        "/redoc",
        "/openapi.json",
        "/health/",
    ] {
        let seen = send(&l, get(path, None)).await;
        assert_eq!(seen.status, StatusCode::OK, "{path}");
        assert_eq!(seen.body["principal"], json!(null));
    }
    for path in [
        "/healthX",
        "/health.json",
        "/healthz/x",
        "/openapi.jsonx",
        "/docsX",
        "/api/health",
        "/metrics/../api",
    ] {
        let seen = send(&l, get(path, None)).await;
        assert_ne!(seen.status, StatusCode::OK, "{path} must not bypass");
    }
    for path in [
        "/health%2F..%2Fapi",
        "/health/..",
        "//health",
        "/docs/%2e%2e/api",
        "/health;x",
    ] {
        let seen = send(&l, get(path, None)).await;
        assert_eq!(seen.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(seen.body["code"], "ambiguous-path");
    }
    // Configurable, method-scoped.
    let l = layer().public_routes(["GET /status"]).unwrap();
    assert_eq!(send(&l, get("/status", None)).await.status, StatusCode::OK);
    assert_eq!(
        send(&l, get("/health", None)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let post = Request::post("/status").body(Body::default()).unwrap();
    assert_eq!(send(&l, post).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cors_preflight_bypass_is_opt_in() {
    let preflight = || {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/v1/agents")
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .body(Body::default())
            .unwrap()
    };
    expect_401(
        &layer(),
        preflight(),
        "unauthorized",
        "missing-authorization",
    )
    .await;
    let l = layer().allow_cors_preflight(true);
    assert_eq!(send(&l, preflight()).await.status, StatusCode::OK);
    // A plain OPTIONS (no Access-Control-Request-Method) still needs a token.
    let plain = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api")
        .body(Body::default())
        .unwrap();
    expect_401(&l, plain, "unauthorized", "missing-authorization").await;
}

#[tokio::test]
async fn issuers_select_their_key_set_by_iss() {
    let a = StaticKeys::from_pem(Some("k1"), public_pem("rsa1")).unwrap();
    let b = StaticKeys::from_pem(Some("k1"), public_pem("rsa2")).unwrap();
    let l = AuthLayer::by_issuer()
        .issuer_keys("https://a.example.com", a)
        .issuer_keys("https://b.example.com", b)
        .realm("gw")
        .clock(Arc::new(ManualClock::at_unix(NOW as u64)));
    let from = |iss: &str| {
        let mut c = claims();
        c["iss"] = json!(iss);
        c
    };
    let ok_a = mint("rsa1", Some("k1"), &from("https://a.example.com"));
    let ok_b = mint("rsa2", Some("k1"), &from("https://b.example.com"));
    assert_eq!(send(&l, bearer("/api", &ok_a)).await.status, StatusCode::OK);
    assert_eq!(send(&l, bearer("/api", &ok_b)).await.status, StatusCode::OK);
    // Same kid, other issuer's key: the iss decides the set, the signature fails.
    let crossed = mint("rsa1", Some("k1"), &from("https://b.example.com"));
    expect_401(
        &l,
        bearer("/api", &crossed),
        "invalid-token",
        "bad-signature",
    )
    .await;
    let stranger = mint("rsa1", Some("k1"), &from("https://c.example.com"));
    expect_401(
        &l,
        bearer("/api", &stranger),
        "invalid-token",
        "unknown-issuer",
    )
    .await;
    expect_401(
        &l,
        bearer(
            "/api",
            &mint("rsa1", Some("k1"), &{
                let mut c = claims();
                c.as_object_mut().unwrap().remove("iss");
                c
            }),
        ),
        "invalid-token",
        "unknown-issuer",
    )
    .await;
}

#[tokio::test]
async fn cache_hit_skips_verification_until_exp() {
    let clock = ManualClock::at_unix(NOW as u64);
    let l = layer().clock(Arc::new(clock.clone()));
    let v = l.verifier();
    let token = mint("rsa1", Some("k1"), &claims());
    let first = v.verify(&token, NOW).await.unwrap();
    let second = v.verify(&token, NOW + 1).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "a hit returns the cached verification"
    );
    assert_eq!(v.cached_tokens(), 1);

    // Through the layer: the same cached claims reach the handler.
    let seen = send(&l, bearer("/api", &token)).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(v.cached_tokens(), 1);

    // Past exp the entry is not served: inside the leeway the token is re-verified (a
    // new verification, not cached), past it the token is expired.
    let late = v.verify(&token, NOW + 605).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &late));
    clock.advance(Duration::from_secs(700));
    expect_401(&l, bearer("/api", &token), "token-expired", "expired").await;

    // A refused token is never cached.
    let bad = mint("rsa2", Some("k1"), &claims());
    assert!(v.verify(&bad, NOW).await.is_err());
    assert!(v.verify(&bad, NOW).await.is_err());

    // Disabled cache: every call verifies.
    let v = layer().cache_capacity(0).verifier();
    let a = v.verify(&token, NOW).await.unwrap();
    let b = v.verify(&token, NOW).await.unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    assert_eq!(v.cached_tokens(), 0);
}

#[tokio::test]
async fn cache_is_bounded() {
    let v = layer().cache_capacity(8).verifier();
    for i in 0..40 {
        let mut c = claims();
        c["jti"] = json!(i);
        v.verify(&mint("ec256", Some("ec256"), &c), NOW)
            .await
            .unwrap();
    }
    assert!(v.cached_tokens() <= 8, "{}", v.cached_tokens());
    assert!(v.cached_tokens() > 0);
}

#[tokio::test]
async fn trial_and_governor_claims_reach_the_principal() {
    let mut c = claims();
    c["trial_mode"] = json!(true);
    c["trial_expires_at"] = json!(NOW + 86_400);
    c["governor_agent_id"] = json!("gov-7");
    let seen = send(&layer(), bearer("/api", &mint("ed25519", Some("ed"), &c))).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body["principal"]["governor_agent_id"], "gov-7");
    assert!(seen.body["principal"]["trial"]["expires_at"].is_object());
    assert_eq!(seen.body["claims"]["trial_expires_at"], NOW + 86_400);
}

#[test]
fn static_sources_report_fresh_keys() {
    let s = keys();
    assert_eq!(s.age(), Some(Duration::ZERO));
    assert!(s.refetch().is_none());
    assert_eq!(layer().key_set_age(), Some(Duration::ZERO));
}

#[tokio::test]
async fn decisions_are_recorded_when_a_log_is_present() {
    use gw_core::{Decisions, Outcome};
    let l = layer();
    let cases = [
        (
            bearer("/api", &mint("rsa1", Some("k1"), &claims())),
            Outcome::Allow,
            "verified",
        ),
        (
            bearer("/api", &mint("rsa2", Some("k1"), &claims())),
            Outcome::Deny,
            "bad-signature",
        ),
        (get("/health", None), Outcome::Skip, "public-path"),
    ];
    for (mut req, outcome, reason) in cases {
        let log = Decisions::new();
        req.extensions_mut().insert(log.clone());
        send(&l, req).await;
        let decisions = log.snapshot().decisions;
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].layer, "auth");
        assert_eq!(decisions[0].outcome, outcome);
        assert_eq!(decisions[0].reason.as_deref(), Some(reason));
    }
}

#[tokio::test]
async fn jwks_file_source() {
    let path = std::env::temp_dir().join(format!("gw-auth-jwks-{}.json", std::process::id()));
    std::fs::write(&path, jwks(&[("ed25519", "ed-file"), ("rsa2", "rsa-file")])).unwrap();
    let source = StaticKeys::from_jwks_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let l = AuthLayer::new(source).clock(Arc::new(ManualClock::at_unix(NOW as u64)));
    let ok = send(
        &l,
        bearer("/api", &mint("ed25519", Some("ed-file"), &claims())),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let ok = send(
        &l,
        bearer("/api", &mint("rsa2", Some("rsa-file"), &claims())),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(StaticKeys::from_jwks_file("/nonexistent/jwks.json").is_err());
}

#[tokio::test]
async fn key_without_kid_answers_tokens_with_an_unknown_kid() {
    let clock = || Arc::new(ManualClock::at_unix(NOW as u64));
    // One PEM key without a kid, as `AuthLayer::from_pem` loads it: the IdP's kid is
    // not one the operator pinned, so the key answers it (the key still has to verify).
    let l = AuthLayer::from_pem(public_pem("rsa1"))
        .unwrap()
        .issuer(ISS)
        .realm("gw")
        .clock(clock());
    let seen = send(
        &l,
        bearer("/api", &mint("rsa1", Some("2024-key"), &claims())),
    )
    .await;
    assert_eq!(seen.status, StatusCode::OK, "{:?}", seen.body);
    assert_eq!(seen.body["principal"]["user_id"], "user-1");
    let forged = mint("rsa2", Some("2024-key"), &claims());
    expect_401(
        &l,
        bearer("/api", &forged),
        "invalid-token",
        "bad-signature",
    )
    .await;
    // The unnamed key must allow the token's alg, as for a token without kid.
    let ec = mint("ec256", Some("2024-key"), &claims());
    expect_401(&l, bearer("/api", &ec), "invalid-token", "unknown-kid").await;

    // Named keys answer only their own kid; an unknown kid falls back to the unnamed key.
    let named = VerifyKey::from_pem(Some("k1"), &public_pem("rsa1")).unwrap();
    let unnamed = VerifyKey::from_pem(None, &public_pem("rsa2")).unwrap();
    let l = AuthLayer::new(StaticKeys::new([named.clone(), unnamed.clone()]))
        .realm("gw")
        .clock(clock());
    let ok = send(&l, bearer("/api", &mint("rsa2", Some("other"), &claims()))).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let ok = send(&l, bearer("/api", &mint("rsa1", Some("k1"), &claims()))).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    for (key, kid) in [("rsa1", "other"), ("rsa2", "k1")] {
        let t = mint(key, Some(kid), &claims());
        expect_401(&l, bearer("/api", &t), "invalid-token", "bad-signature").await;
    }

    // Two unnamed keys that allow the alg: no trying one by one.
    let two = StaticKeys::new([
        unnamed,
        VerifyKey::from_pem(None, &public_pem("rsa3")).unwrap(),
    ]);
    let l = AuthLayer::new(two).realm("gw").clock(clock());
    let t = mint("rsa2", Some("other"), &claims());
    expect_401(&l, bearer("/api", &t), "invalid-token", "unknown-kid").await;

    // A JWKS document keeps its rule: a kid must name a key, even next to one without.
    let mut bare = jwk("rsa2", "x");
    bare.as_object_mut().unwrap().remove("kid");
    let doc = json!({"keys": [jwk("rsa1", "k1"), bare]}).to_string();
    let l = AuthLayer::new(StaticKeys::from_jwks(doc).unwrap())
        .realm("gw")
        .clock(clock());
    let t = mint("rsa2", Some("other"), &claims());
    expect_401(&l, bearer("/api", &t), "invalid-token", "unknown-kid").await;
}
