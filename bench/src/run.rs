//! The benchmark driver: starts the engines, and for every (mode, stream count, engine)
//! point sets up the calls, runs the generator threads through warm-up, measuring window and
//! drain, samples the engine's CPU time at the window's edges, and tears the calls down.
//! Points are interleaved across engines (switchboard N, rtpengine N, switchboard 2N, …) so
//! a machine that drifts affects both alike.

use std::net::Ipv4Addr;

use media::packet_io::IoBackend;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::cpu::{self, CoreTimes};
use crate::error::{BenchError, IoContext};
use crate::generator::{GeneratorSocket, GeneratorThread, Listen, Progress, StreamPlan, Timing};
use crate::mode::{Mode, Traffic};
use crate::probe::PROBE_LEN;
use crate::progress::ProgressLine;
use crate::stats::{Summary, Window};
use crate::sys;
use crate::target::rtpengine::{RtpengineConfig, RtpengineTarget};
use crate::target::switchboard::SwitchboardTarget;
use crate::target::{CallRequest, EngineCounters, LoopbackTarget, MixRequest, Target};

/// Name prefix of the generator threads (for their CPU time).
const GENERATOR_THREAD_PREFIX: &str = "bench-gen-";

/// Which engines to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    Switchboard,
    Rtpengine,
    Loopback,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Switchboard => "switchboard",
            TargetKind::Rtpengine => "rtpengine",
            TargetKind::Loopback => "loopback",
        }
    }
}

/// Everything a benchmark run needs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub modes: Vec<Mode>,
    /// Concurrent streams per point; each call carries two (one each way), so an odd count
    /// has one call sending one way only.
    pub stream_counts: Vec<usize>,
    /// Measuring window per point.
    pub duration: Duration,
    /// Traffic before the window (latching, caches, socket buffers settle).
    pub warmup: Duration,
    pub ptime_ms: u16,
    pub engine_core: usize,
    pub generator_cores: Vec<usize>,
    /// In the order they run at each point.
    pub targets: Vec<TargetKind>,
    pub sockets_per_core: usize,
    pub ip: Ipv4Addr,
    /// RTP ports for our engine and for rtpengine (inclusive).
    pub switchboard_ports: (u16, u16),
    pub rtpengine_ports: (u16, u16),
    /// Our engine's packet I/O backend.
    pub io_backend: IoBackend,
    pub rtpengine_binary: PathBuf,
    /// Where rtpengine's log goes.
    pub rtpengine_log: PathBuf,
    /// Show a progress line on stderr.
    pub progress: bool,
}

impl BenchConfig {
    /// A small configuration for tests and quick checks: relay, 4 streams, 2 s, the engine
    /// on the first core this process may use, the generator on another if there is one.
    pub fn quick(targets: Vec<TargetKind>) -> BenchConfig {
        let engine_core = sys::allowed_cores()
            .ok()
            .and_then(|cores| cores.first().copied())
            .unwrap_or(0);
        BenchConfig {
            modes: vec![Mode::Relay],
            stream_counts: vec![4],
            duration: Duration::from_secs(2),
            warmup: Duration::from_millis(500),
            ptime_ms: 20,
            engine_core,
            generator_cores: Vec::new(),
            targets,
            sockets_per_core: 4,
            ip: Ipv4Addr::LOCALHOST,
            switchboard_ports: (10_000, 17_999),
            rtpengine_ports: (18_000, 29_999),
            io_backend: IoBackend::Auto,
            rtpengine_binary: "rtpengine".into(),
            rtpengine_log: std::env::temp_dir().join(format!(
                "switchboard-bench-rtpengine-{}.log",
                std::process::id()
            )),
            progress: false,
        }
    }

    fn max_streams(&self) -> usize {
        self.stream_counts.iter().copied().max().unwrap_or(0)
    }

