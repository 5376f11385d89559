//! The conference mixer through real sockets and the real shmq: the test plays the control
//! plane (JoinMix/LeaveMix over a shmq segment) and every participant as a UDP socket that
//! sends paced G.711 and listens to what the engine sends back.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media::g711;
use media::rtp::{parse_rtp, RtpHeader};
use shmq::{Codec, Command, Event, FailReason, MixId, SessionId};
use support::{Control, TempDir};

const FRAME: usize = 160;

fn phone() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn engine(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn decode(codec: Codec, byte: u8) -> i32 {
    i32::from(match codec {
        Codec::Pcmu => g711::ulaw_to_linear(byte),
        Codec::Pcma => g711::alaw_to_linear(byte),
    })
}

fn encode(codec: Codec, sample: i32) -> u8 {
    let sample = sample.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
    match codec {
        Codec::Pcmu => g711::linear_to_ulaw(sample),
        Codec::Pcma => g711::linear_to_alaw(sample),
    }
}

fn silence(codec: Codec) -> u8 {
    encode(codec, 0)
}

/// `packets` 20 ms packets of a distinct noise-like signal (up to ±`amplitude`) in `codec`.
fn signal(seed: u32, packets: usize, codec: Codec, amplitude: i32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761) | 1;
    (0..packets * FRAME)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let sample = (state % (2 * amplitude as u32 + 1)) as i32 - amplitude;
            encode(codec, sample)
        })
        .collect()
}

fn rtp(codec: Codec, ssrc: u32, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut pkt = vec![0u8; 12];
    RtpHeader {
        marker: sequence == 0,
        payload_type: codec.payload_type(),
        sequence,
        timestamp,
        ssrc,
    }
    .write(&mut pkt)
    .unwrap();
    pkt.extend_from_slice(payload);
    pkt
}

/// Sends `audio` as 20 ms packets to `to`, the n-th at `start + n·20 ms` (absolute, so the
/// pacing does not drift), from packet number `first` on.
fn talk(socket: &UdpSocket, to: SocketAddr, codec: Codec, ssrc: u32, audio: &[u8], start: Instant) {
    for (n, chunk) in audio.chunks(FRAME).enumerate() {
        let due = start + Duration::from_millis(20 * n as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let pkt = rtp(codec, ssrc, n as u16, (n * FRAME) as u32, chunk);
        socket.send_to(&pkt, to).unwrap();
    }
}

/// A talker thread sending `audio` over and over until `stop`.
fn talk_until(
    socket: &UdpSocket,
    to: SocketAddr,
    codec: Codec,
    audio: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let socket = socket.try_clone().unwrap();
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let due = start + Duration::from_millis(20 * n as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let chunk = audio.chunks(FRAME).nth(n % (audio.len() / FRAME)).unwrap();
            let pkt = rtp(codec, 0x7A1C, n as u16, (n * FRAME) as u32, chunk);
            let _ = socket.send_to(&pkt, to);
            n += 1;
        }
    })
}

/// Receives every datagram arriving on `socket` until `until`, on a thread.
fn collect_until(socket: &UdpSocket, until: Instant) -> JoinHandle<Vec<Vec<u8>>> {
    let socket = socket.try_clone().unwrap();
    std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut packets = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < until {
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                packets.push(buf[..n].to_vec());
            }
        }
        packets
    })
}

/// Throws away whatever is waiting on `socket`.
fn drain(socket: &UdpSocket) {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    while socket.recv_from(&mut buf).is_ok() {}
    socket.set_nonblocking(false).unwrap();
}

/// The audio payloads that arrive on `socket` during `window`.
fn listen(socket: &UdpSocket, window: Duration) -> Vec<Vec<u8>> {
    collect_until(socket, Instant::now() + window)
        .join()
        .unwrap()
        .iter()
        .filter_map(|pkt| parse_rtp(pkt).ok().map(|p| p.payload.to_vec()))
        .collect()
}

fn loudness(codec: Codec, payloads: &[Vec<u8>]) -> i64 {
    let samples: Vec<i32> = payloads
        .iter()
        .flatten()
        .map(|b| decode(codec, *b))
        .collect();
    samples.iter().map(|s| i64::from(s.abs())).sum::<i64>() / samples.len().max(1) as i64
}

fn assert_hears(codec: Codec, payloads: &[Vec<u8>], what: &str) {
    assert!(payloads.len() >= 5, "{what}: {} packets", payloads.len());
    let level = loudness(codec, payloads);
    assert!(level > 1000, "{what}: mean level {level}");
}

