//! From method and path to the `resource:action` a request needs.

use std::borrow::Cow;

use gw_core::RouteSet;
use http::Method;

use crate::policy::{Policy, PolicyError, split_permission};

#[derive(Debug, Clone)]
enum Target {
    Permission {
        resource: Box<str>,
        action: Box<str>,
    },
    Resource(Box<str>),
}

/// What a request needs: the resource, the action and the addressed instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped<'a> {
    /// Resource name (`agents`; `-` in the path segment becomes `_`).
    pub resource: Cow<'a, str>,
    /// Action (`read`, `create`, `update`, `delete`, or an override's).
    pub action: Cow<'a, str>,
    /// The `{id}` segment, when the path names one.
    pub resource_id: Option<&'a str>,
}

impl Mapped<'_> {
    /// `resource:action`.
    pub fn permission(&self) -> String {
        format!("{}:{}", self.resource, self.action)
    }
}

/// Maps requests to permissions: route overrides first (most specific wins; an override
/// for `GET` covers `HEAD` too), then the default rule: resource = the segment after
/// `/api/v{n}/`, action from the method (`GET`/`HEAD` read, `POST` create, `PUT`/`PATCH`
/// update, `DELETE` delete).
#[derive(Debug, Clone)]
pub struct RouteMapper {
    overrides: RouteSet<Target>,
}

impl RouteMapper {
    /// The mapper for `policy`'s route overrides.
    pub fn from_policy(policy: &Policy) -> Result<Self, PolicyError> {
        let mut overrides = RouteSet::new();
        for rule in &policy.routes {
            let target = match (&rule.permission, &rule.resource) {
                (Some(p), _) => {
                    let (r, a) = split_permission(p).ok_or_else(|| {
                        PolicyError::new(format!("route {:?}: bad permission", rule.route))
                    })?;
                    Target::Permission {
                        resource: r.into(),
                        action: a.into(),
                    }
                }
                (None, Some(r)) => Target::Resource(r.as_str().into()),
                (None, None) => {
                    return Err(PolicyError::new(format!(
                        "route {:?}: no target",
                        rule.route
                    )));
                }
            };
            overrides
                .insert(&rule.route, target)
                .map_err(PolicyError::new)?;
        }
        Ok(Self { overrides })
    }

    /// The resource and action for `method` on the normalized `path`, or `None` when
    /// nothing maps it (not under `/api/v{n}/` and no override, or an unmapped method).
    pub fn map<'a>(&'a self, method: &Method, path: &'a str) -> Option<Mapped<'a>> {
        if let Some(m) = self.overrides.find(method, path) {
            let resource_id = m.param("id");
            return match m.value {
                Target::Permission { resource, action } => Some(Mapped {
                    resource: Cow::Borrowed(resource),
                    action: Cow::Borrowed(action),
                    resource_id,
                }),
                Target::Resource(resource) => Some(Mapped {
                    resource: Cow::Borrowed(resource),
                    action: Cow::Borrowed(method_action(method)?),
                    resource_id,
                }),
            };
        }
        let (version, segment, resource_id) = api_segments(path)?;
        let digits = version.strip_prefix('v')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let resource = if segment.contains('-') {
            Cow::Owned(segment.replace('-', "_"))
        } else {
            Cow::Borrowed(segment)
        };
        Some(Mapped {
            resource,
            action: Cow::Borrowed(method_action(method)?),
            resource_id,
        })
    }
}

