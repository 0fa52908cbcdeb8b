//! The server side of the HTTP load benchmark (`benches/load/run.sh`).
//!
//! ```text
//! load-server --mode bare|chain|chain-backends [--listen 127.0.0.1:0] [--alg rs256|eddsa]
//!             [--tokens 16] [--token-file load-tokens.txt] [--auth-cache 10000]
//!             [--audit-batch 100] [--audit-spool DIR] [--workers N]
//!             [--metrics prometheus|none] [--upto LAYER]
//! load-server verify-rate [--alg rs256|eddsa] [--seconds 2]
//! load-server profile [--requests 20000] [--auth-cache 10000] [--metrics prometheus|none]
//! ```
//!
//! It writes a pool of `--tokens` distinct bearer tokens (one per line) to `--token-file`,
//! prints `listening http://ADDR` and serves until SIGTERM or SIGINT. `chain-backends`
//! uses Redis (`REDIS_URL`) and PostgreSQL (`DATABASE_URL`) under a key prefix and a schema
//! of its own, and on shutdown checks that the audit table holds exactly one row per
//! answered request, then drops both. `--auth-cache 0` disables the verified-token cache,
//! so every request verifies its signature. `--upto audit|auth|service-auth|rbac|policy`
//! cuts the chain after that layer (Problem and Audit always run; the default, `budget`,
//! is the whole chain), to see what each layer costs.
//!
//! `profile` sends `--requests` in-process requests with one token through the chain with
//! embedded backends on a current-thread runtime, for a profiler:
//! `valgrind --tool=callgrind target/release/load-server profile --requests 20000`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use gw_benches::load::{Alg, CountingSink, ISSUER, Upto, bare_service, build_chain, chain_config};
use tokio::signal::unix::{SignalKind, signal};

