//! RFC 3264 offer/answer for our one media type: G.711 audio (PCMU/PCMA) with
//! optional RFC 4733 telephone-events, and rendering of the answer text.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use crate::session::{Direction, MediaDescription, SessionDescription};

/// The audio codecs the media plane implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl AudioCodec {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
        }
    }

    /// The rtpmap encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
        }
    }

    /// Both G.711 codecs sample at 8 kHz.
    pub fn clock_rate(self) -> u32 {
        8000
    }

    fn from_encoding(name: &str) -> Option<AudioCodec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(AudioCodec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(AudioCodec::Pcma)
        } else {
            None
        }
    }

    fn from_static_payload_type(pt: u8) -> Option<AudioCodec> {
        match pt {
            0 => Some(AudioCodec::Pcmu),
            8 => Some(AudioCodec::Pcma),
            _ => None,
        }
    }
}

/// The outcome of negotiating an offer: what the media session should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: AudioCodec,
    /// The payload type the offerer used for `codec` (normally 0 or 8).
    pub payload_type: u8,
    /// Where to send RTP.
    pub remote_rtp: SocketAddr,
    pub telephone_event_pt: Option<u8>,
    /// Packetisation time: 10..=60 in steps of 10.
    pub ptime_ms: u16,
}

/// Why an offer cannot be answered with audio.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NegotiationError {
    #[error("the offer has no audio stream")]
    NoAudio,
    #[error("every audio stream in the offer is disabled (port 0)")]
    AudioDisabled,
    #[error("the offer has no codec we support")]
    NoCommonCodec,
    #[error("the offer has no connection address for its audio stream")]
    NoConnectionAddress,
}

const DEFAULT_PTIME_MS: u16 = 20;
const TELEPHONE_EVENT: &str = "telephone-event";
const TELEPHONE_EVENT_CLOCK: u32 = 8000;
/// RTP carries the payload type in 7 bits (RFC 3550 §5.1): a format number
/// above this cannot be sent or recognised, so it is never negotiated.
const MAX_RTP_PAYLOAD_TYPE: u8 = 127;

/// Picks the first offered codec we support (static PT 0/8, or an rtpmap
/// PCMU/8000 or PCMA/8000), the offered telephone-event/8000 payload type,
/// the ptime and the remote RTP address, from the first enabled RTP audio
/// stream that has a common codec.
pub fn negotiate(
    offer: &SessionDescription,
    supported: &[AudioCodec],
) -> Result<Negotiated, NegotiationError> {
    select_stream(offer, supported).map(|(_, negotiated)| negotiated)
}

/// Negotiates and renders an answer that keeps RFC 3264's one-answer-line-
/// per-offer-line rule: the chosen audio stream is accepted with the offered
/// direction mirrored, every other stream is rejected with port 0.
pub fn answer_offer(
    offer: &SessionDescription,
    supported: &[AudioCodec],
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
) -> Result<(Negotiated, String), NegotiationError> {
    let (chosen_index, negotiated) = select_stream(offer, supported)?;
    let mut text = session_header(local_ip, session_id);
    for (index, media) in offer.media.iter().enumerate() {
        if index == chosen_index {
            let direction = media
                .direction
                .or(offer.direction)
                .unwrap_or(Direction::SendRecv)
                .answer_to();
            write_audio_section(&mut text, &negotiated, local_port, direction);
        } else {
            let formats: Vec<String> = media.formats.iter().map(u8::to_string).collect();
            let formats = if formats.is_empty() {
                "0".to_owned()
            } else {
                formats.join(" ")
            };
            let _ = write!(text, "m={} 0 {} {}\r\n", media.kind, media.proto, formats);
        }
    }
    Ok((negotiated, text))
}

/// Renders our answer for a single-stream offer: PCMU or PCMA, the
/// telephone-event payload type when negotiated, ptime and `a=sendrecv`.
pub fn answer(neg: &Negotiated, local_ip: IpAddr, local_port: u16, session_id: u64) -> String {
    let mut text = session_header(local_ip, session_id);
    write_audio_section(&mut text, neg, local_port, Direction::SendRecv);
    text
}

