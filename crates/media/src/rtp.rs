//! RTP (RFC 3550) fixed-header writing and datagram parsing, without I/O or allocation.
//!
//! The sender side only ever writes the 12-byte fixed header (no CSRCs, no extension,
//! no padding). The receiver side accepts any well-formed version-2 packet, skipping
//! CSRCs, a header extension and padding, and refuses RTCP that shares the port
//! (RFC 5761 payload-type range 64..=95 with the marker bit, i.e. packet types 192..=223).

/// Length of the RTP fixed header.
pub const RTP_HEADER_LEN: usize = 12;

/// The fields of an outgoing packet's fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the 12-byte header at the start of `out`; returns `None` if `out` is too short.
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        let header = out.get_mut(..RTP_HEADER_LEN)?;
        header[0] = 0x80; // V=2, P=0, X=0, CC=0
        header[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        header[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        header[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Some(RTP_HEADER_LEN)
    }
}

/// A parsed incoming RTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Why a datagram is not an RTP packet we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpParseError {
    #[error("datagram shorter than its RTP header")]
    Truncated,
    #[error("RTP version is not 2")]
    BadVersion,
    #[error("RTCP packet multiplexed on the RTP port")]
    Rtcp,
    #[error("padding length larger than the payload")]
    BadPadding,
}

/// Parses a datagram as RTP. Never panics, whatever the bytes.
pub fn parse_rtp(datagram: &[u8]) -> Result<RtpPacket<'_>, RtpParseError> {
    let fixed = datagram
        .get(..RTP_HEADER_LEN)
        .ok_or(RtpParseError::Truncated)?;
    let first = fixed[0];
    if first >> 6 != 2 {
        return Err(RtpParseError::BadVersion);
    }
    // RFC 5761 §4: packet types 192..=223 are RTCP when multiplexed.
    if (192..=223).contains(&fixed[1]) {
        return Err(RtpParseError::Rtcp);
    }
    let has_padding = first & 0x20 != 0;
    let has_extension = first & 0x10 != 0;
    let csrc_count = usize::from(first & 0x0F);
    let mut offset = RTP_HEADER_LEN + 4 * csrc_count;
    if has_extension {
        let ext = datagram
            .get(offset..offset + 4)
            .ok_or(RtpParseError::Truncated)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        offset += 4 + 4 * words;
    }
    let mut end = datagram.len();
    if offset > end {
        return Err(RtpParseError::Truncated);
    }
    if has_padding {
        let padding = usize::from(*datagram.last().ok_or(RtpParseError::Truncated)?);
        if padding == 0 || padding > end - offset {
            return Err(RtpParseError::BadPadding);
        }
        end -= padding;
    }
    Ok(RtpPacket {
        marker: fixed[1] & 0x80 != 0,
        payload_type: fixed[1] & 0x7F,
        sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        payload: datagram.get(offset..end).ok_or(RtpParseError::Truncated)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrips_through_parser() {
        let header = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 0xFFFE,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x0102_0304,
        };
        let mut buf = [0u8; 20];
        assert_eq!(header.write(&mut buf), Some(12));
        buf[12..].copy_from_slice(b"payload!");
        assert_eq!(
            &buf[..12],
            &[0x80, 0x88, 0xFF, 0xFE, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4]
        );
        let parsed = parse_rtp(&buf).unwrap();
        assert!(parsed.marker);
        assert_eq!(parsed.payload_type, 8);
        assert_eq!(parsed.sequence, 0xFFFE);
        assert_eq!(parsed.timestamp, 0xDEAD_BEEF);
        assert_eq!(parsed.ssrc, 0x0102_0304);
        assert_eq!(parsed.payload, b"payload!");
    }

    #[test]
    fn write_refuses_short_buffer() {
        let header = RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: 0,
            timestamp: 0,
            ssrc: 0,
        };
        assert_eq!(header.write(&mut [0u8; 11]), None);
    }

    #[test]
    fn parser_skips_csrcs_extension_and_padding() {
        let mut pkt = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]; // P, X, CC=1
        pkt.extend_from_slice(&[9, 9, 9, 9]); // CSRC
        pkt.extend_from_slice(&[0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // extension, 1 word
        pkt.extend_from_slice(&[0xAA, 0xBB]); // payload
        pkt.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let parsed = parse_rtp(&pkt).unwrap();
        assert_eq!(parsed.payload, &[0xAA, 0xBB]);
    }

    #[test]
    fn parser_rejects_garbage() {
        assert_eq!(parse_rtp(&[0x80; 5]), Err(RtpParseError::Truncated));
        assert_eq!(parse_rtp(&[0x40; 12]), Err(RtpParseError::BadVersion));
        let mut rtcp = [0u8; 12];
        rtcp[0] = 0x80;
        rtcp[1] = 200; // sender report
        assert_eq!(parse_rtp(&rtcp), Err(RtpParseError::Rtcp));
        let mut bad_pad = [0u8; 13];
        bad_pad[0] = 0xA0;
        bad_pad[12] = 5;
        assert_eq!(parse_rtp(&bad_pad), Err(RtpParseError::BadPadding));
        let mut long_ext = [0u8; 16];
        long_ext[0] = 0x90;
        long_ext[14] = 0xFF;
        assert_eq!(parse_rtp(&long_ext), Err(RtpParseError::Truncated));
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = parse_rtp(&bytes);
        }
    }
}
