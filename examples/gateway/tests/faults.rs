//! Backend faults against the composed gateway: a Redis the test starts itself is stopped
//! mid-run and started again. Each layer follows its fail mode while it is down (trial and
//! budget open by default, budget closed when configured, the svc-hmac nonce cache closed),
//! the gateway keeps answering, and it recovers by itself when Redis is back. The shared
//! Redis is never touched.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::raw::*;
use common::{now, serve_on_loopback};
use gateway::build;
use gw_core::FailMode;

/// A redis-server this test owns, on its own port.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    async fn start(port: u16) -> Self {
        let redis = Self {
            child: Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed for the fault test"),
            port,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("own redis-server did not start on port {port}"); // Drop stops it
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn boot(fx: &Fixture, redis: &str, budget: FailMode) -> SocketAddr {
    let mut config = fx.config();
    config.redis_url = Some(redis.into());
    config.redis_prefix = format!("gwfault:{}:", std::process::id());
    config.budget.fail_mode = budget;
    let gw = build(&config, None).await.unwrap();
    serve_on_loopback(&gw).await
}

fn signed(i: usize) -> Case {
    case("signed service call", "GET", "/api/npu/status").hs(service_headers(
        "GET",
        "/api/npu/status",
        b"",
        now(),
        &format!("fault-nonce-{i:016}-{}", now()),
        SERVICE_SECRET,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_follows_fail_modes_and_recovers() {
    let fx = Fixture::new();
    let port = OwnRedis::free_port();
    let redis = OwnRedis::start(port).await;
    let open = boot(&fx, &redis.url(), FailMode::Open).await;
    let closed = boot(&fx, &redis.url(), FailMode::Closed).await;
    let trial = fx.bearer("trial");
    let dev = fx.bearer("dev");
    let task = |name: &'static str| {
        case(name, "POST", "/api/v1/agents")
            .h("authorization", &trial)
            .body("{}")
    };
    let read = |name: &'static str| case(name, "GET", "/api/v1/agents").h("authorization", &dev);

    // Up: the trial counter lives in Redis (limit 1), budgets and nonces too.
    run(open, &[task("up: trial task").expect_status(200)]).await;
    run(
        open,
        &[task("up: second trial task").expect(429, "trial-limit-exceeded")],
    )
    .await;
    run(closed, &[read("up: budgeted read").expect_status(200)]).await;
    run(open, &[signed(0).expect_status(200)]).await;

    redis.stop();

    // Down: the gateway answers, each layer per its fail mode.
    let down = [
        case("down: health", "GET", "/health").expect_status(200),
        // Trial (open by default) and budget (open) let the task through: the counter
        // that said 429 a moment ago is not reachable.
        task("down: trial task, fail-open").expect_status(200),
        read("down: read, budget fail-open").expect_status(200),
        // The nonce cache fails closed: no replay protection, no service call.
        signed(1).expect(503, "nonce-store-unavailable"),
        // Rejections that need no backend still come first.
        case("down: no token", "GET", "/api/v1/agents").expect(401, "unauthorized"),
    ];
    for c in &down {
        let f = failures(open, std::slice::from_ref(c)).await;
        assert!(f.is_empty(), "{f:?}");
    }
    let f = failures(
        closed,
        &[read("down: read, budget fail-closed").expect(503, "budget-store-unavailable")],
    )
    .await;
    assert!(f.is_empty(), "{f:?}");

    // Back (a fresh, empty Redis on the same port): every layer uses it again without a
    // restart of the gateway. The empty store shows in the trial counter: one task again.
    let _redis = OwnRedis::start(port).await;
    let mut recovered = false;
    for _ in 0..40 {
        let r = send_raw(closed, &read("back: budgeted read")).await;
        if r.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "budget store did not recover");
    let mut recovered = false;
    for i in 0..40 {
        let r = send_raw(open, &signed(100 + i)).await;
        if r.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "nonce cache did not recover");
    run(
        open,
        &[
            task("back: trial task").expect_status(200),
            task("back: second trial task").expect(429, "trial-limit-exceeded"),
        ],
    )
    .await;
}

/// A TCP forwarder this test owns, standing between the gateway and the shared
/// PostgreSQL: stopping it makes PostgreSQL unreachable for the gateway only.
struct Forwarder {
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(port: u16, target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) cuts every open connection.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self { task }
    }

    fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The shared PostgreSQL's address and the URL with it replaced by `127.0.0.1:port`.
fn via_port(url: &str, port: u16) -> (SocketAddr, String) {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => panic!("DATABASE_URL must be a TCP URL"),
    };
    let pg_port = config.get_ports().first().copied().unwrap_or(5432);
    let target = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), pg_port))
        .unwrap()
        .next()
        .unwrap();
    let user = config.get_user().unwrap_or("postgres");
    let db = config.get_dbname().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    (
        target,
        format!("postgres://{user}{password}@127.0.0.1:{port}/{db}"),
    )
}

