//! The media plane's bridge (relay), latching and RTP timeout through real sockets: the test
//! plays the control plane over a real shmq segment and two or more "phones" as UDP sockets.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use media::g711;
use media::rtp::{parse_rtp, RtpHeader, RtpPacket};
use shmq::{Codec, Command, Event, FailReason, SessionId};
use support::{dtmf_packet, receive_rtp, wait_event, Control, TempDir};

fn rtp(payload_type: u8, ssrc: u32, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut pkt = vec![0u8; 12];
    RtpHeader {
        marker: false,
        payload_type,
        sequence,
        timestamp,
        ssrc,
    }
    .write(&mut pkt)
    .unwrap();
    pkt.extend_from_slice(payload);
    pkt
}

fn phone() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn engine(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A second of distinctive audio: every byte value, in a changing order.
fn speech(seed: u32) -> Vec<u8> {
    (0..8000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// Sends `audio` as 20 ms packets of `payload_type` from `from` to `to`, paced.
fn talk(from: &UdpSocket, to: SocketAddr, payload_type: u8, ssrc: u32, audio: &[u8]) {
    for (i, chunk) in audio.chunks(160).enumerate() {
        let pkt = rtp(payload_type, ssrc, 1000 + i as u16, 160 * i as u32, chunk);
        from.send_to(&pkt, to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Receives until `packets` RTP packets of `payload_type` arrived (others are kept too)
/// or 5 s passed; returns every packet.
fn hear(socket: &UdpSocket, payload_type: u8, packets: usize) -> Vec<Vec<u8>> {
    let mut wanted = 0;
    receive_rtp(socket, Duration::from_secs(5), |pkt| {
        if parse_rtp(pkt).is_ok_and(|p| p.payload_type == payload_type) {
            wanted += 1;
        }
        wanted >= packets
    })
    .into_iter()
    .map(|(_, pkt)| pkt)
    .collect()
}

fn parsed(packets: &[Vec<u8>]) -> Vec<RtpPacket<'_>> {
    packets.iter().map(|p| parse_rtp(p).unwrap()).collect()
}

/// One SSRC, consecutive sequence numbers, 160 samples apart, the payloads in order.
fn assert_one_stream(packets: &[RtpPacket<'_>], payload_type: u8, expected: &[u8], what: &str) {
    let audio: Vec<&RtpPacket<'_>> = packets
        .iter()
        .filter(|p| p.payload_type == payload_type)
        .collect();
    assert!(!audio.is_empty(), "{what}: no audio");
    for pair in audio.windows(2) {
        assert_eq!(pair[1].ssrc, pair[0].ssrc, "{what}: one SSRC");
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1), "{what}");
        assert_eq!(
            pair[1].timestamp.wrapping_sub(pair[0].timestamp),
            160,
            "{what}"
        );
    }
    let heard: Vec<u8> = audio
        .iter()
        .flat_map(|p| p.payload.iter().copied())
        .collect();
    assert_eq!(heard.len(), expected.len(), "{what}: every sample arrived");
    if let Some(i) = heard.iter().zip(expected).position(|(a, b)| a != b) {
        panic!(
            "{what}: differs at sample {i}: {:#04x} != {:#04x}",
            heard[i], expected[i]
        );
    }
}

fn bridge(control: &mut Control, session: SessionId, peer: SessionId) {
    control.send(0, Command::Bridge { session, peer });
    let bridged = wait_event(control, 0, "Bridged", |e| {
        matches!(e, Event::Bridged { .. } | Event::SessionFailed { .. })
    });
    assert_eq!(bridged, Event::Bridged { session, peer });
}

#[test]
fn bridged_legs_relay_both_ways_transcoding_pcmu_and_pcma_sample_exactly() {
    let dir = TempDir::new("relay");
    let mut control = Control::start(&dir.0, &dir.0, 1, 32200);
    let (caller, callee) = (phone(), phone());
    let (a, b) = (SessionId(1), SessionId(2));
    let port_a = control.open(0, a, caller.local_addr().unwrap(), Codec::Pcmu);
    let port_b = control.open(0, b, callee.local_addr().unwrap(), Codec::Pcma);

    // Refusals: a leg bridged to itself, an unknown leg.
    control.send(
        0,
        Command::Bridge {
            session: a,
            peer: a,
        },
    );
    assert_eq!(
        control.expect_event(0, "SessionFailed"),
        Event::SessionFailed {
            session: a,
            reason: FailReason::BadCommand
        }
    );
    control.send(
        0,
        Command::Bridge {
            session: a,
            peer: SessionId(99),
        },
    );
    assert_eq!(
        control.expect_event(0, "SessionFailed"),
        Event::SessionFailed {
            session: a,
            reason: FailReason::UnknownSession
        }
    );
    control.send(0, Command::Unbridge { session: a });
    assert_eq!(
        control.expect_event(0, "SessionFailed"),
        Event::SessionFailed {
            session: a,
            reason: FailReason::BadCommand
        }
    );

    bridge(&mut control, a, b);
    control.send(
        0,
        Command::Bridge {
            session: b,
            peer: a,
        },
    );
    assert_eq!(
        control.expect_event(0, "SessionFailed"),
        Event::SessionFailed {
            session: b,
            reason: FailReason::BadCommand
        },
        "already bridged"
    );

    // The caller speaks μ-law: the callee hears the same samples in A-law, and the reverse.
    let from_caller = speech(1);
    let from_callee = speech(2);
    let to_b = engine(port_b);
    let callee_talks = {
        let callee = callee.try_clone().unwrap();
        let audio = from_callee.clone();
        std::thread::spawn(move || talk(&callee, to_b, 8, 0xCA11_EE00, &audio))
    };
    talk(&caller, engine(port_a), 0, 0xCA11_E500, &from_caller);
    callee_talks.join().unwrap();
    let at_callee = hear(&callee, 8, 50);
    let at_caller = hear(&caller, 0, 50);
    let u2a = g711::ulaw_to_alaw_table();
    let a2u = g711::alaw_to_ulaw_table();
    let expected_alaw: Vec<u8> = from_caller.iter().map(|b| u2a[usize::from(*b)]).collect();
    let expected_ulaw: Vec<u8> = from_callee.iter().map(|b| a2u[usize::from(*b)]).collect();
    assert_one_stream(&parsed(&at_callee), 8, &expected_alaw, "callee hears");
    assert_one_stream(&parsed(&at_caller), 0, &expected_ulaw, "caller hears");
    assert_ne!(
        parsed(&at_callee)[0].ssrc,
        0xCA11_E500,
        "the leg's own SSRC, not the caller's"
    );

    // A key press passes through with the callee leg's telephone-event type and is reported.
    for (seq, end) in [(1050u16, false), (1051, true), (1051, true)] {
        caller
            .send_to(
                &dtmf_packet(seq, 8000, 7, end, if end { 800 } else { 160 }),
                engine(port_a),
            )
            .unwrap();
    }
    let events = hear(&callee, 101, 3);
    assert_eq!(
        parsed(&events)
            .iter()
            .filter(|p| p.payload_type == 101)
            .count(),
        3
    );
    assert_eq!(
        wait_event(&mut control, 0, "Dtmf", |e| matches!(e, Event::Dtmf { .. })),
        Event::Dtmf {
            session: a,
            digit: b'7'
        }
    );

    // Unbridge: both legs hear about it and go back to their own (silent) streams.
    control.send(0, Command::Unbridge { session: b });
    let mut unbridged = vec![
        control.expect_event(0, "Unbridged"),
        control.expect_event(0, "Unbridged"),
    ];
    unbridged.sort_by_key(|e| e.session().0);
    assert_eq!(
        unbridged,
        vec![
            Event::Unbridged {
                session: a,
                peer: b
            },
            Event::Unbridged {
                session: b,
                peer: a
            }
        ]
    );
    let silence = hear(&callee, 8, 3);
    let silence = parsed(&silence);
    let last_relayed = parsed(&at_callee)
        .last()
        .map(|p| (p.ssrc, p.sequence))
        .unwrap();
    let resumed = silence.iter().find(|p| p.payload_type == 8).unwrap();
    assert_eq!(resumed.ssrc, last_relayed.0, "the same stream goes on");
    assert!(
        resumed.sequence.wrapping_sub(last_relayed.1) < 10,
        "sequence continues"
    );
    assert!(resumed.payload.iter().all(|b| *b == g711::ALAW_SILENCE));

    // Bridged again, then one leg closes: the other is told and keeps its stream.
    bridge(&mut control, a, b);
    control.send(0, Command::CloseSession { session: a });
    let mut after_close = vec![
        control.expect_event(0, "Unbridged/SessionClosed"),
        control.expect_event(0, "Unbridged/SessionClosed"),
    ];
    after_close.retain(|e| matches!(e, Event::Unbridged { .. }));
    assert_eq!(
        after_close,
        vec![Event::Unbridged {
            session: b,
            peer: a
        }]
    );
    let stats = control.segment.worker_stats(0).snapshot();
    assert!(
        stats.packets_relayed >= 103,
        "relayed {}",
        stats.packets_relayed
    );
    control.stop().unwrap();
}

#[test]
fn latch_follows_the_peer_to_a_new_port_and_garbage_disturbs_no_one() {
    let dir = TempDir::new("latch");
    let mut control = Control::start(&dir.0, &dir.0, 1, 32400);
    let (caller, callee, moved) = (phone(), phone(), phone());
    let (a, b) = (SessionId(11), SessionId(12));
    // The caller's signalled address is wrong (as behind a NAT): RTP decides.
    let signalled: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let port_a = control.open(0, a, signalled, Codec::Pcmu);
    let port_b = control.open(0, b, callee.local_addr().unwrap(), Codec::Pcmu);
    bridge(&mut control, a, b);
    // A second, unrelated bridge on the same worker carries a call while a third session's
    // port is flooded with junk.
    let (left, right) = (phone(), phone());
    let (c, d) = (SessionId(13), SessionId(14));
    let port_c = control.open(0, c, left.local_addr().unwrap(), Codec::Pcmu);
    control.open(0, d, right.local_addr().unwrap(), Codec::Pcma);
    bridge(&mut control, c, d);
    let flooded = control.open(0, SessionId(15), signalled, Codec::Pcmu);
    let flood = std::thread::spawn(move || {
        let junk = phone();
        let big = vec![0x80u8; 1400];
        let mut oversized = vec![0x80u8; 60_000];
        oversized[1] = 0;
        for i in 0..3000u32 {
            let datagram: &[u8] = match i % 4 {
                0 => b"",
                1 => &[0x80, 0x00, 0x01],
                2 => &big,
                _ => &oversized,
            };
            let _ = junk.send_to(datagram, engine(flooded));
        }
    });
    let audio = speech(3);
    talk(&left, engine(port_c), 0, 0x1EF7, &audio[..1600]);
    flood.join().unwrap();
    let heard = hear(&right, 8, 10);
    let u2a = g711::ulaw_to_alaw_table();
    let expected: Vec<u8> = audio[..1600].iter().map(|b| u2a[usize::from(*b)]).collect();
    assert_one_stream(
        &parsed(&heard),
        8,
        &expected,
        "right hears through the flood",
    );

    // The caller's first packets latch session a to its real port.
    talk(&caller, engine(port_a), 0, 0x0CA1, &audio[..320]);
    callee
        .send_to(&rtp(0, 0xB0B, 1, 0, &[0x11; 160]), engine(port_b))
        .unwrap();
    let first = hear(&caller, 0, 1);
    assert_eq!(parsed(&first).last().unwrap().payload, &[0x11; 160][..]);
    // The caller's NAT moves it to a new port (same stream): the latch follows at once.
    moved
        .send_to(&rtp(0, 0x0CA1, 1010, 1600, &[0x22; 160]), engine(port_a))
        .unwrap();
    let _ = hear(&callee, 0, 3);
    callee
        .send_to(&rtp(0, 0xB0B, 2, 160, &[0x33; 160]), engine(port_b))
        .unwrap();
    let at_new_port = hear(&moved, 0, 1);
    assert_eq!(
        parsed(&at_new_port).last().unwrap().payload,
        &[0x33; 160][..]
    );
    let stats = control.segment.worker_stats(0).snapshot();
    assert!(stats.drops_not_rtp > 0, "junk counted: {stats:?}");
    control.stop().unwrap();
}

#[test]
fn rtp_timeout_is_reported_once_per_silence() {
    let dir = TempDir::new("timeout");
    let mut control =
        Control::start_with_rtp_timeout(&dir.0, &dir.0, 1, 32600, Duration::from_millis(300));
    let peer = phone();
    let session = SessionId(21);
    let port = control.open(0, session, peer.local_addr().unwrap(), Codec::Pcmu);
    let opened = Instant::now();
    let first = wait_event(&mut control, 0, "RtpTimeout", |e| {
        matches!(e, Event::RtpTimeout { .. })
    });
    let Event::RtpTimeout {
        session: s,
        idle_ms,
    } = first
    else {
        unreachable!()
    };
    assert_eq!(s, session);
    assert!((300..5000).contains(&idle_ms), "idle {idle_ms} ms");
    assert!(opened.elapsed() >= Duration::from_millis(300));
    // Once: nothing more while the silence lasts.
    assert_eq!(control.next_event(0, Duration::from_millis(500)), None);
    // RTP resumes, then stops again: a second report.
    talk(&peer, engine(port), 0, 5, &[0u8; 800]);
    let second = wait_event(&mut control, 0, "RtpTimeout", |e| {
        matches!(e, Event::RtpTimeout { .. })
    });
    assert!(matches!(second, Event::RtpTimeout { session: s, .. } if s == session));
    // The worker publishes its counters after its events: wait for them to catch up.
    let deadline = Instant::now() + Duration::from_secs(3);
    while control.segment.worker_stats(0).snapshot().rtp_timeouts < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(control.segment.worker_stats(0).snapshot().rtp_timeouts, 2);
    control.stop().unwrap();
}

/// `ms` of DTMF key `key`'s two tones as μ-law bytes.
fn key_tone_ulaw(key: u8, ms: usize) -> Vec<u8> {
    let (low, high) = match key {
        b'4' => (770.0f32, 1209.0f32),
        b'#' => (941.0, 1477.0),
        b'0' => (941.0, 1336.0),
        other => panic!("no tone table entry for {other}"),
    };
    (0..ms * 8)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let v = 5000.0 * (2.0 * std::f32::consts::PI * low * t).sin()
                + 5000.0 * (2.0 * std::f32::consts::PI * high * t).sin();
            g711::linear_to_ulaw(v as i16)
        })
        .collect()
}

#[test]
fn inband_keypad_tones_are_reported_when_no_telephone_event_was_negotiated() {
    let dir = TempDir::new("inband");
    let mut control = Control::start(&dir.0, &dir.0, 1, 32700);
    let phone_socket = phone();
    let session = SessionId(31);
    control.send(
        0,
        Command::OpenSession {
            session,
            remote: phone_socket.local_addr().unwrap(),
            codec: Codec::Pcmu,
            dtmf_payload_type: None,
            ptime_ms: 20,
        },
    );
    let Event::SessionOpened { local_port, .. } = control.expect_event(0, "SessionOpened") else {
        panic!("session did not open");
    };
    // "4", a pause, "#", a pause, "0": 100 ms presses, 80 ms gaps, as a keypad sends them.
    let silence = vec![g711::ULAW_SILENCE; 640];
    let mut audio = Vec::new();
    for key in [b'4', b'#', b'0'] {
        audio.extend(key_tone_ulaw(key, 100));
        audio.extend(&silence);
    }
    talk(&phone_socket, engine(local_port), 0, 0x70_4E5, &audio);
    let mut digits = Vec::new();
    while digits.len() < 3 {
        match wait_event(&mut control, 0, "Dtmf", |e| matches!(e, Event::Dtmf { .. })) {
            Event::Dtmf { digit, .. } => digits.push(digit),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(digits, b"4#0");
    assert_eq!(
        control.next_event(0, Duration::from_millis(300)),
        None,
        "each press once"
    );
    assert_eq!(control.segment.worker_stats(0).snapshot().dtmf_events, 3);
    control.stop().unwrap();
}
