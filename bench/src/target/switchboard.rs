//! Our media engine as a benchmark target, in this process: the harness is its control plane.
//!
//! [`SwitchboardTarget::start`] creates a shmq segment and attach socket in a private
//! temporary directory, runs `media::run` on a thread with one worker pinned to the engine
//! core (the worker thread is `media-worker-0`), and attaches exactly as `switchboard media`
//! does. Calls are two `OpenSession`s (one per leg, codec per mode) and a
//! `Bridge { session: a, peer: b }`; conferences are one `OpenSession` per member and a
//! `JoinMix` each. Engine CPU is the utime + stime of the `media-worker-*` threads.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media::packet_io::IoBackend;
use media::{MediaConfig, MediaError};
use shmq::{Command, Event, FailReason, MixId, SessionId};
use tracing::warn;

use super::{CallPorts, CallRequest, EngineCounters, MixRequest, Target};
use crate::cpu;
use crate::error::{BenchError, IoContext};

/// Ring slots per direction (as `switchboard run` uses).
const RING_CAPACITY: usize = 8192;
/// How long one batch of commands may take to be answered.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// Name prefix of the engine's worker threads.
pub const WORKER_THREAD_PREFIX: &str = "media-worker-";

/// A directory removed (with its contents) on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<TempDir, BenchError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One open call: its two sessions.
#[derive(Debug, Clone, Copy)]
struct OpenCall {
    a: SessionId,
    b: SessionId,
}

/// The in-process engine.
pub struct SwitchboardTarget {
    core: usize,
    rtp_ip: Ipv4Addr,
    segment: Arc<shmq::Segment>,
    doorbells: shmq::DoorbellSet,
    attachment: Option<shmq::Attachment>,
    commands: shmq::Producer,
    events: shmq::Consumer,
    /// Events read while waiting for others.
    backlog: VecDeque<Event>,
    media: Option<JoinHandle<Result<(), MediaError>>>,
    calls: Vec<OpenCall>,
    /// Sessions of open conferences.
    mix_members: Vec<SessionId>,
    next_session: u64,
    next_mix: u64,
    // Last: removed after everything that uses files in it.
    _dir: TempDir,
}

impl SwitchboardTarget {
    /// Starts one media worker pinned to `core`, with RTP ports `ports` on `rtp_ip`, room
    /// for `max_sessions` sessions and packet I/O through `io_backend`.
    pub fn start(
        core: usize,
        rtp_ip: Ipv4Addr,
        ports: (u16, u16),
        max_sessions: usize,
        io_backend: IoBackend,
    ) -> Result<SwitchboardTarget, BenchError> {
        let dir = TempDir::new("switchboard-bench")?;
        let cache_dir = dir.path().join("cache");
        let recordings_dir = dir.path().join("recordings");
        for path in [&cache_dir, &recordings_dir] {
            std::fs::create_dir_all(path).context(|| format!("creating {}", path.display()))?;
        }
        let segment_path = dir.path().join("segment");
        let socket_path = dir.path().join("attach.sock");
        let segment = shmq::Segment::create(&segment_path, 1, RING_CAPACITY)?;
        let doorbells = shmq::DoorbellSet::new(1).context(|| "creating doorbells".into())?;
        let listener = shmq::AttachListener::bind(&socket_path)
            .context(|| "binding the attach socket".into())?;
        let config = MediaConfig {
            cores: vec![core],
            rtp_ip: IpAddr::V4(rtp_ip),
            rtp_port_min: ports.0,
            rtp_port_max: ports.1,
            cache_dir,
            recordings_dir,
            max_sessions_per_worker: max_sessions.max(1),
            rtp_timeout: media::DEFAULT_RTP_TIMEOUT,
            io_backend,
            // The bench drives the engine over loopback: kernel backends only.
            dpdk: None,
        };
        // The media plane opens the segment and attaches as a separate process would.
        let media = std::thread::Builder::new()
            .name("bench-media".into())
            .spawn(move || {
                let segment = shmq::Segment::open(&segment_path)?;
                let (doorbells, attachment) = shmq::attach(&socket_path, &segment)?;
                media::run(config, segment, doorbells, attachment)
            })
            .context(|| "spawning the media plane thread".into())?;
        let attachment = match listener.accept(&segment, &doorbells, Duration::from_secs(10)) {
            Ok(attachment) => attachment,
            Err(error) => {
                let detail = if media.is_finished() {
                    match media.join() {
                        Ok(Err(media_error)) => format!(": {media_error}"),
                        _ => String::new(),
                    }
                } else {
                    String::new()
                };
                return Err(BenchError::Engine(format!(
                    "the media plane did not attach: {error}{detail}"
                )));
            }
        };
        let commands = segment.command_producer(0)?;
        let events = segment.event_consumer(0)?;
        Ok(SwitchboardTarget {
            core,
            rtp_ip,
            segment,
            doorbells,
            attachment: Some(attachment),
            commands,
            events,
            backlog: VecDeque::new(),
            media: Some(media),
            calls: Vec::new(),
            mix_members: Vec::new(),
            next_session: 1,
            next_mix: 1,
            _dir: dir,
        })
    }

