//! The DPDK backend's own per-packet cost (feature `dpdk`): receive → parse → demultiplex
//! → copy out → build the relayed frame (both checksums) in a fresh mbuf → transmit, in
//! bursts of 32, on DPDK's `net_ring` virtual device. That device loops every transmitted
//! frame back to its receive queue through an rte_ring, so the figure is the backend plus a
//! near-free device: a real NIC's poll-mode driver adds its descriptor work, and the media
//! session's relay logic (`Session::forward`, measured in bench/benches/g711.rs) comes on
//! top, so it is measured here too (`session/relay_one_pcmu_packet`), as is the pure frame
//! parse + build alone (no DPDK).
//!
//! `cargo bench -p media --features dpdk --bench dpdk_path`; where the EAL cannot start
//! (no libdpdk, no permission) it says why and measures only the pure part.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use media::packet_io::frame::{
    parse_frame, write_udp_frame, Interface, MacAddress, UdpFrameHeader,
};
use media::packet_io::{DpdkConfig, IoBackend, PacketIo, MAX_DATAGRAM};
use media::rtp::RtpHeader;
use media::session::{PayloadCodec, Received, Session, SessionParams, MAX_PACKET_LEN};

/// Packets in flight on the loop: one receive burst's worth.
const IN_FLIGHT: usize = 32;
/// A 20 ms G.711 RTP packet: 12-byte header and 160 bytes of audio.
const RTP_LEN: usize = 172;
const HOST: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

fn loopback_config() -> DpdkConfig {
    DpdkConfig {
        eal_args: [
            "-l",
            "0",
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
            "--log-level=error",
        ]
        .map(String::from)
        .to_vec(),
        device: "net_ring0".into(),
        ipv4: HOST,
        prefix_len: 24,
        gateway: None,
        rx_ring_size: 1024,
        tx_ring_size: 1024,
        mbuf_pool_size: 8191,
        mbuf_cache_size: 256,
    }
}

/// Two bound ports on the looped-back device, each relaying what it receives to the other,
/// with `IN_FLIGHT` packets circulating. The backend resolves its own address by ARP over
/// the loop first (its request comes back to it and is answered).
fn relay_loop() -> Result<(PacketIo, [SocketAddr; 2]), String> {
    let config = loopback_config();
    let (mut io, _) = PacketIo::open(IoBackend::Dpdk, 2, Some(&config))
        .map_err(|e| format!("the DPDK backend cannot open net_ring0: {e}"))?;
    let ports = [
        SocketAddr::V4(SocketAddrV4::new(HOST, 30000)),
        SocketAddr::V4(SocketAddrV4::new(HOST, 30002)),
    ];
    for (slot, local) in ports.iter().enumerate() {
        io.bind(slot, *local).map_err(|e| e.to_string())?;
    }
    let packet = [0x80u8; RTP_LEN];
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let deadline = Instant::now() + Duration::from_secs(2);
    while io.send(0, ports[1], &packet).is_err() {
        if Instant::now() > deadline {
            return Err("the backend never resolved its own address over net_ring".into());
        }
        io.wait(Instant::now() + Duration::from_millis(1))
            .map_err(|e| e.to_string())?;
        while io.next_datagram(&mut buf).is_some() {}
    }
    // Let the ARP exchange and that first packet go round and drop them, then start the
    // loop with exactly one burst in flight.
    for _ in 0..10 {
        io.wait(Instant::now() + Duration::from_millis(1))
            .map_err(|e| e.to_string())?;
        while io.next_datagram(&mut buf).is_some() {}
    }
    for _ in 0..IN_FLIGHT {
        io.send(0, ports[1], &packet).map_err(|e| e.to_string())?;
    }
    Ok((io, ports))
}

fn relay(c: &mut Criterion, io: &mut PacketIo, ports: [SocketAddr; 2]) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut group = c.benchmark_group("dpdk");
    group.throughput(Throughput::Elements(IN_FLIGHT as u64));
    group.bench_function("net_ring_relay_burst_of_32", |b| {
        b.iter(|| {
            // Hands the queued frames to the device, receives them back.
            io.wait(Instant::now()).unwrap();
            let mut relayed = 0;
            while let Some(datagram) = io.next_datagram(&mut buf) {
                let other = datagram.slot ^ 1;
                let payload = buf.get(..datagram.len).unwrap_or_default();
                if io
                    .send(datagram.slot, ports[other], black_box(payload))
                    .is_ok()
                {
                    relayed += 1;
                }
            }
            assert_eq!(relayed, IN_FLIGHT, "every packet goes round");
        })
    });
    group.finish();
}

fn frames(c: &mut Criterion) {
    let interface = Interface {
        mac: MacAddress([2, 0, 0, 0, 0, 1]),
        ipv4: HOST,
        prefix_len: 24,
        gateway: None,
    };
    let header = UdpFrameHeader {
        source_mac: MacAddress([2, 0, 0, 0, 0, 2]),
        destination_mac: interface.mac,
        source: SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 2), 40000),
        destination: SocketAddrV4::new(HOST, 30000),
        identification: 1,
    };
    let mut frame = vec![0u8; 2048];
    let len = write_udp_frame(&mut frame, &header, &[0x80; RTP_LEN]).unwrap();
    let mut out = vec![0u8; 2048];
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_and_rebuild_172_byte_rtp", |b| {
        b.iter(|| {
            let Ok(media::packet_io::frame::Frame::Udp(d)) =
                parse_frame(black_box(&frame[..len]), &interface)
            else {
                panic!("not UDP");
            };
            write_udp_frame(&mut out, &header, d.payload)
        })
    });
    group.finish();
}

/// What a bridged pair costs per relayed packet besides I/O: the receiving leg's
/// `handle_datagram` (RTP parse, latching) and the other leg's `forward` (re-stamping, copy).
fn session_relay(c: &mut Criterion) {
    let peer = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 2), 40000));
    let other = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 3), 40002));
    let now = Instant::now();
    let leg = |remote| {
        let params = SessionParams::with_random_origin(remote, PayloadCodec::Pcmu, Some(101), 20);
        let mut session = Session::new(params, now).unwrap();
        session.start_relay(|_| {});
        session
    };
    let (mut from, mut to) = (leg(peer), leg(other));
    let mut packet = [0u8; RTP_LEN];
    RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: 0,
        timestamp: 0,
        ssrc: 0x1234_5678,
    }
    .write(&mut packet)
    .unwrap();
    let mut out = vec![0u8; MAX_PACKET_LEN];
    let mut sequence = 0u16;
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(1));
    group.bench_function("relay_one_pcmu_packet", |b| {
        b.iter(|| {
            sequence = sequence.wrapping_add(1);
            packet[2..4].copy_from_slice(&sequence.to_be_bytes());
            packet[4..8].copy_from_slice(&(u32::from(sequence) * 160).to_be_bytes());
            let Received::Rtp { packet, kind } =
                from.handle_datagram(now, peer, black_box(&packet), |_| {})
            else {
                panic!("not RTP");
            };
            to.forward(now, &packet, kind, &mut out).map(|t| t.len)
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    frames(&mut criterion);
    session_relay(&mut criterion);
    match relay_loop() {
        Ok((mut io, ports)) => relay(&mut criterion, &mut io, ports),
        Err(why) => eprintln!("DPDK relay benchmark not run: {why}"),
    }
    criterion.final_summary();
}
