//! The pure parts of call recording: where a frame goes in the recording's timeline, the
//! bounded placement window that fills gaps with silence and mixes, and the WAV header.
//!
//! Positions are in samples (8 kHz) since the recording started. A worker gives every
//! frame a position: sent frames by their send tick ([`samples_since`] the recording's
//! start), received frames by RTP timestamp relative to the first received packet plus
//! that packet's arrival offset ([`ReceiveClock`]). The writer thread feeds frames to a
//! [`PlacementWindow`] that holds only the last few seconds: late parts are dropped,
//! overlapping frames of one direction overwrite, gaps stay silent, and everything more
//! than [`JITTER_SAMPLES`] behind the newest frame is encoded (Mono: saturating sum of
//! received and sent; Dual: interleaved received, sent) and handed to a sink.

use std::time::Instant;

use shmq::RecordingChannels;

use crate::session::SAMPLES_PER_MS;

/// Length of the canonical PCM WAV header written before the samples.
pub const WAV_HEADER_LEN: usize = 44;
/// The recording sample rate.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples the placement window holds (2 s).
pub const WINDOW_SAMPLES: usize = 16_000;
/// How far behind the newest frame a frame may arrive and still be placed (1 s).
pub const JITTER_SAMPLES: usize = 8_000;
/// A received stream whose timestamps stray this far from the arrival clock is re-anchored.
pub const RESYNC_SAMPLES: i64 = 8_000;
/// Samples encoded per sink call when flushing.
const FLUSH_CHUNK_SAMPLES: usize = 4_000;

/// Which side of the call a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What the session received (the far end): channel 1.
    Received,
    /// What the session sent (Switchboard's side): channel 2.
    Sent,
}

/// Number of channels a recording's WAV file has.
pub fn channel_count(channels: RecordingChannels) -> u16 {
    match channels {
        RecordingChannels::Mono => 1,
        RecordingChannels::Dual => 2,
    }
}

/// Bytes per sample frame (all channels) of 16-bit PCM.
pub fn block_align(channels: RecordingChannels) -> u64 {
    u64::from(channel_count(channels)) * 2
}

/// The longest recording whose sizes fit the WAV header's 32-bit fields, in samples.
pub fn max_wav_samples(channels: RecordingChannels) -> u64 {
    (u64::from(u32::MAX) - (WAV_HEADER_LEN as u64 - 8)) / block_align(channels)
}

