//! End-to-end test of the media plane through its real interfaces: a shmq segment file, the
//! attach socket, doorbells, a cache directory with a real .ulaw file and real UDP sockets.
//! The test plays the control plane; `media::run` runs on a thread as the media process would.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use media::rtp::{parse_rtp, RtpHeader};
use shmq::{
    Codec, Command, Event, FailReason, MediaId, RecordingChannels, RecordingEnd, RecordingId,
    SessionId,
};
use support::{dtmf_packet, media_id, receive_rtp, wait_event, Control, TempDir};

#[test]
fn plays_file_reports_dtmf_and_closes() {
    let dir = TempDir::new("play");
    let cache = dir.0.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    // One second of distinctive μ-law: never 0xFF, so it can't be mistaken for silence.
    let file: Vec<u8> = (0..8000u32).map(|i| (i % 200) as u8 + 1).collect();
    let id = media_id(&file);
    std::fs::write(cache.join(id.file_name()), &file).unwrap();

    let mut control = Control::start(&dir.0, &cache, 1, 31000);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let session = SessionId(7);
    let local_port = control.open(0, session, peer.local_addr().unwrap(), Codec::Pcmu);
    assert_eq!(local_port % 2, 0);
    assert!((31000..=31099).contains(&local_port));

    // Nothing is sent before the first item: the call is not answered yet.
    let early = receive_rtp(&peer, Duration::from_millis(300), |_| false);
    assert!(early.is_empty(), "RTP before the first item");
    // A Silence item starts the stream; it stays alive with idle silence afterwards.
    control.send(
        0,
        Command::Silence {
            session,
            play_id: 9,
            duration_ms: 100,
        },
    );
    let silence = receive_rtp(&peer, Duration::from_secs(2), |_| true);
    let first = parse_rtp(&silence[0].1).unwrap();
    assert_eq!(first.payload_type, 0);
    assert!(first.marker);
    assert!(first.payload.iter().all(|b| *b == 0xFF));
    assert_eq!(
        control.expect_event(0, "PlayDone"),
        Event::PlayDone {
            session,
            play_id: 9,
            interrupted: false
        }
    );

    // Unknown media is refused; the session goes on.
    control.send(
        0,
        Command::Play {
            session,
            play_id: 1,
            media: MediaId([0xEE; 32]),
            loops: 1,
        },
    );
    assert_eq!(
        control.expect_event(0, "PlayFailed"),
        Event::PlayFailed {
            session,
            play_id: 1,
            reason: FailReason::MediaNotFound
        }
    );

    control.send(
        0,
        Command::Play {
            session,
            play_id: 2,
            media: id,
            loops: 1,
        },
    );
    // Collect until well after the file's end: 1 s of audio plus some silence.
    let mut audio_seen = false;
    let mut trailing_silence = 0;
    let packets = receive_rtp(&peer, Duration::from_secs(5), |pkt| {
        let p = parse_rtp(pkt).unwrap();
        if p.payload.iter().any(|b| *b != 0xFF) {
            audio_seen = true;
        } else if audio_seen {
            trailing_silence += 1;
        }
        trailing_silence >= 5
    });
    let parsed: Vec<_> = packets.iter().map(|(_, p)| parse_rtp(p).unwrap()).collect();
    // Sequence numbers are contiguous; timestamps advance 160 per packet, except that an
    // item starting on an idle stream leaves at once (marker) with the real elapsed time.
    for pair in parsed.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        let step = pair[1].timestamp.wrapping_sub(pair[0].timestamp);
        if pair[1].marker {
            assert!((1..=160).contains(&step), "talkspurt step {step}");
        } else {
            assert_eq!(step, 160);
        }
        assert_eq!(pair[1].ssrc, first.ssrc);
    }
    let start = parsed
        .iter()
        .position(|p| p.payload.iter().any(|b| *b != 0xFF))
        .expect("file audio received");
    assert!(
        parsed[start].marker,
        "first packet of the played item has the marker"
    );
    let played: Vec<u8> = parsed[start..]
        .iter()
        .flat_map(|p| p.payload.iter().copied())
        .collect();
    assert_eq!(&played[..file.len()], &file[..], "file bytes in order");
    assert!(
        played[file.len()..].iter().all(|b| *b == 0xFF),
        "silence after"
    );
    assert!(parsed[start + 1..].iter().all(|p| !p.marker));
    // Pacing: 50 audio packets over ~1 s (first to last arrival spans 49 ptimes).
    let audio_packets = file.len() / 160;
    let span = packets[start + audio_packets - 1].0 - packets[start].0;
    assert!(
        span >= Duration::from_millis(900) && span <= Duration::from_millis(1200),
        "50 packets took {span:?}"
    );
    assert_eq!(
        control.expect_event(0, "PlayDone"),
        Event::PlayDone {
            session,
            play_id: 2,
            interrupted: false
        }
    );

    // DTMF '1' then '2', each as three updates and three identical end packets.
    let media_addr: SocketAddr = format!("127.0.0.1:{local_port}").parse().unwrap();
    let mut seq = 1000u16;
    let mut dtmf_packets_sent = 0u64;
    for (event, ts) in [(1u8, 16_000u32), (2, 32_000)] {
        for duration in [160u16, 320, 480] {
            peer.send_to(&dtmf_packet(seq, ts, event, false, duration), media_addr)
                .unwrap();
            seq = seq.wrapping_add(1);
            dtmf_packets_sent += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        for _ in 0..3 {
            peer.send_to(&dtmf_packet(seq, ts, event, true, 640), media_addr)
                .unwrap();
            dtmf_packets_sent += 1;
        }
        seq = seq.wrapping_add(1);
    }
    let mut digits = Vec::new();
    while let Some(event) = control.next_event(0, Duration::from_millis(500)) {
        match event {
            Event::Dtmf { session: s, digit } if s == session => digits.push(digit),
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(digits, b"12", "each digit exactly once");

    control.send(0, Command::CloseSession { session });
    let closed = control.expect_event(0, "SessionClosed");
    let Event::SessionClosed {
        session: s,
        packets_sent,
        packets_received,
    } = closed
    else {
        panic!("expected SessionClosed, got {closed:?}");
    };
    assert_eq!(s, session);
    assert_eq!(packets_received, dtmf_packets_sent);
    let received_so_far = 1 + packets.len() as u64;
    assert!(
        packets_sent >= received_so_far,
        "sent {packets_sent} < received {received_so_far}"
    );
    // No more packets after close.
    std::thread::sleep(Duration::from_millis(50));
    peer.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    while peer.recv_from(&mut buf).is_ok() {}
    std::thread::sleep(Duration::from_millis(100));
    assert!(peer.recv_from(&mut buf).is_err(), "stream stopped");

    let stats = control.segment.worker_stats(0);
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&stats.dtmf_events), 2);
    assert_eq!(load(&stats.packets_in), dtmf_packets_sent);
    assert!(load(&stats.packets_out) >= packets_sent);
    assert_eq!(load(&stats.sessions_active), 0);

    control.stop().unwrap();
}

