//! The load generator: one thread per generator core, each owning a few UDP sockets and a
//! share of the streams. A thread sends every stream's packets on a fixed grid (stream `k`
//! of `n` is phase-shifted by `k/n` of a ptime, so the load is smooth, not a burst per
//! ptime), batched per socket with `sendmmsg`, and between sends reads its sockets with
//! `recvmmsg`, matching each packet to its stream by the [probe](crate::probe) in its
//! payload and accounting it in that stream's [`StreamTally`].
//!
//! A call's two legs face two of the thread's sockets, so both directions of a call are
//! sent and received by the same thread. In the mix mode every member of a conference has a
//! socket of its own on the same thread, writes its probe in its own slot of the payload (so
//! the sum the engine sends back keeps every other member's probe intact), and reads the
//! probe of the member before it in the conference: each member's stream is accounted once,
//! as its successor hears it. Sockets are bound to an even port with the odd
//! port above held too, so RTCP an engine might send to "RTP port + 1" lands on a socket of
//! ours. Arrival times are the kernel's receive timestamps (`SO_TIMESTAMPNS`), so time a
//! packet waited in our socket buffer is not charged to the engine.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use media::rtp::{parse_rtp, RtpHeader, RTP_HEADER_LEN};
use shmq::Codec;

use crate::histogram::Histogram;
use crate::probe::{fill_silence, read_probe, write_probe, Probe};
use crate::stats::{Arrival, StreamTally, Summary, Window};
use crate::sys;

/// Packets sent per `sendmmsg`: small, so the send stamp (taken just before the call) is
/// close to when the last packet of the batch really left.
const SEND_BATCH: usize = 16;
/// Datagrams read per `recvmmsg`.
const RECEIVE_BATCH: usize = 64;
/// Largest datagram we expect back (120 ms of G.711 plus a generous header).
const DATAGRAM_LEN: usize = 1200;
/// Packets staged per loop iteration before the sockets are read again.
const SEND_BUDGET: usize = 256;
/// `recvmmsg` calls per ready socket per iteration, so sending is never starved.
const RECEIVE_ROUNDS: usize = 8;
/// Longest sleep, so the stop flag is seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Send and receive buffer of each generator socket.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// One generator socket: RTP on an even port, the odd port above held for RTCP.
#[derive(Debug)]
pub struct GeneratorSocket {
    rtp: UdpSocket,
    _rtcp: UdpSocket,
    address: SocketAddrV4,
}

impl GeneratorSocket {
    /// Binds a kernel-chosen even port on `ip` and the odd port above it.
    pub fn bind(ip: Ipv4Addr) -> io::Result<GeneratorSocket> {
        // Ports tried and rejected stay bound until we are done, so they are not offered again.
        let mut rejected = Vec::new();
        for _ in 0..200 {
            let rtp = UdpSocket::bind(SocketAddrV4::new(ip, 0))?;
            let address = sys::local_v4(&rtp)?;
            if address.port() % 2 == 0 {
                if let Ok(rtcp) = UdpSocket::bind(SocketAddrV4::new(ip, address.port() + 1)) {
                    sys::prepare_socket(&rtp, SOCKET_BUFFER_BYTES)?;
                    rtcp.set_nonblocking(true)?;
                    return Ok(GeneratorSocket {
                        rtp,
                        _rtcp: rtcp,
                        address,
                    });
                }
            }
            rejected.push(rtp);
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no free even/odd UDP port pair for a generator socket",
        ))
    }

    pub fn address(&self) -> SocketAddrV4 {
        self.address
    }
}

/// One stream as its generator thread sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPlan {
    /// Global stream id, carried in the probe.
    pub id: u32,
    /// Index of the sending socket among the thread's sockets.
    pub socket: usize,
    /// Where the stream's packets go (the engine's port facing that socket).
    pub destination: SocketAddrV4,
    pub send_codec: Codec,
    /// The codec the stream comes back in (the other leg's).
    pub receive_codec: Codec,
    /// Where in the payload its probe goes (0 but in the mix mode).
    pub probe_offset: usize,
}

