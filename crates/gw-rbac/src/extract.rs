//! `axum` extractors (feature `axum`): [`UserInfo`] and [`HasPermission`].

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::guard::{Requirement, authorized};
use crate::user::UserInfo;

/// A permission known at compile time, for [`HasPermission`].
///
/// ```
/// struct DeleteAgents;
/// impl gw_rbac::PermissionName for DeleteAgents {
///     const NAME: &'static str = "agents:delete";
/// }
/// ```
pub trait PermissionName: Send + Sync + 'static {
    /// `resource:action`.
    const NAME: &'static str;
}

/// Extracts the [`UserInfo`] and requires permission `P`; rejects like
/// [`require_permission`](crate::require_permission).
#[derive(Debug, Clone)]
pub struct HasPermission<P: PermissionName>(pub UserInfo, PhantomData<P>);

impl<P: PermissionName> HasPermission<P> {
    /// The authorized caller.
    pub fn into_inner(self) -> UserInfo {
        self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for UserInfo {
    type Rejection = gw_problem::Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        authorized(&parts.extensions).cloned()
    }
}

impl<S: Send + Sync, P: PermissionName> FromRequestParts<S> for HasPermission<P> {
    type Rejection = gw_problem::Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Requirement::Permission(Arc::from(P::NAME)).check_extensions(&parts.extensions)?;
        let user = authorized(&parts.extensions)?.clone();
        Ok(Self(user, PhantomData))
    }
}
