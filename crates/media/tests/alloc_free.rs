//! The packet path allocates nothing: with a counting global allocator, a media plane relaying
//! a bridged call (PCMU ↔ PCMA, with DTMF events and RTCP from both ends), playing a file to
//! a third session and mixing a three-party conference spread over two workers (two members
//! talking, one with DTMF events, one member hearing the mix over its own looping play queue)
//! runs until every session has sent an RTCP report (and its `QosReport`), with no
//! allocation anywhere in the process. Setup (sessions, the file's mapping, joining the mix,
//! the first packets) happens before the counting window; inside it only packets flow, sent
//! and drained by threads that do not allocate either. (One test function: the allocator
//! counts the whole process, so nothing else may run beside it.)

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::rtcp::{Cname, CompoundReport, ReportBlock, MAX_REPORT_LEN};
use media::rtp::RtpHeader;
use shmq::{Codec, Command, Event, MixId, SessionId};
use support::{media_id, wait_event, Control, TempDir};

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn packet(payload_type: u8, sequence: u16, payload: &[u8]) -> [u8; 172] {
    let mut pkt = [0u8; 172];
    let _ = RtpHeader {
        marker: false,
        payload_type,
        sequence,
        timestamp: u32::from(sequence) * 160,
        ssrc: 0x00A1_10C0 + u32::from(payload_type),
    }
    .write(&mut pkt);
    let len = payload.len().min(160);
    pkt[12..12 + len].copy_from_slice(&payload[..len]);
    pkt
}

