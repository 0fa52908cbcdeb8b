//! Route matching: the one matcher every crate uses for public, exempt and service-only
//! paths and for route tables.
//!
//! A route is written `[METHODS] PATTERN`:
//!
//! | pattern | matches |
//! |---|---|
//! | `/health` | exactly `/health` (and `/health/`, which normalizes to it) |
//! | `/docs/*` | `/docs` and everything below it (`/docs/a/b`), never `/docsX` |
//! | `/api/v1/agents/{id}` | one segment in place of `{id}`, captured as `id` |
//! | `/*` | every path |
//! | `GET,HEAD /reports/*` | as above, for those methods only |
//!
//! A route for `GET` is also a route for `HEAD`: servers answer `HEAD` by running the
//! `GET` handler (axum, hyper-based routers, Starlette all do), so a rule that guards a
//! `GET` must guard its `HEAD` too. A route that names `HEAD` itself is preferred for
//! `HEAD` over an equally specific one that only names `GET`.
//!
//! Matching is by whole segments on a path that went through
//! [`normalize_path`](crate::path::normalize_path). When several routes match, the most
//! specific wins: the longest pattern, then the most literal segments, then exact over
//! `/*`, then method-scoped over any-method; remaining ties go to the first inserted.
//!
//! [`RouteSet::overlaps`] lists the pairs of routes of two sets that some request matches
//! both of, for configuration checks (an exemption that covers a protected route).

use std::fmt;

use http::Method;

mod overlap;

/// A pattern or method list that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The route as written.
    pub route: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid route {:?}: {}", self.route, self.reason)
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    Param(Box<str>),
}

#[derive(Debug, Clone)]
struct Route<T> {
    spec: Box<str>,
    methods: Option<Box<[Method]>>,
    /// The standard methods of `methods` as [`method_bit`]s, `HEAD` included when implied.
    method_bits: u16,
    /// Matches `HEAD` only because it lists `GET`.
    implied_head: bool,
    segments: Box<[Segment]>,
    subtree: bool,
    rank: Rank,
    value: T,
}

/// The specificity of a match; larger is more specific.
type Rank = (usize, usize, bool, bool);

/// Captured `(name, value)` pairs.
impl<T> Route<T> {
    fn parse(spec: &str, value: T) -> Result<Self, PatternError> {
        let err = |reason| PatternError {
            route: spec.to_owned(),
            reason,
        };
        let trimmed = spec.trim();
        let (methods, pattern) = match trimmed.split_once(char::is_whitespace) {
            Some((m, p)) => (Some(m), p.trim()),
            None => (None, trimmed),
        };
        let methods = match methods {
            None | Some("*") => None,
            Some(list) => Some(
                list.split(',')
                    .map(|m| {
                        let m = m.trim().to_ascii_uppercase();
                        Method::from_bytes(m.as_bytes()).map_err(|_| err("invalid method"))
                    })
                    .collect::<Result<Box<[Method]>, _>>()?,
            ),
        };
        let implied_head = methods
            .as_deref()
            .is_some_and(|m| m.contains(&Method::GET) && !m.contains(&Method::HEAD));
        let method_bits = methods
            .iter()
            .flatten()
            .fold(0, |bits, m| bits | method_bit(m))
            | if implied_head {
                method_bit(&Method::HEAD)
            } else {
                0
            };
        let rest = pattern
            .strip_prefix('/')
            .ok_or_else(|| err("pattern must start with '/'"))?;
        let (rest, subtree) = match rest.strip_suffix('*') {
            Some(r) if r.is_empty() || r.ends_with('/') => (r.strip_suffix('/').unwrap_or(r), true),
            Some(_) => return Err(err("'*' must be a whole last segment")),
            None => (rest.strip_suffix('/').unwrap_or(rest), false),
        };
        let mut segments = Vec::new();
        if !rest.is_empty() {
            for seg in rest.split('/') {
                segments.push(parse_segment(seg).map_err(err)?);
            }
        }
        let literals = segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let rank = (segments.len(), literals, !subtree, methods.is_some());
        Ok(Self {
            spec: trimmed.into(),
            methods,
            method_bits,
            implied_head,
            segments: segments.into(),
            subtree,
            rank,
            value,
        })
    }

