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