fn assert_silent(codec: Codec, payloads: &[Vec<u8>], what: &str) {
    assert!(payloads.len() >= 5, "{what}: {} packets", payloads.len());
    assert!(
        payloads.iter().flatten().all(|b| *b == silence(codec)),
        "{what}: mean level {}",
        loudness(codec, payloads)
    );
}

/// Waits for `worker`'s next event that `matches`, skipping speaking and play reports.
fn wait_for(
    control: &mut Control,
    worker: usize,
    what: &str,
    matches: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(event) = control.next_event(worker, Duration::from_millis(100)) {
            if matches(&event) {
                return event;
            }
            assert!(
                matches!(event, Event::Speaking { .. } | Event::PlayDone { .. }),
                "unexpected {event:?} while waiting for {what}"
            );
        }
    }
    panic!("timed out waiting for {what}");
}

/// Sends `command` and returns the worker's answer (MixJoined, MixLeft, Bridged, Unbridged
/// or SessionFailed for the command's session).
fn ask(control: &mut Control, worker: usize, command: Command) -> Event {
    let session = command.session();
    control.send(worker, command);
    wait_for(control, worker, "an answer", |e| {
        e.session() == session
            && matches!(
                e,
                Event::MixJoined { .. }
                    | Event::MixLeft { .. }
                    | Event::Bridged { .. }
                    | Event::SessionFailed { .. }
            )
    })
}

fn join(
    control: &mut Control,
    worker: usize,
    session: SessionId,
    mix: MixId,
    muted: bool,
    deaf: bool,
) {
    let answer = ask(
        control,
        worker,
        Command::JoinMix {
            session,
            mix,
            muted,
            deaf,
        },
    );
    assert_eq!(
        answer,
        Event::MixJoined {
            session,
            mix,
            muted,
            deaf
        }
    );
}

/// One stream of `codec` audio from the engine: one SSRC, consecutive sequence numbers,
/// timestamps 160 apart; its payloads concatenated.
fn one_stream(packets: &[Vec<u8>], codec: Codec, what: &str) -> Vec<u8> {
    let parsed: Vec<_> = packets
        .iter()
        .map(|p| parse_rtp(p).unwrap())
        .filter(|p| p.payload_type == codec.payload_type())
        .collect();
    assert!(parsed.len() > 50, "{what}: {} packets", parsed.len());
    for pair in parsed.windows(2) {
        assert_eq!(pair[1].ssrc, pair[0].ssrc, "{what}: one SSRC");
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "{what}: no gap"
        );
        assert_eq!(
            pair[1].timestamp.wrapping_sub(pair[0].timestamp),
            FRAME as u32,
            "{what}: 20 ms apart"
        );
    }
    parsed
        .iter()
        .flat_map(|p| p.payload.iter().copied())
        .collect()
}

/// `heard` (in `codec`) must be, sample for sample, `encode(saturate(decode(y) + decode(z)))`
/// with `y` starting at some offset and `z` within three frames of it, silence before; and
/// it must reach past the first `loud_len` samples of both.
fn assert_hears_the_sum(
    heard: &[u8],
    codec: Codec,
    (y, y_codec): (&[u8], Codec),
    (z, z_codec): (&[u8], Codec),
    loud_len: usize,
    what: &str,
) {
    let y: Vec<i32> = y.iter().map(|b| decode(y_codec, *b)).collect();
    let z: Vec<i32> = z.iter().map(|b| decode(z_codec, *b)).collect();
    let quiet = silence(codec);
    let first_sound = heard
        .iter()
        .position(|b| *b != quiet)
        .unwrap_or_else(|| panic!("{what}: heard nothing"));
    let at = |signal: &[i32], i: i64| -> i32 {
        usize::try_from(i)
            .ok()
            .and_then(|i| signal.get(i))
            .copied()
            .unwrap_or(0)
    };
    let expected =
        |i: usize, o: i64, r: i64| encode(codec, at(&y, i as i64 - o) + at(&z, i as i64 - o - r));
    let mut best = (0usize, 0i64, 0i64);
    for r in (-3..=3).map(|f| f * FRAME as i64) {
        let lowest = first_sound as i64 - 3 * FRAME as i64 - 8;
        for o in lowest..=first_sound as i64 + 8 {
            let matched = heard
                .iter()
                .enumerate()
                .take_while(|(i, b)| **b == expected(*i, o, r))
                .count();
            if matched > best.0 {
                best = (matched, o, r);
            }
            if matched == heard.len() {
                let loud_end = (o + loud_len as i64 + r.abs()) as usize;
                assert!(
                    heard.len() > loud_end,
                    "{what}: all the talk was heard ({} samples, talk ends at {loud_end})",
                    heard.len()
                );
                return;
            }
        }
    }
    let (matched, o, r) = best;
    panic!(
        "{what}: heard ≠ the sum of the other two; best alignment (offset {o}, relative {r}) \
         matched the first {matched} of {} samples",
        heard.len()
    );
}

