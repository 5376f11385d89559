//! The io_uring backend. Each session socket has one multishot `recvmsg` in flight that
//! draws buffers from a provided-buffer ring; the worker's wake-up descriptors are multishot
//! polls; and [`UringIo::wait`] is a single `io_uring_enter` that sleeps until a completion
//! or the deadline (its own timeout argument, so no timerfd). One enter per loop iteration
//! carries all of a worker's receives, across all of its sockets.
//!
//! Sends are plain non-blocking `sendto` calls, in order. Queued `sendmsg` submissions were
//! tried first: when a socket's send buffer filled, io_uring retried them later while newer
//! ones went out at once, so a stream's packets left out of order and sat queued for most of
//! a second under overload (`switchboard bench`, 150,000 packets/s and up); a full buffer must
//! drop the packet now, as the epoll backend does.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant;

use io_uring::types::{BufRingEntry, Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use super::sockaddr::{parse_sockaddr, RawSockAddr, SOCKADDR_LEN};
use super::{Datagram, IoErrors, Wakes, MAX_DATAGRAM};

/// The provided-buffer group the receives draw from.
const BUFFER_GROUP: u16 = 1;
/// Room in a receive buffer for the kernel's `io_uring_recvmsg_out` header and the address.
const RECV_HEADER_ROOM: usize = 16 + SOCKADDR_LEN;
/// One receive buffer: header, address, then up to MAX_DATAGRAM bytes (+1 to see truncation).
const RECV_BUFFER_LEN: usize = RECV_HEADER_ROOM + MAX_DATAGRAM + 1;
const SUBMISSION_ENTRIES: u32 = 1024;

/// What a completion belongs to: the top byte of its user data.
const OP_RECV: u64 = 1;
const OP_WAKE: u64 = 3;
const OP_CANCEL: u64 = 4;

fn user_data(op: u64, generation: u32, index: u32) -> u64 {
    (op << 56) | (u64::from(generation & 0x00FF_FFFF) << 32) | u64::from(index)
}

fn split_user_data(data: u64) -> (u64, u32, u32) {
    (data >> 56, ((data >> 32) & 0x00FF_FFFF) as u32, data as u32)
}

/// The provided-buffer ring: a page-aligned ring of buffer descriptors shared with the kernel,
/// and the buffers themselves.
struct BufferRing {
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    entries: u16,
    tail: u16,
    slab: Box<[u8]>,
}

impl BufferRing {
    fn new(entries: u16) -> io::Result<BufferRing> {
        let ring_bytes = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping; checked for failure below.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut buffers = BufferRing {
            ring: ring.cast(),
            ring_bytes,
            entries,
            tail: 0,
            slab: vec![0u8; usize::from(entries) * RECV_BUFFER_LEN].into_boxed_slice(),
        };
        for bid in 0..entries {
            buffers.push(bid);
        }
        buffers.publish();
        Ok(buffers)
    }

    /// Puts buffer `bid` back at the tail (visible to the kernel after `publish`).
    fn push(&mut self, bid: u16) {
        if bid >= self.entries {
            return;
        }
        let index = usize::from(self.tail & (self.entries - 1));
        let addr = self
            .slab
            .as_mut_ptr()
            .wrapping_add(usize::from(bid) * RECV_BUFFER_LEN) as u64;
        // SAFETY: index < entries, inside the mapping; the kernel only reads entries
        // between its head and our published tail, and this one is beyond the tail.
        let entry = unsafe { &mut *self.ring.add(index) };
        entry.set_addr(addr);
        entry.set_len(RECV_BUFFER_LEN as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes pushed buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field of the first entry is a u16 inside the mapping, shared with
        // the kernel; it is written only here, as an atomic with release ordering.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    fn buffer(&self, bid: u16, len: usize) -> Option<&[u8]> {
        let start = usize::from(bid) * RECV_BUFFER_LEN;
        self.slab.get(start..start + len.min(RECV_BUFFER_LEN))
    }
}

impl Drop for BufferRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once (the ring is dropped after the
        // io_uring instance that used it: see the field order of UringIo).
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_bytes);
        }
    }
}

struct SocketEntry {
    socket: Option<UdpSocket>,
    generation: u32,
    /// Whether its multishot receive is in flight.
    armed: bool,
}

/// A receive completion waiting to be delivered.
#[derive(Clone, Copy)]
struct RecvCompletion {
    user_data: u64,
    result: i32,
    flags: u32,
}

pub struct UringIo {
    // Field order matters for drop: the ring (and the kernel's use of the buffers) goes first.
    ring: IoUring,
    buffers: BufferRing,
    /// The header template of every multishot receive (name length, no control data).
    recv_header: Box<libc::msghdr>,
    sockets: Vec<SocketEntry>,
    received: Vec<RecvCompletion>,
    received_next: usize,
    /// The destination of the send being made (kept to avoid rebuilding it per call).
    send_address: RawSockAddr,
    wakers: [Option<RawFd>; 8],
    pub(super) errors: IoErrors,
}