struct Args {
    mode: String,
    listen: String,
    alg: Alg,
    tokens: usize,
    token_file: String,
    auth_cache: usize,
    seconds: f64,
    audit_batch: Option<usize>,
    audit_spool: Option<String>,
    requests: u64,
    workers: Option<usize>,
    metrics: bool,
    upto: Upto,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        mode: String::new(),
        listen: "127.0.0.1:0".into(),
        alg: Alg::Rs256,
        tokens: 16,
        token_file: "load-tokens.txt".into(),
        auth_cache: 10_000,
        seconds: 2.0,
        audit_batch: None,
        audit_spool: None,
        requests: 20_000,
        workers: None,
        metrics: true,
        upto: Upto::Budget,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "verify-rate" | "profile" => args.mode = a.clone(),
            "--requests" => {
                args.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?
            }
            "--mode" => args.mode = value()?,
            "--listen" => args.listen = value()?,
            "--alg" => args.alg = value()?.parse()?,
            "--tokens" => args.tokens = value()?.parse().map_err(|e| format!("--tokens: {e}"))?,
            "--token-file" => args.token_file = value()?,
            "--auth-cache" => {
                args.auth_cache = value()?.parse().map_err(|e| format!("--auth-cache: {e}"))?
            }
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--audit-batch" => {
                args.audit_batch = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--audit-batch: {e}"))?,
                )
            }
            "--audit-spool" => args.audit_spool = Some(value()?),
            "--workers" => {
                args.workers = Some(value()?.parse().map_err(|e| format!("--workers: {e}"))?)
            }
            "--upto" => args.upto = value()?.parse()?,
            "--metrics" => {
                args.metrics = match value()?.as_str() {
                    "prometheus" => true,
                    "none" => false,
                    other => return Err(format!("--metrics {other:?}: prometheus or none")),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("load-server: {e}");
            return ExitCode::from(2);
        }
    };
    if args.mode == "verify-rate" {
        return match gw_benches::load::verify_rate(args.alg, Duration::from_secs_f64(args.seconds))
        {
            Ok((rate, n)) => {
                println!("verify {:?}: {rate:.0}/s ({n} in one thread)", args.alg);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("load-server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // The layers count their outcomes through the `metrics` facade; the gateway installs
    // a Prometheus recorder, so the bench does too unless told otherwise.
    if args.metrics {
        gateway::install_metrics();
    }
    if args.mode == "profile" {
        return match profile(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("load-server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build().expect("tokio runtime");
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `profile`: the in-process chain, `args.requests` times, one cached token.
fn profile(args: &Args) -> Result<(), String> {
    use tower::ServiceExt as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let chain = rt.block_on(build_chain(
        &chain_config(args.alg),
        args.auth_cache,
        args.upto,
    ))?;
    // One service called request after request, as a connection calls its clone.
    let mut service = chain.service.clone();
    let token = gw_benches::load::token_pool(args.alg, 1, gw_benches::load::now(), 3_600)?;
    let bearer = format!("Bearer {}", token[0]);
    let started = std::time::Instant::now();
    for _ in 0..args.requests {
        let req = http::Request::get(gw_benches::load::ROUTE)
            .header("authorization", &bearer)
            .body(axum::body::Body::empty())
            .map_err(|e| e.to_string())?;
        let Ok(res) = rt.block_on((&mut service).oneshot(req));
        if res.status() != 200 {
            return Err(format!("status {}", res.status()));
        }
    }
    let took = started.elapsed();
    rt.block_on(chain.audit.shutdown(Duration::from_secs(5)));
    println!(
        "profile: {} requests in {:.3}s ({:.2} µs each)",
        args.requests,
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / args.requests as f64
    );
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now; the future completes on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static, String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

async fn run(args: Args) -> Result<(), String> {
    let pool = gw_benches::load::token_pool(args.alg, args.tokens, gw_benches::load::now(), 3_600)?;
    let mut file =
        std::fs::File::create(&args.token_file).map_err(|e| format!("{}: {e}", args.token_file))?;
    for t in &pool {
        writeln!(file, "Bearer {t}").map_err(|e| format!("{}: {e}", args.token_file))?;
    }
    drop(file);

    let run = format!(
        "{}_{}",
        std::process::id(),
        gw_benches::load::now() % 1_000_000
    );
    let mut config = chain_config(args.alg);
    let (service, chain) = match args.mode.as_str() {
        "bare" => (bare_service(), None),
        "chain" => {
            let chain = build_chain(&config, args.auth_cache, args.upto).await?;
            (chain.service.clone(), Some(chain))
        }
        "chain-backends" => {
            config.redis_url = Some(env_or("REDIS_URL", "redis://127.0.0.1:6379"));
            config.database_url = Some(env_or(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/test",
            ));
            config.redis_prefix = format!("gwload:{run}:");
            config.audit.schema = format!("gwload_audit_{run}");
            config.audit.flush_interval_ms = 200;
            if let Some(n) = args.audit_batch {
                config.audit.batch_size = n;
            }
            config.audit.spool_dir = args.audit_spool.clone();
            let chain = build_chain(&config, args.auth_cache, args.upto).await?;
            (chain.service.clone(), Some(chain))
        }
        other => return Err(format!("--mode {other:?}: bare, chain or chain-backends")),
    };

    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "listening http://{addr} mode={} alg={:?} tokens={} auth-cache={} iss={ISSUER}",
        args.mode, args.alg, args.tokens, args.auth_cache
    );
    let _ = std::io::stdout().flush();
    gateway::serve(listener, service, shutdown)
        .await
        .map_err(|e| format!("serve: {e}"))?;

    let Some(chain) = chain else {
        println!("stopped");
        return Ok(());
    };
    // Let the writer catch up (queue and disk spool replayed) before draining it.
    let waited = std::time::Instant::now();
    while (chain.audit.queued() > 0 || chain.audit.spool_segments() > 0)
        && waited.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "audit: caught up in {:.1}s (queued={}, spool segments={})",
        waited.elapsed().as_secs_f64(),
        chain.audit.queued(),
        chain.audit.spool_segments()
    );
    let report = chain.audit.shutdown(Duration::from_secs(60)).await;
    let stats = chain.audit.stats();
    let answered = chain.answered.get();
    let rows = match (&chain.sink, &config.database_url) {
        (Some(sink), _) => CountingSink::count(sink),
        (None, Some(url)) => {
            let rows = count_rows_and_clean(url, &config.audit.schema).await;
            clean_redis(
                config.redis_url.as_deref().unwrap_or_default(),
                &config.redis_prefix,
            )
            .await?;
            rows?
        }
        (None, None) => unreachable!("a chain has a sink or a database"),
    };
    // Every answered request must have its row. A request the client abandoned at the end
    // of the run (wrk closes its connections) is audited without being answered: an extra
    // row, not a lost one.
    let lost = answered.saturating_sub(rows);
    println!(
        "audit: answered={answered} rows={rows} lost={lost} abandoned={} written={} dropped={} spooled={} report={report:?}",
        rows.saturating_sub(answered),
        stats.written,
        stats.dropped,
        stats.spooled
    );
    if lost > 0 || stats.dropped > 0 {
        return Err(format!(
            "audit rows {rows} for {answered} answered requests ({} records dropped)",
            stats.dropped
        ));
    }
    Ok(())
}

async fn count_rows_and_clean(url: &str, schema: &str) -> Result<u64, String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    tokio::spawn(conn);
    let count = client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.gateway_audit_logs"),
            &[],
        )
        .await
        .map(|row| row.get::<_, i64>(0) as u64)
        .map_err(|e| format!("count audit rows: {e}"));
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .map_err(|e| format!("drop schema {schema}: {e}"))?;
    count
}

async fn clean_redis(url: &str, prefix: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| format!("redis: {e}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("redis: {e}"))?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("redis KEYS: {e}"))?;
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("redis DEL: {e}"))?;
    }
    Ok(())
}
