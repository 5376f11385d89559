//! One media worker: a long-lived loop that owns a fixed-capacity table of RTP sessions,
//! executes the control plane's commands from its shmq command ring and reports on its
//! event ring.
//!
//! The loop waits in epoll (mio) on the command doorbell, a deadline timerfd and every
//! session's UDP socket; then it drains commands, reads every ready socket, sends every
//! packet that is due and publishes events and counters. All buffers, the session table,
//! the deadline heap and the pending-event queue are allocated up front: the packet path
//! does not allocate, lock or log. Per-command work (binding a socket, mapping a file) is
//! allowed to.
//!
//! Recording: a recording session's received audio and sent audio are copied as fixed-size
//! frames into the worker's SPSC ring to its recording writer thread ([`crate::recorder`]);
//! the writer's completion reports come back on a second ring and become `RecordingDone`
//! events here, so the event ring keeps this worker as its only producer.
//!
//! Conference mixing: a mix member's received audio goes into its jitter buffer in the
//! worker's [`Mixer`]; the mixer runs on 20 ms ticks shared by all workers (through the
//! [`MixBus`]) just before due packets are sent, and every audio packet a member sends gets
//! its share of the mix added to whatever its play queue produced (see [`crate::mix`]).
//!
//! RTCP: every session also has a socket on its RTP port + 1, registered with the same packet
//! I/O under id `max_sessions + slot`. RTCP arriving there, or multiplexed on the RTP port
//! (RFC 5761), goes to the session's RTCP side; it is never forwarded to a bridge peer (each
//! leg terminates its own RTCP). A heap of report deadlines sends each session's compound
//! reports, each followed by a `QosReport` event; closing a session sends its last report
//! (with BYE) and a final `QosReport` before `SessionClosed`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use shmq::{
    Codec, Command, Doorbell, Event, FailReason, MediaId, Record, RecordingChannels, RecordingEnd,
    RecordingId, SessionId,
};
use tracing::{debug, warn};

use crate::mix::{MemberFlags, MemberId, MixBus, MixEvent, Mixer};
use crate::packet_io::{DpdkConfig, IoBackend, PacketIo};
use crate::player::MediaData;
use crate::ports::{PortError, PortPool, PortSlice};
use crate::recorder::{
    recorder_link, spawn_writer, RecorderLink, RecorderMessage, RecordingKey, StartMessage,
    StopMessage, WriterEnd,
};
use crate::recording::{max_wav_samples, samples_since, Direction, ReceiveClock};
use crate::rtcp::{is_rtcp, NtpClock};
use crate::rtcp_session::{RtcpReceived, RtcpTransmit};
use crate::rtp::RTP_HEADER_LEN;
use crate::session::{
    PayloadCodec, Received, Session, SessionError, SessionEvent, SessionParams, SessionUpdate,
    Transmit, MAX_PACKET_LEN, SAMPLES_PER_MS,
};
use crate::MediaError;

/// How often the loop wakes without traffic to look at the stop flag.
pub const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Events kept while the event ring is full; beyond this they are dropped (and counted).
pub const PENDING_EVENT_CAPACITY: usize = 4096;
/// Commands executed per loop iteration before sending due packets again.
const COMMANDS_PER_ITERATION: usize = 256;
/// How soon to retry pushing pending events to a full ring.
const PENDING_RETRY: Duration = Duration::from_millis(1);
/// Receive buffer: larger than any sane RTP datagram on an Ethernet path.
const RECV_BUFFER_LEN: usize = 2048;
/// Waker ids of the worker's descriptors in its packet I/O.
const WAKE_COMMANDS: u8 = 0;
const WAKE_RECORDER: u8 = 1;

/// Everything one worker needs; built by [`crate::run`] (or a test) and moved to its thread.
pub struct WorkerSetup {
    pub index: usize,
    pub rtp_ip: IpAddr,
    pub ports: PortSlice,
    pub cache_dir: PathBuf,
    /// Where recordings are written (`<RecordingId hex>.wav`).
    pub recordings_dir: PathBuf,
    pub max_sessions: usize,
    /// No RTP for this long → `RtpTimeout` (zero: never).
    pub rtp_timeout: Duration,
    /// Which packet I/O backend to use.
    pub io_backend: IoBackend,
    /// The port, for the DPDK backend.
    pub dpdk: Option<DpdkConfig>,
    pub segment: Arc<shmq::Segment>,
    pub commands: shmq::Consumer,
    pub events: shmq::Producer,
    pub command_doorbell: Doorbell,
    pub event_doorbell: Doorbell,
    /// The conference mixes, shared with the other workers of the process.
    pub mix_bus: Arc<MixBus>,
}

/// Events on their way to the event ring, with a bounded overflow queue.
struct EventOutbox {
    ring: shmq::Producer,
    doorbell: Doorbell,
    pending: VecDeque<Record>,
    pending_capacity: usize,
    pushed_since_ring: bool,
    dropped: u64,
}

impl EventOutbox {
    fn new(ring: shmq::Producer, doorbell: Doorbell, pending_capacity: usize) -> EventOutbox {
        EventOutbox {
            ring,
            doorbell,
            pending: VecDeque::with_capacity(pending_capacity),
            pending_capacity,
            pushed_since_ring: false,
            dropped: 0,
        }
    }

    fn push(&mut self, event: Event) {
        let record = event.encode();
        if self.pending.is_empty() && self.ring.push(&record).is_ok() {
            self.pushed_since_ring = true;
            return;
        }
        if self.pending.len() < self.pending_capacity {
            self.pending.push_back(record);
        } else {
            self.dropped += 1;
        }
    }

    /// Moves pending events to the ring while it has room; rings the doorbell if anything
    /// was published since the last ring.
    fn flush(&mut self) {
        while let Some(record) = self.pending.front() {
            if self.ring.push(record).is_err() {
                break;
            }
            self.pending.pop_front();
            self.pushed_since_ring = true;
        }
        if self.pushed_since_ring {
            self.doorbell.ring();
            self.pushed_since_ring = false;
        }
    }
}

/// Counters accumulated during one iteration, then added to the shared `WorkerStats`.
#[derive(Default)]
struct StatsDelta {
    packets_in: u64,
    packets_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    dtmf_events: u64,
    late_ticks: u64,
    /// Packets forwarded from one bridged leg out of the other.
    packets_relayed: u64,
    /// Packets a bridged leg received but did not forward (a payload type the other leg
    /// does not carry).
    relay_dropped: u64,
    not_rtp: u64,
    send_errors: u64,
    receive_errors: u64,
    rtp_timeouts: u64,
    /// RTCP datagrams that were not valid compound packets.
    bad_rtcp: u64,
    busy_ns: u64,
}