/// Where a socket finds the probe of the stream it hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Listen {
    /// Offset of the probe in the payloads the socket receives.
    pub probe_offset: usize,
    /// A payload without a readable probe in the slot is expected now and then: a
    /// conference member hears silence until the member before it is mixed in, and the
    /// engine's loss concealment (a fading repeat) after its last packet. Not counted as
    /// unreadable (a probe that never arrives is still lost).
    pub missing_probe_is_expected: bool,
}

/// When a run sends and measures, in CLOCK_REALTIME nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub ptime_ms: u16,
    /// The first packets are due here.
    pub start_ns: u64,
    /// Packets sent in the window are measured; sending stops at its end.
    pub window: Window,
    /// Receiving stops here: whatever has not arrived by then is lost.
    pub receive_until_ns: u64,
}

/// Totals the controller shows while a run is going.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

/// Everything one generator thread needs.
pub struct GeneratorThread {
    pub sockets: Vec<GeneratorSocket>,
    pub streams: Vec<StreamPlan>,
    /// How each socket reads what it receives (by socket index; missing: the default).
    pub listen: Vec<Listen>,
    /// Number of streams over all threads (ids are below it).
    pub total_streams: usize,
    pub core: Option<usize>,
    pub timing: Timing,
    pub progress: Arc<Progress>,
    pub stop: Arc<AtomicBool>,
}

impl GeneratorThread {
    /// Runs the thread as `bench-gen-<index>`.
    pub fn spawn(self, index: usize) -> io::Result<JoinHandle<io::Result<Summary>>> {
        std::thread::Builder::new()
            .name(format!("bench-gen-{index}"))
            .spawn(move || self.run())
    }

    /// Sends and receives until `timing.receive_until_ns` (or the stop flag); returns what
    /// was measured.
    pub fn run(self) -> io::Result<Summary> {
        if let Some(core) = self.core {
            sys::pin_current_thread(&[core])?;
        }
        let mut state = LoopState::new(&self)?;
        let epoll = sys::Epoll::new(self.sockets.len())?;
        for (index, socket) in self.sockets.iter().enumerate() {
            epoll.add(socket.rtp.as_raw_fd(), index as u64)?;
        }
        state.run(&self, epoll)?;
        Ok(state.summary())
    }
}

/// A packet waiting in a socket's batch: which stream, and when it was due.
#[derive(Debug, Clone, Copy)]
struct Staged {
    stream: usize,
    due_ns: u64,
}

/// One socket's outgoing batch.
struct SendQueue {
    staged: Vec<Staged>,
    buffers: Vec<Vec<u8>>,
    destinations: Vec<libc::sockaddr_in>,
}

struct LoopState {
    tallies: Vec<StreamTally>,
    /// Global stream id → index into `streams`, or `usize::MAX` if not this thread's.
    local_index: Vec<usize>,
    destinations: Vec<libc::sockaddr_in>,
    phases_ns: Vec<u64>,
    ptime_ns: u64,
    samples_per_packet: u32,
    queues: Vec<SendQueue>,
    receive: sys::ReceiveBatch,
    latency: Histogram,
    unreadable: u64,
    wrong_codec: u64,
    late_sends: u64,
    send_errors: u64,
    next_slot: u64,
}

