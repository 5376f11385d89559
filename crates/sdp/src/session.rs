//! The session-description data model and its line parser (RFC 4566).
//!
//! The parser is deliberately lenient about things that do not matter for
//! audio calls (unknown lines and attributes, non-numeric formats of non-RTP
//! media, `\n` instead of `\r\n`) and strict about the lines negotiation
//! relies on (`v=`, `o=`, `c=`, `m=`, `a=rtpmap`). It never panics.

use std::net::IpAddr;

use thiserror::Error;

/// Why a text is not a usable session description.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    #[error("SDP is empty")]
    Empty,
    #[error("SDP does not start with a v= line")]
    MissingVersion,
    #[error("unsupported SDP version {0:?}")]
    UnsupportedVersion(String),
    #[error("line {line}: not of the form <type>=<value>")]
    MalformedLine { line: usize },
    #[error("line {line}: malformed o= line")]
    InvalidOrigin { line: usize },
    #[error("line {line}: malformed or unsupported c= line")]
    InvalidConnection { line: usize },
    #[error("line {line}: malformed m= line")]
    InvalidMedia { line: usize },
    #[error("line {line}: malformed a=rtpmap attribute")]
    InvalidRtpMap { line: usize },
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: String,
    pub net_type: String,
    pub address_type: String,
    pub address: String,
}

