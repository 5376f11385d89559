//! Per-stream accounting of what the generator sent and got back (pure): loss, duplicates,
//! reordering, one-way latency into a [`Histogram`], and RFC 3550 interarrival jitter
//! computed on the transit time (arrival − send stamp), which is the jitter the path added,
//! whatever the generator's own pacing did.
//!
//! Only packets *sent* inside the measuring window count; a packet sent in the window that
//! has not arrived when the run ends is lost.

use crate::histogram::Histogram;
use crate::probe::Probe;

/// The measuring window, in the send-stamp clock (CLOCK_REALTIME ns), end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Window {
    pub fn contains(&self, ns: u64) -> bool {
        (self.start_ns..self.end_ns).contains(&ns)
    }
}

/// RFC 3550 §6.4.1 interarrival jitter, on nanosecond transit times:
/// `J += (|D| − J) / 16` with `D` the change in transit between consecutive arrivals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Jitter {
    last_transit_ns: Option<i64>,
    jitter_ns: f64,
}

impl Jitter {
    pub fn update(&mut self, transit_ns: i64) {
        if let Some(last) = self.last_transit_ns {
            let difference = transit_ns.saturating_sub(last).unsigned_abs() as f64;
            self.jitter_ns += (difference - self.jitter_ns) / 16.0;
        }
        self.last_transit_ns = Some(transit_ns);
    }

    pub fn value_ns(&self) -> f64 {
        self.jitter_ns
    }
}

/// What became of one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First copy of a packet sent in the window: counted, latency recorded.
    Counted,
    /// Sent before or after the window (warm-up): ignored.
    OutsideWindow,
    Duplicate,
    /// A sequence number this stream never sent.
    Invalid,
}

/// One stream's tally, kept by the generator thread that owns the stream.
#[derive(Debug, Clone)]
pub struct StreamTally {
    window: Window,
    /// Next sequence number to send (= packets sent so far, any window).
    next_sequence: u32,
    sent_in_window: u64,
    /// One bit per sequence number sent.
    seen: Vec<u64>,
    received: u64,
    duplicates: u64,
    reordered: u64,
    highest: Option<u32>,
    jitter: Jitter,
}

impl StreamTally {
    pub fn new(window: Window) -> StreamTally {
        StreamTally {
            window,
            next_sequence: 0,
            sent_in_window: 0,
            seen: Vec::new(),
            received: 0,
            duplicates: 0,
            reordered: 0,
            highest: None,
            jitter: Jitter::default(),
        }
    }

    /// Takes the next sequence number for a packet stamped `sent_ns`.
    pub fn next_send(&mut self, sent_ns: u64) -> u32 {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        if self.window.contains(sent_ns) {
            self.sent_in_window += 1;
        }
        sequence
    }

    /// Takes back a send the kernel refused (its sequence number stays used).
    pub fn cancel_send(&mut self, sent_ns: u64) {
        if self.window.contains(sent_ns) {
            self.sent_in_window = self.sent_in_window.saturating_sub(1);
        }
    }

    /// Accounts a received packet of this stream that arrived at `arrival_ns`.
    pub fn on_receive(
        &mut self,
        probe: &Probe,
        arrival_ns: u64,
        latency: &mut Histogram,
    ) -> Arrival {
        if probe.sequence >= self.next_sequence {
            return Arrival::Invalid;
        }
        let word = (probe.sequence / 64) as usize;
        let bit = 1u64 << (probe.sequence % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let Some(slot) = self.seen.get_mut(word) else {
            return Arrival::Invalid;
        };
        if *slot & bit != 0 {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        *slot |= bit;
        if !self.window.contains(probe.sent_ns) {
            return Arrival::OutsideWindow;
        }
        self.received += 1;
        match self.highest {
            Some(highest) if probe.sequence < highest => self.reordered += 1,
            _ => self.highest = Some(probe.sequence),
        }
        let transit = i128::from(arrival_ns) - i128::from(probe.sent_ns);
        latency.record(u64::try_from(transit).unwrap_or(0));
        self.jitter
            .update(i64::try_from(transit).unwrap_or(i64::MAX));
        Arrival::Counted
    }

    pub fn sent_in_window(&self) -> u64 {
        self.sent_in_window
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn jitter_ns(&self) -> f64 {
        self.jitter.value_ns()
    }
}

/// Everything the generator measured in one run, over all streams.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub streams: usize,
    pub sent: u64,
    pub received: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Received datagrams without a readable probe, or naming no stream of ours.
    pub unreadable: u64,
    /// Packets that arrived with a payload type other than the leg's.
    pub wrong_codec: u64,
    pub latency: Histogram,
    /// Mean and largest per-stream RFC 3550 jitter at the end of the run.
    pub jitter_mean_ns: f64,
    pub jitter_max_ns: f64,
    /// Packets sent in the window more than half a ptime after their slot (generator
    /// overload).
    pub late_sends: u64,
    pub send_errors: u64,
}

impl Summary {
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }

    /// Lost packets as a fraction of those sent in the window.
    pub fn loss_ratio(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost() as f64 / self.sent as f64
        }
    }

