//! G.711 μ-law and A-law (ITU-T G.711), sample by sample and through lookup tables.
//!
//! Encoding follows the reference algorithms (segment search on the biased magnitude);
//! decoding and μ-law→A-law transcoding use 256-entry tables built at compile time, so
//! the packet path does one table lookup per byte.

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample as μ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = sample as i32;
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    if pcm > ULAW_CLIP {
        pcm = ULAW_CLIP;
    }
    pcm += ULAW_BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && pcm & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Decodes one μ-law byte to a 16-bit linear sample.
pub const fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encodes one 16-bit linear sample as A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = sample as i32;
    let sign = if pcm >= 0 { 0xD5 } else { 0x55 };
    if pcm < 0 {
        pcm = -pcm - 1;
    }
    if pcm > 32767 {
        pcm = 32767;
    }
    let encoded = if pcm < 256 {
        (pcm >> 4) as u8
    } else {
        let mut exponent = 7;
        let mut mask = 0x4000;
        while exponent > 1 && pcm & mask == 0 {
            exponent -= 1;
            mask >>= 1;
        }
        ((exponent << 4) | ((pcm >> (exponent + 3)) & 0x0F)) as u8
    };
    encoded ^ sign
}

/// Decodes one A-law byte to a 16-bit linear sample.
pub const fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0F) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if sign != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_ulaw_decode() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    table
}

const fn build_alaw_decode() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    table
}

/// μ-law byte → linear sample.
pub static ULAW_DECODE: [i16; 256] = build_ulaw_decode();
/// A-law byte → linear sample.
pub static ALAW_DECODE: [i16; 256] = build_alaw_decode();

/// μ-law byte → A-law byte (through linear), built on first use.
pub fn ulaw_to_alaw_table() -> &'static [u8; 256] {
    static TABLE: std::sync::OnceLock<[u8; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u8; 256];
        for (i, out) in t.iter_mut().enumerate() {
            *out = linear_to_alaw(ULAW_DECODE[i]);
        }
        t
    })
}

/// A-law byte → μ-law byte (through linear), built on first use.
pub fn alaw_to_ulaw_table() -> &'static [u8; 256] {
    static TABLE: std::sync::OnceLock<[u8; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u8; 256];
        for (i, out) in t.iter_mut().enumerate() {
            *out = linear_to_ulaw(ALAW_DECODE[i]);
        }
        t
    })
}

/// Rewrites `payload` through a 256-entry byte table (a G.711 law conversion).
pub fn transcode_in_place(table: &[u8; 256], payload: &mut [u8]) {
    for byte in payload.iter_mut() {
        *byte = table[usize::from(*byte)];
    }
}

/// The μ-law byte for digital silence (linear 0).
pub const ULAW_SILENCE: u8 = 0xFF;
/// The A-law byte for digital silence (linear 0).
pub const ALAW_SILENCE: u8 = 0xD5;

/// Encodes a buffer of linear samples as μ-law into `out` (same length).
pub fn encode_ulaw(samples: &[i16], out: &mut [u8]) {
    for (s, o) in samples.iter().zip(out.iter_mut()) {
        *o = linear_to_ulaw(*s);
    }
}

/// Transcodes μ-law bytes to A-law bytes in place of `out`.
pub fn transcode_ulaw_to_alaw(input: &[u8], out: &mut [u8]) {
    let table = ulaw_to_alaw_table();
    for (i, o) in input.iter().zip(out.iter_mut()) {
        *o = table[*i as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn law_conversion_tables_agree_with_decode_then_encode() {
        let u2a = ulaw_to_alaw_table();
        let a2u = alaw_to_ulaw_table();
        for byte in 0..=255u8 {
            assert_eq!(u2a[usize::from(byte)], linear_to_alaw(ulaw_to_linear(byte)));
            assert_eq!(a2u[usize::from(byte)], linear_to_ulaw(alaw_to_linear(byte)));
        }
        // Silence maps to silence; G.711 A-law ↔ μ-law is close to a round trip.
        assert_eq!(u2a[usize::from(ULAW_SILENCE)], ALAW_SILENCE);
        let mut payload = [0x00, 0x7F, 0x80, ULAW_SILENCE];
        transcode_in_place(u2a, &mut payload);
        transcode_in_place(a2u, &mut payload);
        for (back, original) in payload.iter().zip([0x00u8, 0x7F, 0x80, ULAW_SILENCE]) {
            let diff =
                (i32::from(ulaw_to_linear(*back)) - i32::from(ulaw_to_linear(original))).abs();
            assert!(diff <= 1024, "{original:#x} came back as {back:#x}");
        }
    }

    #[test]
    fn ulaw_roundtrip_is_within_quantisation_step() {
        for s in (-32768i32..=32767).step_by(7) {
            let s = s as i16;
            let back = ulaw_to_linear(linear_to_ulaw(s)) as i32;
            let err = (back - s as i32).abs();
            // The step grows with magnitude: 1/16 of the segment (at most ~1024 at the top).
            let bound = ((s as i32).abs() / 16).max(8) + 4;
            assert!(err <= bound, "sample {s} -> {back} (err {err} > {bound})");
        }
    }

    #[test]
    fn alaw_roundtrip_is_within_quantisation_step() {
        for s in (-32768i32..=32767).step_by(7) {
            let s = s as i16;
            let back = alaw_to_linear(linear_to_alaw(s)) as i32;
            let err = (back - s as i32).abs();
            let bound = ((s as i32).abs() / 16).max(16) + 4;
            assert!(err <= bound, "sample {s} -> {back} (err {err} > {bound})");
        }
    }

    #[test]
    fn silence_codes() {
        assert_eq!(linear_to_ulaw(0), ULAW_SILENCE);
        assert_eq!(linear_to_alaw(0), ALAW_SILENCE);
        assert_eq!(ULAW_DECODE[ULAW_SILENCE as usize], 0);
        assert_eq!(ulaw_to_alaw_table()[ULAW_SILENCE as usize], ALAW_SILENCE);
    }

    #[test]
    fn known_reference_values() {
        // Values from the ITU-T G.711 tables (and every common implementation).
        assert_eq!(linear_to_ulaw(-32768), 0x00);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(alaw_to_linear(0xAA), 32256);
    }

    #[test]
    fn decode_tables_match_functions() {
        for b in 0..=255u8 {
            assert_eq!(ULAW_DECODE[b as usize], ulaw_to_linear(b));
            assert_eq!(ALAW_DECODE[b as usize], alaw_to_linear(b));
        }
    }
}
