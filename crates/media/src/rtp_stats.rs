//! RTP receive statistics of one incoming stream, as RFC 3550 defines them: the extended
//! highest sequence number and the received count (A.1, without probation), cumulative and
//! interval loss (A.3) and interarrival jitter (A.8), plus the jitter's maximum and mean for
//! quality reports. Fixed-size, updated per packet without allocation; pure arithmetic, no
//! clock (the caller gives arrival times in RTP timestamp units).

/// A jump forward of more than this many sequence numbers is not trusted at once (A.1).
const MAX_DROPOUT: u16 = 3000;
/// A packet this many sequence numbers behind is late or duplicated, not a restart (A.1).
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;

/// What [`ReceiveStats::on_packet`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Counted: in order, late, or duplicated.
    Counted,
    /// A large jump: not counted until the packet after it confirms the new sequence.
    Jump,
}

/// The receive statistics of the stream from one SSRC (the one the session latched to);
/// a packet from another SSRC restarts them, keeping the earlier streams' losses and the
/// session-wide jitter figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceiveStats {
    /// The SSRC the figures are about; `None` before the first packet.
    ssrc: Option<u32>,
    max_seq: u16,
    /// Sequence-number wraps, shifted left 16 (A.1's `cycles`).
    cycles: u32,
    base_seq: u32,
    /// The sequence number that would confirm a jump (A.1's `bad_seq`; > 0xFFFF: none).
    bad_seq: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Last packet's relative transit time (arrival − RTP timestamp), once there is one.
    transit: Option<u32>,
    /// Interarrival jitter × 16 (A.8's integer form), in RTP timestamp units; 64 bits wide
    /// because a stream of wild timestamps drives it towards 16 × 2^31.
    jitter16: u64,
    /// Largest jitter estimate so far (× 16), over every stream.
    jitter16_max: u64,
    /// Sum and count of the jitter estimate after each packet, for its mean.
    jitter16_sum: u64,
    jitter_samples: u64,
    /// Cumulative loss of the streams before the current one.
    lost_earlier: i64,
}

impl ReceiveStats {
    pub fn new() -> ReceiveStats {
        ReceiveStats::default()
    }