    /// Checks what can be checked before starting anything.
    pub fn validate(&self) -> Result<(), BenchError> {
        let fail = |message: String| Err(BenchError::Config(message));
        if self.modes.is_empty() {
            return fail("no mode given".into());
        }
        if self.targets.is_empty() {
            return fail("no engine to run".into());
        }
        if self.stream_counts.is_empty() || self.stream_counts.contains(&0) {
            return fail("stream counts must be at least 1".into());
        }
        if !(10..=120).contains(&self.ptime_ms) {
            return fail(format!("ptime {} ms outside 10..=120", self.ptime_ms));
        }
        if self.duration.is_zero() {
            return fail("duration must be positive".into());
        }
        if self.sockets_per_core < 2 {
            return fail("at least 2 generator sockets per core are needed".into());
        }
        if self.modes.iter().any(|mode| mode.mixes()) {
            // Members' probes sit in slots of the payload; the mix keeps them whole only when
            // packets and the mixer's 20 ms frames line up.
            if ![10, 20].contains(&self.ptime_ms) {
                return fail(format!(
                    "the mix mode needs ptime 10 or 20 ms (not {})",
                    self.ptime_ms
                ));
            }
            if self.stream_counts.contains(&1) {
                return fail("the mix mode needs at least 2 streams (members)".into());
            }
        }
        let allowed = sys::allowed_cores().context(|| "reading the CPU affinity".into())?;
        for core in self.generator_cores.iter().chain([&self.engine_core]) {
            if !allowed.contains(core) {
                return fail(format!(
                    "core {core} is not available (allowed: {allowed:?})"
                ));
            }
        }
        let calls = self.max_streams().div_ceil(2);
        if self.targets.contains(&TargetKind::Switchboard) {
            let (low, high) = self.switchboard_ports;
            let even_ports = usize::from(high.saturating_sub(low)) / 2 + 1;
            if high < low || even_ports < calls * 2 {
                return fail(format!(
                    "{} streams need {} even RTP ports for switchboard; {low}-{high} has {even_ports}",
                    self.max_streams(),
                    calls * 2
                ));
            }
        }
        if self.targets.contains(&TargetKind::Rtpengine) {
            let (low, high) = self.rtpengine_ports;
            let ports = usize::from(high.saturating_sub(low)) + 1;
            if high < low || ports < calls * 4 {
                return fail(format!(
                    "{} streams need {} RTP ports for rtpengine; {low}-{high} has {ports}",
                    self.max_streams(),
                    calls * 4
                ));
            }
        }
        Ok(())
    }
}

/// One engine at one load.
#[derive(Debug, Clone)]
pub struct PointResult {
    pub target: String,
    pub mode: Mode,
    pub streams: usize,
    pub ptime_ms: u16,
    /// Length of the measuring window (s).
    pub window_secs: f64,
    pub summary: Summary,
    /// Engine CPU seconds (user + system) used during the window.
    pub engine_cpu_secs: Option<f64>,
    /// Busy fraction of the engine's core during the window (all processes, from /proc/stat).
    pub engine_core_busy: Option<f64>,
    /// What the engine's own counters say about the window (our engine only).
    pub engine_counters: Option<EngineCounters>,
    /// Generator CPU seconds during the window, and over how many threads.
    pub generator_cpu_secs: f64,
    pub generator_threads: usize,
}

impl PointResult {
    fn per_second(&self, count: f64) -> f64 {
        if self.window_secs > 0.0 {
            count / self.window_secs
        } else {
            0.0
        }
    }

    /// Packets per second the generator offered (sent in the window).
    pub fn offered_pps(&self) -> f64 {
        self.per_second(self.summary.sent as f64)
    }

    /// Packets per second that came back through the engine.
    pub fn forwarded_pps(&self) -> f64 {
        self.per_second(self.summary.received as f64)
    }

    /// The engine's CPU use as a fraction of one core.
    pub fn engine_cpu_fraction(&self) -> Option<f64> {
        self.engine_cpu_secs.map(|secs| self.per_second(secs))
    }

    /// Forwarded packets per engine CPU second: packets/s one fully busy core would move.
    pub fn packets_per_core_second(&self) -> Option<f64> {
        self.engine_cpu_secs
            .filter(|secs| *secs > 0.0)
            .map(|secs| self.summary.received as f64 / secs)
    }

