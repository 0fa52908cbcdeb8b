//! Where the policies keep state: trial task counts ([`UsageStore`]) and governor
//! approvals ([`ApprovalStore`]). In-memory implementations are the default; Redis ones
//! are behind the `redis` feature.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use gw_core::BackendError;
use sha2::{Digest, Sha256};

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

/// A boxed, sendable future, as the store traits return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The result of one [`UsageStore::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Whether the task was admitted (and counted).
    pub admitted: bool,
    /// The count after this call: including this task when admitted, the unchanged count
    /// (at or over the limit) when not.
    pub count: u64,
}

/// Per-key task counters with a fixed reset time, checked and incremented atomically.
pub trait UsageStore: Send + Sync + Debug + 'static {
    /// Atomically: if the count of `key` is below `limit`, increments it and admits the
    /// task; otherwise leaves it unchanged and refuses. The key expires at `reset_at`.
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        reset_at: SystemTime,
    ) -> BoxFuture<'a, Result<Usage, BackendError>>;

    /// Gives back one admitted task of `key` (used when another policy rejected the
    /// request after this one counted it). Never goes below zero.
    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;

    /// [`acquire`](Self::acquire) answered at once, without boxing a future, by a store
    /// that can (an in-process one). `None`, the default, means "await `acquire`
    /// instead"; `Some` means the task was counted exactly as `acquire` would have. A
    /// layer whose stores are all [local](Self::is_local) asks this first.
    fn acquire_now(
        &self,
        key: &str,
        limit: u64,
        reset_at: SystemTime,
    ) -> Option<Result<Usage, BackendError>> {
        let _ = (key, limit, reset_at);
        None
    }

    /// Whether every future this store returns is ready on its first poll (an in-process
    /// store). When all stores of a layer are local, the layer evaluates inside `call`
    /// without boxing a future. Default `false`; only say `true` if it always holds: a
    /// pending future from a "local" store is logged as an error and the evaluation is
    /// started again asynchronously, so that store's operation would run twice (a
    /// pending `release` or `restore` is logged and dropped).
    fn is_local(&self) -> bool {
        false
    }
}

/// What an approval is bound to: the action, the resource (the normalized request path)
/// and the user it was granted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApprovalBinding<'a> {
    /// Sensitive action name, e.g. `delete_agent`.
    pub action: &'a str,
    /// The resource, i.e. the normalized request path, e.g. `/api/v1/agents/42`.
    pub resource: &'a str,
    /// The user the approval was granted to.
    pub user_id: &'a str,
}

impl ApprovalBinding<'_> {
    /// An unambiguous single-string form (length-prefixed fields), as backends store it.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(
            self.action.len() + self.resource.len() + self.user_id.len() + 16,
        );
        for part in [self.action, self.resource, self.user_id] {
            s.push_str(&part.len().to_string());
            s.push(':');
            s.push_str(part);
            s.push('|');
        }
        s
    }
}

/// The answer of [`ApprovalStore::consume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalCheck {
    /// The approval was valid for this binding and has now been used up. Carries its
    /// expiry, so a caller can [`restore`](ApprovalStore::restore) it.
    Approved {
        /// When the approval would have expired.
        expires_at: SystemTime,
    },
    /// Unknown token, already used, expired, or bound to something else.
    Invalid,
}

/// Governor approvals: single-use tokens bound to an action, a resource and a user.
pub trait ApprovalStore: Send + Sync + Debug + 'static {
    /// Records an approval for `binding` until `expires_at` and returns its token (the
    /// secret the client presents in the approval header).
    fn issue<'a>(
        &'a self,
        binding: ApprovalBinding<'a>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<String, BackendError>>;

    /// Atomically validates `token` against `binding` at `now` and, if valid, removes it.
    /// A token presented for another binding stays usable for its own.
    fn consume<'a>(
        &'a self,
        token: &'a str,
        binding: ApprovalBinding<'a>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<ApprovalCheck, BackendError>>;

    /// Puts a consumed approval back (used when another policy rejected the request).
    fn restore<'a>(
        &'a self,
        token: &'a str,
        binding: ApprovalBinding<'a>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Whether every future this store returns is ready on its first poll; see
    /// [`UsageStore::is_local`].
    fn is_local(&self) -> bool {
        false
    }
}

/// A new random approval token: 32 bytes from the OS-seeded CSPRNG, base64url.
pub(crate) fn new_token() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The storage id of a token: hex SHA-256, so stores never hold the token itself and
/// lookups do not leak it through timing.
pub(crate) fn token_id(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_encoding_is_unambiguous() {
        let a = ApprovalBinding {
            action: "a|1:b",
            resource: "/r",
            user_id: "u",
        };
        let b = ApprovalBinding {
            action: "a",
            resource: "1:b|/r",
            user_id: "u",
        };
        assert_ne!(a.encode(), b.encode());
        assert_eq!(a.encode(), "5:a|1:b|2:/r|1:u|");
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (t1, t2) = (new_token(), new_token());
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 43);
        assert_eq!(token_id(&t1).len(), 64);
        assert_ne!(token_id(&t1), token_id(&t2));
        assert_eq!(
            token_id("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
