//! A bounded, lock-free single-producer single-consumer ring of `Copy` values between two
//! threads of the media process (a worker and its recording writer).
//!
//! [`frame_ring`] allocates every slot up front and returns the two halves; each half is
//! owned by exactly one thread (`&mut self` methods), so there is one writer per index.
//! The producer publishes a slot with a `Release` store of `tail` after writing it; the
//! consumer reads it after an `Acquire` load of `tail`, and hands the slot back with a
//! `Release` store of `head`. Each side caches the other's index and reloads it only when
//! the ring looks full (or empty), so a push or pop is one copy and one atomic store.
//! `push` on a full ring returns the value (the caller decides to drop and count it): it
//! never blocks, allocates or makes a system call.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// An index on its own cache line, so the two sides don't false-share.
#[repr(align(64))]
struct PaddedIndex(AtomicUsize);

struct Shared<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Next slot the consumer reads (written by the consumer only).
    head: PaddedIndex,
    /// Next slot the producer writes (written by the producer only).
    tail: PaddedIndex,
}

// SAFETY: a slot is accessed by one thread at a time: the producer writes slots in
// `tail..head + capacity` (not yet published), the consumer reads slots in `head..tail`
// (published with Release, observed with Acquire). `T: Send` moves values across.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above; the shared state only holds `T` values and atomics.
unsafe impl<T: Send> Send for Shared<T> {}

/// The writing half of a [`frame_ring`].
pub struct RingProducer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    head_cache: usize,
}

/// The reading half of a [`frame_ring`].
pub struct RingConsumer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    tail_cache: usize,
}

/// A ring holding `capacity` values (rounded up to a power of two, at least 1).
pub fn frame_ring<T: Copy + Send>(capacity: usize) -> (RingProducer<T>, RingConsumer<T>) {
    let capacity = capacity.max(1).next_power_of_two();
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        slots,
        mask: capacity - 1,
        head: PaddedIndex(AtomicUsize::new(0)),
        tail: PaddedIndex(AtomicUsize::new(0)),
    });
    (
        RingProducer {
            shared: Arc::clone(&shared),
            tail: 0,
            head_cache: 0,
        },
        RingConsumer {
            shared,
            head: 0,
            tail_cache: 0,
        },
    )
}

impl<T: Copy + Send> RingProducer<T> {
    /// Appends `value`, or gives it back if the ring is full.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        let capacity = self.shared.mask + 1;
        if self.tail.wrapping_sub(self.head_cache) >= capacity {
            self.head_cache = self.shared.head.0.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_cache) >= capacity {
                return Err(value);
            }
        }
        let Some(slot) = self.shared.slots.get(self.tail & self.shared.mask) else {
            return Err(value);
        };
        // SAFETY: the slot is outside `head..tail`, so the consumer does not touch it until
        // the Release store below publishes it.
        unsafe { (*slot.get()).write(value) };
        self.tail = self.tail.wrapping_add(1);
        self.shared.tail.0.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Slots free right now (the consumer may free more at any time).
    pub fn free_slots(&self) -> usize {
        let head = self.shared.head.0.load(Ordering::Acquire);
        (self.shared.mask + 1).saturating_sub(self.tail.wrapping_sub(head))
    }

    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }
}

impl<T: Copy + Send> RingConsumer<T> {
    /// Takes the oldest value, if any.
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.tail_cache {
            self.tail_cache = self.shared.tail.0.load(Ordering::Acquire);
            if self.head == self.tail_cache {
                return None;
            }
        }
        let slot = self.shared.slots.get(self.head & self.shared.mask)?;
        // SAFETY: the slot is in `head..tail`: the producer wrote it before its Release
        // store of `tail`, which our Acquire load observed, and won't reuse it until our
        // Release store of `head` below.
        let value = unsafe { (*slot.get()).assume_init_read() };
        self.head = self.head.wrapping_add(1);
        self.shared.head.0.store(self.head, Ordering::Release);
        Some(value)
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.shared.tail.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_refuses_then_wraps_in_order() {
        let (mut tx, mut rx) = frame_ring::<u32>(3);
        assert_eq!(tx.capacity(), 4, "rounded up to a power of two");
        for i in 0..4 {
            tx.push(i).unwrap();
        }
        assert_eq!(tx.push(99), Err(99), "full: the value comes back");
        assert_eq!(tx.free_slots(), 0);
        assert_eq!(rx.pop(), Some(0));
        assert_eq!(rx.pop(), Some(1));
        tx.push(4).unwrap();
        tx.push(5).unwrap();
        assert_eq!(tx.push(6), Err(6));
        let rest: Vec<u32> = std::iter::from_fn(|| rx.pop()).collect();
        assert_eq!(rest, [2, 3, 4, 5]);
        assert!(rx.is_empty());
        assert_eq!(rx.pop(), None);
        assert_eq!(tx.free_slots(), 4);
    }

    #[test]
    fn two_threads_see_every_value_once_in_order() {
        #[derive(Clone, Copy)]
        struct Big {
            n: u64,
            fill: [u64; 31],
        }
        const N: u64 = 200_000;
        let (mut tx, mut rx) = frame_ring::<Big>(64);
        let producer = std::thread::spawn(move || {
            let mut dropped = 0u64;
            let mut n = 0;
            while n < N {
                match tx.push(Big { n, fill: [n; 31] }) {
                    Ok(()) => n += 1,
                    Err(_) => {
                        dropped += 1;
                        std::thread::yield_now();
                    }
                }
            }
            dropped
        });
        let mut expected = 0;
        while expected < N {
            match rx.pop() {
                Some(v) => {
                    assert_eq!(v.n, expected);
                    assert!(v.fill.iter().all(|f| *f == expected), "torn value");
                    expected += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.pop().map(|v| v.n), None);
    }
}