/// Running totals the worker keeps to publish and log changes only.
#[derive(Default, Debug, Clone, Copy)]
struct LocalCounters {
    send_errors: u64,
    receive_errors: u64,
    events_dropped_reported: u64,
    recording_frames_dropped_reported: u64,
}

/// A session's recording as the worker sees it: enough to place frames and end it.
#[derive(Debug, Clone, Copy)]
struct ActiveRecording {
    serial: u32,
    started: Instant,
    /// Where the recording ends at the latest (max_duration_ms, or the WAV size limit).
    max_samples: u64,
    receive_clock: ReceiveClock,
}

struct SessionSlot {
    id: SessionId,
    generation: u32,
    /// Its socket lives in the worker's packet I/O under the slot's index.
    port: u16,
    session: Session,
    recording: Option<ActiveRecording>,
    /// The slot of the session this one is bridged to (always mutual).
    bridge: Option<usize>,
    /// Its membership in a conference mix.
    mix: Option<MemberId>,
}

/// A worker's state; [`Worker::run`] is its loop.
pub struct Worker {
    index: usize,
    rtp_ip: IpAddr,
    cache_dir: PathBuf,
    recordings_dir: PathBuf,
    segment: Arc<shmq::Segment>,
    io: PacketIo,
    commands: shmq::Consumer,
    command_doorbell: Doorbell,
    outbox: EventOutbox,
    slots: Vec<Option<SessionSlot>>,
    generations: Vec<u32>,
    free_slots: Vec<usize>,
    by_id: HashMap<SessionId, usize>,
    deadlines: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    ports: PortPool,
    send_buffer: Box<[u8]>,
    recv_buffer: Box<[u8]>,
    stats: StatsDelta,
    local: LocalCounters,
    recorder: RecorderLink,
    /// Moved to the writer thread when the loop starts.
    writer_end: Option<WriterEnd>,
    /// Rung by the writer when a recording finished.
    recorder_doorbell: Arc<Doorbell>,
    /// (max-length deadline, slot, recording serial); stale entries are skipped.
    recording_deadlines: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    next_recording_serial: u32,
    rtp_timeout: Duration,
    /// When sessions are next checked for the RTP timeout.
    next_timeout_sweep: Instant,
    /// This worker's members of conference mixes.
    mixer: Mixer,
    /// NTP timestamps for RTCP, from the monotonic clock.
    ntp: NtpClock,
    /// (report deadline, slot): each session's next RTCP report; an entry whose deadline is
    /// no longer its session's (closed, or a new session in the slot) is skipped.
    rtcp_deadlines: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Worker {
    /// Allocates everything the worker will ever need and registers its doorbell and timer.
    pub fn new(setup: WorkerSetup) -> Result<Worker, MediaError> {
        let io_err = |source| MediaError::Io {
            worker: setup.index,
            source,
        };
        let max = setup.max_sessions;
        // Two sockets per session: RTP in `slot`, RTCP in `max + slot`.
        let (mut io, fallback) =
            PacketIo::open(setup.io_backend, max * 2, setup.dpdk.as_ref()).map_err(io_err)?;
        if let Some(why) = fallback {
            warn!(worker = setup.index, %why, "io_uring unavailable; using epoll");
        }
        io.add_waker(setup.command_doorbell.as_raw_fd(), WAKE_COMMANDS)
            .map_err(io_err)?;
        let recorder_doorbell = Arc::new(Doorbell::new().map_err(io_err)?);
        io.add_waker(recorder_doorbell.as_raw_fd(), WAKE_RECORDER)
            .map_err(io_err)?;
        let (recorder, writer_end) =
            recorder_link(max, Arc::clone(&recorder_doorbell)).map_err(io_err)?;
        Ok(Worker {
            index: setup.index,
            rtp_ip: setup.rtp_ip,
            cache_dir: setup.cache_dir,
            recordings_dir: setup.recordings_dir,
            segment: setup.segment,
            io,
            commands: setup.commands,
            command_doorbell: setup.command_doorbell,
            outbox: EventOutbox::new(setup.events, setup.event_doorbell, PENDING_EVENT_CAPACITY),
            slots: (0..max).map(|_| None).collect(),
            generations: vec![0; max],
            free_slots: (0..max).rev().collect(),
            by_id: HashMap::with_capacity(max),
            // Live entries are one per session; stale ones (closed sessions) drain within a ptime.
            deadlines: BinaryHeap::with_capacity(max * 2 + 16),
            ports: PortPool::new(setup.ports),
            send_buffer: vec![0u8; MAX_PACKET_LEN].into_boxed_slice(),
            recv_buffer: vec![0u8; RECV_BUFFER_LEN].into_boxed_slice(),
            stats: StatsDelta::default(),
            local: LocalCounters::default(),
            recorder,
            writer_end: Some(writer_end),
            recorder_doorbell,
            recording_deadlines: BinaryHeap::with_capacity(max * 2 + 16),
            next_recording_serial: 0,
            rtp_timeout: setup.rtp_timeout,
            next_timeout_sweep: Instant::now(),
            mixer: Mixer::new(setup.index, setup.mix_bus),
            ntp: NtpClock::new(Instant::now(), SystemTime::now()),
            rtcp_deadlines: BinaryHeap::with_capacity(max * 2 + 16),
        })
    }

    /// Runs until `stop` is set (checked at least every [`STOP_CHECK_INTERVAL`]).
    pub fn run(mut self, stop: &AtomicBool) -> Result<(), MediaError> {
        let writer_stop = Arc::new(AtomicBool::new(false));
        let writer = match self.writer_end.take() {
            Some(end) => Some(
                spawn_writer(
                    self.index,
                    self.recordings_dir.clone(),
                    end,
                    Arc::clone(&writer_stop),
                )
                .map_err(|source| MediaError::Spawn {
                    worker: self.index,
                    source,
                })?,
            ),
            None => None,
        };
        let result = self.run_loop(stop);
        // Recordings still open end with their sessions; the writer completes them.
        for index in 0..self.slots.len() {
            self.stop_recording(index, RecordingEnd::SessionClosed, Instant::now());
        }
        self.recorder.flush();
        writer_stop.store(true, Ordering::Release);
        self.recorder.wake_writer();
        if let Some(writer) = writer {
            if writer.join().is_err() {
                warn!(worker = self.index, "recording writer panicked");
            }
        }
        self.collect_finished_recordings();
        self.outbox.flush();
        result
    }

    fn run_loop(&mut self, stop: &AtomicBool) -> Result<(), MediaError> {
        debug!(worker = self.index, io = self.io.name(), ports = ?self.ports.slice(),
               "media worker started");
        while !stop.load(Ordering::Relaxed) {
            let wake = self.next_wake(Instant::now());
            let wakes = self.io.wait(wake).map_err(|source| MediaError::Io {
                worker: self.index,
                source,
            })?;
            let woke = Instant::now();
            if wakes.contains(WAKE_COMMANDS) {
                self.command_doorbell.drain();
            }
            if wakes.contains(WAKE_RECORDER) {
                self.recorder_doorbell.drain();
            }
            self.receive();
            self.execute_commands(Instant::now());
            // Mixing first: packets due on a tick carry that tick's mix.
            let now = Instant::now();
            self.run_mix_ticks(now);
            self.send_due(now);
            self.send_rtcp_reports(now);
            self.sweep_rtp_timeouts(Instant::now());
            self.end_due_recordings(Instant::now());
            self.recorder.flush();
            self.collect_finished_recordings();
            self.outbox.flush();
            self.stats.busy_ns += u64::try_from(woke.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.publish_stats();
        }
        debug!(
            worker = self.index,
            sessions = self.by_id.len(),
            send_errors = self.local.send_errors,
            receive_errors = self.local.receive_errors,
            events_dropped = self.outbox.dropped,
            "media worker stopping"
        );
        Ok(())
    }

    /// The earliest of: the next send deadline, a retry for pending events or leftover
    /// commands, and the stop check.
    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + STOP_CHECK_INTERVAL;
        if let Some(Reverse((deadline, _, _))) = self.deadlines.peek() {
            wake = wake.min(*deadline);
        }
        if let Some(Reverse((deadline, _, _))) = self.recording_deadlines.peek() {
            wake = wake.min(*deadline);
        }
        if let Some(Reverse((deadline, _))) = self.rtcp_deadlines.peek() {
            wake = wake.min(*deadline);
        }
        if !self.rtp_timeout.is_zero() {
            wake = wake.min(self.next_timeout_sweep);
        }
        if let Some(tick) = self.mixer.next_tick_at() {
            wake = wake.min(tick);
        }
        if !self.outbox.pending.is_empty() || self.recorder.has_pending() {
            wake = wake.min(now + PENDING_RETRY);
        }
        if !self.commands.is_empty() {
            wake = now;
        }
        wake
    }

    fn execute_commands(&mut self, now: Instant) {
        for _ in 0..COMMANDS_PER_ITERATION {
            let Some(record) = self.commands.pop() else {
                return;
            };
            match Command::decode(&record) {
                Ok(command) => self.execute(command, now),
                Err(error) => {
                    warn!(worker = self.index, kind = record.kind, session = record.session, %error,
                          "undecodable command");
                    self.outbox.push(Event::SessionFailed {
                        session: SessionId(record.session),
                        reason: FailReason::BadCommand,
                    });
                }
            }
        }
    }

    fn execute(&mut self, command: Command, now: Instant) {
        match command {
            Command::StartRecording {
                session,
                recording,
                channels,
                max_duration_ms,
            } => {
                if let Err(reason) =
                    self.start_recording(session, recording, channels, max_duration_ms, now)
                {
                    self.outbox.push(Event::SessionFailed { session, reason });
                }
            }
            Command::Bridge { session, peer } => {
                let event = match self.bridge(session, peer, now) {
                    Ok(()) => Event::Bridged { session, peer },
                    Err(reason) => Event::SessionFailed { session, reason },
                };
                self.outbox.push(event);
            }
            Command::JoinMix {
                session,
                mix,
                muted,
                deaf,
            } => {
                let event = match self.join_mix(session, mix, MemberFlags { muted, deaf }, now) {
                    Ok(()) => Event::MixJoined {
                        session,
                        mix,
                        muted,
                        deaf,
                    },
                    Err(reason) => Event::SessionFailed { session, reason },
                };
                self.outbox.push(event);
            }
            Command::LeaveMix { session } => match self.by_id.get(&session) {
                Some(&index) => {
                    if !self.leave_mix(index) {
                        warn!(
                            worker = self.index,
                            session = session.0,
                            "LeaveMix of a session in no mix"
                        );
                        self.outbox.push(Event::SessionFailed {
                            session,
                            reason: FailReason::BadCommand,
                        });
                    }
                }
                None => self.unknown_session(session),
            },
            Command::Unbridge { session } => match self.by_id.get(&session) {
                Some(&index) => {
                    if !self.unbridge(index, now) {
                        warn!(
                            worker = self.index,
                            session = session.0,
                            "Unbridge of a session that is not bridged"
                        );
                        self.outbox.push(Event::SessionFailed {
                            session,
                            reason: FailReason::BadCommand,
                        });
                    }
                }
                None => self.unknown_session(session),
            },
            Command::StopRecording { session } => match self.by_id.get(&session) {
                Some(&index) => self.stop_recording(index, RecordingEnd::Stopped, now),
                None => self.unknown_session(session),
            },
            Command::OpenSession {
                session,
                remote,
                codec,
                dtmf_payload_type,
                ptime_ms,
            } => {
                let event = match self.open_session(
                    session,
                    remote,
                    codec,
                    dtmf_payload_type,
                    ptime_ms,
                    now,
                ) {
                    Ok(local_port) => Event::SessionOpened {
                        session,
                        local_port,
                    },
                    Err(reason) => Event::SessionFailed { session, reason },
                };
                self.outbox.push(event);
            }
            Command::Play {
                session,
                play_id,
                media,
                loops,
            } => {
                let was_idle = self.is_idle(session);
                match self.play(session, play_id, media, loops) {
                    Ok(()) => self.begin_item(session, was_idle),
                    Err(reason) => self.outbox.push(Event::PlayFailed {
                        session,
                        play_id,
                        reason,
                    }),
                }
            }
            Command::Silence {
                session,
                play_id,
                duration_ms,
            } => {
                let was_idle = self.is_idle(session);
                let result = match self.session_mut(session) {
                    Some(slot) => slot
                        .session
                        .silence(play_id, duration_ms)
                        .map_err(|_| FailReason::BadCommand),
                    None => Err(FailReason::UnknownSession),
                };
                if result.is_ok() {
                    self.begin_item(session, was_idle);
                }
                if let Err(reason) = result {
                    self.outbox.push(Event::PlayFailed {
                        session,
                        play_id,
                        reason,
                    });
                }
            }
            Command::StopPlayback { session } => {
                let Some(&index) = self.by_id.get(&session) else {
                    self.unknown_session(session);
                    return;
                };
                let Self { slots, outbox, .. } = self;
                if let Some(Some(slot)) = slots.get_mut(index) {
                    slot.session
                        .stop_playback(|e| outbox.push(session_event(session, e)));
                }
            }
            Command::CloseSession { session } => match self.by_id.get(&session) {
                Some(&index) => self.close_session(index),
                None => self.unknown_session(session),
            },
            Command::UpdateSession {
                session,
                remote,
                codec,
                dtmf_payload_type,
                ptime_ms,
            } => {
                let update = SessionUpdate {
                    remote,
                    codec: payload_codec(codec),
                    dtmf_payload_type,
                    ptime_ms,
                };
                let event = match self.update_session(session, update) {
                    Ok(()) => {
                        self.realign_mix_member(session, now);
                        Event::SessionUpdated { session }
                    }
                    Err(reason) => Event::SessionFailed { session, reason },
                };
                self.outbox.push(event);
            }
            Command::SendDigits {
                session, play_id, ..
            } => {
                let was_idle = self.is_idle(session);
                let result = match self.session_mut(session) {
                    Some(slot) => {
                        slot.session
                            .send_digits(play_id, command.digits())
                            .map_err(|error| {
                                warn!(session = session.0, %error, "SendDigits refused");
                                FailReason::BadCommand
                            })
                    }
                    None => Err(FailReason::UnknownSession),
                };
                match result {
                    Ok(()) => self.begin_item(session, was_idle),
                    Err(reason) => self.outbox.push(Event::PlayFailed {
                        session,
                        play_id,
                        reason,
                    }),
                }
            }
        }
    }

    /// Applies an `UpdateSession`; the session keeps its socket, slot and deadline.
    fn update_session(
        &mut self,
        session: SessionId,
        update: SessionUpdate,
    ) -> Result<(), FailReason> {
        let worker = self.index;
        let rtp_ip = self.rtp_ip;
        let slot = self
            .session_mut(session)
            .ok_or(FailReason::UnknownSession)?;
        if update.remote.is_ipv4() != rtp_ip.is_ipv4() {
            warn!(worker, session = session.0, remote = %update.remote, %rtp_ip,
                  "remote address family differs from the RTP address");
            return Err(FailReason::BadCommand);
        }
        slot.session.update(update).map_err(|error| {
            warn!(worker, session = session.0, %error, "UpdateSession refused");
            FailReason::BadCommand
        })?;
        debug!(worker, session = session.0, remote = %update.remote, "session updated");
        Ok(())
    }

    fn unknown_session(&mut self, session: SessionId) {
        warn!(
            worker = self.index,
            session = session.0,
            "command for unknown session"
        );
        self.outbox.push(Event::SessionFailed {
            session,
            reason: FailReason::UnknownSession,
        });
    }

    /// Whether the session exists and has nothing queued (it sends silence, or nothing yet).
    fn is_idle(&self, session: SessionId) -> bool {
        self.by_id
            .get(&session)
            .and_then(|index| self.slots.get(*index))
            .and_then(Option::as_ref)
            .is_some_and(|slot| slot.session.queued_items() == 0)
    }

    /// An item was queued on a session that had none: start its talkspurt now and
    /// reschedule it (the new generation retires the old deadline entry).
    fn begin_item(&mut self, session: SessionId, was_idle: bool) {
        if !was_idle {
            return;
        }
        let Some(index) = self.by_id.get(&session).copied() else {
            return;
        };
        if self.is_mix_member(index) {
            // A member already sends on the mix's ticks; the item starts on the next one.
            return;
        }
        if let Some(Some(slot)) = self.slots.get_mut(index) {
            slot.session.start_talkspurt(Instant::now());
        }
        self.reschedule(index);
    }

    /// Retires the session's pending send deadline (a new generation) and, if it paces its
    /// own stream, schedules its next packet.
    fn reschedule(&mut self, index: usize) {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return;
        };
        let Some(generation) = self.generations.get_mut(index) else {
            return;
        };
        *generation = generation.wrapping_add(1);
        slot.generation = *generation;
        if slot.session.is_pacing() {
            self.deadlines.push(Reverse((
                slot.session.next_send_at(),
                index,
                slot.generation,
            )));
        }
    }