/// The default rule's shape, `/api/{version}/{resource}[/{id}[/...]]`, on a normalized
/// path (no empty segments): the version, the resource and the id segment, if any.
/// Every request that no override maps comes here, so the one fixed shape is read in one
/// pass over the bytes rather than matched as a route (a third of the instructions).
fn api_segments(path: &str) -> Option<(&str, &str, Option<&str>)> {
    fn split(rest: &str) -> (&str, &str) {
        match rest.bytes().position(|b| b == b'/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        }
    }
    let (version, rest) = split(path.strip_prefix("/api/")?);
    let (resource, rest) = split(rest);
    if version.is_empty() || resource.is_empty() {
        return None;
    }
    let (id, _) = split(rest);
    Some((version, resource, (!id.is_empty()).then_some(id)))
}

/// The default action of a method.
pub fn method_action(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET | Method::HEAD => "read",
        Method::POST => "create",
        Method::PUT | Method::PATCH => "update",
        Method::DELETE => "delete",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_mapping_and_overrides() {
        let m = RouteMapper::from_policy(&Policy::builtin()).unwrap();
        let map = |method: Method, path: &str| {
            m.map(&method, path)
                .map(|x| (x.permission(), x.resource_id.map(str::to_owned)))
        };
        let some = |p: &str, id: Option<&str>| Some((p.to_owned(), id.map(str::to_owned)));
        assert_eq!(
            map(Method::GET, "/api/v1/agents"),
            some("agents:read", None)
        );
        assert_eq!(
            map(Method::POST, "/api/v1/agents"),
            some("agents:create", None)
        );
        assert_eq!(
            map(Method::PUT, "/api/v1/agents/123"),
            some("agents:update", Some("123"))
        );
        assert_eq!(
            map(Method::PATCH, "/api/v2/agents/9/x"),
            some("agents:update", Some("9"))
        );
        assert_eq!(
            map(Method::DELETE, "/api/v1/agents/123"),
            some("agents:delete", Some("123"))
        );
        assert_eq!(
            map(Method::POST, "/api/v1/deployments"),
            some("deployments:deploy", None)
        );
        assert_eq!(
            map(Method::POST, "/api/v1/deployments/4/rollback"),
            some("deployments:deploy", Some("4"))
        );
        assert_eq!(
            map(Method::GET, "/api/v1/audit-logs"),
            some("audit_logs:read", None)
        );
        assert_eq!(
            map(Method::DELETE, "/api/v1/keys/k1"),
            some("api_keys:delete", None)
        );
        assert_eq!(
            map(Method::GET, "/api/v1/data/export"),
            some("data:export", None)
        );
        // HEAD runs the GET handler: GET overrides cover it.
        assert_eq!(
            map(Method::HEAD, "/api/v1/data/export"),
            some("data:export", None)
        );
        assert_eq!(
            map(Method::HEAD, "/api/v1/reports/9/export"),
            some("reports:export", Some("9"))
        );
        assert_eq!(
            map(Method::HEAD, "/api/v1/agents/9"),
            some("agents:read", Some("9"))
        );
        assert_eq!(map(Method::GET, "/api/vx/agents"), None);
        assert_eq!(map(Method::GET, "/api/v/agents"), None);
        assert_eq!(map(Method::GET, "/api/v1"), None);
        assert_eq!(map(Method::GET, "/health"), None);
        assert_eq!(map(Method::OPTIONS, "/api/v1/agents"), None);
    }

    /// `api_segments` reads what the route `/api/{version}/{resource}/*` would match, with
    /// the id the segment after the resource, on normalized paths.
    #[test]
    fn api_segments_read_what_the_route_matches() {
        let route = RouteSet::from_routes(["/api/{version}/{resource}/*"]).unwrap();
        for path in [
            "/",
            "/api",
            "/apis/v1/agents",
            "/api/v1",
            "/api/v1/agents",
            "/api/v1/agents/7",
            "/api/v1/agents/7/runs/3",
            "/api/v12/audit-logs/a-b",
            "/x/api/v1/agents",
            "/api/v1/a",
            "/api/a/b/c/d/e/f",
        ] {
            assert_eq!(gw_core::normalize_path(path).unwrap(), path, "normalized");
            let by_route = route.find(&Method::GET, path).map(|m| {
                (
                    m.param("version").unwrap(),
                    m.param("resource").unwrap(),
                    path.split('/').nth(4),
                )
            });
            assert_eq!(api_segments(path), by_route, "{path}");
        }
    }
}
