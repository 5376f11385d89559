//! shmq: the ABI between Switchboard's control plane and media plane — record types,
//! shared-memory SPSC rings, eventfd doorbells and the attach handshake. No tokio, no locks,
//! no serde between the planes.
//!
//! # Segment layout
//!
//! One file, normally under /dev/shm, mapped shared by both processes. All offsets are
//! multiples of 64 (one cache line); multi-byte fields are native-endian.
//!
//! ```text
//! offset 0     header (64 bytes)
//!              magic b"SWBDSHMQ" · abi_version u32 · header_size u32 · workers u32 ·
//!              ring_capacity u32 · record_size u32 · reserved u32 · worker_stride u64 ·
//!              total_size u64 · epoch u64
//! offset 64    worker 0:  WorkerStats          192 bytes: seventeen AtomicU64 counters, 7 reserved
//!                         command ring         head (64) · tail (64) · capacity × Record (96)
//!                         event ring           same shape
//! +stride      worker 1:  ...
//! ```
//!
//! `ring_size = round_up(128 + capacity × 96, 64)`, `worker_stride = 192 + 2 × ring_size`,
//! `total_size = 64 + workers × worker_stride`. The control plane creates the segment
//! ([`Segment::create`]); the media plane opens it ([`Segment::open`]), which checks magic,
//! version and every layout field against the file size.
//!
//! # Rings
//!
//! Each ring is single-producer/single-consumer: commands flow control → worker, events
//! worker → control. The producer writes a slot then publishes `tail` with Release; the
//! consumer reads `tail` with Acquire, copies the slot out, then publishes `head` with Release.
//! See [`ring`] for details. Records are the 96-byte [`Record`]; [`Command`] and [`Event`]
//! encode to and decode from them (see [`records`]).
//!
//! # Doorbells and attach
//!
//! Each worker has a command doorbell (control rings it after pushing commands) and an event
//! doorbell (the worker rings it after pushing events), both eventfds, so neither side spins.
//! The control plane creates them ([`DoorbellSet::new`]) and listens on a Unix socket beside
//! the segment ([`AttachListener`]); the media process connects ([`attach()`](fn@attach)), the two exchange
//! hellos (magic, ABI version, epoch, worker count) and the control plane passes every doorbell
//! fd with SCM_RIGHTS. The connection then stays open: its closing is how each side learns
//! that the other is gone ([`Attachment::peer_gone`]).

pub mod attach;
pub mod doorbell;
mod error;
pub mod records;
pub mod ring;
pub mod segment;
#[cfg(test)]
mod test_support;

pub use attach::{attach, AttachListener, Attachment};
pub use doorbell::{Doorbell, DoorbellSet};
pub use error::{RingFull, ShmqError};
pub use records::{
    Codec, Command, DecodeError, Event, FailReason, MediaId, MixId, Qos, Record, RecordingChannels,
    RecordingEnd, RecordingId, RemoteQos, SessionId, MAX_MIX_MEMBERS, MAX_SEND_DIGITS, RECORD_SIZE,
};
pub use ring::{Consumer, Producer};
pub use segment::{RingKind, Segment, WorkerStats, WorkerStatsSnapshot, ABI_VERSION, MAGIC};
