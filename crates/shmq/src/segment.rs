//! The shared-memory segment: a file (normally under /dev/shm) mapped by both planes, holding
//! the header, and per worker its [`WorkerStats`], command ring and event ring.
//!
//! [`Segment::create`] builds the file under a temporary name and renames it into place, so a
//! process opening the path sees either the old complete segment or the new complete one (a
//! process that still maps the old file keeps working on the old inode). [`Segment::open`]
//! validates the magic, the ABI version and every layout field against the file's size before
//! touching the rings, so a foreign, truncated or corrupt file is an error, not a crash.
//!
//! Everything in the mapping is accessed through atomics only (the header fields included).
//! The one hazard left is another process truncating the file while it is mapped, which makes
//! the kernel raise SIGBUS; nothing but the control plane should ever write the file.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::ShmqError;
use crate::records::RECORD_SIZE;
use crate::ring::{Consumer, Producer, RingIndices, RingLocation, Slot};

/// The first eight bytes of every segment file and of every attach hello.
pub const MAGIC: [u8; 8] = *b"SWBDSHMQ";

/// Version of the whole ABI (segment layout, record layouts, attach protocol). Bump it on any
/// incompatible change; both sides refuse to talk across versions.
pub const ABI_VERSION: u32 = 5;

/// The most workers a segment may have.
pub const MAX_WORKERS: usize = 1024;

/// The largest ring capacity a segment may have (records per ring).
pub const MAX_RING_CAPACITY: usize = 1 << 20;

const CACHE_LINE: usize = 64;

/// The segment header, at offset 0. Written once by `create` (magic last), except `epoch`.
#[repr(C, align(64))]
struct SegmentHeader {
    magic: AtomicU64,
    abi_version: AtomicU32,
    header_size: AtomicU32,
    workers: AtomicU32,
    ring_capacity: AtomicU32,
    record_size: AtomicU32,
    reserved: AtomicU32,
    worker_stride: AtomicU64,
    total_size: AtomicU64,
    epoch: AtomicU64,
}

const HEADER_SIZE: usize = std::mem::size_of::<SegmentHeader>();
const _: () = assert!(HEADER_SIZE == CACHE_LINE);

/// Counters one media worker keeps and the control plane reads for metrics. The worker
/// updates them with `Relaxed` stores; they live on their own three cache lines in the segment
/// (the last seven words are reserved, zero).
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Datagrams received on session sockets.
    pub packets_in: AtomicU64,
    /// Datagrams sent (paced and relayed).
    pub packets_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// DTMF digits received (RFC 4733).
    pub dtmf_events: AtomicU64,
    /// A gauge (the others are counters); `Segment::reset` zeroes it.
    pub sessions_active: AtomicU64,
    /// Media ticks the worker started later than scheduled.
    pub late_ticks: AtomicU64,
    /// Packets forwarded from one bridged leg out of the other (also in `packets_out`).
    pub packets_relayed: AtomicU64,
    /// Datagrams dropped: not RTP, or not from the latched peer.
    pub drops_not_rtp: AtomicU64,
    /// RTP a bridged leg received but could not forward (a payload type the other leg does not carry).
    pub drops_unforwardable: AtomicU64,
    /// Packets the socket refused to send.
    pub drops_send_error: AtomicU64,
    /// Receive errors (ICMP errors included).
    pub drops_receive_error: AtomicU64,
    /// Events dropped because the event ring and the worker's overflow queue were full.
    pub events_dropped: AtomicU64,
    /// Audio frames dropped because a recording ring was full.
    pub recording_frames_dropped: AtomicU64,
    /// `RtpTimeout` events reported.
    pub rtp_timeouts: AtomicU64,
    /// Nanoseconds the worker loop spent working (not waiting in poll): busy_ns / wall time is its load.
    pub busy_ns: AtomicU64,
    /// RTCP datagrams dropped as malformed (bad version or lengths, not a compound packet).
    pub drops_bad_rtcp: AtomicU64,
    /// Room for counters to come without moving the rings; always zero.
    pub reserved: [AtomicU64; 7],
}

const STATS_SIZE: usize = std::mem::size_of::<WorkerStats>();
const _: () = assert!(STATS_SIZE == 3 * CACHE_LINE);

