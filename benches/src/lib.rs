//! Overhead benchmarks for the gw layers; see `benches/` and docs/benchmarks.md.
//!
//! The library part holds what the HTTP load benchmark (`load-server`, driven by
//! `benches/load/run.sh`) and the whole-chain criterion bench share: the benchmark chain
//! and the token pool.

//! Every benchmark binary (the criterion benches and `load-server`) links this library and
//! so runs on mimalloc, the allocator the example gateway binary uses too; the bare
//! server they are compared with runs on it as well.

/// The allocator of every benchmark binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod cpu;
pub mod load;

pub use cpu::ThreadCpuTime;
