//! Fuzz target: the media plane's receive path — `media::rtp::parse_rtp`, the
//! RFC 4733 `media::dtmf::DtmfDetector`, `media::session::Session::handle_datagram`
//! and the bridge's `Session::forward` into a PCMA leg.
//!
//! Input: datagrams, each preceded by one length byte (a short last one takes
//! what is left); bit 7 of the length byte set means "from another address".
//!
//! Beyond "never panics": a parsed packet's payload lies inside the datagram
//! and after its header, its fields are the header bytes, and rewriting it with
//! `RtpHeader::write` parses back to the same packet; the detector reports only
//! the sixteen DTMF digits and a repeated packet is a duplicate; a session
//! (telephone-event PT 101) reports exactly the digits a lone detector sees on
//! the packets from the latched peer (the latch moving with the latched stream's
//! SSRC), and counts every datagram once.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use media::dtmf::{DtmfDetector, DtmfOutcome};
use media::rtp::{parse_rtp, RtpHeader, RTP_HEADER_LEN};
use media::session::{PayloadCodec, Received, RtpKind, Session, SessionEvent, SessionParams};

const DTMF_PT: u8 = 101;

fuzz_target!(|data: &[u8]| {
    let peer: SocketAddr = "192.0.2.20:4000".parse().expect("literal");
    let stranger: SocketAddr = "192.0.2.99:4002".parse().expect("literal");
    let params = SessionParams {
        remote: peer,
        codec: PayloadCodec::Pcmu,
        dtmf_payload_type: Some(DTMF_PT),
        ptime_ms: 20,
        ssrc: 1,
        initial_sequence: 2,
        initial_timestamp: 3,
    };
    let mut session = Session::new(params, Instant::now()).expect("valid params");
    // The bridge peer: A-law, telephone events on PT 96.
    let mut peer_leg = Session::new(
        SessionParams {
            codec: PayloadCodec::Pcma,
            dtmf_payload_type: Some(96),
            ssrc: 0xB0B,
            ..params
        },
        Instant::now(),
    )
    .expect("valid params");
    peer_leg.start_relay(|_| {});
    let mut out = [0u8; 2048];
    let mut lone_detector = DtmfDetector::new();
    let mut latched: Option<(SocketAddr, u32)> = None;
    let now = Instant::now();
    let mut expected_digits = Vec::new();
    let mut session_digits = Vec::new();
    let mut datagrams = 0u64;

    let mut rest = data;
    while let Some((&len_byte, after)) = rest.split_first() {
        let len = usize::from(len_byte & 0x7F).min(after.len());
        let (datagram, tail) = after.split_at(len);
        rest = tail;
        let source = if len_byte & 0x80 != 0 { stranger } else { peer };
        datagrams += 1;

        let parsed = parse_rtp(datagram);
        if let Ok(packet) = parsed {
            check_packet(datagram, &packet);
            let mut detector = DtmfDetector::new();
            let first = detector.on_packet(packet.timestamp, packet.payload);
            if let DtmfOutcome::NewDigit(digit) = first {
                assert!(shmq::records::is_dtmf_digit(digit), "digit {digit:#04x}");
                assert_eq!(
                    detector.on_packet(packet.timestamp, packet.payload),
                    DtmfOutcome::Duplicate
                );
            } else {
                assert_eq!(first, DtmfOutcome::NotDigit);
            }
            // What the session should do with it: latch on the first valid packet; another
            // source takes over with the latched stream's SSRC (no time passes here, so
            // never by silence).
            let from_peer = match latched {
                None => true,
                Some((address, ssrc)) => address == source || ssrc == packet.ssrc,
            };
            if from_peer {
                latched = Some((source, packet.ssrc));
            }
            if from_peer && packet.payload_type == DTMF_PT {
                if let DtmfOutcome::NewDigit(digit) =
                    lone_detector.on_packet(packet.timestamp, packet.payload)
                {
                    expected_digits.push(digit);
                }
            }
        }
        let mut events = Vec::new();
        let received = session.handle_datagram(now, source, datagram, |event| events.push(event));
        match received {
            Received::Rtp { packet, kind } => {
                // The packet is the parsed datagram itself.
                assert_eq!(Ok(packet), parsed);
                // Forwarded out of the bridge peer: its SSRC and payload types, same length.
                if let Some(tx) = peer_leg.forward(now, &packet, kind, &mut out) {
                    let forwarded = parse_rtp(&out[..tx.len]).expect("forwarded packet parses");
                    assert_eq!(forwarded.ssrc, 0xB0B);
                    assert_eq!(forwarded.payload.len(), packet.payload.len());
                    match kind {
                        RtpKind::Audio(_) => assert_eq!(forwarded.payload_type, 8),
                        RtpKind::TelephoneEvent { .. } => {
                            assert_eq!(forwarded.payload_type, 96);
                            assert_eq!(forwarded.payload, packet.payload);
                        }
                        RtpKind::Other => panic!("other payload types are not forwarded"),
                    }
                } else {
                    assert!(
                        matches!(kind, RtpKind::Other)
                            || RTP_HEADER_LEN + packet.payload.len() > out.len()
                    );
                }
                match kind {
                    RtpKind::TelephoneEvent { new_digit: Some(digit) } => {
                        assert_eq!(events, vec![SessionEvent::Dtmf { digit }]);
                        session_digits.push(digit);
                    }
                    RtpKind::TelephoneEvent { new_digit: None } => {
                        assert!(events.is_empty());
                        assert_eq!(packet.payload_type, DTMF_PT);
                    }
                    // Audio is in the session's codec (PCMU here).
                    RtpKind::Audio(codec) => {
                        assert!(events.is_empty());
                        assert_eq!(packet.payload_type, codec.payload_type());
                        assert_eq!(codec, PayloadCodec::Pcmu);
                    }
                    RtpKind::Other => {
                        assert!(events.is_empty());
                        assert!(packet.payload_type != DTMF_PT && packet.payload_type != 0);
                    }
                }
            }
            Received::Ignored => assert!(events.is_empty()),
        }
    }
    assert_eq!(session_digits, expected_digits);
    let counters = session.counters();
    assert_eq!(
        counters.packets_received + counters.packets_ignored,
        datagrams
    );
    assert_eq!(counters.dtmf_digits, session_digits.len() as u64);
});

fn check_packet(datagram: &[u8], packet: &media::rtp::RtpPacket<'_>) {
    let start = datagram.as_ptr() as usize;
    let payload_start = packet.payload.as_ptr() as usize;
    assert!(payload_start >= start + RTP_HEADER_LEN || packet.payload.is_empty());
    assert!(payload_start + packet.payload.len() <= start + datagram.len());
    assert!(packet.payload_type <= 127);
    assert_eq!(datagram[0] >> 6, 2);
    assert_eq!(
        packet.sequence,
        u16::from_be_bytes([datagram[2], datagram[3]])
    );
    assert_eq!(
        packet.ssrc,
        u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]])
    );

    let header = RtpHeader {
        marker: packet.marker,
        payload_type: packet.payload_type,
        sequence: packet.sequence,
        timestamp: packet.timestamp,
        ssrc: packet.ssrc,
    };
    let mut rebuilt = vec![0u8; RTP_HEADER_LEN + packet.payload.len()];
    assert_eq!(header.write(&mut rebuilt), Some(RTP_HEADER_LEN));
    rebuilt[RTP_HEADER_LEN..].copy_from_slice(packet.payload);
    assert_eq!(parse_rtp(&rebuilt).as_ref(), Ok(packet));
}
