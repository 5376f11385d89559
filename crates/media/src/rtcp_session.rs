//! The RTCP side of one RTP session (RFC 3550 §6), sans-IO: the receive statistics of the
//! far end's stream, when our next compound report is due (every 5 s randomised to
//! 2.5–7.5 s, the first after half that) and what it holds (an SR if we sent RTP since the
//! last report, else an RR; one report block about the stream we receive; SDES CNAME; BYE at
//! the end), where it goes, and what the far end's reports say about our stream (its loss and
//! jitter, and the round-trip time from a block that echoes one of our SRs).
//!
//! Where reports go: the source of the far end's last accepted RTCP (out of the socket it
//! arrived on, so RTCP multiplexed on the RTP port (RFC 5761) is answered the same way);
//! before any, the RTP destination's port + 1. A session that never sent nor received RTP
//! sends no reports. The owner ([`crate::session::Session`]) feeds it packets and time;
//! nothing here touches a socket, a clock or the allocator.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shmq::{Codec, Qos, RemoteQos};

use crate::rtcp::{
    ntp_middle, parse_compound, short_ntp_micros, to_short_ntp, Cname, CompoundReport, ReportBlock,
    RtcpPacket, SenderInfo,
};
use crate::rtp_stats::ReceiveStats;

/// The RFC 3550 minimum report interval (the bandwidth share of a G.711 call never asks for
/// more); each actual interval is this times a random factor in 0.5..1.5.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// RTP timestamp units per second of G.711 and RFC 4733 telephone events.
const CLOCK_RATE: u128 = 8000;
/// Microseconds per RTP timestamp unit at 8 kHz.
const MICROS_PER_UNIT: u32 = 125;
/// A round trip computed this little below zero (1/65536 s units, about 1 ms) is rounding
/// in the far end's DLSR on a fast path: taken as the shortest measurable. Below: bogus.
const RTT_ROUNDING: i32 = 65;

/// What the session's sending side looks like when a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderState {
    pub ssrc: u32,
    /// RTP packets sent, paced and forwarded.
    pub packets_sent: u64,
    /// Their payload octets (headers excluded).
    pub octets_sent: u64,
    /// The RTP timestamp a packet sent now would carry.
    pub rtp_timestamp: u32,
    /// Where RTP goes now.
    pub rtp_remote: SocketAddr,
}

/// A compound RTCP packet written into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpTransmit {
    pub len: usize,
    pub destination: SocketAddr,
    /// Send it from the RTP socket (the far end multiplexes RTCP on its RTP port), else from
    /// the RTCP socket (RTP port + 1).
    pub from_rtp_port: bool,
}

/// What a received RTCP datagram turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpReceived {
    /// A valid compound from the far end: taken into account.
    Accepted,
    /// Valid, but from a source that is not the far end.
    Ignored,
    /// Not a valid compound RTCP packet.
    Malformed,
}

/// The last SR received: for the LSR/DLSR fields of our report block about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LastSenderReport {
    ssrc: u32,
    ntp_middle: u32,
    arrived: Instant,
}

/// Round-trip times measured from the far end's report blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RoundTrips {
    last_us: u32,
    max_us: u32,
    sum_us: u64,
    count: u32,
}

/// One session's RTCP state.
#[derive(Debug, Clone)]
pub struct RtcpSession {
    /// The origin of arrival times for jitter.
    epoch: Instant,
    receive: ReceiveStats,
    /// Where the far end's accepted RTCP came from, and whether it came to our RTP port.
    peer: Option<(SocketAddr, bool)>,
    next_report: Instant,
    /// xorshift32 state for the interval's random factor.
    rng: u32,
    packets_sent_at_report: u64,
    last_sr: Option<LastSenderReport>,
    /// The fraction lost of our last report's interval.
    fraction_lost: u8,
    remote: Option<RemoteQos>,
    /// Sum and count of the jitter values the far end reported, for their mean.
    remote_jitter_sum_us: u64,
    remote_reports: u32,
    round_trips: RoundTrips,
}