    /// Bridges two sessions of this worker (see `Command::Bridge`).
    fn bridge(
        &mut self,
        session: SessionId,
        peer: SessionId,
        now: Instant,
    ) -> Result<(), FailReason> {
        let a = *self.by_id.get(&session).ok_or(FailReason::UnknownSession)?;
        let b = *self.by_id.get(&peer).ok_or(FailReason::UnknownSession)?;
        let already_bridged = |index: usize| {
            self.slots
                .get(index)
                .and_then(Option::as_ref)
                .is_none_or(|slot| slot.bridge.is_some())
        };
        if a == b
            || already_bridged(a)
            || already_bridged(b)
            || self.is_mix_member(a)
            || self.is_mix_member(b)
        {
            warn!(
                worker = self.index,
                session = session.0,
                peer = peer.0,
                "Bridge refused: same session, already bridged or in a mix"
            );
            return Err(FailReason::BadCommand);
        }
        for (index, other) in [(a, b), (b, a)] {
            let Self { slots, outbox, .. } = self;
            if let Some(Some(slot)) = slots.get_mut(index) {
                let id = slot.id;
                slot.bridge = Some(other);
                slot.session
                    .start_relay(|e| outbox.push(session_event(id, e)));
            }
            self.reschedule(index);
        }
        debug!(
            worker = self.index,
            session = session.0,
            peer = peer.0,
            ?now,
            "bridged"
        );
        Ok(())
    }

