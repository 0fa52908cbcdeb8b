//! The published test vectors (docs/svc-hmac.md): inputs -> canonical string -> signature.
//! The expected values were computed independently (Python `hmac` + `hashlib`), so these
//! tests pin the wire format, not just this implementation's agreement with itself.

use std::sync::Arc;

use bytes::Bytes;
use gw_core::{ManualClock, ServiceIdentity};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use svc_hmac::wire::{self, CanonicalRequest};
use svc_hmac::{KeyRing, MemoryKeyStore, ServiceAuthLayer, ServiceKey, Signer, VerifiedBody};
use tower::{ServiceBuilder, ServiceExt, service_fn};

struct Vector {
    method: Method,
    uri: &'static str,
    timestamp: &'static str,
    nonce: &'static str,
    service_id: &'static str,
    keys: &'static [(&'static str, &'static str)],
    body: &'static [u8],
    canonical: &'static str,
    signature: &'static str,
}

const VECTORS: &[Vector] = &[
    Vector {
        method: Method::GET,
        uri: "/api/npu/status?verbose=1&a=%2F",
        timestamp: "1760000000",
        nonce: "AAECAwQFBgcICQoLDA0ODw",
        service_id: "npu-worker",
        keys: &[("k1", "npu-worker-secret-0001")],
        body: b"",
        canonical: "gw-svc-hmac-v1\nGET\n/api/npu/status\nverbose=1&a=%2F\n1760000000\n\
                    AAECAwQFBgcICQoLDA0ODw\nnpu-worker\nk1\n\
                    sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
        signature: "v1=gfgdJ0DONnv/J7Nimfjqr9AqBXX8t9mv+680Ea6cd/I=",
    },
    Vector {
        method: Method::POST,
        uri: "/api/npu/results/42",
        timestamp: "1760000000",
        nonce: "EBESExQVFhcYGRobHB0eHw",
        service_id: "npu-worker",
        keys: &[("k1", "npu-worker-secret-0001")],
        body: br#"{"task_id":"42","status":"done"}"#,
        canonical: "gw-svc-hmac-v1\nPOST\n/api/npu/results/42\n\n1760000000\n\
                    EBESExQVFhcYGRobHB0eHw\nnpu-worker\nk1\n\
                    sha-256=:4HyhgZAJI3vRtCc78zxN0BJmUzUfrbTxCXGgvnxW0zU=:",
        signature: "v1=/l5POQqbJM/uDuYOElGQEUTDti/THTF3hjpztJGedO8=",
    },
    Vector {
        method: Method::PUT,
        uri: "/api/internal/jobs/7",
        timestamp: "1760000300",
        nonce: "ICEiIyQlJicoKSorLC0uLw",
        service_id: "browser-service",
        keys: &[("k2", "browser-secret-new"), ("k1", "browser-secret-old")],
        body: b"screenshot-bytes",
        canonical: "gw-svc-hmac-v1\nPUT\n/api/internal/jobs/7\n\n1760000300\n\
                    ICEiIyQlJicoKSorLC0uLw\nbrowser-service\nk2 k1\n\
                    sha-256=:00/FHdpFjWnxJ+UQHucyBc5U2F9ZrZUrm1stE8QZfZI=:",
        signature: "v1=kG8Z/BdMowiABr+A+RaP/GKCGzOueRTZ4qN8wMoHHkk= \
                    v1=ToXcMTfeqXH6POJap1liIxAwxCtMDABR5uN8tDwvLvs=",
    },
];

fn signer_for(v: &Vector) -> Signer {
    let (id, secret) = v.keys[0];
    let mut s = Signer::new(v.service_id, id, secret).unwrap();
    for (id, secret) in &v.keys[1..] {
        s = s.also_sign_with(id, *secret).unwrap();
    }
    s
}

fn sign(v: &Vector) -> http::request::Parts {
    let (mut parts, ()) = Request::builder()
        .method(v.method.clone())
        .uri(v.uri)
        .body(())
        .unwrap()
        .into_parts();
    signer_for(v)
        .sign_with(&mut parts, v.body, v.timestamp, v.nonce)
        .unwrap();
    parts
}

#[test]
fn signer_produces_the_published_headers() {
    for v in VECTORS {
        let parts = sign(v);
        let h = |name| parts.headers[name].to_str().unwrap().to_owned();
        assert_eq!(h(wire::SERVICE_SIGNATURE), v.signature, "{}", v.uri);
        let canonical = CanonicalRequest {
            method: v.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            timestamp: &h(wire::SERVICE_TIMESTAMP),
            nonce: &h(wire::SERVICE_NONCE),
            service_id: &h(wire::SERVICE_ID),
            key_ids: &h(wire::SERVICE_KEY_ID),
            content_digest: &h(wire::CONTENT_DIGEST),
        };
        assert_eq!(canonical.to_canonical_string(), v.canonical);
        assert!(v.canonical.ends_with(&h(wire::CONTENT_DIGEST)));
    }
}

#[tokio::test]
async fn verifier_accepts_the_published_vectors_and_each_key_alone() {
    for v in VECTORS {
        // One verifier per key, holding only that key: every signature verifies alone.
        for (key_id, secret) in v.keys {
            let keys = MemoryKeyStore::new()
                .with_ring(KeyRing::new(v.service_id).key(ServiceKey::new(*key_id, *secret)));
            let clock = ManualClock::at_unix(v.timestamp.parse().unwrap());
            let svc = ServiceBuilder::new()
                .layer(ServiceAuthLayer::new(keys).clock(Arc::new(clock)))
                .service(service_fn(
                    |req: Request<VerifiedBody<Full<Bytes>>>| async move {
                        let id = req.extensions().get::<ServiceIdentity>().unwrap().clone();
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from(id.key_id.to_string()),
                        )))
                    },
                ));
            let req = Request::from_parts(sign(v), Full::new(Bytes::from_static(v.body)));
            let res = svc.oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{} {key_id}", v.uri);
        }
    }
}
