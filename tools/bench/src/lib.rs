//! Shared helpers for the host benchmark binaries in `src/bin/`.
//!
//! Every binary prints Markdown rows so `cargo xtask bench` output can be pasted into
//! docs/BENCHMARKS.md. Benchmarks are never run by `cargo xtask test`.
#![forbid(unsafe_code)]

use std::time::Instant;

/// Run `f` once and return (its result, elapsed seconds).
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}