    /// Ends the bridge of the session in `index` (if it has one): both legs pace their own
    /// streams again and each gets an `Unbridged`. Returns whether there was a bridge.
    fn unbridge(&mut self, index: usize, now: Instant) -> bool {
        let Some(peer_index) = self
            .slots
            .get_mut(index)
            .and_then(Option::as_mut)
            .and_then(|slot| slot.bridge.take())
        else {
            return false;
        };
        let id_of = |slots: &[Option<SessionSlot>], i: usize| {
            slots.get(i).and_then(Option::as_ref).map(|slot| slot.id)
        };
        let (this, peer) = (id_of(&self.slots, index), id_of(&self.slots, peer_index));
        self.end_bridge_leg(index, peer, now);
        self.end_bridge_leg(peer_index, this, now);
        true
    }

    /// Returns the bridged leg in `index` to its own paced media and tells the control plane
    /// its bridge to `peer` ended.
    fn end_bridge_leg(&mut self, index: usize, peer: Option<SessionId>, now: Instant) {
        if let Some(Some(slot)) = self.slots.get_mut(index) {
            slot.bridge = None;
            slot.session.end_relay(now);
            if let Some(peer) = peer {
                self.outbox.push(Event::Unbridged {
                    session: slot.id,
                    peer,
                });
            }
        }
        self.reschedule(index);
    }

