//! Packet I/O for one media worker: the sockets (or, under DPDK, the bound ports) of its
//! sessions, waiting, receiving and sending, behind one interface with three backends.
//!
//! - [`uring`]: io_uring. One multishot `recvmsg` per socket draws from a provided-buffer ring,
//!   so a whole loop iteration's receives, across every socket, cost one `io_uring_enter`; the
//!   worker's wake-up descriptors are multishot polls and the deadline is the enter call's own
//!   timeout. Sends are immediate non-blocking `sendto`s (in order; a full buffer drops). The
//!   default where the kernel allows it.
//! - [`epoll`]: epoll through mio, `recvmmsg` batches per ready socket, sends queued and
//!   flushed with `sendmmsg`, a timerfd for sub-millisecond deadlines. The fallback, chosen
//!   automatically when io_uring is unavailable, or by configuration.
//! - `dpdk` (cargo feature `dpdk`): a DPDK port owned by the worker, which is its own
//!   Ethernet/ARP/IPv4/UDP stack ([`frame`], [`neighbours`]); sessions bind a local port
//!   instead of a socket. Configured by a [`DpdkConfig`] (firmware-cfg/).
//!
//! The worker sees the same calls either way: [`PacketIo::bind`] for a session's local
//! address, [`PacketIo::wait`] until a deadline, then [`PacketIo::next_datagram`] until it
//! returns `None`, [`PacketIo::send`] as packets are due; queued sends leave by the next
//! `wait` at the latest. Nothing here allocates after construction.

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod dpdk_config;
pub mod epoll;
pub mod frame;
pub mod neighbours;
pub mod sockaddr;
pub mod uring;

pub use dpdk_config::{DpdkConfig, DpdkConfigError};

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::RawFd;
use std::str::FromStr;
use std::time::Instant;

/// Largest datagram delivered whole; longer ones are dropped (and counted) as no RTP we
/// carry comes near it.
pub const MAX_DATAGRAM: usize = 2048;

/// Which packet I/O backend a worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoBackend {
    /// io_uring if the kernel allows it, else epoll.
    #[default]
    Auto,
    IoUring,
    Epoll,
    /// A DPDK port (needs the `dpdk` feature and a [`DpdkConfig`]).
    Dpdk,
}

impl IoBackend {
    /// The name configuration uses.
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::Auto => "auto",
            IoBackend::IoUring => "io_uring",
            IoBackend::Epoll => "epoll",
            IoBackend::Dpdk => "dpdk",
        }
    }
}

impl FromStr for IoBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<IoBackend, String> {
        match s {
            "auto" => Ok(IoBackend::Auto),
            "io_uring" | "io-uring" | "uring" => Ok(IoBackend::IoUring),
            "epoll" => Ok(IoBackend::Epoll),
            "dpdk" => Ok(IoBackend::Dpdk),
            other => Err(format!(
                "unknown I/O backend {other:?} (expected auto, io_uring, epoll or dpdk)"
            )),
        }
    }
}

/// The wake-up descriptors that fired during a [`PacketIo::wait`], as a bit per waker id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wakes(u8);

impl Wakes {
    pub fn contains(self, id: u8) -> bool {
        id < 8 && self.0 & (1 << id) != 0
    }

    fn insert(&mut self, id: u8) {
        if id < 8 {
            self.0 |= 1 << id;
        }
    }
}

/// One received datagram, copied into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// The session slot whose socket received it.
    pub slot: usize,
    pub source: SocketAddr,
    /// Bytes written at the start of the caller's buffer.
    pub len: usize,
}

/// Errors the backend met on its own (asynchronous completions, batched calls), since the
/// last [`PacketIo::take_errors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoErrors {
    pub send: u64,
    /// Receive failures; under DPDK also frames for this host that reached no session
    /// (malformed, fragments, unknown ports).
    pub receive: u64,
    /// Datagrams longer than [`MAX_DATAGRAM`], dropped.
    pub oversized: u64,
}

/// A worker's packet I/O: one of the backends.
pub enum PacketIo {
    Uring(Box<uring::UringIo>),
    Epoll(Box<epoll::EpollIo>),
    #[cfg(feature = "dpdk")]
    Dpdk(Box<dpdk::DpdkIo>),
}

