//! Key stores and nonce caches: in memory (default), a directory of key files, and Redis
//! (feature `redis`).

mod dir;
mod memory;
mod memory_nonce;
#[cfg(feature = "redis")]
mod redis;

pub use dir::DirKeyStore;
pub use memory::MemoryKeyStore;
pub use memory_nonce::{DEFAULT_NONCE_CAPACITY, MemoryNonceCache};
#[cfg(feature = "redis")]
pub use redis::{RedisKeyStore, RedisNonceCache};
