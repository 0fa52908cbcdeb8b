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
//! Matching is by whole segments on a path that went through
//! [`normalize_path`](crate::path::normalize_path). When several routes match, the most
//! specific wins: the longest pattern, then the most literal segments, then exact over
//! `/*`, then method-scoped over any-method; remaining ties go to the first inserted.

use std::fmt;

use http::Method;

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
    segments: Box<[Segment]>,
    subtree: bool,
    literals: usize,
    value: T,
}

/// The specificity of a match; larger is more specific.
type Rank = (usize, usize, bool, bool);

/// Captured `(name, value)` pairs.
type Params<'r, 'p> = Vec<(&'r str, &'p str)>;

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
        Ok(Self {
            spec: trimmed.into(),
            methods,
            segments: segments.into(),
            subtree,
            literals,
            value,
        })
    }

    /// Whether `path` (normalized) matches, without capturing anything.
    fn is_match(&self, method: &Method, path: &str) -> bool {
        if let Some(methods) = &self.methods
            && !methods.contains(method)
        {
            return false;
        }
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut path_segs = rest.split('/').filter(|s| !s.is_empty());
        for seg in self.segments.iter() {
            match (seg, path_segs.next()) {
                (_, None) => return false,
                (Segment::Literal(lit), Some(got)) if **lit != *got => return false,
                _ => {}
            }
        }
        self.subtree || path_segs.next().is_none()
    }

    /// Matches `path` (normalized) and returns the rank and captured parameters.
    fn matches<'r, 'p>(&'r self, method: &Method, path: &'p str) -> Option<(Rank, Params<'r, 'p>)> {
        if let Some(methods) = &self.methods
            && !methods.contains(method)
        {
            return None;
        }
        let mut params = Vec::new();
        let mut path_segs = path.strip_prefix('/')?.split('/').filter(|s| !s.is_empty());
        for seg in self.segments.iter() {
            let got = path_segs.next()?;
            match seg {
                Segment::Literal(lit) if **lit == *got => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((&**name, got)),
            }
        }
        if !self.subtree && path_segs.next().is_some() {
            return None;
        }
        let rank = (
            self.segments.len(),
            self.literals,
            !self.subtree,
            self.methods.is_some(),
        );
        Some((rank, params))
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

/// A successful match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'r, 'p, T> {
    /// The route as it was written.
    pub route: &'r str,
    /// The value stored with the route.
    pub value: &'r T,
    /// Captured `{param}` values, in pattern order.
    pub params: Params<'r, 'p>,
}

impl<'p, T> RouteMatch<'_, 'p, T> {
    /// The captured value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&'p str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// A set of routes, each with a value (`()` for plain path lists).
#[derive(Debug, Clone)]
pub struct RouteSet<T = ()> {
    routes: Vec<Route<T>>,
}

impl<T> Default for RouteSet<T> {
    fn default() -> Self {
        Self { routes: Vec::new() }
    }
}

impl<T> RouteSet<T> {
    /// An empty set; matches nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route (see the [module docs](self) for the syntax).
    pub fn insert(&mut self, route: &str, value: T) -> Result<&mut Self, PatternError> {
        self.routes.push(Route::parse(route, value)?);
        Ok(self)
    }

    /// Adds a route, builder style.
    pub fn route(mut self, route: &str, value: T) -> Result<Self, PatternError> {
        self.insert(route, value)?;
        Ok(self)
    }

    /// The most specific route matching `method` and the normalized `path`.
    pub fn find<'r, 'p>(&'r self, method: &Method, path: &'p str) -> Option<RouteMatch<'r, 'p, T>> {
        let mut best: Option<(Rank, &'r Route<T>, Params<'r, 'p>)> = None;
        for route in &self.routes {
            if let Some((rank, params)) = route.matches(method, path)
                && best.as_ref().is_none_or(|(r, _, _)| rank > *r)
            {
                best = Some((rank, route, params));
            }
        }
        best.map(|(_, route, params)| RouteMatch {
            route: &route.spec,
            value: &route.value,
            params,
        })
    }

    /// Whether any route matches `method` and the normalized `path`.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        self.routes.iter().any(|r| r.is_match(method, path))
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

        let m = set.find(&Method::DELETE, "/api/v1/agents/7").unwrap();
        assert_eq!(m.param("id"), Some("7"));
        assert_eq!(m.route, "DELETE /api/v1/agents/{id}");
    }
}
