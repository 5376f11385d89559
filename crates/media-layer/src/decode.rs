//! The transcoder: any supported audio file → raw μ-law, 8 kHz, mono (what the media
//! workers play). Symphonia demuxes and decodes (WAV PCM/float/G.711/ADPCM, MP3, OGG
//! Vorbis, AAC in ADTS or MP4, FLAC), channels are averaged to mono, rubato's FFT
//! resampler converts to 8 kHz, and `media::g711` encodes μ-law. Headerless G.711 (by
//! hint) and `.au` files are read directly; a WAV that already is 8 kHz mono μ-law is
//! copied byte for byte. Synchronous and CPU-heavy: callers run it on a blocking thread.

use std::io::Cursor;

use media::g711::{linear_to_ulaw, ALAW_DECODE, ULAW_DECODE};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use crate::container::{self, AuEncoding, RawHint};
use crate::MediaError;

/// Sample rate of telephony audio.
pub const TELEPHONY_RATE: u32 = 8000;

/// Longest audio the transcoder accepts, in seconds (Twilio's own Play limit is on the
/// order of tens of minutes; this bounds memory: 20 min of 48 kHz f32 mono is 230 MB).
pub const MAX_AUDIO_SECONDS: u64 = 20 * 60;

/// Decoded audio: mono samples in [-1, 1] at `sample_rate`.
struct MonoPcm {
    samples: Vec<f32>,
    sample_rate: u32,
}

/// Transcodes an audio file to raw μ-law, 8 kHz, mono.
///
/// `content_type_or_ext_hint` is an HTTP Content-Type (`audio/mpeg`,
/// `audio/x-mulaw;rate=8000`) or a file extension (`mp3`, `ulaw`). Containers are
/// recognised by their bytes; the hint only matters for headerless G.711, which has no
/// magic to probe (`audio/x-mulaw`, `audio/PCMU`, `audio/basic` without a `.snd` header,
/// `ulaw`, `alaw`, …).
///
/// Errors: [`MediaError::UnsupportedAudio`] when no supported format is recognised,
/// [`MediaError::Undecodable`] when decoding yields no audio, [`MediaError::TooLong`]
/// beyond [`MAX_AUDIO_SECONDS`].
pub fn decode_to_ulaw(
    bytes: &[u8],
    content_type_or_ext_hint: Option<&str>,
) -> Result<Vec<u8>, MediaError> {
    if bytes.is_empty() {
        return Err(MediaError::UnsupportedAudio("empty body".into()));
    }
    if let Some(view) = container::parse_wav(bytes) {
        if view.format.is_telephony_ulaw() {
            check_length(view.data.len() as u64, TELEPHONY_RATE)?;
            return Ok(view.data.to_vec());
        }
    }
    if let Some(au) = container::parse_au(bytes) {
        let au = au.map_err(|encoding| {
            MediaError::UnsupportedAudio(format!(".au encoding {encoding} is not supported"))
        })?;
        return encode_mono(decode_au(&au)?);
    }
    if let Some(hint) = content_type_or_ext_hint {
        if let Some(raw) = container::raw_hint(hint) {
            return match raw {
                RawHint::Ulaw {
                    sample_rate: TELEPHONY_RATE,
                } => {
                    check_length(bytes.len() as u64, TELEPHONY_RATE)?;
                    Ok(bytes.to_vec())
                }
                RawHint::Ulaw { sample_rate } => {
                    encode_mono(g711_to_pcm(bytes, &ULAW_DECODE, sample_rate))
                }
                RawHint::Alaw { sample_rate } => {
                    encode_mono(g711_to_pcm(bytes, &ALAW_DECODE, sample_rate))
                }
            };
        }
    }
    let repaired = container::repair_streamed_wav(bytes);
    let pcm = decode_with_symphonia(
        repaired.as_deref().unwrap_or(bytes),
        content_type_or_ext_hint,
    )?;
    encode_mono(pcm)
}

