//! The layer over a real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`); each test
//! uses its own key prefix and deletes its keys at the end.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use common::scenarios::{self, Backend};
use common::*;
use gw_budget::{
    BudgetLayer, Period, PeriodKind, RedisSpendStore, ScopeKey, SpendStore, UtcOffset,
};
use gw_core::{FailMode, Outcome};
use gw_problem::Problem;
use http::StatusCode;

fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

struct Redis {
    prefix: String,
    tag: Option<String>,
}

impl Redis {
    fn new() -> Self {
        Self {
            prefix: format!("gwtest:budget:{:016x}:", rand::random::<u64>()),
            tag: None,
        }
    }

    /// Keys in one cluster hash slot (`{prefix}{tag}:...`).
    fn tagged(tag: &str) -> Self {
        Self {
            tag: Some(tag.to_owned()),
            ..Self::new()
        }
    }

    async fn cleanup(self) {
        let client = redis::Client::open(url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

impl Backend for Redis {
    fn store(&self) -> Arc<dyn SpendStore> {
        // A new client each time: a separate replica sharing the counters.
        let store = RedisSpendStore::open(&url()).unwrap().prefix(&self.prefix);
        match &self.tag {
            Some(tag) => Arc::new(store.hash_tag(tag)),
            None => Arc::new(store),
        }
    }
}

macro_rules! scenario {
    ($name:ident, $($flavor:tt)*) => {
        #[tokio::test($($flavor)*)]
        async fn $name() {
            let b = Redis::new();
            scenarios::$name(&b).await;
            b.cleanup().await;
        }
    };
}

scenario!(
    concurrency_is_exact,
    flavor = "multi_thread",
    worker_threads = 2
);
scenario!(
    one_alert_per_threshold_under_concurrency,
    flavor = "multi_thread",
    worker_threads = 2
);
scenario!(periods_roll_over, flavor = "current_thread");
scenario!(alert_levels_and_headers, flavor = "current_thread");
scenario!(settles_to_upstream_cost, flavor = "current_thread");
scenario!(releases_on_upstream_failure, flavor = "current_thread");
scenario!(
    request_dropped_after_the_handoff_stays_charged,
    flavor = "current_thread"
);
scenario!(exceeded_problem, flavor = "current_thread");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_exact_with_a_cluster_hash_tag() {
    let b = Redis::tagged("budget");
    scenarios::concurrency_is_exact(&b).await;
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", b.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{}{{budget}}:", b.prefix)))
    );
    b.cleanup().await;
}

#[tokio::test]
async fn keys_follow_the_reference_names_with_period_and_expiry() {
    let b = Redis::new();
    let store = RedisSpendStore::open(&url()).unwrap().prefix(&b.prefix);
    let svc = service(
        BudgetLayer::new(store.clone())
            .clock(Arc::new(clock()))
            .agent_id(agents())
            .customer_limit(1_000_000),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut r = req("/api/v1/agents/k1/run");
    r.extensions_mut().insert(principal("c1"));
    assert_eq!(call(&svc, r).await.status(), StatusCode::OK);

    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for key in [
        format!("{}platform_budget:2026-11", b.prefix),
        format!("{}agent_budgets:k1:2026-11-22", b.prefix),
        format!("{}customer_budgets:c1:2026-11", b.prefix),
    ] {
        let spent: Option<u64> = redis::cmd("HGET")
            .arg(&key)
            .arg("spent")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(spent, Some(1_000), "{key}");
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            ttl > 7 * 86_400,
            "{key} expires after its period plus retention: {ttl}"
        );
    }
    let day = Period::containing(PeriodKind::Day, NOW as i64, UtcOffset::UTC);
    assert_eq!(
        store.key(&ScopeKey::agent("k1", day)),
        format!("{}agent_budgets:k1:2026-11-22", b.prefix)
    );
    let tagged = RedisSpendStore::open(&url())
        .unwrap()
        .prefix("gw:")
        .hash_tag("budget");
    assert_eq!(
        tagged.key(&ScopeKey::agent("k1", day)),
        "gw:{budget}:agent_budgets:k1:2026-11-22"
    );
    b.cleanup().await;
}

fn unreachable() -> RedisSpendStore {
    // Bind a free port, then close it: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    RedisSpendStore::open(&format!("redis://127.0.0.1:{port}")).unwrap()
}

