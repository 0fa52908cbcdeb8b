//! Fuzz target bodies, shared by the libFuzzer binaries in `fuzz_targets/` and by the
//! corpus replay in `tests/corpus.rs` (which CI runs on stable).
//!
//! Each function takes arbitrary bytes, must never panic on its own, and asserts the
//! properties its parser promises.

use gw_core::{RouteSet, normalize_path};
use http::Method;

/// `gw_core::normalize_path` and `RouteSet` matching.
///
/// Properties: an accepted path is absolute, has no empty, `.` or `..` segment, no `\`,
/// `;`, `%` or control character, and no trailing `/` (except `/`); normalizing never
/// panics; matching an accepted path never panics, and a subtree route covers every path
/// below it.
pub fn path_normalize(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let path = match normalize_path(raw) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.code().is_empty());
            return;
        }
    };
    assert!(path.starts_with('/'), "{path:?}");
    assert!(path == "/" || !path.ends_with('/'), "{path:?}");
    assert!(!path.contains(['\\', ';', '%']), "{path:?}");
    assert!(!path.bytes().any(|b| b < 0x20 || b == 0x7f), "{path:?}");
    if path != "/" {
        for seg in path[1..].split('/') {
            assert!(!seg.is_empty() && seg != "." && seg != "..", "{path:?}");
        }
    }
    let set = RouteSet::from_routes(["/", "/api/*", "/api/v1/agents/{id}", "GET /docs/*"])
        .expect("static routes parse");
    let _ = set.find(&Method::GET, &path);
    if path.starts_with("/api/") {
        assert!(set.matches(&Method::POST, &path), "{path:?}");
    }
}

/// The RFC 8037 (appendix A) Ed25519 test key, so the seed corpus can hold validly signed
/// tokens (its private half is public: never use it outside tests).
pub const RFC8037_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"fuzz-1","alg":"EdDSA","use":"sig"}]}"#;

/// Issuer the bearer target requires.
pub const FUZZ_ISSUER: &str = "https://fuzz.example";

/// Fixed "now" of the bearer target (2026-01-01T00:00:00Z), so seeds stay valid.
pub const FUZZ_NOW: i64 = 1_767_225_600;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

type Full = http_body_util::Full<bytes::Bytes>;

fn problem_code(res: http::Response<Full>) -> String {
    use http_body_util::BodyExt as _;
    let body = runtime()
        .block_on(res.into_body().collect())
        .expect("infallible body")
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("problem body is JSON");
    v["code"].as_str().expect("problem has a code").to_owned()
}

/// gw-auth: the `Authorization` header through `AuthLayer` (the bearer parser is private,
/// so this goes through the smallest public API: the layer with `oneshot`), and the token
/// part through the public `Verifier::verify`.
///
/// Data: the raw `Authorization` header value. Properties: never panics; the layer answers
/// 200 exactly when the verifier accepts the token, else 401 with one of the four codes;
/// an accepted token has an `EdDSA` header naming the only key, and the required issuer.
pub fn bearer_header(data: &[u8]) {
    let _ = bearer_status(data);
}

/// [`bearer_header`], returning the layer's status (`None` if `data` is no header value).
pub fn bearer_status(data: &[u8]) -> Option<u16> {
    use tower::{ServiceBuilder, ServiceExt as _};
    static LAYER: std::sync::OnceLock<gw_auth::AuthLayer> = std::sync::OnceLock::new();
    let layer = LAYER.get_or_init(|| {
        let keys = gw_auth::StaticKeys::from_jwks(RFC8037_JWKS).expect("jwks");
        let clock = gw_core::ManualClock::new(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(FUZZ_NOW as u64),
        );
        gw_auth::AuthLayer::new(keys)
            .issuer(FUZZ_ISSUER)
            .clock(std::sync::Arc::new(clock))
    });
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return None;
    };
    let req = http::Request::get("/api/x")
        .header(http::header::AUTHORIZATION, value)
        .body(Full::default())
        .expect("request");
    let svc =
        ServiceBuilder::new()
            .layer(layer.clone())
            .service_fn(|_req: http::Request<Full>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::default()))
            });
    let res = runtime()
        .block_on(svc.oneshot(req))
        .expect("layers never fail");
    // `<scheme> 1*SP <token>`, scheme case-insensitive, as RFC 6750 / RFC 9110 allow.
    let token = std::str::from_utf8(data).ok().and_then(|h| {
        let (scheme, token) = h.trim_ascii().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim_ascii_start())
    });
    let verified = token.map(|t| runtime().block_on(layer.verifier().verify(t, FUZZ_NOW)));
    let status = res.status().as_u16();
    if res.status() == http::StatusCode::OK {
        let v = verified
            .expect("200 only for a Bearer header")
            .expect("200 only for a token the verifier accepts");
        assert_eq!(v.claims.iss, FUZZ_ISSUER);
        let header = token.unwrap().split('.').next().unwrap();
        let header = base64_url(header).expect("accepted header is base64url");
        let header: serde_json::Value = serde_json::from_slice(&header).expect("header JSON");
        assert_eq!(header["alg"], "EdDSA");
    } else {
        assert_eq!(res.status(), http::StatusCode::UNAUTHORIZED);
        let code = problem_code(res);
        assert!(
            [
                "unauthorized",
                "invalid-token-format",
                "token-expired",
                "invalid-token"
            ]
            .contains(&code.as_str()),
            "{code}"
        );
        // A token the layer refused in the exact `Bearer <token>` form is refused by the
        // verifier too (the layer's checks are at least as strict).
        if let Some(Ok(_)) = verified {
            assert_ne!(code, "invalid-token", "layer and verifier disagree");
            assert_ne!(code, "token-expired", "layer and verifier disagree");
        }
    }
    Some(status)
}