    fn new_session(&mut self) -> SessionId {
        let id = SessionId(self.next_session);
        self.next_session += 1;
        id
    }

    /// Moves every waiting event to the backlog.
    fn read_events(&mut self) -> Result<(), BenchError> {
        while let Some(record) = self.events.pop() {
            match Event::decode(&record) {
                Ok(event) => self.backlog.push_back(event),
                Err(error) => {
                    return Err(BenchError::Engine(format!("undecodable event: {error}")))
                }
            }
        }
        Ok(())
    }

    fn check_alive(&mut self) -> Result<(), BenchError> {
        if self.media.as_ref().is_some_and(JoinHandle::is_finished) {
            let outcome = self.media.take().map(JoinHandle::join);
            return Err(BenchError::Engine(match outcome {
                Some(Ok(Err(error))) => format!("the media plane stopped: {error}"),
                Some(Err(_)) => "the media plane panicked".into(),
                _ => "the media plane stopped".into(),
            }));
        }
        Ok(())
    }

    /// Pushes a command, reading events while the command ring is full.
    fn send(&mut self, command: Command) -> Result<(), BenchError> {
        let record = command.encode();
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            if self.commands.push(&record).is_ok() {
                return Ok(());
            }
            self.ring();
            self.read_events()?;
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(BenchError::Engine("the command ring stayed full".into()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn ring(&self) {
        if let Some(doorbell) = self.doorbells.commands.first() {
            doorbell.ring();
        }
    }

    /// Waits until `settle` has returned `Some` for every pending session: `settle` sees each
    /// event and answers `Some(result)` for the session it settles, `None` to ignore it.
    fn collect<T>(
        &mut self,
        pending: usize,
        mut settle: impl FnMut(&Event) -> Option<(SessionId, T)>,
    ) -> Result<Vec<(SessionId, T)>, BenchError> {
        self.ring();
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut settled = Vec::with_capacity(pending);
        while settled.len() < pending {
            self.read_events()?;
            while let Some(event) = self.backlog.pop_front() {
                if let Some(result) = settle(&event) {
                    settled.push(result);
                }
            }
            if settled.len() >= pending {
                break;
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(BenchError::Engine(format!(
                    "{} of {pending} answers missing after {COMMAND_TIMEOUT:?}",
                    pending - settled.len()
                )));
            }
            if let Some(doorbell) = self.doorbells.events.first() {
                let _ = doorbell.wait(Some(Duration::from_millis(20)));
                doorbell.drain();
            }
        }
        Ok(settled)
    }

    /// Opens one session per (remote, codec); returns each one's local port, in order.
    fn open_sessions(
        &mut self,
        legs: &[(SessionId, SocketAddrV4, shmq::Codec)],
        ptime_ms: u16,
    ) -> Result<Vec<u16>, BenchError> {
        for (session, remote, codec) in legs {
            self.send(Command::OpenSession {
                session: *session,
                remote: SocketAddr::V4(*remote),
                codec: *codec,
                dtmf_payload_type: None,
                ptime_ms,
            })?;
        }
        let answers = self.collect(legs.len(), |event| match *event {
            Event::SessionOpened {
                session,
                local_port,
            } => Some((session, Ok(local_port))),
            Event::SessionFailed { session, reason } => Some((session, Err(reason))),
            _ => None,
        })?;
        let mut ports = Vec::with_capacity(legs.len());
        for (session, _, _) in legs {
            match answers.iter().find(|(s, _)| s == session) {
                Some((_, Ok(port))) => ports.push(*port),
                Some((_, Err(reason))) => {
                    return Err(BenchError::Engine(format!(
                        "OpenSession {session} failed: {reason:?}"
                    )))
                }
                None => {
                    return Err(BenchError::Engine(format!(
                        "no answer to OpenSession {session}"
                    )))
                }
            }
        }
        Ok(ports)
    }

    fn close_sessions(&mut self, sessions: &[SessionId]) -> Result<(), BenchError> {
        for session in sessions {
            self.send(Command::CloseSession { session: *session })?;
        }
        let answers = self.collect(sessions.len(), |event| match *event {
            Event::SessionClosed { session, .. } => Some((session, None)),
            Event::SessionFailed { session, reason } => Some((session, Some(reason))),
            _ => None,
        })?;
        if let Some((session, Some(reason))) = answers.iter().find(|(_, r)| r.is_some()) {
            return Err(BenchError::Engine(format!(
                "CloseSession {session} failed: {reason:?}"
            )));
        }
        Ok(())
    }
}

impl Target for SwitchboardTarget {
    fn name(&self) -> &str {
        "switchboard"
    }

    fn open_calls(&mut self, calls: &[CallRequest]) -> Result<Vec<CallPorts>, BenchError> {
        let mut legs = Vec::with_capacity(calls.len() * 2);
        let mut opened = Vec::with_capacity(calls.len());
        let ptime_ms = calls.first().map_or(20, |call| call.ptime_ms);
        for call in calls {
            let a = self.new_session();
            let b = self.new_session();
            legs.push((a, call.a_remote, call.a_codec));
            legs.push((b, call.b_remote, call.b_codec));
            opened.push(OpenCall { a, b });
        }
        let ports = self.open_sessions(&legs, ptime_ms)?;
        self.calls.extend_from_slice(&opened);

        for call in &opened {
            self.send(Command::Bridge {
                session: call.a,
                peer: call.b,
            })?;
        }
        let answers = self.collect(opened.len(), |event| match *event {
            Event::Bridged { session, .. } => Some((session, None)),
            Event::SessionFailed { session, reason } => Some((session, Some(reason))),
            _ => None,
        })?;
        if let Some((session, Some(reason))) = answers.iter().find(|(_, r)| r.is_some()) {
            let hint = if *reason == FailReason::BadCommand {
                " (this media engine build may not implement the relay yet)"
            } else {
                ""
            };
            return Err(BenchError::Engine(format!(
                "Bridge of session {session} failed: {reason:?}{hint}"
            )));
        }
        Ok(ports
            .chunks_exact(2)
            .map(|pair| {
                let (a, b) = match pair {
                    [a, b] => (*a, *b),
                    _ => (0, 0),
                };
                CallPorts {
                    a: SocketAddrV4::new(self.rtp_ip, a),
                    b: SocketAddrV4::new(self.rtp_ip, b),
                }
            })
            .collect())
    }

    fn open_mixes(&mut self, mixes: &[MixRequest]) -> Result<Vec<Vec<SocketAddrV4>>, BenchError> {
        let ptime_ms = mixes.first().map_or(20, |mix| mix.ptime_ms);
        let mut legs = Vec::new();
        let mut joins = Vec::new();
        for request in mixes {
            let mix = MixId(self.next_mix);
            self.next_mix += 1;
            for remote in &request.members {
                let session = self.new_session();
                legs.push((session, *remote, request.codec));
                joins.push((session, mix));
            }
        }
        let ports = self.open_sessions(&legs, ptime_ms)?;
        self.mix_members
            .extend(joins.iter().map(|(session, _)| *session));
        for (session, mix) in &joins {
            self.send(Command::JoinMix {
                session: *session,
                mix: *mix,
                muted: false,
                deaf: false,
            })?;
        }
        let answers = self.collect(joins.len(), |event| match *event {
            Event::MixJoined { session, .. } => Some((session, None)),
            Event::SessionFailed { session, reason } => Some((session, Some(reason))),
            _ => None,
        })?;
        if let Some((session, Some(reason))) = answers.iter().find(|(_, r)| r.is_some()) {
            return Err(BenchError::Engine(format!(
                "JoinMix of session {session} failed: {reason:?}"
            )));
        }
        let mut ports = ports.into_iter();
        Ok(mixes
            .iter()
            .map(|request| {
                ports
                    .by_ref()
                    .take(request.members.len())
                    .map(|port| SocketAddrV4::new(self.rtp_ip, port))
                    .collect()
            })
            .collect())
    }

    fn close_calls(&mut self) -> Result<(), BenchError> {
        let mut sessions: Vec<SessionId> = self
            .calls
            .drain(..)
            .flat_map(|call| [call.a, call.b])
            .collect();
        sessions.append(&mut self.mix_members);
        self.close_sessions(&sessions)
    }

    fn cpu_seconds(&self) -> Result<Option<f64>, BenchError> {
        let (ticks, threads) = cpu::own_threads_ticks(WORKER_THREAD_PREFIX)
            .context(|| "reading the media worker's CPU time".into())?;
        if threads == 0 {
            return Err(BenchError::Engine(
                "no media worker thread is running".into(),
            ));
        }
        Ok(Some(cpu::ticks_to_seconds(ticks)))
    }

    fn counters(&self) -> Option<EngineCounters> {
        let stats = self.segment.worker_stats(0).snapshot();
        // Conferences send mixed packets, not relayed ones (the bench plays nothing else).
        let forwarded = if self.mix_members.is_empty() {
            stats.packets_relayed
        } else {
            stats.packets_out
        };
        Some(EngineCounters {
            forwarded,
            dropped: stats.drops_not_rtp
                + stats.drops_unforwardable
                + stats.drops_send_error
                + stats.drops_receive_error,
        })
    }

    fn core(&self) -> Option<usize> {
        Some(self.core)
    }

    fn can_mix(&self) -> bool {
        true
    }
}

impl Drop for SwitchboardTarget {
    fn drop(&mut self) {
        if !self.calls.is_empty() || !self.mix_members.is_empty() {
            if let Err(error) = self.close_calls() {
                warn!(%error, "closing the bench sessions");
            }
        }
        // Detaching is how the media plane learns the control plane is gone.
        drop(self.attachment.take());
        if let Some(media) = self.media.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !media.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if media.is_finished() {
                match media.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => warn!(%error, "the media plane stopped with an error"),
                    Err(_) => warn!("the media plane panicked"),
                }
            } else {
                warn!("the media plane did not stop within 5 s");
            }
        }
    }
}