impl RtcpSession {
    /// A session created at `now`; `seed` (anything varying per session) randomises the
    /// report intervals.
    pub fn new(now: Instant, seed: u32) -> RtcpSession {
        let mut rtcp = RtcpSession {
            epoch: now,
            receive: ReceiveStats::new(),
            peer: None,
            next_report: now,
            rng: seed | 1,
            packets_sent_at_report: 0,
            last_sr: None,
            fraction_lost: 0,
            remote: None,
            remote_jitter_sum_us: 0,
            remote_reports: 0,
            round_trips: RoundTrips::default(),
        };
        // RFC 3550 6.2: the first report may go after half the minimum interval.
        rtcp.next_report = now + rtcp.randomised(REPORT_INTERVAL / 2);
        rtcp
    }

    /// `base` times a random factor in 0.5..1.5.
    fn randomised(&mut self, base: Duration) -> Duration {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        base / 2 + base.mul_f64(f64::from(x % 1000) / 1000.0)
    }

    /// When the next report is due.
    pub fn next_report_at(&self) -> Instant {
        self.next_report
    }

    /// The receive statistics of the far end's stream.
    pub fn receive_stats(&self) -> &ReceiveStats {
        &self.receive
    }

    /// The far end moved (a new answer): RTCP goes to the new RTP address's port + 1 until
    /// it sends RTCP again.
    pub fn forget_peer(&mut self) {
        self.peer = None;
    }

    /// Accounts an RTP packet the session accepted from the far end at `now`.
    /// `for_jitter`: its timestamp follows the audio clock (not an RFC 4733 event).
    pub fn on_rtp(
        &mut self,
        now: Instant,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        for_jitter: bool,
    ) {
        // Arrival in 8 kHz units since the epoch; wrapping is what the arithmetic wants.
        let arrival =
            (now.saturating_duration_since(self.epoch).as_micros() * CLOCK_RATE / 1_000_000) as u32;
        self.receive
            .on_packet(ssrc, sequence, timestamp, arrival, for_jitter);
    }

    /// Consumes a datagram that should be RTCP, received from `source` at `now` (`ntp_now`
    /// its NTP timestamp), on the RTP port (multiplexed) or the RTCP port. Compounds are
    /// accepted from the far end only: a sender SSRC of the stream we receive, or the IP
    /// address RTP goes to.
    #[allow(clippy::too_many_arguments)]
    pub fn handle(
        &mut self,
        now: Instant,
        ntp_now: u64,
        our_ssrc: u32,
        source: SocketAddr,
        datagram: &[u8],
        on_rtp_port: bool,
        rtp_remote: SocketAddr,
        latched_ssrc: Option<u32>,
    ) -> RtcpReceived {
        let Ok(compound) = parse_compound(datagram) else {
            return RtcpReceived::Malformed;
        };
        let sender = match compound.clone().next() {
            Some(
                RtcpPacket::SenderReport { ssrc, .. } | RtcpPacket::ReceiverReport { ssrc, .. },
            ) => ssrc,
            _ => return RtcpReceived::Malformed,
        };
        let known_stream = latched_ssrc == Some(sender) || self.receive.ssrc() == Some(sender);
        if !known_stream && source.ip() != rtp_remote.ip() {
            return RtcpReceived::Ignored;
        }
        self.peer = Some((source, on_rtp_port));
        for packet in compound {
            match packet {
                RtcpPacket::SenderReport { ssrc, info, blocks } => {
                    self.last_sr = Some(LastSenderReport {
                        ssrc,
                        ntp_middle: ntp_middle(info.ntp),
                        arrived: now,
                    });
                    self.take_blocks(blocks, our_ssrc, ntp_now);
                }
                RtcpPacket::ReceiverReport { blocks, .. } => {
                    self.take_blocks(blocks, our_ssrc, ntp_now);
                }
                _ => {}
            }
        }
        RtcpReceived::Accepted
    }

