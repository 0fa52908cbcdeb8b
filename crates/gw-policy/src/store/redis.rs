//! Redis stores: exact across gateway instances, one atomic Lua script per check.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gw_core::BackendError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script};
use tokio::sync::OnceCell;

use super::{
    ApprovalBinding, ApprovalCheck, ApprovalStore, BoxFuture, Usage, UsageStore, new_token,
    token_id, unix_millis,
};

/// Check-before-increment: a refused task never touches the counter.
const ACQUIRE: &str = r"
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c >= tonumber(ARGV[1]) then return {0, c} end
c = redis.call('INCR', KEYS[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return {1, c}
";

const RELEASE: &str = r"
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c > 0 then return redis.call('DECR', KEYS[1]) end
return 0
";

/// Returns the expiry (ms) when consumed, 0 unknown, -1 other binding, -2 expired.
const CONSUME: &str = r"
local v = redis.call('HMGET', KEYS[1], 'b', 'e')
if not v[1] then return 0 end
if v[1] ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
if tonumber(v[2]) <= tonumber(ARGV[2]) then return -2 end
return tonumber(v[2])
";

/// A lazily connected, self-reconnecting connection shared by a store's clones.
#[derive(Clone)]
struct Conn {
    client: Client,
    conn: Arc<OnceCell<ConnectionManager>>,
    connect_timeout: Duration,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection info may hold a password: print the address only.
        f.debug_struct("Conn")
            .field("addr", &self.client.get_connection_info().addr())
            .finish_non_exhaustive()
    }
}

impl Conn {
    fn new(client: Client) -> Self {
        Self {
            client,
            conn: Arc::new(OnceCell::new()),
            connect_timeout: Duration::from_secs(1),
        }
    }

    async fn get(&self) -> Result<ConnectionManager, BackendError> {
        let cm = self
            .conn
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await
            .map_err(to_backend)?;
        Ok(cm.clone())
    }
}

/// Classifies a Redis error: unreachable, timed out, or answering that it cannot serve
/// right now ([`gw_core::redis_code_is_outage`]: loading, failing over, out of memory,
/// cluster down, ...) follows the fail mode; anything else (`WRONGTYPE`, `NOPERM`, failed
/// authentication, an unparsable reply) is invalid and fails closed.
fn to_backend(e: RedisError) -> BackendError {
    use redis::ErrorKind;
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

fn open(url: &str) -> Result<Client, BackendError> {
    Client::open(url).map_err(|e| BackendError::invalid("redis", e))
}

/// Trial task counters in Redis: key `{prefix}{key}`, expiring at the day's reset.
#[derive(Debug, Clone)]
pub struct RedisUsageStore {
    conn: Conn,
    prefix: Arc<str>,
    acquire: Arc<Script>,
    release: Arc<Script>,
}

impl RedisUsageStore {
    /// A store on `client`, with key prefix `gw:trial:`. Connects on first use.
    pub fn new(client: Client) -> Self {
        Self {
            conn: Conn::new(client),
            prefix: "gw:trial:".into(),
            acquire: Arc::new(Script::new(ACQUIRE)),
            release: Arc::new(Script::new(RELEASE)),
        }
    }

    /// A store on the Redis at `url` (e.g. `redis://127.0.0.1:6379`).
    pub fn from_url(url: &str) -> Result<Self, BackendError> {
        open(url).map(Self::new)
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

impl UsageStore for RedisUsageStore {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        reset_at: SystemTime,
    ) -> BoxFuture<'a, Result<Usage, BackendError>> {
        Box::pin(async move {
            let mut conn = self.conn.get().await?;
            let (admitted, count): (u8, u64) = self
                .acquire
                .key(format!("{}{key}", self.prefix))
                .arg(limit)
                .arg(unix_millis(reset_at))
                .invoke_async(&mut conn)
                .await
                .map_err(to_backend)?;
            Ok(Usage {
                admitted: admitted == 1,
                count,
            })
        })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let mut conn = self.conn.get().await?;
            let _: i64 = self
                .release
                .key(format!("{}{key}", self.prefix))
                .invoke_async(&mut conn)
                .await
                .map_err(to_backend)?;
            Ok(())
        })
    }
}