/// Three parties (one PCMA) in one mix, placed on `placement` workers, each sending a
/// distinct second of loud noise at once: each must hear exactly the other two's sum.
fn three_party_mix(workers: usize, placement: [usize; 3], port_base: u16) {
    let dir = TempDir::new("mix3");
    let mut control = Control::start(&dir.0, &dir.0, workers, port_base);
    let codecs = [Codec::Pcmu, Codec::Pcma, Codec::Pcmu];
    let phones = [phone(), phone(), phone()];
    let sessions = [SessionId(1), SessionId(2), SessionId(3)];
    let mut ports = Vec::new();
    for i in 0..3 {
        ports.push(control.open(
            placement[i],
            sessions[i],
            phones[i].local_addr().unwrap(),
            codecs[i],
        ));
    }
    let start = Instant::now() + Duration::from_millis(400);
    let until = start + Duration::from_millis(1000 + 700);
    let collectors: Vec<_> = phones.iter().map(|p| collect_until(p, until)).collect();
    let mix = MixId(0xC0FFEE);
    for i in 0..3 {
        join(&mut control, placement[i], sessions[i], mix, false, false);
    }
    // A second of loud noise, then silence (phones keep sending between talkspurts) until
    // after the listening ends: what is heard is the mix of what was sent, nothing else.
    let signals: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let mut audio = signal(i as u32 + 11, 50, codecs[i], 20_000);
            audio.extend(vec![silence(codecs[i]); 60 * FRAME]);
            audio
        })
        .collect();
    let talkers: Vec<_> = (0..3)
        .map(|i| {
            let socket = phones[i].try_clone().unwrap();
            let (to, codec, audio) = (engine(ports[i]), codecs[i], signals[i].clone());
            std::thread::spawn(move || talk(&socket, to, codec, 0x5EED + i as u32, &audio, start))
        })
        .collect();
    let heard: Vec<Vec<u8>> = collectors
        .into_iter()
        .zip(codecs)
        .enumerate()
        .map(|(i, (c, codec))| one_stream(&c.join().unwrap(), codec, &format!("party {i}")))
        .collect();
    for t in talkers {
        t.join().unwrap();
    }
    for i in 0..3 {
        let (y, z) = ((i + 1) % 3, (i + 2) % 3);
        assert_hears_the_sum(
            &heard[i],
            codecs[i],
            (&signals[y], codecs[y]),
            (&signals[z], codecs[z]),
            50 * FRAME,
            &format!("{workers} workers, party {i}"),
        );
    }
    control.stop().unwrap();
}

#[test]
fn each_of_three_parties_hears_exactly_the_sum_of_the_other_two() {
    three_party_mix(1, [0, 0, 0], 33000);
}

#[test]
fn the_sum_is_exact_with_the_parties_spread_across_two_workers() {
    three_party_mix(2, [0, 1, 0], 33100);
}

