//! Whether two route patterns can match the same request: configuration checks such as
//! "no exempt route covers a service-only one".

use super::{Route, RouteSet, Segment, method_bit};

impl<T> RouteSet<T> {
    /// Every pair `(mine, theirs)` of routes, as written, that some request matches
    /// both of: some normalized path matches both patterns and some method both routes
    /// are for. Pairs come in insertion order, `self`'s first.
    ///
    /// Patterns overlap segment by segment: two literals when equal, a `{param}` with
    /// any segment, and a `/*` route with every continuation of its prefix (none
    /// included); otherwise both must have as many segments. Methods overlap unless both
    /// routes list methods and the lists are disjoint (a `GET` route is for `HEAD` too).
    pub fn overlaps<'a, U>(
        &'a self,
        other: &'a RouteSet<U>,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a, T, U> {
        self.routes.iter().flat_map(move |a| {
            other
                .routes
                .iter()
                .filter(move |b| paths_overlap(a, b) && methods_overlap(a, b))
                .map(move |b| (&*a.spec, &*b.spec))
        })
    }
}

fn paths_overlap<T, U>(a: &Route<T>, b: &Route<U>) -> bool {
    let (n, m) = (a.segments.len(), b.segments.len());
    // A path longer than a route's pattern only matches it below a `/*`.
    let lengths = match n.cmp(&m) {
        std::cmp::Ordering::Equal => true,
        std::cmp::Ordering::Less => a.subtree,
        std::cmp::Ordering::Greater => b.subtree,
    };
    lengths
        && a.segments.iter().zip(&*b.segments).all(|pair| match pair {
            (Segment::Literal(x), Segment::Literal(y)) => x == y,
            _ => true,
        })
}

fn methods_overlap<T, U>(a: &Route<T>, b: &Route<U>) -> bool {
    match (&a.methods, &b.methods) {
        (Some(x), Some(y)) => {
            a.method_bits & b.method_bits != 0
                // Extension methods have no bit: compare them by name.
                || x.iter().any(|m| method_bit(m) == 0 && y.contains(m))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::super::RouteSet;

    fn overlap(a: &str, b: &str) -> bool {
        let a = RouteSet::from_routes([a]).unwrap();
        let b = RouteSet::from_routes([b]).unwrap();
        let forward = a.overlaps(&b).count() == 1;
        assert_eq!(forward, b.overlaps(&a).count() == 1, "symmetric");
        forward
    }

    #[test]
    fn patterns_overlap_segment_by_segment() {
        let yes = [
            ("/api/*", "/api/npu/status"),
            ("/api/*", "/api"),
            ("/api/*", "/api/*"),
            ("/*", "/"),
            ("/*", "/a/b/{c}"),
            ("/", "/"),
            ("/api/npu/*", "/api/npu/debug/*"),
            ("/api/{x}/status", "/api/npu/{y}"),
            ("/api/{x}", "/api/npu"),
            ("/{a}/{b}", "/x/y"),
            ("/a/{x}/*", "/a/b/c/d"),
            ("/a/b/", "/a/b"),
        ];
        for (a, b) in yes {
            assert!(overlap(a, b), "{a} vs {b}");
        }
        let no = [
            ("/api/*", "/apix"),
            ("/api/*", "/"),
            ("/api", "/api/npu"),
            ("/api/{x}", "/api"),
            ("/api/{x}", "/api/a/b"),
            ("/api/npu/*", "/api/gpu/*"),
            ("/a/{x}/c", "/a/b/d"),
            ("/", "/a"),
            ("/a/b/*", "/a/c/*"),
        ];
        for (a, b) in no {
            assert!(!overlap(a, b), "{a} vs {b}");
        }
    }

    #[test]
    fn methods_overlap_unless_both_lists_are_disjoint() {
        let yes = [
            ("GET /x", "/x"),
            ("* /x", "POST /x"),
            ("GET /x", "HEAD /x"),
            ("GET,POST /x", "POST,DELETE /x"),
            ("PURGE /x", "GET,PURGE /x"),
            ("get /x", "GET /x"),
        ];
        for (a, b) in yes {
            assert!(overlap(a, b), "{a} vs {b}");
        }
        let no = [
            ("GET /x", "POST /x"),
            ("HEAD /x", "POST,PUT /x"),
            ("PURGE /x", "GET /x"),
            ("PURGE /x", "LINK /x"),
            ("GET /x", "POST /x/*"),
        ];
        for (a, b) in no {
            assert!(!overlap(a, b), "{a} vs {b}");
        }
    }

    /// Brute force: two patterns overlap exactly when one of a set of sample paths and
    /// methods, built from both patterns' literals, matches both.
    #[test]
    fn overlap_agrees_with_matching_on_sample_requests() {
        let specs: Vec<&str> = super::super::tests::GRID_ROUTES
            .into_iter()
            .chain(["/b/*"])
            .collect();
        let words = ["a", "b", "c", "ab", "z"];
        // Every path of up to four of `words`.
        let mut paths = vec!["/".to_owned()];
        let mut level = vec![String::new()];
        for _ in 0..4 {
            level = level
                .iter()
                .flat_map(|p| words.iter().map(move |w| format!("{p}/{w}")))
                .collect();
            paths.extend(level.iter().cloned());
        }
        let methods = [Method::GET, Method::HEAD, Method::POST, Method::DELETE];
        for &a in &specs {
            for &b in &specs {
                let (sa, sb) = (
                    RouteSet::from_routes([a]).unwrap(),
                    RouteSet::from_routes([b]).unwrap(),
                );
                let want = paths
                    .iter()
                    .any(|p| methods.iter().any(|m| sa.matches(m, p) && sb.matches(m, p)));
                assert_eq!(overlap(a, b), want, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn overlaps_names_every_pair_in_insertion_order() {
        let exempt = RouteSet::from_routes(["/api/*", "/docs/*", "GET /x/{id}"]).unwrap();
        let service = RouteSet::new()
            .route("/api/npu/*", 1)
            .unwrap()
            .route("POST /x/y", 2)
            .unwrap()
            .route("/api/status", 3)
            .unwrap();
        let pairs: Vec<_> = exempt.overlaps(&service).collect();
        assert_eq!(pairs, [("/api/*", "/api/npu/*"), ("/api/*", "/api/status")]);
        assert_eq!(RouteSet::<()>::new().overlaps(&service).count(), 0);
    }
}