// SAFETY: the raw pointers inside (the buffer ring mapping, the receive header) point into
// memory this value owns; it is used by one thread at a time (built by the supervisor, then
// moved to its worker thread).
unsafe impl Send for UringIo {}

impl UringIo {
    pub fn new(capacity: usize) -> io::Result<UringIo> {
        let capacity = capacity.max(1);
        let mut builder = IoUring::builder();
        builder
            .setup_cqsize((capacity as u32).saturating_mul(8).clamp(4096, 1 << 20))
            .setup_coop_taskrun();
        let ring = builder.build(SUBMISSION_ENTRIES).or_else(|_| {
            // Older kernels: without COOP_TASKRUN.
            IoUring::builder()
                .setup_cqsize((capacity as u32).saturating_mul(8).clamp(4096, 1 << 20))
                .build(SUBMISSION_ENTRIES)
        })?;
        if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_nodrop() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks EXT_ARG or NODROP (kernel older than 5.11)",
            ));
        }
        // One buffer per socket, as a power of two, within the kernel's limit: the pool is
        // shared, and a worker's sockets come in pairs of which only the RTP one carries
        // traffic (its RTCP socket gets a datagram every few seconds), so that is two per
        // busy socket.
        let entries = capacity.next_power_of_two().clamp(256, 32768) as u16;
        let buffers = BufferRing::new(entries)?;
        // SAFETY: the ring memory is valid for `entries` descriptors and outlives its
        // registration (unregistered when the io_uring instance is dropped, before `buffers`).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                buffers.ring as u64,
                entries,
                BUFFER_GROUP,
                0,
            )?;
        }
        // SAFETY: msghdr is plain old data; zeroed is an empty header.
        let mut recv_header: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_header.msg_namelen = SOCKADDR_LEN as libc::socklen_t;
        Ok(UringIo {
            ring,
            buffers,
            recv_header,
            sockets: (0..capacity)
                .map(|_| SocketEntry {
                    socket: None,
                    generation: 0,
                    armed: false,
                })
                .collect(),
            received: Vec::with_capacity((capacity * 8).clamp(4096, 1 << 20)),
            received_next: 0,
            send_address: RawSockAddr::zeroed(),
            wakers: [None; 8],
            errors: IoErrors::default(),
        })
    }

    /// Queues a submission, making room by submitting if the queue is full.
    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..2 {
            // SAFETY: every entry pushed here points only at memory this value owns and keeps
            // alive until its completion (receive header, send pool, wakers' descriptors are
            // the caller's and outlive the registration).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "submission queue full",
        ))
    }

    pub fn add_waker(&mut self, fd: RawFd, id: u8) -> io::Result<()> {
        let slot = self
            .wakers
            .get_mut(usize::from(id))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "waker id must be < 8"))?;
        *slot = Some(fd);
        self.arm_waker(id)
    }

    fn arm_waker(&mut self, id: u8) -> io::Result<()> {
        let Some(Some(fd)) = self.wakers.get(usize::from(id)).copied() else {
            return Ok(());
        };
        let entry = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data(OP_WAKE, 0, u32::from(id)));
        self.push(&entry)
    }

    pub fn add_socket(&mut self, slot: usize, socket: UdpSocket) -> io::Result<()> {
        let entry = self
            .sockets
            .get_mut(slot)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "slot out of range"))?;
        entry.socket = Some(socket);
        entry.generation = entry.generation.wrapping_add(1) & 0x00FF_FFFF;
        entry.armed = false;
        self.arm_receive(slot)
    }

    fn arm_receive(&mut self, slot: usize) -> io::Result<()> {
        let Some(entry) = self.sockets.get_mut(slot) else {
            return Ok(());
        };
        let Some(socket) = entry.socket.as_ref() else {
            return Ok(());
        };
        if entry.armed {
            return Ok(());
        }
        entry.armed = true;
        let sqe = opcode::RecvMsgMulti::new(
            Fd(socket.as_raw_fd()),
            &*self.recv_header as *const libc::msghdr,
            BUFFER_GROUP,
        )
        .build()
        .user_data(user_data(OP_RECV, entry.generation, slot as u32));
        self.push(&sqe)
    }

    pub fn remove_socket(&mut self, slot: usize) {
        let Some(entry) = self.sockets.get_mut(slot) else {
            return;
        };
        let Some(socket) = entry.socket.take() else {
            return;
        };
        let receive = user_data(OP_RECV, entry.generation, slot as u32);
        let armed = std::mem::replace(&mut entry.armed, false);
        entry.generation = entry.generation.wrapping_add(1) & 0x00FF_FFFF;
        // Sends already queued from this socket are issued before it closes; its receive is
        // cancelled (the kernel keeps the file until then, so the port frees soon after).
        if armed {
            let cancel = opcode::AsyncCancel::new(receive)
                .build()
                .user_data(user_data(OP_CANCEL, 0, slot as u32));
            let _ = self.push(&cancel);
        }
        if self.ring.submit().is_err() {
            self.errors.send += 1;
        }
        drop(socket);
    }

    pub fn wait(&mut self, deadline: Instant) -> io::Result<Wakes> {
        self.received.clear();
        self.received_next = 0;
        let ready = !self.ring.completion().is_empty();
        let result = if ready {
            self.ring.submit()
        } else {
            let timeout = Timespec::from(deadline.saturating_duration_since(Instant::now()));
            let args = SubmitArgs::new().timespec(&timeout);
            self.ring.submitter().submit_with_args(1, &args)
        };
        match result {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        self.drain_completions()
    }

    /// Takes every completion: wakes and sends are handled now, receives kept for
    /// `next_datagram` (their buffers stay out of the ring until then).
    fn drain_completions(&mut self) -> io::Result<Wakes> {
        let mut wakes = Wakes::default();
        let mut rearm_wakers = [false; 8];
        let mut completion = self.ring.completion();
        completion.sync();
        for cqe in &mut completion {
            let (op, _, index) = split_user_data(cqe.user_data());
            match op {
                OP_RECV => {
                    if self.received.len() < self.received.capacity() {
                        self.received.push(RecvCompletion {
                            user_data: cqe.user_data(),
                            result: cqe.result(),
                            flags: cqe.flags(),
                        });
                    } else if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                        // No room to keep it (cannot happen with the sizes above): drop it.
                        self.buffers.push(bid);
                        self.errors.receive += 1;
                    }
                }
                OP_WAKE => {
                    let id = index as u8;
                    wakes.insert(id);
                    if !cqueue::more(cqe.flags()) {
                        if let Some(flag) = rearm_wakers.get_mut(usize::from(id)) {
                            *flag = true;
                        }
                    }
                }
                _ => {}
            }
        }
        drop(completion);
        self.buffers.publish();
        for (id, rearm) in rearm_wakers.iter().enumerate() {
            if *rearm {
                self.arm_waker(id as u8)?;
            }
        }
        Ok(wakes)
    }

    pub fn next_datagram(&mut self, buf: &mut [u8]) -> Option<Datagram> {
        while let Some(completion) = self.received.get(self.received_next).copied() {
            self.received_next += 1;
            let (_, generation, slot) = split_user_data(completion.user_data);
            let slot = slot as usize;
            let current = self
                .sockets
                .get(slot)
                .is_some_and(|entry| entry.generation == generation && entry.socket.is_some());
            if !cqueue::more(completion.flags) {
                // The multishot receive ended (out of buffers, an error, cancelled): re-arm
                // if the socket is still ours.
                if let Some(entry) = self.sockets.get_mut(slot) {
                    if entry.generation == generation {
                        entry.armed = false;
                    }
                }
                if current && self.arm_receive(slot).is_err() {
                    self.errors.receive += 1;
                }
            }
            let Some(bid) = cqueue::buffer_select(completion.flags) else {
                if completion.result < 0
                    && completion.result != -libc::ENOBUFS
                    && completion.result != -libc::ECANCELED
                {
                    self.errors.receive += 1;
                }
                continue;
            };
            let delivered = if current && completion.result > 0 {
                self.copy_out(bid, completion.result as usize, slot, buf)
            } else {
                None
            };
            self.buffers.push(bid);
            self.buffers.publish();
            if delivered.is_some() {
                return delivered;
            }
        }
        None
    }

    fn copy_out(&mut self, bid: u16, used: usize, slot: usize, buf: &mut [u8]) -> Option<Datagram> {
        let buffer = self.buffers.buffer(bid, used)?;
        let Ok(message) = RecvMsgOut::parse(buffer, &self.recv_header) else {
            self.errors.receive += 1;
            return None;
        };
        if message.is_payload_truncated() || message.payload_data().len() > MAX_DATAGRAM {
            self.errors.oversized += 1;
            return None;
        }
        let Some(source) = parse_sockaddr(message.name_data()) else {
            self.errors.receive += 1;
            return None;
        };
        let payload = message.payload_data();
        let out = buf.get_mut(..payload.len())?;
        out.copy_from_slice(payload);
        Some(Datagram {
            slot,
            source,
            len: payload.len(),
        })
    }

    pub fn send(
        &mut self,
        slot: usize,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> io::Result<()> {
        let fd = match self.sockets.get(slot).and_then(|e| e.socket.as_ref()) {
            Some(socket) => socket.as_raw_fd(),
            None => return Err(io::ErrorKind::NotConnected.into()),
        };
        self.send_address.set(destination);
        loop {
            // SAFETY: a plain sendto with a live buffer and address.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    datagram.as_ptr().cast(),
                    datagram.len(),
                    libc::MSG_DONTWAIT,
                    std::ptr::addr_of!(self.send_address.storage).cast(),
                    self.send_address.len,
                )
            };
            if sent >= 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}
