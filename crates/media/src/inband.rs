//! In-band DTMF detection: the Goertzel algorithm over the received audio, for sessions that
//! did not negotiate RFC 4733 telephone events (a caller's keypad tones arrive as sound).
//!
//! Samples are taken in blocks of [`BLOCK`] (205 samples at 8 kHz, 25.6 ms: the classic size
//! whose resolution separates the eight DTMF frequencies); each block's energy at the four
//! row and four column frequencies is compared with the block's total energy. A block holds
//! a digit when one row and one column tone stand out from their groups, carry most of the
//! block's energy, are loud enough, and their levels are within the allowed twist. A digit is
//! reported when two consecutive blocks hold it (≥ 51 ms of tone) after a block that held
//! none, so a long press is one digit and a repeated key needs a pause between presses.

/// Samples per Goertzel block.
pub const BLOCK: usize = 205;

const SAMPLE_RATE: f32 = 8000.0;
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[u8; 4]; 4] = [
    *b"123A", //
    *b"456B", //
    *b"789C", //
    *b"*0#D", //
];

/// Share of the block's energy the two tones must carry together (a pure pair carries ½ by
/// the normalisation below; speech spreads its energy across the band).
const MIN_TONE_SHARE: f32 = 0.35;
/// Each tone must exceed the others of its group by this power ratio (8 dB).
const MIN_GROUP_RATIO: f32 = 6.3;
/// Column tone may be at most this much louder than the row tone (reverse twist, 8 dB) and
/// the row tone this much louder than the column tone (normal twist, 8 dB).
const MAX_TWIST: f32 = 6.3;
/// The quietest tone accepted: about −36 dBm0 per tone on a 16-bit scale (amplitude ≈ 500).
const MIN_TONE_AMPLITUDE: f32 = 500.0;
/// Blocks in a row that must hold the same digit.
const CONFIRM_BLOCKS: u8 = 2;

/// One Goertzel filter's state.
#[derive(Debug, Clone, Copy, Default)]
struct Goertzel {
    s1: f32,
    s2: f32,
}

/// Detects DTMF digits in a stream of linear samples.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    coefficients: [f32; 8],
    filters: [Goertzel; 8],
    energy: f32,
    filled: usize,
    /// The digit the last block held, and for how many blocks in a row.
    candidate: Option<u8>,
    run: u8,
    /// The digit already reported for the current tone, until a block without it.
    reported: Option<u8>,
}

impl Default for InbandDetector {
    fn default() -> Self {
        InbandDetector::new()
    }
}

impl InbandDetector {
    pub fn new() -> InbandDetector {
        let mut coefficients = [0.0; 8];
        for (c, f) in coefficients
            .iter_mut()
            .zip(ROWS.iter().chain(COLUMNS.iter()))
        {
            *c = 2.0 * (2.0 * std::f32::consts::PI * f / SAMPLE_RATE).cos();
        }
        InbandDetector {
            coefficients,
            filters: [Goertzel::default(); 8],
            energy: 0.0,
            filled: 0,
            candidate: None,
            run: 0,
            reported: None,
        }
    }

    /// Feeds samples; calls `on_digit` for each newly detected key press (ASCII `0-9 * # A-D`).
    pub fn feed(&mut self, samples: impl IntoIterator<Item = i16>, mut on_digit: impl FnMut(u8)) {
        for sample in samples {
            let x = f32::from(sample);
            self.energy += x * x;
            for (filter, coefficient) in self.filters.iter_mut().zip(self.coefficients) {
                let s0 = x + coefficient * filter.s1 - filter.s2;
                filter.s2 = filter.s1;
                filter.s1 = s0;
            }
            self.filled += 1;
            if self.filled == BLOCK {
                if let Some(digit) = self.end_block() {
                    on_digit(digit);
                }
            }
        }
    }

    /// Classifies the finished block and resets the filters; returns a digit to report.
    fn end_block(&mut self) -> Option<u8> {
        let mut power = [0.0f32; 8];
        for ((p, filter), coefficient) in power.iter_mut().zip(&self.filters).zip(self.coefficients)
        {
            *p =
                filter.s1 * filter.s1 + filter.s2 * filter.s2 - coefficient * filter.s1 * filter.s2;
        }
        let held = classify(&power, self.energy);
        self.filters = [Goertzel::default(); 8];
        self.energy = 0.0;
        self.filled = 0;

        if held.is_some() && held == self.candidate {
            self.run = self.run.saturating_add(1);
        } else {
            self.candidate = held;
            self.run = u8::from(held.is_some());
        }
        if held.is_none() {
            self.reported = None;
            return None;
        }
        if self.run >= CONFIRM_BLOCKS && self.reported != held {
            self.reported = held;
            return held;
        }
        None
    }
}