fn check_length(samples: u64, sample_rate: u32) -> Result<(), MediaError> {
    let seconds = samples / u64::from(sample_rate.max(1));
    if seconds > MAX_AUDIO_SECONDS {
        return Err(MediaError::TooLong {
            seconds,
            limit: MAX_AUDIO_SECONDS,
        });
    }
    Ok(())
}

fn g711_to_pcm(bytes: &[u8], table: &[i16; 256], sample_rate: u32) -> MonoPcm {
    MonoPcm {
        samples: bytes
            .iter()
            .map(|&b| f32::from(table[usize::from(b)]) / 32768.0)
            .collect(),
        sample_rate,
    }
}

fn decode_au(au: &container::AuView<'_>) -> Result<MonoPcm, MediaError> {
    let channels = usize::try_from(au.channels).unwrap_or(0);
    if channels == 0 || au.sample_rate == 0 {
        return Err(MediaError::Undecodable(
            ".au header has zero channels or rate".into(),
        ));
    }
    let interleaved: Vec<f32> = match au.encoding {
        AuEncoding::Ulaw => au
            .data
            .iter()
            .map(|&b| f32::from(ULAW_DECODE[usize::from(b)]) / 32768.0)
            .collect(),
        AuEncoding::Alaw => au
            .data
            .iter()
            .map(|&b| f32::from(ALAW_DECODE[usize::from(b)]) / 32768.0)
            .collect(),
        AuEncoding::Linear8 => au
            .data
            .iter()
            .map(|&b| f32::from(b as i8) / 128.0)
            .collect(),
        AuEncoding::Linear16 => au
            .data
            .chunks_exact(2)
            .map(|pair| f32::from(i16::from_be_bytes([pair[0], pair[1]])) / 32768.0)
            .collect(),
    };
    let samples = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(MonoPcm {
        samples,
        sample_rate: au.sample_rate,
    })
}

fn symphonia_unsupported(err: SymphoniaError) -> MediaError {
    MediaError::UnsupportedAudio(format!("no supported audio format recognised ({err})"))
}

/// Demuxes and decodes with symphonia, averaging channels into one mono stream.
fn decode_with_symphonia(bytes: &[u8], hint_text: Option<&str>) -> Result<MonoPcm, MediaError> {
    let mut hint = Hint::new();
    if let Some(text) = hint_text {
        if text.contains('/') {
            hint.mime_type(text);
        } else {
            hint.with_extension(text.trim_start_matches('.'));
        }
    }
    let source = MediaSourceStream::new(
        Box::new(Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    let mut reader = symphonia::default::get_probe()
        .probe(
            &hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(symphonia_unsupported)?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| MediaError::UnsupportedAudio("no audio track".into()))?;
    let track_id = track.id;
    let params = match &track.codec_params {
        Some(CodecParameters::Audio(params)) => params.clone(),
        _ => {
            return Err(MediaError::UnsupportedAudio(
                "audio track has no codec parameters".into(),
            ))
        }
    };
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| {
            MediaError::UnsupportedAudio(format!("no decoder for codec {}: {e}", params.codec))
        })?;

    let mut samples: Vec<f32> = Vec::new();
    let mut sample_rate: Option<u32> = params.sample_rate;
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut decoded_any = false;
    let mut last_error: Option<String> = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A truncated file ends where its bytes end.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(e) => {
                if decoded_any {
                    tracing::debug!(error = %e, "demuxing stopped early; keeping what decoded");
                    break;
                }
                return Err(MediaError::Undecodable(e.to_string()));
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(SymphoniaError::DecodeError(msg)) => {
                // Corrupt frames are skipped, as players do.
                last_error = Some(msg.to_string());
                continue;
            }
            Err(e) => return Err(MediaError::Undecodable(e.to_string())),
        };
        let rate = buffer.spec().rate();
        match sample_rate {
            Some(known) if known != rate && decoded_any => {
                return Err(MediaError::Undecodable(format!(
                    "sample rate changes mid-stream ({known} → {rate} Hz)"
                )))
            }
            _ => sample_rate = Some(rate),
        }
        buffer.copy_to_vecs_planar::<f32>(&mut planes);
        let channels = planes.len();
        if channels == 0 {
            continue;
        }
        let frames = planes.first().map_or(0, Vec::len);
        samples.reserve(frames);
        for frame in 0..frames {
            let sum: f32 = planes
                .iter()
                .map(|plane| plane.get(frame).copied().unwrap_or(0.0))
                .sum();
            samples.push(sum / channels as f32);
        }
        decoded_any |= frames > 0;
        check_length(samples.len() as u64, rate)?;
    }
    let sample_rate = sample_rate.filter(|&r| r > 0);
    match (decoded_any, sample_rate) {
        (true, Some(sample_rate)) => Ok(MonoPcm {
            samples,
            sample_rate,
        }),
        _ => Err(MediaError::Undecodable(last_error.map_or_else(
            || "no audio samples decoded".to_string(),
            |e| format!("no audio decoded: {e}"),
        ))),
    }
}

