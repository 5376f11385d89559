//! RTCP through real sockets: a test peer with an RTP socket and an RTCP socket beside it
//! sends RTP with known gaps and a sender report; the session's compound report must carry
//! exactly the loss, extended sequence number and LSR of what the peer sent; the peer
//! answers with a receiver report echoing our SR and the session's `QosReport` then shows a
//! plausible round-trip time and the peer's view of our stream. Closing sends a BYE and a
//! final `QosReport` before `SessionClosed`. A second test multiplexes RTCP on the RTP port
//! (RFC 5761) and sends junk RTCP, counted as a drop.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use media::rtcp::{
    ntp_middle, parse_compound, to_short_ntp, Cname, CompoundReport, ReportBlock, RtcpPacket,
    SenderInfo, MAX_REPORT_LEN,
};
use media::rtp::{parse_rtp, RtpHeader};
use shmq::{Codec, Command, Event, Qos, SessionId};
use support::{Control, TempDir};

const PEER_SSRC: u32 = 0x0FEE_D5EE;
const PEER_NTP: u64 = 0xE9AB_CDEF_1234_8000;

/// An RTP socket on an even port and an RTCP socket on the port above.
fn bind_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rtp.local_addr().unwrap().port();
        if !port.is_multiple_of(2) || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
            return (rtp, rtcp);
        }
    }
    panic!("no free even/odd port pair");
}

fn rtp(sequence: u16, timestamp: u32) -> Vec<u8> {
    let mut pkt = vec![0u8; 172];
    RtpHeader {
        marker: false,
        payload_type: 0,
        sequence,
        timestamp,
        ssrc: PEER_SSRC,
    }
    .write(&mut pkt)
    .unwrap();
    pkt[12..].fill(0xFF);
    pkt
}

fn compound(sender: Option<SenderInfo>, block: Option<ReportBlock>) -> Vec<u8> {
    let mut buf = [0u8; MAX_REPORT_LEN];
    let len = CompoundReport {
        ssrc: PEER_SSRC,
        sender,
        block,
        cname: Cname::for_ssrc(PEER_SSRC),
        bye: false,
    }
    .write(&mut buf)
    .unwrap();
    buf[..len].to_vec()
}

/// Receives on `socket` until an RTCP compound arrives (RTP in between is skipped); returns
/// it, its source and when it arrived.
fn receive_rtcp(socket: &UdpSocket, timeout: Duration) -> (Vec<u8>, SocketAddr, Instant) {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, source)) = socket.recv_from(&mut buf) {
            if media::rtcp::is_rtcp(&buf[..n]) {
                return (buf[..n].to_vec(), source, Instant::now());
            }
        }
    }
    panic!("no RTCP within {timeout:?}");
}

/// Waits for a `QosReport` of `session` that `accept`s, skipping other events.
fn wait_qos(control: &mut Control, session: SessionId, accept: impl Fn(&Qos) -> bool) -> Qos {
    let deadline = Instant::now() + Duration::from_secs(12);
    while Instant::now() < deadline {
        if let Some(Event::QosReport { session: s, qos }) =
            control.next_any_event(0, Duration::from_millis(100))
        {
            if s == session && accept(&qos) {
                return qos;
            }
        }
    }
    panic!("no matching QosReport");
}