    /// Takes in the report blocks about our stream.
    fn take_blocks(
        &mut self,
        blocks: impl Iterator<Item = ReportBlock>,
        our_ssrc: u32,
        ntp_now: u64,
    ) {
        for block in blocks.filter(|b| b.ssrc == our_ssrc) {
            let jitter_us = block.jitter.saturating_mul(MICROS_PER_UNIT);
            let jitter_max_us = self.remote.map_or(0, |r| r.jitter_max_us).max(jitter_us);
            self.remote_jitter_sum_us = self
                .remote_jitter_sum_us
                .saturating_add(u64::from(jitter_us));
            self.remote_reports = self.remote_reports.saturating_add(1);
            let jitter_avg_us = self.remote_jitter_sum_us / u64::from(self.remote_reports);
            self.remote = Some(RemoteQos {
                fraction_lost: block.fraction_lost,
                packets_lost: block.cumulative_lost,
                jitter_us,
                jitter_max_us,
                jitter_avg_us: u32::try_from(jitter_avg_us).unwrap_or(u32::MAX),
            });
            if block.last_sr == 0 {
                continue;
            }
            // RFC 3550 6.4.1: RTT = A − LSR − DLSR, in 1/65536 s.
            let units = ntp_middle(ntp_now)
                .wrapping_sub(block.last_sr)
                .wrapping_sub(block.delay_since_last_sr) as i32;
            if units < -RTT_ROUNDING {
                continue;
            }
            let rtt_us = short_ntp_micros(units.max(0) as u32).max(1);
            let rtt = &mut self.round_trips;
            rtt.last_us = rtt_us;
            rtt.max_us = rtt.max_us.max(rtt_us);
            rtt.sum_us = rtt.sum_us.saturating_add(u64::from(rtt_us));
            rtt.count = rtt.count.saturating_add(1);
        }
    }

    /// Where our reports go and whether from the RTP socket; `None` if nowhere (port 65535).
    fn destination(&self, rtp_remote: SocketAddr) -> Option<(SocketAddr, bool)> {
        match self.peer {
            Some(peer) => Some(peer),
            None => {
                let port = rtp_remote.port().checked_add(1)?;
                Some((SocketAddr::new(rtp_remote.ip(), port), false))
            }
        }
    }

    /// If a report is due at `now`, writes it into `out` (at least
    /// [`crate::rtcp::MAX_REPORT_LEN`] bytes) and schedules the next one. `None` when not
    /// due, or when the session has had no RTP either way (nothing to report; the next
    /// one is scheduled all the same).
    pub fn poll_report(
        &mut self,
        now: Instant,
        ntp_now: u64,
        sender: &SenderState,
        out: &mut [u8],
    ) -> Option<RtcpTransmit> {
        if now < self.next_report {
            return None;
        }
        self.next_report = now + self.randomised(REPORT_INTERVAL);
        self.write_report(now, ntp_now, sender, false, out)
    }

    /// The session's last report, with a BYE (`None` if it never had RTP either way).
    pub fn final_report(
        &mut self,
        now: Instant,
        ntp_now: u64,
        sender: &SenderState,
        out: &mut [u8],
    ) -> Option<RtcpTransmit> {
        self.write_report(now, ntp_now, sender, true, out)
    }

