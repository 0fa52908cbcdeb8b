//! Readiness checks for `/ready`: the backends the gateway was configured with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use gw_auth::AuthLayer;

use crate::config::Config;
use crate::ops::ReadyCheck;

type Check<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Key sets older than this make the gateway not ready (JWKS refresh failing for long).
pub const MAX_KEY_SET_AGE: Duration = Duration::from_secs(3600);

/// How long one backend check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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
