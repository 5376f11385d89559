//! Single-producer/single-consumer rings of [`Record`]s in the shared segment, and their two
//! endpoints, [`Producer`] and [`Consumer`].
//!
//! A ring in shared memory is `RingIndices` (`head` and `tail`, each an `AtomicU64` on its
//! own cache line) followed by `capacity` (a power of two) `Slot`s of 96 bytes. `head` and
//! `tail` count records ever popped and pushed; slot `i % capacity` holds record `i`.
//!
//! - The producer owns `tail`: it writes the slot, then `tail.store(Release)`. It keeps its own
//!   copy of `tail` and a cached `head`, re-reading `head` (Acquire) only when the ring looks full.
//! - The consumer owns `head`: it reads `tail` (Acquire, only when its cached copy says empty),
//!   copies the slot, then `head.store(Release)`.
//!
//! Every word of shared memory, slots included, is accessed through atomics, so a misbehaving
//! or corrupt peer can make the ring return wrong records but never cause undefined behaviour.
//! A `tail - head` distance above the capacity is treated as "empty" by the consumer and "full"
//! by the producer, and logged once.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytemuck::must_cast;

use crate::error::RingFull;
use crate::records::{Record, RECORD_SIZE};
use crate::segment::Segment;

/// Number of `u64` words in one record slot.
const SLOT_WORDS: usize = RECORD_SIZE / 8;

/// An `AtomicU64` alone on a 64-byte cache line.
#[repr(C, align(64))]
pub(crate) struct CachePaddedIndex {
    pub(crate) value: AtomicU64,
}

/// The two indices at the start of every ring.
#[repr(C)]
pub(crate) struct RingIndices {
    /// Records ever popped; written only by the consumer.
    pub(crate) head: CachePaddedIndex,
    /// Records ever pushed; written only by the producer.
    pub(crate) tail: CachePaddedIndex,
}

/// One record in shared memory, as twelve atomic words.
#[repr(C)]
pub(crate) struct Slot {
    words: [AtomicU64; SLOT_WORDS],
}

const _: () = assert!(std::mem::size_of::<CachePaddedIndex>() == 64);
const _: () = assert!(std::mem::size_of::<RingIndices>() == 128);
const _: () = assert!(std::mem::size_of::<Slot>() == RECORD_SIZE);

impl Slot {
    fn store(&self, record: &Record) {
        let words: [u64; SLOT_WORDS] = must_cast(*record);
        for (cell, word) in self.words.iter().zip(words) {
            cell.store(word, Ordering::Relaxed);
        }
    }

    fn load(&self) -> Record {
        let mut words = [0u64; SLOT_WORDS];
        for (word, cell) in words.iter_mut().zip(&self.words) {
            *word = cell.load(Ordering::Relaxed);
        }
        must_cast(words)
    }
}

/// Where one ring lives inside a mapped segment. Built only by [`Segment`], which has
/// validated that `indices` and `capacity` slots after it lie inside its mapping.
#[derive(Clone, Copy)]
pub(crate) struct RingLocation {
    pub(crate) indices: NonNull<RingIndices>,
    pub(crate) slots: NonNull<Slot>,
    pub(crate) capacity: u64,
    pub(crate) worker: usize,
}

/// Shared access to one ring; only valid while the owning segment's mapping is alive,
/// which the endpoints guarantee by holding an `Arc<Segment>`.
struct RingView {
    location: RingLocation,
    mask: u64,
}

impl RingView {
    fn new(location: RingLocation) -> RingView {
        debug_assert!(location.capacity.is_power_of_two());
        RingView {
            location,
            mask: location.capacity - 1,
        }
    }

    fn indices(&self) -> &RingIndices {
        // SAFETY: the segment validated the location against its mapping, the mapping outlives
        // `self` (the endpoint holds an Arc<Segment>), and RingIndices is made of atomics only.
        unsafe { self.location.indices.as_ref() }
    }

    fn slot(&self, index: u64) -> &Slot {
        let offset = (index & self.mask) as usize; // < capacity by construction
                                                   // SAFETY: `offset < capacity` and the segment validated that `capacity` slots follow
                                                   // the indices inside its mapping; Slot is made of atomics only.
        unsafe { &*self.location.slots.as_ptr().add(offset) }
    }