    /// Reports every session that has received no RTP for the RTP timeout (once per
    /// silence); runs every tenth of the timeout (10 ms to 1 s).
    fn sweep_rtp_timeouts(&mut self, now: Instant) {
        if self.rtp_timeout.is_zero() || now < self.next_timeout_sweep {
            return;
        }
        let interval =
            (self.rtp_timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        self.next_timeout_sweep = now + interval;
        for slot in self.slots.iter_mut().flatten() {
            if let Some(idle_ms) = slot.session.poll_rtp_timeout(now, self.rtp_timeout) {
                debug!(
                    worker = self.index,
                    session = slot.id.0,
                    idle_ms,
                    "RTP timeout"
                );
                self.stats.rtp_timeouts += 1;
                self.outbox.push(Event::RtpTimeout {
                    session: slot.id,
                    idle_ms,
                });
            }
        }
    }

    fn session_mut(&mut self, session: SessionId) -> Option<&mut SessionSlot> {
        let index = *self.by_id.get(&session)?;
        self.slots.get_mut(index)?.as_mut()
    }

    fn open_session(
        &mut self,
        id: SessionId,
        remote: SocketAddr,
        codec: Codec,
        dtmf_payload_type: Option<u8>,
        ptime_ms: u16,
        now: Instant,
    ) -> Result<u16, FailReason> {
        if self.by_id.contains_key(&id) {
            warn!(
                worker = self.index,
                session = id.0,
                "OpenSession for an open session"
            );
            return Err(FailReason::BadCommand);
        }
        if remote.is_ipv4() != self.rtp_ip.is_ipv4() {
            warn!(worker = self.index, session = id.0, %remote, rtp_ip = %self.rtp_ip,
                  "remote address family differs from the RTP address");
            return Err(FailReason::BadCommand);
        }
        let params = SessionParams::with_random_origin(
            remote,
            payload_codec(codec),
            dtmf_payload_type,
            ptime_ms,
        );
        let session = match Session::new(params, now) {
            Ok(session) => session,
            Err(error) => {
                warn!(worker = self.index, session = id.0, %error, "OpenSession refused");
                return Err(FailReason::BadCommand);
            }
        };
        let Some(index) = self.free_slots.pop() else {
            return Err(FailReason::SessionTableFull);
        };
        let rtp_ip = self.rtp_ip;
        // The RTP port and the RTCP port above it; a port whose pair is taken is skipped.
        let rtcp_slot = self.rtcp_socket(index);
        let io = &mut self.io;
        let port = match self.ports.acquire(|port| {
            let rtcp_port = port.checked_add(1).ok_or(std::io::ErrorKind::AddrInUse)?;
            io.bind(index, SocketAddr::new(rtp_ip, port))?;
            if let Err(error) = io.bind(rtcp_slot, SocketAddr::new(rtp_ip, rtcp_port)) {
                io.remove_socket(index);
                return Err(error);
            }
            Ok(())
        }) {
            Ok((port, ())) => port,
            Err(error) => {
                self.free_slots.push(index);
                return Err(match error {
                    PortError::NoPortAvailable => FailReason::NoPortAvailable,
                    PortError::Bind { port, source } => {
                        warn!(worker = self.index, port, %source, "binding an RTP port failed");
                        FailReason::SocketError
                    }
                });
            }
        };
        self.rtcp_deadlines
            .push(Reverse((session.next_report_at(), index)));
        // No deadline yet: the session sends nothing until its first item is queued.
        let generation = self.generations.get(index).copied().unwrap_or(0);
        if let Some(entry) = self.slots.get_mut(index) {
            *entry = Some(SessionSlot {
                id,
                generation,
                port,
                session,
                recording: None,
                bridge: None,
                mix: None,
            });
        }
        self.by_id.insert(id, index);
        debug!(worker = self.index, session = id.0, port, %remote, "session opened");
        Ok(port)
    }

    fn play(
        &mut self,
        session: SessionId,
        play_id: u32,
        media: MediaId,
        loops: u16,
    ) -> Result<(), FailReason> {
        if !self.by_id.contains_key(&session) {
            return Err(FailReason::UnknownSession);
        }
        let path = self.cache_dir.join(media.file_name());
        let data = MediaData::map_file(&path).map_err(|error| {
            warn!(worker = self.index, session = session.0, path = %path.display(), %error,
                  "media file unavailable");
            FailReason::MediaNotFound
        })?;
        let slot = self
            .session_mut(session)
            .ok_or(FailReason::UnknownSession)?;
        slot.session
            .play(play_id, data, loops)
            .map_err(|error: SessionError| {
                warn!(session = session.0, %error, "Play refused");
                FailReason::BadCommand
            })
    }

    fn close_session(&mut self, index: usize) {
        let now = Instant::now();
        // MixLeft comes before SessionClosed.
        self.leave_mix(index);
        self.stop_recording(index, RecordingEnd::SessionClosed, now);
        if let Some(peer_index) = self
            .slots
            .get_mut(index)
            .and_then(Option::as_mut)
            .and_then(|slot| slot.bridge.take())
        {
            // The surviving leg goes back to its own media and hears about it.
            let closed = self
                .slots
                .get(index)
                .and_then(Option::as_ref)
                .map(|slot| slot.id);
            self.end_bridge_leg(peer_index, closed, now);
        }
        let Some(mut slot) = self.slots.get_mut(index).and_then(Option::take) else {
            return;
        };
        // The last RTCP report (with BYE); the final quality figures go out right before
        // SessionClosed.
        let ntp = self.ntp.ntp(now);
        if let Some(transmit) = slot.session.final_report(now, ntp, &mut self.send_buffer) {
            let sessions = self.slots.len();
            send_rtcp(
                &mut self.io,
                &mut self.stats,
                sessions,
                index,
                transmit,
                &self.send_buffer,
            );
        }
        let final_qos = slot.session.qos(now, true);
        self.io.remove_socket(index);
        self.io.remove_socket(self.rtcp_socket(index));
        self.ports.release(slot.port);
        if let Some(generation) = self.generations.get_mut(index) {
            *generation = generation.wrapping_add(1);
        }
        self.free_slots.push(index);
        self.by_id.remove(&slot.id);
        let id = slot.id;
        let outbox = &mut self.outbox;
        let counters = slot.session.close(|e| outbox.push(session_event(id, e)));
        outbox.push(Event::QosReport {
            session: id,
            qos: final_qos,
        });
        outbox.push(Event::SessionClosed {
            session: id,
            packets_sent: counters.packets_sent,
            packets_received: counters.packets_received,
        });
        debug!(
            worker = self.index,
            session = id.0,
            ?counters,
            "session closed"
        );
    }

    /// Handles every datagram the last wait brought; a bridged session's packets are
    /// forwarded out of its peer's socket as they arrive.
    fn receive(&mut self) {
        let now = Instant::now();
        let Self {
            io,
            slots,
            recv_buffer,
            send_buffer,
            outbox,
            stats,
            recorder,
            mixer,
            ntp,
            ..
        } = self;
        let sessions = slots.len();
        while let Some(datagram) = io.next_datagram(recv_buffer) {
            let (socket, source, len) = (datagram.slot, datagram.source, datagram.len);
            // Sockets `sessions..` are the RTCP ports.
            let (index, on_rtcp_port) = match socket.checked_sub(sessions) {
                Some(index) => (index, true),
                None => (socket, false),
            };
            let Some(Some(slot)) = slots.get_mut(index) else {
                continue;
            };
            stats.packets_in += 1;
            stats.bytes_in += len as u64;
            let id = slot.id;
            let datagram = recv_buffer.get(..len).unwrap_or_default();
            if on_rtcp_port || is_rtcp(datagram) {
                let rtcp =
                    slot.session
                        .handle_rtcp(now, ntp.ntp(now), source, datagram, !on_rtcp_port);
                match rtcp {
                    RtcpReceived::Accepted => {}
                    RtcpReceived::Ignored => stats.not_rtp += 1,
                    RtcpReceived::Malformed => stats.bad_rtcp += 1,
                }
                continue;
            }
            let received = slot.session.handle_datagram(now, source, datagram, |e| {
                // RFC 4733 and in-band digits alike.
                if matches!(e, SessionEvent::Dtmf { .. }) {
                    stats.dtmf_events += 1;
                }
                outbox.push(session_event(id, e))
            });
            if received == Received::Ignored {
                stats.not_rtp += 1;
            }
            if let (Some((packet, codec)), Some(recording)) =
                (received.audio(), slot.recording.as_mut())
            {
                let arrival = samples_since(recording.started, now);
                let position =
                    recording
                        .receive_clock
                        .place(packet.ssrc, packet.timestamp, arrival);
                recorder.audio(
                    recording_key(index, recording.serial),
                    Direction::Received,
                    codec,
                    position,
                    packet.payload,
                );
            }
            if let (Some(member), Some((packet, codec))) = (slot.mix, received.audio()) {
                mixer.receive(member, packet.ssrc, packet.timestamp, packet.payload, codec);
            }
            let (Some(peer_index), Received::Rtp { packet, kind }) = (slot.bridge, received) else {
                continue;
            };
            let Some(Some(peer)) = slots.get_mut(peer_index) else {
                continue;
            };
            let Some(transmit) = peer.session.forward(now, &packet, kind, send_buffer) else {
                stats.relay_dropped += 1;
                continue;
            };
            let out = send_buffer.get(..transmit.len).unwrap_or_default();
            if let (true, Some(recording)) = (transmit.audio, peer.recording.as_ref()) {
                recorder.audio(
                    recording_key(peer_index, recording.serial),
                    Direction::Sent,
                    peer.session.codec(),
                    samples_since(recording.started, now),
                    out.get(RTP_HEADER_LEN..).unwrap_or_default(),
                );
            }
            match io.send(peer_index, transmit.destination, out) {
                Ok(()) => {
                    stats.packets_out += 1;
                    stats.bytes_out += out.len() as u64;
                    stats.packets_relayed += 1;
                }
                Err(_) => stats.send_errors += 1,
            }
        }
    }

    /// Sends every packet whose deadline has passed.
    fn send_due(&mut self, now: Instant) {
        let Self {
            io,
            slots,
            deadlines,
            send_buffer,
            outbox,
            stats,
            recorder,
            mixer,
            ..
        } = self;
        while let Some(Reverse((deadline, index, generation))) = deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            deadlines.pop();
            let Some(Some(slot)) = slots.get_mut(index) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            let id = slot.id;
            while let Some(transmit) = slot
                .session
                .poll_transmit(now, send_buffer, |e| outbox.push(session_event(id, e)))
            {
                stats.late_ticks += transmit.skipped_ticks;
                if let Some(member) = slot.mix {
                    add_mix_to_packet(mixer, member, &slot.session, &transmit, send_buffer);
                }
                let packet = send_buffer.get(..transmit.len).unwrap_or_default();
                if let (true, Some(recording)) = (transmit.audio, slot.recording.as_ref()) {
                    recorder.audio(
                        recording_key(index, recording.serial),
                        Direction::Sent,
                        slot.session.codec(),
                        samples_since(recording.started, transmit.due),
                        packet.get(RTP_HEADER_LEN..).unwrap_or_default(),
                    );
                }
                match io.send(index, transmit.destination, packet) {
                    Ok(()) => {
                        stats.packets_out += 1;
                        stats.bytes_out += packet.len() as u64;
                    }
                    Err(_) => stats.send_errors += 1,
                }
            }
            if slot.session.is_pacing() {
                deadlines.push(Reverse((slot.session.next_send_at(), index, generation)));
            }
        }
    }

