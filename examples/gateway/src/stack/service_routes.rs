//! The service-auth routes: parsed, checked against each other, and warned about.

use gw_core::RouteSet;
use svc_hmac::Mode;

use crate::config::Config;

/// The service-auth route groups (service-only in `enforce`, then `log_only`) and the
/// exempt routes, parsed without panicking.
///
/// The service-only routes skip JWT authentication and RBAC, so only the HMAC check guards
/// them. An exempt route is never checked and wins over every group, so one that overlaps a
/// service-only route is refused. A `log_only` group that overlaps one is a staged rollout
/// and is warned about. `default_mode` only applies to paths outside every group, never to
/// a service-only route.
pub(super) fn service_routes(config: &Config) -> Result<(RouteSet<Mode>, RouteSet), String> {
    let sa = &config.service_auth;
    let service_only = RouteSet::from_routes(&sa.service_only)
        .map_err(|e| format!("service_auth.service_only: {e}"))?;
    let log_only =
        RouteSet::from_routes(&sa.log_only).map_err(|e| format!("service_auth.log_only: {e}"))?;
    let exempt =
        RouteSet::from_routes(&sa.exempt).map_err(|e| format!("service_auth.exempt: {e}"))?;
    let clashes: Vec<String> = exempt
        .overlaps(&service_only)
        .map(|(e, s)| format!("exempt {e:?} overlaps service-only {s:?}"))
        .collect();
    if !clashes.is_empty() {
        return Err(format!(
            "service_auth.exempt: {}; an exempt route is never verified, so it would open \
             the service-only route to unsigned requests from anyone (to open a service-only \
             route, remove it from service_auth.service_only)",
            clashes.join(", ")
        ));
    }
    let staged: Vec<(&str, &str)> = log_only.overlaps(&service_only).collect();
    if !staged.is_empty() {
        tracing::warn!(
            routes = ?staged,
            "service_auth.log_only groups overlap service-only routes: where the log_only \
             group is the more specific match, they accept unsigned requests from anyone, \
             without JWT authentication or RBAC"
        );
    }
    let mut groups = RouteSet::new();
    for (routes, mode) in [
        (&sa.service_only, Mode::Enforce),
        (&sa.log_only, Mode::LogOnly),
    ] {
        for route in routes {
            // Parsed above: cannot fail.
            groups
                .insert(route, mode)
                .map_err(|e| format!("service_auth: {e}"))?;
        }
    }
    Ok((groups, exempt))
}

/// The service-only routes skip JWT authentication and RBAC: below `enforce`, they take
/// unsigned requests from anyone. A deliberate rollback, but never a quiet one.
pub(super) fn warn_if_service_only_open(config: &Config, cap: Mode) {
    if cap < Mode::Enforce && !config.service_auth.service_only.is_empty() {
        tracing::warn!(
            cap = cap.as_str(),
            routes = ?config.service_auth.service_only,
            "{}={} caps the service-only routes below enforce: they accept unsigned \
             requests from anyone, without JWT authentication or RBAC",
            svc_hmac::ENFORCEMENT_MODE_ENV,
            cap.as_str(),
        );
    }
}