/// Sends 20 ms packets from `from` to `to` until `stop` (every 16th is a DTMF event when
/// `dtmf`), and an RTCP receiver report to `to`'s port + 1 every second, counting the RTP
/// packets; no allocation in the loop.
fn talker(
    from: UdpSocket,
    to: SocketAddr,
    payload_type: u8,
    dtmf: bool,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let audio = [0x2Au8; 160];
        let mut sequence = 0u16;
        while !stop.load(Ordering::Relaxed) {
            let mut pkt = packet(payload_type, sequence, &audio);
            let len = if dtmf && sequence.is_multiple_of(16) {
                pkt[1] = 101;
                pkt[12..16].copy_from_slice(&[(sequence / 16 % 10) as u8, 0x8A, 0x03, 0x20]);
                16
            } else {
                172
            };
            if from.send_to(&pkt[..len], to).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            if sequence.is_multiple_of(50) {
                let mut rtcp = [0u8; MAX_REPORT_LEN];
                let report = CompoundReport {
                    ssrc: 0x00A1_10C0 + u32::from(payload_type),
                    sender: None,
                    block: Some(ReportBlock {
                        ssrc: 0x5EED,
                        fraction_lost: 0,
                        cumulative_lost: 0,
                        highest_sequence: 0,
                        jitter: 0,
                        last_sr: 0,
                        delay_since_last_sr: 0,
                    }),
                    cname: Cname::for_ssrc(0x00A1_10C0),
                    bye: false,
                };
                if let Some(n) = report.write(&mut rtcp) {
                    let _ = from.send_to(&rtcp[..n], SocketAddr::new(to.ip(), to.port() + 1));
                }
            }
            sequence = sequence.wrapping_add(1);
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// Drains `socket` until `stop`, counting datagrams; no allocation in the loop.
fn listener(
    socket: UdpSocket,
    stop: Arc<AtomicBool>,
    heard: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if socket.recv_from(&mut buf).is_ok() {
                heard.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

#[test]
fn the_packet_path_does_not_allocate() {
    let dir = TempDir::new("alloc");
    let cache = dir.0.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let file = vec![0x55u8; 8000 * 10];
    let id = media_id(&file);
    std::fs::write(cache.join(id.file_name()), &file).unwrap();
    let mut control = Control::start(&dir.0, &cache, 2, 32800);

    let (caller, callee, listener_socket) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    let (a, b, c) = (SessionId(1), SessionId(2), SessionId(3));
    let port_a = control.open(0, a, caller.local_addr().unwrap(), Codec::Pcmu);
    let port_b = control.open(0, b, callee.local_addr().unwrap(), Codec::Pcma);
    control.open(0, c, listener_socket.local_addr().unwrap(), Codec::Pcmu);
    control.send(
        0,
        Command::Bridge {
            session: a,
            peer: b,
        },
    );
    assert_eq!(
        wait_event(&mut control, 0, "Bridged", |e| matches!(
            e,
            Event::Bridged { .. }
        )),
        Event::Bridged {
            session: a,
            peer: b
        }
    );
    control.send(
        0,
        Command::Play {
            session: c,
            play_id: 1,
            media: id,
            loops: 0,
        },
    );
    // The conference: d (PCMU, with DTMF) and e (PCMA) on worker 0 talk; f on worker 1
    // listens with a looping announcement of its own.
    let (member_d, member_e, member_f) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    let (d, e, f) = (SessionId(4), SessionId(5), SessionId(6));
    let port_d = control.open(0, d, member_d.local_addr().unwrap(), Codec::Pcmu);
    let port_e = control.open(0, e, member_e.local_addr().unwrap(), Codec::Pcma);
    control.open(1, f, member_f.local_addr().unwrap(), Codec::Pcmu);
    for (worker, session) in [(0, d), (0, e), (1, f)] {
        control.send(
            worker,
            Command::JoinMix {
                session,
                mix: MixId(42),
                muted: false,
                deaf: false,
            },
        );
        let joined = wait_event(&mut control, worker, "MixJoined", |e| {
            matches!(e, Event::MixJoined { .. } | Event::SessionFailed { .. })
        });
        assert!(matches!(joined, Event::MixJoined { .. }), "{joined:?}");
    }
    control.send(
        1,
        Command::Play {
            session: f,
            play_id: 2,
            media: id,
            loops: 0,
        },
    );

    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<AtomicU64>> = (0..10).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let threads = vec![
        talker(
            caller.try_clone().unwrap(),
            SocketAddr::from(([127, 0, 0, 1], port_a)),
            0,
            true,
            Arc::clone(&stop),
            Arc::clone(&counters[0]),
        ),
        talker(
            callee.try_clone().unwrap(),
            SocketAddr::from(([127, 0, 0, 1], port_b)),
            8,
            false,
            Arc::clone(&stop),
            Arc::clone(&counters[1]),
        ),
        listener(caller, Arc::clone(&stop), Arc::clone(&counters[2])),
        listener(callee, Arc::clone(&stop), Arc::clone(&counters[3])),
        listener(listener_socket, Arc::clone(&stop), Arc::clone(&counters[4])),
        talker(
            member_d.try_clone().unwrap(),
            SocketAddr::from(([127, 0, 0, 1], port_d)),
            0,
            true,
            Arc::clone(&stop),
            Arc::clone(&counters[5]),
        ),
        talker(
            member_e.try_clone().unwrap(),
            SocketAddr::from(([127, 0, 0, 1], port_e)),
            8,
            false,
            Arc::clone(&stop),
            Arc::clone(&counters[6]),
        ),
        listener(member_d, Arc::clone(&stop), Arc::clone(&counters[7])),
        listener(member_e, Arc::clone(&stop), Arc::clone(&counters[8])),
        listener(member_f, Arc::clone(&stop), Arc::clone(&counters[9])),
    ];
    // Warm up: every path has run at least once (latching, offsets, the play's mapping).
    std::thread::sleep(Duration::from_millis(500));
    let heard_before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert!(
        heard_before.iter().all(|n| *n > 0),
        "traffic flows before the window: {heard_before:?}"
    );

    // Events so far (a report during the warm-up) are not the window's.
    while control.next_any_event(0, Duration::ZERO).is_some() {}
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let window = Instant::now();
    // At least 2 s, and until each session has sent an RTCP report (2.5–7.5 s apart).
    let mut reported = [false; 3];
    while window.elapsed() < Duration::from_secs(2) || !reported.iter().all(|r| *r) {
        if window.elapsed() > Duration::from_secs(15) {
            break;
        }
        if let Some(Event::QosReport { session, .. }) =
            control.next_any_event(0, Duration::from_millis(100))
        {
            if let Some(flag) = reported.get_mut(session.0 as usize - 1) {
                *flag = true;
            }
        }
    }
    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(reported, [true; 3], "every session reported in the window");

    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    let heard: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    // ~100 packets each way and ~100 played packets passed during the window.
    for (what, i) in [
        ("caller sent", 0),
        ("callee sent", 1),
        ("caller heard", 2),
        ("callee heard", 3),
        ("listener heard", 4),
        ("member d sent", 5),
        ("member e sent", 6),
        ("member d heard", 7),
        ("member e heard", 8),
        ("member f heard", 9),
    ] {
        assert!(
            heard[i] - heard_before[i] >= 50,
            "{what}: {} in the window",
            heard[i] - heard_before[i]
        );
    }
    assert_eq!(allocated, 0, "allocations while packets flowed");
    let stats = control.segment.worker_stats(0).snapshot();
    assert!(
        stats.packets_relayed > 100 && stats.dtmf_events > 0 && stats.drops_bad_rtcp == 0,
        "{stats:?}"
    );
    control.stop().unwrap();
}
