//! A one-shot monotonic timerfd, so a worker's epoll wakes at a send deadline with
//! sub-millisecond precision (epoll's own timeout has millisecond granularity).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A non-blocking `CLOCK_MONOTONIC` timerfd armed one shot at a time.
#[derive(Debug)]
pub struct DeadlineTimer {
    fd: OwnedFd,
}

impl DeadlineTimer {
    pub fn new() -> io::Result<DeadlineTimer> {
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(DeadlineTimer {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Arms the timer to expire once, `after` from now (zero: as soon as possible).
    pub fn arm(&self, after: Duration) -> io::Result<()> {
        // A zero it_value would disarm the timer: use the smallest positive delay instead.
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(after.subsec_nanos() as i32),
            },
        };
        // SAFETY: valid fd and a properly initialised itimerspec.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Clears an expiry so the descriptor stops being readable; returns expirations seen.
    pub fn clear(&self) -> u64 {
        let mut count = [0u8; 8];
        // SAFETY: reading 8 bytes into an 8-byte buffer from our own fd.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
        if n == 8 {
            u64::from_ne_bytes(count)
        } else {
            0
        }
    }
}

impl AsRawFd for DeadlineTimer {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_readable(fd: RawFd, timeout_ms: i32) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) == 1 }
    }

    #[test]
    fn fires_once_after_the_delay() {
        let timer = DeadlineTimer::new().unwrap();
        assert_eq!(timer.clear(), 0, "not armed yet");
        let start = Instant::now();
        timer.arm(Duration::from_micros(5_500)).unwrap();
        assert!(wait_readable(timer.as_raw_fd(), 1000));
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_micros(5_500), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
        assert_eq!(timer.clear(), 1);
        assert!(!wait_readable(timer.as_raw_fd(), 20), "one shot");
        timer.arm(Duration::ZERO).unwrap();
        assert!(
            wait_readable(timer.as_raw_fd(), 1000),
            "zero means now, not never"
        );
    }
}