/// A plain copy of [`WorkerStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStatsSnapshot {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dtmf_events: u64,
    pub sessions_active: u64,
    pub late_ticks: u64,
    pub packets_relayed: u64,
    pub drops_not_rtp: u64,
    pub drops_unforwardable: u64,
    pub drops_send_error: u64,
    pub drops_receive_error: u64,
    pub events_dropped: u64,
    pub recording_frames_dropped: u64,
    pub rtp_timeouts: u64,
    pub busy_ns: u64,
    pub drops_bad_rtcp: u64,
}

impl WorkerStats {
    /// Reads every counter (`Relaxed`; counters are independent).
    pub fn snapshot(&self) -> WorkerStatsSnapshot {
        WorkerStatsSnapshot {
            packets_in: self.packets_in.load(Ordering::Relaxed),
            packets_out: self.packets_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            dtmf_events: self.dtmf_events.load(Ordering::Relaxed),
            sessions_active: self.sessions_active.load(Ordering::Relaxed),
            late_ticks: self.late_ticks.load(Ordering::Relaxed),
            packets_relayed: self.packets_relayed.load(Ordering::Relaxed),
            drops_not_rtp: self.drops_not_rtp.load(Ordering::Relaxed),
            drops_unforwardable: self.drops_unforwardable.load(Ordering::Relaxed),
            drops_send_error: self.drops_send_error.load(Ordering::Relaxed),
            drops_receive_error: self.drops_receive_error.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
            recording_frames_dropped: self.recording_frames_dropped.load(Ordering::Relaxed),
            rtp_timeouts: self.rtp_timeouts.load(Ordering::Relaxed),
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
            drops_bad_rtcp: self.drops_bad_rtcp.load(Ordering::Relaxed),
        }
    }
}

/// Byte offsets of everything in a segment of a given shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    workers: usize,
    ring_capacity: usize,
    /// Bytes of one ring: indices plus slots, rounded up to a cache line.
    ring_size: usize,
    /// Bytes of one worker block: stats, command ring, event ring.
    worker_stride: usize,
    total_size: usize,
}

/// One of a worker's two rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingKind {
    /// Control plane → worker.
    Commands,
    /// Worker → control plane.
    Events,
}

impl Layout {
    fn new(workers: usize, ring_capacity: usize) -> Result<Layout, String> {
        if workers == 0 || workers > MAX_WORKERS {
            return Err(format!("worker count {workers} not in 1..={MAX_WORKERS}"));
        }
        if !ring_capacity.is_power_of_two() || ring_capacity > MAX_RING_CAPACITY {
            return Err(format!(
                "ring capacity {ring_capacity} is not a power of two in 1..={MAX_RING_CAPACITY}"
            ));
        }
        let overflow = || format!("{workers} workers x {ring_capacity} slots overflows");
        let slots = ring_capacity
            .checked_mul(RECORD_SIZE)
            .ok_or_else(overflow)?;
        let ring_size = (std::mem::size_of::<RingIndices>() + slots)
            .checked_next_multiple_of(CACHE_LINE)
            .ok_or_else(overflow)?;
        let worker_stride = ring_size
            .checked_mul(2)
            .and_then(|rings| rings.checked_add(STATS_SIZE))
            .ok_or_else(overflow)?;
        let total_size = worker_stride
            .checked_mul(workers)
            .and_then(|blocks| blocks.checked_add(HEADER_SIZE))
            .ok_or_else(overflow)?;
        Ok(Layout {
            workers,
            ring_capacity,
            ring_size,
            worker_stride,
            total_size,
        })
    }

    fn stats_offset(&self, worker: usize) -> usize {
        HEADER_SIZE + worker * self.worker_stride
    }

    fn ring_offset(&self, worker: usize, kind: RingKind) -> usize {
        let first_ring = self.stats_offset(worker) + STATS_SIZE;
        match kind {
            RingKind::Commands => first_ring,
            RingKind::Events => first_ring + self.ring_size,
        }
    }
}

