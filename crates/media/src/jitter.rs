//! The per-participant jitter buffer of the conference mixer: received G.711 audio placed by
//! RTP timestamp, delivered as one 20 ms frame of linear PCM per mix tick.
//!
//! Sans-IO and allocation-free after construction. Packets of any ptime (10, 20, 30, 40 ms…)
//! are decoded on arrival into a ring of [`CAPACITY`] samples addressed by RTP timestamp, with
//! a presence bit per sample, so reordered packets fall into place and duplicates overwrite
//! themselves. [`JitterBuffer::pop_frame`] hands out the [`FRAME_SAMPLES`] samples at the play
//! position and advances it; samples that never arrived are concealed by repeating the last
//! frame with a fading gain (silence after a few frames).
//!
//! Delay: the first packet of a stream (or of a new SSRC, or after a timestamp jump the ring
//! cannot hold) anchors the play position so that [`INITIAL_SPARE`] samples wait beyond the
//! frame being played (about 60 ms of delay with 20 ms packets). Then:
//! - a packet that comes after its play time is dropped (what was concealed in its place
//!   stays played, in order), and the first one in a window (1 s, [`WINDOW_FRAMES`] frames)
//!   adds delay: the wanted spare grows by 10 ms (up to [`MAX_SPARE`]) and the play position
//!   steps back by the packet's lateness plus 10 ms, rounded up to whole frames (at most
//!   [`MAX_INSERT`]), which plays as concealment (insertion);
//! - at the end of a window, a whole frame more spare than wanted even at the tightest pop (a
//!   sender whose clock runs fast, or a delay spike that passed) skips the oldest 20 ms of
//!   audio (drop);
//! - five calm windows shrink the wanted spare back toward [`INITIAL_SPARE`] by 5 ms.
//!
//! Insertions and drops are whole frames, so the frame grid keeps its place against the
//! stream's timestamps: 10 and 20 ms packets stay aligned with the frames (a lost packet is
//! a lost frame, and nothing a packet carried is split across two frames).
//!
//! A sender whose clock runs slow shows up as late packets (insertions), one that runs fast
//! as growing spare (drops), so the delay stays within bounds either way.

/// Samples per mix frame: 20 ms at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Samples the ring holds (256 ms); a power of two.
pub const CAPACITY: usize = 2048;
const MASK: u32 = CAPACITY as u32 - 1;
/// Spare samples wanted beyond the frame being played when a stream starts (40 ms).
pub const INITIAL_SPARE: u32 = 320;
/// The most spare the buffer ever wants (100 ms).
pub const MAX_SPARE: u32 = 800;
/// Frames between adaptations (1 s).
pub const WINDOW_FRAMES: u32 = 50;
/// Spare added per window with late packets (10 ms).
const SPARE_STEP_UP: u32 = 80;
/// Spare given back per calm period (5 ms).
const SPARE_STEP_DOWN: u32 = 40;
/// Windows without a late packet before the wanted spare shrinks.
const CALM_WINDOWS: u32 = 5;
/// Spare beyond the wanted amount that makes a drop (one frame).
const DROP_TOLERANCE: i32 = FRAME_SAMPLES as i32;
/// Samples dropped at once (one frame).
const DROP: u32 = FRAME_SAMPLES as u32;
/// Most samples inserted at once when a packet comes late (60 ms).
pub const MAX_INSERT: u32 = 480;
/// A packet this late (or this many late packets in a row) is a restarted stream, not
/// jitter: the buffer re-anchors on it.
const RESYNC_LATE_SAMPLES: i32 = MAX_SPARE as i32 + 2 * FRAME_SAMPLES as i32;
const RESYNC_LATE_PACKETS: u32 = 5;
/// Concealment gains (in 1/256) for the 1st, 2nd, 3rd… frame in a row with missing audio.
const CONCEAL_GAINS: [i32; 4] = [224, 160, 96, 32];

/// What the buffer counted since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Audio packets accepted (placed at least partly).
    pub packets: u64,
    /// Packets that arrived after their whole span had been played.
    pub late_packets: u64,
    /// Packets whose every sample was already buffered.
    pub duplicate_packets: u64,
    /// Samples played that had not arrived while later ones had (losses, late packets).
    pub lost_samples: u64,
    /// Samples played while nothing newer had arrived (the sender paused or stopped).
    pub underrun_samples: u64,
    /// Frames with at least one concealed sample.
    pub concealed_frames: u64,
    /// Times the buffer re-anchored (first packet, new SSRC, timestamp jump).
    pub resyncs: u64,
    /// Samples skipped to reduce the delay.
    pub dropped_samples: u64,
    /// Samples of concealment inserted to increase the delay.
    pub inserted_samples: u64,
}

