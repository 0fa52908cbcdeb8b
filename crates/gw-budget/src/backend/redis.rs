//! The Redis store: counters shared by every replica. A reserve is one Lua script over
//! all scopes of the request; a settle is one more.
//!
//! Each counter is a hash `{prefix}{scope}:{period}` with the field `spent` (micro-USD)
//! and one field per fired alert (`alert_warning`, `alert_high`, `alert_critical`, set
//! with `HSETNX`, so each fires once across replicas). Keys follow the reference system:
//!
//! - `{prefix}platform_budget:{period}`
//! - `{prefix}agent_budgets:{agent_id}:{period}`
//! - `{prefix}customer_budgets:{customer_id}:{period}`
//!
//! with `{period}` as `2026-11` (months) or `2026-11-22` (days) and an expiry at the end
//! of the period plus a retention time.
//!
//! # Redis Cluster
//!
//! A Lua script may only touch keys of one hash slot. With
//! [`RedisSpendStore::hash_tag`] every key carries the same hash tag (for example
//! `gw:budget:{budget}:agent_budgets:a1:2026-11-22`), so all counters live in one slot and
//! a reserve stays atomic over all scopes; the price is that all budget traffic goes to one
//! shard. Without a hash tag keys spread over slots and the script fails with `CROSSSLOT`
//! on a cluster: per-key atomicity alone could admit a request in one scope and not the
//! other, which this store refuses to do. Standalone Redis and Sentinel need no tag.
//!
//! # Errors
//!
//! Connection failures, timeouts, and answers that say Redis cannot serve right now
//! (`LOADING`, `READONLY`, `MASTERDOWN`, `OOM`, `BUSY`, `MISCONF`, `NOREPLICAS`,
//! `TRYAGAIN`, `CLUSTERDOWN`) are *unavailable*: the layer's fail mode decides.
//! `CROSSSLOT`, script errors, missing permissions and malformed replies are *invalid*:
//! a misconfiguration, refused with 503 in every fail mode.
//!
//! A response timeout does not tell whether the script ran: a reserve that timed out
//! may have charged its estimate, which then stays charged for the period (see the
//! crate docs).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gw_core::BackendError;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, Script};

use super::{
    BoxFuture, Fired, ReserveOutcome, ReserveRequest, SettleOutcome, SettleRequest, SpendStore,
    threshold_amounts,
};
use crate::alert::AlertLevel;
use crate::scope::{Charge, ScopeKey, ScopeKind};

/// ARGV[1] = amount; per key i, ARGV[2+5(i-1)..] = limit, ttl, warning, high, critical
/// (the spend at which each threshold is reached).
/// Returns {0, i, spent, fired_critical} or {1, spent_1, mask_1, spent_2, mask_2, ...}.
const RESERVE: &str = r"
local amount = tonumber(ARGV[1])
local names = {'alert_warning', 'alert_high', 'alert_critical'}
for i = 1, #KEYS do
  local b = 2 + (i - 1) * 5
  local cur = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
  if cur + amount > tonumber(ARGV[b]) then
    local fired = redis.call('HSETNX', KEYS[i], 'alert_critical', '1')
    redis.call('EXPIRE', KEYS[i], ARGV[b + 1])
    return {0, i, cur, fired}
  end
