//! Socket addresses to and from the kernel's `sockaddr_in`/`sockaddr_in6` bytes, for the
//! batched and asynchronous system calls that take raw `msghdr`s.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Bytes reserved for one address: a `sockaddr_in6` (the larger of the two).
pub const SOCKADDR_LEN: usize = std::mem::size_of::<libc::sockaddr_in6>();

/// A socket address in kernel form, sized for IPv6, with the length actually used.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct RawSockAddr {
    pub storage: libc::sockaddr_in6,
    pub len: libc::socklen_t,
}

impl RawSockAddr {
    pub fn zeroed() -> RawSockAddr {
        RawSockAddr {
            // SAFETY: sockaddr_in6 is plain old data; all zeroes is a valid (unspecified) value.
            storage: unsafe { std::mem::zeroed() },
            len: SOCKADDR_LEN as libc::socklen_t,
        }
    }

    /// Writes `addr` in kernel form.
    pub fn set(&mut self, addr: SocketAddr) {
        match addr {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: a sockaddr_in fits at the start of a sockaddr_in6 (16 ≤ 28 bytes) and
                // both are plain old data.
                unsafe {
                    std::ptr::write_unaligned(
                        std::ptr::addr_of_mut!(self.storage).cast::<libc::sockaddr_in>(),
                        sin,
                    );
                }
                self.len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(v6) => {
                self.storage = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                self.len = SOCKADDR_LEN as libc::socklen_t;
            }
        }
    }

    /// The address this holds, if it is IPv4 or IPv6.
    pub fn get(&self) -> Option<SocketAddr> {
        // SAFETY: the storage is SOCKADDR_LEN initialised bytes of plain old data.
        let bytes = unsafe {
            std::slice::from_raw_parts(std::ptr::addr_of!(self.storage).cast::<u8>(), SOCKADDR_LEN)
        };
        parse_sockaddr(bytes.get(..self.len as usize)?)
    }
}

/// Parses a kernel `sockaddr_in`/`sockaddr_in6` from its bytes (as the kernel wrote them into
/// a receive buffer); `None` for other families or short input.
pub fn parse_sockaddr(bytes: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]);
    let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
    if i32::from(family) == libc::AF_INET {
        let ip: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
        Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    } else if i32::from(family) == libc::AF_INET6 {
        let flowinfo = u32::from_ne_bytes(bytes.get(4..8)?.try_into().ok()?);
        let ip: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
        let scope_id = u32::from_ne_bytes(bytes.get(24..28)?.try_into().ok()?);
        Some(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            flowinfo,
            scope_id,
        )))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_kernel_form() {
        for text in [
            "192.0.2.7:4000",
            "[2001:db8::1]:5004",
            "127.0.0.1:0",
            "[::1]:65535",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            let mut raw = RawSockAddr::zeroed();
            raw.set(addr);
            assert_eq!(raw.get(), Some(addr), "{text}");
        }
        let scoped = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 7, 3));
        let mut raw = RawSockAddr::zeroed();
        raw.set(scoped);
        assert_eq!(raw.get(), Some(scoped));
    }

    #[test]
    fn short_or_foreign_bytes_are_not_addresses() {
        assert_eq!(parse_sockaddr(&[]), None);
        assert_eq!(parse_sockaddr(&(libc::AF_INET as u16).to_ne_bytes()), None);
        let mut unix = [0u8; 28];
        unix[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        assert_eq!(parse_sockaddr(&unix), None);
    }

    #[test]
    fn std_sockets_see_the_same_addresses() {
        // What a real recvfrom reports matches what parse_sockaddr reads from the kernel form.
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 4];
        let (_, from) = b.recv_from(&mut buf).unwrap();
        let mut raw = RawSockAddr::zeroed();
        raw.set(from);
        assert_eq!(raw.get(), Some(a.local_addr().unwrap()));
    }
}