/// Governor approvals in Redis: a hash per token at `{prefix}{sha256(token)}` holding the
/// binding and expiry; consumed by one Lua script (check binding, delete, check expiry).
#[derive(Debug, Clone)]
pub struct RedisApprovalStore {
    conn: Conn,
    prefix: Arc<str>,
    consume: Arc<Script>,
}

impl RedisApprovalStore {
    /// A store on `client`, with key prefix `gw:approval:`. Connects on first use.
    pub fn new(client: Client) -> Self {
        Self {
            conn: Conn::new(client),
            prefix: "gw:approval:".into(),
            consume: Arc::new(Script::new(CONSUME)),
        }
    }

    /// A store on the Redis at `url`.
    pub fn from_url(url: &str) -> Result<Self, BackendError> {
        open(url).map(Self::new)
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.prefix = prefix.into();
        self
    }

    async fn put(
        &self,
        token: &str,
        binding: ApprovalBinding<'_>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<(), BackendError> {
        let Ok(ttl) = expires_at.duration_since(now) else {
            return Ok(());
        };
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = format!("{}{}", self.prefix, token_id(token));
        let mut conn = self.conn.get().await?;
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("b", binding.encode()),
                    ("e", unix_millis(expires_at).to_string()),
                ],
            )
            .ignore()
            .pexpire(&key, i64::try_from(ttl_ms).unwrap_or(i64::MAX))
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(to_backend)
    }
}

impl ApprovalStore for RedisApprovalStore {
    fn issue<'a>(
        &'a self,
        binding: ApprovalBinding<'a>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(async move {
            let token = new_token();
            self.put(&token, binding, expires_at, now).await?;
            Ok(token)
        })
    }

    fn consume<'a>(
        &'a self,
        token: &'a str,
        binding: ApprovalBinding<'a>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<ApprovalCheck, BackendError>> {
        Box::pin(async move {
            let mut conn = self.conn.get().await?;
            let res: i64 = self
                .consume
                .key(format!("{}{}", self.prefix, token_id(token)))
                .arg(binding.encode())
                .arg(unix_millis(now))
                .invoke_async(&mut conn)
                .await
                .map_err(to_backend)?;
            Ok(match u64::try_from(res) {
                Ok(ms) if ms > 0 => ApprovalCheck::Approved {
                    expires_at: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
                },
                _ => ApprovalCheck::Invalid,
            })
        })
    }

    fn restore<'a>(
        &'a self,
        token: &'a str,
        binding: ApprovalBinding<'a>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.put(token, binding, expires_at, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gw_core::BackendErrorKind;
    use redis::{ErrorKind, ServerErrorKind};

    #[test]
    fn not_serving_is_unavailable_and_unusable_answers_are_invalid() {
        let kind = |e: RedisError| to_backend(e).kind;
        for k in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::TryAgain,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::MasterDown,
            ServerErrorKind::ReadOnly,
        ] {
            let e = RedisError::from((ErrorKind::Server(k), "server"));
            assert_eq!(kind(e), BackendErrorKind::Unavailable, "{k:?}");
        }
        // Codes the client library has no kind for, as gw-budget classifies them.
        for reply in ["OOM", "BUSY", "MISCONF", "NOREPLICAS"] {
            let e = redis::make_extension_error(reply.into(), None);
            assert_eq!(kind(e), BackendErrorKind::Unavailable, "{reply}");
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(kind(refused.into()), BackendErrorKind::Unavailable);
        for k in [
            ErrorKind::Server(ServerErrorKind::NoPerm),
            ErrorKind::Server(ServerErrorKind::ResponseError),
            ErrorKind::Extension,
            ErrorKind::AuthenticationFailed,
            ErrorKind::UnexpectedReturnType,
            ErrorKind::Parse,
        ] {
            let e = RedisError::from((k, "answer"));
            assert_eq!(kind(e), BackendErrorKind::Invalid, "{k:?}");
        }
    }
}
