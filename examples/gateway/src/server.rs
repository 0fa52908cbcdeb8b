//! [`serve`]: HTTP/1.1 and HTTP/2 on a listener, one service clone per connection.
//!
//! tower services are called through `&mut self`, so a server that shares one service
//! between concurrent requests clones it for every request (as `axum::serve` does). A
//! clone of the gateway's chain touches every layer's shared state (about a dozen
//! reference counts, each a cache line both cores fight over), so here each connection
//! gets one clone, readied and called in turn by its requests; only a request that finds
//! it not ready falls back to a clone of its own.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures_util::future::{BoxFuture, Either};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tower::Service;
use tower::ServiceExt as _;
use tower::util::Oneshot;

use crate::GatewayService;

/// How long in-flight requests get to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `service` on `listener` until `shutdown` completes, then waits (up to 30 s) for
/// in-flight requests to finish. HTTP/1.1 and HTTP/2 (prior knowledge) are both spoken.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: GatewayService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = builder
            .serve_connection_with_upgrades(
                TokioIo::new(stream),
                PerConnection(Mutex::new(service.clone())),
            )
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {DRAIN:?}");
    }
    Ok(())
}

/// One connection's clone of the gateway service.
struct PerConnection(Mutex<GatewayService>);

type ResponseFuture =
    Either<BoxFuture<'static, Result<Response, Infallible>>, Oneshot<GatewayService, Request>>;

impl hyper::service::Service<hyper::Request<Incoming>> for PerConnection {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let req = req.map(Body::new);
        // A poisoned lock only means a panic inside `call`; the service itself is intact.
        let mut svc = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match svc.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Either::Left(svc.call(req)),
            Poll::Ready(Err(never)) => match never {},
            // Not ready now: wait for readiness on a clone of its own, as tower expects.
            Poll::Pending => Either::Right(svc.clone().oneshot(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use hyper_util::client::legacy::Client;
    use std::sync::Arc;
    use tower::util::BoxCloneSyncService;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http1_and_http2_then_graceful_shutdown() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let service: GatewayService =
            BoxCloneSyncService::new(tower::service_fn(move |req: Request| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    let version = format!("{:?}", req.version());
                    Ok::<_, Infallible>(Response::new(Body::from(version)))
                }
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, service, async {
            let _ = stopped.await;
        }));

        let url = format!("http://{addr}/x");
        let h1 = Client::builder(TokioExecutor::new()).build_http::<Body>();
        let h2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Body>();
        for (client, want) in [(&h1, "HTTP/1.1"), (&h2, "HTTP/2.0")] {
            // Several requests on one connection share its service clone.
            for _ in 0..3 {
                let res = client
                    .request(hyper::Request::get(&url).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let body = res.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, want);
            }
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 6);

        stop.send(()).unwrap();
        drop((h1, h2));
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("serve returns after the shutdown signal")
            .unwrap()
            .unwrap();
    }
}