#[test]
fn alaw_stop_playback_and_command_errors() {
    let dir = TempDir::new("alaw");
    let cache = dir.0.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let file: Vec<u8> = (0..1600u32).map(|i| (i % 100) as u8).collect();
    let id = media_id(&file);
    std::fs::write(cache.join(id.file_name()), &file).unwrap();

    let mut control = Control::start(&dir.0, &cache, 2, 31200);
    let peer_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = SessionId(1);
    let b = SessionId(2);
    let port_a = control.open(0, a, peer_a.local_addr().unwrap(), Codec::Pcma);
    let port_b = control.open(1, b, peer_b.local_addr().unwrap(), Codec::Pcmu);
    assert!(
        port_a < 31250 && port_b >= 31250,
        "disjoint port slices: {port_a} {port_b}"
    );

    // A-law: looping file, then stop.
    control.send(
        0,
        Command::Play {
            session: a,
            play_id: 10,
            media: id,
            loops: 0,
        },
    );
    control.send(
        0,
        Command::Silence {
            session: a,
            play_id: 11,
            duration_ms: 5000,
        },
    );
    let table = media::g711::ulaw_to_alaw_table();
    let expected: Vec<u8> = file.iter().map(|b| table[*b as usize]).collect();
    let mut collected = Vec::new();
    let mut started = false;
    receive_rtp(&peer_a, Duration::from_secs(5), |pkt| {
        let p = parse_rtp(pkt).unwrap();
        assert_eq!(p.payload_type, 8);
        if !started && p.payload.iter().any(|b| *b != media::g711::ALAW_SILENCE) {
            started = true;
        }
        if started {
            collected.extend_from_slice(p.payload);
        }
        collected.len() >= 2 * file.len() + 160
    });
    assert_eq!(&collected[..file.len()], &expected[..]);
    assert_eq!(
        &collected[file.len()..2 * file.len()],
        &expected[..],
        "loops"
    );
    control.send(0, Command::StopPlayback { session: a });
    assert_eq!(
        control.expect_event(0, "PlayDone 10"),
        Event::PlayDone {
            session: a,
            play_id: 10,
            interrupted: true
        }
    );
    assert_eq!(
        control.expect_event(0, "PlayDone 11"),
        Event::PlayDone {
            session: a,
            play_id: 11,
            interrupted: true
        }
    );
    // After the stop: A-law idle silence.
    std::thread::sleep(Duration::from_millis(60));
    peer_a.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    while peer_a.recv_from(&mut buf).is_ok() {}
    peer_a.set_nonblocking(false).unwrap();
    let after = receive_rtp(&peer_a, Duration::from_secs(1), |_| true);
    let p = parse_rtp(&after[0].1).unwrap();
    assert!(p.payload.iter().all(|b| *b == media::g711::ALAW_SILENCE));

    // Errors: unknown sessions, duplicate open, bad ptime, a full session table.
    control.send(
        1,
        Command::Play {
            session: SessionId(99),
            play_id: 5,
            media: id,
            loops: 1,
        },
    );
    assert_eq!(
        control.expect_event(1, "PlayFailed"),
        Event::PlayFailed {
            session: SessionId(99),
            play_id: 5,
            reason: FailReason::UnknownSession
        }
    );
    control.send(
        1,
        Command::CloseSession {
            session: SessionId(99),
        },
    );
    assert_eq!(
        control.expect_event(1, "SessionFailed"),
        Event::SessionFailed {
            session: SessionId(99),
            reason: FailReason::UnknownSession
        }
    );
    let remote = peer_b.local_addr().unwrap();
    control.send(
        1,
        Command::OpenSession {
            session: b,
            remote,
            codec: Codec::Pcmu,
            dtmf_payload_type: None,
            ptime_ms: 20,
        },
    );
    assert_eq!(
        control.expect_event(1, "SessionFailed"),
        Event::SessionFailed {
            session: b,
            reason: FailReason::BadCommand
        }
    );
    control.send(
        1,
        Command::OpenSession {
            session: SessionId(3),
            remote,
            codec: Codec::Pcmu,
            dtmf_payload_type: None,
            ptime_ms: 0,
        },
    );
    assert_eq!(
        control.expect_event(1, "SessionFailed"),
        Event::SessionFailed {
            session: SessionId(3),
            reason: FailReason::BadCommand
        }
    );
    // max_sessions_per_worker = 8: b plus 7 more fit, the 9th does not.
    for n in 0..7 {
        control.open(1, SessionId(100 + n), remote, Codec::Pcmu);
    }
    control.send(
        1,
        Command::OpenSession {
            session: SessionId(200),
            remote,
            codec: Codec::Pcmu,
            dtmf_payload_type: None,
            ptime_ms: 20,
        },
    );
    assert_eq!(
        control.expect_event(1, "SessionFailed"),
        Event::SessionFailed {
            session: SessionId(200),
            reason: FailReason::SessionTableFull
        }
    );
    let active = control
        .segment
        .worker_stats(1)
        .sessions_active
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(active, 8);

    control.stop().unwrap();
}