/// Media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name, e.g. `sendrecv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answerer uses for an offered direction.
    pub fn answer_to(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// One `a=rtpmap:<pt> <encoding>/<clock_rate>[/<channels>]` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub pt: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

/// One `m=` section with the attributes negotiation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type, e.g. `audio`.
    pub kind: String,
    pub port: u16,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub proto: String,
    /// Numeric payload types in offer (preference) order; non-numeric
    /// formats of non-RTP media are skipped.
    pub formats: Vec<u8>,
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp:<pt> <parameters>`.
    pub fmtp: Vec<(u8, String)>,
    pub ptime: Option<u16>,
    /// Media-level `c=`; falls back to the session-level one when absent.
    pub connection: Option<IpAddr>,
    pub direction: Option<Direction>,
}

impl MediaDescription {
    /// The rtpmap for a payload type, if the offer carried one.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|map| map.pt == pt)
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Option<Origin>,
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// Session-level `a=ptime` (not standard, but sent by some peers).
    pub ptime: Option<u16>,
    pub media: Vec<MediaDescription>,
}

/// Parses an SDP body. Accepts `\r\n` or `\n` line endings.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut session = SessionDescription {
        origin: None,
        session_name: String::new(),
        connection: None,
        direction: None,
        ptime: None,
        media: Vec::new(),
    };
    let mut seen_version = false;

    for (index, raw_line) in text.split('\n').enumerate() {
        let line_number = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.trim().is_empty() {
            continue;
        }
        let (kind, value) =
            split_type_value(line).ok_or(SdpError::MalformedLine { line: line_number })?;
        if !seen_version {
            if kind != 'v' {
                return Err(SdpError::MissingVersion);
            }
            if value.trim() != "0" {
                return Err(SdpError::UnsupportedVersion(value.trim().to_owned()));
            }
            seen_version = true;
            continue;
        }
        match kind {
            'o' => {
                session.origin =
                    Some(parse_origin(value).ok_or(SdpError::InvalidOrigin { line: line_number })?)
            }
            's' => session.session_name = value.to_owned(),
            'c' => {
                let address = parse_connection(value)
                    .ok_or(SdpError::InvalidConnection { line: line_number })?;
                match session.media.last_mut() {
                    Some(media) => media.connection = Some(address),
                    None => session.connection = Some(address),
                }
            }
            'm' => session
                .media
                .push(parse_media_line(value).ok_or(SdpError::InvalidMedia { line: line_number })?),
            'a' => apply_attribute(&mut session, value, line_number)?,
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::Empty);
    }
    Ok(session)
}

fn split_type_value(line: &str) -> Option<(char, &str)> {
    let mut chars = line.chars();
    let kind = chars.next()?;
    if !kind.is_ascii_alphabetic() || chars.next()? != '=' {
        return None;
    }
    // Both characters are ASCII, so byte offset 2 is a char boundary.
    line.get(2..).map(|value| (kind, value))
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut fields = value.split_ascii_whitespace();
    let origin = Origin {
        username: fields.next()?.to_owned(),
        session_id: fields.next()?.to_owned(),
        session_version: fields.next()?.to_owned(),
        net_type: fields.next()?.to_owned(),
        address_type: fields.next()?.to_owned(),
        address: fields.next()?.to_owned(),
    };
    Some(origin)
}

/// `IN IP4 192.0.2.1[/ttl[/count]]` → address.
fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut fields = value.split_ascii_whitespace();
    let net_type = fields.next()?;
    let address_type = fields.next()?;
    let address = fields.next()?;
    if !net_type.eq_ignore_ascii_case("IN") {
        return None;
    }
    let host = address.split('/').next()?;
    let parsed: IpAddr = host.parse().ok()?;
    let family_matches = match address_type.to_ascii_uppercase().as_str() {
        "IP4" => parsed.is_ipv4(),
        "IP6" => parsed.is_ipv6(),
        _ => false,
    };
    family_matches.then_some(parsed)
}

/// `audio 49170[/2] RTP/AVP 0 8 101`.
fn parse_media_line(value: &str) -> Option<MediaDescription> {
    let mut fields = value.split_ascii_whitespace();
    let kind = fields.next()?.to_owned();
    let port_field = fields.next()?;
    let port: u16 = port_field.split('/').next()?.parse().ok()?;
    let proto = fields.next()?.to_owned();
    let formats = fields
        .filter_map(|format| format.parse::<u8>().ok())
        .collect();
    Some(MediaDescription {
        kind,
        port,
        proto,
        formats,
        rtpmaps: Vec::new(),
        fmtp: Vec::new(),
        ptime: None,
        connection: None,
        direction: None,
    })
}

fn apply_attribute(
    session: &mut SessionDescription,
    value: &str,
    line: usize,
) -> Result<(), SdpError> {
    let (name, argument) = match value.split_once(':') {
        Some((name, argument)) => (name.trim(), Some(argument.trim())),
        None => (value.trim(), None),
    };
    if let Some(direction) = Direction::from_attribute(name) {
        match session.media.last_mut() {
            Some(media) => media.direction = Some(direction),
            None => session.direction = Some(direction),
        }
        return Ok(());
    }
    match (name, argument) {
        ("ptime", Some(argument)) => {
            let ptime = parse_ptime(argument);
            match session.media.last_mut() {
                Some(media) => media.ptime = ptime.or(media.ptime),
                None => session.ptime = ptime.or(session.ptime),
            }
        }
        ("rtpmap", Some(argument)) => {
            // An rtpmap before any m= line is meaningless; ignore it.
            if let Some(media) = session.media.last_mut() {
                media
                    .rtpmaps
                    .push(parse_rtpmap(argument).ok_or(SdpError::InvalidRtpMap { line })?);
            }
        }
        ("fmtp", Some(argument)) => {
            if let Some(media) = session.media.last_mut() {
                let (pt, parameters) = match argument.split_once(|c: char| c.is_ascii_whitespace())
                {
                    Some((pt, parameters)) => (pt, parameters.trim()),
                    None => (argument, ""),
                };
                if let Ok(pt) = pt.parse::<u8>() {
                    media.fmtp.push((pt, parameters.to_owned()));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// `20` or `20.0` → 20. Out-of-range or garbage values are ignored.
fn parse_ptime(argument: &str) -> Option<u16> {
    let number: f64 = argument.trim().parse().ok()?;
    if number.is_finite() && number >= 1.0 && number <= f64::from(u16::MAX) {
        Some(number.round() as u16)
    } else {
        None
    }
}

/// `101 telephone-event/8000[/1]`.
fn parse_rtpmap(argument: &str) -> Option<RtpMap> {
    let (pt, rest) = argument.split_once(|c: char| c.is_ascii_whitespace())?;
    let pt: u8 = pt.parse().ok()?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.trim();
    if encoding.is_empty() {
        return None;
    }
    let clock_rate: u32 = parts.next()?.trim().parse().ok()?;
    let channels = match parts.next() {
        Some(channels) => Some(channels.trim().parse::<u8>().ok()?),
        None => None,
    };
    Some(RtpMap {
        pt,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn parses_sipp_default_offer() {
        let offer = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
                     c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n\
                     a=rtpmap:0 PCMU/8000\r\n";
        let session = parse(offer).unwrap();
        assert_eq!(
            session.connection,
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)))
        );
        let origin = session.origin.unwrap();
        assert_eq!(origin.username, "user1");
        assert_eq!(origin.session_id, "53655765");
        assert_eq!(session.media.len(), 1);
        let audio = &session.media[0];
        assert_eq!(audio.kind, "audio");
        assert_eq!(audio.port, 6000);
        assert_eq!(audio.proto, "RTP/AVP");
        assert_eq!(audio.formats, vec![0]);
        assert_eq!(
            audio.rtpmap(0),
            Some(&RtpMap {
                pt: 0,
                encoding: "PCMU".into(),
                clock_rate: 8000,
                channels: None
            })
        );
        assert_eq!(audio.connection, None);
    }

    #[test]
    fn media_level_connection_and_attributes() {
        let offer = "v=0\no=- 1 1 IN IP6 ::1\ns=x\nc=IN IP4 10.0.0.1\nt=0 0\n\
                     m=audio 4000 RTP/AVP 8 0 101\nc=IN IP6 2001:db8::5\n\
                     a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\n\
                     a=ptime:30\na=sendonly\nm=video 0 RTP/AVP 96\n";
        let session = parse(offer).unwrap();
        assert_eq!(session.connection, Some("10.0.0.1".parse().unwrap()));
        let audio = &session.media[0];
        assert_eq!(
            audio.connection,
            Some(IpAddr::V6("2001:db8::5".parse::<Ipv6Addr>().unwrap()))
        );
        assert_eq!(audio.formats, vec![8, 0, 101]);
        assert_eq!(audio.fmtp, vec![(101, "0-15".to_owned())]);
        assert_eq!(audio.ptime, Some(30));
        assert_eq!(audio.direction, Some(Direction::SendOnly));
        assert_eq!(session.media[1].kind, "video");
        assert_eq!(session.media[1].port, 0);
    }

    #[test]
    fn rejects_structural_errors() {
        assert_eq!(parse(""), Err(SdpError::Empty));
        assert_eq!(
            parse("o=- 1 1 IN IP4 1.2.3.4\r\n"),
            Err(SdpError::MissingVersion)
        );
        assert!(matches!(
            parse("v=1\r\n"),
            Err(SdpError::UnsupportedVersion(_))
        ));
        assert_eq!(
            parse("v=0\r\nthis is not sdp\r\n"),
            Err(SdpError::MalformedLine { line: 2 })
        );
        assert_eq!(
            parse("v=0\r\nc=IN IP4 not-an-address\r\n"),
            Err(SdpError::InvalidConnection { line: 2 })
        );
        assert_eq!(
            parse("v=0\r\nc=IN IP6 10.0.0.1\r\n"),
            Err(SdpError::InvalidConnection { line: 2 })
        );
        assert_eq!(
            parse("v=0\r\nm=audio port RTP/AVP 0\r\n"),
            Err(SdpError::InvalidMedia { line: 2 })
        );
        assert_eq!(
            parse("v=0\r\nm=audio 5 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n"),
            Err(SdpError::InvalidRtpMap { line: 3 })
        );
    }

    #[test]
    fn multicast_ttl_and_port_count_are_stripped() {
        let session =
            parse("v=0\r\nc=IN IP4 224.2.1.1/127/3\r\nm=audio 5000/2 RTP/AVP 0\r\n").unwrap();
        assert_eq!(session.connection, Some("224.2.1.1".parse().unwrap()));
        assert_eq!(session.media[0].port, 5000);
    }

    #[test]
    fn decimal_ptime_is_rounded() {
        let session = parse("v=0\r\nm=audio 5000 RTP/AVP 0\r\na=ptime:20.0\r\n").unwrap();
        assert_eq!(session.media[0].ptime, Some(20));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_text(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_sdp_shaped_text(
            lines in proptest::collection::vec(
                ("[vocmsta]", "[ -~]{0,40}").prop_map(|(kind, value)| format!("{kind}={value}")),
                0..20,
            )
        ) {
            let mut text = String::from("v=0\r\n");
            text.push_str(&lines.join("\r\n"));
            let _ = parse(&text);
        }
    }
}
