//! [`JobStore`](crate::JobStore) implementations.

pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
