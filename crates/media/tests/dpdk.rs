//! The DPDK backend end to end (feature `dpdk`): the media plane owns one end of a veth pair
//! through DPDK's `net_af_packet` virtual device (no hugepages, no PCI), configured from
//! firmware-cfg/dpdk-veth.toml; the other end is in a fresh network namespace where two
//! "phones" are ordinary kernel UDP sockets. The namespace's kernel must ARP for the
//! engine's address before it can send anything, so relayed RTP arriving proves ARP
//! answering, UDP demultiplexing by port, frame building and checksums (the kernel drops
//! datagrams with a bad UDP checksum). Garbage frames from a packet socket in the namespace
//! are counted, not fatal.
//!
//! Needs root, `ip` (iproute2), network namespaces and libdpdk; where any is missing the
//! test prints why it did not run and passes. The namespace and the veth pair are removed
//! even when the test fails.

#![cfg(feature = "dpdk")]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use media::packet_io::dpdk::{self, DpdkCounters};
use media::packet_io::frame::{write_udp_frame, MacAddress, UdpFrameHeader};
use media::packet_io::{DpdkConfig, IoBackend};
use media::rtp::{parse_rtp, RtpHeader};
use shmq::{Codec, Command as MediaCommand, Event, SessionId};
use support::{receive_rtp, wait_event, Control, TempDir};

/// The address the namespace's end of the pair gets (the engine's is in the example file).
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 211, 0, 2);
/// A second address there, which sends nothing before the engine sends to it.
const QUIET_IP: Ipv4Addr = Ipv4Addr::new(10, 211, 0, 3);

/// Counts allocations made by the media worker thread (by its name) while `COUNTING`.
struct WorkerAllocations;

static COUNTING: AtomicBool = AtomicBool::new(false);
static WORKER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn on_media_worker_thread() -> bool {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes (NUL-terminated) into the buffer.
    let rc = unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
    rc == 0 && name.starts_with(b"media-worker-0\0")
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for WorkerAllocations {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && on_media_worker_thread() {
            WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && on_media_worker_thread() {
            WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: WorkerAllocations = WorkerAllocations;

fn skip(why: &str) {
    eprintln!("DPDK backend test not run: {why}");
}

/// Runs `ip <args>`; the error is its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace holding one end of a veth pair (the other end stays here, for DPDK);
/// both are deleted on drop.
struct Namespace {
    name: String,
    /// The end in this namespace: DPDK's.
    host_if: String,
    /// The end in the namespace, with [`PEER_IP`].
    peer_if: String,
}

impl Namespace {
    fn create() -> Result<Namespace, String> {
        let id = std::process::id();
        let ns = Namespace {
            name: format!("sbdpdk{id}"),
            host_if: format!("sbdh{id}"),
            peer_if: format!("sbdp{id}"),
        };
        ip(&["netns", "add", &ns.name])?;
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.peer_if,
        ])?;
        // DPDK is this end's only user: no IPv6 chatter and no forwarding by the kernel.
        for (path, value) in [
            (
                format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ns.host_if),
                "1",
            ),
            (
                format!("/proc/sys/net/ipv4/conf/{}/forwarding", ns.host_if),
                "0",
            ),
        ] {
            std::fs::write(&path, value).map_err(|e| format!("writing {path}: {e}"))?;
        }
        ip(&["link", "set", &ns.peer_if, "netns", &ns.name])?;
        let peer_if = ns.peer_if.clone();
        ns.inside(move || {
            let path = format!("/proc/sys/net/ipv6/conf/{peer_if}/disable_ipv6");
            std::fs::write(&path, "1").map_err(|e| format!("writing {path} in the namespace: {e}"))
        })?;
        for address in [PEER_IP, QUIET_IP] {
            let address = format!("{address}/24");
            ip(&["-n", &ns.name, "addr", "add", &address, "dev", &ns.peer_if])?;
        }
        ip(&["-n", &ns.name, "link", "set", &ns.peer_if, "up"])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        Ok(ns)
    }

    /// Runs `f` on a thread that entered the namespace (sockets it creates stay there).
    fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let file = std::fs::File::open(&path).unwrap();
                    // SAFETY: a namespace file descriptor; affects this thread only.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .unwrap()
        })
    }

    fn host_mac(&self) -> MacAddress {
        let text =
            std::fs::read_to_string(format!("/sys/class/net/{}/address", self.host_if)).unwrap();
        parse_mac(&text)
    }

    /// (/sys shows the namespace it was mounted in, so ask `ip`.)
    fn peer_mac(&self) -> MacAddress {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", &self.peer_if])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        words.find(|w| *w == "link/ether").unwrap();
        parse_mac(words.next().unwrap())
    }

    /// What the namespace's kernel knows about `address` (`ip neigh`).
    fn neighbour(&self, address: Ipv4Addr) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name, "neigh", "show", &address.to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, which takes the pair with it.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

