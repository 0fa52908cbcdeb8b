//! `gateway`: the example gw gateway binary. See `--help`.

use std::path::PathBuf;

use gateway::Config;

const USAGE: &str = "\
usage: gateway [--config FILE] [--listen ADDR]

  --config FILE   TOML configuration (see docs/configuration.md)
  --listen ADDR   listen address (env GW_LISTEN, default 127.0.0.1:8080)

Environment variables GW_* override the file (docs/configuration.md).";

struct Args {
    config: Option<PathBuf>,
    listen: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        config: None,
        listen: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => out.config = Some(args.next().ok_or("--config needs a file")?.into()),
            "--listen" => out.listen = Some(args.next().ok_or("--listen needs an address")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
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
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    if let Some(listen) = args.listen {
        env.push(("GW_LISTEN".into(), listen));
    }
    let config = Config::load(args.config.as_deref(), env).unwrap_or_else(|e| fail(e));

    let gw = gateway::build(&config, gateway::install_metrics())
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
    println!("upstream: {}", gw.upstream);

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
    if let Err(e) = gateway::serve(listener, gw.service, shutdown).await {
        fail(format!("server error: {e}"));
    }
    println!("gateway: stopped");
}
