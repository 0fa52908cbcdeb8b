//! axum extractors for what the [`AuthLayer`](crate::AuthLayer) put into the request.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use gw_core::Principal;
use gw_problem::Problem;
use http::request::Parts;

use crate::claims::Claims;
use crate::error::AuthError;

/// The verified claims. Rejects with a 401 `unauthorized` problem when the route is not
/// behind an [`AuthLayer`](crate::AuthLayer) (or is public).
#[derive(Debug, Clone)]
pub struct AuthClaims(pub Arc<Claims>);

/// The authenticated [`Principal`]. Rejects like [`AuthClaims`].
#[derive(Debug, Clone)]
pub struct AuthPrincipal(pub Principal);

impl Deref for AuthClaims {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl Deref for AuthPrincipal {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

fn not_authenticated() -> Problem {
    AuthError::missing()
        .problem()
        .detail("This route needs an authenticated caller.")
}

impl<S: Send + Sync> FromRequestParts<S> for AuthClaims {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Arc<Claims>>()
            .cloned()
            .map(Self)
            .ok_or_else(not_authenticated)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthPrincipal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Self)
            .ok_or_else(not_authenticated)
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for AuthClaims {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Arc<Claims>>().cloned().map(Self))
    }
}
