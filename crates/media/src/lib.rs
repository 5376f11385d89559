//! The data plane: RTP sessions on pinned worker threads fed by shmq rings.
//!
//! Layers, bottom up: [`g711`] (codec tables), [`rtp`] (header writing/parsing),
//! [`rtcp`] (RTCP packets), [`rtp_stats`] (RFC 3550 receive statistics), [`rtcp_session`]
//! (one session's reports, loss, jitter and round-trip time),
//! [`digits`] (RFC 4733 sending), [`dtmf`] (RFC 4733 reception), [`player`] (the play
//! queue), [`session`] (the sans-IO core of one RTP session: pacing, playback, reception,
//! latching, the bridge's re-stamping and transcoding), [`ports`] (per-worker RTP port
//! slices), [`packet_io`] (the sockets, behind io_uring or epoll backends, or a DPDK port
//! with the `dpdk` feature), [`timer`] (a precise deadline timer), [`worker`] (one worker
//! loop). [`run`] starts one worker per configured core and supervises them until the
//! control plane goes away.
//! Call recording: [`recording`] (placement, mixing, WAV header: pure), [`frame_ring`] (the
//! SPSC ring between a worker and its writer) and [`recorder`] (the per-worker writer
//! thread that owns the `<recordings_dir>/<hex>.wav` files).
//! Conferences: [`jitter`] (a participant's jitter buffer) and [`mix`] (the bus the workers
//! share and each worker's mixer); [`run`] creates the bus and hands it to every worker.

pub mod digits;
pub mod dtmf;
pub mod frame_ring;
pub mod g711;
pub mod inband;
pub mod jitter;
pub mod mix;
pub mod packet_io;
pub mod player;
pub mod ports;
pub mod recorder;
pub mod recording;
pub mod rtcp;
pub mod rtcp_session;
pub mod rtp;
pub mod rtp_stats;
pub mod session;
pub mod timer;
pub mod worker;

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::mix::MixBus;
use crate::ports::PortSlice;
use crate::worker::{Worker, WorkerSetup};

/// How the media plane is laid out on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// One worker per entry, pinned to that core id.
    pub cores: Vec<usize>,
    /// Address the RTP sockets bind to.
    pub rtp_ip: IpAddr,
    /// Inclusive RTP port range, split across workers (even ports only).
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Where `<MediaId hex>.ulaw` files live.
    pub cache_dir: PathBuf,
    /// Where `<RecordingId hex>.wav` recordings are written (must exist).
    pub recordings_dir: PathBuf,
    pub max_sessions_per_worker: usize,
    /// A session that receives no RTP for this long is reported (`RtpTimeout`); zero: never.
    pub rtp_timeout: Duration,
    /// The packet I/O backend of every worker.
    pub io_backend: packet_io::IoBackend,
    /// The DPDK port, when `io_backend` is `Dpdk` (then `rtp_ip` must be its address and
    /// there is one worker: the port has one queue pair).
    pub dpdk: Option<packet_io::DpdkConfig>,
}

/// The RTP timeout when none is configured.
pub const DEFAULT_RTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the media plane could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("invalid media configuration: {0}")]
    Config(String),
    #[error("shared memory: {0}")]
    Shmq(#[from] shmq::ShmqError),
    #[error("media worker {worker}: {source}")]
    Io { worker: usize, source: io::Error },
    #[error("spawning media worker {worker}: {source}")]
    Spawn { worker: usize, source: io::Error },
    #[error("media worker {0} panicked")]
    WorkerPanicked(usize),
}

/// How often the supervisor checks for a departed control plane or a finished worker.
const SUPERVISE_INTERVAL: Duration = Duration::from_millis(100);