    fn write_report(
        &mut self,
        now: Instant,
        ntp_now: u64,
        sender: &SenderState,
        bye: bool,
        out: &mut [u8],
    ) -> Option<RtcpTransmit> {
        if sender.packets_sent == 0 && self.receive.ssrc().is_none() {
            return None;
        }
        let (destination, from_rtp_port) = self.destination(sender.rtp_remote)?;
        let block = self.receive.ssrc().map(|ssrc| {
            self.fraction_lost = self.receive.take_fraction_lost();
            let (last_sr, delay_since_last_sr) = match self.last_sr {
                Some(sr) if sr.ssrc == ssrc => (
                    sr.ntp_middle,
                    to_short_ntp(now.saturating_duration_since(sr.arrived)),
                ),
                _ => (0, 0),
            };
            ReportBlock {
                ssrc,
                fraction_lost: self.fraction_lost,
                cumulative_lost: self.receive.stream_lost(),
                highest_sequence: self.receive.extended_highest(),
                jitter: self.receive.jitter(),
                last_sr,
                delay_since_last_sr,
            }
        });
        let sent_rtp = sender.packets_sent > self.packets_sent_at_report;
        self.packets_sent_at_report = sender.packets_sent;
        let report = CompoundReport {
            ssrc: sender.ssrc,
            // The counts wrap, as RFC 3550 has them.
            sender: sent_rtp.then_some(SenderInfo {
                ntp: ntp_now,
                rtp_timestamp: sender.rtp_timestamp,
                packet_count: sender.packets_sent as u32,
                octet_count: sender.octets_sent as u32,
            }),
            block,
            cname: Cname::for_ssrc(sender.ssrc),
            bye,
        };
        let len = report.write(out)?;
        Some(RtcpTransmit {
            len,
            destination,
            from_rtp_port,
        })
    }