#[test]
fn reports_carry_what_the_peer_sent_and_its_answer_gives_the_round_trip() {
    let dir = TempDir::new("rtcp");
    let mut control = Control::start(&dir.0, &dir.0, 1, 33000);
    let (peer_rtp, peer_rtcp) = bind_pair();
    let session = SessionId(41);
    let port = control.open(0, session, peer_rtp.local_addr().unwrap(), Codec::Pcmu);
    let our_rtp = SocketAddr::from(([127, 0, 0, 1], port));
    let our_rtcp = SocketAddr::from(([127, 0, 0, 1], port + 1));
    // Our session sends RTP (silence), so its reports are SRs.
    control.send(
        0,
        Command::Silence {
            session,
            play_id: 1,
            duration_ms: 30_000,
        },
    );

    // 101 packets across the sequence wrap, 3 of them lost: 65500..=65535, 0..=64.
    let lost = [65510u16, 65511, 20];
    let mut sent = 0;
    for i in 0..101u32 {
        let sequence = 65500u16.wrapping_add(i as u16);
        if lost.contains(&sequence) {
            continue;
        }
        peer_rtp.send_to(&rtp(sequence, 160 * i), our_rtp).unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(sent, 98);
    let sr_sent = Instant::now();
    let sr = compound(
        Some(SenderInfo {
            ntp: PEER_NTP,
            rtp_timestamp: 160 * 101,
            packet_count: 98,
            octet_count: 98 * 160,
        }),
        None,
    );
    peer_rtcp.send_to(&sr, our_rtcp).unwrap();

    // Our SSRC, from the RTP the peer receives.
    let mut buf = [0u8; 2048];
    peer_rtp
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let (n, _) = peer_rtp.recv_from(&mut buf).unwrap();
    let our_ssrc = parse_rtp(&buf[..n]).unwrap().ssrc;

    // The session's first report: an SR from its RTCP port, with a block about our stream.
    let (report, source, received_at) = receive_rtcp(&peer_rtcp, Duration::from_secs(8));
    assert_eq!(source, our_rtcp, "RTCP comes from the RTP port + 1");
    let packets: Vec<RtcpPacket> = parse_compound(&report).unwrap().collect();
    let RtcpPacket::SenderReport {
        ssrc,
        info,
        mut blocks,
    } = packets[0]
    else {
        panic!("expected an SR first: {packets:?}");
    };
    assert_eq!(ssrc, our_ssrc);
    assert!(info.packet_count > 0 && info.octet_count == info.packet_count * 160);
    let block = blocks.next().expect("a report block");
    assert_eq!(block.ssrc, PEER_SSRC);
    assert_eq!(block.highest_sequence, 65536 + 64, "one wrap, then 64");
    assert_eq!(block.cumulative_lost, 3);
    assert_eq!(block.fraction_lost, (3 * 256 / 101) as u8);
    assert_eq!(block.last_sr, ntp_middle(PEER_NTP));
    let held = to_short_ntp(received_at - sr_sent);
    assert!(
        block.delay_since_last_sr > 0 && block.delay_since_last_sr <= held,
        "DLSR {} within the {held} units since the SR",
        block.delay_since_last_sr
    );
    assert!(matches!(
        packets[1],
        RtcpPacket::SourceDescription { count: 1 }
    ));

    // The peer answers with an RR about our stream, echoing our SR after holding it 30 ms.
    std::thread::sleep(Duration::from_millis(30));
    let rr = compound(
        None,
        Some(ReportBlock {
            ssrc: our_ssrc,
            fraction_lost: 2,
            cumulative_lost: 5,
            highest_sequence: 1,
            jitter: 16,
            last_sr: ntp_middle(info.ntp),
            delay_since_last_sr: to_short_ntp(received_at.elapsed()),
        }),
    );
    peer_rtcp.send_to(&rr, our_rtcp).unwrap();

    let qos = wait_qos(&mut control, session, |q| q.rtt_us > 0);
    assert!(
        qos.rtt_us < 200_000,
        "loopback round trip: {} µs",
        qos.rtt_us
    );
    assert_eq!(qos.rtt_max_us, qos.rtt_us);
    assert_eq!((qos.packets_received, qos.packets_lost), (98, 3));
    assert_eq!(qos.codec, Codec::Pcmu);
    assert!(qos.packets_sent > 0 && !qos.final_report);
    let remote = qos.remote.expect("the peer's view of our stream");
    assert_eq!(
        (remote.fraction_lost, remote.packets_lost, remote.jitter_us),
        (2, 5, 2000)
    );

    // Closing: a last report with BYE, the final QosReport, then SessionClosed.
    control.send(0, Command::CloseSession { session });
    let last = wait_qos(&mut control, session, |q| q.final_report);
    assert_eq!(last.packets_lost, 3);
    assert!(matches!(
        control.expect_event(0, "SessionClosed"),
        Event::SessionClosed { session: s, .. } if s == session
    ));
    // Reports sent meanwhile are still queued at the peer; the BYE is the last compound.
    let bye = loop {
        let (report, _, _) = receive_rtcp(&peer_rtcp, Duration::from_secs(2));
        let has_bye = parse_compound(&report)
            .unwrap()
            .any(|p| matches!(p, RtcpPacket::Bye { .. }));
        if has_bye {
            break report;
        }
    };
    // An SR or an RR, depending on whether RTP left since the previous report.
    assert!(matches!(
        parse_compound(&bye).unwrap().next(),
        Some(RtcpPacket::SenderReport { ssrc, .. } | RtcpPacket::ReceiverReport { ssrc, .. })
            if ssrc == our_ssrc
    ));
    let stats = control.segment.worker_stats(0).snapshot();
    assert_eq!(stats.drops_bad_rtcp, 0);
    control.stop().unwrap();
}

#[test]
fn multiplexed_rtcp_is_answered_on_the_rtp_port_and_junk_is_counted() {
    let dir = TempDir::new("rtcp-mux");
    let mut control = Control::start(&dir.0, &dir.0, 1, 33200);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let session = SessionId(42);
    let port = control.open(0, session, peer.local_addr().unwrap(), Codec::Pcma);
    let our_rtp = SocketAddr::from(([127, 0, 0, 1], port));
    for i in 0..20u16 {
        peer.send_to(&rtp(i, 160 * u32::from(i)), our_rtp).unwrap();
    }
    // RTCP on the RTP port: an SR, then junk in the RTCP range and on the RTCP port.
    let sr = compound(
        Some(SenderInfo {
            ntp: PEER_NTP,
            rtp_timestamp: 0,
            packet_count: 20,
            octet_count: 3200,
        }),
        None,
    );
    peer.send_to(&sr, our_rtp).unwrap();
    peer.send_to(&[0x80, 201, 0, 9, 1, 2], our_rtp).unwrap();
    peer.send_to(
        b"not rtcp at all",
        SocketAddr::from(([127, 0, 0, 1], port + 1)),
    )
    .unwrap();

    // Our report comes back multiplexed: from our RTP port to the peer's.
    let (report, source, _) = receive_rtcp(&peer, Duration::from_secs(8));
    assert_eq!(source, our_rtp);
    let RtcpPacket::ReceiverReport { mut blocks, .. } =
        parse_compound(&report).unwrap().next().unwrap()
    else {
        panic!("nothing sent: an RR");
    };
    let block = blocks.next().unwrap();
    assert_eq!(
        (block.ssrc, block.highest_sequence, block.cumulative_lost),
        (PEER_SSRC, 19, 0)
    );
    assert_eq!(block.last_sr, ntp_middle(PEER_NTP));
    let qos = wait_qos(&mut control, session, |_| true);
    assert_eq!((qos.codec, qos.packets_received), (Codec::Pcma, 20));

    let stats = control.segment.worker_stats(0).snapshot();
    assert_eq!(stats.drops_bad_rtcp, 2, "{stats:?}");
    control.stop().unwrap();
}