    /// The SSRC of the stream the figures are about.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        if self.ssrc.is_some() {
            self.lost_earlier += i64::from(self.stream_lost());
        }
        self.ssrc = Some(ssrc);
        self.init_seq(seq);
        self.transit = None;
        self.jitter16 = 0;
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Accounts one RTP packet of `ssrc` (sequence `seq`, RTP timestamp `timestamp`) that
    /// arrived at `arrival` (in the stream's RTP timestamp units, any origin, wrapping).
    /// `for_jitter` is false for packets whose timestamps do not follow the audio clock
    /// (RFC 4733 events repeat one timestamp for a whole event).
    pub fn on_packet(
        &mut self,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        arrival: u32,
        for_jitter: bool,
    ) -> SequenceCheck {
        if self.ssrc != Some(ssrc) {
            self.restart(ssrc, seq);
        } else if self.update_seq(seq) == SequenceCheck::Jump {
            return SequenceCheck::Jump;
        }
        self.received = self.received.wrapping_add(1);
        if for_jitter {
            self.update_jitter(timestamp, arrival);
        }
        SequenceCheck::Counted
    }

    /// RFC 3550 A.1 `update_seq` for a packet of the current stream (not its first).
    fn update_seq(&mut self, seq: u16) -> SequenceCheck {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            // A very large jump: trust it only when the next packet follows it.
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return SequenceCheck::Jump;
            }
        }
        // Else duplicate or reordered: counted, max unchanged.
        SequenceCheck::Counted
    }

    /// RFC 3550 A.8.
    fn update_jitter(&mut self, timestamp: u32, arrival: u32) {
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(previous) = self.transit {
            let d = u64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            // J += (|D| - J) / 16, with J kept × 16 (it stays below 16 × 2^31 + 16).
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
            self.jitter16_max = self.jitter16_max.max(self.jitter16);
            self.jitter16_sum = self.jitter16_sum.saturating_add(self.jitter16);
            self.jitter_samples += 1;
        }
        self.transit = Some(transit);
    }

    /// The extended highest sequence number received (0 before any packet).
    pub fn extended_highest(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u32 {
        if self.ssrc.is_none() {
            return 0;
        }
        self.extended_highest()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Packets of the current stream received (duplicates included, jumps not).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// The current stream's cumulative loss: expected − received (negative with duplicates).
    pub fn stream_lost(&self) -> i32 {
        (i64::from(self.expected()) - i64::from(self.received))
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }

    /// Cumulative loss over every stream the session received.
    pub fn total_lost(&self) -> i32 {
        (self.lost_earlier + i64::from(self.stream_lost()))
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }

    /// The fraction lost since the previous call (A.3), in 1/256; starts the next interval.
    pub fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        }
    }

    /// The interarrival jitter now, in RTP timestamp units.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter16 >> 4).unwrap_or(u32::MAX)
    }

    /// The largest jitter estimate so far, in 1/16 RTP timestamp units.
    pub fn jitter_max_sixteenths(&self) -> u64 {
        self.jitter16_max
    }

    /// The mean jitter estimate over every packet so far, in 1/16 RTP timestamp units.
    pub fn jitter_mean_sixteenths(&self) -> u64 {
        match self.jitter_samples {
            0 => 0,
            n => self.jitter16_sum / n,
        }
    }

    /// The current jitter in 1/16 RTP timestamp units.
    pub fn jitter_sixteenths(&self) -> u64 {
        self.jitter16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSRC: u32 = 0xAABB_CCDD;

    /// Feeds packets `seqs` of one stream, each with timestamp = 160 × index and arrival
    /// exactly on time (no jitter).
    fn feed(stats: &mut ReceiveStats, seqs: &[u16]) {
        for &seq in seqs {
            let ts = u32::from(seq) * 160;
            stats.on_packet(SSRC, seq, ts, ts, true);
        }
    }

    #[test]
    fn gaps_count_as_loss_and_fraction_per_interval() {
        let mut stats = ReceiveStats::new();
        // 1..=10 with 4 and 7 missing: 8 of 10 received.
        feed(&mut stats, &[1, 2, 3, 5, 6, 8, 9, 10]);
        assert_eq!(stats.extended_highest(), 10);
        assert_eq!(stats.received(), 8);
        assert_eq!(stats.stream_lost(), 2);
        assert_eq!(stats.take_fraction_lost(), (2 * 256 / 10) as u8);
        // Next interval: 11..=20 all there.
        feed(&mut stats, &(11..=20).collect::<Vec<u16>>());
        assert_eq!(stats.take_fraction_lost(), 0);
        assert_eq!(stats.stream_lost(), 2);
        // An interval with nothing expected: 0.
        assert_eq!(stats.take_fraction_lost(), 0);
        // Half of the next four lost.
        feed(&mut stats, &[22, 24]);
        assert_eq!(stats.take_fraction_lost(), 128);
        assert_eq!(stats.total_lost(), 4);
    }

    #[test]
    fn sequence_wraparound_extends_the_highest_number() {
        let mut stats = ReceiveStats::new();
        feed(&mut stats, &[65533, 65534, 65535, 0, 1, 3]);
        assert_eq!(stats.extended_highest(), 65536 + 3);
        assert_eq!(stats.received(), 6);
        assert_eq!(stats.stream_lost(), 1, "2 is missing");
        // A late packet from before the wrap does not add a cycle.
        feed(&mut stats, &[65535]);
        assert_eq!(stats.extended_highest(), 65539);
        assert_eq!(stats.stream_lost(), 0, "a duplicate makes up for the loss");
    }

    #[test]
    fn reordering_is_not_loss_and_duplicates_make_it_negative() {
        let mut stats = ReceiveStats::new();
        feed(&mut stats, &[100, 102, 101, 104, 103, 105]);
        assert_eq!(stats.extended_highest(), 105);
        assert_eq!(stats.stream_lost(), 0);
        assert_eq!(stats.take_fraction_lost(), 0);
        feed(&mut stats, &[105, 105]);
        assert_eq!(stats.stream_lost(), -2);
        assert_eq!(stats.take_fraction_lost(), 0, "negative interval loss is 0");
    }

    #[test]
    fn a_large_jump_needs_a_second_packet() {
        let mut stats = ReceiveStats::new();
        feed(&mut stats, &[10, 11]);
        assert_eq!(
            stats.on_packet(SSRC, 20_000, 0, 0, true),
            SequenceCheck::Jump
        );
        assert_eq!(stats.extended_highest(), 11, "not trusted yet");
        // The packet after the jump confirms it: statistics restart there.
        assert_eq!(
            stats.on_packet(SSRC, 20_001, 0, 0, true),
            SequenceCheck::Counted
        );
        assert_eq!(stats.extended_highest(), 20_001);
        assert_eq!(stats.received(), 1);
        assert_eq!(stats.stream_lost(), 0);
    }

    #[test]
    fn a_new_ssrc_restarts_the_stream_and_keeps_earlier_loss() {
        let mut stats = ReceiveStats::new();
        feed(&mut stats, &[1, 2, 5]);
        assert_eq!(stats.stream_lost(), 2);
        stats.on_packet(7, 900, 0, 0, true);
        stats.on_packet(7, 902, 320, 320, true);
        assert_eq!(stats.ssrc(), Some(7));
        assert_eq!(stats.extended_highest(), 902);
        assert_eq!(stats.stream_lost(), 1);
        assert_eq!(stats.total_lost(), 3);
    }

    #[test]
    fn jitter_follows_the_rfc_estimator_on_a_hand_computed_series() {
        // 20 ms packets (160 units) arriving at 0, 20, 45, 60, 80 ms (in 8 kHz units).
        let arrivals = [0u32, 160, 360, 480, 640];
        let mut stats = ReceiveStats::new();
        for (i, arrival) in arrivals.iter().enumerate() {
            stats.on_packet(SSRC, i as u16, 160 * i as u32, *arrival + 1000, true);
        }
        // Transits 0, 0, 40, 0, 0 → |D| = 0, 40, 40, 0.
        // J×16: 0 → 0 + 0 - 0 = 0 → 0 + 40 - 0 = 40 → 40 + 40 - 3 = 77 → 77 + 0 - 5 = 72.
        assert_eq!(stats.jitter_sixteenths(), 72);
        assert_eq!(stats.jitter(), 4);
        // The floating-point estimator: J = J + (|D| - J)/16.
        let mut j = 0f64;
        for d in [0f64, 40.0, 40.0, 0.0] {
            j += (d - j) / 16.0;
        }
        assert!(
            (stats.jitter_sixteenths() as f64 / 16.0 - j).abs() < 0.1,
            "{j}"
        );
        assert_eq!(stats.jitter_max_sixteenths(), 77);
        // The mean of the four estimates 0, 40, 77, 72.
        assert_eq!(stats.jitter_mean_sixteenths(), 189 / 4);
    }

    #[test]
    fn wild_timestamps_saturate_instead_of_overflowing() {
        let mut stats = ReceiveStats::new();
        for i in 0..2000u32 {
            let ts = if i % 2 == 0 { 0 } else { 0x8000_0000 };
            stats.on_packet(SSRC, i as u16, ts, 0, true);
        }
        assert_eq!(stats.jitter(), 0x7FFF_FFFF);
        assert!(stats.jitter_max_sixteenths() <= 16 << 31);
    }

    #[test]
    fn events_do_not_disturb_jitter_and_wrapping_clocks_are_fine() {
        let mut stats = ReceiveStats::new();
        let base = u32::MAX - 200;
        for i in 0..10u32 {
            stats.on_packet(
                SSRC,
                i as u16,
                base.wrapping_add(160 * i),
                (160 * i).wrapping_add(u32::MAX - 50),
                true,
            );
        }
        // A telephone event repeating its timestamp, late: no jitter input.
        stats.on_packet(SSRC, 10, base, 160 * 30, false);
        assert_eq!(stats.jitter(), 0);
        assert_eq!(stats.received(), 11);
    }
}