    /// The session's quality figures now.
    pub fn qos(
        &self,
        codec: Codec,
        packets_received: u64,
        sender: &SenderState,
        final_report: bool,
    ) -> Qos {
        let micros = |sixteenths: u64| {
            u32::try_from(sixteenths.saturating_mul(u64::from(MICROS_PER_UNIT)) / 16)
                .unwrap_or(u32::MAX)
        };
        let rtt = self.round_trips;
        Qos {
            codec,
            packets_received,
            packets_lost: self.receive.total_lost(),
            fraction_lost: self.fraction_lost,
            jitter_us: micros(self.receive.jitter_sixteenths()),
            jitter_max_us: micros(self.receive.jitter_max_sixteenths()),
            jitter_avg_us: micros(self.receive.jitter_mean_sixteenths()),
            rtt_us: rtt.last_us,
            rtt_max_us: rtt.max_us,
            rtt_avg_us: match rtt.count {
                0 => 0,
                n => u32::try_from(rtt.sum_us / u64::from(n)).unwrap_or(u32::MAX),
            },
            packets_sent: sender.packets_sent,
            octets_sent: sender.octets_sent,
            remote: self.remote,
            final_report,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{ntp_of, MAX_REPORT_LEN};

    const OURS: u32 = 0x1111_1111;
    const THEIRS: u32 = 0x2222_2222;

    fn remote() -> SocketAddr {
        "192.0.2.10:40000".parse().unwrap()
    }

    fn sender(packets_sent: u64) -> SenderState {
        SenderState {
            ssrc: OURS,
            packets_sent,
            octets_sent: packets_sent * 160,
            rtp_timestamp: 4242,
            rtp_remote: remote(),
        }
    }

    /// NTP time `t` after some fixed origin.
    fn ntp(t: Duration) -> u64 {
        ntp_of(Duration::from_secs(3_900_000_000) + t)
    }

    fn packets(bytes: &[u8]) -> Vec<RtcpPacket<'_>> {
        parse_compound(bytes).unwrap().collect()
    }

    /// An RR from the far end with one block about `ssrc`.
    fn rr_about(ssrc: u32, last_sr: u32, dlsr: u32, lost: i32, jitter: u32) -> Vec<u8> {
        let mut buf = [0u8; MAX_REPORT_LEN];
        let len = CompoundReport {
            ssrc: THEIRS,
            sender: None,
            block: Some(ReportBlock {
                ssrc,
                fraction_lost: 12,
                cumulative_lost: lost,
                highest_sequence: 77,
                jitter,
                last_sr,
                delay_since_last_sr: dlsr,
            }),
            cname: Cname::for_ssrc(THEIRS),
            bye: false,
        }
        .write(&mut buf)
        .unwrap();
        buf[..len].to_vec()
    }

    #[test]
    fn reports_are_scheduled_randomly_within_the_rfc_bounds() {
        let t0 = Instant::now();
        let mut firsts = Vec::new();
        for seed in 1..50u32 {
            let mut rtcp = RtcpSession::new(t0, seed.wrapping_mul(0x9E37_79B9));
            let first = rtcp.next_report_at() - t0;
            assert!(
                first >= REPORT_INTERVAL / 4 && first < REPORT_INTERVAL * 3 / 4,
                "{first:?}"
            );
            firsts.push(first);
            let mut now = rtcp.next_report_at();
            let mut buf = [0u8; MAX_REPORT_LEN];
            for _ in 0..5 {
                assert_eq!(
                    rtcp.poll_report(now - Duration::from_millis(1), 0, &sender(1), &mut buf),
                    None
                );
                assert!(rtcp.poll_report(now, 0, &sender(1), &mut buf).is_some());
                let interval = rtcp.next_report_at() - now;
                assert!(interval >= REPORT_INTERVAL / 2 && interval < REPORT_INTERVAL * 3 / 2);
                now = rtcp.next_report_at();
            }
        }
        firsts.sort();
        firsts.dedup();
        assert!(firsts.len() > 40, "the intervals vary between sessions");
    }

    #[test]
    fn nothing_is_reported_without_rtp_either_way() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(t0, 7);
        let mut buf = [0u8; MAX_REPORT_LEN];
        let due = rtcp.next_report_at();
        assert_eq!(rtcp.poll_report(due, 0, &sender(0), &mut buf), None);
        assert!(rtcp.next_report_at() > due, "rescheduled all the same");
        assert_eq!(rtcp.final_report(due, 0, &sender(0), &mut buf), None);
        // Having received RTP is enough: an RR with a block.
        rtcp.on_rtp(due, THEIRS, 1, 0, true);
        let tx = rtcp.final_report(due, 0, &sender(0), &mut buf).unwrap();
        assert_eq!(tx.destination, "192.0.2.10:40001".parse().unwrap());
        assert!(!tx.from_rtp_port);
        let kinds = packets(&buf[..tx.len]);
        assert!(matches!(
            kinds[0],
            RtcpPacket::ReceiverReport { ssrc: OURS, .. }
        ));
        assert!(matches!(kinds[2], RtcpPacket::Bye { .. }));
    }

