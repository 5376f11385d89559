//! The epoll backend (through mio): edge-triggered readiness per socket, `recvmmsg` in
//! batches of [`RECV_BATCH`] from each ready socket, sends queued and flushed with
//! `sendmmsg` (one call per run of sends from the same socket), and a timerfd so deadlines
//! have sub-millisecond precision.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::sockaddr::RawSockAddr;
use super::{Datagram, IoErrors, Wakes, MAX_DATAGRAM};
use crate::timer::DeadlineTimer;

/// Datagrams one `recvmmsg` call takes.
pub const RECV_BATCH: usize = 16;
/// Sends queued before a flush is forced.
pub const SEND_BATCH: usize = 64;
/// The longest a wait sleeps before returning (the caller's deadlines are usually sooner).
const MAX_WAIT: Duration = Duration::from_millis(100);
/// Waker tokens sit at the top of the token space, below the timer's.
const TIMER_TOKEN: Token = Token(usize::MAX);
const WAKER_TOKEN_BASE: usize = usize::MAX - 16;

struct Buffer([u8; MAX_DATAGRAM]);

/// One queued send: the bytes, where to, from which slot's socket.
struct QueuedSend {
    slot: usize,
    destination: RawSockAddr,
    len: usize,
    bytes: Buffer,
}

pub struct EpollIo {
    poll: Poll,
    events: Events,
    timer: DeadlineTimer,
    armed_for: Option<Instant>,
    sockets: Vec<Option<mio::net::UdpSocket>>,
    /// Slots that became readable in the last wait, and the next one to read.
    ready: Vec<usize>,
    ready_next: usize,
    /// The current receive batch: from `batch_slot`, `batch_len` datagrams, next is `batch_next`.
    recv_buffers: Box<[Buffer]>,
    recv_addresses: Box<[RawSockAddr]>,
    recv_lengths: [usize; RECV_BATCH],
    recv_flags: [i32; RECV_BATCH],
    batch_slot: usize,
    batch_len: usize,
    batch_next: usize,
    sends: Box<[QueuedSend]>,
    sends_len: usize,
    pub(super) errors: IoErrors,
}

impl EpollIo {
    pub fn new(capacity: usize) -> io::Result<EpollIo> {
        let poll = Poll::new()?;
        let timer = DeadlineTimer::new()?;
        poll.registry().register(
            &mut SourceFd(&timer.as_raw_fd()),
            TIMER_TOKEN,
            Interest::READABLE,
        )?;
        Ok(EpollIo {
            poll,
            events: Events::with_capacity(1024),
            timer,
            armed_for: None,
            sockets: (0..capacity).map(|_| None).collect(),
            ready: Vec::with_capacity(capacity),
            ready_next: 0,
            recv_buffers: (0..RECV_BATCH).map(|_| Buffer([0; MAX_DATAGRAM])).collect(),
            recv_addresses: (0..RECV_BATCH).map(|_| RawSockAddr::zeroed()).collect(),
            recv_lengths: [0; RECV_BATCH],
            recv_flags: [0; RECV_BATCH],
            batch_slot: 0,
            batch_len: 0,
            batch_next: 0,
            sends: (0..SEND_BATCH)
                .map(|_| QueuedSend {
                    slot: 0,
                    destination: RawSockAddr::zeroed(),
                    len: 0,
                    bytes: Buffer([0; MAX_DATAGRAM]),
                })
                .collect(),
            sends_len: 0,
            errors: IoErrors::default(),
        })
    }

