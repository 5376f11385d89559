//! The few Linux calls the harness needs that std does not offer, each behind a safe
//! wrapper: CPU pinning (`sched_setaffinity`), CLOCK_REALTIME in nanoseconds, UDP socket
//! options (big buffers, kernel receive timestamps), batched datagram I/O
//! (`sendmmsg`/`recvmmsg` with `SCM_TIMESTAMPNS`), and an epoll set with nanosecond
//! timeouts (`epoll_pwait2`). All `unsafe` of the crate lives here.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Pins the calling thread to `cores` (threads it spawns afterwards, and processes it
/// starts, inherit the mask).
pub fn pin_current_thread(cores: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is its empty set.
    let mut set: libc::cpu_set_t = unsafe { zeroed() };
    for core in cores {
        if *core >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("core {core} is beyond CPU_SETSIZE"),
            ));
        }
        // SAFETY: the index was checked against the set's size.
        unsafe { libc::CPU_SET(*core, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; the set is a valid cpu_set_t of the given size.
    let result = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The cores this process may run on.
pub fn allowed_cores() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { zeroed() };
    // SAFETY: pid 0 is the calling thread; the set has the size passed.
    let result = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: the index is within the set.
        .filter(|core| unsafe { libc::CPU_ISSET(*core, &set) })
        .collect())
}

/// CLOCK_REALTIME in nanoseconds (the clock of kernel receive timestamps).
pub fn realtime_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    timespec_ns(&now)
}

fn timespec_ns(time: &libc::timespec) -> u64 {
    u64::try_from(time.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(time.tv_nsec).unwrap_or(0))
}

fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is one c_int, passed with its size.
    let result = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes a generator socket ready: non-blocking, `buffer_bytes` of send and receive
/// buffer (forced past `rmem_max` when privileged), kernel receive timestamps.
pub fn prepare_socket(socket: &UdpSocket, buffer_bytes: usize) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let fd = socket.as_raw_fd();
    let bytes = libc::c_int::try_from(buffer_bytes).unwrap_or(libc::c_int::MAX);
    if set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).is_err() {
        set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)?;
    }
    if set_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, bytes).is_err() {
        set_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes)?;
    }
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// An IPv4 socket address in the kernel's form.
pub fn sockaddr_in(address: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: address.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*address.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Sends `packets[i]` to `destinations[i]` in one `sendmmsg` per call, until all are sent or
/// the socket would block; returns how many were sent.
pub fn send_batch<P: AsRef<[u8]>>(
    socket: &UdpSocket,
    packets: &[P],
    destinations: &[libc::sockaddr_in],
) -> io::Result<usize> {
    const MAX: usize = 64;
    let count = packets.len().min(destinations.len()).min(MAX);
    // SAFETY: iovec and mmsghdr are plain data; zeroed is a valid empty value.
    let mut iovecs: [libc::iovec; MAX] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut headers: [libc::mmsghdr; MAX] = unsafe { zeroed() };
    for (index, (packet, destination)) in packets.iter().zip(destinations).take(count).enumerate() {
        let (Some(iovec), Some(header)) = (iovecs.get_mut(index), headers.get_mut(index)) else {
            break;
        };
        let packet = packet.as_ref();
        iovec.iov_base = packet.as_ptr() as *mut libc::c_void;
        iovec.iov_len = packet.len();
        header.msg_hdr.msg_name = (destination as *const libc::sockaddr_in) as *mut libc::c_void;
        header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        header.msg_hdr.msg_iov = iovec;
        header.msg_hdr.msg_iovlen = 1;
    }
    let mut sent = 0usize;
    while sent < count {
        let remaining = headers.get_mut(sent..count).unwrap_or_default();
        // SAFETY: every header points at a live iovec, packet and destination borrowed for
        // the duration of the call; the length passed is the slice's.
        let result = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                remaining.as_mut_ptr(),
                remaining.len() as libc::c_uint,
                0,
            )
        };
        if result < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => Ok(sent),
                _ if sent > 0 => Ok(sent),
                _ => Err(error),
            };
        }
        sent += result as usize;
    }
    Ok(sent)
}

/// Receive buffers for `recvmmsg`: `capacity` datagrams of up to `datagram_len` bytes, each
/// with room for its kernel timestamp.
pub struct ReceiveBatch {
    buffers: Vec<u8>,
    datagram_len: usize,
    controls: Vec<u64>,
    lengths: Vec<usize>,
    stamps: Vec<Option<u64>>,
    received: usize,
}

/// 8-byte words of control buffer per datagram (a cmsghdr and a timespec need 32 bytes).
const CONTROL_WORDS: usize = 8;

impl ReceiveBatch {
    pub fn new(capacity: usize, datagram_len: usize) -> ReceiveBatch {
        ReceiveBatch {
            buffers: vec![0u8; capacity * datagram_len],
            datagram_len,
            controls: vec![0u64; capacity * CONTROL_WORDS],
            lengths: vec![0; capacity],
            stamps: vec![None; capacity],
            received: 0,
        }
    }