impl LoopState {
    fn new(plan: &GeneratorThread) -> io::Result<LoopState> {
        let streams = plan.streams.len() as u64;
        let ptime_ns = u64::from(plan.timing.ptime_ms) * 1_000_000;
        let samples_per_packet = u32::from(plan.timing.ptime_ms) * 8;
        let packet_len = RTP_HEADER_LEN + samples_per_packet as usize;
        let mut local_index = vec![usize::MAX; plan.total_streams];
        for (index, stream) in plan.streams.iter().enumerate() {
            let slot = local_index.get_mut(stream.id as usize).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "stream id {} beyond {} streams",
                        stream.id, plan.total_streams
                    ),
                )
            })?;
            *slot = index;
            if stream.socket >= plan.sockets.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "stream {} sends from socket {} of {}",
                        stream.id,
                        stream.socket,
                        plan.sockets.len()
                    ),
                ));
            }
        }
        Ok(LoopState {
            tallies: plan
                .streams
                .iter()
                .map(|_| StreamTally::new(plan.timing.window))
                .collect(),
            local_index,
            destinations: plan
                .streams
                .iter()
                .map(|stream| sys::sockaddr_in(stream.destination))
                .collect(),
            phases_ns: (0..streams)
                .map(|k| k * ptime_ns / streams.max(1))
                .collect(),
            ptime_ns,
            samples_per_packet,
            queues: plan
                .sockets
                .iter()
                .map(|_| SendQueue {
                    staged: Vec::with_capacity(SEND_BATCH),
                    buffers: vec![vec![0u8; packet_len]; SEND_BATCH],
                    destinations: Vec::with_capacity(SEND_BATCH),
                })
                .collect(),
            receive: sys::ReceiveBatch::new(RECEIVE_BATCH, DATAGRAM_LEN),
            latency: Histogram::new(),
            unreadable: 0,
            wrong_codec: 0,
            late_sends: 0,
            send_errors: 0,
            next_slot: 0,
        })
    }

    /// When slot `slot` (round `slot / n`, stream `slot % n`) is due.
    fn due_ns(&self, start_ns: u64, slot: u64) -> Option<u64> {
        let streams = self.phases_ns.len() as u64;
        if streams == 0 {
            return None;
        }
        let phase = *self.phases_ns.get((slot % streams) as usize)?;
        Some(start_ns + (slot / streams) * self.ptime_ns + phase)
    }

    fn run(&mut self, plan: &GeneratorThread, mut epoll: sys::Epoll) -> io::Result<()> {
        let timing = plan.timing;
        let mut ready = Vec::with_capacity(plan.sockets.len());
        loop {
            if plan.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let now = sys::realtime_ns();
            if now >= timing.receive_until_ns {
                return Ok(());
            }
            // Stage and send everything due (up to a budget).
            let mut budget = SEND_BUDGET;
            while budget > 0 {
                let Some(due) = self.due_ns(timing.start_ns, self.next_slot) else {
                    break;
                };
                if due > now || due >= timing.window.end_ns {
                    break;
                }
                let stream = (self.next_slot % self.phases_ns.len() as u64) as usize;
                self.stage(plan, stream, due);
                self.next_slot += 1;
                budget -= 1;
            }
            for socket in 0..self.queues.len() {
                self.flush(plan, socket);
            }
            // Sleep until the next packet is due (not at all if the budget ran out).
            let next = match self.due_ns(timing.start_ns, self.next_slot) {
                Some(due) if due < timing.window.end_ns => due,
                _ => timing.receive_until_ns,
            };
            let wait = if budget == 0 {
                Duration::ZERO
            } else {
                Duration::from_nanos(next.saturating_sub(sys::realtime_ns())).min(MAX_WAIT)
            };
            epoll.wait(wait, &mut ready)?;
            for token in &ready {
                self.drain(plan, *token as usize)?;
            }
        }
    }

    fn stage(&mut self, plan: &GeneratorThread, stream: usize, due_ns: u64) {
        let Some(socket) = plan.streams.get(stream).map(|s| s.socket) else {
            return;
        };
        let full = match self.queues.get_mut(socket) {
            Some(queue) => {
                queue.staged.push(Staged { stream, due_ns });
                queue.staged.len() >= SEND_BATCH
            }
            None => false,
        };
        if full {
            self.flush(plan, socket);
        }
    }

    /// Stamps and sends one socket's staged packets.
    fn flush(&mut self, plan: &GeneratorThread, socket_index: usize) {
        let (Some(queue), Some(socket)) = (
            self.queues.get_mut(socket_index),
            plan.sockets.get(socket_index),
        ) else {
            return;
        };
        if queue.staged.is_empty() {
            return;
        }
        let now = sys::realtime_ns();
        queue.destinations.clear();
        // `stage` only queues valid stream indices, so every staged packet gets a buffer
        // and a destination, in order.
        for staged in &queue.staged {
            let (Some(stream), Some(tally), Some(destination), Some(buffer)) = (
                plan.streams.get(staged.stream),
                self.tallies.get_mut(staged.stream),
                self.destinations.get(staged.stream),
                queue.buffers.get_mut(queue.destinations.len()),
            ) else {
                continue;
            };
            if now.saturating_sub(staged.due_ns) > self.ptime_ns / 2
                && plan.timing.window.contains(now)
            {
                self.late_sends += 1;
            }
            let sequence = tally.next_send(now);
            let header = RtpHeader {
                marker: sequence == 0,
                payload_type: stream.send_codec.payload_type(),
                sequence: sequence as u16,
                timestamp: sequence.wrapping_mul(self.samples_per_packet),
                ssrc: 0x5B00_0000 ^ stream.id,
            };
            let _ = header.write(buffer);
            if let Some(payload) = buffer.get_mut(RTP_HEADER_LEN..) {
                fill_silence(stream.send_codec, payload);
                let probe = Probe {
                    stream: stream.id,
                    sequence,
                    sent_ns: now,
                };
                if let Some(slot) = payload.get_mut(stream.probe_offset..) {
                    write_probe(&probe, stream.send_codec, slot);
                }
            }
            queue.destinations.push(*destination);
        }
        let sent = sys::send_batch(&socket.rtp, &queue.buffers, &queue.destinations).unwrap_or(0);
        // What the kernel refused was never offered to the engine: not counted as sent.
        for staged in queue.staged.iter().skip(sent) {
            if let Some(tally) = self.tallies.get_mut(staged.stream) {
                tally.cancel_send(now);
            }
            self.send_errors += 1;
        }
        plan.progress.sent.fetch_add(sent as u64, Ordering::Relaxed);
        queue.staged.clear();
    }

    /// Reads what is waiting on one socket.
    fn drain(&mut self, plan: &GeneratorThread, socket_index: usize) -> io::Result<()> {
        let Some(socket) = plan.sockets.get(socket_index) else {
            return Ok(());
        };
        let listen = plan.listen.get(socket_index).copied().unwrap_or_default();
        for _ in 0..RECEIVE_ROUNDS {
            let count = self.receive.receive(&socket.rtp)?;
            if count == 0 {
                return Ok(());
            }
            let fallback_arrival = sys::realtime_ns();
            let mut arrived = 0u64;
            for index in 0..count {
                let Some((datagram, stamp)) = self.receive.datagram(index) else {
                    continue;
                };
                let arrival = stamp.unwrap_or(fallback_arrival);
                match account(
                    datagram,
                    arrival,
                    listen,
                    &plan.streams,
                    &self.local_index,
                    &mut self.tallies,
                    &mut self.latency,
                ) {
                    Accounted::Arrived => arrived += 1,
                    Accounted::Unreadable => self.unreadable += 1,
                    Accounted::WrongCodec => self.wrong_codec += 1,
                    Accounted::NoProbe => {}
                }
            }
            plan.progress.received.fetch_add(arrived, Ordering::Relaxed);
            if count < RECEIVE_BATCH {
                return Ok(());
            }
        }
        Ok(())
    }

    fn summary(&mut self) -> Summary {
        let mut summary = Summary {
            unreadable: self.unreadable,
            wrong_codec: self.wrong_codec,
            late_sends: self.late_sends,
            send_errors: self.send_errors,
            latency: std::mem::take(&mut self.latency),
            ..Summary::default()
        };
        summary.add_streams(&self.tallies);
        summary
    }
}