/// Resamples to 8 kHz when needed and encodes μ-law.
fn encode_mono(pcm: MonoPcm) -> Result<Vec<u8>, MediaError> {
    check_length(pcm.samples.len() as u64, pcm.sample_rate)?;
    if pcm.samples.is_empty() {
        return Err(MediaError::Undecodable("no audio samples decoded".into()));
    }
    let samples = if pcm.sample_rate == TELEPHONY_RATE {
        pcm.samples
    } else {
        resample(&pcm.samples, pcm.sample_rate, TELEPHONY_RATE)?
    };
    Ok(samples
        .iter()
        .map(|&s| linear_to_ulaw(f32_to_i16(s)))
        .collect())
}

fn f32_to_i16(sample: f32) -> i16 {
    // `as` saturates and maps NaN to 0.
    (sample * 32767.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Converts a whole mono clip between fixed rates with rubato's FFT resampler (which
/// low-pass filters, so downsampling does not alias).
fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, MediaError> {
    let internal = |what: &str, e: &dyn std::fmt::Display| {
        MediaError::Internal(format!("resampler {what}: {e}"))
    };
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Both)
        .map_err(|e| internal("construction", &e))?;
    let input =
        InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| internal("input", &e))?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| internal("processing", &e))?;
    Ok(output.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resample_halves_the_length_and_keeps_a_tone() {
        let tone: Vec<f32> = (0..16000)
            .map(|n| (2.0 * std::f32::consts::PI * 440.0 * n as f32 / 16000.0).sin() * 0.5)
            .collect();
        let out = resample(&tone, 16000, 8000).unwrap();
        assert!((out.len() as i64 - 8000).abs() <= 1, "len {}", out.len());
        let rms = (out.iter().map(|s| s * s).sum::<f32>() / out.len() as f32).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.05, "rms {rms}");
    }

    #[test]
    fn raw_ulaw_hint_is_copied() {
        let bytes = [0xFFu8, 0x7F, 0x00, 0x80];
        assert_eq!(
            decode_to_ulaw(&bytes, Some("audio/x-mulaw;rate=8000")).unwrap(),
            bytes
        );
    }

    #[test]
    fn raw_alaw_hint_is_transcoded() {
        // A-law silence (0xD5) decodes to a tiny value that encodes as μ-law ~silence.
        let out = decode_to_ulaw(&[0xD5; 80], Some("alaw")).unwrap();
        assert_eq!(out.len(), 80);
        assert!(
            out.iter().all(|&b| b == 0xFF || b == 0x7F || b == 0xFE),
            "{out:?}"
        );
    }

    #[test]
    fn empty_and_text_bodies_are_unsupported() {
        assert!(matches!(
            decode_to_ulaw(&[], None),
            Err(MediaError::UnsupportedAudio(_))
        ));
        let text = b"<html><body>Not Found</body></html>".repeat(20);
        let err = decode_to_ulaw(&text, Some("text/html")).unwrap_err();
        assert_eq!(err.twilio_code(), 12300, "{err}");
    }

    #[test]
    fn f32_conversion_saturates() {
        assert_eq!(f32_to_i16(2.0), 32767);
        assert_eq!(f32_to_i16(-2.0), -32768);
        assert_eq!(f32_to_i16(f32::NAN), 0);
    }
}
