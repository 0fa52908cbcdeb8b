//! Role-based access control for gw: each request's method and path become a
//! `resource:action` permission, and an [`Authorizer`] decides whether the caller's roles
//! hold it.
//!
//! - **Policy as data** ([`Policy`], `policy/rbac.toml`): roles with levels (1 = highest;
//!   a role holds its own permissions plus those of every role below it), `resource:action`
//!   permissions, route overrides. The same policy ships in Rego (`policy/rbac_pp.rego`).
//! - **Mapping** ([`RouteMapper`]): overrides first (gw-core [`RouteSet`](gw_core::RouteSet);
//!   a `GET` override covers `HEAD` too), then resource = the segment after `/api/v{n}/`,
//!   `GET`/`HEAD` read, `POST` create,
//!   `PUT`/`PATCH` update, `DELETE` delete.
//! - **Engines**: [`NativeAuthorizer`] (default, compiled tables), `RegoAuthorizer`
//!   (feature `rego`, in-process `regorus`), `OpaAuthorizer` (feature `opa`, OPA's REST
//!   Data API), behind a bounded TTL [`DecisionCache`].
//! - **Layer** ([`RbacLayer`]): no [`Principal`](gw_core::Principal) -> 401 `unauthorized`;
//!   denied -> 403 `permission-denied` with `deny_reason`; engine down -> 503
//!   `service-unavailable` (or fail-open, logged and counted); allowed -> [`UserInfo`] in
//!   the request and `X-RBAC-User-ID`, `X-RBAC-Roles`, `X-RBAC-Role-Level` on the response.
//!   Runs on one [`GatewayType`](gw_core::GatewayType) (default `pp`) and only while the
//!   `enable_rbac_pp` flag is on. Hot reload through a [`PolicyHandle`].
//! - **Guards**: [`require_permission`], [`require_role`], [`require_role_level`]; axum
//!   extractors with feature `axum`.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//!
//! use bytes::Bytes;
//! use gw_core::{Principal, PrincipalData};
//! use gw_rbac::{RbacLayer, UserInfo};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(RbacLayer::builtin())
//!     .service_fn(|req: Request<Full<Bytes>>| async move {
//!         let user = req.extensions().get::<UserInfo>().unwrap();
//!         assert!(user.has_permission("agents:read"));
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
//!     });
//!
//! let request = |method: &str, roles: &[&str]| {
//!     let mut req = Request::builder()
//!         .method(method)
//!         .uri("/api/v1/agents/42")
//!         .body(Full::default())
//!         .unwrap();
//!     req.extensions_mut().insert(Principal::from(PrincipalData {
//!         sub: "u1".into(),
//!         user_id: "u1".into(),
//!         email: "u1@example.com".into(),
//!         customer_id: "c1".into(),
//!         roles: roles.iter().map(|r| r.to_string()).collect::<Arc<[String]>>(),
//!         governor_agent_id: None,
//!         trial: None,
//!     }));
//!     req
//! };
//!
//! // A viewer may read agents...
//! let res = svc.clone().oneshot(request("GET", &["viewer"])).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["x-rbac-role-level"], "7");
//! // ...but not delete them: 403 permission-denied.
//! let res = svc.oneshot(request("DELETE", &["viewer"])).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! # }
//! ```

mod cache;
pub mod engine;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod guard;
mod hash;
mod layer;
mod mapping;
mod policy;
mod reload;
mod service;
mod user;

pub use cache::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DecisionCache};
#[cfg(feature = "opa")]
pub use engine::OpaAuthorizer;
#[cfg(feature = "rego")]
pub use engine::RegoAuthorizer;
pub use engine::{Authorization, Authorizer, AuthzDecision, AuthzInput, NativeAuthorizer};
#[cfg(feature = "axum")]
pub use extract::{HasPermission, PermissionName};
pub use future::ResponseFuture;
pub use guard::{
    Require, RequireLayer, Requirement, authorized, require_permission, require_role,
    require_role_level,
};
pub use layer::{DEFAULT_BYPASS, DEFAULT_FLAG, RbacLayer};
pub use mapping::{Mapped, RouteMapper, method_action};
pub use policy::{
    BUILTIN_POLICY_REGO, BUILTIN_POLICY_TOML, MAX_PERMISSIONS, Policy, PolicyError, Role, RouteRule,
};
pub use reload::PolicyHandle;
pub use service::Rbac;
pub use user::{Permissions, ROLE_LEVEL_HEADER, ROLES_HEADER, USER_ID_HEADER, UserInfo};