/// The four endpoints of one worker's rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    CommandProducer = 0,
    CommandConsumer = 1,
    EventProducer = 2,
    EventConsumer = 3,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::CommandProducer => "command producer",
            Endpoint::CommandConsumer => "command consumer",
            Endpoint::EventProducer => "event producer",
            Endpoint::EventConsumer => "event consumer",
        }
    }

    fn ring(self) -> RingKind {
        match self {
            Endpoint::CommandProducer | Endpoint::CommandConsumer => RingKind::Commands,
            Endpoint::EventProducer | Endpoint::EventConsumer => RingKind::Events,
        }
    }
}

/// A mapped segment file. Create it in the control plane, open it in the media plane, share
/// it within a process as `Arc<Segment>`.
pub struct Segment {
    map: MmapRaw,
    path: PathBuf,
    layout: Layout,
    /// One flag per (worker, endpoint): taken from this handle in the current epoch.
    taken: Box<[AtomicBool]>,
}

impl Segment {
    /// Creates (or atomically replaces) the segment file at `path` with `workers` workers and
    /// rings of `ring_capacity` records (a power of two), zeroed, with a fresh epoch.
    pub fn create(
        path: &Path,
        workers: usize,
        ring_capacity: usize,
    ) -> Result<Arc<Segment>, ShmqError> {
        let layout = Layout::new(workers, ring_capacity).map_err(ShmqError::InvalidConfig)?;
        let temp_path = temporary_path(path)?;
        let result = Segment::create_at(&temp_path, path, layout);
        if result.is_err() {
            // Best effort: the temporary file may not exist if creating it was what failed.
            let _ = fs::remove_file(&temp_path);
        }
        result
    }