    fn capacity(&self) -> u64 {
        self.location.capacity
    }
}

/// The writing end of a ring. `Send`, not `Sync`; keeps the segment mapped.
///
/// ```compile_fail
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<shmq::Producer>();
/// ```
pub struct Producer {
    _segment: Arc<Segment>,
    ring: RingView,
    /// Our own copy of `tail`; only we write it.
    tail: u64,
    /// The consumer's `head` as last read.
    cached_head: u64,
    reported_inconsistency: bool,
}

// SAFETY: the raw pointers point into a mapping kept alive by the Arc<Segment> we hold; all
// shared memory is accessed through atomics. Producer is deliberately not Sync (one writer).
unsafe impl Send for Producer {}

impl Producer {
    pub(crate) fn new(segment: Arc<Segment>, location: RingLocation) -> Producer {
        let ring = RingView::new(location);
        let tail = ring.indices().tail.value.load(Ordering::Acquire);
        let cached_head = ring.indices().head.value.load(Ordering::Acquire);
        Producer {
            _segment: segment,
            ring,
            tail,
            cached_head,
            reported_inconsistency: false,
        }
    }

    /// Appends a copy of `r`, or returns [`RingFull`] if no slot is free.
    pub fn push(&mut self, r: &Record) -> Result<(), RingFull> {
        let capacity = self.ring.capacity();
        if self.tail.wrapping_sub(self.cached_head) >= capacity {
            self.cached_head = self.ring.indices().head.value.load(Ordering::Acquire);
            let used = self.tail.wrapping_sub(self.cached_head);
            if used > capacity {
                self.report_inconsistency(used);
            }
            if used >= capacity {
                return Err(RingFull);
            }
        }
        self.ring.slot(self.tail).store(r);
        self.tail = self.tail.wrapping_add(1);
        self.ring
            .indices()
            .tail
            .value
            .store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Slots free right now (the consumer may free more at any moment).
    pub fn free_slots(&self) -> usize {
        let head = self.ring.indices().head.value.load(Ordering::Acquire);
        let used = self.tail.wrapping_sub(head);
        usize::try_from(self.ring.capacity().saturating_sub(used)).unwrap_or(0)
    }

    /// Number of slots in the ring.
    pub fn capacity(&self) -> usize {
        usize::try_from(self.ring.capacity()).unwrap_or(usize::MAX)
    }

    /// The worker whose ring this is.
    pub fn worker(&self) -> usize {
        self.ring.location.worker
    }

    fn report_inconsistency(&mut self, used: u64) {
        if !self.reported_inconsistency {
            self.reported_inconsistency = true;
            tracing::warn!(
                worker = self.worker(),
                tail = self.tail,
                head = self.cached_head,
                used,
                capacity = self.ring.capacity(),
                "shmq ring indices inconsistent; treating ring as full"
            );
        }
    }
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("worker", &self.worker())
            .field("capacity", &self.ring.capacity())
            .field("tail", &self.tail)
            .field("cached_head", &self.cached_head)
            .finish()
    }
}

/// The reading end of a ring. `Send`, not `Sync`; keeps the segment mapped.
///
/// ```compile_fail
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<shmq::Consumer>();
/// ```
pub struct Consumer {
    _segment: Arc<Segment>,
    ring: RingView,
    /// Our own copy of `head`; only we write it.
    head: u64,
    /// The producer's `tail` as last read.
    cached_tail: u64,
    reported_inconsistency: bool,
}

// SAFETY: as for Producer.
unsafe impl Send for Consumer {}

impl Consumer {
    pub(crate) fn new(segment: Arc<Segment>, location: RingLocation) -> Consumer {
        let ring = RingView::new(location);
        let head = ring.indices().head.value.load(Ordering::Acquire);
        let cached_tail = ring.indices().tail.value.load(Ordering::Acquire);
        Consumer {
            _segment: segment,
            ring,
            head,
            cached_tail,
            reported_inconsistency: false,
        }
    }