    /// Reads up to the batch's capacity of waiting datagrams (one `recvmmsg`, not
    /// waiting); returns how many. `Ok(0)`: nothing waiting.
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        const MAX: usize = 64;
        let capacity = self.lengths.len().min(MAX);
        // SAFETY: iovec and mmsghdr are plain data; zeroed is a valid empty value.
        let mut iovecs: [libc::iovec; MAX] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; MAX] = unsafe { zeroed() };
        let datagram_len = self.datagram_len;
        for ((iovec, header), (buffer, control)) in iovecs
            .iter_mut()
            .zip(headers.iter_mut())
            .zip(
                self.buffers
                    .chunks_exact_mut(datagram_len)
                    .zip(self.controls.chunks_exact_mut(CONTROL_WORDS)),
            )
            .take(capacity)
        {
            iovec.iov_base = buffer.as_mut_ptr().cast();
            iovec.iov_len = buffer.len();
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = control.as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = std::mem::size_of_val(control);
        }
        self.received = 0;
        let result = loop {
            // SAFETY: every header points at live buffers owned by self (or the local
            // iovecs) for the duration of the call; vlen is at most the array's length.
            let result = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    headers.as_mut_ptr(),
                    capacity as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if result >= 0 {
                break result as usize;
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                // An ICMP error for an earlier send is reported (and cleared) here.
                io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(error),
            }
        };
        for (index, header) in headers.iter().take(result).enumerate() {
            if let Some(length) = self.lengths.get_mut(index) {
                *length = (header.msg_len as usize).min(datagram_len);
            }
            if let Some(stamp) = self.stamps.get_mut(index) {
                *stamp = receive_timestamp(&header.msg_hdr);
            }
        }
        self.received = result;
        Ok(result)
    }

    /// The `index`-th datagram of the last [`ReceiveBatch::receive`] and its kernel
    /// receive time (CLOCK_REALTIME ns), if the kernel attached one.
    pub fn datagram(&self, index: usize) -> Option<(&[u8], Option<u64>)> {
        if index >= self.received {
            return None;
        }
        let length = *self.lengths.get(index)?;
        let start = index * self.datagram_len;
        let bytes = self.buffers.get(start..start + length)?;
        Some((bytes, self.stamps.get(index).copied().flatten()))
    }
}

/// The `SCM_TIMESTAMPNS` of a received message, if present.
fn receive_timestamp(message: &libc::msghdr) -> Option<u64> {
    if message.msg_control.is_null() || message.msg_controllen < size_of::<libc::cmsghdr>() {
        return None;
    }
    // SAFETY: the control buffer is the one we passed, its length as the kernel left it;
    // CMSG_FIRSTHDR/NXTHDR stay within it, and the timespec is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(message);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let data = libc::CMSG_DATA(cmsg).cast::<libc::timespec>();
                return Some(timespec_ns(&data.read_unaligned()));
            }
            cmsg = libc::CMSG_NXTHDR(message, cmsg);
        }
    }
    None
}

/// An epoll set of sockets, each registered for reading with a caller-chosen token.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll {
            // SAFETY: fd is a fresh descriptor owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
        })
    }

    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both fds are open; the event is a valid epoll_event.
        let result =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits up to `timeout` (nanosecond precision) for readable sockets; returns their
    /// tokens.
    pub fn wait(&mut self, timeout: Duration, ready: &mut Vec<u64>) -> io::Result<()> {
        ready.clear();
        let timeout = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
        };
        // SAFETY: the events buffer holds `len` entries; the timeout is a valid timespec.
        let count = unsafe {
            libc::epoll_pwait2(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                libc::c_int::try_from(self.events.len()).unwrap_or(libc::c_int::MAX),
                &timeout,
                std::ptr::null(),
            )
        };
        if count < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(error)
            };
        }
        ready.extend(
            self.events
                .iter()
                .take(count as usize)
                .map(|event| event.u64),
        );
        Ok(())
    }
}

/// An IPv4 address of a socket bound to one.
pub fn local_v4(socket: &UdpSocket) -> io::Result<SocketAddrV4> {
    match socket.local_addr()? {
        SocketAddr::V4(address) => Ok(address),
        SocketAddr::V6(address) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{address} is not IPv4"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_go_out_and_come_back_with_timestamps() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        prepare_socket(&sender, 1 << 20).unwrap();
        prepare_socket(&receiver, 1 << 20).unwrap();
        let destination = sockaddr_in(local_v4(&receiver).unwrap());
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 20 + usize::from(i)]).collect();
        let packets: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let before = realtime_ns();
        assert_eq!(
            send_batch(&sender, &packets, &[destination; 10]).unwrap(),
            10
        );

        let mut epoll = Epoll::new(4).unwrap();
        epoll.add(receiver.as_raw_fd(), 7).unwrap();
        let mut ready = Vec::new();
        epoll.wait(Duration::from_secs(2), &mut ready).unwrap();
        assert_eq!(ready, vec![7]);

        let mut batch = ReceiveBatch::new(4, 64);
        let mut got = Vec::new();
        while got.len() < 10 {
            let n = batch.receive(&receiver).unwrap();
            assert!(n > 0 && n <= 4, "{n}");
            for i in 0..n {
                let (bytes, stamp) = batch.datagram(i).unwrap();
                let stamp = stamp.expect("SO_TIMESTAMPNS is on");
                assert!(stamp >= before && stamp <= realtime_ns());
                got.push(bytes.to_vec());
            }
            assert!(batch.datagram(n).is_none());
        }
        assert_eq!(got, payloads);
        assert_eq!(batch.receive(&receiver).unwrap(), 0, "nothing left");
        epoll.wait(Duration::from_millis(1), &mut ready).unwrap();
        assert!(ready.is_empty());
    }

    #[test]
    fn pins_and_reports_cores() {
        let cores = allowed_cores().unwrap();
        assert!(!cores.is_empty());
        let first = cores[0];
        std::thread::spawn(move || {
            pin_current_thread(&[first]).unwrap();
            assert_eq!(allowed_cores().unwrap(), vec![first]);
        })
        .join()
        .unwrap();
        assert!(pin_current_thread(&[usize::MAX]).is_err());
    }

    #[test]
    fn clock_is_realtime() {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let ours = realtime_ns();
        assert!(ours.abs_diff(since_epoch) < 1_000_000_000);
    }
}