    fn create_at(temp_path: &Path, path: &Path, layout: Layout) -> Result<Arc<Segment>, ShmqError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temp_path)?;
        file.set_len(layout.total_size as u64)?;
        let map = MmapOptions::new().len(layout.total_size).map_raw(&file)?;
        let segment = Segment::from_parts(map, path.to_path_buf(), layout);
        let header = segment.header();
        header.abi_version.store(ABI_VERSION, Ordering::Relaxed);
        header
            .header_size
            .store(HEADER_SIZE as u32, Ordering::Relaxed);
        header
            .workers
            .store(layout.workers as u32, Ordering::Relaxed);
        header
            .ring_capacity
            .store(layout.ring_capacity as u32, Ordering::Relaxed);
        header
            .record_size
            .store(RECORD_SIZE as u32, Ordering::Relaxed);
        header
            .worker_stride
            .store(layout.worker_stride as u64, Ordering::Relaxed);
        header
            .total_size
            .store(layout.total_size as u64, Ordering::Relaxed);
        header.epoch.store(initial_epoch(), Ordering::Relaxed);
        header
            .magic
            .store(u64::from_ne_bytes(MAGIC), Ordering::Release);
        fs::rename(temp_path, path)?;
        tracing::debug!(
            path = %path.display(),
            workers = layout.workers,
            ring_capacity = layout.ring_capacity,
            bytes = layout.total_size,
            "created shmq segment"
        );
        Ok(Arc::new(segment))
    }

    /// Maps an existing segment file, checking magic, ABI version and layout.
    pub fn open(path: &Path) -> Result<Arc<Segment>, ShmqError> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let file_len = file.metadata()?.len();
        if file_len < HEADER_SIZE as u64 {
            return Err(ShmqError::TooSmall {
                needed: HEADER_SIZE as u64,
                actual: file_len,
            });
        }
        let map_len = usize::try_from(file_len)
            .map_err(|_| ShmqError::BadLayout(format!("file of {file_len} bytes")))?;
        let map = MmapOptions::new().len(map_len).map_raw(&file)?;
        let layout = validate_header(&map, file_len)?;
        Ok(Arc::new(Segment::from_parts(
            map,
            path.to_path_buf(),
            layout,
        )))
    }

    fn from_parts(map: MmapRaw, path: PathBuf, layout: Layout) -> Segment {
        let taken = (0..layout.workers * 4)
            .map(|_| AtomicBool::new(false))
            .collect();
        Segment {
            map,
            path,
            layout,
            taken,
        }
    }

    fn header(&self) -> &SegmentHeader {
        // SAFETY: the mapping is page-aligned and at least HEADER_SIZE long (checked by
        // create/open); SegmentHeader holds only atomics, so shared mutation is fine.
        unsafe { &*self.map.as_ptr().cast::<SegmentHeader>() }
    }

    /// The path this segment was created at or opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of media workers (each has one command ring and one event ring).
    pub fn workers(&self) -> usize {
        self.layout.workers
    }

    /// Records per ring.
    pub fn ring_capacity(&self) -> usize {
        self.layout.ring_capacity
    }

    /// The segment's generation: fresh (time-derived) on create, incremented by every reset.
    /// The attach handshake refuses peers whose epoch differs.
    pub fn epoch(&self) -> u64 {
        self.header().epoch.load(Ordering::Acquire)
    }

    /// For the control plane, with no media process attached: zeroes every ring's indices and
    /// the `sessions_active` gauges, increments the epoch, and lets this handle hand out every
    /// endpoint again. Endpoints taken before the reset must be dropped, not used.
    pub fn reset(&self) {
        for worker in 0..self.layout.workers {
            for kind in [RingKind::Commands, RingKind::Events] {
                let location = self.ring_location(worker, kind);
                // SAFETY: see ring_location; RingIndices holds only atomics.
                let indices = unsafe { location.indices.as_ref() };
                indices.head.value.store(0, Ordering::Relaxed);
                indices.tail.value.store(0, Ordering::Relaxed);
            }
            self.stats(worker)
                .sessions_active
                .store(0, Ordering::Relaxed);
        }
        self.header().epoch.fetch_add(1, Ordering::AcqRel);
        for flag in self.taken.iter() {
            flag.store(false, Ordering::Release);
        }
    }

    /// Control plane: the producer of worker `worker`'s command ring.
    pub fn command_producer(self: &Arc<Self>, worker: usize) -> Result<Producer, ShmqError> {
        let location = self.take(worker, Endpoint::CommandProducer)?;
        Ok(Producer::new(Arc::clone(self), location))
    }

    /// Media plane: the consumer of worker `worker`'s command ring.
    pub fn command_consumer(self: &Arc<Self>, worker: usize) -> Result<Consumer, ShmqError> {
        let location = self.take(worker, Endpoint::CommandConsumer)?;
        Ok(Consumer::new(Arc::clone(self), location))
    }

    /// Media plane: the producer of worker `worker`'s event ring.
    pub fn event_producer(self: &Arc<Self>, worker: usize) -> Result<Producer, ShmqError> {
        let location = self.take(worker, Endpoint::EventProducer)?;
        Ok(Producer::new(Arc::clone(self), location))
    }

    /// Control plane: the consumer of worker `worker`'s event ring.
    pub fn event_consumer(self: &Arc<Self>, worker: usize) -> Result<Consumer, ShmqError> {
        let location = self.take(worker, Endpoint::EventConsumer)?;
        Ok(Consumer::new(Arc::clone(self), location))
    }

    /// Worker `worker`'s counters.
    ///
    /// # Panics
    /// If `worker >= self.workers()` (a programming error; see [`Segment::try_worker_stats`]).
    pub fn worker_stats(&self, worker: usize) -> &WorkerStats {
        match self.try_worker_stats(worker) {
            Ok(stats) => stats,
            Err(error) => panic!("{error}"),
        }
    }

    /// Worker `worker`'s counters, or `NoSuchWorker`.
    pub fn try_worker_stats(&self, worker: usize) -> Result<&WorkerStats, ShmqError> {
        self.check_worker(worker)?;
        Ok(self.stats(worker))
    }

    /// Records waiting in worker `worker`'s `kind` ring (pushed, not yet popped), for
    /// metrics: a read-only look at the ring's indices that never disturbs either endpoint.
    /// Always within `0..=ring_capacity()`, even while a reset runs or if the indices are
    /// inconsistent.
    pub fn ring_depth(&self, worker: usize, kind: RingKind) -> Result<u64, ShmqError> {
        self.check_worker(worker)?;
        let location = self.ring_location(worker, kind);
        // SAFETY: see ring_location; RingIndices holds only atomics.
        let indices = unsafe { location.indices.as_ref() };
        // Head first: both only grow (between resets), so the tail read after it is not behind.
        let head = indices.head.value.load(Ordering::Acquire);
        let tail = indices.tail.value.load(Ordering::Acquire);
        Ok(tail.saturating_sub(head).min(location.capacity))
    }

    fn check_worker(&self, worker: usize) -> Result<(), ShmqError> {
        if worker < self.layout.workers {
            Ok(())
        } else {
            Err(ShmqError::NoSuchWorker {
                worker,
                workers: self.layout.workers,
            })
        }
    }

    fn stats(&self, worker: usize) -> &WorkerStats {
        debug_assert!(worker < self.layout.workers);
        // SAFETY: worker < workers, so the offset plus STATS_SIZE is within total_size, which
        // create/open checked against the mapping; offsets are cache-line multiples from a
        // page-aligned base; WorkerStats holds only atomics.
        unsafe {
            &*self
                .map
                .as_ptr()
                .add(self.layout.stats_offset(worker))
                .cast::<WorkerStats>()
        }
    }

    fn take(&self, worker: usize, endpoint: Endpoint) -> Result<RingLocation, ShmqError> {
        self.check_worker(worker)?;
        let flag =
            self.taken
                .get(worker * 4 + endpoint as usize)
                .ok_or(ShmqError::NoSuchWorker {
                    worker,
                    workers: self.layout.workers,
                })?;
        if flag.swap(true, Ordering::AcqRel) {
            return Err(ShmqError::AlreadyTaken {
                worker,
                endpoint: endpoint.name(),
            });
        }
        Ok(self.ring_location(worker, endpoint.ring()))
    }

    fn ring_location(&self, worker: usize, kind: RingKind) -> RingLocation {
        debug_assert!(worker < self.layout.workers);
        let offset = self.layout.ring_offset(worker, kind);
        // SAFETY: worker < workers, so the ring (indices + capacity slots) lies within
        // total_size, which create/open checked against the mapping length.
        let (indices, slots) = unsafe {
            let base = self.map.as_mut_ptr().add(offset);
            (
                base.cast::<RingIndices>(),
                base.add(std::mem::size_of::<RingIndices>()).cast::<Slot>(),
            )
        };
        RingLocation {
            // SAFETY: pointers into a live mapping (from a successful mmap) are never null.
            indices: unsafe { NonNull::new_unchecked(indices) },
            slots: unsafe { NonNull::new_unchecked(slots) },
            capacity: self.layout.ring_capacity as u64,
            worker,
        }
    }

    #[cfg(test)]
    pub(crate) fn ring_indices_for_test(&self, worker: usize, commands: bool) -> &RingIndices {
        let kind = if commands {
            RingKind::Commands
        } else {
            RingKind::Events
        };
        // SAFETY: as in ring_location.
        unsafe { self.ring_location(worker, kind).indices.as_ref() }
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("workers", &self.layout.workers)
            .field("ring_capacity", &self.layout.ring_capacity)
            .field("bytes", &self.layout.total_size)
            .field("epoch", &self.epoch())
            .finish()
    }
}

