//! Key stores and nonce caches: in memory (default), a directory of key files, and Redis
//! (feature `redis`).

mod dir;
mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use dir::DirKeyStore;
pub use memory::{MemoryKeyStore, MemoryNonceCache};
#[cfg(feature = "redis")]
pub use redis::{RedisKeyStore, RedisNonceCache};
