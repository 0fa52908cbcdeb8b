//! The reverse proxy to the upstream ("Plant API").

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use gw_core::{CorrelationId, Decisions, Principal, ServiceIdentity, TargetBackend};
use gw_problem::{Problem, ProblemContext, ProblemType};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Extensions, Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Headers the gateway sets for the upstream from verified identity. A client sending any
/// of them (or anything under these prefixes) has them removed first.
pub const USER_ID_HEADER: HeaderName = HeaderName::from_static("x-gateway-user-id");
/// The verified customer id.
pub const CUSTOMER_ID_HEADER: HeaderName = HeaderName::from_static("x-gateway-customer-id");
/// The verified roles, comma-separated.
pub const ROLES_HEADER: HeaderName = HeaderName::from_static("x-gateway-roles");
/// The verified calling service.
pub const SERVICE_ID_HEADER: HeaderName = HeaderName::from_static("x-gateway-service-id");

/// Inbound header prefixes a client could use to forge identity or routing.
const FORGEABLE_PREFIXES: [&str; 3] = ["x-gateway-", "x-rbac-", "x-forwarded-"];
/// Inbound headers a client could use to forge routing.
const FORGEABLE: [&str; 2] = ["x-target-backend", "forwarded"];
/// The svc-hmac signing headers. The gateway verifies them (where service auth applies) and
/// passes on only the result, as [`SERVICE_ID_HEADER`]; the caller's own copies, verified
/// or not, never reach the upstream, which could otherwise trust an unverified
/// `X-Service-ID`. (`Content-Digest` describes the body, which is forwarded unchanged.)
const SIGNING: [HeaderName; 5] = [
    svc_hmac::wire::SERVICE_ID,
    svc_hmac::wire::SERVICE_KEY_ID,
    svc_hmac::wire::SERVICE_TIMESTAMP,
    svc_hmac::wire::SERVICE_NONCE,
    svc_hmac::wire::SERVICE_SIGNATURE,
];

/// Hop-by-hop headers (RFC 9110 section 7.6.1), never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

#[derive(Debug, Clone)]
struct Upstream {
    scheme: Scheme,
    authority: Authority,
    base_path: Arc<str>,
}

impl Upstream {
    fn parse(url: &str) -> Result<Self, String> {
        // Errors end up on stderr: never with the URL's password.
        let shown = crate::config::redact_url(url);
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("upstream url {shown:?}: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(format!("upstream url {shown:?} needs a scheme and a host"));
        };
        if scheme != Scheme::HTTP {
            return Err(format!(
                "upstream url {shown:?}: only http:// upstreams are supported"
            ));
        }
        Ok(Self {
            scheme,
            authority,
            base_path: Arc::from(uri.path().trim_end_matches('/')),
        })
    }

    fn uri_for(&self, original: &Uri) -> Result<Uri, http::Error> {
        let pq = original.path_and_query().map_or("/", PathAndQuery::as_str);
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{pq}", self.base_path))
            .build()
    }
}

/// Forwards requests to the production or sandbox upstream chosen by the request's
/// [`TargetBackend`] extension (production when none).
#[derive(Debug, Clone)]
pub struct Proxy {
    client: Client<HttpConnector, Body>,
    production: Upstream,
    sandbox: Upstream,
    timeout: Duration,
}

impl Proxy {
    /// A proxy to `production` (and `sandbox`, defaulting to production).
    pub fn new(production: &str, sandbox: Option<&str>, timeout: Duration) -> Result<Self, String> {
        let production = Upstream::parse(production)?;
        let sandbox = match sandbox {
            Some(url) => Upstream::parse(url)?,
            None => production.clone(),
        };
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            client,
            production,
            sandbox,
            timeout,
        })
    }

    /// Forwards `req`; upstream failures become 502 and timeouts 504 problems.
    pub async fn forward(&self, mut req: Request<Body>) -> Response<Body> {
        let target = req
            .extensions()
            .get::<TargetBackend>()
            .copied()
            .unwrap_or(TargetBackend::Production);
        let upstream = match target {
            TargetBackend::Production => &self.production,
            TargetBackend::Sandbox => &self.sandbox,
        };
        let context = failure_context(req.extensions());
        let instance = req.uri().path().to_owned();
        let fail = |kind: ProblemType, code: &'static str| {
            Problem::new(kind)
                .code(code)
                .instance(instance.clone())
                .with_extensions(&context)
                .into_response()
        };

        match upstream.uri_for(req.uri()) {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return fail(ProblemType::BAD_REQUEST, "unroutable-request"),
        }
        prepare_headers(&mut req, target);

        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.client.request(req)).await;
        let elapsed = started.elapsed();
        Decisions::record_upstream_latency(&context, elapsed);
        metrics::histogram!("gw_upstream_seconds", "backend" => target.as_str())
            .record(elapsed.as_secs_f64());
        match result {
            Err(_) => {
                tracing::warn!(backend = target.as_str(), ?elapsed, "upstream timed out");
                fail(ProblemType::GATEWAY_TIMEOUT, "upstream-timeout")
            }
            Ok(Err(e)) => {
                tracing::warn!(backend = target.as_str(), error = %e, "upstream failed");
                fail(ProblemType::BAD_GATEWAY, "upstream-unavailable")
            }
            Ok(Ok(res)) => {
                let (mut parts, body) = res.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                parts.headers.insert(
                    TargetBackend::HEADER,
                    HeaderValue::from_static(target.as_str()),
                );
                Response::from_parts(parts, Body::new(body))
            }
        }
    }
}