/// Checks a freshly mapped file's header; returns the layout it describes.
fn validate_header(map: &MmapRaw, file_len: u64) -> Result<Layout, ShmqError> {
    if map.len() < HEADER_SIZE {
        return Err(ShmqError::TooSmall {
            needed: HEADER_SIZE as u64,
            actual: file_len,
        });
    }
    // SAFETY: the mapping is page-aligned and at least HEADER_SIZE long; atomics only.
    let header = unsafe { &*map.as_ptr().cast::<SegmentHeader>() };
    if header.magic.load(Ordering::Acquire) != u64::from_ne_bytes(MAGIC) {
        return Err(ShmqError::BadMagic);
    }
    let theirs = header.abi_version.load(Ordering::Relaxed);
    if theirs != ABI_VERSION {
        return Err(ShmqError::VersionMismatch {
            ours: ABI_VERSION,
            theirs,
        });
    }
    let header_size = header.header_size.load(Ordering::Relaxed);
    if header_size as usize != HEADER_SIZE {
        return Err(ShmqError::BadLayout(format!(
            "header size {header_size}, expected {HEADER_SIZE}"
        )));
    }
    let record_size = header.record_size.load(Ordering::Relaxed);
    if record_size as usize != RECORD_SIZE {
        return Err(ShmqError::BadLayout(format!(
            "record size {record_size}, expected {RECORD_SIZE}"
        )));
    }
    let workers = header.workers.load(Ordering::Relaxed) as usize;
    let ring_capacity = header.ring_capacity.load(Ordering::Relaxed) as usize;
    let layout = Layout::new(workers, ring_capacity).map_err(ShmqError::BadLayout)?;
    let stride = header.worker_stride.load(Ordering::Relaxed);
    if stride != layout.worker_stride as u64 {
        return Err(ShmqError::BadLayout(format!(
            "worker stride {stride}, expected {}",
            layout.worker_stride
        )));
    }
    let total = header.total_size.load(Ordering::Relaxed);
    if total != layout.total_size as u64 {
        return Err(ShmqError::BadLayout(format!(
            "total size {total}, expected {}",
            layout.total_size
        )));
    }
    if file_len < total || (map.len() as u64) < total {
        return Err(ShmqError::TooSmall {
            needed: total,
            actual: file_len,
        });
    }
    Ok(layout)
}

