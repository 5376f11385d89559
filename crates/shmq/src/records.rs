//! The record types that cross the rings: identifiers, [`Command`]s (control → media),
//! [`Event`]s (media → control) and their fixed-size wire form, [`Record`].
//!
//! A [`Record`] is 96 bytes: `kind: u32`, `flags: u32` (reserved, written as 0 and ignored on
//! decode), `session: u64`, and an 80-byte `body` whose layout depends on `kind`. Each body
//! layout is a private `#[repr(C)]` Pod struct below, cast to and from the byte array, so the
//! layout is written down exactly once. Both planes run on the same host, so multi-byte fields
//! are native-endian.
//!
//! Command kinds are `1..=99`, event kinds `101..`; the ranges never overlap, so decoding an
//! event record as a command (or the reverse) is a [`DecodeError::UnknownKind`]. Decoding
//! validates every enumerated byte (kind, codec, address family, fail reason, booleans, DTMF
//! digit, send-digits characters) and never panics, whatever the record holds.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bytemuck::{must_cast, Pod, Zeroable};

/// Size in bytes of one [`Record`], and of one ring slot.
pub const RECORD_SIZE: usize = 96;

/// Size in bytes of [`Record::body`].
pub const RECORD_BODY_SIZE: usize = 80;

/// Most characters one [`Command::SendDigits`] carries (Twilio's `SendDigits` limit).
pub const MAX_SEND_DIGITS: usize = 32;

/// Identifies one media session; chosen by the control plane, unique among live sessions.
#[repr(transparent)]
#[derive(Pod, Zeroable, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Lower-case hex of `bytes`, for the ids that name files.
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// SHA-256 of a telephony-ready media file's bytes; names the file in the cache directory.
#[repr(transparent)]
#[derive(Pod, Zeroable, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MediaId(pub [u8; 32]);

impl MediaId {
    /// Lower-case hex of the 32 bytes (64 characters).
    pub fn to_hex(&self) -> String {
        lower_hex(&self.0)
    }

    /// The cache file name of this media: `"<hex>.ulaw"`.
    pub fn file_name(&self) -> String {
        format!("{}.ulaw", self.to_hex())
    }
}

impl fmt::Debug for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaId({})", self.to_hex())
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Names one recording (the 16 bytes of its `RE…` SID); its file in the recordings
/// directory is `"<hex>.wav"`.
#[repr(transparent)]
#[derive(Pod, Zeroable, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RecordingId(pub [u8; 16]);

impl RecordingId {
    /// Lower-case hex of the 16 bytes (32 characters).
    pub fn to_hex(&self) -> String {
        lower_hex(&self.0)
    }

    /// The id whose hex is `hex` (32 hex digits, any case).
    pub fn from_hex(hex: &str) -> Option<RecordingId> {
        let bytes = hex.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
        let mut id = [0u8; 16];
        for (slot, pair) in id.iter_mut().zip(bytes.chunks_exact(2)) {
            let [hi, lo] = pair else { return None };
            *slot = (nibble(*hi)? << 4) | nibble(*lo)?;
        }
        Some(RecordingId(id))
    }

    /// The finished recording's file name: `"<hex>.wav"`.
    pub fn file_name(&self) -> String {
        format!("{}.wav", self.to_hex())
    }
}

impl fmt::Debug for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordingId({})", self.to_hex())
    }
}

/// Names one conference mix; chosen by the control plane, unique among live mixes. A mix
/// exists while it has members, whichever workers their sessions live on.
#[repr(transparent)]
#[derive(Pod, Zeroable, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct MixId(pub u64);

impl fmt::Display for MixId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Most members one mix holds.
pub const MAX_MIX_MEMBERS: usize = 250;

/// What a recording holds.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RecordingChannels {
    /// One channel: what the session received and what it sent, mixed.
    Mono = 1,
    /// Two channels: 1 = received (the far end), 2 = sent (Switchboard's side).
    Dual = 2,
}

impl RecordingChannels {
    pub fn from_u8(value: u8) -> Option<RecordingChannels> {
        match value {
            1 => Some(RecordingChannels::Mono),
            2 => Some(RecordingChannels::Dual),
            _ => None,
        }
    }
}

/// Why a recording ended.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RecordingEnd {
    /// `StopRecording`.
    Stopped = 1,
    /// It reached its `max_duration_ms`.
    MaxLength = 2,
    /// Its session closed.
    SessionClosed = 3,
    /// The file could not be written; what was written is kept.
    WriteFailed = 4,
}

impl RecordingEnd {
    pub fn from_u32(value: u32) -> Option<RecordingEnd> {
        match value {
            1 => Some(RecordingEnd::Stopped),
            2 => Some(RecordingEnd::MaxLength),
            3 => Some(RecordingEnd::SessionClosed),
            4 => Some(RecordingEnd::WriteFailed),
            _ => None,
        }
    }
}

/// The G.711 codec of a session; the discriminant is the static RTP payload type.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Codec {
    /// G.711 μ-law, RTP payload type 0.
    Pcmu = 0,
    /// G.711 A-law, RTP payload type 8.
    Pcma = 8,
}

impl Codec {
    /// The static RTP payload type of this codec.
    pub fn payload_type(self) -> u8 {
        self as u8
    }

    /// The codec with static RTP payload type `pt`, if it is one we carry.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }
}

/// Why the media plane could not do what a command asked.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FailReason {
    /// No free RTP port in the worker's range.
    NoPortAvailable = 1,
    /// The worker's session table is full.
    SessionTableFull = 2,
    /// The command named a session the worker does not have.
    UnknownSession = 3,
    /// The command record did not decode or made no sense.
    BadCommand = 4,
    /// The media file of a `Play` is not in the cache directory.
    MediaNotFound = 5,
    /// The session's socket failed.
    SocketError = 6,
}

impl FailReason {
    /// The reason with wire value `value`, if any.
    pub fn from_u32(value: u32) -> Option<FailReason> {
        match value {
            1 => Some(FailReason::NoPortAvailable),
            2 => Some(FailReason::SessionTableFull),
            3 => Some(FailReason::UnknownSession),
            4 => Some(FailReason::BadCommand),
            5 => Some(FailReason::MediaNotFound),
            6 => Some(FailReason::SocketError),
            _ => None,
        }
    }
}

/// What the far end's RTCP report blocks said about the stream a session sends.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RemoteQos {
    /// Fraction of our packets lost in its last report interval, in 1/256.
    pub fraction_lost: u8,
    /// Its cumulative count of our packets lost (RFC 3550: negative with duplicates).
    pub packets_lost: i32,
    /// Its interarrival jitter of our stream in its last report, microseconds.
    pub jitter_us: u32,
    /// The largest jitter it reported and the mean of its reports, microseconds.
    pub jitter_max_us: u32,
    pub jitter_avg_us: u32,
}

/// A session's media quality, from its RTP receive statistics (RFC 3550 A.3, A.8), its sender
/// counters and the far end's RTCP reports; carried by [`Event::QosReport`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Qos {
    /// The codec the session sends and expects.
    pub codec: Codec,
    /// Valid RTP packets received from the far end.
    pub packets_received: u64,
    /// Cumulative packets of the far end's stream lost (expected − received; negative with
    /// duplicates), summed over every stream the session latched to.
    pub packets_lost: i32,
    /// Fraction of the far end's packets lost since our previous RTCP report, in 1/256.
    pub fraction_lost: u8,
    /// Interarrival jitter of the far end's stream now, its maximum and its mean over every
    /// packet, in microseconds.
    pub jitter_us: u32,
    pub jitter_max_us: u32,
    pub jitter_avg_us: u32,
    /// Round-trip time from the last report block about our stream (0: unknown), its maximum
    /// and its mean over every measurement, in microseconds.
    pub rtt_us: u32,
    pub rtt_max_us: u32,
    pub rtt_avg_us: u32,
    /// RTP packets and payload octets the session sent (paced and forwarded).
    pub packets_sent: u64,
    pub octets_sent: u64,
    /// The far end's view of our stream; `None` until a report block about it arrived.
    pub remote: Option<RemoteQos>,
    /// The session's last report: it closes right after (`SessionClosed` follows).
    pub final_report: bool,
}