/// One participant's jitter buffer.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    samples: [i16; CAPACITY],
    present: [u64; CAPACITY / 64],
    /// SSRC of the stream being played; `None` before the first packet.
    ssrc: Option<u32>,
    /// RTP timestamp of the next sample to play.
    play: u32,
    /// One past the newest sample received (RTP timestamp).
    newest_end: u32,
    /// Samples missing before this RTP timestamp are not losses: the lead-in before the
    /// packet the buffer anchored on, or delay inserted when a packet came late.
    anchor: u32,
    /// Spare samples wanted beyond the frame being played.
    spare: u32,
    /// Smallest spare seen at a pop in the current window.
    window_min_spare: i32,
    window_frames: u32,
    window_late: u32,
    /// Whether a late packet already grew the delay in this window (once per window).
    grew_in_window: bool,
    calm_windows: u32,
    late_in_a_row: u32,
    /// The last frame that carried received audio, for concealment.
    last_frame: [i16; FRAME_SAMPLES],
    concealed_run: usize,
    stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        JitterBuffer::new()
    }
}

impl JitterBuffer {
    pub fn new() -> JitterBuffer {
        JitterBuffer {
            samples: [0; CAPACITY],
            present: [0; CAPACITY / 64],
            ssrc: None,
            play: 0,
            newest_end: 0,
            anchor: 0,
            spare: INITIAL_SPARE,
            window_min_spare: i32::MAX,
            window_frames: 0,
            window_late: 0,
            grew_in_window: false,
            calm_windows: 0,
            late_in_a_row: 0,
            last_frame: [0; FRAME_SAMPLES],
            concealed_run: CONCEAL_GAINS.len(),
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The spare (samples beyond one frame) the buffer currently aims for.
    pub fn wanted_spare(&self) -> u32 {
        self.spare
    }

    /// Samples buffered from the play position to the newest received sample (negative when
    /// the play position has passed it).
    pub fn buffered(&self) -> i32 {
        self.newest_end.wrapping_sub(self.play) as i32
    }

    /// Places one packet's G.711 `payload` (decoded through `decode`) at RTP `timestamp`.
    pub fn push(&mut self, ssrc: u32, timestamp: u32, payload: &[u8], decode: &[i16; 256]) {
        let payload = payload.get(..CAPACITY / 2).unwrap_or(payload);
        if payload.is_empty() {
            return;
        }
        let len = payload.len() as i32;
        if self.ssrc != Some(ssrc) {
            self.resync(ssrc, timestamp, len);
        }
        let mut offset = timestamp.wrapping_sub(self.play) as i32;
        let wholly_late = offset.saturating_add(len) <= 0;
        if offset.saturating_add(len) > CAPACITY as i32
            || offset < -RESYNC_LATE_SAMPLES
            || (wholly_late && self.late_in_a_row + 1 >= RESYNC_LATE_PACKETS)
        {
            // Further ahead than the ring reaches, or behind by more than any delay we
            // would adopt: a timestamp jump or a restarted stream.
            self.resync(ssrc, timestamp, len);
            offset = timestamp.wrapping_sub(self.play) as i32;
        } else if offset < 0 {
            self.stats.late_packets += 1;
            self.window_late += 1;
            if !self.grew_in_window {
                self.grow(offset.unsigned_abs());
            }
            if wholly_late {
                self.late_in_a_row += 1;
                return;
            }
        }
        self.late_in_a_row = 0;
        // Samples the play position had already passed are dropped (even if it then stepped
        // back): what was played in their place stays played, in order.
        let skip = (-offset).max(0) as usize;
        let mut fresh = false;
        for (i, byte) in payload.iter().enumerate().skip(skip) {
            let index = (timestamp.wrapping_add(i as u32) & MASK) as usize;
            let (word, bit) = (index / 64, 1u64 << (index % 64));
            if let (Some(bits), Some(sample)) =
                (self.present.get_mut(word), self.samples.get_mut(index))
            {
                fresh |= *bits & bit == 0;
                *bits |= bit;
                *sample = decode[usize::from(*byte)];
            }
        }
        if fresh {
            self.stats.packets += 1;
        } else if skip < payload.len() {
            self.stats.duplicate_packets += 1;
        }
        let end = timestamp.wrapping_add(len as u32);
        if end.wrapping_sub(self.play) as i32 > self.buffered() {
            self.newest_end = end;
        }
    }

    /// A packet came `late_by` samples after its play time: more delay from now on. The
    /// wanted spare grows by a step and the play position steps back by the lateness plus
    /// that step (at most [`MAX_INSERT`]), which plays as concealment: insertion.
    fn grow(&mut self, late_by: u32) {
        let frame = FRAME_SAMPLES as u32;
        let insert = late_by
            .saturating_add(SPARE_STEP_UP)
            .div_ceil(frame)
            .saturating_mul(frame)
            .min(MAX_INSERT);
        self.spare = (self.spare + SPARE_STEP_UP).min(MAX_SPARE);
        let back = self.play.wrapping_sub(insert);
        self.clear_span(back, insert);
        // What plays between the new and the old play position is inserted, not lost.
        self.anchor = self.play;
        self.play = back;
        self.grew_in_window = true;
        self.calm_windows = 0;
        self.stats.inserted_samples += u64::from(insert);
    }

    /// Re-anchors on a packet at `timestamp` of `len` samples: everything buffered is
    /// forgotten and the packet will start a frame, [`JitterBuffer::wanted_spare`] plus
    /// one frame after the next pop (rounded down to whole frames).
    fn resync(&mut self, ssrc: u32, timestamp: u32, len: i32) {
        self.present = [0; CAPACITY / 64];
        self.ssrc = Some(ssrc);
        let lead = (self.spare as i32 + FRAME_SAMPLES as i32 - len).max(0);
        let lead = lead - lead % FRAME_SAMPLES as i32;
        self.play = timestamp.wrapping_sub(lead as u32);
        self.newest_end = timestamp;
        self.anchor = timestamp;
        self.late_in_a_row = 0;
        self.window_min_spare = i32::MAX;
        self.window_frames = 0;
        self.window_late = 0;
        self.grew_in_window = false;
        self.stats.resyncs += 1;
    }

    /// Writes the next frame into `out` (concealing what is missing) and advances the play
    /// position; returns whether any of it was received audio.
    pub fn pop_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> bool {
        if self.ssrc.is_none() {
            out.fill(0);
            return false;
        }
        let buffered = self.buffered();
        self.window_min_spare = self.window_min_spare.min(buffered - FRAME_SAMPLES as i32);
        let gain = CONCEAL_GAINS.get(self.concealed_run).copied().unwrap_or(0);
        let mut received = 0usize;
        let mut lost = 0u64;
        let mut underrun = 0u64;
        for (i, slot) in out.iter_mut().enumerate() {
            let position = self.play.wrapping_add(i as u32);
            let index = (position & MASK) as usize;
            let (word, bit) = (index / 64, 1u64 << (index % 64));
            let bits = self.present.get_mut(word);
            match bits {
                Some(bits) if *bits & bit != 0 => {
                    *bits &= !bit;
                    *slot = self.samples.get(index).copied().unwrap_or(0);
                    received += 1;
                }
                _ => {
                    let last = self.last_frame.get(i).copied().unwrap_or(0);
                    *slot = (i32::from(last) * gain / 256) as i16;
                    if (i as i32) < buffered {
                        // Not the lead-in before the anchor packet: a gap in the stream.
                        if position.wrapping_sub(self.anchor) as i32 >= 0 {
                            lost += 1;
                        }
                    } else {
                        underrun += 1;
                    }
                }
            }
        }
        self.stats.lost_samples += lost;
        self.stats.underrun_samples += underrun;
        if received == FRAME_SAMPLES {
            self.last_frame = *out;
            self.concealed_run = 0;
        } else {
            self.stats.concealed_frames += 1;
            if received > 0 {
                // Keep what did arrive as the base of later concealment.
                self.last_frame = *out;
            }
            self.concealed_run = self.concealed_run.saturating_add(1);
        }
        self.play = self.play.wrapping_add(FRAME_SAMPLES as u32);
        self.window_frames += 1;
        if self.window_frames >= WINDOW_FRAMES {
            self.adapt();
        }
        received > 0
    }

    /// Skips `frames` frames without playing them (the mixer fell behind its ticks).
    pub fn skip_frames(&mut self, frames: u32) {
        for _ in 0..frames.min(CAPACITY as u32 / FRAME_SAMPLES as u32 + 1) {
            self.clear_span(self.play, FRAME_SAMPLES as u32);
            self.play = self.play.wrapping_add(FRAME_SAMPLES as u32);
        }
    }

    fn clear_span(&mut self, from: u32, len: u32) {
        for i in 0..len.min(CAPACITY as u32) {
            let index = (from.wrapping_add(i) & MASK) as usize;
            if let Some(bits) = self.present.get_mut(index / 64) {
                *bits &= !(1u64 << (index % 64));
            }
        }
    }

    /// The once-a-window delay adjustment (see the module documentation).
    fn adapt(&mut self) {
        let min_spare = self.window_min_spare;
        if self.window_late == 0 {
            self.calm_windows += 1;
            if self.calm_windows >= CALM_WINDOWS {
                self.calm_windows = 0;
                self.spare = self
                    .spare
                    .saturating_sub(SPARE_STEP_DOWN)
                    .max(INITIAL_SPARE);
            }
        }
        if !self.grew_in_window
            && min_spare != i32::MAX
            && min_spare >= self.spare as i32 + DROP_TOLERANCE
        {
            self.clear_span(self.play, DROP);
            self.play = self.play.wrapping_add(DROP);
            self.stats.dropped_samples += u64::from(DROP);
        }
        self.window_min_spare = i32::MAX;
        self.window_frames = 0;
        self.window_late = 0;
        self.grew_in_window = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711;

    /// `len` μ-law bytes that never repeat a 160-byte stretch (so every packet is found in
    /// one place only).
    fn ulaw_noise(seed: u32, len: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(2_654_435_761) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect()
    }

    fn decoded(bytes: &[u8]) -> Vec<i16> {
        bytes
            .iter()
            .map(|b| g711::ULAW_DECODE[usize::from(*b)])
            .collect()
    }

    fn pop(jb: &mut JitterBuffer) -> Vec<i16> {
        let mut frame = [0i16; FRAME_SAMPLES];
        jb.pop_frame(&mut frame);
        frame.to_vec()
    }

    /// A sender's whole signal, `packets` packets of `ptime` ms.
    fn signal(packets: usize, ptime: usize) -> Vec<u8> {
        ulaw_noise(7, packets * ptime * 8)
    }

    /// Feeds `signal` in packets of `ptime` ms starting at `ts0`, one 20 ms tick at a time,
    /// delivering the packets whose send time has come (in `order` within the tick);
    /// returns everything played.
    fn run(signal: &[u8], ptime: usize, ts0: u32, ticks: usize) -> (Vec<i16>, JitterStats) {
        let mut jb = JitterBuffer::new();
        let samples = ptime * 8;
        let mut played = Vec::new();
        let mut next = 0;
        for tick in 0..ticks {
            let now_samples = (tick + 1) * FRAME_SAMPLES;
            while next * samples < signal.len() && (next + 1) * samples <= now_samples {
                let chunk = &signal[next * samples..(next + 1) * samples];
                jb.push(
                    9,
                    ts0.wrapping_add((next * samples) as u32),
                    chunk,
                    &g711::ULAW_DECODE,
                );
                next += 1;
            }
            played.extend(pop(&mut jb));
        }
        (played, jb.stats())
    }

    /// Where `expected` starts in `played` (it must appear whole and exactly).
    fn find(played: &[i16], expected: &[i16]) -> usize {
        (0..=played.len() - expected.len())
            .find(|&o| played[o..o + expected.len()] == *expected)
            .unwrap_or_else(|| panic!("signal not found intact"))
    }

    #[test]
    fn in_order_packets_come_out_exactly_after_the_initial_delay() {
        for ptime in [10, 20, 30, 40] {
            let sig = signal(60 / (ptime / 10), ptime);
            let (played, stats) = run(&sig, ptime, 0xFFFF_FF00, 120);
            let at = find(&played, &decoded(&sig));
            assert!(
                played[..at].iter().all(|s| *s == 0),
                "ptime {ptime}: silence before"
            );
            // 20–60 ms behind the arrival of the first sample.
            let arrival = ptime * 8;
            assert!(
                (arrival..=arrival + 480).contains(&(at + FRAME_SAMPLES)),
                "ptime {ptime}: starts at {at}"
            );
            assert_eq!(stats.lost_samples, 0, "ptime {ptime}");
            assert_eq!(stats.resyncs, 1);
            assert_eq!(stats.packets as usize, sig.len() / (ptime * 8));
        }
    }

    #[test]
    fn reordered_and_duplicated_packets_fall_into_place() {
        let sig = signal(20, 20);
        let mut jb = JitterBuffer::new();
        let packet = |n: usize| &sig[n * 160..(n + 1) * 160];
        // 0, 2, 1, 1 (duplicate), 3, 5, 4, 4, 6.. in pairs per tick.
        let order = [
            0usize, 2, 1, 1, 3, 5, 4, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
        ];
        let mut played = Vec::new();
        for pair in order.chunks(2) {
            for n in pair {
                jb.push(1, 1000 + (*n as u32) * 160, packet(*n), &g711::ULAW_DECODE);
            }
            played.extend(pop(&mut jb));
        }
        // Twice the real-time rate went in: let the buffer play it all out.
        for _ in 0..20 {
            played.extend(pop(&mut jb));
        }
        find(&played, &decoded(&sig));
        let stats = jb.stats();
        assert_eq!(stats.duplicate_packets, 2);
        assert_eq!(stats.lost_samples, 0);
        assert_eq!(stats.packets, 20);
    }

    #[test]
    fn a_lost_packet_is_concealed_by_a_fading_repeat() {
        let sig = signal(10, 20);
        let mut jb = JitterBuffer::new();
        let mut frames = Vec::new();
        for n in 0..10usize {
            if n != 4 {
                jb.push(
                    1,
                    (n * 160) as u32,
                    &sig[n * 160..(n + 1) * 160],
                    &g711::ULAW_DECODE,
                );
            }
            frames.push(pop(&mut jb));
        }
        for _ in 0..8 {
            frames.push(pop(&mut jb));
        }
        let expected: Vec<Vec<i16>> = (0..10)
            .map(|n| decoded(&sig[n * 160..(n + 1) * 160]))
            .collect();
        let first = frames.iter().position(|f| *f == expected[0]).unwrap();
        for n in [0, 1, 2, 3, 5, 6, 7, 8, 9] {
            assert_eq!(frames[first + n], expected[n], "frame {n}");
        }
        let concealed = &frames[first + 4];
        for (c, prev) in concealed.iter().zip(&expected[3]) {
            assert_eq!(i32::from(*c), i32::from(*prev) * CONCEAL_GAINS[0] / 256);
        }
        assert_eq!(jb.stats().lost_samples, 160);
        // After the stream ends the repeat fades to silence: underrun, not loss.
        assert!(frames.last().unwrap().iter().all(|s| *s == 0));
        assert!(jb.stats().underrun_samples > 0);
    }

    #[test]
    fn a_late_packet_is_dropped_and_the_delay_grows() {
        let sig = signal(200, 20);
        let mut jb = JitterBuffer::new();
        let mut played = Vec::new();
        let mut held = None;
        for tick in 0..200usize {
            let chunk = &sig[tick * 160..(tick + 1) * 160];
            if tick == 20 {
                held = Some(chunk); // delayed by 100 ms: arrives after its play time
            } else {
                jb.push(3, (tick * 160) as u32, chunk, &g711::ULAW_DECODE);
            }
            if tick == 25 {
                jb.push(3, 20 * 160, held.unwrap(), &g711::ULAW_DECODE);
            }
            played.extend(pop(&mut jb));
        }
        let stats = jb.stats();
        assert_eq!(stats.late_packets, 1);
        assert_eq!(stats.lost_samples, 160);
        assert!(jb.wanted_spare() > INITIAL_SPARE, "delay grew");
        assert_eq!(stats.inserted_samples, u64::from(MAX_INSERT));
        assert!(
            stats.dropped_samples > 0,
            "the extra delay is given back: {stats:?}"
        );
        // Inserting and dropping whole frames keeps every later packet a whole frame (but
        // for the ones dropped).
        let mut missing = 0;
        for n in 30..185usize {
            let packet = decoded(&sig[n * 160..(n + 1) * 160]);
            match played.windows(160).position(|w| *w == packet[..]) {
                Some(at) => assert_eq!(at % FRAME_SAMPLES, 0, "packet {n} straddles two frames"),
                None => missing += 1,
            }
        }
        assert_eq!(missing * FRAME_SAMPLES as u64, stats.dropped_samples);
        assert_eq!(stats.resyncs, 1);
    }

    #[test]
    fn new_ssrc_and_timestamp_jumps_resync() {
        let sig = signal(10, 20);
        let mut jb = JitterBuffer::new();
        let mut played = Vec::new();
        for n in 0..5usize {
            jb.push(
                1,
                (n * 160) as u32,
                &sig[n * 160..(n + 1) * 160],
                &g711::ULAW_DECODE,
            );
            played.extend(pop(&mut jb));
        }
        // A new SSRC with an unrelated timestamp: heard after the initial delay, no loss.
        for n in 5..10usize {
            jb.push(
                2,
                0x8000_0000 + (n * 160) as u32,
                &sig[n * 160..(n + 1) * 160],
                &g711::ULAW_DECODE,
            );
            played.extend(pop(&mut jb));
        }
        for _ in 0..5 {
            played.extend(pop(&mut jb));
        }
        find(&played, &decoded(&sig[800..1600]));
        assert_eq!(jb.stats().resyncs, 2);
        // The same SSRC jumping a minute ahead, then back far behind: each re-anchors.
        jb.push(2, 0x8000_0000 + 480_000, &sig[..160], &g711::ULAW_DECODE);
        jb.push(2, 0x8000_0000 - 80_000, &sig[..160], &g711::ULAW_DECODE);
        assert_eq!(jb.stats().resyncs, 4);
        let mut later = Vec::new();
        for _ in 0..4 {
            later.extend(pop(&mut jb));
        }
        find(&later, &decoded(&sig[..160]));
    }

    /// A sender whose clock runs `ppm` parts per million off the mixer's, for `seconds`:
    /// returns the buffered samples at the end and the stats.
    fn drift(ppm: i64, seconds: usize) -> (i32, JitterStats) {
        let mut jb = JitterBuffer::new();
        let payload = [0x55u8; 160];
        // Sender time in nanoseconds per packet.
        let packet_ns = (20_000_000i64 * 1_000_000) / (1_000_000 + ppm);
        let mut next_send = 0i64;
        let mut seq = 0u32;
        let mut max_buffered = 0;
        for tick in 0..seconds * 50 {
            let now = (tick as i64 + 1) * 20_000_000;
            while next_send < now {
                jb.push(5, seq * 160, &payload, &g711::ULAW_DECODE);
                seq += 1;
                next_send += packet_ns;
            }
            pop(&mut jb);
            if tick > 100 {
                max_buffered = max_buffered.max(jb.buffered());
            }
        }
        assert!(
            max_buffered <= (MAX_SPARE + 3 * 160) as i32,
            "buffered {max_buffered}"
        );
        (jb.buffered(), jb.stats())
    }

    #[test]
    fn clock_drift_is_absorbed_by_drops_or_insertions() {
        // 1% fast: 16 s → 8 packets (1280 samples) too many; the delay must not grow.
        let (fast, stats) = drift(10_000, 16);
        assert!(stats.dropped_samples >= 800, "{stats:?}");
        assert_eq!(
            stats.dropped_samples % FRAME_SAMPLES as u64,
            0,
            "whole frames"
        );
        assert!(
            fast <= (INITIAL_SPARE + 3 * 160) as i32,
            "fast sender buffered {fast}"
        );
        assert_eq!(stats.resyncs, 1);
        // 1% slow: the buffer runs dry now and then and steps its delay back up.
        let (_, stats) = drift(-10_000, 16);
        assert!(stats.inserted_samples > 0, "{stats:?}");
        assert_eq!(
            stats.inserted_samples % FRAME_SAMPLES as u64,
            0,
            "whole frames"
        );
        assert_eq!(stats.resyncs, 1, "{stats:?}");
        // No drift: nothing dropped or inserted, nothing lost.
        let (_, stats) = drift(0, 16);
        assert_eq!(
            (
                stats.dropped_samples,
                stats.inserted_samples,
                stats.lost_samples
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn empty_oversized_and_garbage_timestamps_never_panic() {
        let mut jb = JitterBuffer::new();
        jb.push(1, 0, &[], &g711::ULAW_DECODE);
        assert_eq!(jb.stats().packets, 0);
        jb.push(1, u32::MAX - 3, &[0u8; 5000], &g711::ULAW_DECODE);
        for ts in [0u32, 1 << 31, 7, u32::MAX, 12345] {
            jb.push(1, ts, &[1u8; 160], &g711::ULAW_DECODE);
            pop(&mut jb);
        }
        jb.skip_frames(u32::MAX);
        pop(&mut jb);
    }
}
