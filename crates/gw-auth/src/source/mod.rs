//! Where verification keys come from: static keys (PEM, JWK, a JWKS file) or a JWKS URL
//! refreshed in the background.

mod http;
mod jwks;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

pub use self::http::{FetchError, HttpClient, HyperClient};
pub use self::jwks::{JwksSource, JwksSourceBuilder};
use crate::keys::{KeyError, KeySet, VerifyKey};

/// A source of verification keys.
///
/// Reads ([`keys`](KeySource::keys)) never wait on a fetch. A source that can fetch
/// answers [`refetch`](KeySource::refetch) when a token names an unknown `kid`.
pub trait KeySource: Send + Sync + fmt::Debug + 'static {
    /// The current key set.
    fn keys(&self) -> Arc<KeySet>;

    /// The current key set's generation (see [`KeySet::generation`]).
    fn generation(&self) -> u64 {
        self.keys().generation()
    }

    /// Asks for a refetch because a token named a `kid` the set does not have. Returns a
    /// future that ends when the (single-flight) refetch ends, or `None` when no refetch
    /// happens now (static keys, or the per-interval limit was reached).
    fn refetch(&self) -> Option<BoxFuture<'static, ()>> {
        None
    }

    /// Time since the key set was last loaded successfully; `None` if it never was.
    /// Static sources answer zero.
    fn age(&self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl<T: KeySource + ?Sized> KeySource for Arc<T> {
    fn keys(&self) -> Arc<KeySet> {
        (**self).keys()
    }
    fn generation(&self) -> u64 {
        (**self).generation()
    }
    fn refetch(&self) -> Option<BoxFuture<'static, ()>> {
        (**self).refetch()
    }
    fn age(&self) -> Option<Duration> {
        (**self).age()
    }
}

/// A fixed key set: PEM keys, JWKs, or a JWKS document or file read once.
#[derive(Debug, Clone)]
pub struct StaticKeys(Arc<KeySet>);

impl StaticKeys {
    /// A source of `keys`.
    pub fn new(keys: impl IntoIterator<Item = VerifyKey>) -> Self {
        Self(Arc::new(KeySet::new(keys)))
    }

    /// One PEM public key (type detected from the key), with an optional `kid`. Without
    /// one, the key also answers tokens whose `kid` it does not know (see [`KeySet::new`]).
    pub fn from_pem(kid: Option<&str>, pem: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        Ok(Self::new([VerifyKey::from_pem(kid, pem.as_ref())?]))
    }

    /// The keys of a JWKS document.
    pub fn from_jwks(json: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        Ok(Self(Arc::new(KeySet::from_jwks(json.as_ref())?)))
    }

    /// The keys of a JWKS file, read now.
    pub fn from_jwks_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let json = std::fs::read(path)
            .map_err(|e| KeyError(format!("reading {}: {e}", path.display())))?;
        Self::from_jwks(json)
    }
}

impl KeySource for StaticKeys {
    fn keys(&self) -> Arc<KeySet> {
        self.0.clone()
    }

    fn generation(&self) -> u64 {
        self.0.generation()
    }
}
