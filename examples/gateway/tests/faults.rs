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