    /// The generator's CPU use as a fraction of its cores.
    pub fn generator_cpu_fraction(&self) -> f64 {
        self.per_second(self.generator_cpu_secs) / self.generator_threads.max(1) as f64
    }
}

/// Everything a run produced, in the order the points ran.
#[derive(Debug, Clone, Default)]
pub struct RunResults {
    pub points: Vec<PointResult>,
    /// Points not run, and why.
    pub skipped: Vec<String>,
    pub rtpengine_version: Option<String>,
}

/// Runs every point of `config`.
pub fn run(config: &BenchConfig) -> Result<RunResults, BenchError> {
    config.validate()?;
    let generator_cores = if config.generator_cores.is_empty() {
        let allowed = sys::allowed_cores().context(|| "reading the CPU affinity".into())?;
        let others: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|core| *core != config.engine_core)
            .take(1)
            .collect();
        if others.is_empty() {
            vec![config.engine_core]
        } else {
            others
        }
    } else {
        config.generator_cores.clone()
    };
    // The controller (and threads it starts unless they pin themselves) stays off the
    // engine core.
    sys::pin_current_thread(&generator_cores).context(|| "pinning the controller".into())?;

    let calls = config.max_streams().div_ceil(2);
    let mut results = RunResults::default();
    let mut targets: Vec<Box<dyn Target>> = Vec::new();
    for kind in &config.targets {
        let target: Box<dyn Target> = match kind {
            TargetKind::Switchboard => Box::new(SwitchboardTarget::start(
                config.engine_core,
                config.ip,
                config.switchboard_ports,
                calls * 2 + 8,
                config.io_backend,
            )?),
            TargetKind::Rtpengine => {
                let target = RtpengineTarget::start(&RtpengineConfig {
                    binary: config.rtpengine_binary.clone(),
                    core: config.engine_core,
                    ip: config.ip,
                    port_min: config.rtpengine_ports.0,
                    port_max: config.rtpengine_ports.1,
                    log: config.rtpengine_log.clone(),
                })?;
                results.rtpengine_version = Some(target.version().to_string());
                Box::new(target)
            }
            TargetKind::Loopback => Box::new(LoopbackTarget),
        };
        targets.push(target);
    }

    let total_points = config.modes.len() * config.stream_counts.len() * targets.len();
    let mut progress = ProgressLine::new(config.progress, total_points);
    for mode in &config.modes {
        for streams in &config.stream_counts {
            for target in targets.iter_mut() {
                if mode.transcodes() && !target.can_transcode() {
                    results.skipped.push(format!(
                        "{} {mode} {streams}: {} cannot transcode",
                        target.name(),
                        target.name()
                    ));
                    progress.skip_point();
                    continue;
                }
                if mode.mixes() && !target.can_mix() {
                    results.skipped.push(format!(
                        "{} {mode} {streams}: {} has no conference mixer here",
                        target.name(),
                        target.name()
                    ));
                    progress.skip_point();
                    continue;
                }
                let label = format!("{} {mode} {streams} streams", target.name());
                let point = run_point(
                    target.as_mut(),
                    *mode,
                    *streams,
                    config,
                    &generator_cores,
                    &mut progress,
                    &label,
                )?;
                info!(
                    target = point.target,
                    mode = %mode,
                    streams,
                    sent = point.summary.sent,
                    received = point.summary.received,
                    "point done"
                );
                progress.finish_point(&point);
                results.points.push(point);
                // Let sockets close and the engine settle before the next point.
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
    progress.done();
    Ok(results)
}

/// Per-point sample of the CPU counters at a window edge.
struct CpuSample {
    engine_secs: Option<f64>,
    core: Option<CoreTimes>,
    engine_counters: Option<EngineCounters>,
    generator_ticks: u64,
}

fn sample(target: &dyn Target) -> Result<CpuSample, BenchError> {
    Ok(CpuSample {
        engine_secs: target.cpu_seconds()?,
        core: match target.core() {
            Some(core) => Some(cpu::core_times(core).context(|| "reading /proc/stat".into())?),
            None => None,
        },
        engine_counters: target.counters(),
        generator_ticks: cpu::own_threads_ticks(GENERATOR_THREAD_PREFIX)
            .context(|| "reading the generator's CPU time".into())?
            .0,
    })
}

/// Sleeps until CLOCK_REALTIME reaches `ns`, updating the progress line.
fn sleep_until(ns: u64, progress: &mut ProgressLine, live: &Progress, stop: &AtomicBool) {
    loop {
        let now = sys::realtime_ns();
        if now >= ns || stop.load(Ordering::Relaxed) {
            return;
        }
        progress.update(now, live);
        std::thread::sleep(Duration::from_nanos(ns - now).min(Duration::from_millis(200)));
    }
}

/// What a point's generator threads get, one entry per thread.
struct Setup {
    sockets: Vec<Vec<GeneratorSocket>>,
    plans: Vec<Vec<StreamPlan>>,
    /// How each socket reads what it receives (empty: the default for every socket).
    listens: Vec<Vec<Listen>>,
}

/// Bridged calls: call `c` runs on thread `c % threads`, between two neighbouring sockets
/// of that thread; leg A speaks `a_codec`, leg B `b_codec`.
fn bridged_setup(
    target: &mut dyn Target,
    (a_codec, b_codec): (shmq::Codec, shmq::Codec),
    streams: usize,
    config: &BenchConfig,
    threads: usize,
) -> Result<Setup, BenchError> {
    let calls = streams.div_ceil(2);

    // Sockets per thread: as configured, but no more than the thread's calls need.
    let mut sockets: Vec<Vec<GeneratorSocket>> = Vec::with_capacity(threads);
    for thread in 0..threads {
        let thread_calls = calls / threads + usize::from(thread < calls % threads);
        let count = config.sockets_per_core.min(thread_calls + 1).max(2);
        let mut own = Vec::with_capacity(count);
        for _ in 0..count {
            own.push(
                GeneratorSocket::bind(config.ip).context(|| "binding a generator socket".into())?,
            );
        }
        sockets.push(own);
    }

    // Call c runs on thread c % threads, between two neighbouring sockets of that thread.
    let mut placement = Vec::with_capacity(calls);
    let mut requests = Vec::with_capacity(calls);
    for call in 0..calls {
        let thread = call % threads;
        let local = call / threads;
        let own = sockets.get(thread).map_or(&[][..], Vec::as_slice);
        let count = own.len().max(1);
        let (a, b) = (local % count, (local + 1) % count);
        let (Some(a_socket), Some(b_socket)) = (own.get(a), own.get(b)) else {
            return Err(BenchError::Config("no generator sockets".into()));
        };
        placement.push((thread, a, b));
        requests.push(CallRequest {
            a_remote: a_socket.address(),
            b_remote: b_socket.address(),
            a_codec,
            b_codec,
            ptime_ms: config.ptime_ms,
        });
    }
    let ports = target.open_calls(&requests)?;

    let mut plans: Vec<Vec<StreamPlan>> = vec![Vec::new(); threads];
    for (call, ((thread, a, b), call_ports)) in placement.iter().zip(&ports).enumerate() {
        let Some(plan) = plans.get_mut(*thread) else {
            continue;
        };
        let forward = 2 * call;
        plan.push(StreamPlan {
            id: forward as u32,
            socket: *a,
            destination: call_ports.a,
            send_codec: a_codec,
            receive_codec: b_codec,
            probe_offset: 0,
        });
        if forward + 1 < streams {
            plan.push(StreamPlan {
                id: (forward + 1) as u32,
                socket: *b,
                destination: call_ports.b,
                send_codec: b_codec,
                receive_codec: a_codec,
                probe_offset: 0,
            });
        }
    }
    Ok(Setup {
        sockets,
        plans,
        listens: vec![Vec::new(); threads],
    })
}

/// Conferences: `streams` members split as evenly as possible into conferences of at most
/// `members` (and of as many probes as a payload holds), each whole on one thread
/// (conference `c` on thread `c % threads`), each member on a socket of its own. Member `p`
/// of a conference writes its probe in slot `p` and reads slot `p − 1` (its predecessor's).
fn mix_setup(
    target: &mut dyn Target,
    (members, codec): (usize, shmq::Codec),
    streams: usize,
    config: &BenchConfig,
    threads: usize,
) -> Result<Setup, BenchError> {
    let payload = usize::from(config.ptime_ms) * 8;
    let size = members.min(payload / PROBE_LEN).max(2);
    let conferences = streams.div_ceil(size).max(1);
    let mut sockets: Vec<Vec<GeneratorSocket>> = (0..threads).map(|_| Vec::new()).collect();
    let mut listens: Vec<Vec<Listen>> = vec![Vec::new(); threads];
    let mut requests = Vec::with_capacity(conferences);
    // (thread, first socket on it, first stream id) of each conference.
    let mut layout = Vec::with_capacity(conferences);
    let mut next_id = 0usize;
    for conference in 0..conferences {
        let count = streams / conferences + usize::from(conference < streams % conferences);
        let thread = conference % threads;
        let (Some(own), Some(listen)) = (sockets.get_mut(thread), listens.get_mut(thread)) else {
            return Err(BenchError::Config("no generator thread".into()));
        };
        let first = own.len();
        let mut remotes = Vec::with_capacity(count);
        for position in 0..count {
            let socket =
                GeneratorSocket::bind(config.ip).context(|| "binding a generator socket".into())?;
            remotes.push(socket.address());
            own.push(socket);
            listen.push(Listen {
                probe_offset: ((position + count - 1) % count) * PROBE_LEN,
                missing_probe_is_expected: true,
            });
        }
        requests.push(MixRequest {
            members: remotes,
            codec,
            ptime_ms: config.ptime_ms,
        });
        layout.push((thread, first, next_id));
        next_id += count;
    }
    let ports = target.open_mixes(&requests)?;
    let mut plans: Vec<Vec<StreamPlan>> = vec![Vec::new(); threads];
    for ((thread, first, first_id), engine_ports) in layout.into_iter().zip(&ports) {
        let Some(plan) = plans.get_mut(thread) else {
            continue;
        };
        for (position, destination) in engine_ports.iter().enumerate() {
            plan.push(StreamPlan {
                id: (first_id + position) as u32,
                socket: first + position,
                destination: *destination,
                send_codec: codec,
                receive_codec: codec,
                probe_offset: position * PROBE_LEN,
            });
        }
    }
    Ok(Setup {
        sockets,
        plans,
        listens,
    })
}

#[allow(clippy::too_many_arguments)]
fn run_point(
    target: &mut dyn Target,
    mode: Mode,
    streams: usize,
    config: &BenchConfig,
    generator_cores: &[usize],
    progress: &mut ProgressLine,
    label: &str,
) -> Result<PointResult, BenchError> {
    let threads = generator_cores.len().max(1);
    let Setup {
        sockets,
        plans,
        listens,
    } = match mode.traffic() {
        Traffic::Bridged { a, b } => bridged_setup(target, (a, b), streams, config, threads)?,
        Traffic::Mix { members, codec } => {
            mix_setup(target, (members, codec), streams, config, threads)?
        }
    };

    let start_ns = sys::realtime_ns() + 50_000_000;
    let window_start = start_ns + config.warmup.as_nanos() as u64;
    let window = Window {
        start_ns: window_start,
        end_ns: window_start + config.duration.as_nanos() as u64,
    };
    let drain =
        Duration::from_millis(300).max(Duration::from_millis(u64::from(config.ptime_ms) * 5));
    let timing = Timing {
        ptime_ms: config.ptime_ms,
        start_ns,
        window,
        receive_until_ns: window.end_ns + drain.as_nanos() as u64,
    };
    let live = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    progress.start_point(label, start_ns, timing.receive_until_ns, window);

    let mut handles = Vec::with_capacity(threads);
    for (index, ((own_sockets, streams_of_thread), listen)) in
        sockets.into_iter().zip(plans).zip(listens).enumerate()
    {
        let thread = GeneratorThread {
            sockets: own_sockets,
            streams: streams_of_thread,
            listen,
            total_streams: streams,
            core: generator_cores.get(index).copied(),
            timing,
            progress: Arc::clone(&live),
            stop: Arc::clone(&stop),
        };
        match thread.spawn(index) {
            Ok(handle) => handles.push(handle),
            Err(error) => {
                stop.store(true, Ordering::Relaxed);
                return Err(BenchError::Io {
                    context: "spawning a generator thread".into(),
                    source: error,
                });
            }
        }
    }

    sleep_until(window.start_ns, progress, &live, &stop);
    let before = sample(target);
    sleep_until(window.end_ns, progress, &live, &stop);
    let after = sample(target);
    sleep_until(timing.receive_until_ns, progress, &live, &stop);

    let mut summary = Summary::default();
    let mut thread_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(part)) => summary.merge(&part),
            Ok(Err(error)) => {
                thread_error.get_or_insert(BenchError::Io {
                    context: "generator".into(),
                    source: error,
                });
            }
            Err(_) => {
                thread_error
                    .get_or_insert(BenchError::Config("a generator thread panicked".into()));
            }
        }
    }
    let closed = target.close_calls();
    if let Some(error) = thread_error {
        return Err(error);
    }
    closed?;
    let (before, after) = (before?, after?);
    let window_secs = config.duration.as_secs_f64();
    Ok(PointResult {
        target: target.name().to_string(),
        mode,
        streams,
        ptime_ms: config.ptime_ms,
        window_secs,
        summary,
        engine_cpu_secs: match (before.engine_secs, after.engine_secs) {
            (Some(b), Some(a)) => Some((a - b).max(0.0)),
            _ => None,
        },
        engine_core_busy: match (before.core, after.core) {
            (Some(b), Some(a)) => Some(a.busy_fraction_since(&b)),
            _ => None,
        },
        engine_counters: match (before.engine_counters, after.engine_counters) {
            (Some(b), Some(a)) => Some(a.since(&b)),
            _ => None,
        },
        generator_cpu_secs: cpu::ticks_to_seconds(
            after.generator_ticks.saturating_sub(before.generator_ticks),
        ),
        generator_threads: threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_catches_what_would_fail_later() {
        let ok = BenchConfig::quick(vec![TargetKind::Loopback]);
        ok.validate().unwrap();
        let mut bad = ok.clone();
        bad.stream_counts = vec![0];
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.ptime_ms = 5;
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.engine_core = 4096;
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("core 4096"));
        let mut bad = ok.clone();
        bad.targets = vec![TargetKind::Switchboard];
        bad.switchboard_ports = (10_000, 10_010);
        bad.stream_counts = vec![20];
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("even RTP ports"));
        let mut bad = ok.clone();
        bad.targets = vec![TargetKind::Rtpengine];
        bad.rtpengine_ports = (18_000, 18_010);
        bad.stream_counts = vec![20];
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("RTP ports for rtpengine"));
        let mut bad = ok;
        bad.targets.clear();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn derived_figures() {
        let mut point = PointResult {
            target: "x".into(),
            mode: Mode::Relay,
            streams: 100,
            ptime_ms: 20,
            window_secs: 10.0,
            summary: Summary {
                sent: 50_000,
                received: 49_000,
                ..Summary::default()
            },
            engine_cpu_secs: Some(2.5),
            engine_core_busy: Some(0.3),
            engine_counters: None,
            generator_cpu_secs: 4.0,
            generator_threads: 2,
        };
        assert_eq!(point.offered_pps(), 5_000.0);
        assert_eq!(point.forwarded_pps(), 4_900.0);
        assert_eq!(point.engine_cpu_fraction(), Some(0.25));
        assert_eq!(point.packets_per_core_second(), Some(19_600.0));
        assert_eq!(point.generator_cpu_fraction(), 0.2);
        point.engine_cpu_secs = Some(0.0);
        assert_eq!(point.packets_per_core_second(), None);
    }
}