end
local out = {1}
for i = 1, #KEYS do
  local b = 2 + (i - 1) * 5
  local s = redis.call('HINCRBY', KEYS[i], 'spent', amount)
  redis.call('EXPIRE', KEYS[i], ARGV[b + 1])
  local mask = 0
  for j = 1, 3 do
    if s >= tonumber(ARGV[b + 1 + j]) and redis.call('HSETNX', KEYS[i], names[j], '1') == 1 then
      mask = mask + 2 ^ (j - 1)
    end
  end
  out[#out + 1] = s
  out[#out + 1] = mask
end
return out
";

/// ARGV[1] = actual - reserved (may be negative), ARGV[2] = 1 if alerts may fire;
/// per key as in RESERVE. Returns {spent_1, mask_1, ...}.
const SETTLE: &str = r"
local delta = tonumber(ARGV[1])
local names = {'alert_warning', 'alert_high', 'alert_critical'}
local out = {}
for i = 1, #KEYS do
  local b = 3 + (i - 1) * 5
  local s = redis.call('HINCRBY', KEYS[i], 'spent', delta)
  if s < 0 then
    redis.call('HSET', KEYS[i], 'spent', 0)
    s = 0
  end
  redis.call('EXPIRE', KEYS[i], ARGV[b + 1])
  local mask = 0
  if ARGV[2] == '1' then
    for j = 1, 3 do
      if s >= tonumber(ARGV[b + 1 + j]) and redis.call('HSETNX', KEYS[i], names[j], '1') == 1 then
        mask = mask + 2 ^ (j - 1)
      end
    end
  end
  out[#out + 1] = s
  out[#out + 1] = mask
end
return out
";

/// [`SpendStore`] on Redis (standalone, Sentinel, or one slot of a cluster).
///
/// Connects lazily and reconnects after a connection error, so it can be built while
/// Redis is down; calls then fail with an unavailable [`BackendError`].
#[derive(Clone)]
pub struct RedisSpendStore {
    client: Client,
    config: AsyncConnectionConfig,
    conn: Arc<Mutex<Option<MultiplexedConnection>>>,
    down_until: Arc<Mutex<Option<Instant>>>,
    backoff: Duration,
    base: Arc<str>,
    tag: Option<Arc<str>>,
    prefix: Arc<str>,
    retention: i64,
    reserve: Arc<Script>,
    settle: Arc<Script>,
}

impl std::fmt::Debug for RedisSpendStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSpendStore")
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl RedisSpendStore {
    /// A store for the Redis at `url` (`redis://host:port/db`), keys prefixed `gw:budget:`,
    /// 1 s connect and 2 s response timeouts, counters kept 7 days past their period.
    pub fn open(url: &str) -> Result<Self, BackendError> {
        let client =
            Client::open(url).map_err(|e| BackendError::invalid("redis", e.to_string()))?;
        Ok(Self::new(client))
    }

    /// A store using `client`, with the defaults of [`RedisSpendStore::open`].
    pub fn new(client: Client) -> Self {
        Self {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(2))),
            conn: Arc::new(Mutex::new(None)),
            down_until: Arc::new(Mutex::new(None)),
            backoff: Duration::from_millis(500),
            base: "gw:budget:".into(),
            tag: None,
            prefix: "gw:budget:".into(),
            retention: 7 * 86_400,
            reserve: Arc::new(Script::new(RESERVE)),
            settle: Arc::new(Script::new(SETTLE)),
        }
    }

    /// Sets the key prefix (default `gw:budget:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.base = prefix.into().into();
        self.prefix = build_prefix(&self.base, self.tag.as_deref()).into();
        self
    }

    /// Puts every key in hash slot `{tag}` so that multi-scope scripts work on Redis
    /// Cluster (see the [module docs](self)).
    pub fn hash_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into().into());
        self.prefix = build_prefix(&self.base, self.tag.as_deref()).into();
        self
    }

    /// How long counters are kept after their period ends (default 7 days).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// After a failed connect, how long calls fail at once (unavailable) instead of
    /// trying again (default 500 ms), so an outage does not cost every request a connect
    /// timeout.
    pub fn reconnect_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the connect and response timeouts (defaults 1 s and 2 s).
    pub fn timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(response));
        self
    }

    /// The Redis key of counter `key`.
    pub fn key(&self, key: &ScopeKey) -> String {
        let id = key.id.as_deref().unwrap_or("");
        match key.kind {
            ScopeKind::Platform => format!("{}platform_budget:{}", self.prefix, key.period),
            ScopeKind::Agent => format!("{}agent_budgets:{id}:{}", self.prefix, key.period),
            ScopeKind::Customer => {
                format!("{}customer_budgets:{id}:{}", self.prefix, key.period)
            }
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, BackendError> {
        if let Some(c) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(c);
        }
        let now = Instant::now();
        if let Some(until) = *self.down_until.lock().unwrap_or_else(|p| p.into_inner())
            && now < until
        {
            return Err(BackendError::unavailable(
                "redis",
                "backing off after a failed connect",
            ));
        }
        let connected = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await;
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        match connected {
            Ok(c) => {
                *down = None;
                drop(down);
                *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                *down = Some(Instant::now() + self.backoff);
                Err(to_backend(e))
            }
        }
    }

    fn forget_connection_if_broken(&self, e: &RedisError) {
        if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
            *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    fn invocation<'a>(
        &self,
        script: &'a Script,
        charges: &[Charge],
        head: &[i64],
        thresholds: &crate::alert::Thresholds,
        now: i64,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for h in head {
            inv.arg(*h);
        }
        for c in charges {
            let ttl = (c.expires_at.saturating_add(self.retention) - now).max(60);
            inv.key(self.key(&c.key)).arg(c.limit).arg(ttl);
            for amount in threshold_amounts(c.limit, thresholds) {
                inv.arg(amount);
            }
        }
        inv
    }

    async fn run(&self, inv: redis::ScriptInvocation<'_>) -> Result<Vec<i64>, BackendError> {
        let mut conn = self.connection().await?;
        inv.invoke_async(&mut conn).await.map_err(|e| {
            self.forget_connection_if_broken(&e);
            to_backend(e)
        })
    }
}