    /// Sends every RTCP report that is due, each followed by the session's `QosReport`.
    fn send_rtcp_reports(&mut self, now: Instant) {
        let Self {
            io,
            slots,
            rtcp_deadlines,
            send_buffer,
            outbox,
            stats,
            ntp,
            ..
        } = self;
        let sessions = slots.len();
        while let Some(Reverse((deadline, index))) = rtcp_deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            rtcp_deadlines.pop();
            let Some(Some(slot)) = slots.get_mut(index) else {
                continue;
            };
            if slot.session.next_report_at() != deadline {
                continue;
            }
            if let Some(transmit) = slot.session.poll_report(now, ntp.ntp(now), send_buffer) {
                send_rtcp(io, stats, sessions, index, transmit, send_buffer);
                outbox.push(Event::QosReport {
                    session: slot.id,
                    qos: slot.session.qos(now, false),
                });
            }
            rtcp_deadlines.push(Reverse((slot.session.next_report_at(), index)));
        }
    }

    /// The packet I/O id of a session's RTCP socket.
    fn rtcp_socket(&self, index: usize) -> usize {
        self.slots.len() + index
    }

    /// Adds this iteration's counters to the shared `WorkerStats`.
    fn publish_stats(&mut self) {
        let io_errors = self.io.take_errors();
        self.stats.send_errors += io_errors.send;
        self.stats.receive_errors += io_errors.receive + io_errors.oversized;
        let delta = std::mem::take(&mut self.stats);
        let shared = self.segment.worker_stats(self.index);
        let add = |counter: &std::sync::atomic::AtomicU64, value: u64| {
            if value != 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        };
        add(&shared.packets_in, delta.packets_in);
        add(&shared.packets_out, delta.packets_out);
        add(&shared.bytes_in, delta.bytes_in);
        add(&shared.bytes_out, delta.bytes_out);
        add(&shared.dtmf_events, delta.dtmf_events);
        add(&shared.late_ticks, delta.late_ticks);
        add(&shared.packets_relayed, delta.packets_relayed);
        add(&shared.drops_not_rtp, delta.not_rtp);
        add(&shared.drops_unforwardable, delta.relay_dropped);
        add(&shared.drops_send_error, delta.send_errors);
        add(&shared.drops_receive_error, delta.receive_errors);
        add(&shared.rtp_timeouts, delta.rtp_timeouts);
        add(&shared.drops_bad_rtcp, delta.bad_rtcp);
        add(&shared.busy_ns, delta.busy_ns);
        self.local.send_errors += delta.send_errors;
        self.local.receive_errors += delta.receive_errors;
        shared
            .sessions_active
            .store(self.by_id.len() as u64, Ordering::Relaxed);
        report_drops(
            &shared.events_dropped,
            self.outbox.dropped,
            &mut self.local.events_dropped_reported,
            self.index,
            "event ring and pending queue full: events dropped",
        );
        report_drops(
            &shared.recording_frames_dropped,
            self.recorder.frames_dropped,
            &mut self.local.recording_frames_dropped_reported,
            self.index,
            "recording ring full: audio frames dropped",
        );
    }

    /// Starts recording a session: the writer is told first, then frames follow.
    fn start_recording(
        &mut self,
        session: SessionId,
        recording: RecordingId,
        channels: RecordingChannels,
        max_duration_ms: u32,
        now: Instant,
    ) -> Result<(), FailReason> {
        let worker = self.index;
        let index = *self.by_id.get(&session).ok_or(FailReason::UnknownSession)?;
        let serial = self.next_recording_serial;
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return Err(FailReason::UnknownSession);
        };
        if slot.recording.is_some() {
            warn!(
                worker,
                session = session.0,
                "StartRecording while recording"
            );
            return Err(FailReason::BadCommand);
        }
        self.next_recording_serial = serial.wrapping_add(1);
        let wav_limit = max_wav_samples(channels);
        let max_samples = match max_duration_ms {
            0 => wav_limit,
            ms => (u64::from(ms) * u64::from(SAMPLES_PER_MS)).min(wav_limit),
        };
        slot.recording = Some(ActiveRecording {
            serial,
            started: now,
            max_samples,
            receive_clock: ReceiveClock::new(),
        });
        let key = recording_key(index, serial);
        self.recorder.control(RecorderMessage::Start(StartMessage {
            key,
            session,
            recording,
            channels,
            max_samples,
        }));
        let max_duration = Duration::from_millis(max_samples / u64::from(SAMPLES_PER_MS));
        if let Some(deadline) = now.checked_add(max_duration) {
            self.recording_deadlines
                .push(Reverse((deadline, index, serial)));
        }
        debug!(
            worker,
            session = session.0,
            ?recording,
            ?channels,
            max_duration_ms,
            "recording started"
        );
        Ok(())
    }

    /// Ends the recording of the session in `index`, if it has one, at `now` (at most its
    /// maximum length); the writer completes the file and reports it.
    fn stop_recording(&mut self, index: usize, end: RecordingEnd, now: Instant) {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return;
        };
        let Some(recording) = slot.recording.take() else {
            return;
        };
        let elapsed = u64::try_from(samples_since(recording.started, now)).unwrap_or(0);
        let end_position = match end {
            RecordingEnd::MaxLength => recording.max_samples,
            _ => elapsed.min(recording.max_samples),
        };
        self.recorder.control(RecorderMessage::Stop(StopMessage {
            key: recording_key(index, recording.serial),
            end_position,
            end,
        }));
    }

    /// Ends every recording whose maximum length has been reached.
    fn end_due_recordings(&mut self, now: Instant) {
        while let Some(Reverse((deadline, index, serial))) =
            self.recording_deadlines.peek().copied()
        {
            if deadline > now {
                break;
            }
            self.recording_deadlines.pop();
            let current = self
                .slots
                .get(index)
                .and_then(Option::as_ref)
                .and_then(|slot| slot.recording.as_ref())
                .is_some_and(|recording| recording.serial == serial);
            if current {
                self.stop_recording(index, RecordingEnd::MaxLength, now);
            }
        }
    }

    /// Turns the writer's completion reports into `RecordingDone` events.
    fn collect_finished_recordings(&mut self) {
        while let Some(finished) = self.recorder.pop_finished() {
            // A write failure ends a recording the worker still considers active.
            let index = finished.key.slot as usize;
            if let Some(Some(slot)) = self.slots.get_mut(index) {
                if slot
                    .recording
                    .is_some_and(|recording| recording.serial == finished.key.serial)
                {
                    slot.recording = None;
                }
            }
            self.outbox.push(Event::RecordingDone {
                session: finished.session,
                recording: finished.recording,
                duration_ms: finished.duration_ms,
                bytes: finished.bytes,
                end: finished.end,
            });
        }
    }
}