#[test]
fn mute_and_deaf_take_effect_and_can_be_undone() {
    let dir = TempDir::new("mixmute");
    let mut control = Control::start(&dir.0, &dir.0, 2, 33200);
    let (a, b, c) = (phone(), phone(), phone());
    let (sa, sb, sc) = (SessionId(1), SessionId(2), SessionId(3));
    let port_a = control.open(0, sa, a.local_addr().unwrap(), Codec::Pcmu);
    control.open(1, sb, b.local_addr().unwrap(), Codec::Pcma);
    control.open(0, sc, c.local_addr().unwrap(), Codec::Pcmu);
    let mix = MixId(5);
    join(&mut control, 0, sa, mix, false, false);
    join(&mut control, 1, sb, mix, false, false);
    join(&mut control, 0, sc, mix, false, false);
    let stop = Arc::new(AtomicBool::new(false));
    let talker = talk_until(
        &a,
        engine(port_a),
        Codec::Pcmu,
        signal(3, 25, Codec::Pcmu, 8000),
        Arc::clone(&stop),
    );
    let settle = || std::thread::sleep(Duration::from_millis(250));
    let window = Duration::from_millis(300);

    settle();
    drain(&b);
    assert_hears(Codec::Pcma, &listen(&b, window), "b hears a");
    // Muted: nobody hears a.
    join(&mut control, 0, sa, mix, true, false);
    settle();
    drain(&b);
    drain(&c);
    assert_silent(Codec::Pcma, &listen(&b, window), "b while a is muted");
    assert_silent(Codec::Pcmu, &listen(&c, window), "c while a is muted");
    // Unmuted: heard again.
    join(&mut control, 0, sa, mix, false, false);
    settle();
    drain(&b);
    assert_hears(Codec::Pcma, &listen(&b, window), "b after a is unmuted");
    // b deaf: b hears nothing, c still hears a.
    join(&mut control, 1, sb, mix, false, true);
    settle();
    drain(&b);
    drain(&c);
    assert_silent(Codec::Pcma, &listen(&b, window), "deaf b");
    assert_hears(Codec::Pcmu, &listen(&c, window), "c while b is deaf");
    join(&mut control, 1, sb, mix, false, false);
    settle();
    drain(&b);
    assert_hears(Codec::Pcma, &listen(&b, window), "b no longer deaf");
    stop.store(true, Ordering::Relaxed);
    talker.join().unwrap();
    control.stop().unwrap();
}

