//! The example gw gateway.
//!
//! This first version serves the foundation only: every request passes through
//! [`ProblemLayer`] (correlation ids, panics as problems), `/health` answers, `/problems/{slug}`
//! documents each problem type, and everything else goes to a built-in demo upstream that
//! echoes what it received. The other layers are composed in as their crates land.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use gw_problem::{CATALOGUE, Problem, ProblemLayer, ProblemType};
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;

type Body = Full<Bytes>;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

fn listen_addr() -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = std::env::var("GW_LISTEN").ok();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = Some(args.next().ok_or("--listen needs an address")?),
            "-h" | "--help" => {
                println!(
                    "usage: gateway [--listen ADDR]   (env GW_LISTEN, default {DEFAULT_LISTEN})"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let listen = listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    listen
        .parse()
        .map_err(|e| format!("invalid listen address {listen:?}: {e}"))
}

async fn route(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    if path == "/health" || path == "/healthz" {
        return Ok(json(StatusCode::OK, serde_json::json!({"status": "ok"})));
    }
    if let Some(slug) = path.strip_prefix("/problems/") {
        return Ok(match ProblemType::by_slug(slug) {
            Some(t) => json(
                StatusCode::OK,
                serde_json::json!({
                    "type": slug, "title": t.title, "status": t.status.as_u16(),
                    "description": t.description,
                }),
            ),
            None => Problem::new(ProblemType::NOT_FOUND).response_for(&req),
        });
    }
    if path == "/problems" {
        let all: Vec<_> = CATALOGUE
            .iter()
            .map(|t| serde_json::json!({"type": t.slug, "title": t.title, "status": t.status.as_u16()}))
            .collect();
        return Ok(json(StatusCode::OK, serde_json::Value::Array(all)));
    }
    // Demo upstream: echo what arrived.
    let echo = serde_json::json!({
        "upstream": "demo",
        "method": req.method().as_str(),
        "path": path,
        "correlation_id": req.headers().get("x-correlation-id").and_then(|v| v.to_str().ok()),
    });
    Ok(json(StatusCode::OK, echo))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut res = Response::new(Body::from(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = match listen_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gateway: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    println!("gateway listening on http://{local}");

    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .service_fn(route);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let svc = TowerToHyperService::new(svc.clone());
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            _ = tokio::signal::ctrl_c() => {
                println!("gateway: shutting down");
                break;
            }
        }
    }
}