/// Renders our offer for an outbound call: `codecs` in preference order, RFC 4733
/// telephone-event as `te_pt`, ptime and `a=sendrecv`. The far end's answer goes through
/// [`negotiate`] like an offer does (it names the codec it chose first).
pub fn offer(
    codecs: &[AudioCodec],
    te_pt: u8,
    ptime_ms: u16,
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
) -> String {
    let mut text = session_header(local_ip, session_id);
    let pts: Vec<String> = codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .chain(std::iter::once(te_pt.to_string()))
        .collect();
    let _ = write!(text, "m=audio {local_port} RTP/AVP {}\r\n", pts.join(" "));
    for codec in codecs {
        let _ = write!(
            text,
            "a=rtpmap:{} {}/{}\r\n",
            codec.payload_type(),
            codec.encoding_name(),
            codec.clock_rate()
        );
    }
    let _ = write!(
        text,
        "a=rtpmap:{te_pt} {TELEPHONE_EVENT}/{TELEPHONE_EVENT_CLOCK}\r\na=fmtp:{te_pt} 0-16\r\n\
         a=ptime:{ptime_ms}\r\na=sendrecv\r\n"
    );
    text
}

fn session_header(local_ip: IpAddr, session_id: u64) -> String {
    let address_type = if local_ip.is_ipv6() { "IP6" } else { "IP4" };
    format!(
        "v=0\r\no=switchboard {session_id} {session_id} IN {address_type} {local_ip}\r\n\
         s=switchboard\r\nc=IN {address_type} {local_ip}\r\nt=0 0\r\n"
    )
}

fn write_audio_section(text: &mut String, neg: &Negotiated, local_port: u16, direction: Direction) {
    let pt = neg.payload_type;
    let _ = write!(text, "m=audio {local_port} RTP/AVP {pt}");
    if let Some(te) = neg.telephone_event_pt {
        let _ = write!(text, " {te}");
    }
    let _ = write!(
        text,
        "\r\na=rtpmap:{pt} {}/{}\r\n",
        neg.codec.encoding_name(),
        neg.codec.clock_rate()
    );
    if let Some(te) = neg.telephone_event_pt {
        let _ = write!(
            text,
            "a=rtpmap:{te} {TELEPHONE_EVENT}/{TELEPHONE_EVENT_CLOCK}\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    let _ = write!(
        text,
        "a=ptime:{}\r\na={}\r\n",
        neg.ptime_ms,
        direction.as_str()
    );
}

fn is_rtp_audio(media: &MediaDescription) -> bool {
    media.kind.eq_ignore_ascii_case("audio")
        && (media.proto.eq_ignore_ascii_case("RTP/AVP")
            || media.proto.eq_ignore_ascii_case("RTP/AVPF"))
}

fn select_stream(
    offer: &SessionDescription,
    supported: &[AudioCodec],
) -> Result<(usize, Negotiated), NegotiationError> {
    let mut saw_audio = false;
    let mut saw_enabled_audio = false;
    let mut missing_connection = false;
    for (index, media) in offer.media.iter().enumerate() {
        if !media.kind.eq_ignore_ascii_case("audio") {
            continue;
        }
        saw_audio = true;
        if media.port == 0 {
            continue;
        }
        saw_enabled_audio = true;
        if !is_rtp_audio(media) {
            continue;
        }
        let Some((codec, payload_type)) = first_supported_codec(media, supported) else {
            continue;
        };
        let Some(address) = media.connection.or(offer.connection) else {
            missing_connection = true;
            continue;
        };
        let negotiated = Negotiated {
            codec,
            payload_type,
            remote_rtp: SocketAddr::new(address, media.port),
            telephone_event_pt: telephone_event_pt(media),
            ptime_ms: normalise_ptime(media.ptime.or(offer.ptime)),
        };
        return Ok((index, negotiated));
    }
    Err(if !saw_audio {
        NegotiationError::NoAudio
    } else if !saw_enabled_audio {
        NegotiationError::AudioDisabled
    } else if missing_connection {
        NegotiationError::NoConnectionAddress
    } else {
        NegotiationError::NoCommonCodec
    })
}

fn first_supported_codec(
    media: &MediaDescription,
    supported: &[AudioCodec],
) -> Option<(AudioCodec, u8)> {
    media.formats.iter().find_map(|&pt| {
        if pt > MAX_RTP_PAYLOAD_TYPE {
            return None;
        }
        let codec = match media.rtpmap(pt) {
            Some(map) if map.clock_rate == 8000 && map.channels.unwrap_or(1) == 1 => {
                AudioCodec::from_encoding(&map.encoding)?
            }
            Some(_) => return None,
            None => AudioCodec::from_static_payload_type(pt)?,
        };
        supported.contains(&codec).then_some((codec, pt))
    })
}

fn telephone_event_pt(media: &MediaDescription) -> Option<u8> {
    media.formats.iter().copied().find(|&pt| {
        pt <= MAX_RTP_PAYLOAD_TYPE
            && media.rtpmap(pt).is_some_and(|map| {
                map.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT)
                    && map.clock_rate == TELEPHONE_EVENT_CLOCK
            })
    })
}