/// The parts of the request extensions a failure response needs after the request moved.
fn failure_context(ext: &Extensions) -> Extensions {
    let mut out = Extensions::new();
    if let Some(ctx) = ext.get::<ProblemContext>() {
        out.insert(ctx.clone());
    }
    if let Some(id) = ext.get::<CorrelationId>() {
        out.insert(id.clone());
    }
    if let Some(log) = ext.get::<Decisions>() {
        out.insert(log.clone());
    }
    out
}

fn prepare_headers(req: &mut Request<Body>, target: TargetBackend) {
    let principal = req.extensions().get::<Principal>().cloned();
    let service = req.extensions().get::<ServiceIdentity>().cloned();
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            FORGEABLE.contains(&k) || FORGEABLE_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .cloned()
        .collect();
    for name in forged.into_iter().chain(SIGNING) {
        headers.remove(name);
    }
    headers.insert(
        TargetBackend::HEADER,
        HeaderValue::from_static(target.as_str()),
    );
    if let Some(p) = principal {
        set(headers, USER_ID_HEADER, &p.user_id);
        set(headers, CUSTOMER_ID_HEADER, &p.customer_id);
        set(headers, ROLES_HEADER, &p.roles.join(","));
    }
    if let Some(s) = service {
        set(headers, SERVICE_ID_HEADER, &s.service_id);
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named.into_iter().chain(HOP_BY_HOP) {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let u = Upstream::parse("http://127.0.0.1:9000/plant/").unwrap();
        let uri = u.uri_for(&"/api/v1/x?a=1".parse().unwrap()).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:9000/plant/api/v1/x?a=1");
        assert!(Upstream::parse("/relative").is_err());
        assert!(Upstream::parse("https://tls.example").is_err());
        let err = Upstream::parse("https://u:s3cret@tls.example").unwrap_err();
        assert!(
            err.contains("u:***@tls.example") && !err.contains("s3cret"),
            "{err}"
        );
    }

    #[test]
    fn forged_and_hop_by_hop_headers_are_stripped() {
        let mut req = Request::get("/x")
            .header("x-gateway-user-id", "admin")
            .header("X-RBAC-Roles", "admin")
            .header("x-target-backend", "production")
            .header("x-forwarded-for", "1.2.3.4")
            .header("connection", "close, x-secret-hop")
            .header("x-secret-hop", "1")
            .header("x-correlation-id", "keep-me")
            .body(Body::empty())
            .unwrap();
        prepare_headers(&mut req, TargetBackend::Sandbox);
        let h = req.headers();
        assert!(h.get("x-gateway-user-id").is_none());
        assert!(h.get("x-rbac-roles").is_none());
        assert!(h.get("x-forwarded-for").is_none());
        assert!(h.get("x-secret-hop").is_none() && h.get("connection").is_none());
        assert_eq!(h["x-target-backend"], "sandbox");
        assert_eq!(h["x-correlation-id"], "keep-me");
    }

    #[test]
    fn signing_headers_are_never_forwarded() {
        for verified in [false, true] {
            let mut req = Request::post("/api/npu/jobs")
                .header("X-Service-ID", "billing-admin")
                .header("x-service-id", "second")
                .header("X-Service-Key-ID", "k1")
                .header("X-Service-Timestamp", "1700000000")
                .header("X-Service-Nonce", "bm9uY2Utbm9uY2Utbm9uY2U")
                .header("X-Service-Signature", "v1=Zm9yZ2Vk")
                .header(
                    "content-digest",
                    "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
                )
                .header("x-user-id", "root")
                .body(Body::empty())
                .unwrap();
            if verified {
                req.extensions_mut().insert(ServiceIdentity {
                    service_id: "svc-a".into(),
                    key_id: "k1".into(),
                });
            }
            prepare_headers(&mut req, TargetBackend::Production);
            let h = req.headers();
            for name in SIGNING {
                assert!(
                    h.get(&name).is_none(),
                    "{name} forwarded (verified: {verified})"
                );
            }
            // Only the verified identity travels, under the gateway's own name.
            assert_eq!(
                h.get(SERVICE_ID_HEADER).map(|v| v.to_str().unwrap()),
                verified.then_some("svc-a")
            );
            // Not the gateway's to remove.
            assert_eq!(h["x-user-id"], "root");
            assert!(h.contains_key("content-digest"));
        }
    }
}
