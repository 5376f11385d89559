//! The probe every generated packet carries in its G.711 payload: stream id, sequence
//! number and send time, written so that it survives both relaying (bytes unchanged) and
//! μ-law ↔ A-law transcoding by any engine (bytes change).
//!
//! Engines re-stamp the RTP header (SSRC, sequence, timestamp) and transcoding rewrites every
//! payload byte, so the probe is carried as audio: each 4-bit nibble becomes one sample with
//! one of 16 well-separated amplitudes, encoded in the leg's codec. A transcoder maps a
//! sample to the nearest code of the other law; the reader decodes each byte to linear and
//! takes the nearest of the 16 amplitudes, which tolerates the quantization of both laws (the
//! amplitudes are at least 800 apart; G.711 steps are at most 1024 and only above 16,000,
//! where the amplitudes are 6,000+ apart). A positional checksum rejects anything else.
//!
//! Layout, one nibble per payload byte from the start of the payload (38 bytes):
//! magic (4) · stream (8) · sequence (8) · send time ns (16) · checksum (2). The rest of
//! the payload is silence.

use media::g711::{
    linear_to_alaw, linear_to_ulaw, ALAW_DECODE, ALAW_SILENCE, ULAW_DECODE, ULAW_SILENCE,
};
use shmq::Codec;

/// Payload bytes the probe occupies.
pub const PROBE_LEN: usize = 38;

const MAGIC: u16 = 0xB3E7;

/// The 16 amplitudes a nibble maps to, by nibble value.
const SYMBOLS: [i16; 16] = [
    -26_000, -16_000, -10_000, -6_400, -4_000, -2_400, -1_200, -400, 400, 1_200, 2_400, 4_000,
    6_400, 10_000, 16_000, 26_000,
];

/// What one packet says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub stream: u32,
    pub sequence: u32,
    /// CLOCK_REALTIME nanoseconds when the generator handed the packet to the kernel.
    pub sent_ns: u64,
}

/// Why a payload holds no readable probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("payload of {0} bytes is shorter than a probe")]
    TooShort(usize),
    #[error("no probe magic")]
    NoMagic,
    #[error("probe checksum mismatch")]
    Checksum,
}

/// The payload byte that carries `nibble` in `codec`.
fn encode_nibble(nibble: u8, codec: Codec) -> u8 {
    let amplitude = SYMBOLS[usize::from(nibble & 0x0f)];
    match codec {
        Codec::Pcmu => linear_to_ulaw(amplitude),
        Codec::Pcma => linear_to_alaw(amplitude),
    }
}

/// The nibble whose amplitude is nearest to the byte's decoded sample.
fn decode_nibble(byte: u8, codec: Codec) -> u8 {
    let sample = i32::from(match codec {
        Codec::Pcmu => ULAW_DECODE[usize::from(byte)],
        Codec::Pcma => ALAW_DECODE[usize::from(byte)],
    });
    let mut best = 0u8;
    let mut best_distance = i32::MAX;
    for (nibble, amplitude) in (0u8..).zip(SYMBOLS) {
        let distance = (sample - i32::from(amplitude)).abs();
        if distance < best_distance {
            best = nibble;
            best_distance = distance;
        }
    }
    best
}

/// The checksum over the 36 nibbles before it: each nibble weighted by its position.
fn checksum(nibbles: &[u8]) -> u8 {
    nibbles
        .iter()
        .zip(1u32..)
        .fold(0u32, |sum, (nibble, weight)| {
            sum.wrapping_add(u32::from(*nibble) * weight)
        }) as u8
}

/// The 38 nibbles of a probe, most significant first within each field.
fn nibbles(probe: &Probe) -> [u8; PROBE_LEN] {
    let mut out = [0u8; PROBE_LEN];
    let mut position = 0;
    let mut push = |value: u64, digits: u32| {
        for digit in (0..digits).rev() {
            if let Some(slot) = out.get_mut(position) {
                *slot = ((value >> (digit * 4)) & 0x0f) as u8;
            }
            position += 1;
        }
    };
    push(u64::from(MAGIC), 4);
    push(u64::from(probe.stream), 8);
    push(u64::from(probe.sequence), 8);
    push(probe.sent_ns, 16);
    let check = checksum(out.get(..PROBE_LEN - 2).unwrap_or_default());
    let [.., high, low] = &mut out;
    *high = check >> 4;
    *low = check & 0x0f;
    out
}

/// Writes `probe` at the start of `payload` in `codec`; false (nothing written) if the
/// payload is shorter than [`PROBE_LEN`].
pub fn write_probe(probe: &Probe, codec: Codec, payload: &mut [u8]) -> bool {
    let Some(head) = payload.get_mut(..PROBE_LEN) else {
        return false;
    };
    for (byte, nibble) in head.iter_mut().zip(nibbles(probe)) {
        *byte = encode_nibble(nibble, codec);
    }
    true
}

/// Fills `payload` with digital silence in `codec`.
pub fn fill_silence(codec: Codec, payload: &mut [u8]) {
    payload.fill(match codec {
        Codec::Pcmu => ULAW_SILENCE,
        Codec::Pcma => ALAW_SILENCE,
    });
}