/// The digit a block's powers show, if any (`power[0..4]` rows, `power[4..8]` columns).
fn classify(power: &[f32; 8], energy: f32) -> Option<u8> {
    let (rows, columns) = power.split_at(4);
    let (row, row_power) = strongest(rows)?;
    let (column, column_power) = strongest(columns)?;
    // |X(f)|² of a tone of amplitude A over N samples is (A·N/2)²; the block's energy is N·A²/2.
    let n = BLOCK as f32;
    let min_power = (MIN_TONE_AMPLITUDE * n / 2.0).powi(2);
    if row_power < min_power || column_power < min_power {
        return None;
    }
    if (row_power + column_power) < MIN_TONE_SHARE * n * energy {
        return None;
    }
    if row_power > column_power * MAX_TWIST || column_power > row_power * MAX_TWIST {
        return None;
    }
    let stands_out = |group: &[f32], best: usize, best_power: f32| {
        group
            .iter()
            .enumerate()
            .all(|(i, p)| i == best || best_power >= p * MIN_GROUP_RATIO)
    };
    if !stands_out(rows, row, row_power) || !stands_out(columns, column, column_power) {
        return None;
    }
    KEYS.get(row).and_then(|keys| keys.get(column)).copied()
}

fn strongest(group: &[f32]) -> Option<(usize, f32)> {
    group
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frequencies(key: u8) -> (f32, f32) {
        for (r, keys) in KEYS.iter().enumerate() {
            if let Some(c) = keys.iter().position(|k| *k == key) {
                return (ROWS[r], COLUMNS[c]);
            }
        }
        panic!("not a key: {key}");
    }

    /// `ms` of a key's two tones at `amplitude` each (start phase from `offset` samples).
    fn tone(key: u8, ms: usize, amplitude: f32, offset: usize) -> Vec<i16> {
        let (low, high) = frequencies(key);
        (0..ms * 8)
            .map(|i| {
                let t = (i + offset) as f32 / SAMPLE_RATE;
                let v = amplitude * (2.0 * std::f32::consts::PI * low * t).sin()
                    + amplitude * (2.0 * std::f32::consts::PI * high * t).sin();
                v as i16
            })
            .collect()
    }

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; ms * 8]
    }

    fn detect(samples: &[i16]) -> Vec<u8> {
        let mut detector = InbandDetector::new();
        let mut digits = Vec::new();
        // In 20 ms packets, as they arrive.
        for packet in samples.chunks(160) {
            detector.feed(packet.iter().copied(), |d| digits.push(d));
        }
        digits
    }

    #[test]
    fn every_key_is_detected_once_per_press() {
        let mut samples = Vec::new();
        let keys = b"1234567890*#ABCD";
        for (i, key) in keys.iter().enumerate() {
            samples.extend(tone(*key, 80, 6000.0, i * 37));
            samples.extend(silence(60));
        }
        assert_eq!(detect(&samples), keys.to_vec());
    }

    #[test]
    fn through_g711_and_at_low_level_and_with_twist() {
        // μ-law quantisation, a quiet press, and a row tone 4 dB louder than the column.
        let mut samples = Vec::new();
        samples.extend(tone(b'5', 100, 1200.0, 0));
        samples.extend(silence(50));
        let (low, high) = frequencies(b'9');
        samples.extend((0..800).map(|i| {
            let t = i as f32 / SAMPLE_RATE;
            (8000.0 * (2.0 * std::f32::consts::PI * low * t).sin()
                + 5000.0 * (2.0 * std::f32::consts::PI * high * t).sin()) as i16
        }));
        samples.extend(silence(50));
        let through_ulaw: Vec<i16> = samples
            .iter()
            .map(|s| crate::g711::ulaw_to_linear(crate::g711::linear_to_ulaw(*s)))
            .collect();
        assert_eq!(detect(&through_ulaw), b"59".to_vec());
    }

    #[test]
    fn a_long_press_is_one_digit_and_a_repeat_needs_a_pause() {
        let mut samples = tone(b'7', 600, 5000.0, 0);
        assert_eq!(detect(&samples), b"7".to_vec());
        samples.extend(silence(60));
        samples.extend(tone(b'7', 80, 5000.0, 0));
        assert_eq!(detect(&samples), b"77".to_vec());
    }

    #[test]
    fn short_blips_single_tones_noise_and_speechlike_sound_are_not_digits() {
        // 30 ms is shorter than two blocks.
        assert!(detect(&tone(b'3', 30, 6000.0, 0)).is_empty());
        // One tone alone (a dial-tone-like 941 Hz).
        let single: Vec<i16> = (0..8000)
            .map(|i| {
                (6000.0 * (2.0 * std::f32::consts::PI * 941.0 * i as f32 / SAMPLE_RATE).sin())
                    as i16
            })
            .collect();
        assert!(detect(&single).is_empty());
        // Too quiet.
        assert!(detect(&tone(b'3', 200, 200.0, 0)).is_empty());
        // White-ish noise and a chord of many tones (vowel-like harmonics of 120 Hz).
        let mut seed = 0x1234_5678u32;
        let noise: Vec<i16> = (0..16000)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((seed >> 16) as i16) / 4
            })
            .collect();
        assert!(detect(&noise).is_empty());
        let vowel: Vec<i16> = (0..16000)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE;
                (1..20)
                    .map(|h| {
                        1500.0 / h as f32
                            * (2.0 * std::f32::consts::PI * 120.0 * h as f32 * t).sin()
                    })
                    .sum::<f32>() as i16
            })
            .collect();
        assert!(detect(&vowel).is_empty());
        // A key tone under loud noise (the tones carry too little of the energy).
        let mixed: Vec<i16> = tone(b'8', 200, 1000.0, 0)
            .iter()
            .zip(&noise)
            .map(|(t, n)| t.saturating_add(*n))
            .collect();
        assert!(detect(&mixed).is_empty());
    }
}