/// A request from the control plane to a media worker.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Command {
    /// Allocate a local RTP port and start a session sending to `remote`.
    OpenSession {
        session: SessionId,
        remote: SocketAddr,
        codec: Codec,
        /// RFC 4733 telephone-event payload type, if negotiated.
        dtmf_payload_type: Option<u8>,
        ptime_ms: u16,
    },
    /// Queue a media file; `loops` 0 plays until stopped.
    Play {
        session: SessionId,
        play_id: u32,
        media: MediaId,
        loops: u16,
    },
    /// Queue silence.
    Silence {
        session: SessionId,
        play_id: u32,
        duration_ms: u32,
    },
    /// End the current item and empty the queue; every removed item reports
    /// `PlayDone { interrupted: true }`.
    StopPlayback { session: SessionId },
    /// Stop and free the session; answered by `SessionClosed`.
    CloseSession { session: SessionId },
    /// Re-targets a live session (an outbound call's answer SDP arrived): new destination
    /// (the symmetric-RTP latch resets to it), codec, telephone-event payload type and
    /// ptime. Same socket, SSRC and sequence. Answered by `SessionUpdated`, or
    /// `SessionFailed { UnknownSession | BadCommand }`.
    UpdateSession {
        session: SessionId,
        remote: SocketAddr,
        codec: Codec,
        dtmf_payload_type: Option<u8>,
        ptime_ms: u16,
    },
    /// Queue RFC 4733 digits, played in order with `Play`/`Silence` items and interrupted
    /// by `StopPlayback`; `PlayDone` when the whole string is sent.
    ///
    /// `digits[..len]` are ASCII `0-9 * # A-D`, or `w` for a 500 ms pause; bytes past
    /// `len` are zero on the wire (and ignored on decode). Build one with
    /// [`Command::send_digits`]; read the string back with [`Command::digits`].
    SendDigits {
        session: SessionId,
        play_id: u32,
        digits: [u8; MAX_SEND_DIGITS],
        len: u8,
    },
    /// Record the session's audio (16-bit PCM, 8 kHz WAV) into
    /// `<recordings dir>/<recording hex>.wav`, from now until `StopRecording`, the session
    /// closes, or `max_duration_ms` (0: no limit). One recording per session at a time;
    /// answered by `RecordingDone` when it ends, or `SessionFailed { UnknownSession |
    /// BadCommand }` if it cannot start.
    StartRecording {
        session: SessionId,
        recording: RecordingId,
        channels: RecordingChannels,
        max_duration_ms: u32,
    },
    /// End the session's recording (if any); its `RecordingDone` follows.
    StopRecording { session: SessionId },
    /// Relay RTP both ways between `session` and `peer` (two sessions of the same worker):
    /// what one leg receives from its peer leaves the other leg with that leg's SSRC,
    /// sequence and timestamp space, transcoded μ-law ↔ A-law when the legs' codecs differ;
    /// RFC 4733 events pass through with the other leg's payload type (and are still
    /// reported as `Dtmf`). Both legs' play queues end (`PlayDone { interrupted: true }`)
    /// and they stop sending their own media. Answered by `Bridged` (reported for
    /// `session`), or `SessionFailed { UnknownSession | BadCommand }` (a leg is unknown,
    /// the legs are the same session, or one is already bridged).
    Bridge { session: SessionId, peer: SessionId },
    /// End `session`'s bridge: both legs go back to sending their own media (silence until
    /// something is queued). Answered by `Unbridged`; a session that is not bridged
    /// answers `SessionFailed { BadCommand }`.
    Unbridge { session: SessionId },
    /// Make `session` a member of conference mix `mix` (created by its first member, on
    /// any worker): every 20 ms each member hears the sum of the other members' audio (not
    /// its own), each member's input through its own jitter buffer. `muted`: the others do
    /// not hear this member; `deaf`: this member hears no one (e.g. while on hold). The
    /// session's own play queue keeps playing, mixed over what it hears (beeps,
    /// announcements, hold music to one member). Sent again for the same mix it only
    /// changes `muted`/`deaf`. Answered by `MixJoined`, or `SessionFailed { UnknownSession
    /// | BadCommand }` (the session is bridged, in another mix, or the mix is full at
    /// [`MAX_MIX_MEMBERS`]).
    JoinMix {
        session: SessionId,
        mix: MixId,
        muted: bool,
        deaf: bool,
    },
    /// Take `session` out of its mix (it goes back to sending only its own play queue).
    /// Answered by `MixLeft`; a session in no mix answers `SessionFailed { BadCommand }`.
    /// Closing a member session leaves its mix too (`MixLeft` precedes `SessionClosed`).
    LeaveMix { session: SessionId },
}

/// A report from a media worker to the control plane.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    SessionOpened {
        session: SessionId,
        local_port: u16,
    },
    SessionFailed {
        session: SessionId,
        reason: FailReason,
    },
    PlayDone {
        session: SessionId,
        play_id: u32,
        interrupted: bool,
    },
    PlayFailed {
        session: SessionId,
        play_id: u32,
        reason: FailReason,
    },
    /// A received DTMF digit: ASCII `b'0'..=b'9'`, `b'*'`, `b'#'`, `b'A'..=b'D'`.
    Dtmf {
        session: SessionId,
        digit: u8,
    },
    SessionClosed {
        session: SessionId,
        packets_sent: u64,
        packets_received: u64,
    },
    /// An `UpdateSession` was applied.
    SessionUpdated {
        session: SessionId,
    },
    /// A recording ended and its file is complete (renamed into place).
    RecordingDone {
        session: SessionId,
        recording: RecordingId,
        duration_ms: u32,
        /// Size of the WAV file, header included.
        bytes: u64,
        end: RecordingEnd,
    },
    /// A `Bridge` took effect: `session` and `peer` relay to each other.
    Bridged {
        session: SessionId,
        peer: SessionId,
    },
    /// `session`'s bridge to `peer` ended: by `Unbridge`, or because `peer` closed.
    Unbridged {
        session: SessionId,
        peer: SessionId,
    },
    /// No RTP arrived on the session for `idle_ms` (the media plane's RTP timeout); the
    /// session stays open, reported once per silence (again only after RTP resumed).
    RtpTimeout {
        session: SessionId,
        idle_ms: u32,
    },
    /// A `JoinMix` took effect (a first join, or a change of `muted`/`deaf`).
    MixJoined {
        session: SessionId,
        mix: MixId,
        muted: bool,
        deaf: bool,
    },
    /// `session` left `mix`: by `LeaveMix`, or because it closed.
    MixLeft {
        session: SessionId,
        mix: MixId,
    },
    /// A mix member started (`speaking: true`) or stopped talking, by the level of its input
    /// (voice activity with a hang-over, so a pause between words is not an end).
    Speaking {
        session: SessionId,
        mix: MixId,
        speaking: bool,
    },
    /// The session's media quality: sent with every RTCP report the session sends (every
    /// 2.5–7.5 s while it carries RTP), and a last one (`qos.final_report`) right before
    /// its `SessionClosed`.
    QosReport {
        session: SessionId,
        qos: Qos,
    },
}

/// One ring slot: the wire form of a [`Command`] or an [`Event`].
#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Record {
    /// Which command or event this is (see [`kinds`]).
    pub kind: u32,
    /// Reserved; written as 0, ignored on decode.
    pub flags: u32,
    /// The [`SessionId`] the record concerns.
    pub session: u64,
    /// Kind-specific payload.
    pub body: [u8; RECORD_BODY_SIZE],
}

const _: () = assert!(std::mem::size_of::<Record>() == RECORD_SIZE);
const _: () = assert!(std::mem::align_of::<Record>() == 8);

impl Record {
    /// A record with every byte zero (kind 0 is not a valid command or event).
    pub fn zeroed() -> Record {
        Zeroable::zeroed()
    }
}

/// The `kind` numbers of [`Record`]s. Commands are `1..=99`, events `101..`.
pub mod kinds {
    pub const OPEN_SESSION: u32 = 1;
    pub const PLAY: u32 = 2;
    pub const SILENCE: u32 = 3;
    pub const STOP_PLAYBACK: u32 = 4;
    pub const CLOSE_SESSION: u32 = 5;
    pub const UPDATE_SESSION: u32 = 6;
    pub const SEND_DIGITS: u32 = 7;
    pub const START_RECORDING: u32 = 8;
    pub const STOP_RECORDING: u32 = 9;
    pub const BRIDGE: u32 = 10;
    pub const UNBRIDGE: u32 = 11;
    pub const JOIN_MIX: u32 = 12;
    pub const LEAVE_MIX: u32 = 13;