/// Runs the media plane until the control plane goes away (attachment peer gone) or a fatal error:
/// one worker thread per entry in `cores` (pinned with core_affinity; if pinning fails, warn and go on),
/// worker i serves command ring i / event ring i and a disjoint slice of the RTP port range.
pub fn run(
    cfg: MediaConfig,
    segment: Arc<shmq::Segment>,
    doorbells: shmq::DoorbellSet,
    attachment: shmq::Attachment,
) -> Result<(), MediaError> {
    let workers = validate(&cfg, &segment, &doorbells)?;
    // Each mix needs a member session, so the session capacity bounds the live mixes.
    let mix_bus = Arc::new(MixBus::new(
        workers,
        workers.saturating_mul(cfg.max_sessions_per_worker),
        Instant::now(),
    ));
    let mut setups = Vec::with_capacity(workers);
    let command_doorbells = doorbells.commands.into_iter();
    let event_doorbells = doorbells.events.into_iter();
    for (index, (command_doorbell, event_doorbell)) in
        command_doorbells.zip(event_doorbells).enumerate()
    {
        setups.push(WorkerSetup {
            index,
            rtp_ip: cfg.rtp_ip,
            ports: PortSlice::for_worker(cfg.rtp_port_min, cfg.rtp_port_max, workers, index),
            cache_dir: cfg.cache_dir.clone(),
            recordings_dir: cfg.recordings_dir.clone(),
            max_sessions: cfg.max_sessions_per_worker,
            rtp_timeout: cfg.rtp_timeout,
            io_backend: cfg.io_backend,
            dpdk: cfg.dpdk.clone(),
            segment: Arc::clone(&segment),
            commands: segment.command_consumer(index)?,
            events: segment.event_producer(index)?,
            command_doorbell,
            event_doorbell,
            mix_bus: Arc::clone(&mix_bus),
        });
    }
    let mut built = Vec::with_capacity(workers);
    for setup in setups {
        built.push(Worker::new(setup)?);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut handles: Vec<JoinHandle<Result<(), MediaError>>> = Vec::with_capacity(workers);
    for (index, (worker, core)) in built.into_iter().zip(cfg.cores.iter().copied()).enumerate() {
        let stop_flag = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name(format!("media-worker-{index}"))
            .spawn(move || {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                    warn!(
                        worker = index,
                        core, "could not pin media worker to its core"
                    );
                }
                worker.run(&stop_flag)
            });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(source) => {
                stop.store(true, Ordering::Relaxed);
                join_all(handles)?;
                return Err(MediaError::Spawn {
                    worker: index,
                    source,
                });
            }
        }
    }
    info!(workers, "media plane running");

    loop {
        std::thread::sleep(SUPERVISE_INTERVAL);
        if attachment.peer_gone() {
            info!("control plane detached: stopping media workers");
            break;
        }
        if handles.iter().any(JoinHandle::is_finished) {
            warn!("a media worker stopped: stopping the media plane");
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    join_all(handles)
}

fn validate(
    cfg: &MediaConfig,
    segment: &shmq::Segment,
    doorbells: &shmq::DoorbellSet,
) -> Result<usize, MediaError> {
    let workers = cfg.cores.len();
    if workers == 0 {
        return Err(MediaError::Config("no cores configured".into()));
    }
    if segment.workers() != workers {
        return Err(MediaError::Config(format!(
            "{workers} cores configured but the segment has {} workers",
            segment.workers()
        )));
    }
    if doorbells.commands.len() != workers || doorbells.events.len() != workers {
        return Err(MediaError::Config(format!(
            "{workers} workers but {} command and {} event doorbells",
            doorbells.commands.len(),
            doorbells.events.len()
        )));
    }
    if cfg.io_backend == packet_io::IoBackend::Dpdk {
        validate_dpdk(cfg, workers)?;
    }
    if cfg.max_sessions_per_worker == 0 {
        return Err(MediaError::Config("max_sessions_per_worker is 0".into()));
    }
    if cfg.rtp_port_min > cfg.rtp_port_max {
        return Err(MediaError::Config(format!(
            "RTP port range {}..={} is empty",
            cfg.rtp_port_min, cfg.rtp_port_max
        )));
    }
    for index in 0..workers {
        if PortSlice::for_worker(cfg.rtp_port_min, cfg.rtp_port_max, workers, index).count == 0 {
            return Err(MediaError::Config(format!(
                "RTP port range {}..={} has fewer even ports than the {workers} workers",
                cfg.rtp_port_min, cfg.rtp_port_max
            )));
        }
    }
    Ok(workers)
}

/// The DPDK backend's constraints: a port configuration, a `dpdk` build, one worker (the
/// port has one rx/tx queue pair and nothing steers traffic between queues), and the RTP
/// address being the port's.
fn validate_dpdk(cfg: &MediaConfig, workers: usize) -> Result<(), MediaError> {
    let Some(dpdk) = &cfg.dpdk else {
        return Err(MediaError::Config(
            "io_backend dpdk needs a DPDK port configuration".into(),
        ));
    };
    if !cfg!(feature = "dpdk") {
        return Err(MediaError::Config(
            "io_backend dpdk: this build has no DPDK support (cargo feature `dpdk`)".into(),
        ));
    }
    if workers != 1 {
        return Err(MediaError::Config(format!(
            "io_backend dpdk runs one worker (the port has one rx/tx queue pair and no flow \
             steering between queues), but {workers} cores are configured"
        )));
    }
    if cfg.rtp_ip != IpAddr::V4(dpdk.ipv4) {
        return Err(MediaError::Config(format!(
            "io_backend dpdk: the RTP address {} must be the DPDK port's address {}",
            cfg.rtp_ip, dpdk.ipv4
        )));
    }
    dpdk.validate()
        .map_err(|e| MediaError::Config(e.to_string()))
}

/// Joins every worker; the first failure (in worker order) is the result.
fn join_all(handles: Vec<JoinHandle<Result<(), MediaError>>>) -> Result<(), MediaError> {
    let mut result = Ok(());
    for (index, handle) in handles.into_iter().enumerate() {
        let outcome = handle
            .join()
            .unwrap_or(Err(MediaError::WorkerPanicked(index)));
        if let Err(error) = outcome {
            warn!(worker = index, %error, "media worker failed");
            if result.is_ok() {
                result = Err(error);
            }
        }
    }
    result
}