#[test]
fn outbound_update_then_send_digits() {
    let dir = TempDir::new("digits");
    let cache = dir.0.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let mut control = Control::start(&dir.0, &cache, 1, 31400);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let session = SessionId(11);
    // Outbound call: opened before the answer, with a placeholder remote (discard).
    control.open(0, session, "127.0.0.1:9".parse().unwrap(), Codec::Pcmu);

    // Updating an unknown session, or with a bad ptime, fails; the session is unchanged.
    let update = |session, ptime_ms| Command::UpdateSession {
        session,
        remote: peer.local_addr().unwrap(),
        codec: Codec::Pcma,
        dtmf_payload_type: Some(96),
        ptime_ms,
    };
    control.send(0, update(SessionId(12), 20));
    assert_eq!(
        control.expect_event(0, "SessionFailed"),
        Event::SessionFailed {
            session: SessionId(12),
            reason: FailReason::UnknownSession
        }
    );
    control.send(0, update(session, 7));
    assert_eq!(
        control.expect_event(0, "SessionFailed"),
        Event::SessionFailed {
            session,
            reason: FailReason::BadCommand
        }
    );
    // The 200 OK's answer: the test socket, A-law, telephone-event 96.
    control.send(0, update(session, 20));
    assert_eq!(
        control.expect_event(0, "SessionUpdated"),
        Event::SessionUpdated { session }
    );

    control.send(0, Command::send_digits(session, 77, b"12").unwrap());
    let mut detector = media::dtmf::DtmfDetector::new();
    let mut digits = Vec::new();
    let mut end_packets = 0;
    let mut silence_after = 0;
    let packets = receive_rtp(&peer, Duration::from_secs(5), |pkt| {
        let p = parse_rtp(pkt).unwrap();
        if p.payload_type == 96 {
            if let media::dtmf::DtmfOutcome::NewDigit(d) =
                detector.on_packet(p.timestamp, p.payload)
            {
                digits.push(d);
            }
            let event = media::dtmf::parse_telephone_event(p.payload).unwrap();
            assert_eq!(event.volume, 10);
            if event.end {
                end_packets += 1;
            }
        } else {
            assert_eq!(p.payload_type, 8, "A-law after the update");
            assert!(p.payload.iter().all(|b| *b == media::g711::ALAW_SILENCE));
            if end_packets == 6 {
                silence_after += 1;
            }
        }
        silence_after >= 3
    });
    assert_eq!(digits, b"12", "the detector decodes exactly 1 then 2");
    assert_eq!(end_packets, 6, "three end packets per digit");
    let parsed: Vec<_> = packets.iter().map(|(_, p)| parse_rtp(p).unwrap()).collect();
    assert!(parsed[0].marker && parsed[0].payload_type == 96);
    for pair in parsed.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        assert_eq!(pair[1].ssrc, pair[0].ssrc);
    }
    // 5 updates + 3 ends + 3 silences (50 ms, rounded up to whole packets) per digit.
    assert_eq!(parsed.len(), 2 * 11);
    assert_eq!(
        control.expect_event(0, "PlayDone"),
        Event::PlayDone {
            session,
            play_id: 77,
            interrupted: false
        }
    );

    // Without a telephone-event payload type, SendDigits is refused.
    control.send(
        0,
        Command::UpdateSession {
            session,
            remote: peer.local_addr().unwrap(),
            codec: Codec::Pcmu,
            dtmf_payload_type: None,
            ptime_ms: 20,
        },
    );
    assert_eq!(
        control.expect_event(0, "SessionUpdated"),
        Event::SessionUpdated { session }
    );
    control.send(0, Command::send_digits(session, 78, b"3").unwrap());
    assert_eq!(
        control.expect_event(0, "PlayFailed"),
        Event::PlayFailed {
            session,
            play_id: 78,
            reason: FailReason::BadCommand
        }
    );
    control.stop().unwrap();
}