#[test]
fn leaving_closing_and_the_refusals() {
    let dir = TempDir::new("mixleave");
    let mut control = Control::start(&dir.0, &dir.0, 1, 33300);
    let (a, b, c, d) = (phone(), phone(), phone(), phone());
    let (sa, sb, sc, sd) = (SessionId(1), SessionId(2), SessionId(3), SessionId(4));
    let port_a = control.open(0, sa, a.local_addr().unwrap(), Codec::Pcmu);
    control.open(0, sb, b.local_addr().unwrap(), Codec::Pcmu);
    control.open(0, sc, c.local_addr().unwrap(), Codec::Pcmu);
    control.open(0, sd, d.local_addr().unwrap(), Codec::Pcmu);
    let (mix, other) = (MixId(1), MixId(2));
    join(&mut control, 0, sa, mix, false, false);
    join(&mut control, 0, sb, mix, false, false);
    join(&mut control, 0, sc, mix, false, false);
    let failed = |session, reason| Event::SessionFailed { session, reason };

    // Refusals: another mix while in one, a bridge with a member, unknown sessions.
    let command = Command::JoinMix {
        session: sa,
        mix: other,
        muted: false,
        deaf: false,
    };
    assert_eq!(
        ask(&mut control, 0, command),
        failed(sa, FailReason::BadCommand)
    );
    let command = Command::Bridge {
        session: sd,
        peer: sa,
    };
    assert_eq!(
        ask(&mut control, 0, command),
        failed(sd, FailReason::BadCommand)
    );
    let command = Command::JoinMix {
        session: SessionId(99),
        mix,
        muted: false,
        deaf: false,
    };
    assert_eq!(
        ask(&mut control, 0, command),
        failed(SessionId(99), FailReason::UnknownSession)
    );
    let command = Command::LeaveMix { session: sd };
    assert_eq!(
        ask(&mut control, 0, command),
        failed(sd, FailReason::BadCommand)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let talker = talk_until(
        &a,
        engine(port_a),
        Codec::Pcmu,
        signal(4, 25, Codec::Pcmu, 8000),
        Arc::clone(&stop),
    );
    std::thread::sleep(Duration::from_millis(250));
    drain(&b);
    assert_hears(
        Codec::Pcmu,
        &listen(&b, Duration::from_millis(300)),
        "b in the mix",
    );

    // b leaves: its stream goes on, silent; c still hears a.
    assert_eq!(
        ask(&mut control, 0, Command::LeaveMix { session: sb }),
        Event::MixLeft { session: sb, mix }
    );
    std::thread::sleep(Duration::from_millis(100));
    drain(&b);
    drain(&c);
    assert_silent(
        Codec::Pcmu,
        &listen(&b, Duration::from_millis(300)),
        "b after leaving",
    );
    assert_hears(Codec::Pcmu, &listen(&c, Duration::from_millis(300)), "c");
    assert_eq!(
        ask(&mut control, 0, Command::LeaveMix { session: sb }),
        failed(sb, FailReason::BadCommand),
        "not in a mix any more"
    );
    // b can be bridged now; a bridged session cannot join.
    let command = Command::Bridge {
        session: sb,
        peer: sd,
    };
    assert_eq!(
        ask(&mut control, 0, command),
        Event::Bridged {
            session: sb,
            peer: sd
        }
    );
    let command = Command::JoinMix {
        session: sb,
        mix,
        muted: false,
        deaf: false,
    };
    assert_eq!(
        ask(&mut control, 0, command),
        failed(sb, FailReason::BadCommand)
    );

    // Closing a member: MixLeft, then SessionClosed.
    control.send(0, Command::CloseSession { session: sc });
    let left = wait_for(&mut control, 0, "MixLeft", |e| e.session() == sc);
    assert_eq!(left, Event::MixLeft { session: sc, mix });
    let closed = wait_for(&mut control, 0, "SessionClosed", |e| e.session() == sc);
    assert!(matches!(closed, Event::SessionClosed { .. }), "{closed:?}");
    // a is alone now and hears nobody.
    std::thread::sleep(Duration::from_millis(100));
    drain(&a);
    assert_silent(
        Codec::Pcmu,
        &listen(&a, Duration::from_millis(300)),
        "a alone",
    );
    // The last member leaves; the mix can be made again from scratch.
    assert_eq!(
        ask(&mut control, 0, Command::LeaveMix { session: sa }),
        Event::MixLeft { session: sa, mix }
    );
    join(&mut control, 0, sa, mix, false, false);
    stop.store(true, Ordering::Relaxed);
    talker.join().unwrap();
    control.stop().unwrap();
}

#[test]
fn speaking_is_reported_when_a_member_starts_and_stops_talking() {
    let dir = TempDir::new("mixspeak");
    let mut control = Control::start(&dir.0, &dir.0, 1, 33400);
    let (a, b) = (phone(), phone());
    let (sa, sb) = (SessionId(1), SessionId(2));
    let port_a = control.open(0, sa, a.local_addr().unwrap(), Codec::Pcma);
    control.open(0, sb, b.local_addr().unwrap(), Codec::Pcmu);
    let mix = MixId(77);
    join(&mut control, 0, sa, mix, false, false);
    join(&mut control, 0, sb, mix, false, false);
    // 600 ms of talk, then a second of near-silence (the phone keeps sending).
    let mut audio = signal(9, 30, Codec::Pcma, 6000);
    audio.extend(signal(10, 50, Codec::Pcma, 20));
    talk(&a, engine(port_a), Codec::Pcma, 0xA, &audio, Instant::now());
    let mut reports = Vec::new();
    while let Some(event) = control.next_event(0, Duration::from_millis(500)) {
        reports.push(event);
    }
    assert_eq!(
        reports,
        vec![
            Event::Speaking {
                session: sa,
                mix,
                speaking: true
            },
            Event::Speaking {
                session: sa,
                mix,
                speaking: false
            }
        ]
    );
    control.stop().unwrap();
}

#[test]
fn two_hundred_fifty_members_all_hear_the_one_who_talks() {
    const MEMBERS: usize = shmq::MAX_MIX_MEMBERS;
    let dir = TempDir::new("mix250");
    let mut control = Control::start_sized(&dir.0, &dir.0, 2, (33500, 600), 130, Duration::ZERO);
    let mix = MixId(250);
    let phones: Vec<UdpSocket> = (0..MEMBERS).map(|_| phone()).collect();
    let ports: Vec<u16> = phones
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let session = SessionId(i as u64 + 1);
            control.open(i % 2, session, p.local_addr().unwrap(), Codec::Pcmu)
        })
        .collect();
    let talker_port = ports[0];
    for i in 0..MEMBERS {
        let session = SessionId(i as u64 + 1);
        control.send(
            i % 2,
            Command::JoinMix {
                session,
                mix,
                muted: false,
                deaf: false,
            },
        );
    }
    for worker in 0..2 {
        for _ in 0..MEMBERS / 2 {
            let joined = wait_for(&mut control, worker, "MixJoined", |e| {
                matches!(e, Event::MixJoined { .. } | Event::SessionFailed { .. })
            });
            assert!(matches!(joined, Event::MixJoined { .. }), "{joined:?}");
        }
    }
    // One more is refused: the mix is full.
    let extra = phone();
    control.open(0, SessionId(1000), extra.local_addr().unwrap(), Codec::Pcmu);
    let command = Command::JoinMix {
        session: SessionId(1000),
        mix,
        muted: false,
        deaf: false,
    };
    assert_eq!(
        ask(&mut control, 0, command),
        Event::SessionFailed {
            session: SessionId(1000),
            reason: FailReason::BadCommand
        }
    );

    // Every phone is polled by one thread: loud packets per phone.
    let stop = Arc::new(AtomicBool::new(false));
    let loud: Arc<Vec<AtomicU64>> = Arc::new((0..MEMBERS).map(|_| AtomicU64::new(0)).collect());
    let poller = {
        let sockets: Vec<UdpSocket> = phones.iter().map(|p| p.try_clone().unwrap()).collect();
        let (stop, loud) = (Arc::clone(&stop), Arc::clone(&loud));
        std::thread::spawn(move || {
            for s in &sockets {
                s.set_nonblocking(true).unwrap();
            }
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                for (i, s) in sockets.iter().enumerate() {
                    while let Ok((n, _)) = s.recv_from(&mut buf) {
                        let Ok(p) = parse_rtp(&buf[..n]) else {
                            continue;
                        };
                        let level: i64 = p
                            .payload
                            .iter()
                            .map(|b| i64::from(decode(Codec::Pcmu, *b).abs()))
                            .sum::<i64>()
                            / p.payload.len().max(1) as i64;
                        if level > 1000 {
                            loud[i].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let speech = signal(1, 50, Codec::Pcmu, 8000);
    talk(
        &phones[0],
        engine(talker_port),
        Codec::Pcmu,
        0x250,
        &speech,
        Instant::now(),
    );
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    let heard: Vec<u64> = loud.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    assert_eq!(heard[0], 0, "the talker does not hear itself");
    let deaf: Vec<usize> = (1..MEMBERS).filter(|i| heard[*i] < 30).collect();
    assert!(
        deaf.is_empty(),
        "members that did not hear the talker: {deaf:?} ({heard:?})"
    );
    control.stop().unwrap();
}

/// Where `needle` appears whole in `haystack`.
fn find_run(haystack: &[i16], needle: &[i16]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[test]
fn recording_a_member_keeps_what_it_said_and_what_it_heard() {
    let dir = TempDir::new("mixrec");
    let mut control = Control::start(&dir.0, &dir.0, 1, 33600);
    let (a, b) = (phone(), phone());
    let (sa, sb) = (SessionId(1), SessionId(2));
    let port_a = control.open(0, sa, a.local_addr().unwrap(), Codec::Pcmu);
    let port_b = control.open(0, sb, b.local_addr().unwrap(), Codec::Pcmu);
    let mix = MixId(8);
    join(&mut control, 0, sa, mix, false, false);
    join(&mut control, 0, sb, mix, false, false);
    let recording = shmq::RecordingId([0x5A; 16]);
    control.send(
        0,
        Command::StartRecording {
            session: sa,
            recording,
            channels: shmq::RecordingChannels::Dual,
            max_duration_ms: 0,
        },
    );
    let said = signal(21, 40, Codec::Pcmu, 3000);
    let other = signal(22, 40, Codec::Pcmu, 9000);
    let start = Instant::now() + Duration::from_millis(100);
    let b_talks = {
        let socket = b.try_clone().unwrap();
        let audio = other.clone();
        std::thread::spawn(move || talk(&socket, engine(port_b), Codec::Pcmu, 0xB, &audio, start))
    };
    talk(&a, engine(port_a), Codec::Pcmu, 0xA, &said, start);
    b_talks.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    control.send(0, Command::StopRecording { session: sa });
    let done = wait_for(&mut control, 0, "RecordingDone", |e| {
        matches!(e, Event::RecordingDone { .. })
    });
    assert!(
        matches!(
            done,
            Event::RecordingDone {
                end: shmq::RecordingEnd::Stopped,
                ..
            }
        ),
        "{done:?}"
    );
    let wav = std::fs::read(dir.0.join("recordings").join(recording.file_name())).unwrap();
    let samples: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let received: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let sent: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let decoded = |audio: &[u8]| -> Vec<i16> {
        audio
            .iter()
            .map(|b| decode(Codec::Pcmu, *b) as i16)
            .collect()
    };
    // Channel 1: what a said; channel 2: what a heard, b's voice through the mix (PCMU to
    // PCMU with nobody else talking: the same samples).
    assert!(
        find_run(&received, &decoded(&said)).is_some(),
        "a's own voice"
    );
    assert!(
        find_run(&sent, &decoded(&other)).is_some(),
        "b's voice as a heard it"
    );
    control.stop().unwrap();
}
