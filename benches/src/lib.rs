//! Overhead benchmarks for the gw layers; see `benches/` and docs/benchmarks.md.