// ----- recording ---------------------------------------------------------------------

fn recording_done(control: &mut Control, worker: usize) -> Event {
    wait_event(control, worker, "RecordingDone", |e| {
        matches!(e, Event::RecordingDone { .. })
    })
}

/// Reads a recording: (channel count, samples interleaved), checking the header's sizes.
fn read_wav(path: &Path) -> (u16, Vec<i16>) {
    let wav = std::fs::read(path).unwrap();
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    let u32_at = |i: usize| u32::from_le_bytes(wav[i..i + 4].try_into().unwrap());
    let u16_at = |i: usize| u16::from_le_bytes(wav[i..i + 2].try_into().unwrap());
    assert_eq!(u32_at(4) as usize, wav.len() - 8, "RIFF size");
    assert_eq!(u16_at(20), 1, "PCM");
    assert_eq!(u32_at(24), 8000);
    assert_eq!(u16_at(34), 16);
    assert_eq!(&wav[36..40], b"data");
    assert_eq!(u32_at(40) as usize, wav.len() - 44, "data size");
    let channels = u16_at(22);
    let samples = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (channels, samples)
}

fn decode_ulaw(bytes: &[u8]) -> Vec<i16> {
    bytes
        .iter()
        .map(|b| media::g711::ULAW_DECODE[*b as usize])
        .collect()
}