    /// Whether the route is for `method` (or for every method); a `GET` route is for
    /// `HEAD` too. `bit` is [`method_bit`]`(method)`, worked out once per lookup.
    #[inline]
    fn allows(&self, bit: u16, method: &Method) -> bool {
        match &self.methods {
            None => true,
            Some(_) if bit != 0 => self.method_bits & bit != 0,
            Some(list) => list.contains(method),
        }
    }

    /// Whether the path, split into its segments, matches. Always inlined: it is the
    /// loop body of every lookup.
    #[inline(always)]
    fn is_match(&self, bit: u16, method: &Method, path: &[&str]) -> bool {
        let n = self.segments.len();
        if path.len() < n || (!self.subtree && path.len() != n) {
            return false;
        }
        if !self.allows(bit, method) {
            return false;
        }
        self.segments.iter().zip(path).all(|(seg, got)| match seg {
            Segment::Literal(lit) => **lit == **got,
            Segment::Param(_) => true,
        })
    }
}

/// The standard methods, in the order of their bits in a route's method set.
const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::HEAD,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

/// `method`'s bit in a route's method set; 0 for an extension method, which is looked up
/// in the route's list instead. Standard methods compare without reading any text.
fn method_bit(method: &Method) -> u16 {
    STANDARD_METHODS
        .iter()
        .position(|m| m == method)
        .map_or(0, |i| 1 << i)
}

/// Calls `f` with the non-empty segments of the normalized `path`, split once (on the
/// stack for up to 16 segments).
fn with_segments<'p, R>(path: &'p str, f: impl FnOnce(&[&'p str]) -> R) -> R {
    const INLINE: usize = 16;
    let mut inline = [""; INLINE];
    let mut spilled: Vec<&'p str> = Vec::new();
    let mut n = 0;
    let mut push = |seg: &'p str| {
        if seg.is_empty() {
            return;
        }
        if n < INLINE {
            inline[n] = seg;
        } else {
            if spilled.is_empty() {
                spilled.extend_from_slice(&inline);
            }
            spilled.push(seg);
        }
        n += 1;
    };
    let mut start = 0;
    for (i, b) in path.bytes().enumerate() {
        if b == b'/' {
            push(&path[start..i]);
            start = i + 1;
        }
    }
    push(&path[start..]);
    if n <= INLINE {
        f(&inline[..n])
    } else {
        f(&spilled)
    }
}

fn parse_segment(seg: &str) -> Result<Segment, &'static str> {
    if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err("parameter names are [A-Za-z0-9_]+");
        }
        return Ok(Segment::Param(name.into()));
    }
    match seg {
        "" => Err("empty segment"),
        "." | ".." => Err("dot segment"),
        _ if seg.contains(['{', '}', '*', '%', ';', '\\']) => {
            Err("'{', '}', '*', '%', ';' and '\\' are not allowed in a literal segment")
        }
        _ => Ok(Segment::Literal(seg.into())),
    }
}

/// A successful match. Captured parameters are read from the matched path on demand, so
/// a match allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'r, 'p, T> {
    /// The route as it was written.
    pub route: &'r str,
    /// The value stored with the route.
    pub value: &'r T,
    segments: &'r [Segment],
    path: &'p str,
}

impl<'r, 'p, T> RouteMatch<'r, 'p, T> {
    /// Captured `{param}` values as `(name, value)`, in pattern order.
    pub fn params(&self) -> impl Iterator<Item = (&'r str, &'p str)> + use<'r, 'p, T> {
        self.segments
            .iter()
            .zip(Segments(self.path))
            .filter_map(|(seg, got)| match seg {
                Segment::Param(name) => Some((&**name, got)),
                Segment::Literal(_) => None,
            })
    }