async fn audit_rows(client: &tokio_postgres::Client, schema: &str, like: &str) -> i64 {
    client
        .query_one(
            &format!(
                "SELECT count(*) FROM {schema}.gateway_audit_logs WHERE correlation_id LIKE $1"
            ),
            &[&like],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_spools_audit_and_replays_everything() {
    let fx = Fixture::new();
    let run = format!("{}{}", std::process::id(), now() % 1_000_000);
    let schema = format!("gwfault_audit_{run}");
    let jobs_schema = format!("gwfault_jobs_{run}");
    let port = OwnRedis::free_port();
    let (target, url) = via_port(&database_url(), port);
    let forwarder = Forwarder::start(port, target).await;

    let spool = std::env::temp_dir().join(format!("gw-fault-spool-{run}"));
    let mut config = fx.config();
    config.database_url = Some(url);
    config.audit.schema = schema.clone();
    config.audit.flush_interval_ms = 50;
    config.audit.spool_dir = Some(spool.display().to_string());
    config.callbacks.schema = jobs_schema.clone();
    let gw = build(&config, None).await.unwrap();
    let addr = serve_on_loopback(&gw).await;
    let (client, conn) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);

    let dev = fx.bearer("dev");
    let request = |phase: &str, i: usize| {
        let c = if i.is_multiple_of(2) {
            case("audited read", "GET", "/api/v1/agents")
                .h("authorization", &dev)
                .expect_status(200)
        } else {
            case("audited rejection", "GET", "/api/v1/agents").expect(401, "unauthorized")
        };
        c.h("x-correlation-id", format!("pgfault-{run}-{phase}-{i}"))
    };

    // Up: rows arrive.
    let up: Vec<Case> = (0..4).map(|i| request("up", i)).collect();
    run_cases(addr, &up).await;
    wait_for(&client, &schema, &format!("pgfault-{run}-up-%"), 4).await;

    // Down: the gateway answers as usual, and the records go to the spool.
    forwarder.stop();
    let down: Vec<Case> = (0..10).map(|i| request("down", i)).collect();
    run_cases(addr, &down).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        audit_rows(&client, &schema, &format!("pgfault-{run}-down-%")).await,
        0,
        "PostgreSQL was reachable through the stopped forwarder"
    );
    // After the retries, the batch goes to the spool (a non-empty segment file).
    let spooled = || {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
    let mut bytes = 0;
    for _ in 0..150 {
        bytes = spooled();
        if bytes > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(bytes > 0, "nothing was spooled during the outage");

    // Back: the spool is replayed; every request of every phase has exactly one row.
    let _forwarder = Forwarder::start(port, target).await;
    let after: Vec<Case> = (0..2).map(|i| request("after", i)).collect();
    run_cases(addr, &after).await;
    wait_for(&client, &schema, &format!("pgfault-{run}-down-%"), 10).await;
    wait_for(&client, &schema, &format!("pgfault-{run}-after-%"), 2).await;
    let report = gw.shutdown(Duration::from_secs(10)).await;
    let total = audit_rows(&client, &schema, &format!("pgfault-{run}-%")).await;
    client
        .batch_execute(&format!(
            "DROP SCHEMA {schema} CASCADE; DROP SCHEMA IF EXISTS {jobs_schema} CASCADE"
        ))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&spool);
    assert_eq!(total, 16, "{report:?}");
}

async fn run_cases(addr: SocketAddr, cases: &[Case]) {
    let f = failures(addr, cases).await;
    assert!(f.is_empty(), "{f:?}");
}

/// Polls until `like` has `n` rows (at most 20 s), then checks it is exactly `n`.
async fn wait_for(client: &tokio_postgres::Client, schema: &str, like: &str, n: i64) {
    let mut rows = 0;
    for _ in 0..200 {
        rows = audit_rows(client, schema, like).await;
        if rows >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows, n, "{like}");
}
