//! The data-plane bench harness behind `switchboard bench`, and the criterion
//! micro-benchmarks of the packet path (benches/g711.rs).
//!
//! The harness generates N concurrent G.711 streams on loopback through an engine and
//! measures what the engine does to them: throughput per engine core (from the engine's own
//! CPU accounting), loss, added one-way latency (p50/p99/p99.9) and added jitter. Engines
//! ([`target`]): ours in process, rtpengine started and driven over NG, or none (loopback,
//! the harness's own floor). Layers, bottom up:
//!
//! - pure: [`bencode`], [`ng`] messages, [`histogram`], [`probe`] (what each packet says
//!   about itself, surviving transcoding), [`stats`], [`svg`], [`report`], [`mode`];
//! - I/O: [`sys`] (the Linux calls std lacks), [`cpu`] (/proc accounting), [`generator`]
//!   (the load threads), [`target`], [`run`] (the sweep), [`progress`], [`cli`].

pub mod bencode;
pub mod cli;
pub mod cpu;
pub mod error;
pub mod generator;
pub mod histogram;
pub mod mode;
pub mod ng;
pub mod probe;
pub mod progress;
pub mod report;
pub mod run;
pub mod stats;
pub mod svg;
pub mod sys;
pub mod target;

pub use cli::{run_cli, BenchArgs};
pub use error::BenchError;
pub use mode::Mode;
pub use run::{run, BenchConfig, PointResult, RunResults, TargetKind};