fn build_prefix(base: &str, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("{base}{{{t}}}:"),
        None => base.to_owned(),
    }
}

/// Classifies a Redis error. Unreachable, timed out, no server found by the sentinels or
/// the cluster, or an answer that it cannot serve right now
/// ([`gw_core::redis_code_is_outage`]: `LOADING`, `READONLY`, `OOM`, `BUSY`,
/// `CLUSTERDOWN`, ...) is an outage (the fail mode applies); `CROSSSLOT`, script errors,
/// permissions and malformed replies stay invalid (a misconfiguration, refused in every
/// fail mode).
fn to_backend(e: RedisError) -> BackendError {
    let no_server = matches!(
        e.kind(),
        ErrorKind::ClusterConnectionNotFound
            | ErrorKind::MasterNameNotFoundBySentinel
            | ErrorKind::NoValidReplicasFoundBySentinel
    );
    if e.is_timeout() {
        BackendError::timeout("redis", e)
    } else if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || no_server
        || e.code().is_some_and(gw_core::redis_code_is_outage)
    {
        BackendError::unavailable("redis", e)
    } else {
        BackendError::invalid("redis", e)
    }
}

fn as_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn unmask(index: usize, mask: i64, fired: &mut Vec<Fired>) {
    for (j, level) in AlertLevel::ALERTING.into_iter().enumerate() {
        if mask & (1 << j) != 0 {
            fired.push(Fired { index, level });
        }
    }
}

fn invalid(what: &str) -> BackendError {
    BackendError::invalid("redis", format!("unexpected {what} script reply"))
}

impl SpendStore for RedisSpendStore {
    fn reserve(&self, req: ReserveRequest) -> BoxFuture<Result<ReserveOutcome, BackendError>> {
        let this = self.clone();
        Box::pin(async move {
            let amount = i64::try_from(req.amount).unwrap_or(i64::MAX);
            let script = this.reserve.clone();
            let inv = this.invocation(&script, &req.charges, &[amount], &req.thresholds, req.now);
            let r = this.run(inv).await?;
            match r.first() {
                Some(0) if r.len() == 4 => {
                    let index = usize::try_from(r[1] - 1).map_err(|_| invalid("reserve"))?;
                    let mut fired = Vec::new();
                    if r[3] == 1 {
                        fired.push(Fired {
                            index,
                            level: AlertLevel::Critical,
                        });
                    }
                    Ok(ReserveOutcome::Rejected {
                        index,
                        spent: as_u64(r[2]),
                        fired,
                    })
                }
                Some(1) if r.len() == 1 + 2 * req.charges.len() => {
                    let mut spent = Vec::with_capacity(req.charges.len());
                    let mut fired = Vec::new();
                    for (i, pair) in r[1..].chunks(2).enumerate() {
                        spent.push(as_u64(pair[0]));
                        unmask(i, pair[1], &mut fired);
                    }
                    Ok(ReserveOutcome::Admitted { spent, fired })
                }
                _ => Err(invalid("reserve")),
            }
        })
    }

    fn settle(&self, req: SettleRequest) -> BoxFuture<Result<SettleOutcome, BackendError>> {
        let this = self.clone();
        Box::pin(async move {
            let delta = i128::from(req.actual) - i128::from(req.reserved);
            let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
            let head = [delta, i64::from(delta > 0)];
            let script = this.settle.clone();
            let inv = this.invocation(&script, &req.charges, &head, &req.thresholds, req.now);
            let r = this.run(inv).await?;
            if r.len() != 2 * req.charges.len() {
                return Err(invalid("settle"));
            }
            let mut spent = Vec::with_capacity(req.charges.len());
            let mut fired = Vec::new();
            for (i, pair) in r.chunks(2).enumerate() {
                spent.push(as_u64(pair[0]));
                unmask(i, pair[1], &mut fired);
            }
            Ok(SettleOutcome { spent, fired })
        })
    }

    fn spent(&self, key: &ScopeKey) -> BoxFuture<Result<u64, BackendError>> {
        let this = self.clone();
        let key = self.key(key);
        Box::pin(async move {
            let mut conn = this.connection().await?;
            let v: Option<i64> = redis::cmd("HGET")
                .arg(&key)
                .arg("spent")
                .query_async(&mut conn)
                .await
                .map_err(|e| {
                    this.forget_connection_if_broken(&e);
                    to_backend(e)
                })?;
            Ok(v.map_or(0, as_u64))
        })
    }
}
