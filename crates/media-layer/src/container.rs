//! Pure header parsing for the simple containers the transcoder handles itself:
//! RIFF/WAVE (to find the already-telephony-ready μ-law fast path, and to repair headers
//! of streamed WAVs whose sizes were never filled in) and Sun/NeXT `.au` (`audio/basic`),
//! which symphonia does not read. No I/O: bytes in, views out.

/// WAVE format tag for G.711 μ-law.
const WAVE_FORMAT_MULAW: u16 = 0x0007;
/// WAVE format tag announcing a WAVEFORMATEXTENSIBLE header (real tag in the sub-format GUID).
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// The `fmt ` chunk fields the transcoder cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WavFormat {
    /// Effective format tag (the sub-format's for WAVEFORMATEXTENSIBLE).
    pub format_tag: u16,
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
}

impl WavFormat {
    /// Whether the samples already are what the media workers play: μ-law, 8 kHz, mono.
    pub fn is_telephony_ulaw(&self) -> bool {
        self.format_tag == WAVE_FORMAT_MULAW
            && self.channels == 1
            && self.sample_rate == 8000
            && self.bits_per_sample == 8
    }
}

/// A parsed WAV file: its format and its sample bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WavView<'a> {
    pub format: WavFormat,
    /// Byte offset of the `data` chunk's payload in the file.
    pub data_offset: usize,
    /// The `data` payload, clamped to the bytes actually present.
    pub data: &'a [u8],
    /// Whether the header's `data` size claimed more bytes than the file holds (a WAV
    /// written to a pipe, like `espeak-ng --stdout`, which cannot seek back to fix it).
    pub data_size_overstated: bool,
}

fn u16_le(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_le(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u32_be(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn parse_fmt_chunk(body: &[u8]) -> Option<WavFormat> {
    let mut format_tag = u16_le(body, 0)?;
    let channels = u16_le(body, 2)?;
    let sample_rate = u32_le(body, 4)?;
    let bits_per_sample = u16_le(body, 14)?;
    if format_tag == WAVE_FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) then the sub-format GUID whose first two
        // bytes are the real format tag.
        format_tag = u16_le(body, 24)?;
    }
    Some(WavFormat {
        format_tag,
        channels,
        sample_rate,
        bits_per_sample,
    })
}

/// Parses a RIFF/WAVE file far enough to find its format and sample data. Returns `None`
/// for anything that is not a WAV with both a `fmt ` and a `data` chunk.
pub(crate) fn parse_wav(bytes: &[u8]) -> Option<WavView<'_>> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut format = None;
    let mut offset = 12usize;
    while let (Some(id), Some(size)) = (bytes.get(offset..offset + 4), u32_le(bytes, offset + 4)) {
        let body_start = offset + 8;
        let claimed = usize::try_from(size).ok()?;
        let available = bytes.len().saturating_sub(body_start);
        if id == b"data" {
            let format = format?;
            let len = claimed.min(available);
            return Some(WavView {
                format,
                data_offset: body_start,
                data: bytes.get(body_start..body_start + len)?,
                data_size_overstated: claimed > available,
            });
        }
        if claimed > available {
            return None;
        }
        if id == b"fmt " {
            format = Some(parse_fmt_chunk(
                bytes.get(body_start..body_start + claimed)?,
            )?);
        }
        // Chunks are padded to an even size.
        offset = body_start.checked_add(claimed)?.checked_add(claimed & 1)?;
    }
    None
}

/// Returns a copy of a WAV whose RIFF and `data` sizes overstate its length, with both
/// sizes rewritten to the bytes actually present, so a strict demuxer reads it to the end.
/// `None` when the header needs no repair or the bytes are not such a WAV.
pub(crate) fn repair_streamed_wav(bytes: &[u8]) -> Option<Vec<u8>> {
    let view = parse_wav(bytes)?;
    if !view.data_size_overstated {
        return None;
    }
    let data_len = u32::try_from(view.data.len()).ok()?;
    let riff_len = u32::try_from(view.data_offset + view.data.len() - 8).ok()?;
    let mut fixed = bytes.to_vec();
    fixed
        .get_mut(4..8)?
        .copy_from_slice(&riff_len.to_le_bytes());
    fixed
        .get_mut(view.data_offset - 4..view.data_offset)?
        .copy_from_slice(&data_len.to_le_bytes());
    Some(fixed)
}

