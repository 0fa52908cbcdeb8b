//! Store calls that must finish even when the request future is dropped (client gone,
//! timeout): a reservation made on the server would otherwise never be released.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use gw_core::BackendError;

use crate::backend::{BoxFuture, ReserveOutcome, SettleOutcome, SettleRequest, SpendStore};

/// Finishes `fut` without waiting for it: inline if it is already done, else in a tokio
/// task (or, without a runtime, not at all: logged).
pub(crate) fn detach<T: Send + 'static>(mut fut: BoxFuture<T>) {
    if fut
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_ready()
    {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(fut);
        }
        Err(_) => {
            tracing::warn!("no tokio runtime to finish a budget store call; it is abandoned");
            metrics::counter!("gw_budget_abandoned_store_calls_total").increment(1);
        }
    }
}

/// A reserve in flight; if dropped before it completes, an admitted reservation is
/// released in the background.
pub(crate) struct ReserveInFlight {
    fut: Option<BoxFuture<Result<ReserveOutcome, BackendError>>>,
    store: Arc<dyn SpendStore>,
    release: Option<SettleRequest>,
}

impl ReserveInFlight {
    pub(crate) fn new(
        fut: BoxFuture<Result<ReserveOutcome, BackendError>>,
        store: Arc<dyn SpendStore>,
        release: SettleRequest,
    ) -> Self {
        Self {
            fut: Some(fut),
            store,
            release: Some(release),
        }
    }
}

impl Future for ReserveInFlight {
    type Output = Result<ReserveOutcome, BackendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.fut.as_mut().expect("reserve polled after completion");
        let out = std::task::ready!(fut.as_mut().poll(cx));
        self.fut = None;
        Poll::Ready(out)
    }
}

impl Drop for ReserveInFlight {
    fn drop(&mut self) {
        if let (Some(fut), Some(release)) = (self.fut.take(), self.release.take()) {
            let store = self.store.clone();
            detach(Box::pin(async move {
                if let Ok(ReserveOutcome::Admitted { .. }) = fut.await {
                    let _ = store.settle(release).await;
                }
            }));
        }
    }
}

/// A settle in flight; if dropped before it completes, it finishes in the background.
pub(crate) struct SettleInFlight(Option<BoxFuture<Result<SettleOutcome, BackendError>>>);

impl SettleInFlight {
    pub(crate) fn new(fut: BoxFuture<Result<SettleOutcome, BackendError>>) -> Self {
        Self(Some(fut))
    }
}

impl Future for SettleInFlight {
    type Output = Result<SettleOutcome, BackendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut().expect("settle polled after completion");
        let out = std::task::ready!(fut.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(out)
    }
}

impl Drop for SettleInFlight {
    fn drop(&mut self) {
        if let Some(fut) = self.0.take() {
            detach(Box::pin(async move {
                let _ = fut.await;
            }));
        }
    }
}