    /// Adds the tallies of some streams (and their shared latency histogram).
    pub fn add_streams<'a>(&mut self, tallies: impl IntoIterator<Item = &'a StreamTally>) {
        let mut jitter_total = self.jitter_mean_ns * self.streams as f64;
        for tally in tallies {
            self.streams += 1;
            self.sent += tally.sent_in_window;
            self.received += tally.received;
            self.duplicates += tally.duplicates;
            self.reordered += tally.reordered;
            jitter_total += tally.jitter_ns();
            self.jitter_max_ns = self.jitter_max_ns.max(tally.jitter_ns());
        }
        self.jitter_mean_ns = if self.streams == 0 {
            0.0
        } else {
            jitter_total / self.streams as f64
        };
    }

    /// Folds in another part's counters and histogram (streams are added with
    /// [`Summary::add_streams`] on the parts before merging).
    pub fn merge(&mut self, other: &Summary) {
        let streams = self.streams + other.streams;
        self.jitter_mean_ns = if streams == 0 {
            0.0
        } else {
            (self.jitter_mean_ns * self.streams as f64
                + other.jitter_mean_ns * other.streams as f64)
                / streams as f64
        };
        self.jitter_max_ns = self.jitter_max_ns.max(other.jitter_max_ns);
        self.streams = streams;
        self.sent += other.sent;
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
        self.unreadable += other.unreadable;
        self.wrong_codec += other.wrong_codec;
        self.late_sends += other.late_sends;
        self.send_errors += other.send_errors;
        self.latency.merge(&other.latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Window = Window {
        start_ns: 1_000,
        end_ns: 2_000,
    };

    fn probe(sequence: u32, sent_ns: u64) -> Probe {
        Probe {
            stream: 0,
            sequence,
            sent_ns,
        }
    }

    #[test]
    fn counts_loss_duplicates_and_reordering_inside_the_window() {
        let mut tally = StreamTally::new(WINDOW);
        let mut latency = Histogram::new();
        // Sequences 0..20 sent every 100 ns from t=0: 10..20 are in the window.
        let sent: Vec<u64> = (0..20).map(|i| i * 100).collect();
        for (i, at) in sent.iter().enumerate() {
            assert_eq!(tally.next_send(*at), i as u32);
        }
        assert_eq!(tally.sent_in_window(), 10);
        let mut arrive = |seq: u32, tally: &mut StreamTally| {
            tally.on_receive(
                &probe(seq, sent[seq as usize]),
                sent[seq as usize] + 50,
                &mut latency,
            )
        };
        assert_eq!(arrive(5, &mut tally), Arrival::OutsideWindow);
        assert_eq!(arrive(5, &mut tally), Arrival::Duplicate);
        for seq in [10, 11, 13, 12, 14, 15, 16, 17] {
            assert_eq!(arrive(seq, &mut tally), Arrival::Counted, "seq {seq}");
        }
        assert_eq!(arrive(13, &mut tally), Arrival::Duplicate);
        assert_eq!(
            tally.on_receive(&probe(20, 1_500), 1_600, &mut latency),
            Arrival::Invalid,
            "never sent"
        );
        assert_eq!(tally.received(), 8);
        let mut summary = Summary::default();
        summary.add_streams([&tally]);
        assert_eq!(summary.sent, 10);
        assert_eq!(summary.received, 8);
        assert_eq!(summary.lost(), 2);
        assert!((summary.loss_ratio() - 0.2).abs() < 1e-12);
        assert_eq!(summary.duplicates, 2);
        assert_eq!(summary.reordered, 1);
        assert_eq!(latency.count(), 8);
        assert_eq!(latency.quantile(1.0), Some(50));
        // Constant transit: no jitter.
        assert_eq!(tally.jitter_ns(), 0.0);
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        let mut jitter = Jitter::default();
        jitter.update(100);
        assert_eq!(jitter.value_ns(), 0.0);
        jitter.update(260); // D = 160: J = 160/16
        assert!((jitter.value_ns() - 10.0).abs() < 1e-9);
        jitter.update(100); // D = 160 again: J = 10 + (160 − 10)/16
        assert!((jitter.value_ns() - 19.375).abs() < 1e-9);
        // A steady alternation of ±d converges to d.
        let mut steady = Jitter::default();
        for i in 0..2_000 {
            steady.update(if i % 2 == 0 { 0 } else { 1_000 });
        }
        assert!((steady.value_ns() - 1_000.0).abs() < 1.0);
    }

    #[test]
    fn late_clock_gives_zero_latency_not_a_wrap() {
        let mut tally = StreamTally::new(WINDOW);
        let mut latency = Histogram::new();
        tally.next_send(1_500);
        assert_eq!(
            tally.on_receive(&probe(0, 1_500), 1_400, &mut latency),
            Arrival::Counted
        );
        assert_eq!(latency.quantile(1.0), Some(0));
    }

    #[test]
    fn summaries_merge() {
        let mut a = Summary {
            streams: 1,
            sent: 10,
            received: 9,
            jitter_mean_ns: 100.0,
            jitter_max_ns: 100.0,
            unreadable: 1,
            ..Summary::default()
        };
        a.latency.record(5);
        let mut b = Summary {
            streams: 3,
            sent: 30,
            received: 30,
            jitter_mean_ns: 20.0,
            jitter_max_ns: 50.0,
            late_sends: 2,
            ..Summary::default()
        };
        b.latency.record(7);
        a.merge(&b);
        assert_eq!(a.streams, 4);
        assert_eq!(a.sent, 40);
        assert_eq!(a.lost(), 1);
        assert!((a.jitter_mean_ns - 40.0).abs() < 1e-9);
        assert_eq!(a.jitter_max_ns, 100.0);
        assert_eq!(a.unreadable, 1);
        assert_eq!(a.late_sends, 2);
        assert_eq!(a.latency.count(), 2);
        assert_eq!(Summary::default().loss_ratio(), 0.0);
    }
}