/// What a received datagram turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accounted {
    /// A packet of one of our streams (counted, or a duplicate or warm-up one).
    Arrived,
    Unreadable,
    WrongCodec,
    /// No probe where the socket expects that now and then (ignored).
    NoProbe,
}

/// Matches a datagram to its stream and accounts it (pure apart from the tallies).
fn account(
    datagram: &[u8],
    arrival_ns: u64,
    listen: Listen,
    streams: &[StreamPlan],
    local_index: &[usize],
    tallies: &mut [StreamTally],
    latency: &mut Histogram,
) -> Accounted {
    let Ok(packet) = parse_rtp(datagram) else {
        return Accounted::Unreadable;
    };
    let Some(codec) = Codec::from_payload_type(packet.payload_type) else {
        return Accounted::Unreadable;
    };
    let slot = packet
        .payload
        .get(listen.probe_offset..)
        .unwrap_or_default();
    let probe = match read_probe(slot, codec) {
        Ok(probe) => probe,
        Err(_) if listen.missing_probe_is_expected => return Accounted::NoProbe,
        Err(_) => return Accounted::Unreadable,
    };
    let Some(index) = local_index.get(probe.stream as usize).copied() else {
        return Accounted::Unreadable;
    };
    let (Some(stream), Some(tally)) = (streams.get(index), tallies.get_mut(index)) else {
        return Accounted::Unreadable;
    };
    if codec != stream.receive_codec {
        return Accounted::WrongCodec;
    }
    match tally.on_receive(&probe, arrival_ns, latency) {
        Arrival::Invalid => Accounted::Unreadable,
        Arrival::Counted | Arrival::OutsideWindow | Arrival::Duplicate => Accounted::Arrived,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: u32, receive_codec: Codec) -> StreamPlan {
        StreamPlan {
            id,
            socket: 0,
            destination: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
            send_codec: Codec::Pcmu,
            receive_codec,
            probe_offset: 0,
        }
    }

    fn datagram(stream: u32, sequence: u32, sent_ns: u64, codec: Codec) -> Vec<u8> {
        let mut packet = vec![0u8; RTP_HEADER_LEN + 160];
        RtpHeader {
            marker: false,
            payload_type: codec.payload_type(),
            sequence: 999,
            timestamp: 1,
            ssrc: 2,
        }
        .write(&mut packet)
        .unwrap();
        fill_silence(codec, &mut packet[RTP_HEADER_LEN..]);
        let probe = Probe {
            stream,
            sequence,
            sent_ns,
        };
        assert!(write_probe(&probe, codec, &mut packet[RTP_HEADER_LEN..]));
        packet
    }

    #[test]
    fn accounts_by_probe_not_by_header() {
        let window = Window {
            start_ns: 0,
            end_ns: 1_000_000,
        };
        // Global streams 0..3; this thread has 1 (PCMA back) and 2 (PCMU back).
        let streams = [plan(1, Codec::Pcma), plan(2, Codec::Pcmu)];
        let local_index = [usize::MAX, 0, 1];
        let mut tallies = vec![StreamTally::new(window), StreamTally::new(window)];
        tallies[0].next_send(100);
        tallies[1].next_send(100);
        let mut latency = Histogram::new();
        let mut go = |bytes: &[u8], tallies: &mut [StreamTally]| {
            account(
                bytes,
                600,
                Listen::default(),
                &streams,
                &local_index,
                tallies,
                &mut latency,
            )
        };
        assert_eq!(
            go(&datagram(1, 0, 100, Codec::Pcma), &mut tallies),
            Accounted::Arrived
        );
        assert_eq!(
            go(&datagram(2, 0, 100, Codec::Pcmu), &mut tallies),
            Accounted::Arrived
        );
        assert_eq!(
            go(&datagram(2, 0, 100, Codec::Pcmu), &mut tallies),
            Accounted::Arrived,
            "duplicate"
        );
        assert_eq!(
            go(&datagram(1, 0, 100, Codec::Pcmu), &mut tallies),
            Accounted::WrongCodec
        );
        assert_eq!(
            go(&datagram(0, 0, 100, Codec::Pcmu), &mut tallies),
            Accounted::Unreadable,
            "not ours"
        );
        assert_eq!(
            go(&datagram(7, 0, 100, Codec::Pcmu), &mut tallies),
            Accounted::Unreadable,
            "no such stream"
        );
        assert_eq!(
            go(&datagram(1, 5, 100, Codec::Pcma), &mut tallies),
            Accounted::Unreadable,
            "never sent"
        );
        assert_eq!(go(b"\x80\x00short", &mut tallies), Accounted::Unreadable);
        assert_eq!(
            go(&[0u8; 40], &mut tallies),
            Accounted::Unreadable,
            "not RTP v2"
        );
        let mut dynamic = datagram(1, 0, 100, Codec::Pcma);
        dynamic[1] = 96;
        assert_eq!(go(&dynamic, &mut tallies), Accounted::Unreadable);
        assert_eq!(tallies[0].received(), 1);
        assert_eq!(tallies[1].received(), 1);
        assert_eq!(latency.count(), 2);
        assert_eq!(latency.quantile(0.5), Some(500));
    }

    #[test]
    fn a_mix_member_reads_the_probe_in_its_predecessors_slot() {
        use crate::probe::PROBE_LEN;
        let window = Window {
            start_ns: 0,
            end_ns: 1_000_000,
        };
        let streams = [plan(0, Codec::Pcmu), plan(1, Codec::Pcmu)];
        let local_index = [0, 1];
        let mut tallies = vec![StreamTally::new(window), StreamTally::new(window)];
        tallies[0].next_send(100);
        tallies[1].next_send(100);
        // What the engine mixes for a third member: stream 0's probe in slot 0 and stream
        // 1's in slot 1, the rest silence.
        let mut packet = datagram(0, 0, 100, Codec::Pcmu);
        let second = datagram(1, 0, 100, Codec::Pcmu);
        packet[RTP_HEADER_LEN + PROBE_LEN..RTP_HEADER_LEN + 2 * PROBE_LEN]
            .copy_from_slice(&second[RTP_HEADER_LEN..RTP_HEADER_LEN + PROBE_LEN]);
        let mut latency = Histogram::new();
        let member = Listen {
            probe_offset: PROBE_LEN,
            missing_probe_is_expected: true,
        };
        let mut go = |bytes: &[u8], listen: Listen, tallies: &mut [StreamTally]| {
            account(
                bytes,
                600,
                listen,
                &streams,
                &local_index,
                tallies,
                &mut latency,
            )
        };
        assert_eq!(go(&packet, member, &mut tallies), Accounted::Arrived);
        assert_eq!((tallies[0].received(), tallies[1].received()), (0, 1));
        let mut quiet = packet.clone();
        fill_silence(Codec::Pcmu, &mut quiet[RTP_HEADER_LEN..]);
        assert_eq!(go(&quiet, member, &mut tallies), Accounted::NoProbe);
        assert_eq!(
            go(&quiet, Listen::default(), &mut tallies),
            Accounted::Unreadable,
            "silence is unreadable where a probe is always expected"
        );
        // Stream 0's probe, but read in slot 1: not this member's predecessor.
        let first_only = datagram(0, 0, 100, Codec::Pcmu);
        assert_eq!(go(&first_only, member, &mut tallies), Accounted::NoProbe);
        assert_eq!(tallies[0].received(), 0);
    }

    #[test]
    fn sockets_hold_an_even_odd_pair() {
        let socket = GeneratorSocket::bind(Ipv4Addr::LOCALHOST).unwrap();
        let port = socket.address().port();
        assert_eq!(port % 2, 0);
        assert!(UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port + 1)).is_err());
    }
}
