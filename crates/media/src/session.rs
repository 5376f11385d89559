//! The sans-IO core of one RTP session: pacing, packet building, playback and reception.
//!
//! A [`Session`] is driven by its owner with the current time: [`Session::poll_transmit`]
//! writes the next due packet into a caller buffer (one per ptime, on absolute deadlines
//! `start + n·ptime` so pacing never drifts), and [`Session::handle_datagram`] consumes one
//! received datagram (symmetric-RTP latching, RFC 4733 digits, counters). Queued digit
//! strings go out as RFC 4733 telephone-event packets on the same sequence-number space;
//! [`Session::update`] re-targets a live session (remote, codec, payload types, ptime).
//! Its RTCP side ([`crate::rtcp_session`]) keeps the far end's receive statistics and
//! writes the session's reports ([`Session::poll_report`], [`Session::handle_rtcp`]).
//! Outputs that the
//! control plane must hear about are passed to an `FnMut(SessionEvent)` callback. Nothing
//! here touches a socket, a clock or the allocator after construction.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::digits::{
    ActiveEvent, BadDigits, DigitPacket, DigitSender, EventPacket, END_PACKETS, TELEPHONE_EVENT_LEN,
};
use crate::dtmf::{DtmfDetector, DtmfOutcome};
use crate::g711;
use crate::inband::InbandDetector;
use crate::player::{MediaData, PayloadEncoding, Player, QueueFull};
use crate::rtcp_session::{RtcpReceived, RtcpSession, RtcpTransmit, SenderState};
use crate::rtp::{parse_rtp, RtpHeader, RtpPacket, RTP_HEADER_LEN};

/// G.711 sampling rate: samples (and payload bytes) per millisecond.
pub const SAMPLES_PER_MS: u32 = 8;
/// The accepted ptime range in milliseconds.
pub const PTIME_RANGE_MS: std::ops::RangeInclusive<u16> = 10..=120;
/// Largest packet a session builds: header plus a 120 ms G.711 frame.
pub const MAX_PACKET_LEN: usize = RTP_HEADER_LEN + 120 * SAMPLES_PER_MS as usize;
/// A sender this many ticks behind skips ahead instead of bursting the backlog.
pub const LATE_TICKS_BEFORE_SKIP: u64 = 3;
/// Items a session's play queue holds (playing one included).
pub const PLAY_QUEUE_CAPACITY: usize = 32;

/// The payload format a session sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadCodec {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl PayloadCodec {
    pub fn payload_type(self) -> u8 {
        match self {
            PayloadCodec::Pcmu => 0,
            PayloadCodec::Pcma => 8,
        }
    }

    fn encoding(self) -> PayloadEncoding {
        match self {
            PayloadCodec::Pcmu => PayloadEncoding {
                transcode: None,
                silence: g711::ULAW_SILENCE,
            },
            PayloadCodec::Pcma => PayloadEncoding {
                transcode: Some(g711::ulaw_to_alaw_table()),
                silence: g711::ALAW_SILENCE,
            },
        }
    }
}

/// The byte table converting `from` audio into `to`, if they differ.
fn law_conversion(from: PayloadCodec, to: PayloadCodec) -> Option<&'static [u8; 256]> {
    match (from, to) {
        (PayloadCodec::Pcmu, PayloadCodec::Pcma) => Some(g711::ulaw_to_alaw_table()),
        (PayloadCodec::Pcma, PayloadCodec::Pcmu) => Some(g711::alaw_to_ulaw_table()),
        _ => None,
    }
}

/// Everything needed to start a session.
#[derive(Debug, Clone, Copy)]
pub struct SessionParams {
    /// Where to send until the peer's first valid RTP packet arrives (then: its source).
    pub remote: SocketAddr,
    pub codec: PayloadCodec,
    /// The negotiated telephone-event payload type, if any.
    pub dtmf_payload_type: Option<u8>,
    pub ptime_ms: u16,
    pub ssrc: u32,
    pub initial_sequence: u16,
    pub initial_timestamp: u32,
}

impl SessionParams {
    /// Parameters with a random SSRC, initial sequence number and initial timestamp.
    pub fn with_random_origin(
        remote: SocketAddr,
        codec: PayloadCodec,
        dtmf_payload_type: Option<u8>,
        ptime_ms: u16,
    ) -> SessionParams {
        SessionParams {
            remote,
            codec,
            dtmf_payload_type,
            ptime_ms,
            ssrc: rand::random(),
            initial_sequence: rand::random(),
            initial_timestamp: rand::random(),
        }
    }
}

/// What [`Session::update`] changes: everything the far end's SDP answer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionUpdate {
    /// The new destination; the symmetric-RTP latch resets to it.
    pub remote: SocketAddr,
    pub codec: PayloadCodec,
    pub dtmf_payload_type: Option<u8>,
    pub ptime_ms: u16,
}

/// Why a session could not be created or a command refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("ptime {0} ms outside 10..=120")]
    BadPtime(u16),
    #[error("play queue full")]
    QueueFull,
    #[error("no telephone-event payload type negotiated")]
    NoTelephoneEvent,
    #[error("invalid digits to send")]
    BadDigits,
}

impl From<BadDigits> for SessionError {
    fn from(_: BadDigits) -> Self {
        SessionError::BadDigits
    }
}

impl From<QueueFull> for SessionError {
    fn from(_: QueueFull) -> Self {
        SessionError::QueueFull
    }
}

/// What a session reports to the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    PlayDone { play_id: u32, interrupted: bool },
    Dtmf { digit: u8 },
}

/// Per-session counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Valid RTP packets from the peer (audio, telephone-event and others).
    pub packets_received: u64,
    pub bytes_received: u64,
    pub dtmf_digits: u64,
    /// Datagrams that were not RTP, or came from another address than the latched peer.
    pub packets_ignored: u64,
    /// Ticks skipped because the sender fell too far behind.
    pub late_ticks: u64,
    /// Packets sent that were forwarded from the bridge peer (also in `packets_sent`).
    pub packets_forwarded: u64,
    /// Times the symmetric-RTP latch moved to another source.
    pub relatches: u64,
}

/// A packet written by [`Session::poll_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Bytes written at the start of the caller's buffer.
    pub len: usize,
    /// Where to send them.
    pub destination: SocketAddr,
    /// Ticks skipped just before this packet (also added to the counters).
    pub skipped_ticks: u64,
    /// The packet's send tick (its deadline on the session's grid).
    pub due: Instant,
    /// Whether the payload (after the 12-byte header) is audio in the session's codec
    /// (played media or silence); false for an RFC 4733 telephone-event packet.
    pub audio: bool,
}

/// What a valid RTP packet from the peer carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpKind {
    /// Audio in the session's codec (PCMU/PCMA). Without a telephone-event payload type its
    /// keypad tones are detected in band and reported as [`SessionEvent::Dtmf`].
    Audio(PayloadCodec),
    /// An RFC 4733 telephone-event packet; `new_digit` is set on the first packet of a key
    /// press (a [`SessionEvent::Dtmf`] was emitted), not on its updates or repeated ends.
    TelephoneEvent { new_digit: Option<u8> },
    /// Another payload type (comfort noise, an unnegotiated codec).
    Other,
}

/// What a received datagram turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// A valid RTP packet from the latched peer.
    Rtp {
        packet: RtpPacket<'a>,
        kind: RtpKind,
    },
    /// Not RTP, or not from the latched peer.
    Ignored,
}

impl<'a> Received<'a> {
    /// The packet's audio payload and codec, if it carried audio.
    pub fn audio(&self) -> Option<(&RtpPacket<'a>, PayloadCodec)> {
        match self {
            Received::Rtp {
                packet,
                kind: RtpKind::Audio(codec),
            } => Some((packet, *codec)),
            _ => None,
        }
    }
}

/// A source that has sent nothing for this long loses the latch to the next valid RTP from
/// another address (a peer that moved: NAT rebinding, a re-homed endpoint); a packet with the
/// latched stream's SSRC moves the latch at once.
pub const RELATCH_AFTER_IDLE: Duration = Duration::from_millis(500);

/// How a bridged leg re-stamps what it forwards from its peer: the peer stream's
/// sequence numbers and timestamps shifted into this leg's own spaces, so the far end sees
/// one continuous stream from this leg's SSRC whatever it was sent before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RelayStamp {
    /// The SSRC the offsets were computed for; `None` until the first forwarded packet.
    source_ssrc: Option<u32>,
    sequence_offset: u16,
    timestamp_offset: u32,
}

/// One RTP session's state.
#[derive(Debug)]
pub struct Session {
    remote: SocketAddr,
    remote_latched: bool,
    codec: PayloadCodec,
    encoding: PayloadEncoding,
    dtmf_payload_type: Option<u8>,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    samples_per_packet: u32,
    ptime: Duration,
    start: Instant,
    /// Index of the next tick to send: its deadline is `start + next_tick·ptime`.
    next_tick: u64,
    /// No RTP is sent until the first item is queued (the call is answered then), so the
    /// caller never gets media before the 200 OK.
    sending: bool,
    first_packet: bool,
    /// An event cut short by `stop_playback`: its end packets still to send.
    ending_event: Option<(ActiveEvent, u8)>,
    player: Player,
    dtmf: DtmfDetector,
    /// Keypad tones in the received audio, listened for while no telephone-event payload
    /// type is negotiated.
    inband: InbandDetector,
    counters: SessionCounters,
    /// SSRC of the latched peer's stream (its last accepted packet).
    latched_ssrc: Option<u32>,
    /// When the last valid RTP from the peer arrived (the session's creation before any).
    last_received: Instant,
    /// Whether the current RTP silence was already reported by `poll_rtp_timeout`.
    timeout_reported: bool,
    /// Set while bridged: paced sending is suspended and the peer's packets are forwarded.
    relay: Option<RelayStamp>,
    /// The RTP timestamp and time of the newest packet sent (paced or forwarded), where a
    /// new stretch of the outgoing stream continues from.
    last_sent: Option<(u32, Instant)>,
    /// Receive statistics, report scheduling and the far end's reports (RTCP).
    rtcp: RtcpSession,
}