    pub const SESSION_OPENED: u32 = 101;
    pub const SESSION_FAILED: u32 = 102;
    pub const PLAY_DONE: u32 = 103;
    pub const PLAY_FAILED: u32 = 104;
    pub const DTMF: u32 = 105;
    pub const SESSION_CLOSED: u32 = 106;
    pub const SESSION_UPDATED: u32 = 107;
    pub const RECORDING_DONE: u32 = 108;
    pub const BRIDGED: u32 = 109;
    pub const UNBRIDGED: u32 = 110;
    pub const RTP_TIMEOUT: u32 = 111;
    pub const MIX_JOINED: u32 = 112;
    pub const MIX_LEFT: u32 = 113;
    pub const SPEAKING: u32 = 114;
    pub const QOS_REPORT: u32 = 120;
}

/// Why a [`Record`] is not a valid [`Command`] or [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("unknown codec payload type {0}")]
    BadCodec(u8),
    #[error("invalid address family {0} (expected 4 or 6)")]
    BadAddressFamily(u8),
    #[error("unknown fail reason {0}")]
    BadFailReason(u32),
    #[error("field {field} holds {value}, expected 0 or 1")]
    BadFlag { field: &'static str, value: u8 },
    #[error("invalid DTMF digit {0:#04x}")]
    BadDtmfDigit(u8),
    #[error("invalid character {0:#04x} in digits to send (expected 0-9 * # A-D w)")]
    BadSendDigit(u8),
    #[error("{0} digits to send, at most {MAX_SEND_DIGITS}")]
    TooManyDigits(usize),
    #[error("invalid recording channels {0} (expected 1 or 2)")]
    BadRecordingChannels(u8),
    #[error("unknown recording end {0}")]
    BadRecordingEnd(u32),
}

// ---- body layouts (private; native-endian) ----

const FAMILY_IPV4: u8 = 4;
const FAMILY_IPV6: u8 = 6;