impl PacketIo {
    /// Opens the backend for up to `capacity` sockets. `Auto` tries io_uring first and falls
    /// back to epoll, returning why in the second value. `Dpdk` opens the port `dpdk`
    /// describes (and initialises the EAL, the first time).
    pub fn open(
        backend: IoBackend,
        capacity: usize,
        dpdk: Option<&DpdkConfig>,
    ) -> io::Result<(PacketIo, Option<io::Error>)> {
        match backend {
            IoBackend::Dpdk => {
                let Some(config) = dpdk else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the dpdk backend needs a DPDK port configuration",
                    ));
                };
                open_dpdk(config, capacity)
            }
            IoBackend::IoUring => Ok((
                PacketIo::Uring(Box::new(uring::UringIo::new(capacity)?)),
                None,
            )),
            IoBackend::Epoll => Ok((
                PacketIo::Epoll(Box::new(epoll::EpollIo::new(capacity)?)),
                None,
            )),
            IoBackend::Auto => match uring::UringIo::new(capacity) {
                Ok(io) => Ok((PacketIo::Uring(Box::new(io)), None)),
                Err(why) => Ok((
                    PacketIo::Epoll(Box::new(epoll::EpollIo::new(capacity)?)),
                    Some(why),
                )),
            },
        }
    }

    /// The backend's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            PacketIo::Uring(_) => "io_uring",
            PacketIo::Epoll(_) => "epoll",
            #[cfg(feature = "dpdk")]
            PacketIo::Dpdk(_) => "dpdk",
        }
    }

    /// Watches `fd` (an eventfd or the like, non-blocking): when it becomes readable, `wait`
    /// returns with `id` (0..8) in its [`Wakes`]. The caller drains the descriptor.
    pub fn add_waker(&mut self, fd: RawFd, id: u8) -> io::Result<()> {
        match self {
            PacketIo::Uring(io) => io.add_waker(fd, id),
            PacketIo::Epoll(io) => io.add_waker(fd, id),
            #[cfg(feature = "dpdk")]
            PacketIo::Dpdk(io) => io.add_waker(fd, id),
        }
    }

    /// Receives datagrams to `local` for session slot `slot` (< capacity): the kernel
    /// backends bind a UDP socket to it, DPDK binds the port in its own table.
    /// `AddrInUse` means the port is taken.
    pub fn bind(&mut self, slot: usize, local: SocketAddr) -> io::Result<()> {
        match self {
            #[cfg(feature = "dpdk")]
            PacketIo::Dpdk(io) => io.bind(slot, local),
            _ => self.add_socket(slot, UdpSocket::bind(local)?),
        }
    }

    /// Takes a bound socket for session slot `slot` (< capacity) and starts receiving on it
    /// (kernel backends only).
    pub fn add_socket(&mut self, slot: usize, socket: UdpSocket) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        match self {
            PacketIo::Uring(io) => io.add_socket(slot, socket),
            PacketIo::Epoll(io) => io.add_socket(slot, socket),
            #[cfg(feature = "dpdk")]
            PacketIo::Dpdk(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the DPDK backend has no kernel sockets (bind a local address instead)",
            )),
        }
    }

    /// Stops receiving on the slot's socket (or bound port) and closes it; datagrams not yet
    /// delivered from it are dropped.
    pub fn remove_socket(&mut self, slot: usize) {
        match self {
            PacketIo::Uring(io) => io.remove_socket(slot),
            PacketIo::Epoll(io) => io.remove_socket(slot),
            #[cfg(feature = "dpdk")]
            PacketIo::Dpdk(io) => io.remove_socket(slot),
        }
    }

    /// Pushes pending sends to the kernel, then waits until a datagram arrives, a waker fires
    /// or `deadline` passes (returns at once if something is already waiting).
    pub fn wait(&mut self, deadline: Instant) -> io::Result<Wakes> {
        match self {
            PacketIo::Uring(io) => io.wait(deadline),
            PacketIo::Epoll(io) => io.wait(deadline),
            #[cfg(feature = "dpdk")]
            PacketIo::Dpdk(io) => io.wait(deadline),
        }
    }

    /// The next datagram received since the last `wait`, copied into `buf` (at least
    /// [`MAX_DATAGRAM`] bytes); `None` when there are no more.
    pub fn next_datagram(&mut self, buf: &mut [u8]) -> Option<Datagram> {
        match self {
            PacketIo::Uring(io) => io.next_datagram(buf),
            PacketIo::Epoll(io) => io.next_datagram(buf),
            #[cfg(feature = "dpdk")]
            PacketIo::Dpdk(io) => io.next_datagram(buf),
        }
    }

    /// Sends `datagram` out of the slot's socket to `destination` (at once, or queued until
    /// the next `wait` at the latest). An error means it was not sent.
    pub fn send(
        &mut self,
        slot: usize,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> io::Result<()> {
        match self {
            PacketIo::Uring(io) => io.send(slot, destination, datagram),
            PacketIo::Epoll(io) => io.send(slot, destination, datagram),
            #[cfg(feature = "dpdk")]
            PacketIo::Dpdk(io) => io.send(slot, destination, datagram),
        }
    }

    /// The errors met since the last call.
    pub fn take_errors(&mut self) -> IoErrors {
        match self {
            PacketIo::Uring(io) => std::mem::take(&mut io.errors),
            PacketIo::Epoll(io) => std::mem::take(&mut io.errors),
            #[cfg(feature = "dpdk")]
            PacketIo::Dpdk(io) => std::mem::take(&mut io.errors),
        }
    }
}

#[cfg(feature = "dpdk")]
fn open_dpdk(config: &DpdkConfig, capacity: usize) -> io::Result<(PacketIo, Option<io::Error>)> {
    Ok((
        PacketIo::Dpdk(Box::new(dpdk::DpdkIo::new(config, capacity)?)),
        None,
    ))
}

#[cfg(not(feature = "dpdk"))]
fn open_dpdk(_: &DpdkConfig, _: usize) -> io::Result<(PacketIo, Option<io::Error>)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "this build has no DPDK support (cargo feature `dpdk`)",
    ))
}

#[cfg(test)]
mod tests;