impl Session {
    /// Creates a session whose first packet is due at `now`.
    pub fn new(params: SessionParams, now: Instant) -> Result<Session, SessionError> {
        if !PTIME_RANGE_MS.contains(&params.ptime_ms) {
            return Err(SessionError::BadPtime(params.ptime_ms));
        }
        Ok(Session {
            remote: params.remote,
            remote_latched: false,
            codec: params.codec,
            encoding: params.codec.encoding(),
            dtmf_payload_type: params.dtmf_payload_type,
            ssrc: params.ssrc,
            sequence: params.initial_sequence,
            timestamp: params.initial_timestamp,
            samples_per_packet: u32::from(params.ptime_ms) * SAMPLES_PER_MS,
            ptime: Duration::from_millis(u64::from(params.ptime_ms)),
            start: now,
            next_tick: 0,
            sending: false,
            first_packet: true,
            ending_event: None,
            player: Player::with_capacity(PLAY_QUEUE_CAPACITY),
            dtmf: DtmfDetector::new(),
            inband: InbandDetector::new(),
            counters: SessionCounters::default(),
            latched_ssrc: None,
            last_received: now,
            timeout_reported: false,
            relay: None,
            last_sent: None,
            rtcp: RtcpSession::new(now, params.ssrc ^ params.initial_timestamp),
        })
    }

