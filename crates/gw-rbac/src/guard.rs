//! Per-route guards: [`require_permission`], [`require_role`], [`require_role_level`].
//!
//! Guards read the [`UserInfo`] the [`RbacLayer`](crate::RbacLayer) put into the request;
//! mount them inside it (on a router's routes). Without a `UserInfo` they refuse: 401 when
//! there is no principal either, 403 otherwise.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use gw_core::{Decision, Decisions, Outcome, Principal};
use gw_problem::{Problem, ProblemType};
use http::{Extensions, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::user::UserInfo;

/// What a guard requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A permission (`resource:action`).
    Permission(Arc<str>),
    /// A role, by exact name.
    Role(Arc<str>),
    /// A role of this level or higher (a smaller or equal level number).
    RoleLevel(u8),
}

impl Requirement {
    /// `None` when `user` meets it, else the deny reason.
    fn check(&self, user: &UserInfo) -> Option<String> {
        match self {
            Self::Permission(p) if user.has_permission(p) => None,
            Self::Permission(p) => Some(format!("missing permission {p}")),
            Self::Role(r) if user.has_role(r) => None,
            Self::Role(r) => Some(format!("missing role {r}")),
            Self::RoleLevel(l) if user.role_level.is_some_and(|have| have <= *l) => None,
            Self::RoleLevel(l) => Some(format!("role level {l} or higher required")),
        }
    }

    /// Checks the request extensions; `Err` is the problem to answer with.
    // The error is the rejection itself, built once on the deny path; boxing it would only
    // move the allocation.
    #[allow(clippy::result_large_err)]
    pub fn check_extensions(&self, ext: &Extensions) -> Result<(), Problem> {
        let user = authorized(ext)?;
        match self.check(user) {
            None => Ok(()),
            Some(reason) => Err(denied(&reason)),
        }
    }
}

/// The [`UserInfo`] of an authorized request, or the problem to answer with: 401 without
/// a principal, 403 when the rbac layer did not authorize the request.
#[allow(clippy::result_large_err)]
pub fn authorized(ext: &Extensions) -> Result<&UserInfo, Problem> {
    match ext.get::<UserInfo>() {
        Some(user) => Ok(user),
        None if ext.get::<Principal>().is_none() => Err(Problem::new(ProblemType::UNAUTHORIZED)
            .code("unauthorized")
            .detail("authorization needs an authenticated caller")),
        None => Err(denied("the request was not authorized by the rbac layer")),
    }
}

fn denied(reason: &str) -> Problem {
    Problem::new(ProblemType::PERMISSION_DENIED)
        .code("permission-denied")
        .detail(reason.to_owned())
        .with("deny_reason", reason)
}

/// A guard layer requiring `permission` (`resource:action`).
pub fn require_permission(permission: impl Into<Arc<str>>) -> RequireLayer {
    RequireLayer(Requirement::Permission(permission.into()))
}

/// A guard layer requiring the role `role` (exact name).
pub fn require_role(role: impl Into<Arc<str>>) -> RequireLayer {
    RequireLayer(Requirement::Role(role.into()))
}

/// A guard layer requiring a role of `level` or higher (1 = highest).
pub fn require_role_level(level: u8) -> RequireLayer {
    RequireLayer(Requirement::RoleLevel(level))
}

/// Layer of a per-route guard; build with [`require_permission`], [`require_role`] or
/// [`require_role_level`].
#[derive(Debug, Clone)]
pub struct RequireLayer(Requirement);

impl RequireLayer {
    /// What the guard requires.
    pub fn requirement(&self) -> &Requirement {
        &self.0
    }
}

impl<S> Layer<S> for RequireLayer {
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            requirement: self.0.clone(),
        }
    }
}

/// The service of a [`RequireLayer`].
#[derive(Debug, Clone)]
pub struct Require<S> {
    inner: S,
    requirement: Requirement,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Require<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<Bytes>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match self.requirement.check_extensions(req.extensions()) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req), None),
            Err(problem) => {
                Decisions::record(
                    req.extensions(),
                    Decision::new("rbac", "route_guard", Outcome::Deny, Default::default())
                        .reason(problem.reason_code().to_owned()),
                );
                ResponseFuture::ready(Ok(problem.response_for(&req)))
            }
        }
    }
}