    /// The captured value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&'p str> {
        self.params().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// The non-empty segments of a path, in order.
struct Segments<'p>(&'p str);

impl<'p> Iterator for Segments<'p> {
    type Item = &'p str;

    fn next(&mut self) -> Option<&'p str> {
        let rest = self.0.trim_start_matches('/');
        if rest.is_empty() {
            self.0 = rest;
            return None;
        }
        let end = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
        self.0 = &rest[end..];
        Some(&rest[..end])
    }
}

/// A set of routes, each with a value (`()` for plain path lists).
#[derive(Debug, Clone)]
pub struct RouteSet<T = ()> {
    /// In insertion order.
    routes: Vec<Route<T>>,
    /// Indices into `routes`, most specific first (ties in insertion order), so the
    /// first match is the best one.
    by_rank: Vec<usize>,
}

impl<T> Default for RouteSet<T> {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            by_rank: Vec::new(),
        }
    }
}

impl<T> RouteSet<T> {
    /// An empty set; matches nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route (see the [module docs](self) for the syntax).
    pub fn insert(&mut self, route: &str, value: T) -> Result<&mut Self, PatternError> {
        let route = Route::parse(route, value)?;
        let at = self
            .by_rank
            .partition_point(|&i| self.routes[i].rank >= route.rank);
        self.by_rank.insert(at, self.routes.len());
        self.routes.push(route);
        Ok(self)
    }

    /// Adds a route, builder style.
    pub fn route(mut self, route: &str, value: T) -> Result<Self, PatternError> {
        self.insert(route, value)?;
        Ok(self)
    }

    /// The most specific route matching `method` and the normalized `path`.
    pub fn find<'r, 'p>(&'r self, method: &Method, path: &'p str) -> Option<RouteMatch<'r, 'p, T>> {
        if self.routes.is_empty() || !path.starts_with('/') {
            return None;
        }
        let bit = method_bit(method);
        with_segments(path, |segments| {
            let mut ranked = self.by_rank.iter().map(|&i| &self.routes[i]);
            let mut route = ranked.find(|r| r.is_match(bit, method, segments))?;
            if route.implied_head && method == Method::HEAD {
                // An equally specific route that names HEAD itself is the better match.
                let rank = route.rank;
                if let Some(explicit) = ranked
                    .take_while(|r| r.rank == rank)
                    .find(|r| !r.implied_head && r.is_match(bit, method, segments))
                {
                    route = explicit;
                }
            }
            Some(RouteMatch {
                route: &route.spec,
                value: &route.value,
                segments: &route.segments,
                path,
            })
        })
    }

    /// Whether any route matches `method` and the normalized `path`.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.routes.is_empty() || !path.starts_with('/') {
            return false;
        }
        let bit = method_bit(method);
        // A `/*` route for this method matches every path: no need to split it.
        self.routes
            .iter()
            .any(|r| r.segments.is_empty() && r.subtree && r.allows(bit, method))
            || with_segments(path, |segments| {
                self.routes
                    .iter()
                    .any(|r| r.is_match(bit, method, segments))
            })
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the set has no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes as written, in insertion order.
    pub fn routes(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| &*r.spec)
    }
}

