//! Overhead benchmarks for the gw layers; see `benches/` and docs/benchmarks.md.
//!
//! The library part holds what the HTTP load benchmark (`load-server`, driven by
//! `benches/load/run.sh`) and the whole-chain criterion bench share: the benchmark chain
//! and the token pool.

pub mod cpu;
pub mod load;

pub use cpu::ThreadCpuTime;