/// A raw packet socket on the namespace's end of the pair, for hand-made frames.
struct FrameSender {
    fd: OwnedFd,
    ifindex: i32,
}

impl FrameSender {
    fn open(ns: &Namespace) -> FrameSender {
        let name = std::ffi::CString::new(ns.peer_if.clone()).unwrap();
        ns.inside(move || {
            // SAFETY: plain socket calls with valid arguments.
            unsafe {
                let fd = libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    i32::from((libc::ETH_P_ALL as u16).to_be()),
                );
                assert!(
                    fd >= 0,
                    "packet socket: {}",
                    std::io::Error::last_os_error()
                );
                let ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
                assert!(ifindex > 0, "if_nametoindex");
                FrameSender {
                    fd: OwnedFd::from_raw_fd(fd),
                    ifindex,
                }
            }
        })
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: sockaddr_ll is plain data; the frame and address are valid for the call.
        unsafe {
            let mut to: libc::sockaddr_ll = std::mem::zeroed();
            to.sll_family = libc::AF_PACKET as u16;
            to.sll_ifindex = self.ifindex;
            to.sll_halen = 6;
            let sent = libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::addr_of!(to).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(
                sent,
                frame.len() as isize,
                "{}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn parse_mac(text: &str) -> MacAddress {
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    MacAddress(bytes.try_into().unwrap())
}

fn rtp(ssrc: u32, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let mut pkt = vec![0u8; 12];
    RtpHeader {
        marker: false,
        payload_type: 0,
        sequence,
        timestamp: u32::from(sequence) * 160,
        ssrc,
    }
    .write(&mut pkt)
    .unwrap();
    pkt.extend_from_slice(payload);
    pkt
}

/// 160 bytes of audio that differ per packet.
fn audio(seed: u16) -> Vec<u8> {
    (0..160u16)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed.wrapping_mul(7))) as u8)
        .collect()
}

/// `from` sends `count` packets to the engine at `to` (5 ms apart); `listener` must hear
/// every payload, in order, as one stream with consecutive sequence numbers.
fn relay_is_intact(
    from: &UdpSocket,
    to: SocketAddr,
    listener: &UdpSocket,
    count: u16,
    first: u16,
    what: &str,
) {
    let sent: Vec<Vec<u8>> = (first..first + count).map(audio).collect();
    for (i, payload) in sent.iter().enumerate() {
        from.send_to(
            &rtp(0xfeed_0000 + u32::from(first), first + i as u16, payload),
            to,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut heard = 0;
    let packets = receive_rtp(listener, Duration::from_secs(5), |_| {
        heard += 1;
        heard >= usize::from(count)
    });
    assert_eq!(
        packets.len(),
        usize::from(count),
        "{what}: every packet arrived"
    );
    let parsed: Vec<_> = packets.iter().map(|(_, p)| parse_rtp(p).unwrap()).collect();
    for (i, (packet, payload)) in parsed.iter().zip(&sent).enumerate() {
        assert_eq!(packet.payload, &payload[..], "{what}: payload {i} intact");
        assert_eq!(packet.payload_type, 0, "{what}");
    }
    for pair in parsed.windows(2) {
        assert_eq!(pair[1].ssrc, pair[0].ssrc, "{what}: one stream");
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "{what}: consecutive"
        );
    }
}

/// An RFC 1071 checksum, to fix up hand-edited IPv4 headers.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn set_ip_field_and_fix_checksum(frame: &mut [u8], at: usize, bytes: &[u8]) {
    frame[at..at + bytes.len()].copy_from_slice(bytes);
    frame[24..26].copy_from_slice(&[0, 0]);
    let sum = checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
}