    #[test]
    fn sr_when_we_sent_since_the_last_report_else_rr() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(t0, 3);
        let mut buf = [0u8; MAX_REPORT_LEN];
        let mut now = rtcp.next_report_at();
        let tx = rtcp
            .poll_report(now, ntp(Duration::ZERO), &sender(50), &mut buf)
            .unwrap();
        match packets(&buf[..tx.len])[0] {
            RtcpPacket::SenderReport { ssrc, info, blocks } => {
                assert_eq!(ssrc, OURS);
                assert_eq!(info.packet_count, 50);
                assert_eq!(info.octet_count, 8000);
                assert_eq!(info.rtp_timestamp, 4242);
                assert_eq!(info.ntp, ntp(Duration::ZERO));
                assert_eq!(blocks.count(), 0, "nothing received: no block");
            }
            other => panic!("{other:?}"),
        }
        now = rtcp.next_report_at();
        let tx = rtcp.poll_report(now, 0, &sender(50), &mut buf).unwrap();
        assert!(matches!(
            packets(&buf[..tx.len])[0],
            RtcpPacket::ReceiverReport { .. }
        ));
        now = rtcp.next_report_at();
        let tx = rtcp.poll_report(now, 0, &sender(51), &mut buf).unwrap();
        assert!(matches!(
            packets(&buf[..tx.len])[0],
            RtcpPacket::SenderReport { .. }
        ));
    }

    #[test]
    fn our_block_carries_loss_jitter_and_the_far_ends_last_sr() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(t0, 5);
        for seq in [10u16, 11, 13, 14] {
            rtcp.on_rtp(
                t0 + Duration::from_millis(20 * u64::from(seq)),
                THEIRS,
                seq,
                160 * u32::from(seq),
                true,
            );
        }
        // The far end's SR, 300 ms before our report.
        let their_ntp = 0xABCD_1234_5678_0000u64;
        let mut sr = [0u8; MAX_REPORT_LEN];
        let sr_len = CompoundReport {
            ssrc: THEIRS,
            sender: Some(SenderInfo {
                ntp: their_ntp,
                rtp_timestamp: 1,
                packet_count: 4,
                octet_count: 640,
            }),
            block: None,
            cname: Cname::for_ssrc(THEIRS),
            bye: false,
        }
        .write(&mut sr)
        .unwrap();
        let peer: SocketAddr = "192.0.2.10:40001".parse().unwrap();
        let now = rtcp.next_report_at();
        let sr_at = now - Duration::from_millis(300);
        assert_eq!(
            rtcp.handle(
                sr_at,
                0,
                OURS,
                peer,
                &sr[..sr_len],
                false,
                remote(),
                Some(THEIRS)
            ),
            RtcpReceived::Accepted
        );
        let mut buf = [0u8; MAX_REPORT_LEN];
        let tx = rtcp.poll_report(now, 0, &sender(0), &mut buf).unwrap();
        assert_eq!(tx.destination, peer);
        let block = match packets(&buf[..tx.len])[0] {
            RtcpPacket::ReceiverReport { mut blocks, .. } => blocks.next().unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(block.ssrc, THEIRS);
        assert_eq!(block.highest_sequence, 14);
        assert_eq!(block.cumulative_lost, 1);
        assert_eq!(block.fraction_lost, (256 / 5) as u8);
        assert_eq!(block.jitter, 0, "on time");
        assert_eq!(block.last_sr, 0x1234_5678);
        assert_eq!(
            block.delay_since_last_sr,
            to_short_ntp(Duration::from_millis(300))
        );
        let qos = rtcp.qos(Codec::Pcmu, 4, &sender(0), false);
        assert_eq!((qos.packets_lost, qos.fraction_lost), (1, 51));
    }

    #[test]
    fn rtt_comes_from_a_block_echoing_our_sr() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(t0, 9);
        let mut buf = [0u8; MAX_REPORT_LEN];
        let sent_at = rtcp.next_report_at();
        rtcp.poll_report(sent_at, ntp(Duration::ZERO), &sender(10), &mut buf)
            .unwrap();
        let lsr = ntp_middle(ntp(Duration::ZERO));
        // The far end held our SR 120 ms; its RR reaches us 170 ms after we sent: 50 ms RTT.
        let dlsr = to_short_ntp(Duration::from_millis(120));
        let rr = rr_about(OURS, lsr, dlsr, 3, 40);
        let arrival = ntp(Duration::from_millis(170));
        let peer: SocketAddr = "192.0.2.10:40001".parse().unwrap();
        assert_eq!(
            rtcp.handle(sent_at, arrival, OURS, peer, &rr, false, remote(), None),
            RtcpReceived::Accepted
        );
        let qos = rtcp.qos(Codec::Pcma, 0, &sender(10), true);
        assert!((49_900..=50_100).contains(&qos.rtt_us), "{}", qos.rtt_us);
        assert_eq!((qos.rtt_max_us, qos.rtt_avg_us), (qos.rtt_us, qos.rtt_us));
        assert_eq!(
            qos.remote,
            Some(RemoteQos {
                fraction_lost: 12,
                packets_lost: 3,
                jitter_us: 5000,
                jitter_max_us: 5000,
                jitter_avg_us: 5000,
            })
        );
        assert!(qos.final_report);
        // A second, slower round trip: last, max and mean follow.
        let arrival = ntp(Duration::from_millis(270));
        rtcp.handle(
            sent_at,
            arrival,
            OURS,
            peer,
            &rr_about(OURS, lsr, dlsr, 3, 8),
            false,
            remote(),
            None,
        );
        let qos = rtcp.qos(Codec::Pcma, 0, &sender(10), false);
        assert!((149_900..=150_100).contains(&qos.rtt_us));
        assert_eq!(qos.rtt_max_us, qos.rtt_us);
        assert!((99_900..=100_100).contains(&qos.rtt_avg_us));
        assert_eq!(qos.remote.unwrap().jitter_us, 1000);
        assert_eq!(qos.remote.unwrap().jitter_max_us, 5000);
        assert_eq!(qos.remote.unwrap().jitter_avg_us, 3000);
        // No LSR, or a block about someone else: no RTT.
        let mut fresh = RtcpSession::new(t0, 9);
        fresh.handle(
            sent_at,
            arrival,
            OURS,
            peer,
            &rr_about(OURS, 0, 0, 0, 0),
            false,
            remote(),
            None,
        );
        fresh.handle(
            sent_at,
            arrival,
            OURS,
            peer,
            &rr_about(77, lsr, dlsr, 0, 0),
            false,
            remote(),
            None,
        );
        let qos = fresh.qos(Codec::Pcmu, 0, &sender(0), false);
        assert_eq!(qos.rtt_us, 0, "unknown");
        assert_eq!(qos.remote.unwrap().packets_lost, 0);
        // A round trip that comes out below zero by more than rounding is ignored; by a
        // rounding error it is the shortest measurable.
        let early = ntp(Duration::from_millis(100));
        fresh.handle(
            sent_at,
            early,
            OURS,
            peer,
            &rr_about(OURS, lsr, dlsr, 0, 0),
            false,
            remote(),
            None,
        );
        assert_eq!(fresh.qos(Codec::Pcmu, 0, &sender(0), false).rtt_us, 0);
        let exact = ntp(Duration::from_millis(120));
        fresh.handle(
            sent_at,
            exact,
            OURS,
            peer,
            &rr_about(OURS, lsr, dlsr + 3, 0, 0),
            false,
            remote(),
            None,
        );
        assert_eq!(fresh.qos(Codec::Pcmu, 0, &sender(0), false).rtt_us, 1);
    }

    #[test]
    fn rtcp_from_elsewhere_is_ignored_and_junk_is_malformed() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(t0, 11);
        let stranger: SocketAddr = "203.0.113.5:40001".parse().unwrap();
        let rr = rr_about(OURS, 0, 0, 9, 9);
        assert_eq!(
            rtcp.handle(t0, 0, OURS, stranger, &rr, false, remote(), Some(0x5555)),
            RtcpReceived::Ignored
        );
        assert_eq!(rtcp.qos(Codec::Pcmu, 0, &sender(0), false).remote, None);
        // The same packet from elsewhere is accepted once its sender is the stream we latched.
        assert_eq!(
            rtcp.handle(t0, 0, OURS, stranger, &rr, false, remote(), Some(THEIRS)),
            RtcpReceived::Accepted
        );
        for junk in [
            &b""[..],
            b"\x80\xc8\x00",
            &[0x80, 202, 0, 0],
            &rr[..rr.len() - 1],
        ] {
            assert_eq!(
                rtcp.handle(t0, 0, OURS, stranger, junk, false, remote(), Some(THEIRS)),
                RtcpReceived::Malformed
            );
        }
    }

    #[test]
    fn reports_follow_the_far_ends_rtcp_source_and_multiplexing() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(t0, 13);
        let mut buf = [0u8; MAX_REPORT_LEN];
        rtcp.on_rtp(t0, THEIRS, 1, 0, true);
        let nat: SocketAddr = "192.0.2.10:51000".parse().unwrap();
        // Multiplexed on the RTP port: reports go back the same way.
        rtcp.handle(
            t0,
            0,
            OURS,
            nat,
            &rr_about(OURS, 0, 0, 0, 0),
            true,
            remote(),
            Some(THEIRS),
        );
        let tx = rtcp.final_report(t0, 0, &sender(1), &mut buf).unwrap();
        assert_eq!((tx.destination, tx.from_rtp_port), (nat, true));
        // The far end moved: back to its RTP port + 1.
        rtcp.forget_peer();
        let moved: SocketAddr = "198.51.100.1:7078".parse().unwrap();
        let tx = rtcp
            .final_report(
                t0,
                0,
                &SenderState {
                    rtp_remote: moved,
                    ..sender(1)
                },
                &mut buf,
            )
            .unwrap();
        assert_eq!(
            (tx.destination, tx.from_rtp_port),
            ("198.51.100.1:7079".parse().unwrap(), false)
        );
        let top: SocketAddr = "198.51.100.1:65535".parse().unwrap();
        assert_eq!(
            rtcp.final_report(
                t0,
                0,
                &SenderState {
                    rtp_remote: top,
                    ..sender(1)
                },
                &mut buf
            ),
            None
        );
    }

    #[test]
    fn qos_converts_units() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(t0, 17);
        // Every other packet 10 ms late: |D| alternates 80 units.
        for i in 0..200u32 {
            let late = if i % 2 == 1 { 10 } else { 0 };
            let at = t0 + Duration::from_millis(u64::from(20 * i + late));
            rtcp.on_rtp(at, THEIRS, i as u16, 160 * i, true);
        }
        let qos = rtcp.qos(Codec::Pcmu, 200, &sender(3), false);
        // The estimator converges towards 80 units = 10 ms.
        assert!(
            (9_000..=10_000).contains(&qos.jitter_us),
            "{}",
            qos.jitter_us
        );
        assert!(qos.jitter_max_us >= qos.jitter_us);
        assert!(qos.jitter_avg_us > 5_000 && qos.jitter_avg_us <= qos.jitter_max_us);
        assert_eq!((qos.packets_received, qos.packets_lost), (200, 0));
        assert_eq!((qos.packets_sent, qos.octets_sent), (3, 480));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_datagrams_and_packets_never_panic(
            datagrams in proptest::collection::vec(
                proptest::collection::vec(proptest::num::u8::ANY, 0..120), 0..8),
            packets in proptest::collection::vec(
                (proptest::num::u32::ANY, proptest::num::u16::ANY, proptest::num::u32::ANY), 0..40),
        ) {
            let t0 = Instant::now();
            let mut rtcp = RtcpSession::new(t0, 21);
            for (i, (ssrc, sequence, timestamp)) in packets.into_iter().enumerate() {
                let at = t0 + Duration::from_millis(7 * i as u64);
                rtcp.on_rtp(at, ssrc % 3, sequence, timestamp, i % 5 != 0);
            }
            for datagram in &datagrams {
                rtcp.handle(t0, u64::MAX, OURS, remote(), datagram, false, remote(), Some(1));
            }
            let huge = SenderState {
                packets_sent: u64::MAX,
                octets_sent: u64::MAX,
                ..sender(1)
            };
            let mut buf = [0u8; MAX_REPORT_LEN];
            let due = rtcp.next_report_at();
            if let Some(tx) = rtcp.poll_report(due, u64::MAX, &huge, &mut buf) {
                proptest::prop_assert!(parse_compound(&buf[..tx.len]).is_ok());
            }
            let _ = rtcp.qos(Codec::Pcmu, u64::MAX, &huge, true);
        }
    }
}
