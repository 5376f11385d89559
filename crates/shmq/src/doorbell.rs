//! Doorbells: non-blocking eventfds one plane rings after pushing records so the other can
//! sleep in poll/epoll instead of spinning. [`DoorbellSet`] holds one command doorbell and one
//! event doorbell per worker.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// An eventfd (`EFD_NONBLOCK | EFD_CLOEXEC`). `ring` adds one to its counter and makes it
/// readable; `drain` reads and clears the counter.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    /// A new doorbell with its counter at zero.
    pub fn new() -> io::Result<Doorbell> {
        // SAFETY: plain syscall; the returned fd (if any) is ours alone.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: eventfd returned a fresh, owned descriptor.
        Ok(Doorbell {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Wraps a descriptor received from the peer, making sure it is non-blocking.
    pub(crate) fn from_received_fd(fd: OwnedFd) -> io::Result<Doorbell> {
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_NONBLOCK == 0 {
            // SAFETY: as above.
            let rc =
                unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Doorbell { fd })
    }

    /// Wakes whoever waits on this doorbell. Never blocks; cannot meaningfully fail (the
    /// counter would have to reach 2^64 - 1 unread).
    pub fn ring(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a live u64 to a descriptor we own.
            let written = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    (&one as *const u64).cast::<libc::c_void>(),
                    std::mem::size_of::<u64>(),
                )
            };
            if written < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
    }

    /// Clears the doorbell; returns how many rings it had collected (0 if none).
    pub fn drain(&self) -> u64 {
        let mut count: u64 = 0;
        loop {
            // SAFETY: reads at most 8 bytes into a live u64 from a descriptor we own.
            let read = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut count as *mut u64).cast::<libc::c_void>(),
                    std::mem::size_of::<u64>(),
                )
            };
            if read == std::mem::size_of::<u64>() as isize {
                return count;
            }
            if read < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return 0;
        }
    }

    /// Blocks until the doorbell has been rung or `timeout` passes (`None`: forever); returns
    /// whether it is ringing. Does not drain it. For simple threads; event loops should
    /// register [`Doorbell::as_raw_fd`] with their poller instead.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        poll_readable(self.fd.as_raw_fd(), timeout)
    }

    /// The eventfd, for registering with epoll/mio/tokio (readable = rung).
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<Doorbell> for OwnedFd {
    fn from(doorbell: Doorbell) -> OwnedFd {
        doorbell.fd
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One command doorbell and one event doorbell per worker, index = worker.
#[derive(Debug)]
pub struct DoorbellSet {
    /// Rung by the control plane after pushing to worker i's command ring.
    pub commands: Vec<Doorbell>,
    /// Rung by worker i after pushing to its event ring.
    pub events: Vec<Doorbell>,
}

impl DoorbellSet {
    /// Fresh doorbells for `workers` workers.
    pub fn new(workers: usize) -> io::Result<DoorbellSet> {
        Ok(DoorbellSet {
            commands: (0..workers)
                .map(|_| Doorbell::new())
                .collect::<io::Result<_>>()?,
            events: (0..workers)
                .map(|_| Doorbell::new())
                .collect::<io::Result<_>>()?,
        })
    }

    /// Number of workers this set serves (if both halves agree).
    pub fn workers(&self) -> usize {
        self.commands.len().min(self.events.len())
    }
}

/// Polls `fd` for readability for up to `timeout` (`None`: forever), retrying on EINTR with
/// the remaining time.
pub(crate) fn poll_readable(fd: RawFd, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                // Round up so a sub-millisecond wait does not become a busy poll.
                let ms = left.as_micros().div_ceil(1000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        let mut pollfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        return Ok(ready > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_then_drain_counts_rings() {
        let bell = Doorbell::new().unwrap();
        assert_eq!(bell.drain(), 0);
        assert!(!bell.wait(Some(Duration::from_millis(1))).unwrap());
        bell.ring();
        bell.ring();
        bell.ring();
        assert!(bell.wait(Some(Duration::ZERO)).unwrap());
        assert_eq!(bell.drain(), 3);
        assert_eq!(bell.drain(), 0);
        assert!(!bell.wait(Some(Duration::ZERO)).unwrap());
    }

    #[test]
    fn doorbell_fds_are_nonblocking_and_cloexec() {
        let bell = Doorbell::new().unwrap();
        let fd = bell.as_raw_fd();
        let status = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_ne!(status & libc::O_NONBLOCK, 0);
        let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0);
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert_eq!(link.to_string_lossy(), "anon_inode:[eventfd]");
    }

    #[test]
    fn a_ring_from_another_thread_wakes_a_waiter() {
        let set = DoorbellSet::new(2).unwrap();
        assert_eq!(set.workers(), 2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                set.events[1].ring();
            });
            assert!(set.events[1].wait(Some(Duration::from_secs(10))).unwrap());
        });
        assert_eq!(set.events[1].drain(), 1);
        assert_eq!(set.events[0].drain(), 0);
        assert_eq!(set.commands[1].drain(), 0);
    }
}