    /// Removes and returns the oldest record, or `None` if the ring is empty (or its indices
    /// are inconsistent, which is logged once).
    pub fn pop(&mut self) -> Option<Record> {
        if self.head == self.cached_tail {
            self.cached_tail = self.ring.indices().tail.value.load(Ordering::Acquire);
            if self.head == self.cached_tail {
                return None;
            }
        }
        let available = self.cached_tail.wrapping_sub(self.head);
        if available > self.ring.capacity() {
            self.report_inconsistency(available);
            // Re-read next time rather than trusting the bad value.
            self.cached_tail = self.head;
            return None;
        }
        let record = self.ring.slot(self.head).load();
        self.head = self.head.wrapping_add(1);
        self.ring
            .indices()
            .head
            .value
            .store(self.head, Ordering::Release);
        Some(record)
    }

    /// Whether a `pop` now would return `None`.
    pub fn is_empty(&self) -> bool {
        let tail = self.ring.indices().tail.value.load(Ordering::Acquire);
        let available = tail.wrapping_sub(self.head);
        available == 0 || available > self.ring.capacity()
    }

    /// Number of slots in the ring.
    pub fn capacity(&self) -> usize {
        usize::try_from(self.ring.capacity()).unwrap_or(usize::MAX)
    }

    /// The worker whose ring this is.
    pub fn worker(&self) -> usize {
        self.ring.location.worker
    }