/// Asserts `track` is silence, then exactly `expected`, then silence; returns where it starts.
fn assert_placed(track: &[i16], expected: &[i16], what: &str) -> usize {
    let start = track
        .iter()
        .position(|s| *s != 0)
        .unwrap_or_else(|| panic!("{what}: all silence"));
    assert!(
        start + expected.len() <= track.len(),
        "{what}: starts at {start}, {} samples do not fit in {}",
        expected.len(),
        track.len()
    );
    let placed = &track[start..start + expected.len()];
    if let Some(i) = placed.iter().zip(expected).position(|(a, b)| a != b) {
        let to = (i + 8).min(expected.len());
        panic!(
            "{what}: placed at {start}, differs at {i} of {}: {:?} != {:?}",
            expected.len(),
            &placed[i..to],
            &expected[i..to]
        );
    }
    let after = &track[start + expected.len()..];
    if let Some(i) = after.iter().position(|s| *s != 0) {
        panic!(
            "{what}: placed at {start}, {} more samples after {i} samples of silence",
            after.len() - i
        );
    }
    start
}

fn audio_packet(seq: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut pkt = vec![0u8; 12];
    RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: seq,
        timestamp,
        ssrc: 0x0A0B_0C0D,
    }
    .write(&mut pkt)
    .unwrap();
    pkt.extend_from_slice(payload);
    pkt
}