/// Reads the probe at the start of a payload received in `codec`.
pub fn read_probe(payload: &[u8], codec: Codec) -> Result<Probe, ProbeError> {
    let head = payload
        .get(..PROBE_LEN)
        .ok_or(ProbeError::TooShort(payload.len()))?;
    let mut digits = [0u8; PROBE_LEN];
    for (digit, byte) in digits.iter_mut().zip(head) {
        *digit = decode_nibble(*byte, codec);
    }
    let field = |range: std::ops::Range<usize>| -> u64 {
        digits
            .get(range)
            .unwrap_or_default()
            .iter()
            .fold(0u64, |value, digit| (value << 4) | u64::from(*digit))
    };
    if field(0..4) != u64::from(MAGIC) {
        return Err(ProbeError::NoMagic);
    }
    let check = checksum(digits.get(..PROBE_LEN - 2).unwrap_or_default());
    if field(PROBE_LEN - 2..PROBE_LEN) != u64::from(check) {
        return Err(ProbeError::Checksum);
    }
    Ok(Probe {
        stream: field(4..12) as u32,
        sequence: field(12..20) as u32,
        sent_ns: field(20..36),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::g711::ulaw_to_alaw_table;

    const PROBE: Probe = Probe {
        stream: 0xDEAD_BEEF,
        sequence: 0x0123_4567,
        sent_ns: 0xFEDC_BA98_7654_3210,
    };

    fn payload(codec: Codec) -> Vec<u8> {
        let mut payload = vec![0u8; 160];
        fill_silence(codec, &mut payload);
        assert!(write_probe(&PROBE, codec, &mut payload));
        payload
    }

    #[test]
    fn round_trips_in_both_laws() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let payload = payload(codec);
            assert_eq!(read_probe(&payload, codec), Ok(PROBE));
            let silence = match codec {
                Codec::Pcmu => ULAW_SILENCE,
                Codec::Pcma => ALAW_SILENCE,
            };
            assert!(payload[PROBE_LEN..].iter().all(|b| *b == silence));
        }
    }

    #[test]
    fn survives_transcoding_both_ways() {
        // μ-law → A-law with the engine's table.
        let ulaw = payload(Codec::Pcmu);
        let table = ulaw_to_alaw_table();
        let alaw: Vec<u8> = ulaw.iter().map(|b| table[usize::from(*b)]).collect();
        assert_ne!(alaw[..PROBE_LEN], ulaw[..PROBE_LEN], "bytes really change");
        assert_eq!(read_probe(&alaw, Codec::Pcma), Ok(PROBE));
        // A-law → μ-law through linear, as a generic transcoder does.
        let alaw = payload(Codec::Pcma);
        let ulaw: Vec<u8> = alaw
            .iter()
            .map(|b| linear_to_ulaw(ALAW_DECODE[usize::from(*b)]))
            .collect();
        assert_eq!(read_probe(&ulaw, Codec::Pcmu), Ok(PROBE));
    }

    #[test]
    fn survives_a_sloppy_transcoder() {
        // A transcoder that is off by up to 3 % of the amplitude (plus a constant) still
        // decodes: the symbols are far apart compared with G.711 quantization.
        let ulaw = payload(Codec::Pcmu);
        for skew in [-0.03f64, 0.03] {
            let alaw: Vec<u8> = ulaw
                .iter()
                .map(|b| {
                    let sample = f64::from(ULAW_DECODE[usize::from(*b)]);
                    let skewed = (sample * (1.0 + skew) + 40.0).clamp(-32768.0, 32767.0);
                    linear_to_alaw(skewed as i16)
                })
                .collect();
            assert_eq!(read_probe(&alaw, Codec::Pcma), Ok(PROBE), "skew {skew}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_probe() {
        assert_eq!(
            read_probe(&[0xFF; 20], Codec::Pcmu),
            Err(ProbeError::TooShort(20))
        );
        assert_eq!(
            read_probe(&[0xFF; 160], Codec::Pcmu),
            Err(ProbeError::NoMagic)
        );
        let mut corrupted = payload(Codec::Pcmu);
        corrupted[10] = encode_nibble(decode_nibble(corrupted[10], Codec::Pcmu) ^ 1, Codec::Pcmu);
        assert_eq!(
            read_probe(&corrupted, Codec::Pcmu),
            Err(ProbeError::Checksum)
        );
        // Read in the wrong law: the magic does not survive.
        assert!(read_probe(&payload(Codec::Pcmu), Codec::Pcma).is_err());
        // Shifted by one byte (a repacketizing engine): rejected, not misread.
        let shifted = payload(Codec::Pcmu);
        assert!(read_probe(&shifted[1..], Codec::Pcmu).is_err());
        let mut short = [0u8; 10];
        assert!(!write_probe(&PROBE, Codec::Pcmu, &mut short));
    }

    #[test]
    fn every_nibble_decodes_to_itself() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for nibble in 0..16u8 {
                assert_eq!(decode_nibble(encode_nibble(nibble, codec), codec), nibble);
            }
        }
    }
}
