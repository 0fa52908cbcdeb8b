//! Readiness checks for `/ready`: the backends the gateway was configured with.
//!
//! `/ready` needs no credentials, and a Redis or PostgreSQL check opens a connection, so
//! [`Readiness`] runs the checks at most once per [`CACHE_TTL`] and one run at a time: a
//! flood of probes costs one set of connections per second, not one per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gw_auth::AuthLayer;
use serde_json::{Value, json};

use crate::config::Config;
use crate::ops::ReadyCheck;

type Check<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Key sets older than this make the gateway not ready (JWKS refresh failing for long).
pub const MAX_KEY_SET_AGE: Duration = Duration::from_secs(3600);

/// How long one backend check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a readiness report is served before the checks run again.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// The outcome of one run of every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Every check passed.
    pub ready: bool,
    /// `{"status": "ready" | "not_ready", "checks": {name: {"status", "reason"?}}}`.
    pub body: Value,
}

/// The readiness checks behind a short cache and a single flight: at most one run at a
/// time, and its report served to every caller for `ttl`.
pub struct Readiness {
    checks: Vec<Arc<dyn ReadyCheck>>,
    ttl: Duration,
    last: Mutex<Option<(Instant, Report)>>,
    running: tokio::sync::Mutex<()>,
}

impl Readiness {
    /// `checks`, each report reused for `ttl` ([`CACHE_TTL`] in the gateway).
    pub fn new(checks: Vec<Arc<dyn ReadyCheck>>, ttl: Duration) -> Self {
        Self {
            checks,
            ttl,
            last: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The current report: the cached one while fresh, else the result of the run in
    /// progress (waiting for it) or of a new run.
    pub async fn report(&self) -> Report {
        if let Some(report) = self.fresh() {
            return report;
        }
        let _running = self.running.lock().await;
        // A run that finished while this caller waited is as good as a new one.
        if let Some(report) = self.fresh() {
            return report;
        }
        let report = self.run().await;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), report.clone()));
        report
    }

    fn fresh(&self) -> Option<Report> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, report)| report.clone())
    }

    async fn run(&self) -> Report {
        let mut checks = serde_json::Map::new();
        let mut ready = true;
        for check in &self.checks {
            let result = check.check().await;
            ready &= result.is_ok();
            checks.insert(
                check.name().to_owned(),
                match result {
                    Ok(()) => json!({"status": "ok"}),
                    Err(why) => json!({"status": "failing", "reason": why}),
                },
            );
        }
        let status = if ready { "ready" } else { "not_ready" };
        Report {
            ready,
            body: json!({"status": status, "checks": checks}),
        }
    }
}

/// The checks for `config`: JWKS freshness when keys come from a JWKS URL, Redis and
/// PostgreSQL when configured.
pub fn checks(config: &Config, auth: AuthLayer) -> Vec<Arc<dyn ReadyCheck>> {
    let mut checks: Vec<Arc<dyn ReadyCheck>> = Vec::new();
    if config.auth.jwks_url.is_some() {
        checks.push(Arc::new(JwksFresh(auth)));
    }
    if let Some(url) = &config.redis_url {
        checks.push(Arc::new(RedisPing(url.clone())));
    }
    if let Some(url) = &config.database_url {
        checks.push(Arc::new(PostgresPing(url.clone())));
    }
    checks
}

struct JwksFresh(AuthLayer);

impl ReadyCheck for JwksFresh {
    fn name(&self) -> &str {
        "jwks"
    }

    fn check(&self) -> Check<'_> {
        Box::pin(async move {
            match self.0.key_set_age() {
                None => Err("no key set loaded yet".into()),
                Some(age) if age > MAX_KEY_SET_AGE => {
                    Err(format!("key set is {}s old", age.as_secs()))
                }
                Some(_) => Ok(()),
            }
        })
    }
}

struct RedisPing(String);

impl ReadyCheck for RedisPing {
    fn name(&self) -> &str {
        "redis"
    }

    fn check(&self) -> Check<'_> {
        Box::pin(async move {
            let ping = async {
                let client = redis::Client::open(self.0.as_str()).map_err(|e| e.to_string())?;
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            };
            timed(ping).await.map_err(|_| "unreachable".to_owned())
        })
    }
}

struct PostgresPing(String);

impl ReadyCheck for PostgresPing {
    fn name(&self) -> &str {
        "postgres"
    }

    fn check(&self) -> Check<'_> {
        Box::pin(async move {
            let ping = async {
                let (client, conn) = tokio_postgres::connect(&self.0, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                let task = tokio::spawn(conn);
                let result = client.simple_query("SELECT 1").await.map(drop);
                drop(client);
                let _ = task.await;
                result.map_err(|e| e.to_string())
            };
            timed(ping).await.map_err(|_| "unreachable".to_owned())
        })
    }
}

/// Runs `f` with [`CHECK_TIMEOUT`]; the error text is logged, not served.
async fn timed(f: impl Future<Output = Result<(), String>>) -> Result<(), ()> {
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(())
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A check that takes 50 ms, counts its runs and fails when told to.
    struct Counting(Arc<AtomicUsize>, bool);

    impl ReadyCheck for Counting {
        fn name(&self) -> &str {
            "counting"
        }

        fn check(&self) -> Check<'_> {
            Box::pin(async move {
                self.0.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                if self.1 { Ok(()) } else { Err("down".into()) }
            })
        }
    }

    fn readiness(ok: bool, ttl: Duration) -> (Arc<Readiness>, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let check: Arc<dyn ReadyCheck> = Arc::new(Counting(runs.clone(), ok));
        (Arc::new(Readiness::new(vec![check], ttl)), runs)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_probes_runs_the_checks_once() {
        let (readiness, runs) = readiness(false, Duration::from_secs(60));
        let probes: Vec<_> = (0..200)
            .map(|_| {
                let r = readiness.clone();
                tokio::spawn(async move { r.report().await })
            })
            .collect();
        for probe in probes {
            let report = probe.await.unwrap();
            assert!(!report.ready);
            assert_eq!(report.body["checks"]["counting"]["reason"], "down");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        readiness.report().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_report_is_refreshed_after_the_ttl() {
        let (readiness, runs) = readiness(true, Duration::from_millis(200));
        let first = readiness.report().await;
        assert!(first.ready);
        assert_eq!(first.body["status"], "ready");
        assert_eq!(readiness.report().await, first);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        readiness.report().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
