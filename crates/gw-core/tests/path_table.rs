//! The matcher against a table of tricky paths: prefix confusion, traversal, encodings,
//! trailing slashes and method scoping.

use gw_core::{PathError, RouteSet, normalize_path};
use http::Method;

/// What a request should come to against the route set below.
#[derive(Debug, PartialEq)]
enum Want {
    /// Matches the route written here.
    Hit(&'static str),
    /// Normalizes fine but matches nothing.
    Miss,
    /// Refused before matching.
    Refused(PathError),
}
use Want::*;

fn routes() -> RouteSet<&'static str> {
    let mut set = RouteSet::new();
    for r in [
        "/health",
        "/docs/*",
        "/api/chats/*",
        "/api/v1/agents/{id}",
        "GET,HEAD /api/v1/reports/*",
        "POST /api/v1/deployments",
        "GET /api/v1/data/export",
    ] {
        set.insert(r, r).unwrap();
    }
    set
}

#[test]
fn tricky_path_table() {
    use PathError::*;
    let get = Method::GET;
    let post = Method::POST;
    let table: Vec<(Method, &str, Want)> = vec![
        // exact and trailing slash
        (get.clone(), "/health", Hit("/health")),
        (get.clone(), "/health/", Hit("/health")),
        (get.clone(), "/health/x", Miss),
        // prefix confusion
        (get.clone(), "/healthz", Miss),
        (get.clone(), "/health.json", Miss),
        (get.clone(), "/docsX", Miss),
        (get.clone(), "/docs-private", Miss),
        (get.clone(), "/api/chatsX", Miss),
        (get.clone(), "/api/chats", Hit("/api/chats/*")),
        (get.clone(), "/api/chats/", Hit("/api/chats/*")),
        (get.clone(), "/api/chats/1", Hit("/api/chats/*")),
        (get.clone(), "/api/chats/1/messages", Hit("/api/chats/*")),
        (get.clone(), "/docs", Hit("/docs/*")),
        // traversal
        (get.clone(), "/docs/../admin", Refused(DotSegment)),
        (get.clone(), "/docs/./admin", Refused(DotSegment)),
        (get.clone(), "/docs/..", Refused(DotSegment)),
        (get.clone(), "/docs/%2e%2e/admin", Refused(EncodedDot)),
        (get.clone(), "/docs/%2E%2E/admin", Refused(EncodedDot)),
        (get.clone(), "/docs/..%2fadmin", Refused(EncodedSlash)),
        (get.clone(), "/docs%2Fadmin", Refused(EncodedSlash)),
        (get.clone(), "/docs/..\\admin", Refused(Backslash)),
        (get.clone(), "/docs/%5c..%5cadmin", Refused(Backslash)),
        // encodings
        (get.clone(), "/heal%74h", Hit("/health")),
        (
            get.clone(),
            "/docs/%252e%252e/admin",
            Refused(DoubleEncoding),
        ),
        (get.clone(), "/docs/%zz", Refused(InvalidEncoding)),
        (get.clone(), "/docs/%4", Refused(InvalidEncoding)),
        (get.clone(), "/docs/%ff%fe", Refused(NonUtf8)),
        (get.clone(), "/docs/%00", Refused(ControlChar)),
        (
            get.clone(),
            "/docs/a%0d%0aSet-Cookie:x",
            Refused(ControlChar),
        ),
        (get.clone(), "/health;jsessionid=1", Refused(MatrixParam)),
        (get.clone(), "/docs/%3b/admin", Refused(MatrixParam)),
        // empty segments
        (get.clone(), "//health", Refused(EmptySegment)),
        (get.clone(), "/api//chats", Refused(EmptySegment)),
        (get.clone(), "/health//", Refused(EmptySegment)),
        (get.clone(), "health", Refused(NotAbsolute)),
        (get.clone(), "", Refused(NotAbsolute)),
        // params take exactly one segment
        (get.clone(), "/api/v1/agents/42", Hit("/api/v1/agents/{id}")),
        (get.clone(), "/api/v1/agents", Miss),
        (get.clone(), "/api/v1/agents/42/runs", Miss),
        // method scoping
        (
            get.clone(),
            "/api/v1/reports/q3",
            Hit("GET,HEAD /api/v1/reports/*"),
        ),
        (
            Method::HEAD,
            "/api/v1/reports",
            Hit("GET,HEAD /api/v1/reports/*"),
        ),
        (post.clone(), "/api/v1/reports/q3", Miss),
        (
            post.clone(),
            "/api/v1/deployments",
            Hit("POST /api/v1/deployments"),
        ),
        (get.clone(), "/api/v1/deployments", Miss),
        // a GET route covers HEAD (which runs the GET handler), nothing else
        (
            Method::HEAD,
            "/api/v1/data/export",
            Hit("GET /api/v1/data/export"),
        ),
        (post.clone(), "/api/v1/data/export", Miss),
        (Method::HEAD, "/api/v1/deployments", Miss),
        (post.clone(), "/api/v1/deployments/1", Miss),
        // case is significant
        (get.clone(), "/HEALTH", Miss),
    ];
    assert!(table.len() >= 30);

    let set = routes();
    for (method, raw, want) in table {
        let got = match normalize_path(raw) {
            Err(e) => Refused(e),
            Ok(path) => {
                let found = set.find(&method, &path);
                assert_eq!(
                    set.matches(&method, &path),
                    found.is_some(),
                    "{method} {raw:?}"
                );
                match found {
                    Some(m) => Hit(m.value),
                    None => Miss,
                }
            }
        };
        assert_eq!(got, want, "{method} {raw:?}");
    }
}

#[test]
fn captured_params_are_decoded_segments() {
    let set = routes();
    let path = normalize_path("/api/v1/agents/a%20b").unwrap();
    let m = set.find(&Method::GET, &path).unwrap();
    assert_eq!(m.param("id"), Some("a b"));
    assert_eq!(m.param("nope"), None);
}
