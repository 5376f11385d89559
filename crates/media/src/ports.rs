//! RTP port allocation: each worker gets a disjoint slice of the configured range and
//! hands out its even ports round-robin; a session's RTCP socket takes the odd port above
//! (the worker binds both in the `acquire` closure, so a pair half-taken elsewhere is skipped).
//!
//! Round-robin rather than lowest-free keeps a just-closed port out of use for as long as
//! possible, so late packets of an old call don't land in a new one.

use std::io;

/// A worker's share of the RTP port range: `count` even ports starting at `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSlice {
    pub first: u16,
    pub count: u16,
}

impl PortSlice {
    /// Splits the even ports of `min..=max` into `workers` disjoint slices; slice `index`.
    /// Every port of the range is in exactly one slice; slices differ in size by at most one.
    pub fn for_worker(min: u16, max: u16, workers: usize, index: usize) -> PortSlice {
        let first_even = u32::from(min) + u32::from(min) % 2;
        let evens = if first_even > u32::from(max) {
            0
        } else {
            (u32::from(max) - first_even) / 2 + 1
        };
        let workers = workers.max(1) as u64;
        let index = (index as u64).min(workers);
        let start = (u64::from(evens) * index / workers) as u32;
        let end = (u64::from(evens) * (index + 1).min(workers) / workers) as u32;
        PortSlice {
            first: u16::try_from(first_even + 2 * start).unwrap_or(u16::MAX),
            count: u16::try_from(end.saturating_sub(start)).unwrap_or(0),
        }
    }

    /// The `i`-th port of the slice.
    pub fn port(&self, i: usize) -> Option<u16> {
        if i >= usize::from(self.count) {
            return None;
        }
        u16::try_from(u32::from(self.first) + 2 * i as u32).ok()
    }
}

/// Why no port could be had.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("every port of the slice is in use")]
    NoPortAvailable,
    #[error("binding port {port}: {source}")]
    Bind { port: u16, source: io::Error },
}

/// The ports of one slice and which of them this worker holds.
#[derive(Debug)]
pub struct PortPool {
    slice: PortSlice,
    in_use: Vec<bool>,
    cursor: usize,
}

impl PortPool {
    pub fn new(slice: PortSlice) -> PortPool {
        PortPool {
            slice,
            in_use: vec![false; usize::from(slice.count)],
            cursor: 0,
        }
    }

    pub fn slice(&self) -> PortSlice {
        self.slice
    }

    pub fn in_use(&self) -> usize {
        self.in_use.iter().filter(|u| **u).count()
    }

    /// Takes the next free port that `bind` succeeds on. Ports another process holds
    /// (`AddrInUse`) are skipped; any other bind error is returned at once.
    pub fn acquire<T>(
        &mut self,
        mut bind: impl FnMut(u16) -> io::Result<T>,
    ) -> Result<(u16, T), PortError> {
        let len = self.in_use.len();
        for step in 0..len {
            let i = (self.cursor + step) % len;
            if self.in_use.get(i).copied().unwrap_or(true) {
                continue;
            }
            let Some(port) = self.slice.port(i) else {
                continue;
            };
            match bind(port) {
                Ok(bound) => {
                    self.in_use[i] = true;
                    self.cursor = (i + 1) % len;
                    return Ok((port, bound));
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(source) => return Err(PortError::Bind { port, source }),
            }
        }
        Err(PortError::NoPortAvailable)
    }

    /// Gives a port back (ports outside the slice are ignored).
    pub fn release(&mut self, port: u16) {
        let Some(offset) = port.checked_sub(self.slice.first) else {
            return;
        };
        if offset % 2 != 0 {
            return;
        }
        if let Some(flag) = self.in_use.get_mut(usize::from(offset / 2)) {
            *flag = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn slices_are_disjoint_even_and_cover_the_range() {
        for (min, max, workers) in [
            (10000u16, 10099u16, 3usize),
            (10001, 10010, 2),
            (20000, 20000, 1),
            (65530, 65535, 2),
        ] {
            let mut all = Vec::new();
            for w in 0..workers {
                let s = PortSlice::for_worker(min, max, workers, w);
                for i in 0..usize::from(s.count) {
                    all.push(s.port(i).unwrap());
                }
            }
            let expected: Vec<u16> = (min..=max).filter(|p| p % 2 == 0).collect();
            assert_eq!(all, expected, "range {min}..={max} over {workers}");
        }
        let s = PortSlice::for_worker(10000, 10099, 3, 1);
        assert_eq!((s.first, s.count), (10032, 17));
        let empty = PortSlice::for_worker(10001, 10001, 1, 0);
        assert_eq!(empty.count, 0);
    }

    #[test]
    fn acquire_round_robin_skips_ports_in_use_elsewhere() {
        // Find a free even port pair area by binding a real socket on an ephemeral port.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        let slice = PortSlice {
            first: base,
            count: 3,
        };
        // Another "process" holds the middle port.
        let squatter = UdpSocket::bind(("127.0.0.1", base + 2));
        let mut pool = PortPool::new(slice);
        let bind = |port: u16| UdpSocket::bind(("127.0.0.1", port));
        let (p0, s0) = pool.acquire(bind).unwrap();
        assert_eq!(p0, base);
        let (p1, _s1) = pool.acquire(bind).unwrap();
        if squatter.is_ok() {
            assert_eq!(p1, base + 4, "the squatted port is skipped");
            assert!(matches!(
                pool.acquire(bind),
                Err(PortError::NoPortAvailable)
            ));
        }
        drop(s0);
        pool.release(p0);
        pool.release(1); // outside the slice: ignored
        let (again, _s) = pool.acquire(bind).unwrap();
        assert_eq!(again, base);
    }

    #[test]
    fn other_bind_errors_are_reported() {
        let mut pool = PortPool::new(PortSlice {
            first: 30000,
            count: 4,
        });
        // 192.0.2.1 (TEST-NET-1) is not a local address: EADDRNOTAVAIL.
        let err = pool
            .acquire(|port| UdpSocket::bind(("192.0.2.1", port)))
            .unwrap_err();
        assert!(
            matches!(err, PortError::Bind { port: 30000, .. }),
            "{err:?}"
        );
        assert_eq!(pool.in_use(), 0);
    }
}