/// Sample encodings of Sun/NeXT `.au` files that the transcoder decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuEncoding {
    /// 8-bit G.711 μ-law (encoding 1).
    Ulaw,
    /// 8-bit signed linear PCM (encoding 2).
    Linear8,
    /// 16-bit big-endian signed linear PCM (encoding 3).
    Linear16,
    /// 8-bit G.711 A-law (encoding 27).
    Alaw,
}

/// A parsed `.au` file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuView<'a> {
    pub encoding: AuEncoding,
    pub sample_rate: u32,
    pub channels: u32,
    pub data: &'a [u8],
}

/// Parses a Sun/NeXT `.au` header (big-endian, magic `.snd`). `None` if the bytes are not
/// one; `Some(Err(encoding))` for an `.au` in an encoding the transcoder does not decode.
pub(crate) fn parse_au(bytes: &[u8]) -> Option<Result<AuView<'_>, u32>> {
    if bytes.get(0..4)? != b".snd" {
        return None;
    }
    let data_offset = usize::try_from(u32_be(bytes, 4)?).ok()?;
    let data_size = u32_be(bytes, 8)?;
    let encoding_code = u32_be(bytes, 12)?;
    let sample_rate = u32_be(bytes, 16)?;
    let channels = u32_be(bytes, 20)?;
    if data_offset < 24 {
        return None;
    }
    let rest = bytes.get(data_offset..)?;
    // 0xFFFFFFFF means "unknown size": read to the end.
    let data = match usize::try_from(data_size) {
        Ok(size) if data_size != u32::MAX => rest.get(..size.min(rest.len()))?,
        _ => rest,
    };
    let encoding = match encoding_code {
        1 => AuEncoding::Ulaw,
        2 => AuEncoding::Linear8,
        3 => AuEncoding::Linear16,
        27 => AuEncoding::Alaw,
        other => return Some(Err(other)),
    };
    Some(Ok(AuView {
        encoding,
        sample_rate,
        channels,
        data,
    }))
}

/// What a Content-Type or file-extension hint says about headerless audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawHint {
    /// Headerless G.711 μ-law at the given rate (8000 unless a `rate=` parameter says so).
    Ulaw { sample_rate: u32 },
    /// Headerless G.711 A-law at the given rate.
    Alaw { sample_rate: u32 },
}

