//! The error types of shmq: [`ShmqError`] for segment, endpoint and attach failures, and
//! [`RingFull`] for a push that found no free slot.

use std::io;

/// Why a segment could not be created, opened or attached, or an endpoint taken.
#[derive(Debug, thiserror::Error)]
pub enum ShmqError {
    #[error("shmq I/O: {0}")]
    Io(#[from] io::Error),
    /// The file (or the peer's hello) does not start with `b"SWBDSHMQ"`.
    #[error("not a shmq segment or peer (bad magic)")]
    BadMagic,
    /// The file or the peer speaks another ABI version.
    #[error("shmq ABI version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch { ours: u32, theirs: u32 },
    /// The file is shorter than its header, or than the layout its header describes.
    #[error("shmq segment file too small: {actual} bytes, need {needed}")]
    TooSmall { needed: u64, actual: u64 },
    /// The header's layout fields are inconsistent or out of range.
    #[error("shmq segment layout invalid: {0}")]
    BadLayout(String),
    /// `Segment::create` or `AttachListener::accept` was given unusable parameters.
    #[error("invalid shmq parameters: {0}")]
    InvalidConfig(String),
    #[error("no worker {worker} in a segment of {workers} workers")]
    NoSuchWorker { worker: usize, workers: usize },
    /// The endpoint was already taken from this segment handle in the current epoch.
    #[error("the {endpoint} of worker {worker} is already taken in this epoch")]
    AlreadyTaken {
        worker: usize,
        endpoint: &'static str,
    },
    /// The peer mapped a different (or since re-created / reset) segment.
    #[error("shmq epoch mismatch: ours {ours}, theirs {theirs}")]
    EpochMismatch { ours: u64, theirs: u64 },
    #[error("shmq worker count mismatch: ours {ours}, theirs {theirs}")]
    WorkerCountMismatch { ours: usize, theirs: usize },
    /// No peer connected, or the handshake did not finish, in time.
    #[error("shmq attach timed out")]
    Timeout,
    /// The peer broke the attach protocol (closed early, wrong role, wrong fd count, ...).
    #[error("shmq attach handshake failed: {0}")]
    Handshake(String),
}

/// A push found every slot of the ring in use (or the ring's indices inconsistent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shmq ring full")]
pub struct RingFull;