    fn report_inconsistency(&mut self, available: u64) {
        if !self.reported_inconsistency {
            self.reported_inconsistency = true;
            tracing::warn!(
                worker = self.worker(),
                head = self.head,
                tail = self.cached_tail,
                available,
                capacity = self.ring.capacity(),
                "shmq ring indices inconsistent; treating ring as empty"
            );
        }
    }
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("worker", &self.worker())
            .field("capacity", &self.ring.capacity())
            .field("head", &self.head)
            .field("cached_tail", &self.cached_tail)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempSegmentPath;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A record whose every field is derived from `seq`, so torn or misplaced slots show.
    fn numbered(seq: u64) -> Record {
        let mut body = [0u8; 80];
        for (i, chunk) in body.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&(seq ^ (i as u64) << 56).to_ne_bytes());
        }
        Record {
            kind: seq as u32,
            flags: (seq >> 32) as u32,
            session: !seq,
            body,
        }
    }

    #[test]
    fn wraps_around_many_times() {
        let path = TempSegmentPath::new("wrap");
        let segment = Segment::create(&path, 1, 8).unwrap();
        let mut producer = segment.command_producer(0).unwrap();
        let mut consumer = segment.command_consumer(0).unwrap();
        let mut next_out = 0u64;
        let mut next_in = 0u64;
        // Vary the batch so head and tail cross the wrap point at every offset.
        for round in 0..2_000u64 {
            let batch = 1 + round % 8;
            for _ in 0..batch {
                producer.push(&numbered(next_in)).unwrap();
                next_in += 1;
            }
            for _ in 0..batch {
                assert_eq!(consumer.pop(), Some(numbered(next_out)));
                next_out += 1;
            }
            assert_eq!(consumer.pop(), None);
        }
        assert!(next_in > 8 * 1000);
        let indices = segment.ring_indices_for_test(0, true);
        assert_eq!(indices.head.value.load(Ordering::Relaxed), next_in);
        assert_eq!(indices.tail.value.load(Ordering::Relaxed), next_in);
    }

    #[test]
    fn full_ring_refuses_pushes_until_popped() {
        let path = TempSegmentPath::new("full");
        let segment = Segment::create(&path, 1, 4).unwrap();
        let mut producer = segment.event_producer(0).unwrap();
        let mut consumer = segment.event_consumer(0).unwrap();
        assert_eq!(producer.capacity(), 4);
        assert_eq!(producer.free_slots(), 4);
        assert!(consumer.is_empty());
        for seq in 0..4 {
            producer.push(&numbered(seq)).unwrap();
        }
        assert_eq!(producer.free_slots(), 0);
        assert_eq!(producer.push(&numbered(99)), Err(RingFull));
        assert!(!consumer.is_empty());
        assert_eq!(consumer.pop(), Some(numbered(0)));
        assert_eq!(producer.free_slots(), 1);
        producer.push(&numbered(4)).unwrap();
        assert_eq!(producer.push(&numbered(99)), Err(RingFull));
        for seq in 1..=4 {
            assert_eq!(consumer.pop(), Some(numbered(seq)));
        }
        assert_eq!(consumer.pop(), None);
        assert!(consumer.is_empty());
    }

    #[test]
    fn inconsistent_indices_read_as_empty_and_full_without_panicking() {
        let path = TempSegmentPath::new("corrupt");
        let segment = Segment::create(&path, 1, 8).unwrap();
        let indices = segment.ring_indices_for_test(0, true);
        // tail far ahead of head: more records than slots.
        indices.tail.value.store(1_000, Ordering::Relaxed);
        indices.head.value.store(3, Ordering::Relaxed);
        let mut consumer = segment.command_consumer(0).unwrap();
        let mut producer = segment.command_producer(0).unwrap();
        assert!(consumer.is_empty());
        assert_eq!(consumer.pop(), None);
        assert_eq!(consumer.pop(), None);
        assert_eq!(producer.push(&numbered(1)), Err(RingFull));
        assert_eq!(producer.free_slots(), 0);

        // head ahead of tail (wrapping distance is huge).
        segment.reset();
        let indices = segment.ring_indices_for_test(0, true);
        indices.head.value.store(10, Ordering::Relaxed);
        indices.tail.value.store(2, Ordering::Relaxed);
        let mut consumer = segment.command_consumer(0).unwrap();
        let mut producer = segment.command_producer(0).unwrap();
        assert_eq!(consumer.pop(), None);
        assert!(consumer.is_empty());
        assert_eq!(producer.push(&numbered(1)), Err(RingFull));

        // Once the indices are sane again the ring works.
        segment.reset();
        let mut consumer = segment.command_consumer(0).unwrap();
        let mut producer = segment.command_producer(0).unwrap();
        producer.push(&numbered(5)).unwrap();
        assert_eq!(consumer.pop(), Some(numbered(5)));
    }

    #[test]
    fn endpoints_resume_from_the_indices_in_shared_memory() {
        let path = TempSegmentPath::new("resume");
        let segment = Segment::create(&path, 1, 8).unwrap();
        let other = Segment::open(&path).unwrap();
        let mut producer = segment.command_producer(0).unwrap();
        for seq in 0..6 {
            producer.push(&numbered(seq)).unwrap();
        }
        {
            let mut consumer = other.command_consumer(0).unwrap();
            for seq in 0..3 {
                assert_eq!(consumer.pop(), Some(numbered(seq)));
            }
        }
        // A consumer from a third mapping (say, a restarted process) carries on at head.
        let third = Segment::open(&path).unwrap();
        let mut consumer = third.command_consumer(0).unwrap();
        for seq in 3..6 {
            assert_eq!(consumer.pop(), Some(numbered(seq)));
        }
        assert_eq!(consumer.pop(), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push,
        Pop,
    }

    proptest! {
        #[test]
        fn interleaved_push_pop_matches_a_vecdeque(
            capacity_log2 in 0u32..5,
            ops in proptest::collection::vec(
                prop_oneof![Just(Op::Push), Just(Op::Pop)], 0..400),
        ) {
            let capacity = 1usize << capacity_log2;
            let path = TempSegmentPath::new("model");
            let segment = Segment::create(&path, 1, capacity).unwrap();
            // Producer and consumer on separate mappings, as in real use.
            let other = Segment::open(&path).unwrap();
            let mut producer = segment.command_producer(0).unwrap();
            let mut consumer = other.command_consumer(0).unwrap();
            let mut model = VecDeque::new();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Push => {
                        let result = producer.push(&numbered(next));
                        if model.len() < capacity {
                            prop_assert_eq!(result, Ok(()));
                            model.push_back(numbered(next));
                            next += 1;
                        } else {
                            prop_assert_eq!(result, Err(RingFull));
                        }
                    }
                    Op::Pop => prop_assert_eq!(consumer.pop(), model.pop_front()),
                }
                prop_assert_eq!(producer.free_slots(), capacity - model.len());
                prop_assert_eq!(consumer.is_empty(), model.is_empty());
            }
        }
    }
}