/// `<dir>/.<name>.<pid>.<n>.tmp` beside `path`, so the final rename stays on one file system;
/// unique per call within a process, and any stale file of that name is removed first.
fn temporary_path(path: &Path) -> Result<PathBuf, ShmqError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        ShmqError::InvalidConfig(format!("segment path {} has no file name", path.display()))
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let temp_path = path.with_file_name(temp_name);
    match fs::remove_file(&temp_path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
        _ => {}
    }
    Ok(temp_path)
}

/// A fresh epoch for a new segment: the creation time in nanoseconds, so a peer that mapped
/// an older segment file at the same path is told apart by the attach handshake.
fn initial_epoch() -> u64 {
    static CREATED: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0);
    // The counter keeps two creates in one process apart even on a coarse clock.
    nanos
        .wrapping_add(CREATED.fetch_add(1, Ordering::Relaxed))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Command, Record, SessionId};
    use crate::test_support::TempSegmentPath;
    use std::fs::File;
    use std::io::Read;
    use std::os::unix::fs::FileExt;

    fn file_starts_with_magic(path: &Path) -> std::io::Result<bool> {
        let mut magic = [0u8; 8];
        File::open(path)?.read_exact(&mut magic)?;
        Ok(magic == MAGIC)
    }

    fn patch(path: &Path, offset: u64, bytes: &[u8]) {
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(bytes, offset).unwrap();
    }

    #[test]
    fn handles_have_the_documented_thread_safety() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Segment>();
        send_sync::<WorkerStats>();
        send::<Producer>();
        send::<Consumer>();
    }

    #[test]
    fn create_then_open_sees_the_same_segment() {
        let path = TempSegmentPath::new("create-open");
        let created = Segment::create(&path, 3, 16).unwrap();
        let opened = Segment::open(&path).unwrap();
        assert_eq!(opened.workers(), 3);
        assert_eq!(opened.ring_capacity(), 16);
        assert_eq!(opened.epoch(), created.epoch());
        assert!(file_starts_with_magic(&path).unwrap());
        let expected_len = Layout::new(3, 16).unwrap().total_size as u64;
        assert_eq!(fs::metadata(&*path).unwrap().len(), expected_len);

        created
            .worker_stats(2)
            .packets_in
            .fetch_add(5, Ordering::Relaxed);
        assert_eq!(opened.worker_stats(2).snapshot().packets_in, 5);
        assert_eq!(opened.worker_stats(1).snapshot().packets_in, 0);

        // A record pushed through one mapping pops out of the other.
        let mut producer = created.command_producer(1).unwrap();
        let mut consumer = opened.command_consumer(1).unwrap();
        let record = Command::CloseSession {
            session: SessionId(77),
        }
        .encode();
        producer.push(&record).unwrap();
        assert_eq!(consumer.pop(), Some(record));
        assert_eq!(consumer.pop(), None);
    }

    #[test]
    fn worker_blocks_do_not_overlap() {
        let layout = Layout::new(4, 8).unwrap();
        let mut regions = Vec::new();
        for worker in 0..4 {
            regions.push((layout.stats_offset(worker), STATS_SIZE));
            for kind in [RingKind::Commands, RingKind::Events] {
                regions.push((layout.ring_offset(worker, kind), 128 + 8 * RECORD_SIZE));
            }
        }
        regions.sort();
        assert_eq!(regions[0].0, HEADER_SIZE);
        for pair in regions.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{pair:?} overlap");
            assert_eq!(pair[1].0 % CACHE_LINE, 0);
        }
        let (last_offset, last_len) = regions[regions.len() - 1];
        assert!(last_offset + last_len <= layout.total_size);
    }

    #[test]
    fn create_rejects_bad_parameters() {
        let path = TempSegmentPath::new("bad-params");
        for (workers, capacity) in [(0, 8), (MAX_WORKERS + 1, 8), (1, 0), (1, 12), (1, 1 << 21)] {
            assert!(
                matches!(
                    Segment::create(&path, workers, capacity),
                    Err(ShmqError::InvalidConfig(_))
                ),
                "{workers} workers, capacity {capacity}"
            );
        }
        assert!(!path.exists());
    }

    #[test]
    fn open_rejects_bad_magic() {
        let path = TempSegmentPath::new("bad-magic");
        Segment::create(&path, 1, 8).unwrap();
        patch(&path, 0, b"NOTSHMQ!");
        assert!(matches!(Segment::open(&path), Err(ShmqError::BadMagic)));

        let foreign = TempSegmentPath::new("foreign");
        fs::write(&foreign, vec![0x5a; 4096]).unwrap();
        assert!(matches!(Segment::open(&foreign), Err(ShmqError::BadMagic)));
    }

    #[test]
    fn open_rejects_other_abi_versions() {
        let path = TempSegmentPath::new("version");
        Segment::create(&path, 1, 8).unwrap();
        patch(&path, 8, &(ABI_VERSION + 1).to_ne_bytes());
        match Segment::open(&path) {
            Err(ShmqError::VersionMismatch { ours, theirs }) => {
                assert_eq!(ours, ABI_VERSION);
                assert_eq!(theirs, ABI_VERSION + 1);
            }
            other => panic!("expected VersionMismatch, got {other:?}"),
        }
    }

    #[test]
    fn open_rejects_short_files() {
        let empty = TempSegmentPath::new("empty");
        fs::write(&empty, b"").unwrap();
        assert!(matches!(
            Segment::open(&empty),
            Err(ShmqError::TooSmall { actual: 0, .. })
        ));

        let truncated = TempSegmentPath::new("truncated");
        Segment::create(&truncated, 2, 64).unwrap();
        let file = OpenOptions::new().write(true).open(&truncated).unwrap();
        file.set_len(4096).unwrap();
        match Segment::open(&truncated) {
            Err(ShmqError::TooSmall { needed, actual }) => {
                assert_eq!(actual, 4096);
                assert_eq!(needed, Layout::new(2, 64).unwrap().total_size as u64);
            }
            other => panic!("expected TooSmall, got {other:?}"),
        }

        let missing = TempSegmentPath::new("missing");
        assert!(matches!(Segment::open(&missing), Err(ShmqError::Io(_))));
    }

    #[test]
    fn open_rejects_inconsistent_layouts() {
        let cases: [(u64, Vec<u8>); 5] = [
            (12, 65u32.to_ne_bytes().to_vec()),        // header size
            (16, 0u32.to_ne_bytes().to_vec()),         // workers
            (20, 12u32.to_ne_bytes().to_vec()),        // capacity not a power of two
            (24, 64u32.to_ne_bytes().to_vec()),        // record size
            (40, 1_000_000u64.to_ne_bytes().to_vec()), // total size
        ];
        for (offset, bytes) in cases {
            let path = TempSegmentPath::new("layout");
            Segment::create(&path, 2, 8).unwrap();
            patch(&path, offset, &bytes);
            assert!(
                matches!(Segment::open(&path), Err(ShmqError::BadLayout(_))),
                "patch at {offset}"
            );
        }
        // A header claiming more workers than the file holds is caught by the stride/total check.
        let path = TempSegmentPath::new("layout-workers");
        Segment::create(&path, 2, 8).unwrap();
        patch(&path, 16, &3u32.to_ne_bytes());
        assert!(matches!(Segment::open(&path), Err(ShmqError::BadLayout(_))));
    }

    #[test]
    fn endpoints_are_taken_once_per_epoch() {
        let path = TempSegmentPath::new("endpoints");
        let segment = Segment::create(&path, 2, 8).unwrap();
        let epoch = segment.epoch();
        let _cp = segment.command_producer(0).unwrap();
        let _cc = segment.command_consumer(0).unwrap();
        let _ep = segment.event_producer(0).unwrap();
        let _ec = segment.event_consumer(0).unwrap();
        assert!(matches!(
            segment.command_producer(0),
            Err(ShmqError::AlreadyTaken { worker: 0, .. })
        ));
        assert!(matches!(
            segment.event_consumer(0),
            Err(ShmqError::AlreadyTaken { worker: 0, .. })
        ));
        // Worker 1's endpoints are independent.
        let _cp1 = segment.command_producer(1).unwrap();
        assert!(matches!(
            segment.command_producer(2),
            Err(ShmqError::NoSuchWorker {
                worker: 2,
                workers: 2
            })
        ));
        assert!(segment.try_worker_stats(2).is_err());

        segment.reset();
        assert_eq!(segment.epoch(), epoch + 1);
        assert!(segment.command_producer(0).is_ok());
        assert!(segment.event_consumer(0).is_ok());
    }

    #[test]
    fn reset_empties_rings_and_zeroes_the_session_gauge() {
        let path = TempSegmentPath::new("reset");
        let segment = Segment::create(&path, 1, 8).unwrap();
        {
            let mut producer = segment.event_producer(0).unwrap();
            for _ in 0..5 {
                producer.push(&Record::zeroed()).unwrap();
            }
        }
        segment
            .worker_stats(0)
            .sessions_active
            .store(9, Ordering::Relaxed);
        segment
            .worker_stats(0)
            .packets_out
            .store(3, Ordering::Relaxed);
        segment.reset();
        let indices = segment.ring_indices_for_test(0, false);
        assert_eq!(indices.tail.value.load(Ordering::Relaxed), 0);
        let consumer = segment.event_consumer(0).unwrap();
        assert!(consumer.is_empty());
        let stats = segment.worker_stats(0).snapshot();
        assert_eq!(stats.sessions_active, 0);
        assert_eq!(stats.packets_out, 3, "counters survive a reset");
    }

    #[test]
    fn ring_depth_counts_records_pushed_and_not_popped() {
        let path = TempSegmentPath::new("depth");
        let segment = Segment::create(&path, 2, 8).unwrap();
        let mut producer = segment.command_producer(1).unwrap();
        let mut consumer = segment.command_consumer(1).unwrap();
        for _ in 0..3 {
            producer.push(&Record::zeroed()).unwrap();
        }
        consumer.pop().unwrap();
        assert_eq!(segment.ring_depth(1, RingKind::Commands).unwrap(), 2);
        assert_eq!(segment.ring_depth(1, RingKind::Events).unwrap(), 0);
        assert_eq!(segment.ring_depth(0, RingKind::Commands).unwrap(), 0);
        while producer.push(&Record::zeroed()).is_ok() {}
        assert_eq!(segment.ring_depth(1, RingKind::Commands).unwrap(), 8);
        // Inconsistent indices (a corrupt peer) stay within the ring's capacity.
        let indices = segment.ring_indices_for_test(1, true);
        indices.tail.value.store(1_000, Ordering::Relaxed);
        assert_eq!(segment.ring_depth(1, RingKind::Commands).unwrap(), 8);
        indices.head.value.store(2_000, Ordering::Relaxed);
        assert_eq!(segment.ring_depth(1, RingKind::Commands).unwrap(), 0);
        assert!(matches!(
            segment.ring_depth(2, RingKind::Events),
            Err(ShmqError::NoSuchWorker { worker: 2, .. })
        ));
    }

    #[test]
    fn create_replaces_an_existing_file_without_disturbing_its_mappers() {
        let path = TempSegmentPath::new("replace");
        let old = Segment::create(&path, 1, 8).unwrap();
        let mut old_producer = old.command_producer(0).unwrap();
        let mut old_consumer = old.command_consumer(0).unwrap();
        let new = Segment::create(&path, 2, 16).unwrap();
        assert_ne!(old.epoch(), new.epoch());
        let reopened = Segment::open(&path).unwrap();
        assert_eq!(reopened.workers(), 2);
        assert_eq!(reopened.epoch(), new.epoch());
        // The old mapping still works on the old (now unlinked) file.
        old_producer.push(&Record::zeroed()).unwrap();
        assert_eq!(old_consumer.pop(), Some(Record::zeroed()));
    }
}