/// The conference mix part of the worker (see [`crate::mix`]).
impl Worker {
    fn is_mix_member(&self, index: usize) -> bool {
        self.slots
            .get(index)
            .and_then(Option::as_ref)
            .is_some_and(|slot| slot.mix.is_some())
    }

    /// Makes a session a member of `mix` (see `Command::JoinMix`), or changes its flags if it
    /// is one already. Its packets move onto the mixer's ticks (the stream starts if it had
    /// not).
    fn join_mix(
        &mut self,
        session: SessionId,
        mix: shmq::MixId,
        flags: MemberFlags,
        now: Instant,
    ) -> Result<(), FailReason> {
        let worker = self.index;
        let index = *self.by_id.get(&session).ok_or(FailReason::UnknownSession)?;
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return Err(FailReason::UnknownSession);
        };
        if slot.bridge.is_some() {
            warn!(worker, session = session.0, "JoinMix of a bridged session");
            return Err(FailReason::BadCommand);
        }
        if let Some(member) = slot.mix {
            if self.mixer.mix_of(member) != Some(mix) {
                warn!(
                    worker,
                    session = session.0,
                    mix = mix.0,
                    "JoinMix while in another mix"
                );
                return Err(FailReason::BadCommand);
            }
            self.mixer.set_flags(member, flags);
            debug!(
                worker,
                session = session.0,
                mix = mix.0,
                ?flags,
                "mix member updated"
            );
            return Ok(());
        }
        let member = self
            .mixer
            .join(session, mix, flags, slot.session.ptime_ms(), now)
            .map_err(|error| {
                warn!(worker, session = session.0, mix = mix.0, %error, "JoinMix refused");
                FailReason::BadCommand
            })?;
        slot.mix = Some(member);
        let at = self
            .mixer
            .aligned_send_time(slot.session.next_send_at(), now);
        slot.session.rebase_grid(at);
        self.reschedule(index);
        debug!(
            worker,
            session = session.0,
            mix = mix.0,
            ?flags,
            "joined mix"
        );
        Ok(())
    }

    /// Takes the session in `index` out of its mix and reports `MixLeft`; false if it was
    /// in none.
    fn leave_mix(&mut self, index: usize) -> bool {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return false;
        };
        let Some(member) = slot.mix.take() else {
            return false;
        };
        let session = slot.id;
        if let Some((mix, stats)) = self.mixer.leave(member) {
            debug!(
                worker = self.index,
                session = session.0,
                mix = mix.0,
                ?stats,
                "left mix"
            );
            self.outbox.push(Event::MixLeft { session, mix });
        }
        true
    }

    /// After an `UpdateSession` of a member: its output queue follows the new ptime and its
    /// packets go back onto the mixer's ticks.
    fn realign_mix_member(&mut self, session: SessionId, now: Instant) {
        let Some(index) = self.by_id.get(&session).copied() else {
            return;
        };
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return;
        };
        let Some(member) = slot.mix else {
            return;
        };
        self.mixer.set_ptime(member, slot.session.ptime_ms());
        let at = self
            .mixer
            .aligned_send_time(slot.session.next_send_at(), now);
        slot.session.rebase_grid(at);
        self.reschedule(index);
    }

    /// Mixes every tick that has started; speaking changes become events.
    fn run_mix_ticks(&mut self, now: Instant) {
        let Self { mixer, outbox, .. } = self;
        mixer.run_due_ticks(now, |event| match event {
            MixEvent::Speaking {
                session,
                mix,
                speaking,
            } => outbox.push(Event::Speaking {
                session,
                mix,
                speaking,
            }),
        });
    }
}