/// Interprets a Content-Type (`audio/x-mulaw;rate=8000`, `audio/PCMU`, `audio/basic`, …)
/// or a bare extension (`ulaw`, `ul`, `alaw`, `al`) as headerless G.711.
pub(crate) fn raw_hint(hint: &str) -> Option<RawHint> {
    let lower = hint.trim().to_ascii_lowercase();
    let mut parts = lower.split(';');
    let essence = parts.next().unwrap_or("").trim();
    let essence = essence.trim_start_matches('.');
    let mut sample_rate = 8000u32;
    for param in parts {
        if let Some((name, value)) = param.split_once('=') {
            if name.trim() == "rate" {
                sample_rate = value.trim().trim_matches('"').parse().ok()?;
            }
        }
    }
    if sample_rate == 0 {
        return None;
    }
    match essence {
        "audio/x-mulaw" | "audio/mulaw" | "audio/pcmu" | "audio/basic" | "audio/ulaw"
        | "audio/x-ulaw" | "ulaw" | "ul" | "mulaw" | "pcmu" => Some(RawHint::Ulaw { sample_rate }),
        "audio/x-alaw" | "audio/alaw" | "audio/pcma" | "alaw" | "al" | "pcma" => {
            Some(RawHint::Alaw { sample_rate })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAVE_FORMAT_PCM: u16 = 0x0001;

    fn wav(
        format_tag: u16,
        channels: u16,
        rate: u32,
        bits: u16,
        data: &[u8],
        data_size: u32,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&format_tag.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        let block = channels * bits / 8;
        out.extend_from_slice(&(rate * block as u32).to_le_bytes());
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_size.to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn finds_telephony_ulaw_wav() {
        let bytes = wav(WAVE_FORMAT_MULAW, 1, 8000, 8, &[1, 2, 3], 3);
        let view = parse_wav(&bytes).unwrap();
        assert!(view.format.is_telephony_ulaw());
        assert_eq!(view.data, &[1, 2, 3]);
        assert!(!view.data_size_overstated);
        assert!(repair_streamed_wav(&bytes).is_none());
    }

    #[test]
    fn pcm_wav_is_not_the_fast_path() {
        let bytes = wav(WAVE_FORMAT_PCM, 1, 8000, 16, &[0, 0], 2);
        assert!(!parse_wav(&bytes).unwrap().format.is_telephony_ulaw());
    }

    #[test]
    fn streamed_wav_sizes_are_repaired() {
        let bytes = wav(WAVE_FORMAT_PCM, 1, 22050, 16, &[1, 0, 2, 0], 0x7fff_f000);
        let view = parse_wav(&bytes).unwrap();
        assert!(view.data_size_overstated);
        assert_eq!(view.data.len(), 4);
        let fixed = repair_streamed_wav(&bytes).unwrap();
        assert_eq!(u32_le(&fixed, 40), Some(4));
        assert_eq!(u32_le(&fixed, 4), Some(fixed.len() as u32 - 8));
        assert!(!parse_wav(&fixed).unwrap().data_size_overstated);
    }

    #[test]
    fn truncated_and_foreign_bytes_are_not_wav() {
        let bytes = wav(WAVE_FORMAT_PCM, 1, 8000, 16, &[0, 0], 2);
        for cut in 0..44 {
            assert!(parse_wav(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        assert!(parse_wav(b"ID3\x04garbage").is_none());
    }

    #[test]
    fn parses_au_header() {
        let mut au = Vec::new();
        au.extend_from_slice(b".snd");
        au.extend_from_slice(&24u32.to_be_bytes());
        au.extend_from_slice(&u32::MAX.to_be_bytes());
        au.extend_from_slice(&1u32.to_be_bytes());
        au.extend_from_slice(&8000u32.to_be_bytes());
        au.extend_from_slice(&1u32.to_be_bytes());
        au.extend_from_slice(&[0xFF, 0x7F]);
        let view = parse_au(&au).unwrap().unwrap();
        assert_eq!(view.encoding, AuEncoding::Ulaw);
        assert_eq!(view.sample_rate, 8000);
        assert_eq!(view.data, &[0xFF, 0x7F]);
        au[15] = 23; // G.721 ADPCM: recognised as .au, not decodable.
        assert_eq!(parse_au(&au).unwrap().unwrap_err(), 23);
    }

    #[test]
    fn raw_hints() {
        assert_eq!(
            raw_hint("audio/x-mulaw;rate=8000"),
            Some(RawHint::Ulaw { sample_rate: 8000 })
        );
        assert_eq!(
            raw_hint("audio/PCMU"),
            Some(RawHint::Ulaw { sample_rate: 8000 })
        );
        assert_eq!(raw_hint("ulaw"), Some(RawHint::Ulaw { sample_rate: 8000 }));
        assert_eq!(
            raw_hint("audio/x-alaw; rate=16000"),
            Some(RawHint::Alaw { sample_rate: 16000 })
        );
        assert_eq!(raw_hint("audio/mpeg"), None);
        assert_eq!(raw_hint("audio/x-mulaw;rate=0"), None);
    }
}