fn base64_url(s: &str) -> Option<Vec<u8>> {
    // Tiny decoder (no padding) so the fuzz crate needs no base64 dependency.
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Service id, key id and secret of the signature target's one key.
pub const FUZZ_SERVICE: (&str, &str, &[u8]) =
    ("svc-fuzz", "k1", b"fuzz-secret-0123456789abcdef0123");

/// svc-hmac: the signing headers through `ServiceAuthLayer` (the header parser is private,
/// so this goes through the layer with `oneshot`), plus the public `wire` parsers.
///
/// Data: NUL-separated fields `timestamp, nonce, service id, key ids, content digest,
/// signature, path-and-query, body`; missing fields are left out (a missing header).
/// Properties: never panics; only 401/400/413 come back (nothing verifies without the
/// secret, except a signature the input itself carries for the exact request: then 200);
/// `parse_timestamp` accepts only 1-12 digits; `sha256_member` round-trips through
/// `format_digest`.
pub fn signature_headers(data: &[u8]) {
    let _ = signature_status(data);
}

/// [`signature_headers`], returning the layer's status (`None` if no request could be built).
pub fn signature_status(data: &[u8]) -> Option<u16> {
    use svc_hmac::wire;
    use tower::{ServiceBuilder, ServiceExt as _};
    let fields: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let text = |i: usize| fields.get(i).and_then(|f| std::str::from_utf8(f).ok());

    if let Some(ts) = text(0)
        && let Some(n) = wire::parse_timestamp(ts)
    {
        assert!(!ts.is_empty() && ts.len() <= 12 && ts.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(
            n.to_string().trim_start_matches('0'),
            ts.trim_start_matches('0')
        );
    }
    if let Some(d) = text(4)
        && let Some(hash) = wire::sha256_member(d)
    {
        assert_eq!(wire::sha256_member(&wire::format_digest(&hash)), Some(hash));
    }
    if let Some(nonce) = text(1) {
        let _ = wire::valid_nonce(nonce);
    }
    if let Some(id) = text(2) {
        let _ = wire::valid_id(id);
    }

    static LAYER: std::sync::OnceLock<svc_hmac::ServiceAuthLayer> = std::sync::OnceLock::new();
    let layer = LAYER.get_or_init(|| {
        let keys = svc_hmac::MemoryKeyStore::new();
        let (service, key_id, secret) = FUZZ_SERVICE;
        keys.insert(
            svc_hmac::KeyRing::new(service).key(svc_hmac::ServiceKey::new(
                key_id,
                svc_hmac::Secret::new(secret.to_vec()),
            )),
        );
        let clock = gw_core::ManualClock::new(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(FUZZ_NOW as u64),
        );
        svc_hmac::ServiceAuthLayer::new(keys)
            .default_mode(svc_hmac::Mode::Enforce)
            .clock(std::sync::Arc::new(clock))
    });
    let target = text(6)
        .filter(|t| t.starts_with('/'))
        .unwrap_or("/api/npu/status");
    let mut req = http::Request::post(target);
    let names = [
        wire::SERVICE_TIMESTAMP,
        wire::SERVICE_NONCE,
        wire::SERVICE_ID,
        wire::SERVICE_KEY_ID,
        wire::CONTENT_DIGEST,
        wire::SERVICE_SIGNATURE,
    ];
    for (name, field) in names.iter().zip(&fields) {
        if let Ok(v) = http::HeaderValue::from_bytes(field) {
            req = req.header(name, v);
        }
    }
    let body = bytes::Bytes::copy_from_slice(fields.get(7).copied().unwrap_or_default());
    let Ok(req) = req.body(Full::new(body)) else {
        return None;
    };
    let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(
        |_req: http::Request<svc_hmac::VerifiedBody<Full>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::default()))
        },
    );
    let res = runtime()
        .block_on(svc.oneshot(req))
        .expect("layers never fail");
    let status = res.status().as_u16();
    assert!(matches!(status, 200 | 400 | 401 | 413), "{status}");
    if status != 200 {
        let _ = problem_code(res);
    }
    Some(status)
}

/// callback-fsm: `CallbackEvent::from_json` on arbitrary bytes, and `canonical_json`.
///
/// Properties: never panics; an accepted event has a 1-256 byte `event_id` without control
/// characters and a known status; its canonical JSON parses back to an event with the same
/// fingerprint (canonicalisation is idempotent); for any JSON value, `canonical_json` is a
/// fixed point.
pub fn callback_body(data: &[u8]) {
    use callback_fsm::{CallbackEvent, TransitionTable, canonical_json};
    static TABLE: std::sync::OnceLock<TransitionTable> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(TransitionTable::job_lifecycle);
    if let Ok(event) = CallbackEvent::from_json(data, table) {
        let id = &event.event_id;
        assert!(!id.is_empty() && id.len() <= callback_fsm::MAX_EVENT_ID_LEN);
        assert!(!id.chars().any(char::is_control));
        assert!(table.is_status(&event.status));
        let canonical = event.canonical_json();
        let again = CallbackEvent::from_json(canonical.as_bytes(), table)
            .expect("canonical JSON of an accepted event is accepted");
        assert_eq!(again.fingerprint(), event.fingerprint(), "{canonical}");
        assert_eq!(again.canonical_json(), canonical);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let c = canonical_json(&value);
        let back: serde_json::Value = serde_json::from_str(&c).expect("canonical JSON parses");
        assert_eq!(canonical_json(&back), c);
    }
}
