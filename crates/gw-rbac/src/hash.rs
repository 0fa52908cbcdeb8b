//! Small hashers for the hot path.
//!
//! - [`FnvBuild`]: FNV-1a, for the native engine's tables. Their keys come from the policy
//!   and never from requests, so request data only looks up and cannot grow a collision
//!   chain; a keyed hash would buy nothing there.
//! - [`U64Build`]: identity, for maps keyed by a value that already is a keyed
//!   (`RandomState`) hash.

use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

pub(crate) type FnvBuild = BuildHasherDefault<Fnv>;

/// Passes a `u64` key through.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct U64(u64);

impl Hasher for U64 {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in deterministically.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type U64Build = BuildHasherDefault<U64>;
