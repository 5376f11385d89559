//! Both backends through real sockets: the same behaviour is asserted of each.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use super::*;
use shmq::Doorbell;

fn backends() -> Vec<PacketIo> {
    let mut all = vec![PacketIo::open(IoBackend::Epoll, 64, None).unwrap().0];
    match PacketIo::open(IoBackend::IoUring, 64, None) {
        Ok((io, _)) => all.push(io),
        // The kernel refuses io_uring (too old, or disabled by sysctl/seccomp): say so.
        Err(why) => eprintln!("io_uring backend not tested here: {why}"),
    }
    all
}

fn bound() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// Waits (up to 2 s) until `count` datagrams were delivered; returns them with their bytes.
fn collect(io: &mut PacketIo, count: usize) -> Vec<(Datagram, Vec<u8>)> {
    let mut got = Vec::new();
    let mut buf = [0u8; MAX_DATAGRAM];
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.len() < count && Instant::now() < deadline {
        io.wait(Instant::now() + Duration::from_millis(50)).unwrap();
        while let Some(d) = io.next_datagram(&mut buf) {
            got.push((d, buf[..d.len].to_vec()));
        }
    }
    got
}

#[test]
fn receives_from_many_sockets_and_sends_back() {
    for mut io in backends() {
        let name = io.name();
        let sockets: Vec<UdpSocket> = (0..8).map(|_| bound()).collect();
        let ports: Vec<_> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        for (slot, socket) in sockets.into_iter().enumerate() {
            io.add_socket(slot * 3, socket).unwrap();
        }
        let peer = bound();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // 40 datagrams: five per socket, more than one recvmmsg batch in total.
        for round in 0..5u8 {
            for (i, port) in ports.iter().enumerate() {
                peer.send_to(&[i as u8, round], port).unwrap();
            }
        }
        let got = collect(&mut io, 40);
        assert_eq!(got.len(), 40, "{name}");
        for (datagram, bytes) in &got {
            assert_eq!(datagram.slot, usize::from(bytes[0]) * 3, "{name}");
            assert_eq!(datagram.source, peer.local_addr().unwrap(), "{name}");
        }
        // Per socket, in order.
        for i in 0..8u8 {
            let rounds: Vec<u8> = got
                .iter()
                .filter(|(_, b)| b[0] == i)
                .map(|(_, b)| b[1])
                .collect();
            assert_eq!(rounds, vec![0, 1, 2, 3, 4], "{name} socket {i}");
        }
        // Sends leave from the slot's own port, by the next wait at the latest.
        for slot in [0usize, 21] {
            io.send(slot, peer.local_addr().unwrap(), &[slot as u8; 100])
                .unwrap();
        }
        io.wait(Instant::now()).unwrap();
        let mut buf = [0u8; 200];
        let mut from = Vec::new();
        for _ in 0..2 {
            let (n, source) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(n, 100, "{name}");
            from.push((source, buf[0]));
        }
        from.sort_by_key(|(_, b)| *b);
        assert_eq!(from, vec![(ports[0], 0), (ports[7], 21)], "{name}");
        // A slot without a socket cannot send.
        assert!(
            io.send(1, peer.local_addr().unwrap(), b"x").is_err(),
            "{name}"
        );
        assert_eq!(io.take_errors(), IoErrors::default(), "{name}");
    }
}

#[test]
fn wakers_fire_and_deadlines_end_the_wait() {
    for mut io in backends() {
        let name = io.name();
        let bell = Doorbell::new().unwrap();
        io.add_waker(bell.as_raw_fd(), 3).unwrap();
        // Nothing to do: the wait ends at its deadline.
        let start = Instant::now();
        let wakes = io.wait(start + Duration::from_millis(30)).unwrap();
        assert!(!wakes.contains(3), "{name}");
        assert!(
            start.elapsed() >= Duration::from_millis(25),
            "{name}: {:?}",
            start.elapsed()
        );
        // Rung before the wait: it returns at once with the waker's id, again and again.
        for _ in 0..3 {
            bell.ring();
            let wakes = io.wait(Instant::now() + Duration::from_secs(5)).unwrap();
            assert!(wakes.contains(3), "{name}");
            bell.drain();
        }
    }
}

#[test]
fn removed_sockets_close_and_oversized_datagrams_are_dropped() {
    for mut io in backends() {
        let name = io.name();
        let socket = bound();
        let port = socket.local_addr().unwrap();
        io.add_socket(5, socket).unwrap();
        let peer = bound();
        peer.send_to(&vec![7u8; MAX_DATAGRAM + 100], port).unwrap();
        peer.send_to(b"small", port).unwrap();
        let got = collect(&mut io, 1);
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].1, b"small", "{name}");
        assert_eq!(io.take_errors().oversized, 1, "{name}");
        // Removed: the port can be bound again soon (the kernel lets go of it).
        io.remove_socket(5);
        io.wait(Instant::now() + Duration::from_millis(10)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let again = loop {
            match UdpSocket::bind(port) {
                Ok(socket) => break socket,
                Err(_) if Instant::now() < deadline => {
                    io.wait(Instant::now() + Duration::from_millis(10)).unwrap();
                }
                Err(e) => panic!("{name}: port still held: {e}"),
            }
        };
        // A new socket in the same slot receives; nothing stale from the old one arrives.
        io.add_socket(5, again).unwrap();
        peer.send_to(b"fresh", port).unwrap();
        let got = collect(&mut io, 1);
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].1, b"fresh", "{name}");
    }
}

#[test]
fn backend_names_parse() {
    assert_eq!("auto".parse::<IoBackend>(), Ok(IoBackend::Auto));
    assert_eq!("io_uring".parse::<IoBackend>(), Ok(IoBackend::IoUring));
    assert_eq!("epoll".parse::<IoBackend>(), Ok(IoBackend::Epoll));
    assert_eq!("dpdk".parse::<IoBackend>(), Ok(IoBackend::Dpdk));
    assert!("netmap".parse::<IoBackend>().is_err());
    for backend in [
        IoBackend::Auto,
        IoBackend::IoUring,
        IoBackend::Epoll,
        IoBackend::Dpdk,
    ] {
        assert_eq!(backend.name().parse::<IoBackend>(), Ok(backend));
    }
}

#[test]
fn the_dpdk_backend_needs_its_configuration_and_the_feature() {
    let error = PacketIo::open(IoBackend::Dpdk, 8, None).err().unwrap();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    #[cfg(not(feature = "dpdk"))]
    {
        let config = DpdkConfig {
            eal_args: Vec::new(),
            device: "net_null0".into(),
            ipv4: std::net::Ipv4Addr::new(10, 0, 0, 1),
            prefix_len: 24,
            gateway: None,
            rx_ring_size: 1024,
            tx_ring_size: 1024,
            mbuf_pool_size: 8191,
            mbuf_cache_size: 256,
        };
        let error = PacketIo::open(IoBackend::Dpdk, 8, Some(&config))
            .err()
            .unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::Unsupported);
    }
}

#[test]
fn bind_opens_a_socket_on_the_kernel_backends_and_reports_ports_in_use() {
    for mut io in backends() {
        let name = io.name();
        let probe = bound();
        let local = probe.local_addr().unwrap();
        let error = io.bind(1, local).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{name}");
        drop(probe);
        io.bind(1, local).unwrap();
        let peer = bound();
        peer.send_to(b"to a bound port", local).unwrap();
        let got = collect(&mut io, 1);
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].0.slot, 1, "{name}");
        assert_eq!(got[0].1, b"to a bound port", "{name}");
    }
}