    pub fn add_waker(&mut self, fd: RawFd, id: u8) -> io::Result<()> {
        if id >= 8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "waker id must be < 8",
            ));
        }
        self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(WAKER_TOKEN_BASE + usize::from(id)),
            Interest::READABLE,
        )
    }

    pub fn add_socket(&mut self, slot: usize, socket: UdpSocket) -> io::Result<()> {
        if slot >= WAKER_TOKEN_BASE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "slot out of range",
            ));
        }
        let entry = self
            .sockets
            .get_mut(slot)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "slot out of range"))?;
        let mut socket = mio::net::UdpSocket::from_std(socket);
        self.poll
            .registry()
            .register(&mut socket, Token(slot), Interest::READABLE)?;
        *entry = Some(socket);
        Ok(())
    }

    pub fn remove_socket(&mut self, slot: usize) {
        // Queued sends from this socket go out first: they were due.
        self.flush();
        if let Some(mut socket) = self.sockets.get_mut(slot).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut socket);
        }
        if self.batch_slot == slot {
            self.batch_len = 0;
            self.batch_next = 0;
        }
    }

    pub fn wait(&mut self, deadline: Instant) -> io::Result<Wakes> {
        self.flush();
        let now = Instant::now();
        if self.armed_for != Some(deadline) {
            self.timer.arm(deadline.saturating_duration_since(now))?;
            self.armed_for = Some(deadline);
        }
        self.ready.clear();
        self.ready_next = 0;
        self.batch_len = 0;
        self.batch_next = 0;
        let timeout =
            deadline.saturating_duration_since(now).min(MAX_WAIT) + Duration::from_millis(1);
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Wakes::default()),
            Err(e) => return Err(e),
        }
        let mut wakes = Wakes::default();
        for event in self.events.iter() {
            match event.token() {
                TIMER_TOKEN => {
                    self.timer.clear();
                    self.armed_for = None;
                }
                Token(token) if token >= WAKER_TOKEN_BASE => {
                    wakes.insert((token - WAKER_TOKEN_BASE) as u8);
                }
                Token(slot) => {
                    if self.ready.len() < self.ready.capacity() {
                        self.ready.push(slot);
                    }
                }
            }
        }
        Ok(wakes)
    }

    pub fn next_datagram(&mut self, buf: &mut [u8]) -> Option<Datagram> {
        loop {
            while self.batch_next < self.batch_len {
                let i = self.batch_next;
                self.batch_next += 1;
                let len = self.recv_lengths.get(i).copied().unwrap_or(0);
                if self
                    .recv_flags
                    .get(i)
                    .is_some_and(|f| f & libc::MSG_TRUNC != 0)
                {
                    self.errors.oversized += 1;
                    continue;
                }
                let Some(source) = self.recv_addresses.get(i).and_then(RawSockAddr::get) else {
                    self.errors.receive += 1;
                    continue;
                };
                let (Some(bytes), Some(out)) = (
                    self.recv_buffers.get(i).and_then(|b| b.0.get(..len)),
                    buf.get_mut(..len),
                ) else {
                    self.errors.oversized += 1;
                    continue;
                };
                out.copy_from_slice(bytes);
                return Some(Datagram {
                    slot: self.batch_slot,
                    source,
                    len,
                });
            }
            let slot = *self.ready.get(self.ready_next)?;
            match self.receive_batch(slot) {
                Ok(n) => {
                    self.batch_slot = slot;
                    self.batch_len = n;
                    self.batch_next = 0;
                    // A short batch drained the socket: the next arrival is a new edge.
                    if n < RECV_BATCH {
                        self.ready_next += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready_next += 1,
                // ICMP errors surface here (ECONNREFUSED...); keep reading.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => self.errors.receive += 1,
                Err(_) => {
                    self.errors.receive += 1;
                    self.ready_next += 1;
                }
            }
        }
    }

    /// One `recvmmsg` from the slot's socket into the batch buffers.
    fn receive_batch(&mut self, slot: usize) -> io::Result<usize> {
        let Some(Some(socket)) = self.sockets.get(slot) else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        // The headers point into the boxed buffers, which never move; rebuilt per call so no
        // pointer outlives this function.
        let mut iovecs: [libc::iovec; RECV_BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self
                .recv_buffers
                .get_mut(i)
                .map_or(std::ptr::null_mut(), |b| b.0.as_mut_ptr().cast()),
            iov_len: MAX_DATAGRAM,
        });
        // SAFETY: mmsghdr is plain old data; zeroed is a valid empty header.
        let mut headers: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
        for (i, header) in headers.iter_mut().enumerate() {
            if let (Some(address), Some(iovec)) =
                (self.recv_addresses.get_mut(i), iovecs.get_mut(i))
            {
                address.len = super::sockaddr::SOCKADDR_LEN as libc::socklen_t;
                header.msg_hdr.msg_name = std::ptr::addr_of_mut!(address.storage).cast();
                header.msg_hdr.msg_namelen = address.len;
                header.msg_hdr.msg_iov = iovec;
                header.msg_hdr.msg_iovlen = 1;
            }
        }
        // SAFETY: every header points at a live buffer and address of the right sizes.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, header) in headers.iter().take(n).enumerate() {
            if let (Some(len), Some(flags), Some(address)) = (
                self.recv_lengths.get_mut(i),
                self.recv_flags.get_mut(i),
                self.recv_addresses.get_mut(i),
            ) {
                *len = (header.msg_len as usize).min(MAX_DATAGRAM);
                *flags = header.msg_hdr.msg_flags;
                address.len = header.msg_hdr.msg_namelen;
            }
        }
        Ok(n)
    }

    pub fn send(
        &mut self,
        slot: usize,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> io::Result<()> {
        if self.sockets.get(slot).is_none_or(Option::is_none) {
            return Err(io::ErrorKind::NotConnected.into());
        }
        if self.sends_len == SEND_BATCH {
            self.flush();
        }
        let entry = self
            .sends
            .get_mut(self.sends_len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
        let bytes = entry
            .bytes
            .0
            .get_mut(..datagram.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        bytes.copy_from_slice(datagram);
        entry.slot = slot;
        entry.len = datagram.len();
        entry.destination.set(destination);
        self.sends_len += 1;
        Ok(())
    }

    /// Sends the queue: one `sendmmsg` per run of consecutive sends from the same socket.
    pub fn flush(&mut self) {
        let mut start = 0;
        while start < self.sends_len {
            let slot = self.sends.get(start).map_or(0, |s| s.slot);
            let mut end = start + 1;
            while end < self.sends_len && self.sends.get(end).is_some_and(|s| s.slot == slot) {
                end += 1;
            }
            self.send_run(slot, start, end);
            start = end;
        }
        self.sends_len = 0;
    }

    fn send_run(&mut self, slot: usize, start: usize, end: usize) {
        let count = end - start;
        let Some(Some(socket)) = self.sockets.get(slot) else {
            self.errors.send += count as u64;
            return;
        };
        let fd = socket.as_raw_fd();
        let mut iovecs: [libc::iovec; SEND_BATCH] = std::array::from_fn(|_| libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        });
        // SAFETY: mmsghdr is plain old data; zeroed is a valid empty header.
        let mut headers: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
        for (i, entry) in self
            .sends
            .get_mut(start..end)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let (Some(iovec), Some(header)) = (iovecs.get_mut(i), headers.get_mut(i)) {
                iovec.iov_base = entry.bytes.0.as_mut_ptr().cast();
                iovec.iov_len = entry.len;
                header.msg_hdr.msg_name = std::ptr::addr_of_mut!(entry.destination.storage).cast();
                header.msg_hdr.msg_namelen = entry.destination.len;
                header.msg_hdr.msg_iov = iovec;
                header.msg_hdr.msg_iovlen = 1;
            }
        }
        let mut sent = 0;
        while sent < count {
            let Some(first) = headers.get_mut(sent..count) else {
                break;
            };
            // SAFETY: the headers point at queued bytes and addresses that live until return.
            let n = unsafe {
                libc::sendmmsg(fd, first.as_mut_ptr(), (count - sent) as libc::c_uint, 0)
            };
            if n > 0 {
                sent += n as usize;
                continue;
            }
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first message failed (full buffer, unreachable...): count it, go on.
            self.errors.send += 1;
            sent += 1;
        }
    }
}