impl RouteSet<()> {
    /// A set of plain routes (no values), e.g. a list of public paths.
    pub fn from_routes<I, S>(routes: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::new();
        for r in routes {
            set.insert(r.as_ref(), ())?;
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routes of every shape (exact, subtree, parameters, method lists) for the tests
    /// that compare the matcher, and the overlap check, with a brute-force answer.
    pub(super) const GRID_ROUTES: [&str; 15] = [
        "/",
        "/*",
        "/a",
        "/a/*",
        "/a/b",
        "/a/{x}",
        "/{x}",
        "/{x}/b",
        "/{x}/*",
        "/a/{x}/c",
        "/ab",
        "GET /a/*",
        "POST /{x}",
        "HEAD /a/b",
        "GET,POST /{x}/b",
    ];

    #[test]
    fn rejects_bad_patterns() {
        for bad in [
            "health", "/a*", "/a/*/b", "/a//b", "/a/../b", "/{}", "/{a-b}", "/a%2Fb", "G@T /a",
        ] {
            assert!(RouteSet::from_routes([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn most_specific_wins() {
        let set = RouteSet::new()
            .route("/api/v1/*", "prefix")
            .unwrap()
            .route("/api/v1/agents/{id}", "param")
            .unwrap()
            .route("/api/v1/agents/special", "literal")
            .unwrap()
            .route("DELETE /api/v1/agents/{id}", "delete")
            .unwrap();
        let get = Method::GET;
        let find = |m: &Method, p: &str| set.find(m, p).map(|m| *m.value);
        assert_eq!(find(&get, "/api/v1/agents/7"), Some("param"));
        assert_eq!(find(&get, "/api/v1/agents/special"), Some("literal"));
        assert_eq!(find(&Method::DELETE, "/api/v1/agents/7"), Some("delete"));
        assert_eq!(find(&get, "/api/v1/agents/7/runs"), Some("prefix"));
        assert_eq!(find(&get, "/api/v2"), None);
        assert_eq!(find(&get, "api/v1/agents/7"), None, "not a normalized path");

        let m = set.find(&Method::DELETE, "/api/v1/agents/7").unwrap();
        assert_eq!(m.param("id"), Some("7"));
        assert_eq!(m.route, "DELETE /api/v1/agents/{id}");
    }

    #[test]
    fn a_method_scoped_catch_all_matches_every_path_for_its_methods() {
        let set = RouteSet::from_routes(["POST,DELETE /*", "GET /reports/*"]).unwrap();
        for path in ["/", "/a", "/a/b/c"] {
            assert!(set.matches(&Method::POST, path), "{path}");
            assert!(set.matches(&Method::DELETE, path), "{path}");
            assert!(!set.matches(&Method::GET, path), "{path}");
        }
        assert!(set.matches(&Method::GET, "/reports/1"));
        assert!(!set.matches(&Method::POST, "no-slash"));
    }

    #[test]
    fn method_lists_with_extension_methods() {
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let long = Method::from_bytes(b"VERYLONGEXTENSIONMETHOD").unwrap();
        let set = RouteSet::new()
            .route("PURGE /cache/*", "purge")
            .unwrap()
            .route("GET,VERYLONGEXTENSIONMETHOD /data", "data")
            .unwrap()
            .route("* /any", "any")
            .unwrap();
        let find = |m: &Method, p: &str| set.find(m, p).map(|m| *m.value);
        assert_eq!(find(&purge, "/cache/a"), Some("purge"));
        assert_eq!(find(&Method::GET, "/cache/a"), None);
        assert_eq!(find(&Method::DELETE, "/cache/a"), None);
        assert_eq!(find(&long, "/data"), Some("data"));
        assert_eq!(find(&Method::GET, "/data"), Some("data"));
        assert_eq!(find(&Method::HEAD, "/data"), Some("data"));
        assert_eq!(find(&purge, "/data"), None);
        assert_eq!(find(&Method::POST, "/data"), None);
        for m in [&purge, &long, &Method::TRACE, &Method::CONNECT] {
            assert_eq!(find(m, "/any"), Some("any"), "{m}");
            assert!(set.matches(m, "/any"), "{m}");
        }
        assert!(set.matches(&purge, "/cache/a/b"));
        assert!(!set.matches(&Method::PATCH, "/cache/a/b"));
    }

    #[test]
    fn a_get_route_covers_head() {
        let set = RouteSet::new()
            .route("GET /export", "get")
            .unwrap()
            .route("GET,POST /data/{id}", "get-post")
            .unwrap()
            .route("POST /data/{id}/run", "post")
            .unwrap();
        let find = |m: Method, p: &str| set.find(&m, p).map(|m| *m.value);
        assert_eq!(find(Method::HEAD, "/export"), Some("get"));
        assert_eq!(find(Method::HEAD, "/data/7"), Some("get-post"));
        assert_eq!(find(Method::HEAD, "/data/7/run"), None, "POST only");
        assert!(set.matches(&Method::HEAD, "/export"));
        assert!(!set.matches(&Method::HEAD, "/data/7/run"));
        assert!(!set.matches(&Method::OPTIONS, "/export"));
        let catch_all = RouteSet::from_routes(["GET /*"]).unwrap();
        assert!(catch_all.matches(&Method::HEAD, "/any/path"));
        assert!(!catch_all.matches(&Method::POST, "/any/path"));
    }

    #[test]
    fn a_route_naming_head_beats_an_equal_get_route_for_head() {
        for order in [["GET /x", "HEAD /x"], ["HEAD /x", "GET /x"]] {
            let mut set = RouteSet::new();
            for r in order {
                set.insert(r, r).unwrap();
            }
            assert_eq!(
                set.find(&Method::HEAD, "/x").map(|m| *m.value),
                Some("HEAD /x")
            );
            assert_eq!(
                set.find(&Method::GET, "/x").map(|m| *m.value),
                Some("GET /x")
            );
        }
        // A more specific GET route still wins over a broader HEAD one.
        let set = RouteSet::new()
            .route("HEAD /x/*", "head")
            .unwrap()
            .route("GET /x/y", "get")
            .unwrap();
        assert_eq!(
            set.find(&Method::HEAD, "/x/y").map(|m| *m.value),
            Some("get")
        );
    }

    /// Matching by whole segments, as the module docs describe it: the path split into
    /// its non-empty segments, each compared with the route's.
    fn reference_match(spec: &str, method: &Method, path: &str) -> bool {
        let route = Route::parse(spec, ()).unwrap();
        let got: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let n = route.segments.len();
        // Method lists read from the spec: any method without one; HEAD wherever GET is.
        let allowed = spec.split_once(' ').is_none_or(|(list, _)| {
            let list: Vec<&str> = list.split(',').collect();
            list.contains(&method.as_str()) || (*method == Method::HEAD && list.contains(&"GET"))
        });
        path.starts_with('/')
            && allowed
            && (got.len() == n || route.subtree && got.len() > n)
            && route.segments.iter().zip(&got).all(|(seg, g)| match seg {
                Segment::Literal(lit) => **lit == **g,
                Segment::Param(_) => true,
            })
    }

    #[test]
    fn matching_reads_whole_segments() {
        let specs = GRID_ROUTES;
        let paths = [
            "/", "/a", "/a/", "/ab", "/a/b", "/a/bc", "/a/b/c", "/a/x/c", "/b", "/b/b", "//a",
            "/a//b", "/x/b/", "a", "",
        ];
        for spec in specs {
            let set = RouteSet::from_routes([spec]).unwrap();
            for path in paths {
                for method in [Method::GET, Method::HEAD, Method::POST] {
                    let want = reference_match(spec, &method, path);
                    assert_eq!(set.matches(&method, path), want, "{spec} {method} {path:?}");
                    assert_eq!(
                        set.find(&method, path).is_some(),
                        want,
                        "{spec} {method} {path:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ties_go_to_the_first_inserted_and_long_paths_match() {
        let set = RouteSet::new()
            .route("/a/{x}", 1)
            .unwrap()
            .route("/a/{y}", 2)
            .unwrap()
            .route("/*", 0)
            .unwrap();
        let m = set.find(&Method::GET, "/a/b").unwrap();
        assert_eq!((*m.value, m.param("x")), (1, Some("b")));

        let deep: String = (0..40).map(|i| format!("/s{i}")).collect();
        let set = RouteSet::new()
            .route(
                &format!("{}/{{last}}", &deep[..deep.rfind('/').unwrap()]),
                1,
            )
            .unwrap();
        let m = set.find(&Method::GET, &deep).unwrap();
        assert_eq!(m.param("last"), Some("s39"));
        assert!(set.matches(&Method::GET, &deep));
        assert!(!set.matches(&Method::GET, &format!("{deep}/more")));
    }
}