/// The canonical 44-byte header of a 16-bit PCM, 8 kHz WAV file with `data_bytes` of samples.
pub fn wav_header(channels: RecordingChannels, data_bytes: u32) -> [u8; WAV_HEADER_LEN] {
    let channel_count = channel_count(channels);
    let block = channel_count * 2;
    let mut h = [0u8; WAV_HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_bytes.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&channel_count.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(SAMPLE_RATE * u32::from(block)).to_le_bytes());
    h[32..34].copy_from_slice(&block.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// Samples from `start` to `at` (negative if `at` is earlier), rounded down, so two
/// instants a whole number of milliseconds apart are exactly `8·ms` samples apart.
pub fn samples_since(start: Instant, at: Instant) -> i64 {
    const NANOS_PER_SAMPLE_DIVISOR: u128 = 1_000_000;
    let per_ms = u128::from(SAMPLES_PER_MS);
    if at >= start {
        let nanos = (at - start).as_nanos();
        i64::try_from(nanos * per_ms / NANOS_PER_SAMPLE_DIVISOR).unwrap_or(i64::MAX)
    } else {
        let nanos = (start - at).as_nanos();
        let up = (nanos * per_ms).div_ceil(NANOS_PER_SAMPLE_DIVISOR);
        i64::try_from(up).map(|v| -v).unwrap_or(i64::MIN)
    }
}

/// Places received packets by their RTP timestamps: the first one (or the first after a
/// change of SSRC or a jump of more than [`RESYNC_SAMPLES`] away from its arrival time)
/// anchors the stream at its arrival position; later ones sit at that position plus their
/// timestamp's distance from the anchor's (signed, so reordered packets go back in place).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceiveClock {
    anchor: Option<Anchor>,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    timestamp: u32,
    position: i64,
}

impl ReceiveClock {
    pub fn new() -> ReceiveClock {
        ReceiveClock::default()
    }

    /// The position of a packet with `ssrc` and `timestamp` that arrived at `arrival`.
    pub fn place(&mut self, ssrc: u32, timestamp: u32, arrival: i64) -> i64 {
        if let Some(anchor) = self.anchor.filter(|a| a.ssrc == ssrc) {
            let delta = i64::from(timestamp.wrapping_sub(anchor.timestamp) as i32);
            let position = anchor.position.saturating_add(delta);
            if (position - arrival).abs() <= RESYNC_SAMPLES {
                return position;
            }
        }
        self.anchor = Some(Anchor {
            ssrc,
            timestamp,
            position: arrival,
        });
        arrival
    }
}

/// The last few seconds of a recording, both directions, waiting to be written in order.
#[derive(Debug)]
pub struct PlacementWindow {
    channels: RecordingChannels,
    /// Position of the first sample not yet handed to the sink.
    start: u64,
    /// End of the newest frame placed.
    high: u64,
    /// No sample at or past this position is kept.
    limit: u64,
    jitter: u64,
    received: Box<[i16]>,
    sent: Box<[i16]>,
    encoded: Vec<u8>,
    late_samples: u64,
}

impl PlacementWindow {
    /// A window of [`WINDOW_SAMPLES`] that flushes [`JITTER_SAMPLES`] behind the newest frame.
    pub fn new(channels: RecordingChannels, limit: u64) -> PlacementWindow {
        PlacementWindow::with_sizes(channels, limit, WINDOW_SAMPLES, JITTER_SAMPLES)
    }

    /// A window of `capacity` samples keeping `jitter` (< capacity) behind the newest frame.
    pub fn with_sizes(
        channels: RecordingChannels,
        limit: u64,
        capacity: usize,
        jitter: usize,
    ) -> PlacementWindow {
        let capacity = capacity.max(1);
        PlacementWindow {
            channels,
            start: 0,
            high: 0,
            limit,
            jitter: jitter.min(capacity - 1) as u64,
            received: vec![0; capacity].into_boxed_slice(),
            sent: vec![0; capacity].into_boxed_slice(),
            encoded: Vec::with_capacity(FLUSH_CHUNK_SAMPLES * block_align(channels) as usize),
            late_samples: 0,
        }
    }

    /// Samples handed to the sink so far.
    pub fn written(&self) -> u64 {
        self.start
    }

    /// End position of the newest frame placed.
    pub fn high(&self) -> u64 {
        self.high
    }

    /// Samples dropped because they arrived after their position was written.
    pub fn late_samples(&self) -> u64 {
        self.late_samples
    }

    fn capacity(&self) -> u64 {
        self.received.len() as u64
    }

    /// Places `samples` of `direction` at `position` (overwriting what that direction had
    /// there) and flushes whatever falls more than the jitter allowance behind.
    pub fn place<E>(
        &mut self,
        direction: Direction,
        position: i64,
        samples: &[i16],
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let capacity = self.received.len();
        let mut position = position;
        for chunk in samples.chunks(capacity) {
            self.place_chunk(direction, position, chunk, sink)?;
            position = position.saturating_add(chunk.len() as i64);
        }
        Ok(())
    }

    fn place_chunk<E>(
        &mut self,
        direction: Direction,
        position: i64,
        samples: &[i16],
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut samples = samples;
        let start = i64::try_from(self.start).unwrap_or(i64::MAX);
        let mut position = position;
        if position < start {
            let late = usize::try_from(start.saturating_sub(position))
                .unwrap_or(usize::MAX)
                .min(samples.len());
            self.late_samples += late as u64;
            samples = samples.get(late..).unwrap_or_default();
            position = start;
        }
        let position = u64::try_from(position).unwrap_or(0);
        if position >= self.limit || samples.is_empty() {
            return Ok(());
        }
        let room = usize::try_from(self.limit - position).unwrap_or(usize::MAX);
        let samples = samples.get(..room.min(samples.len())).unwrap_or_default();
        let end = position + samples.len() as u64;
        if end > self.start + self.capacity() {
            self.flush_to(end - self.capacity(), sink)?;
        }
        let capacity = self.capacity();
        let track = match direction {
            Direction::Received => &mut self.received,
            Direction::Sent => &mut self.sent,
        };
        for (offset, sample) in samples.iter().enumerate() {
            let index = ((position + offset as u64) % capacity) as usize;
            if let Some(cell) = track.get_mut(index) {
                *cell = *sample;
            }
        }
        self.high = self.high.max(end);
        if self.high > self.start + self.jitter {
            self.flush_to(self.high - self.jitter, sink)?;
        }
        Ok(())
    }

    /// Writes everything up to `end` (silence where nothing was placed) and drops the rest.
    pub fn finish<E>(
        &mut self,
        end: u64,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.flush_to(end.min(self.limit), sink)
    }

    /// Encodes positions `start..target` in chunks, clearing their cells for reuse.
    fn flush_to<E>(
        &mut self,
        target: u64,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let capacity = self.capacity();
        while self.start < target {
            let n = (target - self.start).min(FLUSH_CHUNK_SAMPLES as u64);
            self.encoded.clear();
            for position in self.start..self.start + n {
                let index = (position % capacity) as usize;
                let received = self.received.get_mut(index).map_or(0, std::mem::take);
                let sent = self.sent.get_mut(index).map_or(0, std::mem::take);
                match self.channels {
                    RecordingChannels::Mono => self
                        .encoded
                        .extend_from_slice(&received.saturating_add(sent).to_le_bytes()),
                    RecordingChannels::Dual => {
                        self.encoded.extend_from_slice(&received.to_le_bytes());
                        self.encoded.extend_from_slice(&sent.to_le_bytes());
                    }
                }
            }
            sink(&self.encoded)?;
            self.start += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::time::Duration;

    fn decode(bytes: &[u8]) -> Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    /// Runs `frames` through a small window and returns the decoded output.
    fn run(
        channels: RecordingChannels,
        capacity: usize,
        jitter: usize,
        limit: u64,
        frames: &[(Direction, i64, Vec<i16>)],
        end: u64,
    ) -> (Vec<i16>, PlacementWindow) {
        let mut out = Vec::new();
        let mut window = PlacementWindow::with_sizes(channels, limit, capacity, jitter);
        let mut sink = |b: &[u8]| -> Result<(), Infallible> {
            out.extend_from_slice(b);
            Ok(())
        };
        for (direction, position, samples) in frames {
            window
                .place(*direction, *position, samples, &mut sink)
                .unwrap();
        }
        window.finish(end, &mut sink).unwrap();
        (decode(&out), window)
    }

    use Direction::{Received as Rx, Sent as Tx};

    #[test]
    fn dual_interleaves_fills_gaps_and_places_out_of_order() {
        let frames = vec![
            (Tx, 2, vec![20, 21]),
            (Rx, 5, vec![50, 51]),
            (Rx, 0, vec![1, 2]), // earlier than the frame before: still in the window
            (Tx, 3, vec![31, 32]), // overlaps: the newer frame wins
        ];
        let (out, window) = run(RecordingChannels::Dual, 16, 8, u64::MAX, &frames, 8);
        #[rustfmt::skip]
        let expected = [1, 0,  2, 0,  0, 20,  0, 31,  0, 32,  50, 0,  51, 0,  0, 0];
        assert_eq!(out, expected);
        assert_eq!(window.written(), 8);
        assert_eq!(window.late_samples(), 0);
    }

    #[test]
    fn mono_is_the_saturating_sum() {
        let frames = vec![
            (Rx, 0, vec![100, i16::MAX, i16::MIN, -5]),
            (Tx, 1, vec![7, -10, 10, 5]),
        ];
        let (out, _) = run(RecordingChannels::Mono, 16, 8, u64::MAX, &frames, 6);
        assert_eq!(out, [100, i16::MAX, i16::MIN, 5, 5, 0]);
    }

    #[test]
    fn window_flushes_behind_the_newest_frame_and_drops_late_samples() {
        let mut out = Vec::new();
        let mut window = PlacementWindow::with_sizes(RecordingChannels::Mono, u64::MAX, 8, 4);
        let mut sink = |b: &[u8]| -> Result<(), Infallible> {
            out.extend_from_slice(b);
            Ok(())
        };
        window.place(Rx, 0, &[1, 2, 3], &mut sink).unwrap();
        assert_eq!(window.written(), 0, "within the jitter allowance");
        window.place(Rx, 3, &[4, 5, 6], &mut sink).unwrap();
        assert_eq!(window.written(), 2, "6 placed, 4 kept");
        window.place(Tx, 0, &[10, 10, 10, 10], &mut sink).unwrap();
        assert_eq!(window.late_samples(), 2, "positions 0 and 1 were written");
        // A frame far ahead pushes the window forward, silence in between.
        window.place(Rx, 20, &[9], &mut sink).unwrap();
        assert_eq!(window.high(), 21);
        window.finish(22, &mut sink).unwrap();
        let out = decode(&out);
        let mut expected = vec![1, 2, 13, 14, 5, 6];
        expected.extend(std::iter::repeat_n(0, 14));
        expected.extend([9, 0]);
        assert_eq!(out, expected);
    }

    #[test]
    fn long_silence_is_written_in_bounded_chunks() {
        let mut chunks = Vec::new();
        let mut window = PlacementWindow::new(RecordingChannels::Dual, u64::MAX);
        let mut sink = |b: &[u8]| -> Result<(), Infallible> {
            chunks.push(b.len());
            Ok(())
        };
        window.finish(100_000, &mut sink).unwrap();
        assert_eq!(chunks.iter().sum::<usize>(), 400_000);
        assert!(chunks.iter().all(|n| *n <= FLUSH_CHUNK_SAMPLES * 4));
    }

    #[test]
    fn limit_truncates_and_frames_longer_than_the_window_fit() {
        let long: Vec<i16> = (1..=30).collect();
        let (out, _) = run(
            RecordingChannels::Mono,
            8,
            4,
            25,
            &[(Tx, 2, long.clone())],
            40,
        );
        let mut expected = vec![0, 0];
        expected.extend_from_slice(&long[..23]);
        assert_eq!(out, expected, "2 + 23 = the 25-sample limit");
    }

    #[test]
    fn sink_errors_stop_the_flush() {
        let mut window = PlacementWindow::with_sizes(RecordingChannels::Mono, u64::MAX, 8, 4);
        let mut sink = |_: &[u8]| -> Result<(), &'static str> { Err("disk full") };
        assert_eq!(window.place(Rx, 0, &[1; 6], &mut sink), Err("disk full"));
        assert_eq!(window.written(), 0);
    }

    #[test]
    fn wav_header_fields() {
        let h = wav_header(RecordingChannels::Dual, 32_000);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), 32_036);
        assert_eq!(&h[8..16], b"WAVEfmt ");
        assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), 16);
        assert_eq!(u16::from_le_bytes(h[20..22].try_into().unwrap()), 1, "PCM");
        assert_eq!(u16::from_le_bytes(h[22..24].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(h[24..28].try_into().unwrap()), 8000);
        assert_eq!(u32::from_le_bytes(h[28..32].try_into().unwrap()), 32_000);
        assert_eq!(u16::from_le_bytes(h[32..34].try_into().unwrap()), 4);
        assert_eq!(u16::from_le_bytes(h[34..36].try_into().unwrap()), 16);
        assert_eq!(&h[36..40], b"data");
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 32_000);
        let mono = wav_header(RecordingChannels::Mono, 0);
        assert_eq!(u16::from_le_bytes(mono[22..24].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(mono[28..32].try_into().unwrap()), 16_000);
        assert_eq!(u16::from_le_bytes(mono[32..34].try_into().unwrap()), 2);
        let max = max_wav_samples(RecordingChannels::Dual);
        assert!(max * 4 + 36 <= u64::from(u32::MAX));
        assert!((max + 1) * 4 + 36 > u64::from(u32::MAX));
    }

    #[test]
    fn samples_since_is_exact_on_millisecond_steps() {
        let t0 = Instant::now();
        let start = t0 + Duration::from_nanos(123_457);
        for k in 0..50u64 {
            let at = start + Duration::from_millis(20 * k) + Duration::from_micros(300);
            assert_eq!(samples_since(start, at), 160 * k as i64 + 2);
        }
        assert_eq!(samples_since(start, t0), -1, "rounded down");
        assert_eq!(samples_since(start, start), 0);
    }

    #[test]
    fn receive_clock_follows_timestamps_and_reanchors() {
        let mut clock = ReceiveClock::new();
        assert_eq!(clock.place(7, 4_294_967_200, 800), 800);
        // Timestamps wrap; arrival jitter does not move the placement.
        assert_eq!(
            clock.place(7, 4_294_967_200u32.wrapping_add(160), 1000),
            960
        );
        assert_eq!(
            clock.place(7, 4_294_967_200u32.wrapping_add(320), 1050),
            1120
        );
        // Reordered: goes back in place.
        assert_eq!(
            clock.place(7, 4_294_967_200u32.wrapping_sub(160), 1100),
            640
        );
        // A new SSRC re-anchors at its arrival.
        assert_eq!(clock.place(8, 5, 3000), 3000);
        // A timestamp jump of more than RESYNC_SAMPLES away from the arrival re-anchors.
        assert_eq!(clock.place(8, 5 + 100_000, 3200), 3200);
        assert_eq!(clock.place(8, 5 + 100_160, 3400), 3360);
    }
}