/// The body of `OpenSession` and `UpdateSession` (same fields, same layout).
#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct OpenSessionBody {
    /// IPv4 addresses use the first 4 bytes.
    ip: [u8; 16],
    flowinfo: u32,
    scope_id: u32,
    port: u16,
    ptime_ms: u16,
    family: u8,
    codec: u8,
    has_dtmf: u8,
    dtmf_payload_type: u8,
    reserved: [u8; 48],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct PlayBody {
    media: [u8; 32],
    play_id: u32,
    loops: u16,
    reserved: [u8; 42],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct SilenceBody {
    play_id: u32,
    duration_ms: u32,
    reserved: [u8; 72],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct SendDigitsBody {
    play_id: u32,
    len: u8,
    digits: [u8; MAX_SEND_DIGITS],
    reserved: [u8; 43],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct SessionOpenedBody {
    local_port: u16,
    reserved: [u8; 78],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct SessionFailedBody {
    reason: u32,
    reserved: [u8; 76],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct PlayDoneBody {
    play_id: u32,
    interrupted: u8,
    reserved: [u8; 75],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct PlayFailedBody {
    play_id: u32,
    reason: u32,
    reserved: [u8; 72],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct DtmfBody {
    digit: u8,
    reserved: [u8; 79],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct SessionClosedBody {
    packets_sent: u64,
    packets_received: u64,
    reserved: [u8; 64],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct StartRecordingBody {
    recording: [u8; 16],
    max_duration_ms: u32,
    channels: u8,
    reserved: [u8; 59],
}

/// The body of `Bridge`, `Bridged` and `Unbridged`: the other leg.
#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct PeerBody {
    peer: u64,
    reserved: [u8; 72],
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct RtpTimeoutBody {
    idle_ms: u32,
    reserved: [u8; 76],
}

/// The body of `JoinMix`, `MixJoined`, `MixLeft` and `Speaking`: the mix and the
/// member's flags (`flag` is `speaking` for `Speaking`; zero where unused).
#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct MixBody {
    mix: u64,
    muted: u8,
    deaf: u8,
    flag: u8,
    reserved: [u8; 69],
}

fn mix_body(mix: MixId, muted: bool, deaf: bool, flag: bool) -> [u8; RECORD_BODY_SIZE] {
    must_cast(MixBody {
        mix: mix.0,
        muted: u8::from(muted),
        deaf: u8::from(deaf),
        flag: u8::from(flag),
        ..Zeroable::zeroed()
    })
}

/// The mix and the three flags of a [`MixBody`], each validated.
fn decode_mix(body: [u8; RECORD_BODY_SIZE]) -> Result<(MixId, bool, bool, bool), DecodeError> {
    let body: MixBody = must_cast(body);
    Ok((
        MixId(body.mix),
        flag("muted", body.muted)?,
        flag("deaf", body.deaf)?,
        flag("speaking", body.flag)?,
    ))
}

/// The body of `QosReport`. `remote_*` are zero when `has_remote` is 0.
#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct QosReportBody {
    packets_received: u64,
    packets_sent: u64,
    octets_sent: u64,
    packets_lost: i32,
    jitter_us: u32,
    jitter_max_us: u32,
    jitter_avg_us: u32,
    rtt_us: u32,
    rtt_max_us: u32,
    rtt_avg_us: u32,
    remote_packets_lost: i32,
    remote_jitter_us: u32,
    remote_jitter_max_us: u32,
    remote_jitter_avg_us: u32,
    fraction_lost: u8,
    remote_fraction_lost: u8,
    has_remote: u8,
    final_report: u8,
    codec: u8,
    reserved: [u8; 7],
}

fn encode_qos(qos: &Qos) -> [u8; RECORD_BODY_SIZE] {
    let remote = qos.remote.unwrap_or_default();
    must_cast(QosReportBody {
        packets_received: qos.packets_received,
        packets_sent: qos.packets_sent,
        octets_sent: qos.octets_sent,
        packets_lost: qos.packets_lost,
        jitter_us: qos.jitter_us,
        jitter_max_us: qos.jitter_max_us,
        jitter_avg_us: qos.jitter_avg_us,
        rtt_us: qos.rtt_us,
        rtt_max_us: qos.rtt_max_us,
        rtt_avg_us: qos.rtt_avg_us,
        remote_packets_lost: remote.packets_lost,
        remote_jitter_us: remote.jitter_us,
        remote_jitter_max_us: remote.jitter_max_us,
        remote_jitter_avg_us: remote.jitter_avg_us,
        fraction_lost: qos.fraction_lost,
        remote_fraction_lost: remote.fraction_lost,
        has_remote: u8::from(qos.remote.is_some()),
        final_report: u8::from(qos.final_report),
        codec: qos.codec.payload_type(),
        reserved: [0; 7],
    })
}

fn decode_qos(body: [u8; RECORD_BODY_SIZE]) -> Result<Qos, DecodeError> {
    let body: QosReportBody = must_cast(body);
    let remote = flag("has_remote", body.has_remote)?.then_some(RemoteQos {
        fraction_lost: body.remote_fraction_lost,
        packets_lost: body.remote_packets_lost,
        jitter_us: body.remote_jitter_us,
        jitter_max_us: body.remote_jitter_max_us,
        jitter_avg_us: body.remote_jitter_avg_us,
    });
    Ok(Qos {
        codec: Codec::from_payload_type(body.codec).ok_or(DecodeError::BadCodec(body.codec))?,
        packets_received: body.packets_received,
        packets_lost: body.packets_lost,
        fraction_lost: body.fraction_lost,
        jitter_us: body.jitter_us,
        jitter_max_us: body.jitter_max_us,
        jitter_avg_us: body.jitter_avg_us,
        rtt_us: body.rtt_us,
        rtt_max_us: body.rtt_max_us,
        rtt_avg_us: body.rtt_avg_us,
        packets_sent: body.packets_sent,
        octets_sent: body.octets_sent,
        remote,
        final_report: flag("final_report", body.final_report)?,
    })
}

fn peer_body(peer: SessionId) -> [u8; RECORD_BODY_SIZE] {
    must_cast(PeerBody {
        peer: peer.0,
        ..Zeroable::zeroed()
    })
}

fn decode_peer(body: [u8; RECORD_BODY_SIZE]) -> SessionId {
    let body: PeerBody = must_cast(body);
    SessionId(body.peer)
}

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
struct RecordingDoneBody {
    bytes: u64,
    recording: [u8; 16],
    duration_ms: u32,
    end: u32,
    reserved: [u8; 48],
}

fn record(kind: u32, session: SessionId, body: [u8; RECORD_BODY_SIZE]) -> Record {
    Record {
        kind,
        flags: 0,
        session: session.0,
        body,
    }
}

fn flag(field: &'static str, value: u8) -> Result<bool, DecodeError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(DecodeError::BadFlag { field, value }),
    }
}

fn fail_reason(value: u32) -> Result<FailReason, DecodeError> {
    FailReason::from_u32(value).ok_or(DecodeError::BadFailReason(value))
}

/// Whether `digit` is one of the sixteen RFC 4733 DTMF events in ASCII.
pub fn is_dtmf_digit(digit: u8) -> bool {
    matches!(digit, b'0'..=b'9' | b'*' | b'#' | b'A'..=b'D')
}

/// Whether `c` may appear in a [`Command::SendDigits`]: a DTMF digit or `w` (500 ms pause).
pub fn is_send_digit(c: u8) -> bool {
    is_dtmf_digit(c) || c == b'w'
}

/// Checks a digits string and packs it into the fixed array form (zero past the end).
fn pack_digits(digits: &[u8]) -> Result<([u8; MAX_SEND_DIGITS], u8), DecodeError> {
    if digits.len() > MAX_SEND_DIGITS {
        return Err(DecodeError::TooManyDigits(digits.len()));
    }
    let mut packed = [0u8; MAX_SEND_DIGITS];
    for (slot, &c) in packed.iter_mut().zip(digits) {
        if !is_send_digit(c) {
            return Err(DecodeError::BadSendDigit(c));
        }
        *slot = c;
    }
    // MAX_SEND_DIGITS < 256, checked above.
    Ok((packed, digits.len() as u8))
}

fn encode_session_params(
    remote: SocketAddr,
    codec: Codec,
    dtmf_payload_type: Option<u8>,
    ptime_ms: u16,
) -> [u8; RECORD_BODY_SIZE] {
    let mut body = OpenSessionBody::zeroed();
    match remote {
        SocketAddr::V4(v4) => {
            body.family = FAMILY_IPV4;
            let [a, b, c, d] = v4.ip().octets();
            body.ip = [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        }
        SocketAddr::V6(v6) => {
            body.family = FAMILY_IPV6;
            body.ip = v6.ip().octets();
            body.flowinfo = v6.flowinfo();
            body.scope_id = v6.scope_id();
        }
    }
    body.port = remote.port();
    body.ptime_ms = ptime_ms;
    body.codec = codec.payload_type();
    body.has_dtmf = u8::from(dtmf_payload_type.is_some());
    body.dtmf_payload_type = dtmf_payload_type.unwrap_or(0);
    must_cast(body)
}

/// Decodes an `OpenSession`/`UpdateSession` body: (remote, codec, dtmf PT, ptime).
fn decode_session_params(
    body: [u8; RECORD_BODY_SIZE],
) -> Result<(SocketAddr, Codec, Option<u8>, u16), DecodeError> {
    let body: OpenSessionBody = must_cast(body);
    let remote = match body.family {
        FAMILY_IPV4 => {
            let [a, b, c, d, ..] = body.ip;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), body.port))
        }
        FAMILY_IPV6 => SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(body.ip),
            body.port,
            body.flowinfo,
            body.scope_id,
        )),
        family => return Err(DecodeError::BadAddressFamily(family)),
    };
    let codec = Codec::from_payload_type(body.codec).ok_or(DecodeError::BadCodec(body.codec))?;
    let dtmf_payload_type = flag("has_dtmf", body.has_dtmf)?.then_some(body.dtmf_payload_type);
    Ok((remote, codec, dtmf_payload_type, body.ptime_ms))
}

impl Command {
    /// A [`Command::SendDigits`] for `digits` (`0-9 * # A-D`, `w` = 500 ms pause, at most
    /// [`MAX_SEND_DIGITS`]); the same checks decoding applies.
    pub fn send_digits(
        session: SessionId,
        play_id: u32,
        digits: &[u8],
    ) -> Result<Command, DecodeError> {
        let (digits, len) = pack_digits(digits)?;
        Ok(Command::SendDigits {
            session,
            play_id,
            digits,
            len,
        })
    }

    /// The string of a [`Command::SendDigits`] (`digits[..len]`, clamped); empty for
    /// every other command.
    pub fn digits(&self) -> &[u8] {
        match self {
            Command::SendDigits { digits, len, .. } => {
                digits.get(..usize::from(*len)).unwrap_or(digits)
            }
            _ => &[],
        }
    }

    /// The session this command concerns.
    pub fn session(&self) -> SessionId {
        match *self {
            Command::OpenSession { session, .. }
            | Command::Play { session, .. }
            | Command::Silence { session, .. }
            | Command::StopPlayback { session }
            | Command::CloseSession { session }
            | Command::UpdateSession { session, .. }
            | Command::SendDigits { session, .. }
            | Command::StartRecording { session, .. }
            | Command::StopRecording { session }
            | Command::Bridge { session, .. }
            | Command::Unbridge { session }
            | Command::JoinMix { session, .. }
            | Command::LeaveMix { session } => session,
        }
    }

    /// The wire form of this command.
    pub fn encode(&self) -> Record {
        match *self {
            Command::OpenSession {
                session,
                remote,
                codec,
                dtmf_payload_type,
                ptime_ms,
            } => record(
                kinds::OPEN_SESSION,
                session,
                encode_session_params(remote, codec, dtmf_payload_type, ptime_ms),
            ),
            Command::Play {
                session,
                play_id,
                media,
                loops,
            } => {
                let body = PlayBody {
                    media: media.0,
                    play_id,
                    loops,
                    ..Zeroable::zeroed()
                };
                record(kinds::PLAY, session, must_cast(body))
            }
            Command::Silence {
                session,
                play_id,
                duration_ms,
            } => {
                let body = SilenceBody {
                    play_id,
                    duration_ms,
                    ..Zeroable::zeroed()
                };
                record(kinds::SILENCE, session, must_cast(body))
            }
            Command::StopPlayback { session } => {
                record(kinds::STOP_PLAYBACK, session, [0; RECORD_BODY_SIZE])
            }
            Command::CloseSession { session } => {
                record(kinds::CLOSE_SESSION, session, [0; RECORD_BODY_SIZE])
            }
            Command::UpdateSession {
                session,
                remote,
                codec,
                dtmf_payload_type,
                ptime_ms,
            } => record(
                kinds::UPDATE_SESSION,
                session,
                encode_session_params(remote, codec, dtmf_payload_type, ptime_ms),
            ),
            Command::SendDigits {
                session,
                play_id,
                digits,
                len,
            } => {
                let mut body = SendDigitsBody {
                    play_id,
                    len,
                    ..Zeroable::zeroed()
                };
                // Only the string goes on the wire; the padding stays zero.
                let used = digits.get(..usize::from(len)).unwrap_or(&digits);
                for (slot, c) in body.digits.iter_mut().zip(used) {
                    *slot = *c;
                }
                record(kinds::SEND_DIGITS, session, must_cast(body))
            }
            Command::StartRecording {
                session,
                recording,
                channels,
                max_duration_ms,
            } => {
                let body = StartRecordingBody {
                    recording: recording.0,
                    max_duration_ms,
                    channels: channels as u8,
                    ..Zeroable::zeroed()
                };
                record(kinds::START_RECORDING, session, must_cast(body))
            }
            Command::StopRecording { session } => {
                record(kinds::STOP_RECORDING, session, [0; RECORD_BODY_SIZE])
            }
            Command::Bridge { session, peer } => record(kinds::BRIDGE, session, peer_body(peer)),
            Command::Unbridge { session } => {
                record(kinds::UNBRIDGE, session, [0; RECORD_BODY_SIZE])
            }
            Command::JoinMix {
                session,
                mix,
                muted,
                deaf,
            } => record(kinds::JOIN_MIX, session, mix_body(mix, muted, deaf, false)),
            Command::LeaveMix { session } => {
                record(kinds::LEAVE_MIX, session, [0; RECORD_BODY_SIZE])
            }
        }
    }

    /// Parses a command record; any invalid content is an error, never a panic.
    pub fn decode(r: &Record) -> Result<Command, DecodeError> {
        let session = SessionId(r.session);
        match r.kind {
            kinds::OPEN_SESSION => {
                let (remote, codec, dtmf_payload_type, ptime_ms) = decode_session_params(r.body)?;
                Ok(Command::OpenSession {
                    session,
                    remote,
                    codec,
                    dtmf_payload_type,
                    ptime_ms,
                })
            }
            kinds::UPDATE_SESSION => {
                let (remote, codec, dtmf_payload_type, ptime_ms) = decode_session_params(r.body)?;
                Ok(Command::UpdateSession {
                    session,
                    remote,
                    codec,
                    dtmf_payload_type,
                    ptime_ms,
                })
            }
            kinds::SEND_DIGITS => {
                let body: SendDigitsBody = must_cast(r.body);
                let len = usize::from(body.len);
                let used = body
                    .digits
                    .get(..len)
                    .ok_or(DecodeError::TooManyDigits(len))?;
                let (digits, len) = pack_digits(used)?;
                Ok(Command::SendDigits {
                    session,
                    play_id: body.play_id,
                    digits,
                    len,
                })
            }
            kinds::PLAY => {
                let body: PlayBody = must_cast(r.body);
                Ok(Command::Play {
                    session,
                    play_id: body.play_id,
                    media: MediaId(body.media),
                    loops: body.loops,
                })
            }
            kinds::SILENCE => {
                let body: SilenceBody = must_cast(r.body);
                Ok(Command::Silence {
                    session,
                    play_id: body.play_id,
                    duration_ms: body.duration_ms,
                })
            }
            kinds::STOP_PLAYBACK => Ok(Command::StopPlayback { session }),
            kinds::CLOSE_SESSION => Ok(Command::CloseSession { session }),
            kinds::START_RECORDING => {
                let body: StartRecordingBody = must_cast(r.body);
                Ok(Command::StartRecording {
                    session,
                    recording: RecordingId(body.recording),
                    channels: RecordingChannels::from_u8(body.channels)
                        .ok_or(DecodeError::BadRecordingChannels(body.channels))?,
                    max_duration_ms: body.max_duration_ms,
                })
            }
            kinds::STOP_RECORDING => Ok(Command::StopRecording { session }),
            kinds::BRIDGE => Ok(Command::Bridge {
                session,
                peer: decode_peer(r.body),
            }),
            kinds::UNBRIDGE => Ok(Command::Unbridge { session }),
            kinds::JOIN_MIX => {
                let (mix, muted, deaf, _) = decode_mix(r.body)?;
                Ok(Command::JoinMix {
                    session,
                    mix,
                    muted,
                    deaf,
                })
            }
            kinds::LEAVE_MIX => Ok(Command::LeaveMix { session }),
            kind => Err(DecodeError::UnknownKind(kind)),
        }
    }
}

impl Event {
    /// The session this event concerns.
    pub fn session(&self) -> SessionId {
        match *self {
            Event::SessionOpened { session, .. }
            | Event::SessionFailed { session, .. }
            | Event::PlayDone { session, .. }
            | Event::PlayFailed { session, .. }
            | Event::Dtmf { session, .. }
            | Event::SessionClosed { session, .. }
            | Event::SessionUpdated { session }
            | Event::RecordingDone { session, .. }
            | Event::Bridged { session, .. }
            | Event::Unbridged { session, .. }
            | Event::RtpTimeout { session, .. }
            | Event::MixJoined { session, .. }
            | Event::MixLeft { session, .. }
            | Event::Speaking { session, .. }
            | Event::QosReport { session, .. } => session,
        }
    }

    /// The wire form of this event.
    pub fn encode(&self) -> Record {
        match *self {
            Event::SessionOpened {
                session,
                local_port,
            } => {
                let body = SessionOpenedBody {
                    local_port,
                    ..Zeroable::zeroed()
                };
                record(kinds::SESSION_OPENED, session, must_cast(body))
            }
            Event::SessionFailed { session, reason } => {
                let body = SessionFailedBody {
                    reason: reason as u32,
                    ..Zeroable::zeroed()
                };
                record(kinds::SESSION_FAILED, session, must_cast(body))
            }
            Event::PlayDone {
                session,
                play_id,
                interrupted,
            } => {
                let body = PlayDoneBody {
                    play_id,
                    interrupted: u8::from(interrupted),
                    ..Zeroable::zeroed()
                };
                record(kinds::PLAY_DONE, session, must_cast(body))
            }
            Event::PlayFailed {
                session,
                play_id,
                reason,
            } => {
                let body = PlayFailedBody {
                    play_id,
                    reason: reason as u32,
                    ..Zeroable::zeroed()
                };
                record(kinds::PLAY_FAILED, session, must_cast(body))
            }
            Event::Dtmf { session, digit } => {
                let body = DtmfBody {
                    digit,
                    ..Zeroable::zeroed()
                };
                record(kinds::DTMF, session, must_cast(body))
            }
            Event::SessionClosed {
                session,
                packets_sent,
                packets_received,
            } => {
                let body = SessionClosedBody {
                    packets_sent,
                    packets_received,
                    ..Zeroable::zeroed()
                };
                record(kinds::SESSION_CLOSED, session, must_cast(body))
            }
            Event::SessionUpdated { session } => {
                record(kinds::SESSION_UPDATED, session, [0; RECORD_BODY_SIZE])
            }
            Event::RecordingDone {
                session,
                recording,
                duration_ms,
                bytes,
                end,
            } => {
                let body = RecordingDoneBody {
                    bytes,
                    recording: recording.0,
                    duration_ms,
                    end: end as u32,
                    ..Zeroable::zeroed()
                };
                record(kinds::RECORDING_DONE, session, must_cast(body))
            }
            Event::Bridged { session, peer } => record(kinds::BRIDGED, session, peer_body(peer)),
            Event::Unbridged { session, peer } => {
                record(kinds::UNBRIDGED, session, peer_body(peer))
            }
            Event::RtpTimeout { session, idle_ms } => {
                let body = RtpTimeoutBody {
                    idle_ms,
                    ..Zeroable::zeroed()
                };
                record(kinds::RTP_TIMEOUT, session, must_cast(body))
            }
            Event::MixJoined {
                session,
                mix,
                muted,
                deaf,
            } => record(
                kinds::MIX_JOINED,
                session,
                mix_body(mix, muted, deaf, false),
            ),
            Event::MixLeft { session, mix } => {
                record(kinds::MIX_LEFT, session, mix_body(mix, false, false, false))
            }
            Event::Speaking {
                session,
                mix,
                speaking,
            } => record(
                kinds::SPEAKING,
                session,
                mix_body(mix, false, false, speaking),
            ),
            Event::QosReport { session, qos } => {
                record(kinds::QOS_REPORT, session, encode_qos(&qos))
            }
        }
    }

    /// Parses an event record; any invalid content is an error, never a panic.
    pub fn decode(r: &Record) -> Result<Event, DecodeError> {
        let session = SessionId(r.session);
        match r.kind {
            kinds::SESSION_OPENED => {
                let body: SessionOpenedBody = must_cast(r.body);
                Ok(Event::SessionOpened {
                    session,
                    local_port: body.local_port,
                })
            }
            kinds::SESSION_FAILED => {
                let body: SessionFailedBody = must_cast(r.body);
                Ok(Event::SessionFailed {
                    session,
                    reason: fail_reason(body.reason)?,
                })
            }
            kinds::PLAY_DONE => {
                let body: PlayDoneBody = must_cast(r.body);
                Ok(Event::PlayDone {
                    session,
                    play_id: body.play_id,
                    interrupted: flag("interrupted", body.interrupted)?,
                })
            }
            kinds::PLAY_FAILED => {
                let body: PlayFailedBody = must_cast(r.body);
                Ok(Event::PlayFailed {
                    session,
                    play_id: body.play_id,
                    reason: fail_reason(body.reason)?,
                })
            }
            kinds::DTMF => {
                let body: DtmfBody = must_cast(r.body);
                if !is_dtmf_digit(body.digit) {
                    return Err(DecodeError::BadDtmfDigit(body.digit));
                }
                Ok(Event::Dtmf {
                    session,
                    digit: body.digit,
                })
            }
            kinds::SESSION_CLOSED => {
                let body: SessionClosedBody = must_cast(r.body);
                Ok(Event::SessionClosed {
                    session,
                    packets_sent: body.packets_sent,
                    packets_received: body.packets_received,
                })
            }
            kinds::SESSION_UPDATED => Ok(Event::SessionUpdated { session }),
            kinds::RECORDING_DONE => {
                let body: RecordingDoneBody = must_cast(r.body);
                Ok(Event::RecordingDone {
                    session,
                    recording: RecordingId(body.recording),
                    duration_ms: body.duration_ms,
                    bytes: body.bytes,
                    end: RecordingEnd::from_u32(body.end)
                        .ok_or(DecodeError::BadRecordingEnd(body.end))?,
                })
            }
            kinds::BRIDGED => Ok(Event::Bridged {
                session,
                peer: decode_peer(r.body),
            }),
            kinds::UNBRIDGED => Ok(Event::Unbridged {
                session,
                peer: decode_peer(r.body),
            }),
            kinds::RTP_TIMEOUT => {
                let body: RtpTimeoutBody = must_cast(r.body);
                Ok(Event::RtpTimeout {
                    session,
                    idle_ms: body.idle_ms,
                })
            }
            kinds::MIX_JOINED => {
                let (mix, muted, deaf, _) = decode_mix(r.body)?;
                Ok(Event::MixJoined {
                    session,
                    mix,
                    muted,
                    deaf,
                })
            }
            kinds::MIX_LEFT => Ok(Event::MixLeft {
                session,
                mix: decode_mix(r.body)?.0,
            }),
            kinds::SPEAKING => {
                let (mix, _, _, speaking) = decode_mix(r.body)?;
                Ok(Event::Speaking {
                    session,
                    mix,
                    speaking,
                })
            }
            kinds::QOS_REPORT => Ok(Event::QosReport {
                session,
                qos: decode_qos(r.body)?,
            }),
            kind => Err(DecodeError::UnknownKind(kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn media_id_hex_and_file_name() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[1] = 0x01;
        bytes[31] = 0xff;
        let id = MediaId(bytes);
        let hex = id.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("ab01"));
        assert!(hex.ends_with("00ff"));
        assert_eq!(id.file_name(), format!("{hex}.ulaw"));
        assert_eq!(format!("{id}"), hex);
    }

    #[test]
    fn codec_discriminants_are_payload_types() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(18), None);
    }

    #[test]
    fn every_command_variant_round_trips() {
        let s = SessionId(0xdead_beef_0000_0001);
        let commands = [
            Command::OpenSession {
                session: s,
                remote: v4("192.0.2.7:40000"),
                codec: Codec::Pcmu,
                dtmf_payload_type: Some(101),
                ptime_ms: 20,
            },
            Command::OpenSession {
                session: s,
                remote: "[2001:db8::1%7]:5004".parse().unwrap(),
                codec: Codec::Pcma,
                dtmf_payload_type: None,
                ptime_ms: 30,
            },
            Command::OpenSession {
                session: s,
                remote: SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0xabcde, 3)),
                codec: Codec::Pcma,
                dtmf_payload_type: Some(0),
                ptime_ms: 0,
            },
            Command::Play {
                session: s,
                play_id: 7,
                media: MediaId([9; 32]),
                loops: 0,
            },
            Command::Silence {
                session: s,
                play_id: u32::MAX,
                duration_ms: 1500,
            },
            Command::StopPlayback { session: s },
            Command::CloseSession { session: s },
            Command::UpdateSession {
                session: s,
                remote: v4("198.51.100.3:5004"),
                codec: Codec::Pcma,
                dtmf_payload_type: Some(96),
                ptime_ms: 30,
            },
            Command::UpdateSession {
                session: s,
                remote: "[2001:db8::2]:7078".parse().unwrap(),
                codec: Codec::Pcmu,
                dtmf_payload_type: None,
                ptime_ms: 20,
            },
            Command::send_digits(s, 12, b"0123456789*#ABCDw").unwrap(),
            Command::send_digits(s, 13, &[b'w'; MAX_SEND_DIGITS]).unwrap(),
            Command::send_digits(s, 14, b"").unwrap(),
            Command::StartRecording {
                session: s,
                recording: RecordingId([0xab; 16]),
                channels: RecordingChannels::Dual,
                max_duration_ms: 3_600_000,
            },
            Command::StopRecording { session: s },
            Command::Bridge {
                session: s,
                peer: SessionId(u64::MAX),
            },
            Command::Unbridge { session: s },
            Command::JoinMix {
                session: s,
                mix: MixId(u64::MAX),
                muted: true,
                deaf: false,
            },
            Command::JoinMix {
                session: s,
                mix: MixId(7),
                muted: false,
                deaf: true,
            },
            Command::LeaveMix { session: s },
        ];
        for command in commands {
            let record = command.encode();
            assert!((1..=99).contains(&record.kind));
            assert_eq!(record.session, s.0);
            assert_eq!(record.flags, 0);
            assert_eq!(Command::decode(&record), Ok(command));
            assert_eq!(command.session(), s);
            assert_eq!(
                Event::decode(&record),
                Err(DecodeError::UnknownKind(record.kind))
            );
        }
    }

    #[test]
    fn every_event_variant_round_trips() {
        let s = SessionId(42);
        let events = [
            Event::SessionOpened {
                session: s,
                local_port: 30_000,
            },
            Event::SessionFailed {
                session: s,
                reason: FailReason::NoPortAvailable,
            },
            Event::PlayDone {
                session: s,
                play_id: 3,
                interrupted: true,
            },
            Event::PlayDone {
                session: s,
                play_id: 4,
                interrupted: false,
            },
            Event::PlayFailed {
                session: s,
                play_id: 5,
                reason: FailReason::MediaNotFound,
            },
            Event::Dtmf {
                session: s,
                digit: b'#',
            },
            Event::SessionClosed {
                session: s,
                packets_sent: u64::MAX,
                packets_received: 12,
            },
            Event::SessionUpdated { session: s },
            Event::MixJoined {
                session: s,
                mix: MixId(9),
                muted: false,
                deaf: true,
            },
            Event::MixLeft {
                session: s,
                mix: MixId(u64::MAX),
            },
            Event::Speaking {
                session: s,
                mix: MixId(9),
                speaking: true,
            },
            Event::Speaking {
                session: s,
                mix: MixId(9),
                speaking: false,
            },
            Event::QosReport {
                session: s,
                qos: sample_qos(),
            },
            Event::QosReport {
                session: s,
                qos: Qos {
                    codec: Codec::Pcma,
                    remote: None,
                    final_report: true,
                    packets_lost: -3,
                    ..sample_qos()
                },
            },
        ];
        for event in events {
            let record = event.encode();
            assert!(record.kind >= 101);
            assert_eq!(Event::decode(&record), Ok(event));
            assert_eq!(event.session(), s);
            assert_eq!(
                Command::decode(&record),
                Err(DecodeError::UnknownKind(record.kind))
            );
        }
    }

    fn sample_qos() -> Qos {
        Qos {
            codec: Codec::Pcmu,
            packets_received: 1500,
            packets_lost: 12,
            fraction_lost: 3,
            jitter_us: 2_375,
            jitter_max_us: 9_000,
            jitter_avg_us: 1_800,
            rtt_us: 41_000,
            rtt_max_us: 52_000,
            rtt_avg_us: 40_000,
            packets_sent: 1501,
            octets_sent: 240_160,
            remote: Some(RemoteQos {
                fraction_lost: 1,
                packets_lost: -1,
                jitter_us: 500,
                jitter_max_us: 625,
                jitter_avg_us: 550,
            }),
            final_report: false,
        }
    }

    #[test]
    fn qos_report_layout_and_bad_bytes() {
        assert_eq!(std::mem::size_of::<QosReportBody>(), RECORD_BODY_SIZE);
        let record = Event::QosReport {
            session: SessionId(9),
            qos: sample_qos(),
        }
        .encode();
        assert_eq!(record.kind, 120);
        // The documented offsets (docs/design/shmq-abi.md).
        assert_eq!(record.body[..8], 1500u64.to_ne_bytes());
        assert_eq!(record.body[24..28], 12i32.to_ne_bytes());
        assert_eq!(record.body[40..44], 41_000u32.to_ne_bytes());
        assert_eq!(record.body[64..68], 550u32.to_ne_bytes());
        assert_eq!(record.body[68..73], [3, 1, 1, 0, 0]);
        for (offset, value, error) in [
            (
                70,
                2,
                DecodeError::BadFlag {
                    field: "has_remote",
                    value: 2,
                },
            ),
            (
                71,
                7,
                DecodeError::BadFlag {
                    field: "final_report",
                    value: 7,
                },
            ),
            (72, 18, DecodeError::BadCodec(18)),
        ] {
            let mut bad = record;
            bad.body[offset] = value;
            assert_eq!(Event::decode(&bad), Err(error));
        }
        // Remote fields without has_remote are ignored (and zero once re-encoded).
        let mut stray = Event::QosReport {
            session: SessionId(9),
            qos: Qos {
                remote: None,
                ..sample_qos()
            },
        }
        .encode();
        stray.body[56] = 0xAB;
        let decoded = Event::decode(&stray).unwrap();
        assert_eq!(decoded.encode().body[56], 0);
    }

    #[test]
    fn invalid_fields_are_errors() {
        let open = Command::OpenSession {
            session: SessionId(1),
            remote: v4("10.0.0.1:1000"),
            codec: Codec::Pcmu,
            dtmf_payload_type: None,
            ptime_ms: 20,
        }
        .encode();

        let mut bad_codec = open;
        let mut body: OpenSessionBody = must_cast(bad_codec.body);
        body.codec = 18;
        bad_codec.body = must_cast(body);
        assert_eq!(Command::decode(&bad_codec), Err(DecodeError::BadCodec(18)));

        let mut bad_family = open;
        let mut body: OpenSessionBody = must_cast(bad_family.body);
        body.family = 5;
        bad_family.body = must_cast(body);
        assert_eq!(
            Command::decode(&bad_family),
            Err(DecodeError::BadAddressFamily(5))
        );

        let mut bad_flag = open;
        let mut body: OpenSessionBody = must_cast(bad_flag.body);
        body.has_dtmf = 2;
        bad_flag.body = must_cast(body);
        assert!(matches!(
            Command::decode(&bad_flag),
            Err(DecodeError::BadFlag { value: 2, .. })
        ));

        assert_eq!(
            Command::decode(&Record::zeroed()),
            Err(DecodeError::UnknownKind(0))
        );
        assert_eq!(
            Event::decode(&Record::zeroed()),
            Err(DecodeError::UnknownKind(0))
        );

        let mut bad_reason = Event::SessionFailed {
            session: SessionId(1),
            reason: FailReason::SocketError,
        }
        .encode();
        bad_reason.body[..4].copy_from_slice(&99u32.to_ne_bytes());
        assert_eq!(
            Event::decode(&bad_reason),
            Err(DecodeError::BadFailReason(99))
        );

        let bad_digit = Event::Dtmf {
            session: SessionId(1),
            digit: b'x',
        }
        .encode();
        assert_eq!(
            Event::decode(&bad_digit),
            Err(DecodeError::BadDtmfDigit(b'x'))
        );
    }

    #[test]
    fn send_digits_are_validated() {
        let s = SessionId(5);
        let command = Command::send_digits(s, 1, b"1w2#").unwrap();
        assert_eq!(command.digits(), b"1w2#");
        let Command::SendDigits { digits, len, .. } = command else {
            panic!("not SendDigits");
        };
        assert_eq!(len, 4);
        assert!(digits[4..].iter().all(|b| *b == 0), "zero past the end");
        assert_eq!(Command::StopPlayback { session: s }.digits(), b"" as &[u8]);

        assert_eq!(
            Command::send_digits(s, 1, b"12x"),
            Err(DecodeError::BadSendDigit(b'x'))
        );
        assert_eq!(
            Command::send_digits(s, 1, b"1W"),
            Err(DecodeError::BadSendDigit(b'W'))
        );
        assert_eq!(
            Command::send_digits(s, 1, &[b'1'; MAX_SEND_DIGITS + 1]),
            Err(DecodeError::TooManyDigits(MAX_SEND_DIGITS + 1))
        );

        let record = command.encode();
        let mut too_long = record;
        let mut body: SendDigitsBody = must_cast(too_long.body);
        body.len = 33;
        too_long.body = must_cast(body);
        assert_eq!(
            Command::decode(&too_long),
            Err(DecodeError::TooManyDigits(33))
        );
        let mut bad_char = record;
        let mut body: SendDigitsBody = must_cast(bad_char.body);
        body.digits[2] = b'e';
        bad_char.body = must_cast(body);
        assert_eq!(
            Command::decode(&bad_char),
            Err(DecodeError::BadSendDigit(b'e'))
        );
        // Bytes past `len` are ignored on decode (and zero again once re-encoded).
        let mut padded = record;
        let mut body: SendDigitsBody = must_cast(padded.body);
        body.digits[10] = 0xEE;
        padded.body = must_cast(body);
        assert_eq!(Command::decode(&padded), Ok(command));

        // A hand-built command with len beyond the array doesn't panic on encode and
        // doesn't decode.
        let odd = Command::SendDigits {
            session: s,
            play_id: 1,
            digits: [b'1'; MAX_SEND_DIGITS],
            len: 200,
        };
        assert_eq!(odd.digits().len(), MAX_SEND_DIGITS);
        assert_eq!(
            Command::decode(&odd.encode()),
            Err(DecodeError::TooManyDigits(200))
        );

        let mut update = Command::UpdateSession {
            session: s,
            remote: v4("10.0.0.1:1000"),
            codec: Codec::Pcmu,
            dtmf_payload_type: None,
            ptime_ms: 20,
        }
        .encode();
        let mut body: OpenSessionBody = must_cast(update.body);
        body.family = 0;
        update.body = must_cast(body);
        assert_eq!(
            Command::decode(&update),
            Err(DecodeError::BadAddressFamily(0))
        );
    }

    fn any_session() -> impl Strategy<Value = SessionId> {
        any::<u64>().prop_map(SessionId)
    }

    fn any_codec() -> impl Strategy<Value = Codec> {
        prop_oneof![Just(Codec::Pcmu), Just(Codec::Pcma)]
    }

    fn any_fail_reason() -> impl Strategy<Value = FailReason> {
        (1u32..=6).prop_map(|v| FailReason::from_u32(v).unwrap())
    }

    fn any_remote() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            any::<SocketAddrV4>().prop_map(SocketAddr::V4),
            any::<SocketAddrV6>().prop_map(SocketAddr::V6),
        ]
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (
                any_session(),
                any_remote(),
                any_codec(),
                any::<Option<u8>>(),
                any::<u16>()
            )
                .prop_map(|(session, remote, codec, dtmf_payload_type, ptime_ms)| {
                    Command::OpenSession {
                        session,
                        remote,
                        codec,
                        dtmf_payload_type,
                        ptime_ms,
                    }
                }),
            (any_session(), any::<u32>(), any::<[u8; 32]>(), any::<u16>()).prop_map(
                |(session, play_id, media, loops)| Command::Play {
                    session,
                    play_id,
                    media: MediaId(media),
                    loops,
                }
            ),
            (any_session(), any::<u32>(), any::<u32>()).prop_map(
                |(session, play_id, duration_ms)| Command::Silence {
                    session,
                    play_id,
                    duration_ms,
                }
            ),
            any_session().prop_map(|session| Command::StopPlayback { session }),
            any_session().prop_map(|session| Command::CloseSession { session }),
            (
                any_session(),
                any_remote(),
                any_codec(),
                any::<Option<u8>>(),
                any::<u16>()
            )
                .prop_map(|(session, remote, codec, dtmf_payload_type, ptime_ms)| {
                    Command::UpdateSession {
                        session,
                        remote,
                        codec,
                        dtmf_payload_type,
                        ptime_ms,
                    }
                }),
            (
                any_session(),
                any::<u32>(),
                proptest::collection::vec(
                    proptest::sample::select(b"0123456789*#ABCDw".to_vec()),
                    0..=MAX_SEND_DIGITS
                )
            )
                .prop_map(|(session, play_id, digits)| {
                    Command::send_digits(session, play_id, &digits).unwrap()
                }),
            (
                any_session(),
                any::<[u8; 16]>(),
                prop_oneof![Just(RecordingChannels::Mono), Just(RecordingChannels::Dual)],
                any::<u32>()
            )
                .prop_map(|(session, recording, channels, max_duration_ms)| {
                    Command::StartRecording {
                        session,
                        recording: RecordingId(recording),
                        channels,
                        max_duration_ms,
                    }
                }),
            any_session().prop_map(|session| Command::StopRecording { session }),
            (any_session(), any_session())
                .prop_map(|(session, peer)| Command::Bridge { session, peer }),
            any_session().prop_map(|session| Command::Unbridge { session }),
            (any_session(), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
                |(session, mix, muted, deaf)| Command::JoinMix {
                    session,
                    mix: MixId(mix),
                    muted,
                    deaf,
                }
            ),
            any_session().prop_map(|session| Command::LeaveMix { session }),
        ]
    }

    fn any_qos() -> impl Strategy<Value = Qos> {
        let remote = proptest::option::of(
            (
                any::<u8>(),
                any::<i32>(),
                [any::<u32>(), any::<u32>(), any::<u32>()],
            )
                .prop_map(
                    |(fraction_lost, packets_lost, [jitter_us, jitter_max_us, jitter_avg_us])| {
                        RemoteQos {
                            fraction_lost,
                            packets_lost,
                            jitter_us,
                            jitter_max_us,
                            jitter_avg_us,
                        }
                    },
                ),
        );
        (
            (any_codec(), any::<u64>(), any::<i32>(), any::<u8>()),
            proptest::array::uniform6(any::<u32>()),
            (any::<u64>(), any::<u64>(), remote, any::<bool>()),
        )
            .prop_map(
                |(
                    (codec, packets_received, packets_lost, fraction_lost),
                    [jitter_us, jitter_max_us, jitter_avg_us, rtt_us, rtt_max_us, rtt_avg_us],
                    (packets_sent, octets_sent, remote, final_report),
                )| Qos {
                    codec,
                    packets_received,
                    packets_lost,
                    fraction_lost,
                    jitter_us,
                    jitter_max_us,
                    jitter_avg_us,
                    rtt_us,
                    rtt_max_us,
                    rtt_avg_us,
                    packets_sent,
                    octets_sent,
                    remote,
                    final_report,
                },
            )
    }

    fn any_digit() -> impl Strategy<Value = u8> {
        proptest::sample::select(b"0123456789*#ABCD".to_vec())
    }

    fn any_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (any_session(), any::<u16>()).prop_map(|(session, local_port)| {
                Event::SessionOpened {
                    session,
                    local_port,
                }
            }),
            (any_session(), any_fail_reason())
                .prop_map(|(session, reason)| Event::SessionFailed { session, reason }),
            (any_session(), any::<u32>(), any::<bool>()).prop_map(
                |(session, play_id, interrupted)| Event::PlayDone {
                    session,
                    play_id,
                    interrupted,
                }
            ),
            (any_session(), any::<u32>(), any_fail_reason()).prop_map(
                |(session, play_id, reason)| Event::PlayFailed {
                    session,
                    play_id,
                    reason,
                }
            ),
            (any_session(), any_digit())
                .prop_map(|(session, digit)| Event::Dtmf { session, digit }),
            (any_session(), any::<u64>(), any::<u64>()).prop_map(
                |(session, packets_sent, packets_received)| Event::SessionClosed {
                    session,
                    packets_sent,
                    packets_received,
                }
            ),
            any_session().prop_map(|session| Event::SessionUpdated { session }),
            (
                any_session(),
                any::<[u8; 16]>(),
                any::<u32>(),
                any::<u64>(),
                prop_oneof![
                    Just(RecordingEnd::Stopped),
                    Just(RecordingEnd::MaxLength),
                    Just(RecordingEnd::SessionClosed),
                    Just(RecordingEnd::WriteFailed)
                ]
            )
                .prop_map(|(session, recording, duration_ms, bytes, end)| {
                    Event::RecordingDone {
                        session,
                        recording: RecordingId(recording),
                        duration_ms,
                        bytes,
                        end,
                    }
                }),
            (any_session(), any_session())
                .prop_map(|(session, peer)| Event::Bridged { session, peer }),
            (any_session(), any_session())
                .prop_map(|(session, peer)| Event::Unbridged { session, peer }),
            (any_session(), any::<u32>())
                .prop_map(|(session, idle_ms)| Event::RtpTimeout { session, idle_ms }),
            (any_session(), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
                |(session, mix, muted, deaf)| Event::MixJoined {
                    session,
                    mix: MixId(mix),
                    muted,
                    deaf,
                }
            ),
            (any_session(), any::<u64>()).prop_map(|(session, mix)| Event::MixLeft {
                session,
                mix: MixId(mix)
            }),
            (any_session(), any::<u64>(), any::<bool>()).prop_map(|(session, mix, speaking)| {
                Event::Speaking {
                    session,
                    mix: MixId(mix),
                    speaking,
                }
            }),
            (any_session(), any_qos()).prop_map(|(session, qos)| Event::QosReport { session, qos }),
        ]
    }

    #[test]
    fn recording_ids_round_trip_through_hex() {
        let id = RecordingId([
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 1, 2, 3, 4, 5, 6, 0xff,
        ]);
        assert_eq!(id.to_hex(), "0123456789abcdef00010203040506ff");
        assert_eq!(id.file_name(), "0123456789abcdef00010203040506ff.wav");
        assert_eq!(RecordingId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(RecordingId::from_hex(&id.to_hex().to_uppercase()), Some(id));
        assert_eq!(RecordingId::from_hex("0123"), None);
        assert_eq!(RecordingId::from_hex(&"g".repeat(32)), None);
        assert_eq!(RecordingId::from_hex(&"é".repeat(16)), None);
    }

    #[test]
    fn bad_recording_bytes_are_errors() {
        let mut start = Command::StartRecording {
            session: SessionId(1),
            recording: RecordingId([1; 16]),
            channels: RecordingChannels::Mono,
            max_duration_ms: 0,
        }
        .encode();
        start.body[20] = 3;
        assert_eq!(
            Command::decode(&start),
            Err(DecodeError::BadRecordingChannels(3))
        );
        let mut done = Event::RecordingDone {
            session: SessionId(1),
            recording: RecordingId([1; 16]),
            duration_ms: 1,
            bytes: 44,
            end: RecordingEnd::Stopped,
        }
        .encode();
        done.body[28] = 9;
        assert_eq!(Event::decode(&done), Err(DecodeError::BadRecordingEnd(9)));
    }

    /// SendDigits records whose bytes are mostly valid digits, so decoding gets past the
    /// first character check often.
    fn digit_heavy_record() -> impl Strategy<Value = Record> {
        let byte = prop_oneof![
            4 => proptest::sample::select(b"0123456789*#ABCDw".to_vec()),
            1 => any::<u8>(),
        ];
        (
            any::<u64>(),
            any::<u32>(),
            prop_oneof![0u8..=40, any::<u8>()],
            proptest::collection::vec(byte, MAX_SEND_DIGITS..=MAX_SEND_DIGITS),
        )
            .prop_map(|(session, play_id, len, digits)| {
                let mut body = SendDigitsBody {
                    play_id,
                    len,
                    ..Zeroable::zeroed()
                };
                body.digits.copy_from_slice(&digits);
                record(kinds::SEND_DIGITS, SessionId(session), must_cast(body))
            })
    }

    /// Arbitrary records, with kinds biased toward the valid ones so bodies get exercised.
    fn any_record() -> impl Strategy<Value = Record> {
        let kind = prop_oneof![0u32..=20, 95u32..=125, any::<u32>(),];
        let arbitrary = (kind, any::<u32>(), any::<u64>(), any::<[u8; 80]>()).prop_map(
            |(kind, flags, session, body)| Record {
                kind,
                flags,
                session,
                body,
            },
        );
        prop_oneof![3 => arbitrary, 1 => digit_heavy_record()]
    }

    proptest! {
        #[test]
        fn commands_round_trip(command in any_command()) {
            let record = command.encode();
            prop_assert_eq!(Command::decode(&record), Ok(command));
            prop_assert_eq!(SessionId(record.session), command.session());
        }

        #[test]
        fn events_round_trip(event in any_event()) {
            let record = event.encode();
            prop_assert_eq!(Event::decode(&record), Ok(event));
            prop_assert_eq!(SessionId(record.session), event.session());
        }

        #[test]
        fn decoding_arbitrary_records_never_panics(record in any_record()) {
            // Whatever decodes must re-encode to something that decodes to the same value.
            if let Ok(command) = Command::decode(&record) {
                prop_assert_eq!(Command::decode(&command.encode()), Ok(command));
                prop_assert!(Event::decode(&record).is_err());
            }
            if let Ok(event) = Event::decode(&record) {
                prop_assert_eq!(Event::decode(&event.encode()), Ok(event));
            }
        }
    }
}