/// A member's session wrote `transmit` into `buffer`: an audio packet gets the member's share
/// of the mix; an RFC 4733 event (and any ticks the session skipped) uses up that much of it.
fn add_mix_to_packet(
    mixer: &mut Mixer,
    member: MemberId,
    session: &Session,
    transmit: &Transmit,
    buffer: &mut [u8],
) {
    let per_packet = usize::from(session.ptime_ms()) * SAMPLES_PER_MS as usize;
    let skipped = usize::try_from(transmit.skipped_ticks).unwrap_or(usize::MAX);
    mixer.skip_output(member, skipped.saturating_mul(per_packet));
    if !transmit.audio {
        mixer.skip_output(member, per_packet);
        return;
    }
    if let Some(payload) = buffer.get_mut(RTP_HEADER_LEN..transmit.len) {
        mixer.mix_into_payload(member, payload, session.codec());
    }
}

/// Adds what a running drop total gained since it was last reported to its shared counter,
/// and logs the new total (once per loop pass at most, only when it changed).
fn report_drops(
    counter: &std::sync::atomic::AtomicU64,
    total: u64,
    reported: &mut u64,
    worker: usize,
    message: &'static str,
) {
    if total == *reported {
        return;
    }
    counter.fetch_add(total.saturating_sub(*reported), Ordering::Relaxed);
    warn!(worker, dropped = total, "{message}");
    *reported = total;
}

/// Sends an RTCP compound written at the start of `buffer` out of the session's RTCP socket
/// (`sessions + index`), or its RTP socket when the far end multiplexes.
fn send_rtcp(
    io: &mut PacketIo,
    stats: &mut StatsDelta,
    sessions: usize,
    index: usize,
    transmit: RtcpTransmit,
    buffer: &[u8],
) {
    let socket = if transmit.from_rtp_port {
        index
    } else {
        sessions + index
    };
    let packet = buffer.get(..transmit.len).unwrap_or_default();
    match io.send(socket, transmit.destination, packet) {
        Ok(()) => {
            stats.packets_out += 1;
            stats.bytes_out += packet.len() as u64;
        }
        Err(_) => stats.send_errors += 1,
    }
}

fn recording_key(index: usize, serial: u32) -> RecordingKey {
    RecordingKey {
        slot: index as u32,
        serial,
    }
}

fn payload_codec(codec: Codec) -> PayloadCodec {
    match codec {
        Codec::Pcmu => PayloadCodec::Pcmu,
        Codec::Pcma => PayloadCodec::Pcma,
    }
}

fn session_event(session: SessionId, event: SessionEvent) -> Event {
    match event {
        SessionEvent::PlayDone {
            play_id,
            interrupted,
        } => Event::PlayDone {
            session,
            play_id,
            interrupted,
        },
        SessionEvent::Dtmf { digit } => Event::Dtmf { session, digit },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dtmf(digit: u8) -> Event {
        Event::Dtmf {
            session: SessionId(1),
            digit,
        }
    }

    #[test]
    fn outbox_keeps_events_while_the_ring_is_full_then_counts_drops() {
        let dir = std::env::temp_dir().join(format!("media-outbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let segment = shmq::Segment::create(&dir.join("segment"), 1, 4).unwrap();
        let mut consumer = segment.event_consumer(0).unwrap();
        let doorbell = Doorbell::new().unwrap();
        let doorbell_fd = doorbell.as_raw_fd();
        let mut outbox = EventOutbox::new(segment.event_producer(0).unwrap(), doorbell, 3);

        let digits = b"0123456789";
        for d in digits {
            outbox.push(dtmf(*d));
        }
        // 4 in the ring, 3 pending, 3 dropped.
        assert_eq!(outbox.pending.len(), 3);
        assert_eq!(outbox.dropped, 3);
        outbox.flush();
        let mut rang = [0u8; 8];
        // SAFETY: reading the eventfd counter into 8 bytes.
        let n = unsafe { libc::read(doorbell_fd, rang.as_mut_ptr().cast(), 8) };
        assert_eq!(n, 8, "flush rang the event doorbell");

        let mut received = Vec::new();
        while let Some(r) = consumer.pop() {
            received.push(Event::decode(&r).unwrap());
        }
        assert_eq!(received.len(), 4);
        outbox.flush(); // the ring has room again: pending events go out, in order
        assert!(outbox.pending.is_empty());
        while let Some(r) = consumer.pop() {
            received.push(Event::decode(&r).unwrap());
        }
        let expected: Vec<Event> = digits[..7].iter().map(|d| dtmf(*d)).collect();
        assert_eq!(received, expected);
        // New events keep their order behind pending ones.
        outbox.push(dtmf(b'A'));
        outbox.flush();
        assert_eq!(Event::decode(&consumer.pop().unwrap()).unwrap(), dtmf(b'A'));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