/// Sends `payload` as 20 ms PCMU packets, paced, with timestamps that wrap.
fn send_audio(peer: &UdpSocket, to: SocketAddr, payload: &[u8]) {
    let mut timestamp = 0xFFFF_FE00u32;
    for (i, chunk) in payload.chunks(160).enumerate() {
        peer.send_to(&audio_packet(500 + i as u16, timestamp, chunk), to)
            .unwrap();
        timestamp = timestamp.wrapping_add(160);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a recording, plays `file` while the peer sends `received`, then stops it; returns
/// the RecordingDone and the file's path.
fn record_call(
    control: &mut Control,
    dir: &Path,
    session: SessionId,
    channels: RecordingChannels,
    media: MediaId,
    received: &[u8],
) -> (Event, PathBuf) {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local_port = control.open(0, session, peer.local_addr().unwrap(), Codec::Pcmu);
    let recording = RecordingId([session.0 as u8; 16]);
    control.send(
        0,
        Command::StartRecording {
            session,
            recording,
            channels,
            max_duration_ms: 0,
        },
    );
    // StartRecording has no answer: give the worker time to take it before audio flows
    // (a packet that arrives before it is, rightly, not recorded).
    std::thread::sleep(Duration::from_millis(100));
    control.send(
        0,
        Command::Play {
            session,
            play_id: 1,
            media,
            loops: 1,
        },
    );
    let media_addr: SocketAddr = format!("127.0.0.1:{local_port}").parse().unwrap();
    send_audio(&peer, media_addr, received);
    wait_event(control, 0, "PlayDone", |e| {
        matches!(e, Event::PlayDone { play_id: 1, .. })
    });
    std::thread::sleep(Duration::from_millis(100));
    control.send(0, Command::StopRecording { session });
    let done = recording_done(control, 0);
    let path = dir.join("recordings").join(recording.file_name());
    assert!(
        !dir.join("recordings")
            .join(format!("{}.part", recording.file_name()))
            .exists(),
        "renamed"
    );
    (done, path)
}

#[test]
fn records_both_directions_in_two_channels() {
    let dir = TempDir::new("rec-dual");
    let cache = dir.0.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    // 0.5 s played, 1 s received; neither starts with a byte that decodes to 0.
    let file: Vec<u8> = (0..4000u32).map(|i| (i % 200) as u8 + 1).collect();
    let id = media_id(&file);
    std::fs::write(cache.join(id.file_name()), &file).unwrap();
    let received: Vec<u8> = (0..8000u32).map(|i| ((i * 7) % 120) as u8 + 130).collect();

    let mut control = Control::start(&dir.0, &cache, 1, 31600);
    let session = SessionId(21);
    let (done, path) = record_call(
        &mut control,
        &dir.0,
        session,
        RecordingChannels::Dual,
        id,
        &received,
    );
    let Event::RecordingDone {
        session: s,
        recording,
        duration_ms,
        bytes,
        end,
    } = done
    else {
        unreachable!()
    };
    assert_eq!(
        (s, recording, end),
        (session, RecordingId([21; 16]), RecordingEnd::Stopped)
    );
    let (channels, samples) = read_wav(&path);
    assert_eq!(channels, 2);
    assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
    let frames = samples.len() / 2;
    assert_eq!(u64::from(duration_ms), frames as u64 / 8);
    assert!(
        duration_ms >= 1000,
        "at least the received second: {duration_ms} ms"
    );
    let far_end: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let ours: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    // Channel 1: the received audio, sample-exact and contiguous (placed by timestamp).
    assert_placed(&far_end, &decode_ulaw(&received), "channel 1 (received)");
    // Channel 2: the played file, sample-exact, idle silence around it.
    assert_placed(&ours, &decode_ulaw(&file), "channel 2 (sent)");

    control.send(0, Command::CloseSession { session });
    wait_event(&mut control, 0, "SessionClosed", |e| {
        matches!(e, Event::SessionClosed { .. })
    });
    control.stop().unwrap();
}

/// μ-law bytes that decode to small values (|x| <= 372, never 0).
fn quiet_ulaw(len: usize) -> Vec<u8> {
    let alphabet: Vec<u8> = (0xE0..=0xEF)
        .chain(0xF0..=0xFE)
        .chain(0x60..=0x6F)
        .chain(0x70..=0x7E)
        .collect();
    (0..len)
        .map(|i| alphabet[(i * 5) % alphabet.len()])
        .collect()
}

#[test]
fn records_the_mix_in_one_channel() {
    let dir = TempDir::new("rec-mono");
    let cache = dir.0.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    // Played: quiet; received: loud, 1024 apart. Any mix of the two decomposes uniquely.
    let file = quiet_ulaw(8000);
    let id = media_id(&file);
    std::fs::write(cache.join(id.file_name()), &file).unwrap();
    let received: Vec<u8> = (0..8000u32).map(|i| 0x80 + (i % 16) as u8).collect();
    let loud: Vec<i16> = decode_ulaw(&(0x80..=0x8F).collect::<Vec<u8>>());
    assert!(loud.iter().all(|x| *x >= 16_764));

    let mut control = Control::start(&dir.0, &cache, 1, 31800);
    let (done, path) = record_call(
        &mut control,
        &dir.0,
        SessionId(22),
        RecordingChannels::Mono,
        id,
        &received,
    );
    let Event::RecordingDone { end, bytes, .. } = done else {
        unreachable!()
    };
    assert_eq!(end, RecordingEnd::Stopped);
    let (channels, mixed) = read_wav(&path);
    assert_eq!(channels, 1);
    assert_eq!(bytes, 44 + 2 * mixed.len() as u64);
    let (mut far_end, mut ours) = (Vec::new(), Vec::new());
    for m in &mixed {
        let r = if *m > 10_000 {
            *loud
                .iter()
                .min_by_key(|l| (i32::from(*m) - i32::from(**l)).abs())
                .unwrap()
        } else {
            0
        };
        far_end.push(r);
        ours.push(m - r);
    }
    let r0 = assert_placed(
        &far_end,
        &decode_ulaw(&received),
        "received part of the mix",
    );
    let s0 = assert_placed(&ours, &decode_ulaw(&file), "sent part of the mix");
    assert!(
        r0 < s0 + file.len() && s0 < r0 + received.len(),
        "the two directions overlap (mixed): received at {r0}, sent at {s0}"
    );
    control.stop().unwrap();
}

#[test]
fn recording_ends_at_max_length_with_the_session_and_on_errors() {
    let dir = TempDir::new("rec-ends");
    let cache = dir.0.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let file: Vec<u8> = (0..1600u32).map(|i| (i % 100) as u8 + 1).collect();
    let id = media_id(&file);
    std::fs::write(cache.join(id.file_name()), &file).unwrap();
    let recordings = dir.0.join("recordings");

    let mut control = Control::start(&dir.0, &cache, 1, 32000);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let session = SessionId(31);
    let start = |recording: RecordingId, channels, max_duration_ms| Command::StartRecording {
        session,
        recording,
        channels,
        max_duration_ms,
    };

    // Unknown session.
    control.send(
        0,
        Command::StartRecording {
            session: SessionId(99),
            recording: RecordingId([9; 16]),
            channels: RecordingChannels::Mono,
            max_duration_ms: 0,
        },
    );
    assert_eq!(
        control.expect_event(0, "SessionFailed"),
        Event::SessionFailed {
            session: SessionId(99),
            reason: FailReason::UnknownSession
        }
    );

    control.open(0, session, peer.local_addr().unwrap(), Codec::Pcmu);
    control.send(
        0,
        Command::Play {
            session,
            play_id: 1,
            media: id,
            loops: 0,
        },
    );
    // max_duration_ms: the file is exactly that long; a second start is refused meanwhile.
    let first = RecordingId([1; 16]);
    control.send(0, start(first, RecordingChannels::Mono, 300));
    control.send(0, start(RecordingId([2; 16]), RecordingChannels::Mono, 0));
    assert_eq!(
        control.expect_event(0, "SessionFailed"),
        Event::SessionFailed {
            session,
            reason: FailReason::BadCommand
        }
    );
    assert_eq!(
        recording_done(&mut control, 0),
        Event::RecordingDone {
            session,
            recording: first,
            duration_ms: 300,
            bytes: 44 + 2400 * 2,
            end: RecordingEnd::MaxLength,
        }
    );
    let (_, samples) = read_wav(&recordings.join(first.file_name()));
    assert_eq!(samples.len(), 2400);
    assert!(
        samples.iter().filter(|s| **s != 0).count() > 1000,
        "the looping file is in it"
    );

    // A file that cannot be created: WriteFailed, nothing kept; the session can record again.
    let blocked = RecordingId([3; 16]);
    std::fs::create_dir(recordings.join(format!("{}.part", blocked.file_name()))).unwrap();
    control.send(0, start(blocked, RecordingChannels::Dual, 0));
    assert_eq!(
        recording_done(&mut control, 0),
        Event::RecordingDone {
            session,
            recording: blocked,
            duration_ms: 0,
            bytes: 0,
            end: RecordingEnd::WriteFailed,
        }
    );

    // CloseSession ends the recording: SessionClosed, then RecordingDone { SessionClosed }.
    let last = RecordingId([4; 16]);
    control.send(0, start(last, RecordingChannels::Dual, 0));
    std::thread::sleep(Duration::from_millis(400));
    control.send(0, Command::CloseSession { session });
    let closed = wait_event(&mut control, 0, "SessionClosed", |e| {
        matches!(e, Event::SessionClosed { .. } | Event::RecordingDone { .. })
    });
    assert!(
        matches!(closed, Event::SessionClosed { session: s, .. } if s == session),
        "SessionClosed comes first, got {closed:?}"
    );
    let Event::RecordingDone {
        session: s,
        recording,
        duration_ms,
        bytes,
        end,
    } = recording_done(&mut control, 0)
    else {
        unreachable!()
    };
    assert_eq!(
        (s, recording, end),
        (session, last, RecordingEnd::SessionClosed)
    );
    assert!((350..2000).contains(&duration_ms), "{duration_ms} ms");
    let (channels, samples) = read_wav(&recordings.join(last.file_name()));
    assert_eq!(channels, 2);
    assert_eq!(bytes, 44 + 2 * samples.len() as u64);
    assert_eq!(u64::from(duration_ms), samples.len() as u64 / 2 / 8);
    let sent: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(
        sent.iter().filter(|s| **s != 0).count() > 2000,
        "sent audio recorded"
    );
    assert!(
        samples.iter().step_by(2).all(|s| *s == 0),
        "nothing received"
    );
    // No StopRecording target any more; no stray .part files.
    control.send(0, Command::StopRecording { session });
    assert_eq!(
        control.expect_event(0, "SessionFailed"),
        Event::SessionFailed {
            session,
            reason: FailReason::UnknownSession
        }
    );
    let parts: Vec<_> = std::fs::read_dir(&recordings)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".part") && !n.starts_with(&blocked.to_hex()))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");
    control.stop().unwrap();
}