#[tokio::test]
async fn redis_down_fails_open_by_default() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = service(
        BudgetLayer::new(unreachable()).agent_id(agents()),
        calls.clone(),
    );
    let (r, d) = with_decisions(req("/api/v1/agents/a1/run"));
    let res = call(&svc, r).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("x-budget-alert-level").is_none());
    let log = d.snapshot();
    assert_eq!(log.decisions[0].outcome, Outcome::FailOpen);
    assert_eq!(
        log.decisions[0].reason.as_deref(),
        Some("budget-store-unavailable")
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redis_down_fails_closed_when_configured() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = service(
        BudgetLayer::new(unreachable()).fail_mode(FailMode::Closed),
        calls.clone(),
    );
    let (r, d) = with_decisions(req("/api/v1/agents/a1/run"));
    let res = call(&svc, r).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.extensions().get::<Problem>().unwrap().reason_code(),
        "budget-store-unavailable"
    );
    assert_eq!(json(res).await["code"], "budget-store-unavailable");
    assert_eq!(d.snapshot().decisions[0].outcome, Outcome::FailClosed);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unreachable_redis_is_not_dialled_for_every_request() {
    let store = unreachable();
    let key = ScopeKey::platform(Period::containing(
        PeriodKind::Month,
        NOW as i64,
        UtcOffset::UTC,
    ));
    let first = store.spent(&key).await.unwrap_err();
    assert!(first.is_unavailable(), "{first}");
    assert!(!first.message.contains("backing off"));
    let second = store.spent(&key).await.unwrap_err();
    assert!(second.is_unavailable());
    assert!(second.message.contains("backing off"), "{second}");
    // Without a backoff every call dials again.
    let eager = unreachable().reconnect_backoff(std::time::Duration::ZERO);
    for _ in 0..2 {
        let e = eager.spent(&key).await.unwrap_err();
        assert!(
            e.is_unavailable() && !e.message.contains("backing off"),
            "{e}"
        );
    }
}

/// A stand-in Redis that completes the connection handshake (`+OK` to `CLIENT`,
/// `SELECT`, `HELLO`, `+PONG` to `PING`) and answers every other command with the error
/// line `-{error}`.
async fn redis_answering(error: &'static str) -> RedisSpendStore {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    let mut reply = Vec::new();
                    while let Some((name, used)) = resp_command(&buf) {
                        buf.drain(..used);
                        reply.extend_from_slice(match name.as_str() {
                            "CLIENT" | "SELECT" | "HELLO" => b"+OK\r\n".as_slice(),
                            "PING" => b"+PONG\r\n",
                            _ => &[],
                        });
                        if !matches!(name.as_str(), "CLIENT" | "SELECT" | "HELLO" | "PING") {
                            reply.extend_from_slice(format!("-{error}\r\n").as_bytes());
                        }
                    }
                    if socket.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    RedisSpendStore::open(&format!("redis://127.0.0.1:{port}")).unwrap()
}

/// The upper-cased name of the first complete RESP command in `buf`, and its length.
fn resp_command(buf: &[u8]) -> Option<(String, usize)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let (head, mut at) = line(buf, 0)?;
    let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut name = String::new();
    for i in 0..n {
        let (len, start) = line(buf, at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        if buf.len() < start + len + 2 {
            return None;
        }
        if i == 0 {
            name = String::from_utf8_lossy(&buf[start..start + len]).to_ascii_uppercase();
        }
        at = start + len + 2;
    }
    Some((name, at))
}

/// Redis answering that it cannot serve right now (restarting, failing over, out of
/// memory, busy) is an outage: fail-open admits, fail-closed refuses.
#[tokio::test]
async fn a_redis_that_cannot_serve_right_now_is_an_outage() {
    for error in [
        "LOADING Redis is loading the dataset in memory",
        "READONLY You can't write against a read only replica.",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "OOM command not allowed when used memory > 'maxmemory'.",
        "BUSY Redis is busy running a script.",
        "MISCONF Redis is configured to save RDB snapshots, but it's unable to persist.",
        "NOREPLICAS Not enough good replicas to write.",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let open = service(
            BudgetLayer::new(redis_answering(error).await).agent_id(agents()),
            calls.clone(),
        );
        let (r, d) = with_decisions(req("/api/v1/agents/a1/run"));
        let res = call(&open, r).await;
        assert_eq!(res.status(), StatusCode::OK, "{error}");
        assert_eq!(
            d.snapshot().decisions[0].outcome,
            Outcome::FailOpen,
            "{error}"
        );
        let closed = service(
            BudgetLayer::new(redis_answering(error).await).fail_mode(FailMode::Closed),
            calls.clone(),
        );
        let res = call(&closed, req("/api/v1/agents/a1/run")).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{error}");
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{error}"
        );
    }
}

/// Answers that mean a misconfiguration are refused even in fail-open mode.
#[tokio::test]
async fn a_misconfigured_redis_is_refused_even_when_failing_open() {
    for error in [
        "CROSSSLOT Keys in request don't hash to the same slot",
        "ERR Error running script (call to f_1234): @user_script:3: bad argument",
        "NOPERM this user has no permissions to run the 'evalsha' command",
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = service(
            BudgetLayer::new(redis_answering(error).await).agent_id(agents()),
            calls.clone(),
        );
        let (r, d) = with_decisions(req("/api/v1/agents/a1/run"));
        let res = call(&svc, r).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{error}");
        assert_eq!(
            d.snapshot().decisions[0].outcome,
            Outcome::FailClosed,
            "{error}"
        );
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{error}"
        );
    }
}
