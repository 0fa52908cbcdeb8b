//! `gateway`: the example gw gateway binary. See `--help`.

use std::path::PathBuf;

use std::time::Duration;

use gateway::Config;
use gateway::demo::{DEMO_USERS, DemoAuth};

/// mimalloc: allocation-heavy request paths (headers, extensions, audit records) run
/// markedly faster than on the system allocator (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: gateway [--config FILE] [--listen ADDR] [--demo]

  --config FILE   TOML configuration (see docs/configuration.md)
  --listen ADDR   listen address (env GW_LISTEN, default 127.0.0.1:8080)
  --demo          ephemeral signing key, JWKS at /.well-known/jwks.json, demo tokens,
                  a demo service key and callback secret; prints ready-to-paste curl
                  commands. Never use it for anything real.

Environment variables GW_* override the file (docs/configuration.md).";

struct Args {
    config: Option<PathBuf>,
    listen: Option<String>,
    demo: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        config: None,
        listen: None,
        demo: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => out.config = Some(args.next().ok_or("--config needs a file")?.into()),
            "--listen" => out.listen = Some(args.next().ok_or("--listen needs an address")?),
            "--demo" => out.demo = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(out)
}

/// The process environment as strings (`std::env::vars` panics on a variable that is not
/// UTF-8). Such a variable is an error if it is one the gateway reads, and skipped otherwise.
fn utf8_env() -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (key, value) in std::env::vars_os() {
        match (key.into_string(), value.into_string()) {
            (Ok(key), Ok(value)) => out.push((key, value)),
            (key, _) => {
                let key = key.unwrap_or_else(|k| k.to_string_lossy().into_owned());
                if key.starts_with("GW_") || key == svc_hmac::ENFORCEMENT_MODE_ENV {
                    return Err(format!("{key}: not valid UTF-8"));
                }
            }
        }
    }
    Ok(out)
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("gateway: {msg}");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = parse_args().unwrap_or_else(|e| fail(e));
    let mut env = utf8_env().unwrap_or_else(|e| fail(e));
    if let Some(listen) = args.listen {
        env.push(("GW_LISTEN".into(), listen));
    }
    let mut config = Config::load(args.config.as_deref(), env).unwrap_or_else(|e| fail(e));

    let demo = if args.demo {
        let demo = DemoAuth::generate("gw-demo").unwrap_or_else(|e| fail(e));
        config.auth.issuer = Some(demo.issuer.clone());
        if config.callbacks.secrets.is_empty() {
            config.callbacks.secrets = vec![demo.callback_secret.clone()];
        }
        Some(demo)
    } else {
        None
    };
    let gw = gateway::build_with(&config, gateway::install_metrics(), demo.as_ref())
        .await
        .unwrap_or_else(|e| fail(e));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .unwrap_or_else(|e| fail(format!("cannot listen on {}: {e}", config.listen)));
    let local = listener.local_addr().unwrap_or(config.listen);
    println!(
        "gateway ({}) listening on http://{local}",
        config.gateway_type.as_str()
    );
    println!("upstream: {}", gateway::config::redact_url(&gw.upstream));
    for line in &gw.backends {
        println!("{line}");
    }
    if let Some(demo) = &demo {
        print_demo(demo, &gw, local)
            .await
            .unwrap_or_else(|e| fail(e));
    }

    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        println!("gateway: shutting down, finishing in-flight requests");
    };
    if let Err(e) = gateway::serve(listener, gw.service.clone(), shutdown).await {
        fail(format!("server error: {e}"));
    }
    let report = gw.shutdown(Duration::from_secs(10)).await;
    println!("gateway: audit writer drained: {report:?}");
    println!("gateway: stopped");
}

async fn print_demo(
    demo: &DemoAuth,
    gw: &gateway::Gateway,
    addr: std::net::SocketAddr,
) -> Result<(), String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let base = format!("http://{addr}");
    println!("\n=== demo mode: ephemeral keys, nothing here is secret or durable ===");
    println!(
        "JWKS: {base}/.well-known/jwks.json (issuer {})\n",
        demo.issuer
    );
    for user in DEMO_USERS {
        let token = demo.token(user, now, 3600)?;
        let what = if user.trial {
            "trial user, POST is a task"
        } else {
            user.roles[0]
        };
        let (method, extra) = if user.trial {
            ("POST", " -H 'content-type: application/json' -d '{}'")
        } else {
            ("GET", "")
        };
        println!("# {} ({what})", user.user_id);
        println!(
            "curl -i -X {method} {base}/api/v1/agents -H 'Authorization: Bearer {token}'{extra}\n"
        );
    }
    let path = "/api/npu/status";
    let headers = demo.service_headers("GET", path)?;
    let flags: String = headers
        .iter()
        .map(|(k, v)| format!(" -H '{k}: {v}'"))
        .collect();
    println!("# signed service request (service-only path; valid once, for 5 minutes)");
    println!("curl -i {base}{path}{flags}\n");
    if let Some(jobs) = &gw.jobs {
        jobs.create_job("job-demo-1", "queued")
            .await
            .map_err(|e| format!("demo job: {e}"))?;
        println!("# job callback (send it twice: 204, then 200 replay)");
        println!(
            "curl -i -X POST {base}/internal/jobs/job-demo-1/status -H 'X-Callback-Secret: {}' \
             -H 'content-type: application/json' \
             -d '{{\"event_id\":\"evt-1\",\"status\":\"dispatched\",\"occurred_at\":\"2026-01-01T00:00:00Z\"}}'\n",
            demo.callback_secret
        );
    }
    Ok(())
}