    /// Where packets go now: the signalled address, or the latched source of the peer's RTP.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    pub fn remote_latched(&self) -> bool {
        self.remote_latched
    }

    pub fn codec(&self) -> PayloadCodec {
        self.codec
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn dtmf_payload_type(&self) -> Option<u8> {
        self.dtmf_payload_type
    }

    pub fn ptime_ms(&self) -> u16 {
        // ptime is built from a u16 number of milliseconds.
        self.ptime.as_millis() as u16
    }

    /// Applies the far end's answer to the live session: same SSRC, sequence numbers and
    /// timestamps; packets from the next one on use the new codec, telephone-event payload
    /// type and ptime and go to `remote`, which is also where the latch restarts (the
    /// first valid RTP from anywhere latches again). The next packet keeps its deadline;
    /// the grid after it uses the new ptime.
    pub fn update(&mut self, update: SessionUpdate) -> Result<(), SessionError> {
        if !PTIME_RANGE_MS.contains(&update.ptime_ms) {
            return Err(SessionError::BadPtime(update.ptime_ms));
        }
        let ptime = Duration::from_millis(u64::from(update.ptime_ms));
        if ptime != self.ptime {
            // Re-base the grid on the next deadline so it neither moves nor drifts.
            self.start = self.next_send_at();
            self.next_tick = 0;
            self.ptime = ptime;
            self.samples_per_packet = u32::from(update.ptime_ms) * SAMPLES_PER_MS;
        }
        self.remote = update.remote;
        self.remote_latched = false;
        self.rtcp.forget_peer();
        self.codec = update.codec;
        self.encoding = update.codec.encoding();
        self.dtmf_payload_type = update.dtmf_payload_type;
        Ok(())
    }

    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// Items queued for playback (the playing one included).
    pub fn queued_items(&self) -> usize {
        self.player.len()
    }

    /// Whether the session has started sending RTP.
    pub fn is_sending(&self) -> bool {
        self.sending
    }

    /// Starts a talkspurt at `now`: the first one starts the stream; a later one (an item
    /// queued while the session was only sending silence) moves the packet grid so the
    /// item's first packet leaves now instead of up to one ptime later. The RTP timestamp
    /// advances by the real time elapsed since the last packet, so it stays monotonic and
    /// true to the clock; the item's first packet carries the marker bit.
    pub fn start_talkspurt(&mut self, now: Instant) {
        if !self.sending {
            self.sending = true;
            self.start = now;
            self.next_tick = 0;
            return;
        }
        let due = self.next_send_at();
        if now >= due {
            return;
        }
        let last_sent = due.checked_sub(self.ptime).unwrap_or(due);
        let elapsed_samples = (now.saturating_duration_since(last_sent).as_micros()
            * u128::from(SAMPLES_PER_MS)
            / 1000) as u32;
        self.timestamp = self
            .timestamp
            .wrapping_sub(self.samples_per_packet)
            .wrapping_add(elapsed_samples.max(1));
        self.start = now;
        self.next_tick = 0;
    }

    /// Moves the packet grid so the next packet leaves at `at` (at or after the one due
    /// now), starting the stream if it had not started: the conference mixer puts its
    /// members' packets on its 20 ms ticks. The RTP timestamp advances by the time the grid
    /// moved, so it stays true to the clock.
    pub fn rebase_grid(&mut self, at: Instant) {
        if self.sending {
            let moved = at.saturating_duration_since(self.next_send_at());
            let samples = moved.as_micros() * u128::from(SAMPLES_PER_MS) / 1000;
            self.timestamp = self.timestamp.wrapping_add(samples as u32);
        }
        self.sending = true;
        self.start = at;
        self.next_tick = 0;
    }

    /// When the next packet is due.
    pub fn next_send_at(&self) -> Instant {
        self.deadline(self.next_tick)
    }

    fn deadline(&self, tick: u64) -> Instant {
        let nanos = self.ptime.as_nanos() as u64;
        self.start + Duration::from_nanos(nanos.saturating_mul(tick))
    }

    /// Queues a μ-law media item; `loops == 0` repeats it until stopped.
    pub fn play(&mut self, play_id: u32, media: MediaData, loops: u16) -> Result<(), SessionError> {
        Ok(self.player.enqueue_media(play_id, media, loops)?)
    }

    /// Queues a silence of exactly `duration_ms`.
    pub fn silence(&mut self, play_id: u32, duration_ms: u32) -> Result<(), SessionError> {
        let samples = u64::from(duration_ms) * u64::from(SAMPLES_PER_MS);
        Ok(self.player.enqueue_silence(play_id, samples)?)
    }

    /// Queues a digit string (`0-9 * # A-D`, `w` = 500 ms pause) to send as RFC 4733
    /// telephone events; refused if the session has no telephone-event payload type.
    pub fn send_digits(&mut self, play_id: u32, digits: &[u8]) -> Result<(), SessionError> {
        if self.dtmf_payload_type.is_none() {
            return Err(SessionError::NoTelephoneEvent);
        }
        let sender = DigitSender::new(digits)?;
        Ok(self.player.enqueue_digits(play_id, sender)?)
    }

    /// Ends the current item and empties the queue; each removed item is reported interrupted.
    /// A telephone event cut short still gets its end packets.
    pub fn stop_playback(&mut self, mut on_event: impl FnMut(SessionEvent)) {
        if let Some(active) = self.player.active_event() {
            self.ending_event = Some((active, END_PACKETS));
        }
        self.player.stop(|ended| {
            on_event(SessionEvent::PlayDone {
                play_id: ended.play_id,
                interrupted: ended.interrupted,
            })
        });
    }

    /// If a packet is due at `now`, writes it into `out` and returns it.
    ///
    /// Call repeatedly until it returns `None`: a caller a little late gets each missed
    /// packet in turn; one more than [`LATE_TICKS_BEFORE_SKIP`] ticks late skips ahead to
    /// the current tick (the RTP timestamp jumps, the sequence number does not) instead.
    /// Returns `None` as well if `out` is shorter than one packet.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
        mut on_event: impl FnMut(SessionEvent),
    ) -> Option<Transmit> {
        let due = self.next_send_at();
        if !self.sending || self.relay.is_some() || now < due {
            return None;
        }
        let packet_len = RTP_HEADER_LEN + self.samples_per_packet as usize;
        let packet = out.get_mut(..packet_len)?;
        let ptime_nanos = self.ptime.as_nanos().max(1);
        let behind = ((now - due).as_nanos() / ptime_nanos) as u64;
        let mut skipped_ticks = 0;
        if behind > LATE_TICKS_BEFORE_SKIP {
            skipped_ticks = behind;
            self.next_tick += behind;
            self.timestamp = self
                .timestamp
                .wrapping_add((behind as u32).wrapping_mul(self.samples_per_packet));
            self.counters.late_ticks += behind;
        }
        let tick_due = self.deadline(self.next_tick);
        let (header, payload) = packet.split_at_mut(RTP_HEADER_LEN);
        // An interrupted event's end packets first, then the queue: a digit string's
        // packet, else audio.
        let frame = match self.take_ending_event() {
            Some(event) => Some(DigitPacket::Event(event)),
            None => {
                self.player
                    .next_digit_packet(self.samples_per_packet, self.timestamp, |ended| {
                        on_event(SessionEvent::PlayDone {
                            play_id: ended.play_id,
                            interrupted: ended.interrupted,
                        })
                    })
            }
        };
        let (payload_type, marker, timestamp, packet_len, audio) =
            match (frame, self.dtmf_payload_type) {
                (Some(DigitPacket::Event(event)), Some(dtmf_pt)) => {
                    event.write_payload(payload)?;
                    (
                        dtmf_pt,
                        self.first_packet || event.marker,
                        event.timestamp,
                        RTP_HEADER_LEN + TELEPHONE_EVENT_LEN,
                        false,
                    )
                }
                // A digit string's silence, or an event with no telephone-event payload type
                // any more (removed by an update): audio silence in its place.
                (Some(_), _) => {
                    payload.fill(self.encoding.silence);
                    (
                        self.codec.payload_type(),
                        self.first_packet,
                        self.timestamp,
                        packet_len,
                        true,
                    )
                }
                (None, _) => {
                    let item_started = self.player.fill(payload, self.encoding, |ended| {
                        on_event(SessionEvent::PlayDone {
                            play_id: ended.play_id,
                            interrupted: ended.interrupted,
                        })
                    });
                    (
                        self.codec.payload_type(),
                        self.first_packet || item_started,
                        self.timestamp,
                        packet_len,
                        true,
                    )
                }
            };
        RtpHeader {
            marker,
            payload_type,
            sequence: self.sequence,
            timestamp,
            ssrc: self.ssrc,
        }
        .write(header)?;
        self.first_packet = false;
        if audio {
            self.last_sent = Some((timestamp, tick_due));
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.samples_per_packet);
        self.next_tick += 1;
        self.counters.packets_sent += 1;
        self.counters.bytes_sent += packet_len as u64;
        Some(Transmit {
            len: packet_len,
            destination: self.remote,
            skipped_ticks,
            due: tick_due,
            audio,
        })
    }

    /// The next end packet of an event cut short by `stop_playback`, if any are left.
    fn take_ending_event(&mut self) -> Option<EventPacket> {
        let (active, left) = self.ending_event.take()?;
        if left > 1 {
            self.ending_event = Some((active, left - 1));
        }
        Some(EventPacket {
            event: active.event,
            end: true,
            duration: active.duration,
            timestamp: active.timestamp,
            marker: false,
        })
    }

    /// Consumes one datagram received from `source` at `now`.
    ///
    /// Symmetric RTP: the first valid RTP packet latches the session to its source (sends
    /// go there from then on). Another source takes the latch over if its packet carries the
    /// latched stream's SSRC (the peer's port changed under a NAT), or once the latched
    /// source has been silent for [`RELATCH_AFTER_IDLE`]; anything else from elsewhere is
    /// ignored.
    pub fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &'a [u8],
        mut on_event: impl FnMut(SessionEvent),
    ) -> Received<'a> {
        let Ok(packet) = parse_rtp(datagram) else {
            self.counters.packets_ignored += 1;
            return Received::Ignored;
        };
        if self.remote_latched && source != self.remote {
            let same_stream = self.latched_ssrc == Some(packet.ssrc);
            let latched_idle =
                now.saturating_duration_since(self.last_received) >= RELATCH_AFTER_IDLE;
            if !same_stream && !latched_idle {
                self.counters.packets_ignored += 1;
                return Received::Ignored;
            }
            self.counters.relatches += 1;
        }
        self.remote = source;
        self.remote_latched = true;
        self.latched_ssrc = Some(packet.ssrc);
        self.last_received = now;
        self.timeout_reported = false;
        self.counters.packets_received += 1;
        self.counters.bytes_received += datagram.len() as u64;
        self.rtcp.on_rtp(
            now,
            packet.ssrc,
            packet.sequence,
            packet.timestamp,
            Some(packet.payload_type) != self.dtmf_payload_type,
        );
        let kind = if Some(packet.payload_type) == self.dtmf_payload_type {
            let new_digit = match self.dtmf.on_packet(packet.timestamp, packet.payload) {
                DtmfOutcome::NewDigit(digit) => {
                    self.counters.dtmf_digits += 1;
                    on_event(SessionEvent::Dtmf { digit });
                    Some(digit)
                }
                _ => None,
            };
            RtpKind::TelephoneEvent { new_digit }
        } else if packet.payload_type == self.codec.payload_type() {
            if self.dtmf_payload_type.is_none() {
                let decode = match self.codec {
                    PayloadCodec::Pcmu => &g711::ULAW_DECODE,
                    PayloadCodec::Pcma => &g711::ALAW_DECODE,
                };
                let counters = &mut self.counters;
                self.inband.feed(
                    packet.payload.iter().map(|b| decode[usize::from(*b)]),
                    |digit| {
                        counters.dtmf_digits += 1;
                        on_event(SessionEvent::Dtmf { digit });
                    },
                );
            }
            RtpKind::Audio(self.codec)
        } else {
            RtpKind::Other
        };
        Received::Rtp { packet, kind }
    }

    /// Reports a stretch without RTP from the peer: once it has lasted `timeout`, returns
    /// its length in milliseconds, once per stretch (the next valid RTP packet ends it).
    /// A zero `timeout` never fires.
    pub fn poll_rtp_timeout(&mut self, now: Instant, timeout: Duration) -> Option<u32> {
        if timeout.is_zero() || self.timeout_reported {
            return None;
        }
        let idle = now.saturating_duration_since(self.last_received);
        if idle < timeout {
            return None;
        }
        self.timeout_reported = true;
        Some(u32::try_from(idle.as_millis()).unwrap_or(u32::MAX))
    }

    /// Whether the session is bridged: it forwards its peer's packets instead of pacing
    /// its own.
    pub fn is_relaying(&self) -> bool {
        self.relay.is_some()
    }

    /// Whether the worker must keep a send deadline for the session: it paces its own
    /// stream (it started sending and is not bridged).
    pub fn is_pacing(&self) -> bool {
        self.sending && self.relay.is_none()
    }

    /// Starts relaying: the play queue ends (each item reported interrupted) and paced
    /// sending stops until [`Session::end_relay`]. The first forwarded packet continues
    /// this session's sequence numbers and timestamps.
    pub fn start_relay(&mut self, on_event: impl FnMut(SessionEvent)) {
        self.stop_playback(on_event);
        self.ending_event = None;
        self.relay = Some(RelayStamp {
            source_ssrc: None,
            sequence_offset: 0,
            timestamp_offset: 0,
        });
    }

    /// Stops relaying at `now`: the session paces its own stream again (silence until
    /// something is queued) from `now`, its timestamps continuing from the last packet
    /// it sent by the real time since; the first packet carries the marker bit.
    pub fn end_relay(&mut self, now: Instant) {
        if self.relay.take().is_none() {
            return;
        }
        self.timestamp = self.continuation_timestamp(now);
        self.sending = true;
        self.first_packet = true;
        self.start = now;
        self.next_tick = 0;
    }

    /// The RTP timestamp a packet sent at `now` carries: the last sent packet's advanced
    /// by the time since (at least one sample), or the next paced timestamp if nothing
    /// was sent yet.
    fn continuation_timestamp(&self, now: Instant) -> u32 {
        match self.last_sent {
            Some((timestamp, at)) => {
                let elapsed = now.saturating_duration_since(at).as_micros()
                    * u128::from(SAMPLES_PER_MS)
                    / 1000;
                timestamp.wrapping_add((elapsed as u32).max(1))
            }
            None => self.timestamp,
        }
    }

    /// Forwards a packet the bridge peer received (`packet`, of `kind` in the peer's
    /// terms) out of this session at `now`: written into `out` with this session's SSRC,
    /// its sequence/timestamp spaces (offsets fixed at the first packet of each peer
    /// stream, so gaps and reordering survive), its payload type, and the payload
    /// transcoded μ-law ↔ A-law if the codecs differ. Telephone events go out with this
    /// session's telephone-event payload type; other payload types, and events when this
    /// session has no telephone-event type, are not forwarded (`None`). `None` too when
    /// the session is not bridged or `out` is too short.
    pub fn forward(
        &mut self,
        now: Instant,
        packet: &RtpPacket<'_>,
        kind: RtpKind,
        out: &mut [u8],
    ) -> Option<Transmit> {
        let mut stamp = self.relay?;
        let (payload_type, conversion, audio) = match kind {
            RtpKind::Audio(from) => (
                self.codec.payload_type(),
                law_conversion(from, self.codec),
                true,
            ),
            RtpKind::TelephoneEvent { .. } => (self.dtmf_payload_type?, None, false),
            RtpKind::Other => return None,
        };
        let len = RTP_HEADER_LEN + packet.payload.len();
        let (header, payload) = out.get_mut(..len)?.split_at_mut(RTP_HEADER_LEN);
        let new_stream = stamp.source_ssrc != Some(packet.ssrc);
        if new_stream {
            stamp = RelayStamp {
                source_ssrc: Some(packet.ssrc),
                sequence_offset: self.sequence.wrapping_sub(packet.sequence),
                timestamp_offset: self
                    .continuation_timestamp(now)
                    .wrapping_sub(packet.timestamp),
            };
            self.relay = Some(stamp);
        }
        let sequence = packet.sequence.wrapping_add(stamp.sequence_offset);
        let timestamp = packet.timestamp.wrapping_add(stamp.timestamp_offset);
        RtpHeader {
            marker: packet.marker || new_stream,
            payload_type,
            sequence,
            timestamp,
            ssrc: self.ssrc,
        }
        .write(header)?;
        payload.copy_from_slice(packet.payload);
        if let Some(table) = conversion {
            g711::transcode_in_place(table, payload);
        }
        // Keep the paced stream's next sequence number and timestamp ahead of everything
        // forwarded, so ending the bridge continues without going back.
        if sequence.wrapping_sub(self.sequence) < 0x8000 {
            self.sequence = sequence.wrapping_add(1);
        }
        let newer = match self.last_sent {
            Some((last, _)) => timestamp.wrapping_sub(last) < 0x8000_0000,
            None => true,
        };
        if audio && newer {
            self.last_sent = Some((timestamp, now));
        }
        self.counters.packets_sent += 1;
        self.counters.bytes_sent += len as u64;
        self.counters.packets_forwarded += 1;
        Some(Transmit {
            len,
            destination: self.remote,
            skipped_ticks: 0,
            due: now,
            audio,
        })
    }

    /// What the session's sending side looks like at `now`, for RTCP.
    fn sender_state(&self, now: Instant) -> SenderState {
        let c = &self.counters;
        SenderState {
            ssrc: self.ssrc,
            packets_sent: c.packets_sent,
            // Every packet sent has the 12-byte fixed header and nothing else before its payload.
            octets_sent: c
                .bytes_sent
                .saturating_sub(c.packets_sent * RTP_HEADER_LEN as u64),
            rtp_timestamp: self.continuation_timestamp(now),
            rtp_remote: self.remote,
        }
    }

    /// Consumes an RTCP datagram received from `source` at `now` (`ntp_now`: its NTP
    /// timestamp), on the session's RTP port (multiplexed, RFC 5761) or its RTCP port.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        ntp_now: u64,
        source: SocketAddr,
        datagram: &[u8],
        on_rtp_port: bool,
    ) -> RtcpReceived {
        self.rtcp.handle(
            now,
            ntp_now,
            self.ssrc,
            source,
            datagram,
            on_rtp_port,
            self.remote,
            self.latched_ssrc,
        )
    }

    /// When the session's next RTCP report is due.
    pub fn next_report_at(&self) -> Instant {
        self.rtcp.next_report_at()
    }

    /// If an RTCP report is due at `now` (`ntp_now` its NTP timestamp), writes it into `out`
    /// (at least [`crate::rtcp::MAX_REPORT_LEN`] bytes) and schedules the next one; `None`
    /// if none is due or the session has had no RTP either way.
    pub fn poll_report(
        &mut self,
        now: Instant,
        ntp_now: u64,
        out: &mut [u8],
    ) -> Option<RtcpTransmit> {
        let sender = self.sender_state(now);
        self.rtcp.poll_report(now, ntp_now, &sender, out)
    }

    /// The session's last RTCP report, with a BYE (`None` if it never had RTP either way).
    pub fn final_report(
        &mut self,
        now: Instant,
        ntp_now: u64,
        out: &mut [u8],
    ) -> Option<RtcpTransmit> {
        let sender = self.sender_state(now);
        self.rtcp.final_report(now, ntp_now, &sender, out)
    }

    /// The session's media quality now (`final_report`: its last).
    pub fn qos(&self, now: Instant, final_report: bool) -> shmq::Qos {
        let codec = match self.codec {
            PayloadCodec::Pcmu => shmq::Codec::Pcmu,
            PayloadCodec::Pcma => shmq::Codec::Pcma,
        };
        self.rtcp.qos(
            codec,
            self.counters.packets_received,
            &self.sender_state(now),
            final_report,
        )
    }

    /// Ends the session: queued items are reported interrupted; returns the final counters.
    pub fn close(mut self, on_event: impl FnMut(SessionEvent)) -> SessionCounters {
        self.stop_playback(on_event);
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::parse_rtp;
    use std::sync::Arc;

    const PTIME: Duration = Duration::from_millis(20);

    fn remote() -> SocketAddr {
        "192.0.2.10:40000".parse().unwrap()
    }

    fn params(codec: PayloadCodec) -> SessionParams {
        SessionParams {
            remote: remote(),
            codec,
            dtmf_payload_type: Some(101),
            ptime_ms: 20,
            ssrc: 0x1234_5678,
            initial_sequence: 0xFFFE,
            initial_timestamp: 0xFFFF_FF00,
        }
    }

    /// A session whose stream has started at `t0`.
    fn started(p: SessionParams, t0: Instant) -> Session {
        let mut s = Session::new(p, t0).unwrap();
        s.start_talkspurt(t0);
        s
    }

    #[test]
    fn nothing_is_sent_before_the_first_item() {
        let t0 = Instant::now();
        let mut s = Session::new(params(PayloadCodec::Pcmu), t0).unwrap();
        assert!(!s.is_sending());
        assert!(drain(&mut s, t0 + PTIME * 10).is_empty());
        s.play(1, media(&[7; 160]), 1).unwrap();
        s.start_talkspurt(t0 + PTIME * 10);
        let packets = drain(&mut s, t0 + PTIME * 10);
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].0[1] & 0x80, 0x80, "first packet has the marker");
        assert_eq!(&packets[0].0[RTP_HEADER_LEN..], &[7; 160][..]);
    }

    #[test]
    fn an_item_on_an_idle_stream_leaves_at_once_with_a_true_timestamp() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        let first = drain(&mut s, t0);
        assert_eq!(first.len(), 1);
        let ts0 = u32::from_be_bytes(first[0].0[4..8].try_into().unwrap());
        // 5 ms after the silence packet, a prompt is queued: it goes out now, not at 20 ms.
        let t1 = t0 + Duration::from_millis(5);
        s.play(1, media(&[9; 320]), 1).unwrap();
        s.start_talkspurt(t1);
        let packets = drain(&mut s, t1);
        assert_eq!(packets.len(), 1);
        let ts1 = u32::from_be_bytes(packets[0].0[4..8].try_into().unwrap());
        assert_eq!(ts1.wrapping_sub(ts0), 40, "5 ms of samples");
        assert_eq!(packets[0].0[1] & 0x80, 0x80);
        // The grid now runs from t1.
        assert!(drain(&mut s, t1 + PTIME - Duration::from_micros(1)).is_empty());
        assert_eq!(drain(&mut s, t1 + PTIME).len(), 1);
    }

    fn media(bytes: &[u8]) -> MediaData {
        MediaData::Shared(Arc::from(bytes))
    }

    /// Sends every packet due at `now`, returning (packet bytes, events) per packet.
    fn drain(session: &mut Session, now: Instant) -> Vec<(Vec<u8>, Vec<SessionEvent>)> {
        let mut out = Vec::new();
        let mut buf = [0u8; MAX_PACKET_LEN];
        loop {
            let mut events = Vec::new();
            match session.poll_transmit(now, &mut buf, |e| events.push(e)) {
                Some(tx) => out.push((buf[..tx.len].to_vec(), events)),
                None => return out,
            }
        }
    }

    fn one(session: &mut Session, now: Instant) -> (Vec<u8>, Vec<SessionEvent>) {
        let mut packets = drain(session, now);
        assert_eq!(packets.len(), 1, "expected exactly one packet due");
        packets.pop().unwrap()
    }

    #[test]
    fn first_packet_header_fields() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        let mut buf = [0u8; MAX_PACKET_LEN];
        let tx = s.poll_transmit(t0, &mut buf, |_| {}).unwrap();
        assert_eq!(tx.len, 12 + 160);
        assert_eq!(tx.destination, remote());
        assert_eq!(tx.skipped_ticks, 0);
        assert_eq!(buf[0], 0x80, "V=2, no padding/extension/CSRC");
        let p = parse_rtp(&buf[..tx.len]).unwrap();
        assert!(p.marker, "first packet of the stream has the marker bit");
        assert_eq!(p.payload_type, 0);
        assert_eq!(p.sequence, 0xFFFE);
        assert_eq!(p.timestamp, 0xFFFF_FF00);
        assert_eq!(p.ssrc, 0x1234_5678);
        assert!(p.payload.iter().all(|b| *b == g711::ULAW_SILENCE));
    }

    #[test]
    fn sequence_and_timestamp_advance_with_wraparound() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        let mut seen = Vec::new();
        for n in 0..5u32 {
            let (pkt, _) = one(&mut s, t0 + PTIME * n);
            let p = parse_rtp(&pkt).unwrap();
            seen.push((p.sequence, p.timestamp, p.marker));
        }
        assert_eq!(
            seen,
            vec![
                (0xFFFE, 0xFFFF_FF00, true),
                (0xFFFF, 0xFFFF_FFA0, false),
                (0x0000, 0x0000_0040, false),
                (0x0001, 0x0000_00E0, false),
                (0x0002, 0x0000_0180, false),
            ]
        );
        assert_eq!(s.counters().packets_sent, 5);
        assert_eq!(s.counters().bytes_sent, 5 * 172);
    }

    #[test]
    fn random_origins_differ() {
        let a = SessionParams::with_random_origin(remote(), PayloadCodec::Pcmu, None, 20);
        let b = SessionParams::with_random_origin(remote(), PayloadCodec::Pcmu, None, 20);
        assert_ne!(
            (a.ssrc, a.initial_sequence, a.initial_timestamp),
            (b.ssrc, b.initial_sequence, b.initial_timestamp)
        );
    }

    #[test]
    fn pacing_is_on_absolute_deadlines() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        assert_eq!(s.next_send_at(), t0);
        let mut buf = [0u8; MAX_PACKET_LEN];
        // A driver that always wakes 7 ms late: deadlines do not drift.
        for n in 0..50u32 {
            let due = t0 + PTIME * n;
            assert_eq!(s.next_send_at(), due);
            assert!(s
                .poll_transmit(due - Duration::from_micros(1), &mut buf, |_| {})
                .is_none());
            assert!(s
                .poll_transmit(due + Duration::from_millis(7), &mut buf, |_| {})
                .is_some());
            assert!(s
                .poll_transmit(due + Duration::from_millis(7), &mut buf, |_| {})
                .is_none());
        }
        assert_eq!(s.next_send_at(), t0 + PTIME * 50);
        assert_eq!(s.counters().late_ticks, 0);
    }

    #[test]
    fn a_little_late_catches_up_packet_by_packet() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        one(&mut s, t0);
        // Due at 20 ms, woken at 65 ms: ticks 1, 2 and 3 are all due.
        let packets = drain(&mut s, t0 + Duration::from_millis(65));
        assert_eq!(packets.len(), 3);
        let seqs: Vec<u16> = packets
            .iter()
            .map(|(p, _)| parse_rtp(p).unwrap().sequence)
            .collect();
        assert_eq!(seqs, vec![0xFFFF, 0, 1]);
        assert_eq!(s.next_send_at(), t0 + PTIME * 4);
        assert_eq!(s.counters().late_ticks, 0);
    }

    #[test]
    fn far_behind_skips_ahead_instead_of_bursting() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        let (first, _) = one(&mut s, t0);
        let first = parse_rtp(&first).unwrap();
        // Due at tick 1 (20 ms), woken at 215 ms: 9 whole ticks behind.
        let mut buf = [0u8; MAX_PACKET_LEN];
        let now = t0 + Duration::from_millis(215);
        let tx = s.poll_transmit(now, &mut buf, |_| {}).unwrap();
        assert_eq!(tx.skipped_ticks, 9);
        let p = parse_rtp(&buf[..tx.len]).unwrap();
        assert_eq!(p.sequence, first.sequence.wrapping_add(1));
        assert_eq!(p.timestamp, first.timestamp.wrapping_add(10 * 160));
        assert!(s.poll_transmit(now, &mut buf, |_| {}).is_none());
        assert_eq!(s.next_send_at(), t0 + PTIME * 11);
        assert_eq!(s.counters().late_ticks, 9);
        assert_eq!(s.counters().packets_sent, 2);
    }

    #[test]
    fn rejects_bad_ptime_and_short_buffer() {
        let t0 = Instant::now();
        let mut p = params(PayloadCodec::Pcmu);
        p.ptime_ms = 0;
        assert_eq!(Session::new(p, t0).unwrap_err(), SessionError::BadPtime(0));
        p.ptime_ms = 121;
        assert!(Session::new(p, t0).is_err());
        p.ptime_ms = 30;
        let mut s = started(p, t0);
        assert!(s.poll_transmit(t0, &mut [0u8; 100], |_| {}).is_none());
        let mut buf = [0u8; MAX_PACKET_LEN];
        assert_eq!(s.poll_transmit(t0, &mut buf, |_| {}).unwrap().len, 12 + 240);
    }

    #[test]
    fn playback_bytes_markers_and_play_done() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        let (_, _) = one(&mut s, t0); // idle silence, marker (stream start)
        let file: Vec<u8> = (0..400u32).map(|i| (i % 251) as u8).collect();
        s.play(42, media(&file), 1).unwrap();
        let mut played = Vec::new();
        let mut markers = Vec::new();
        let mut done_at = None;
        for n in 1..=4u32 {
            let (pkt, events) = one(&mut s, t0 + PTIME * n);
            let p = parse_rtp(&pkt).unwrap();
            markers.push(p.marker);
            played.extend_from_slice(p.payload);
            if !events.is_empty() {
                assert_eq!(
                    events,
                    vec![SessionEvent::PlayDone {
                        play_id: 42,
                        interrupted: false
                    }]
                );
                done_at = Some(n);
            }
        }
        assert_eq!(markers, vec![true, false, false, false]);
        assert_eq!(&played[..400], &file[..]);
        assert!(played[400..].iter().all(|b| *b == 0xFF));
        assert_eq!(
            done_at,
            Some(3),
            "400 bytes end in the third 160-byte frame"
        );
        // A second item gets the marker bit again.
        s.play(43, media(&[1, 2, 3]), 1).unwrap();
        let (pkt, events) = one(&mut s, t0 + PTIME * 5);
        let p = parse_rtp(&pkt).unwrap();
        assert!(p.marker);
        assert_eq!(&p.payload[..4], &[1, 2, 3, 0xFF]);
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn alaw_session_transcodes_and_pads_with_alaw_silence() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcma), t0);
        let file: Vec<u8> = (0..=255u8).collect();
        s.play(1, media(&file), 1).unwrap();
        let mut payload = Vec::new();
        for n in 0..2u32 {
            let (pkt, _) = one(&mut s, t0 + PTIME * n);
            let p = parse_rtp(&pkt).unwrap();
            assert_eq!(p.payload_type, 8);
            payload.extend_from_slice(p.payload);
        }
        let table = g711::ulaw_to_alaw_table();
        for i in 0..256 {
            assert_eq!(payload[i], table[i]);
        }
        assert!(payload[256..].iter().all(|b| *b == g711::ALAW_SILENCE));
        assert_eq!(payload[0], 0x2A, "μ-law 0x00 (-32124) is A-law 0x2A");
    }

    #[test]
    fn loops_repeat_the_item() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        let file: Vec<u8> = (1..=100u8).collect();
        s.play(5, media(&file), 3).unwrap();
        let mut payload = Vec::new();
        let mut events = Vec::new();
        for n in 0..3u32 {
            let (pkt, ev) = one(&mut s, t0 + PTIME * n);
            payload.extend_from_slice(parse_rtp(&pkt).unwrap().payload);
            events.extend(ev);
        }
        let expected: Vec<u8> = file.iter().chain(&file).chain(&file).copied().collect();
        assert_eq!(&payload[..300], &expected[..]);
        assert!(payload[300..].iter().all(|b| *b == 0xFF));
        assert_eq!(
            events,
            vec![SessionEvent::PlayDone {
                play_id: 5,
                interrupted: false
            }]
        );
    }

    #[test]
    fn stop_playback_interrupts_current_and_queued_items() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        s.play(1, media(&[7; 50]), 0).unwrap();
        s.silence(2, 1000).unwrap();
        s.play(3, media(&[8; 50]), 1).unwrap();
        for n in 0..10u32 {
            let (pkt, ev) = one(&mut s, t0 + PTIME * n);
            assert!(ev.is_empty(), "an endless loop never ends by itself");
            assert!(parse_rtp(&pkt).unwrap().payload.iter().all(|b| *b == 7));
        }
        let mut events = Vec::new();
        s.stop_playback(|e| events.push(e));
        let ids: Vec<(u32, bool)> = events
            .iter()
            .map(|e| match e {
                SessionEvent::PlayDone {
                    play_id,
                    interrupted,
                } => (*play_id, *interrupted),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(ids, vec![(1, true), (2, true), (3, true)]);
        let (pkt, ev) = one(&mut s, t0 + PTIME * 10);
        assert!(ev.is_empty());
        assert!(parse_rtp(&pkt).unwrap().payload.iter().all(|b| *b == 0xFF));
        assert_eq!(s.queued_items(), 0);
    }

    #[test]
    fn silence_lasts_exactly_its_duration() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        s.silence(1, 30).unwrap(); // 240 samples: 1.5 frames
        s.play(2, media(&[0x11; 160]), 1).unwrap();
        let (p0, e0) = one(&mut s, t0);
        let (p1, e1) = one(&mut s, t0 + PTIME);
        let (p2, e2) = one(&mut s, t0 + PTIME * 2);
        let (p0, p1, p2) = (
            parse_rtp(&p0).unwrap(),
            parse_rtp(&p1).unwrap(),
            parse_rtp(&p2).unwrap(),
        );
        assert!(p0.payload.iter().all(|b| *b == 0xFF));
        assert!(e0.is_empty());
        assert!(p1.payload[..80].iter().all(|b| *b == 0xFF));
        assert!(p1.payload[80..].iter().all(|b| *b == 0x11));
        assert!(p1.marker, "the media item starts in this packet");
        assert_eq!(
            e1,
            vec![SessionEvent::PlayDone {
                play_id: 1,
                interrupted: false
            }]
        );
        assert!(p2.payload[..80].iter().all(|b| *b == 0x11));
        assert!(p2.payload[80..].iter().all(|b| *b == 0xFF));
        assert!(!p2.marker);
        assert_eq!(
            e2,
            vec![SessionEvent::PlayDone {
                play_id: 2,
                interrupted: false
            }]
        );
    }

    #[test]
    fn close_reports_queued_items_and_counters() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        s.play(9, media(&[1; 10]), 0).unwrap();
        one(&mut s, t0);
        let mut events = Vec::new();
        let counters = s.close(|e| events.push(e));
        assert_eq!(
            events,
            vec![SessionEvent::PlayDone {
                play_id: 9,
                interrupted: true
            }]
        );
        assert_eq!(counters.packets_sent, 1);
    }

    #[test]
    fn play_queue_is_bounded() {
        let mut s = Session::new(params(PayloadCodec::Pcmu), Instant::now()).unwrap();
        for i in 0..PLAY_QUEUE_CAPACITY as u32 {
            s.silence(i, 20).unwrap();
        }
        assert_eq!(s.silence(99, 20), Err(SessionError::QueueFull));
    }

    /// Sends one packet per tick from `from` (tick index) until `done` says stop or
    /// `max` packets; returns (packet, events, destination) per packet.
    fn ticks(
        s: &mut Session,
        t0: Instant,
        from: u32,
        max: u32,
    ) -> Vec<(Vec<u8>, Vec<SessionEvent>, SocketAddr)> {
        let mut out = Vec::new();
        let mut buf = [0u8; MAX_PACKET_LEN];
        for n in from..from + max {
            let mut events = Vec::new();
            let tx = s
                .poll_transmit(t0 + PTIME * n, &mut buf, |e| events.push(e))
                .expect("a packet per tick");
            out.push((buf[..tx.len].to_vec(), events, tx.destination));
        }
        out
    }

    fn done(play_id: u32, interrupted: bool) -> SessionEvent {
        SessionEvent::PlayDone {
            play_id,
            interrupted,
        }
    }

    #[test]
    fn update_changes_destination_codec_payload_types_and_ptime() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        // Latch somewhere first: the update must reset the latch.
        let nat: SocketAddr = "198.51.100.7:61000".parse().unwrap();
        s.handle_datagram(
            Instant::now(),
            nat,
            &rtp_packet(0, 1, 160, &[0xFF; 160]),
            |_| {},
        );
        assert!(s.remote_latched());
        let before = ticks(&mut s, t0, 0, 1);
        assert_eq!(before[0].2, nat);
        let p0 = parse_rtp(&before[0].0).unwrap();

        let answer: SocketAddr = "203.0.113.5:7078".parse().unwrap();
        let update = SessionUpdate {
            remote: answer,
            codec: PayloadCodec::Pcma,
            dtmf_payload_type: Some(96),
            ptime_ms: 30,
        };
        assert_eq!(
            s.update(SessionUpdate {
                ptime_ms: 5,
                ..update
            }),
            Err(SessionError::BadPtime(5))
        );
        s.update(update).unwrap();
        assert_eq!(s.remote(), answer);
        assert!(!s.remote_latched());
        assert_eq!(s.codec(), PayloadCodec::Pcma);
        assert_eq!(s.dtmf_payload_type(), Some(96));
        assert_eq!(s.ptime_ms(), 30);
        // The next packet keeps its deadline (t0 + 20 ms); the grid then runs at 30 ms.
        assert_eq!(s.next_send_at(), t0 + PTIME);
        s.play(1, media(&[7; 480]), 1).unwrap();
        s.send_digits(2, b"9").unwrap();
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut events = Vec::new();
        let tx = s
            .poll_transmit(t0 + PTIME, &mut buf, |e| events.push(e))
            .unwrap();
        assert_eq!(tx.destination, answer);
        assert_eq!(tx.len, 12 + 240, "30 ms of A-law");
        let pkt1 = buf[..tx.len].to_vec();
        let p1 = parse_rtp(&pkt1).unwrap();
        assert_eq!(p1.payload_type, 8);
        assert_eq!(p1.ssrc, p0.ssrc);
        assert_eq!(p1.sequence, p0.sequence.wrapping_add(1));
        assert_eq!(p1.timestamp, p0.timestamp.wrapping_add(160));
        let alaw_7 = g711::ulaw_to_alaw_table()[7];
        assert!(p1.payload.iter().all(|b| *b == alaw_7), "A-law payload");
        let t1 = t0 + PTIME;
        let step = Duration::from_millis(30);
        assert!(s
            .poll_transmit(t1 + step - Duration::from_micros(1), &mut buf, |_| {})
            .is_none());
        let tx = s
            .poll_transmit(t1 + step, &mut buf, |e| events.push(e))
            .unwrap();
        let p2 = parse_rtp(&buf[..tx.len]).unwrap();
        assert_eq!(p2.timestamp, p1.timestamp.wrapping_add(240));
        assert_eq!(events, [done(1, false)]);
        // The digit goes out with the new telephone-event payload type, to the new address.
        let tx = s.poll_transmit(t1 + step * 2, &mut buf, |_| {}).unwrap();
        assert_eq!(tx.destination, answer);
        let p3 = parse_rtp(&buf[..tx.len]).unwrap();
        assert_eq!(p3.payload_type, 96);
        assert!(p3.marker);
        assert_eq!(p3.payload, &[9, 0x0A, 0x00, 240]);
        // The first valid RTP after the update latches again.
        let peer: SocketAddr = "203.0.113.5:40000".parse().unwrap();
        s.handle_datagram(
            Instant::now(),
            peer,
            &rtp_packet(8, 1, 160, &[0xD5; 240]),
            |_| {},
        );
        assert_eq!(s.remote(), peer);
    }

    #[test]
    fn send_digits_produces_the_rfc4733_sequence() {
        let t0 = Instant::now();
        let mut s = Session::new(params(PayloadCodec::Pcmu), t0).unwrap();
        s.send_digits(5, b"1w2").unwrap();
        s.start_talkspurt(t0);
        let packets = ticks(&mut s, t0, 0, 48);
        let t_start = 0xFFFF_FF00u32;
        let parsed: Vec<_> = packets.iter().map(|p| parse_rtp(&p.0).unwrap()).collect();
        for (i, p) in parsed.iter().enumerate() {
            assert_eq!(p.sequence, 0xFFFEu16.wrapping_add(i as u16), "contiguous");
            assert_eq!(p.ssrc, 0x1234_5678);
        }
        // (packet index, event, ts offset in ticks) of each digit's first packet.
        let expected_event = |first: usize, event: u8| {
            let start_ts = t_start.wrapping_add(160 * first as u32);
            for k in 0..8 {
                let p = &parsed[first + k];
                assert_eq!(p.payload_type, 101, "packet {}", first + k);
                assert_eq!(p.timestamp, start_ts, "event timestamp = its start");
                assert_eq!(p.marker, k == 0, "marker on the first packet only");
                let duration: u16 = if k < 5 { 160 * (k as u16 + 1) } else { 800 };
                let flags = if k < 5 { 0x0A } else { 0x8A };
                let mut payload = vec![event, flags];
                payload.extend_from_slice(&duration.to_be_bytes());
                assert_eq!(p.payload, &payload[..], "packet {}", first + k);
            }
        };
        expected_event(0, 1);
        // 50 ms after '1' (3 packets) + 'w' 500 ms (25 packets): 28 silence packets.
        expected_event(36, 2);
        let silence = |range: std::ops::Range<usize>| {
            for i in range {
                let p = &parsed[i];
                assert_eq!(p.payload_type, 0, "packet {i}");
                assert!(!p.marker);
                assert_eq!(p.payload, &[g711::ULAW_SILENCE; 160][..]);
                assert_eq!(p.timestamp, t_start.wrapping_add(160 * i as u32));
            }
        };
        silence(8..36);
        let gap_ms = (36 - 8) * 20;
        assert!((550..=570).contains(&gap_ms), "50 ms + 500 ms pause");
        silence(44..48);
        // PlayDone on the last packet of the trailing 50 ms (3 packets), nothing else.
        for (i, p) in packets.iter().enumerate() {
            let expected: &[SessionEvent] = if i == 46 { &[done(5, false)] } else { &[] };
            assert_eq!(p.1, expected, "events at packet {i}");
        }
        assert_eq!(s.queued_items(), 0);
    }

    #[test]
    fn digits_wait_for_the_packet_boundary_and_need_a_payload_type() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        s.play(1, media(&[7; 100]), 1).unwrap();
        s.send_digits(2, b"").unwrap();
        s.send_digits(3, b"#").unwrap();
        assert_eq!(s.send_digits(4, b"1x"), Err(SessionError::BadDigits));
        assert_eq!(s.send_digits(4, &[b'1'; 33]), Err(SessionError::BadDigits));
        let packets = ticks(&mut s, t0, 0, 2);
        let p0 = parse_rtp(&packets[0].0).unwrap();
        assert_eq!(&p0.payload[..100], &[7; 100][..]);
        assert!(p0.payload[100..].iter().all(|b| *b == g711::ULAW_SILENCE));
        assert_eq!(packets[0].1, [done(1, false)]);
        let p1 = parse_rtp(&packets[1].0).unwrap();
        assert_eq!((p1.payload_type, p1.marker), (101, true));
        assert_eq!(p1.payload, &[11, 0x0A, 0, 160]);
        assert_eq!(
            packets[1].1,
            [done(2, false)],
            "the empty string ends at once"
        );

        let mut no_pt = params(PayloadCodec::Pcmu);
        no_pt.dtmf_payload_type = None;
        let mut s = Session::new(no_pt, t0).unwrap();
        assert_eq!(s.send_digits(1, b"1"), Err(SessionError::NoTelephoneEvent));
        assert_eq!(s.queued_items(), 0);
    }

    #[test]
    fn stop_playback_interrupts_digits_and_ends_the_event_on_the_wire() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        s.send_digits(1, b"123").unwrap();
        s.silence(2, 1000).unwrap();
        let first = ticks(&mut s, t0, 0, 2);
        let ts = parse_rtp(&first[0].0).unwrap().timestamp;
        let mut events = Vec::new();
        s.stop_playback(|e| events.push(e));
        assert_eq!(events, [done(1, true), done(2, true)]);
        let after = ticks(&mut s, t0, 2, 5);
        for p in &after[..3] {
            let p = parse_rtp(&p.0).unwrap();
            assert_eq!(p.payload_type, 101);
            assert_eq!(p.timestamp, ts);
            assert_eq!(p.payload, &[1, 0x8A, 0x01, 0x40], "E bit, duration 320");
        }
        for p in &after[3..] {
            let p = parse_rtp(&p.0).unwrap();
            assert_eq!(p.payload_type, 0);
            assert_eq!(p.payload, &[g711::ULAW_SILENCE; 160][..]);
        }
        assert!(after.iter().all(|p| p.1.is_empty()));
        // Stopping during a silence gap sends no end packets.
        s.send_digits(3, b"4").unwrap();
        ticks(&mut s, t0, 7, 9);
        s.stop_playback(|_| {});
        let p = ticks(&mut s, t0, 16, 1);
        assert_eq!(parse_rtp(&p[0].0).unwrap().payload_type, 0);
    }

    fn rtp_packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut pkt = vec![0u8; 12];
        RtpHeader {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc: 0xAABB_CCDD,
        }
        .write(&mut pkt)
        .unwrap();
        pkt.extend_from_slice(payload);
        pkt
    }

    fn with_ssrc(mut pkt: Vec<u8>, ssrc: u32) -> Vec<u8> {
        pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
        pkt
    }

    /// Feeds `pkt` to `from` and forwards what it received out of `to`.
    fn relay(from: &mut Session, to: &mut Session, now: Instant, pkt: &[u8]) -> Option<Vec<u8>> {
        let received = from.handle_datagram(now, remote(), pkt, |_| {});
        let Received::Rtp { packet, kind } = received else {
            return None;
        };
        let mut out = [0u8; MAX_PACKET_LEN];
        let tx = to.forward(now, &packet, kind, &mut out)?;
        assert_eq!(tx.destination, to.remote());
        Some(out[..tx.len].to_vec())
    }

    #[test]
    fn forwarding_restamps_into_the_legs_own_stream_and_transcodes() {
        let t0 = Instant::now();
        let mut caller = started(params(PayloadCodec::Pcmu), t0);
        let mut callee = Session::new(
            SessionParams {
                ssrc: 0x0BAD_CAFE,
                dtmf_payload_type: Some(96),
                ..params(PayloadCodec::Pcma)
            },
            t0,
        )
        .unwrap();
        callee.start_talkspurt(t0);
        // The callee leg sent two packets of its own (seq FFFE, FFFF; ts FFFFFF00, FFFFFFA0).
        drain(&mut callee, t0 + PTIME);
        let mut events = Vec::new();
        callee.start_relay(|e| events.push(e));
        caller.start_relay(|_| {});
        assert!(callee.is_relaying() && !callee.is_pacing());
        assert!(
            drain(&mut callee, t0 + PTIME * 5).is_empty(),
            "no paced packets while bridged"
        );

        // Not bridged: nothing is forwarded.
        let mut idle = Session::new(params(PayloadCodec::Pcmu), t0).unwrap();
        assert!(relay(
            &mut caller,
            &mut idle,
            t0,
            &rtp_packet(0, 7, 1000, &[0x00; 160])
        )
        .is_none());

        let ulaw: Vec<u8> = (0..160u32).map(|i| (i * 7 % 256) as u8).collect();
        let t1 = t0 + PTIME * 2;
        let first = relay(&mut caller, &mut callee, t1, &rtp_packet(0, 7, 1000, &ulaw)).unwrap();
        let p = parse_rtp(&first).unwrap();
        assert_eq!(p.ssrc, 0x0BAD_CAFE, "the leg's own SSRC");
        assert_eq!(p.payload_type, 8, "the leg's codec");
        assert_eq!(p.sequence, 0x0000, "continues after FFFF");
        assert_eq!(
            p.timestamp,
            0xFFFF_FFA0u32.wrapping_add(160),
            "20 ms after the last packet"
        );
        assert!(p.marker, "a new stream segment is marked");
        let table = g711::ulaw_to_alaw_table();
        let expected: Vec<u8> = ulaw.iter().map(|b| table[usize::from(*b)]).collect();
        assert_eq!(p.payload, &expected[..], "transcoded sample by sample");

        // A gap of two packets and a reordered one keep their distance.
        let gap = relay(
            &mut caller,
            &mut callee,
            t1 + PTIME * 3,
            &rtp_packet(0, 10, 1480, &ulaw),
        )
        .unwrap();
        let late = relay(
            &mut caller,
            &mut callee,
            t1 + PTIME * 3,
            &rtp_packet(0, 9, 1320, &ulaw),
        )
        .unwrap();
        let (gap, late) = (parse_rtp(&gap).unwrap(), parse_rtp(&late).unwrap());
        assert_eq!(
            (gap.sequence, gap.timestamp.wrapping_sub(p.timestamp)),
            (3, 480)
        );
        assert_eq!(
            (late.sequence, late.timestamp.wrapping_sub(p.timestamp)),
            (2, 320)
        );
        assert!(!gap.marker && !late.marker);

        // Telephone events go out with the leg's own event payload type and are still reported.
        let mut reported = Vec::new();
        let key = rtp_packet(101, 11, 1640, &[5, 0x0A, 0, 160]);
        let received = caller.handle_datagram(t1, remote(), &key, |e| reported.push(e));
        let Received::Rtp { packet, kind } = received else {
            panic!("{received:?}")
        };
        assert_eq!(
            kind,
            RtpKind::TelephoneEvent {
                new_digit: Some(b'5')
            }
        );
        let mut out = [0u8; MAX_PACKET_LEN];
        let tx = callee.forward(t1, &packet, kind, &mut out).unwrap();
        assert!(!tx.audio);
        let event = parse_rtp(&out[..tx.len]).unwrap();
        assert_eq!((event.payload_type, event.sequence), (96, 4));
        assert_eq!(event.payload, &[5, 0x0A, 0, 160]);
        assert_eq!(reported, vec![SessionEvent::Dtmf { digit: b'5' }]);
        // Comfort noise (another payload type) is not forwarded.
        assert!(relay(
            &mut caller,
            &mut callee,
            t1,
            &rtp_packet(13, 12, 1800, &[40])
        )
        .is_none());

        // A new source stream (another SSRC) restarts the offsets, continuing the leg's stream.
        let t2 = t1 + PTIME * 10;
        let other = relay(
            &mut caller,
            &mut callee,
            t2,
            &with_ssrc(rtp_packet(0, 60000, 9, &ulaw), 77),
        )
        .unwrap();
        let other = parse_rtp(&other).unwrap();
        assert!(other.marker);
        assert_eq!(other.sequence, 5);
        assert_eq!(
            other.timestamp.wrapping_sub(gap.timestamp),
            7 * 160,
            "real time since"
        );

        // Ending the bridge: paced silence again, continuing sequence and time.
        callee.end_relay(t2 + PTIME);
        assert!(callee.is_pacing());
        let (resumed, _) = one(&mut callee, t2 + PTIME);
        let resumed = parse_rtp(&resumed).unwrap();
        assert_eq!(resumed.sequence, 6);
        assert_eq!(resumed.timestamp.wrapping_sub(other.timestamp), 160);
        assert!(resumed.marker);
        assert!(resumed.payload.iter().all(|b| *b == g711::ALAW_SILENCE));
        assert_eq!(callee.counters().packets_forwarded, 5);
    }

    #[test]
    fn pcma_forwarded_to_a_pcmu_leg_and_same_codec_unchanged() {
        let t0 = Instant::now();
        let mut alaw_leg = started(params(PayloadCodec::Pcma), t0);
        let mut ulaw_leg = started(params(PayloadCodec::Pcmu), t0);
        let mut other_ulaw = started(params(PayloadCodec::Pcmu), t0);
        for s in [&mut alaw_leg, &mut ulaw_leg, &mut other_ulaw] {
            s.start_relay(|_| {});
        }
        let alaw: Vec<u8> = (0..=255u8).collect();
        let out = relay(
            &mut alaw_leg,
            &mut ulaw_leg,
            t0,
            &rtp_packet(8, 1, 0, &alaw),
        )
        .unwrap();
        let table = g711::alaw_to_ulaw_table();
        let p = parse_rtp(&out).unwrap();
        assert_eq!(p.payload_type, 0);
        assert!(p
            .payload
            .iter()
            .zip(&alaw)
            .all(|(u, a)| *u == table[usize::from(*a)]));
        let same = relay(
            &mut ulaw_leg,
            &mut other_ulaw,
            t0,
            &rtp_packet(0, 1, 0, &alaw),
        )
        .unwrap();
        assert_eq!(
            parse_rtp(&same).unwrap().payload,
            &alaw[..],
            "PCMU to PCMU is a copy"
        );
    }

    #[test]
    fn keypad_tones_in_the_audio_count_only_without_telephone_events() {
        let tone: Vec<u8> = (0..800)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let v = 6000.0 * (2.0 * std::f32::consts::PI * 852.0 * t).sin()
                    + 6000.0 * (2.0 * std::f32::consts::PI * 1477.0 * t).sin();
                g711::linear_to_ulaw(v as i16)
            })
            .collect();
        for (dtmf_payload_type, expected) in [
            (None, vec![SessionEvent::Dtmf { digit: b'9' }]),
            (Some(101), vec![]),
        ] {
            let t0 = Instant::now();
            let mut s = Session::new(
                SessionParams {
                    dtmf_payload_type,
                    ..params(PayloadCodec::Pcmu)
                },
                t0,
            )
            .unwrap();
            let mut events = Vec::new();
            for (i, chunk) in tone.chunks(160).enumerate() {
                let pkt = rtp_packet(0, i as u16, 160 * i as u32, chunk);
                let received = s.handle_datagram(t0, remote(), &pkt, |e| events.push(e));
                assert!(received.audio().is_some(), "still audio");
            }
            assert_eq!(events, expected, "telephone-event PT {dtmf_payload_type:?}");
            assert_eq!(s.counters().dtmf_digits, expected.len() as u64);
        }
    }

    #[test]
    fn latch_moves_for_the_same_stream_or_after_silence() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        let first: SocketAddr = "198.51.100.7:61000".parse().unwrap();
        let moved: SocketAddr = "198.51.100.7:61002".parse().unwrap();
        let intruder: SocketAddr = "203.0.113.9:5004".parse().unwrap();
        let stream = rtp_packet(0, 1, 160, &[0xFF; 160]);
        assert_ne!(
            s.handle_datagram(t0, first, &stream, |_| {}),
            Received::Ignored
        );
        // Another SSRC from elsewhere while the peer talks: ignored.
        let foreign = with_ssrc(rtp_packet(0, 1, 160, &[0; 160]), 99);
        assert_eq!(
            s.handle_datagram(t0, intruder, &foreign, |_| {}),
            Received::Ignored
        );
        assert_eq!(s.remote(), first);
        // The same stream from a new port (NAT rebinding): the latch follows at once.
        assert_ne!(
            s.handle_datagram(t0, moved, &stream, |_| {}),
            Received::Ignored
        );
        assert_eq!(s.remote(), moved);
        // A new stream from elsewhere takes over only after the peer went quiet.
        let quiet = t0 + RELATCH_AFTER_IDLE;
        assert_ne!(
            s.handle_datagram(quiet, intruder, &foreign, |_| {}),
            Received::Ignored
        );
        assert_eq!(s.remote(), intruder);
        assert_eq!(s.counters().relatches, 2);
        assert_eq!(s.counters().packets_ignored, 1);
    }

    #[test]
    fn rtp_timeout_fires_once_per_silence() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(60);
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        assert_eq!(
            s.poll_rtp_timeout(t0 + Duration::from_secs(59), timeout),
            None
        );
        assert_eq!(
            s.poll_rtp_timeout(t0 + Duration::from_secs(61), timeout),
            Some(61_000)
        );
        assert_eq!(
            s.poll_rtp_timeout(t0 + Duration::from_secs(90), timeout),
            None,
            "once"
        );
        // RTP resumes: the clock restarts and a new silence is reported again.
        let t1 = t0 + Duration::from_secs(100);
        s.handle_datagram(t1, remote(), &rtp_packet(0, 1, 0, &[0; 160]), |_| {});
        assert_eq!(
            s.poll_rtp_timeout(t1 + Duration::from_secs(30), timeout),
            None
        );
        assert_eq!(
            s.poll_rtp_timeout(t1 + Duration::from_secs(60), timeout),
            Some(60_000)
        );
        // Garbage does not count as RTP; a zero timeout never fires.
        let mut quiet = started(params(PayloadCodec::Pcmu), t0);
        quiet.handle_datagram(t0 + Duration::from_secs(50), remote(), b"junk", |_| {});
        assert!(quiet
            .poll_rtp_timeout(t0 + Duration::from_secs(60), timeout)
            .is_some());
        assert_eq!(
            quiet.poll_rtp_timeout(t0 + Duration::from_secs(600), Duration::ZERO),
            None
        );
    }

    #[test]
    fn symmetric_rtp_latches_to_first_valid_packet_source() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        let nat: SocketAddr = "198.51.100.7:61000".parse().unwrap();
        let other: SocketAddr = "198.51.100.8:61000".parse().unwrap();
        let mut events = Vec::new();
        // Garbage does not latch.
        assert_eq!(
            s.handle_datagram(Instant::now(), other, b"hello", |e| events.push(e)),
            Received::Ignored
        );
        assert!(!s.remote_latched());
        assert_eq!(s.remote(), remote());
        let audio = rtp_packet(0, 1, 160, &[0xFF; 160]);
        let received = s.handle_datagram(Instant::now(), nat, &audio, |e| events.push(e));
        let (packet, codec) = received.audio().unwrap();
        assert_eq!(codec, PayloadCodec::Pcmu);
        assert_eq!(
            (
                packet.ssrc,
                packet.timestamp,
                packet.sequence,
                packet.payload
            ),
            (0xAABB_CCDD, 160, 1, &[0xFF; 160][..])
        );
        assert!(s.remote_latched());
        assert_eq!(s.remote(), nat);
        // Another stream from elsewhere is ignored; sends go to the latched address.
        let foreign = with_ssrc(audio.clone(), 1);
        assert_eq!(
            s.handle_datagram(Instant::now(), other, &foreign, |e| events.push(e)),
            Received::Ignored
        );
        let mut buf = [0u8; MAX_PACKET_LEN];
        assert_eq!(
            s.poll_transmit(t0, &mut buf, |_| {}).unwrap().destination,
            nat
        );
        let c = s.counters();
        assert_eq!((c.packets_received, c.packets_ignored), (1, 2));
        assert_eq!(c.bytes_received, 172);
        assert!(events.is_empty());
    }

    #[test]
    fn audio_taps_carry_the_codec_payload_only() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcma), t0);
        let src = remote();
        let alaw = rtp_packet(8, 1, 480, &[0x55; 80]);
        let received = s.handle_datagram(Instant::now(), src, &alaw, |_| {});
        let (a, codec) = received.audio().unwrap();
        assert_eq!(
            (a.ssrc, a.timestamp, codec),
            (0xAABB_CCDD, 480, PayloadCodec::Pcma)
        );
        assert_eq!(a.payload, &[0x55; 80]);
        // Another codec, comfort noise and telephone events are not audio to record.
        for pt in [0u8, 13, 101] {
            let pkt = rtp_packet(pt, 2, 640, &[1, 0x0A, 0, 160]);
            assert!(
                s.handle_datagram(Instant::now(), src, &pkt, |_| {})
                    .audio()
                    .is_none(),
                "PT {pt}"
            );
        }
        // Sent packets: audio (media, silence) vs telephone events, each with its send tick.
        s.play(1, media(&[7; 160]), 1).unwrap();
        s.send_digits(2, b"1").unwrap();
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut kinds = Vec::new();
        for n in 0..4u32 {
            let tx = s.poll_transmit(t0 + PTIME * n, &mut buf, |_| {}).unwrap();
            assert_eq!(tx.due, t0 + PTIME * n);
            kinds.push((tx.audio, parse_rtp(&buf[..tx.len]).unwrap().payload_type));
        }
        assert_eq!(kinds, [(true, 8), (false, 101), (false, 101), (false, 101)]);
        // Late by more than the skip threshold: `due` is the tick actually sent.
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        let tx = s
            .poll_transmit(t0 + PTIME * 10 + Duration::from_millis(3), &mut buf, |_| {})
            .unwrap();
        assert_eq!(tx.skipped_ticks, 10);
        assert_eq!(tx.due, t0 + PTIME * 10);
        assert!(tx.audio, "idle silence is audio");
    }

    #[test]
    fn dtmf_digits_reported_once_per_event() {
        let mut s = Session::new(params(PayloadCodec::Pcmu), Instant::now()).unwrap();
        let src = remote();
        let mut events = Vec::new();
        let mut seq = 100;
        for (digit_code, ts) in [(1u8, 8000u32), (2, 16000)] {
            // Updates, then three identical end packets (same seq, same timestamp).
            for duration in [160u16, 320, 480] {
                let payload = [digit_code, 0x0A, (duration >> 8) as u8, duration as u8];
                s.handle_datagram(
                    Instant::now(),
                    src,
                    &rtp_packet(101, seq, ts, &payload),
                    |e| events.push(e),
                );
                seq += 1;
            }
            for _ in 0..3 {
                let payload = [digit_code, 0x8A, 0x02, 0x80];
                s.handle_datagram(
                    Instant::now(),
                    src,
                    &rtp_packet(101, seq, ts, &payload),
                    |e| events.push(e),
                );
            }
            seq += 1;
        }
        // Audio with PT 0 that happens to start like an event is not DTMF.
        s.handle_datagram(
            Instant::now(),
            src,
            &rtp_packet(0, seq, 24000, &[3, 0x0A, 0, 160]),
            |e| events.push(e),
        );
        assert_eq!(
            events,
            vec![
                SessionEvent::Dtmf { digit: b'1' },
                SessionEvent::Dtmf { digit: b'2' }
            ]
        );
        assert_eq!(s.counters().dtmf_digits, 2);
        assert_eq!(s.counters().packets_received, 13);
    }

    /// The RTP payloads of SIPp's `dtmf_2833_1.pcap` (PT 101, digit 1, three end packets).
    const SIPP_DTMF_1: [&str; 10] = [
        "80e51f30000033e00e05384e010a0000",
        "80651f31000033e00e05384e010a0140",
        "80651f32000033e00e05384e010a0280",
        "80651f33000033e00e05384e010a03c0",
        "80651f34000033e00e05384e010a0500",
        "80651f35000033e00e05384e010a0640",
        "80651f36000033e00e05384e010a0780",
        "80651f37000033e00e05384e018a08c0",
        "80651f37000033e00e05384e018a08c0",
        "80651f37000033e00e05384e018a08c0",
    ];

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// UDP payloads of a classic-format pcap with Ethernet/IPv4 framing.
    fn pcap_udp_payloads(bytes: &[u8]) -> Vec<Vec<u8>> {
        let magic = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        let big_endian = match magic {
            0xA1B2_C3D4 | 0xA1B2_3C4D => false,
            0xD4C3_B2A1 | 0x4D3C_B2A1 => true,
            other => panic!("not a pcap file: magic {other:#x}"),
        };
        let read_u32 = |b: &[u8]| {
            let a: [u8; 4] = b.try_into().unwrap();
            if big_endian {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        assert_eq!(read_u32(&bytes[20..24]), 1, "Ethernet link type");
        let mut payloads = Vec::new();
        let mut off = 24;
        while off + 16 <= bytes.len() {
            let incl = read_u32(&bytes[off + 8..off + 12]) as usize;
            let frame = &bytes[off + 16..off + 16 + incl];
            off += 16 + incl;
            assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4 ethertype");
            let ip = &frame[14..];
            assert_eq!(ip[9], 17, "UDP");
            let ihl = usize::from(ip[0] & 0x0F) * 4;
            let udp = &ip[ihl..];
            let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
            payloads.push(udp[8..udp_len].to_vec());
        }
        payloads
    }

    fn digits_from(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut s = Session::new(params(PayloadCodec::Pcmu), Instant::now()).unwrap();
        let mut digits = Vec::new();
        for pkt in packets {
            s.handle_datagram(Instant::now(), remote(), pkt, |e| {
                if let SessionEvent::Dtmf { digit } = e {
                    digits.push(digit)
                }
            });
        }
        assert_eq!(s.counters().packets_received, packets.len() as u64);
        digits
    }

    #[test]
    fn sipp_dtmf_capture_gives_one_digit() {
        let packets: Vec<Vec<u8>> = SIPP_DTMF_1.iter().map(|h| unhex(h)).collect();
        assert_eq!(digits_from(&packets), b"1");
    }

    #[test]
    fn sipp_pcap_files_give_one_digit_each() {
        let dir = std::path::Path::new("/usr/share/sip-tester");
        if !dir.exists() {
            // SIPp not installed: the embedded copy above covers the packet shape.
            return;
        }
        let expected = [
            ("0", b'0'),
            ("1", b'1'),
            ("5", b'5'),
            ("9", b'9'),
            ("star", b'*'),
            ("pound", b'#'),
        ];
        for (name, digit) in expected {
            let bytes = std::fs::read(dir.join(format!("dtmf_2833_{name}.pcap"))).unwrap();
            let packets = pcap_udp_payloads(&bytes);
            assert!(packets.len() >= 4, "{name}: {} packets", packets.len());
            assert_eq!(digits_from(&packets), vec![digit], "pcap {name}");
        }
        // The embedded copy is byte-identical to the capture.
        let bytes = std::fs::read(dir.join("dtmf_2833_1.pcap")).unwrap();
        let from_file = pcap_udp_payloads(&bytes);
        let embedded: Vec<Vec<u8>> = SIPP_DTMF_1.iter().map(|h| unhex(h)).collect();
        assert_eq!(from_file, embedded);
    }

    #[test]
    fn rtcp_statistics_count_the_latched_stream_and_reports_carry_them() {
        let t0 = Instant::now();
        let mut s = started(params(PayloadCodec::Pcmu), t0);
        let intruder: SocketAddr = "203.0.113.9:5004".parse().unwrap();
        // Sequence 1..=10 with 5 missing, 20 ms apart; an event and a foreign stream too.
        for seq in (1..=10u16).filter(|seq| *seq != 5) {
            let at = t0 + PTIME * u32::from(seq);
            let pkt = rtp_packet(0, seq, 160 * u32::from(seq), &[0xFF; 160]);
            assert_ne!(
                s.handle_datagram(at, remote(), &pkt, |_| {}),
                Received::Ignored
            );
        }
        let event = rtp_packet(101, 11, 0, &[1, 0x0A, 0, 160]);
        s.handle_datagram(t0 + PTIME * 11, remote(), &event, |_| {});
        let foreign = with_ssrc(rtp_packet(0, 500, 0, &[0; 160]), 99);
        assert_eq!(
            s.handle_datagram(t0 + PTIME * 11, intruder, &foreign, |_| {}),
            Received::Ignored
        );
        // Our own stream: three packets.
        let mut buf = [0u8; MAX_PACKET_LEN];
        for n in 0..3u32 {
            s.poll_transmit(t0 + PTIME * n, &mut buf, |_| {}).unwrap();
        }
        let qos = s.qos(t0 + PTIME * 12, false);
        assert_eq!(qos.codec, shmq::Codec::Pcmu);
        assert_eq!((qos.packets_received, qos.packets_lost), (10, 1));
        assert_eq!(
            qos.jitter_us, 0,
            "on time; the event's timestamp is not audio"
        );
        assert_eq!((qos.packets_sent, qos.octets_sent), (3, 480));
        // The report is an SR with a block about the peer's stream, to its RTP port + 1.
        let now = s.next_report_at();
        let tx = s.poll_report(now, 0, &mut buf).unwrap();
        assert_eq!(tx.destination, "192.0.2.10:40001".parse().unwrap());
        let packets: Vec<_> = crate::rtcp::parse_compound(&buf[..tx.len])
            .unwrap()
            .collect();
        let crate::rtcp::RtcpPacket::SenderReport {
            ssrc,
            info,
            mut blocks,
        } = packets[0]
        else {
            panic!("{packets:?}");
        };
        assert_eq!(
            (ssrc, info.packet_count, info.octet_count),
            (0x1234_5678, 3, 480)
        );
        let block = blocks.next().unwrap();
        assert_eq!(
            (block.ssrc, block.highest_sequence, block.cumulative_lost),
            (0xAABB_CCDD, 11, 1)
        );
        assert!(s.next_report_at() > now);
        // The final report says goodbye; a session without RTP says nothing.
        let tx = s.final_report(now, 0, &mut buf).unwrap();
        let last = crate::rtcp::parse_compound(&buf[..tx.len]).unwrap().last();
        assert!(matches!(last, Some(crate::rtcp::RtcpPacket::Bye { .. })));
        let mut silent = Session::new(params(PayloadCodec::Pcma), t0).unwrap();
        assert_eq!(silent.final_report(now, 0, &mut buf), None);
        assert!(silent.qos(now, true).final_report);
    }

    #[test]
    fn a_session_stays_small() {
        // The budget is 8 KiB of data-plane memory per session; the session core is
        // the bulk of it (was 440 bytes before RTCP).
        let size = std::mem::size_of::<Session>();
        eprintln!("size_of::<Session>() = {size}");
        assert!(size <= 1024, "{size} bytes");
    }
}