/// Default 20 ms; otherwise clamped to 10..=60 and rounded to a multiple of 10.
fn normalise_ptime(offered: Option<u16>) -> u16 {
    let Some(ptime) = offered else {
        return DEFAULT_PTIME_MS;
    };
    let clamped = ptime.clamp(10, 60);
    clamped.saturating_add(5) / 10 * 10
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::parse;

    const BOTH: &[AudioCodec] = &[AudioCodec::Pcmu, AudioCodec::Pcma];

    fn sipp_offer() -> SessionDescription {
        parse(
            "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
             c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n\
             a=rtpmap:0 PCMU/8000\r\n",
        )
        .unwrap()
    }

    #[test]
    fn sipp_default_offer_negotiates_pcmu() {
        let neg = negotiate(&sipp_offer(), BOTH).unwrap();
        assert_eq!(
            neg,
            Negotiated {
                codec: AudioCodec::Pcmu,
                payload_type: 0,
                remote_rtp: "127.0.0.1:6000".parse().unwrap(),
                telephone_event_pt: None,
                ptime_ms: 20,
            }
        );
    }

    #[test]
    fn pcma_first_with_telephone_event() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n\
             m=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n",
        )
        .unwrap();
        let neg = negotiate(&offer, BOTH).unwrap();
        assert_eq!(neg.codec, AudioCodec::Pcma);
        assert_eq!(neg.payload_type, 8);
        assert_eq!(neg.telephone_event_pt, Some(101));
        assert_eq!(neg.remote_rtp, "192.0.2.7:30000".parse().unwrap());

        // With only PCMU supported, the second offered codec wins.
        let neg = negotiate(&offer, &[AudioCodec::Pcmu]).unwrap();
        assert_eq!(neg.codec, AudioCodec::Pcmu);
        assert_eq!(neg.payload_type, 0);

        let text = answer(&neg, "10.1.2.3".parse().unwrap(), 40000, 77);
        assert_eq!(
            text,
            "v=0\r\no=switchboard 77 77 IN IP4 10.1.2.3\r\ns=switchboard\r\n\
             c=IN IP4 10.1.2.3\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\n\
             a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        // Our own answer parses and negotiates back to the same choice.
        let reparsed = parse(&text).unwrap();
        let back = negotiate(&reparsed, BOTH).unwrap();
        assert_eq!(back.codec, AudioCodec::Pcmu);
        assert_eq!(back.telephone_event_pt, Some(101));
        assert_eq!(back.remote_rtp, "10.1.2.3:40000".parse().unwrap());
    }

    #[test]
    fn only_g729_has_no_common_codec() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n\
             m=audio 30000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
        )
        .unwrap();
        assert_eq!(
            negotiate(&offer, BOTH),
            Err(NegotiationError::NoCommonCodec)
        );
    }

    #[test]
    fn dynamic_pcmu_and_wrong_clock_rate() {
        let offer = parse(
            "v=0\r\nc=IN IP4 192.0.2.7\r\nm=audio 30000 RTP/AVP 0 96\r\n\
             a=rtpmap:0 PCMU/16000\r\na=rtpmap:96 pcma/8000\r\n",
        )
        .unwrap();
        let neg = negotiate(&offer, BOTH).unwrap();
        assert_eq!(neg.codec, AudioCodec::Pcma);
        assert_eq!(neg.payload_type, 96);
    }

    #[test]
    fn ipv6_connection() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n\
             m=audio 7078 RTP/AVP 0\r\n",
        )
        .unwrap();
        let neg = negotiate(&offer, BOTH).unwrap();
        assert_eq!(neg.remote_rtp, "[2001:db8::1]:7078".parse().unwrap());
        let text = answer(&neg, "2001:db8::2".parse().unwrap(), 5004, 1);
        assert!(text.contains("c=IN IP6 2001:db8::2\r\n"), "{text}");
        assert!(
            text.contains("o=switchboard 1 1 IN IP6 2001:db8::2\r\n"),
            "{text}"
        );
    }

    #[test]
    fn media_level_connection_overrides_session_level() {
        let offer =
            parse("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\nc=IN IP4 192.0.2.2\r\n")
                .unwrap();
        assert_eq!(
            negotiate(&offer, BOTH).unwrap().remote_rtp,
            "192.0.2.2:1000".parse().unwrap()
        );
        let offer = parse("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\n").unwrap();
        assert_eq!(
            negotiate(&offer, BOTH).unwrap().remote_rtp,
            "192.0.2.1:1000".parse().unwrap()
        );
        let offer = parse("v=0\r\nm=audio 1000 RTP/AVP 0\r\n").unwrap();
        assert_eq!(
            negotiate(&offer, BOTH),
            Err(NegotiationError::NoConnectionAddress)
        );
    }

    #[test]
    fn no_audio_and_disabled_audio() {
        let offer = parse("v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 1000 RTP/AVP 96\r\n").unwrap();
        assert_eq!(negotiate(&offer, BOTH), Err(NegotiationError::NoAudio));
        let offer = parse("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 0 RTP/AVP 0\r\n").unwrap();
        assert_eq!(
            negotiate(&offer, BOTH),
            Err(NegotiationError::AudioDisabled)
        );
        let offer = parse("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 9 RTP/SAVP 0\r\n").unwrap();
        assert_eq!(
            negotiate(&offer, BOTH),
            Err(NegotiationError::NoCommonCodec)
        );
    }

    #[test]
    fn ptime_defaults_clamps_and_rounds() {
        let with_ptime = |ptime: &str| {
            let text = format!("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\n{ptime}");
            negotiate(&parse(&text).unwrap(), BOTH).unwrap().ptime_ms
        };
        assert_eq!(with_ptime(""), 20);
        assert_eq!(with_ptime("a=ptime:30\r\n"), 30);
        assert_eq!(with_ptime("a=ptime:5\r\n"), 10);
        assert_eq!(with_ptime("a=ptime:120\r\n"), 60);
        assert_eq!(with_ptime("a=ptime:24\r\n"), 20);
        assert_eq!(with_ptime("a=ptime:25\r\n"), 30);
    }

    #[test]
    fn answer_offer_rejects_other_streams_and_mirrors_direction() {
        let offer = parse(
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 2000 RTP/AVP 96\r\n\
             m=audio 1000 RTP/AVP 0\r\na=sendonly\r\n",
        )
        .unwrap();
        let (neg, text) =
            answer_offer(&offer, BOTH, "198.51.100.1".parse().unwrap(), 9000, 5).unwrap();
        assert_eq!(neg.remote_rtp, "192.0.2.1:1000".parse().unwrap());
        let answered = parse(&text).unwrap();
        assert_eq!(answered.media.len(), 2);
        assert_eq!(answered.media[0].kind, "video");
        assert_eq!(answered.media[0].port, 0);
        assert_eq!(answered.media[1].port, 9000);
        assert_eq!(answered.media[1].direction, Some(Direction::RecvOnly));
    }

    /// Found by the sdp_parse fuzz target: `m=audio 5000 RTP/AVP 200` with
    /// `a=rtpmap:200 PCMU/8000` negotiated payload type 200, which RTP's 7-bit
    /// field cannot carry (the media plane would send 72 and never match the
    /// peer's telephone-events).
    #[test]
    fn payload_types_above_127_are_never_negotiated() {
        let offer = parse(
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5000 RTP/AVP 200 201 0 101\r\n\
             a=rtpmap:200 PCMU/8000\r\na=rtpmap:201 telephone-event/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n",
        )
        .unwrap();
        let neg = negotiate(&offer, BOTH).unwrap();
        assert_eq!(neg.payload_type, 0);
        assert_eq!(neg.telephone_event_pt, Some(101));
        let only_high = parse(
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5000 RTP/AVP 200\r\n\
             a=rtpmap:200 PCMU/8000\r\n",
        )
        .unwrap();
        assert_eq!(
            negotiate(&only_high, BOTH),
            Err(NegotiationError::NoCommonCodec)
        );
    }
}