/// Waits until the process's DPDK counters satisfy `done` (the backend publishes them at
/// each wait), or 5 s.
fn counters_when(done: impl Fn(&DpdkCounters) -> bool) -> DpdkCounters {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = dpdk::counters();
        if done(&now) || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn relays_rtp_for_kernel_phones_in_a_namespace_answers_arp_and_counts_garbage() {
    if let Err(why) = dpdk::available() {
        return skip(&why);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("not root (network namespaces, veth pairs and packet sockets need it)");
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware-cfg/dpdk-veth.toml");
    let example = DpdkConfig::load(&example).unwrap();
    let ns = match Namespace::create() {
        Ok(ns) => ns,
        Err(why) => return skip(&format!("no network namespace with a veth pair: {why}")),
    };
    // The example, on this run's own veth pair.
    let config = DpdkConfig {
        device: format!("net_af_packet0,iface={}", ns.host_if),
        ..example
    };
    if let Err(why) = dpdk::init_eal(&config) {
        return skip(&format!("the DPDK EAL cannot initialise here: {why}"));
    }
    let engine_ip = config.ipv4;

    let dir = TempDir::new("dpdk");
    let mut control = Control::start_configured(&dir.0, &dir.0, 1, 32400, |cfg| {
        cfg.rtp_ip = engine_ip.into();
        cfg.io_backend = IoBackend::Dpdk;
        cfg.dpdk = Some(config.clone());
    });
    std::thread::sleep(Duration::from_millis(200));
    if let Some(ended) = control.ended() {
        panic!("the media plane did not start on the DPDK port: {ended:?}");
    }

    let (caller, callee, stray) = ns.inside(|| {
        let bind = || UdpSocket::bind(SocketAddrV4::new(PEER_IP, 0)).unwrap();
        (bind(), bind(), bind())
    });
    let (a, b) = (SessionId(1), SessionId(2));
    let port_a = control.open(0, a, caller.local_addr().unwrap(), Codec::Pcmu);
    let port_b = control.open(0, b, callee.local_addr().unwrap(), Codec::Pcmu);
    control.send(
        0,
        MediaCommand::Bridge {
            session: a,
            peer: b,
        },
    );
    let bridged = wait_event(&mut control, 0, "Bridged", |e| {
        matches!(e, Event::Bridged { .. } | Event::SessionFailed { .. })
    });
    assert_eq!(
        bridged,
        Event::Bridged {
            session: a,
            peer: b
        }
    );
    let engine_a = SocketAddr::from((engine_ip, port_a));
    let engine_b = SocketAddr::from((engine_ip, port_b));

    // Caller → callee, then back: the namespace's kernel ARPs for the engine first. From
    // the second direction on, the worker must not allocate.
    relay_is_intact(&caller, engine_a, &callee, 25, 0, "caller to callee");
    COUNTING.store(true, Ordering::Relaxed);
    relay_is_intact(&callee, engine_b, &caller, 25, 100, "callee to caller");
    let host_mac = ns.host_mac();
    let neighbour = ns.neighbour(engine_ip);
    assert!(
        neighbour.contains(&host_mac.to_string()),
        "the namespace learned the engine's MAC {host_mac} by ARP: {neighbour:?}"
    );
    let after_relay = counters_when(|c| c.datagrams_received >= 50);
    assert!(after_relay.arp_requests_answered >= 1, "{after_relay:#?}");
    assert!(after_relay.datagrams_received >= 50, "{after_relay:#?}");
    assert!(after_relay.frames_sent >= 50, "{after_relay:#?}");
    assert_eq!(
        after_relay.send_no_neighbour, 0,
        "peers learned from their packets"
    );

    // Garbage, each kind once, from a packet socket in the namespace.
    let errors_before = control
        .segment
        .worker_stats(0)
        .snapshot()
        .drops_receive_error;
    let frames = FrameSender::open(&ns);
    let peer_mac = ns.peer_mac();
    let header = UdpFrameHeader {
        source_mac: peer_mac,
        destination_mac: host_mac,
        source: SocketAddrV4::new(PEER_IP, 40000),
        destination: SocketAddrV4::new(engine_ip, port_a),
        identification: 1,
    };
    let mut good = vec![0u8; 2048];
    let len = write_udp_frame(&mut good, &header, &rtp(1, 1, &audio(1))).unwrap();
    good.truncate(len);
    // Another ethertype.
    let mut other_ethertype = good.clone();
    other_ethertype[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    frames.send(&other_ethertype);
    // IPv4 cut short: the header claims more than the frame holds.
    let mut truncated = good.clone();
    set_ip_field_and_fix_checksum(&mut truncated, 16, &1400u16.to_be_bytes());
    frames.send(&truncated);
    // (No fragment: net_af_packet joins a PACKET_FANOUT group with the DEFRAG flag, so the
    // kernel holds fragments for reassembly and a lone one never reaches the backend. The
    // fragment check is unit-tested in packet_io::frame.)
    // ICMP to the engine.
    let mut icmp = good.clone();
    set_ip_field_and_fix_checksum(&mut icmp, 23, &[1]);
    frames.send(&icmp);
    // UDP for another address on the link.
    let mut elsewhere = good.clone();
    set_ip_field_and_fix_checksum(&mut elsewhere, 30, &[10, 211, 0, 99]);
    frames.send(&elsewhere);
    // A datagram to a port no session has.
    stray
        .send_to(b"nobody listens here", SocketAddr::from((engine_ip, 9)))
        .unwrap();
    let garbage = counters_when(|c| {
        c.dropped_not_ipv4 > after_relay.dropped_not_ipv4
            && c.dropped_malformed > after_relay.dropped_malformed
            && c.dropped_not_udp > after_relay.dropped_not_udp
            && c.dropped_other_destination > after_relay.dropped_other_destination
            && c.dropped_unknown_port > after_relay.dropped_unknown_port
    });
    let delta = |f: fn(&DpdkCounters) -> u64| f(&garbage) - f(&after_relay);
    assert_eq!(delta(|c| c.dropped_not_ipv4), 1, "{garbage:#?}");
    assert_eq!(delta(|c| c.dropped_malformed), 1, "{garbage:#?}");
    assert_eq!(delta(|c| c.dropped_not_udp), 1, "{garbage:#?}");
    assert_eq!(delta(|c| c.dropped_other_destination), 1, "{garbage:#?}");
    assert_eq!(delta(|c| c.dropped_unknown_port), 1, "{garbage:#?}");
    // Frames for this host that reached no session are receive errors in the worker's stats.
    let deadline = Instant::now() + Duration::from_secs(5);
    let errors = loop {
        let errors = control
            .segment
            .worker_stats(0)
            .snapshot()
            .drops_receive_error;
        if errors >= errors_before + 2 || Instant::now() > deadline {
            break errors;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        errors - errors_before,
        2,
        "the malformed frame and the unknown port"
    );

    // None of it disturbed the bridge.
    relay_is_intact(&caller, engine_a, &callee, 10, 200, "after the garbage");
    COUNTING.store(false, Ordering::Relaxed);
    assert_eq!(
        WORKER_ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "the worker allocated while relaying, answering ARP or dropping garbage"
    );
    assert!(
        control.ended().is_none(),
        "the media plane is still running"
    );
    control.stop().unwrap();
    // The port was closed: counters were published one last time and stay put.
    let closed = dpdk::counters();
    assert!(closed.datagrams_received >= 60, "{closed:#?}");
}
