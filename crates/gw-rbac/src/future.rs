//! Response futures of the RBAC and guard services.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use crate::user::{ROLE_LEVEL_HEADER, ROLES_HEADER, USER_ID_HEADER, UserInfo};

/// The `X-RBAC-*` headers added to an allowed request's response.
#[derive(Debug, Clone, Default)]
pub(crate) struct RbacHeaders {
    user_id: Option<HeaderValue>,
    roles: Option<HeaderValue>,
    level: Option<HeaderValue>,
}

impl RbacHeaders {
    pub(crate) fn for_user(user: &UserInfo) -> Self {
        Self {
            user_id: HeaderValue::from_str(&user.user_id).ok(),
            roles: match &*user.roles {
                [one] => HeaderValue::from_str(one).ok(),
                many => HeaderValue::from_str(&many.join(",")).ok(),
            },
            level: user.role_level.map(level_header),
        }
    }

    pub(crate) fn apply<B>(self, res: &mut Response<B>) {
        let h = res.headers_mut();
        // At most one growth of the map for the three headers.
        h.reserve(3);
        for (name, value) in [
            (USER_ID_HEADER, self.user_id),
            (ROLES_HEADER, self.roles),
            (ROLE_LEVEL_HEADER, self.level),
        ] {
            if let Some(v) = value {
                h.insert(name, v);
            }
        }
    }
}

/// Levels 1-9 without an allocation.
fn level_header(level: u8) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match DIGITS.get(usize::from(level)) {
        Some(d) => HeaderValue::from_static(d),
        None => HeaderValue::from(u16::from(level)),
    }
}

type Boxed<O> = Pin<Box<dyn Future<Output = O> + Send>>;

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Inner { #[pin] fut: F, headers: Option<RbacHeaders> },
        Ready { out: Option<F::Output> },
        Pending { fut: Boxed<F::Output> },
    }
}

pin_project! {
    /// Response future of [`Rbac`](crate::Rbac) and [`Require`](crate::Require).
    pub struct ResponseFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn inner(fut: F, headers: Option<RbacHeaders>) -> Self {
        Self {
            kind: Kind::Inner { fut, headers },
        }
    }

    pub(crate) fn ready(out: F::Output) -> Self {
        Self {
            kind: Kind::Ready { out: Some(out) },
        }
    }

    pub(crate) fn pending(fut: impl Future<Output = F::Output> + Send + 'static) -> Self {
        Self {
            kind: Kind::Pending { fut: Box::pin(fut) },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { fut, headers } => {
                let mut res = std::task::ready!(fut.poll(cx))?;
                if let Some(h) = headers.take() {
                    h.apply(&mut res);
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Ready { out } => {
                Poll::Ready(out.take().expect("ResponseFuture polled after completion"))
            }
            KindProj::Pending { fut } => fut.as_mut().poll(cx),
        }
    }
}

impl<F: Future> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
