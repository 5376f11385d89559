//! RTCP (RFC 3550 §6) wire format, without I/O or allocation: writing the compound reports a
//! session sends (SR or RR with at most one report block, SDES CNAME, optionally BYE), walking
//! a received compound packet (SR, RR, SDES and BYE recognised, other types skipped), the
//! RFC 5761 test that tells RTCP from RTP on a shared port, and NTP timestamp arithmetic.
//!
//! Parsing validates the whole compound before yielding anything (RFC 3550 A.2: version 2 in
//! every packet, lengths that add up to the datagram exactly, padding only in the last packet,
//! an SR or RR first, report counts that fit) and never panics, whatever the bytes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Sender report.
pub const PT_SR: u8 = 200;
/// Receiver report.
pub const PT_RR: u8 = 201;
/// Source description.
pub const PT_SDES: u8 = 202;
/// Goodbye.
pub const PT_BYE: u8 = 203;
/// SDES item type of the canonical name.
const SDES_CNAME: u8 = 1;
/// Length of one report block.
pub const REPORT_BLOCK_LEN: usize = 24;
/// Length of the sender info of an SR (after the sender's SSRC).
const SENDER_INFO_LEN: usize = 20;
/// The largest compound [`CompoundReport::write`] produces (SR with one block, SDES with a
/// 20-byte CNAME, BYE), rounded up.
pub const MAX_REPORT_LEN: usize = 128;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Whether a datagram on an RTP port is RTCP (RFC 5761 §4: version 2 and a second byte, the
/// RTCP packet type, in 192..=223 — RTP payload types 64..=95 with the marker bit).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    match datagram {
        [first, second, ..] => first >> 6 == 2 && (192..=223).contains(second),
        _ => false,
    }
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost; 24-bit signed on the wire (clamped when written).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the top 16 bits).
    pub highest_sequence: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source (0: none).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// The cumulative-lost field's range (24-bit two's complement).
const LOST_MAX: i32 = 0x7F_FFFF;
const LOST_MIN: i32 = -0x80_0000;

impl ReportBlock {
    fn write(&self, out: &mut [u8]) -> Option<()> {
        let out = out.get_mut(..REPORT_BLOCK_LEN)?;
        let lost = self.cumulative_lost.clamp(LOST_MIN, LOST_MAX) as u32 & 0x00FF_FFFF;
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4..8].copy_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.highest_sequence.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
        Some(())
    }

    fn parse(bytes: &[u8]) -> Option<ReportBlock> {
        let word = |i: usize| -> Option<u32> {
            let b = bytes.get(i..i + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let lost_word = word(4)?;
        // Sign-extend the 24-bit cumulative count.
        let cumulative_lost = ((lost_word << 8) as i32) >> 8;
        Some(ReportBlock {
            ssrc: word(0)?,
            fraction_lost: (lost_word >> 24) as u8,
            cumulative_lost,
            highest_sequence: word(8)?,
            jitter: word(12)?,
            last_sr: word(16)?,
            delay_since_last_sr: word(20)?,
        })
    }
}

/// The sender info of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (32.32 fixed point, seconds since 1900).
    pub ntp: u64,
    /// The RTP timestamp of the same instant.
    pub rtp_timestamp: u32,
    /// RTP packets sent since the stream started (wraps).
    pub packet_count: u32,
    /// RTP payload octets sent since the stream started (wraps).
    pub octet_count: u32,
}

/// A canonical name: `switchboard-` and the session's SSRC in hex, unique per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cname([u8; 20]);

impl Cname {
    pub fn for_ssrc(ssrc: u32) -> Cname {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut name = *b"switchboard-00000000";
        for (i, slot) in name[12..].iter_mut().enumerate() {
            let nibble = (ssrc >> (28 - 4 * i)) & 0xF;
            *slot = DIGITS[nibble as usize];
        }
        Cname(name)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The compound packet a session sends: an SR (with `sender`) or else an RR, at most one
/// report block, an SDES with our CNAME, and a BYE when the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompoundReport {
    pub ssrc: u32,
    pub sender: Option<SenderInfo>,
    pub block: Option<ReportBlock>,
    pub cname: Cname,
    pub bye: bool,
}

/// Writes an RTCP common header: V=2, no padding, `count`, `packet_type`, length in words − 1.
fn write_header(out: &mut [u8], count: u8, packet_type: u8, len: usize) -> Option<()> {
    let words = u16::try_from(len / 4 - 1).ok()?;
    let header = out.get_mut(..4)?;
    header[0] = 0x80 | (count & 0x1F);
    header[1] = packet_type;
    header[2..4].copy_from_slice(&words.to_be_bytes());
    Some(())
}

impl CompoundReport {
    /// Writes the compound at the start of `out`; `None` if `out` is shorter than it.
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        let blocks = usize::from(self.block.is_some());
        // SR or RR.
        let (packet_type, report_len) = match self.sender {
            Some(_) => (PT_SR, 8 + SENDER_INFO_LEN + blocks * REPORT_BLOCK_LEN),
            None => (PT_RR, 8 + blocks * REPORT_BLOCK_LEN),
        };
        let report = out.get_mut(..report_len)?;
        write_header(report, blocks as u8, packet_type, report_len)?;
        report[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        let mut at = 8;
        if let Some(info) = self.sender {
            let sender = report.get_mut(at..at + SENDER_INFO_LEN)?;
            sender[0..8].copy_from_slice(&info.ntp.to_be_bytes());
            sender[8..12].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
            sender[12..16].copy_from_slice(&info.packet_count.to_be_bytes());
            sender[16..20].copy_from_slice(&info.octet_count.to_be_bytes());
            at += SENDER_INFO_LEN;
        }
        if let Some(block) = self.block {
            block.write(report.get_mut(at..)?)?;
        }
        let mut len = report_len;
        // SDES: one chunk (SSRC, CNAME item, end of list), padded with zeros to a word.
        let name = self.cname.as_bytes();
        let items = 2 + name.len() + 1;
        let sdes_len = (4 + 4 + items).next_multiple_of(4);
        let sdes = out.get_mut(len..len + sdes_len)?;
        sdes.fill(0);
        write_header(sdes, 1, PT_SDES, sdes_len)?;
        sdes[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        sdes[8] = SDES_CNAME;
        sdes[9] = name.len() as u8;
        sdes.get_mut(10..10 + name.len())?.copy_from_slice(name);
        len += sdes_len;
        if self.bye {
            let bye = out.get_mut(len..len + 8)?;
            write_header(bye, 1, PT_BYE, 8)?;
            bye[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
            len += 8;
        }
        Some(len)
    }
}

/// Why a datagram is not a compound RTCP packet we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("shorter than an RTCP header")]
    Truncated,
    #[error("RTCP version is not 2")]
    BadVersion,
    #[error("RTCP lengths do not add up to the datagram")]
    BadLength,
    #[error("padding outside the last packet, or longer than it")]
    BadPadding,
    #[error("a compound packet starts with an SR or RR, not type {0}")]
    NotCompound(u8),
    #[error("report count larger than the packet")]
    BadCount,
}

/// One packet of a compound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        blocks: ReportBlocks<'a>,
    },
    ReceiverReport {
        ssrc: u32,
        blocks: ReportBlocks<'a>,
    },
    /// Source descriptions: `count` chunks, not interpreted further.
    SourceDescription {
        count: u8,
    },
    /// The sources that leave.
    Bye {
        ssrcs: SsrcList<'a>,
    },
    /// A packet type we do not use (APP, XR, feedback...), skipped.
    Other {
        packet_type: u8,
    },
}

/// The report blocks of an SR or RR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a> {
    bytes: &'a [u8],
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        let block = ReportBlock::parse(self.bytes.get(..REPORT_BLOCK_LEN)?)?;
        self.bytes = self.bytes.get(REPORT_BLOCK_LEN..).unwrap_or_default();
        Some(block)
    }
}

/// The SSRCs of a BYE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsrcList<'a> {
    bytes: &'a [u8],
}

impl Iterator for SsrcList<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let word = self.bytes.get(..4)?;
        let ssrc = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        self.bytes = self.bytes.get(4..).unwrap_or_default();
        Some(ssrc)
    }
}

/// The packets of a validated compound, in order.
#[derive(Debug, Clone, Copy)]
pub struct Compound<'a> {
    rest: &'a [u8],
}

/// The header fields of one packet and its body (after the 4-byte header, padding removed).
struct Framed<'a> {
    count: u8,
    packet_type: u8,
    body: &'a [u8],
    padded: bool,
}

/// Splits the first packet off `bytes`: (packet, rest).
fn frame(bytes: &[u8]) -> Result<(Framed<'_>, &[u8]), RtcpError> {
    let header = bytes.get(..4).ok_or(RtcpError::Truncated)?;
    if header[0] >> 6 != 2 {
        return Err(RtcpError::BadVersion);
    }
    let len = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
    let packet = bytes.get(..len).ok_or(RtcpError::BadLength)?;
    let rest = bytes.get(len..).ok_or(RtcpError::BadLength)?;
    let padded = header[0] & 0x20 != 0;
    let mut end = len;
    if padded {
        let padding = usize::from(*packet.last().ok_or(RtcpError::Truncated)?);
        if padding == 0 || padding > len - 4 {
            return Err(RtcpError::BadPadding);
        }
        end -= padding;
    }
    Ok((
        Framed {
            count: header[0] & 0x1F,
            packet_type: header[1],
            body: packet.get(4..end).ok_or(RtcpError::BadPadding)?,
            padded,
        },
        rest,
    ))
}

fn word(bytes: &[u8], at: usize) -> Result<u32, RtcpError> {
    let b = bytes.get(at..at + 4).ok_or(RtcpError::BadCount)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Interprets one framed packet (its sizes already checked by [`parse_compound`]).
fn packet<'a>(framed: &Framed<'a>) -> Result<RtcpPacket<'a>, RtcpError> {
    let body = framed.body;
    let blocks_len = usize::from(framed.count) * REPORT_BLOCK_LEN;
    Ok(match framed.packet_type {
        PT_SR => {
            let blocks = body
                .get(4 + SENDER_INFO_LEN..4 + SENDER_INFO_LEN + blocks_len)
                .ok_or(RtcpError::BadCount)?;
            RtcpPacket::SenderReport {
                ssrc: word(body, 0)?,
                info: SenderInfo {
                    ntp: (u64::from(word(body, 4)?) << 32) | u64::from(word(body, 8)?),
                    rtp_timestamp: word(body, 12)?,
                    packet_count: word(body, 16)?,
                    octet_count: word(body, 20)?,
                },
                blocks: ReportBlocks { bytes: blocks },
            }
        }
        PT_RR => {
            let blocks = body.get(4..4 + blocks_len).ok_or(RtcpError::BadCount)?;
            RtcpPacket::ReceiverReport {
                ssrc: word(body, 0)?,
                blocks: ReportBlocks { bytes: blocks },
            }
        }
        PT_SDES => RtcpPacket::SourceDescription {
            count: framed.count,
        },
        PT_BYE => {
            let ssrcs = body
                .get(..4 * usize::from(framed.count))
                .ok_or(RtcpError::BadCount)?;
            RtcpPacket::Bye {
                ssrcs: SsrcList { bytes: ssrcs },
            }
        }
        packet_type => RtcpPacket::Other { packet_type },
    })
}

/// Validates a compound RTCP datagram; iterate the result for its packets.
pub fn parse_compound(datagram: &[u8]) -> Result<Compound<'_>, RtcpError> {
    let mut rest = datagram;
    let mut first = true;
    while !rest.is_empty() {
        let (framed, after) = frame(rest)?;
        if first && !matches!(framed.packet_type, PT_SR | PT_RR) {
            return Err(RtcpError::NotCompound(framed.packet_type));
        }
        if framed.padded && !after.is_empty() {
            return Err(RtcpError::BadPadding);
        }
        packet(&framed)?;
        first = false;
        rest = after;
    }
    if first {
        return Err(RtcpError::Truncated);
    }
    Ok(Compound { rest: datagram })
}

impl<'a> Iterator for Compound<'a> {
    type Item = RtcpPacket<'a>;

    fn next(&mut self) -> Option<RtcpPacket<'a>> {
        let (framed, after) = frame(self.rest).ok()?;
        self.rest = after;
        packet(&framed).ok()
    }
}

/// A 64-bit NTP timestamp (32.32 fixed point) of a duration since the NTP epoch.
pub fn ntp_of(since_1900: Duration) -> u64 {
    let fraction = (u64::from(since_1900.subsec_nanos()) << 32) / 1_000_000_000;
    (since_1900.as_secs() << 32) | fraction
}

/// The middle 32 bits of an NTP timestamp (the LSR field's form, 1/65536 s units).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in 1/65536 s (the DLSR field's form), saturating.
pub fn to_short_ntp(duration: Duration) -> u32 {
    let units = duration.as_nanos().saturating_mul(65_536) / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// 1/65536 s units in microseconds.
pub fn short_ntp_micros(units: u32) -> u32 {
    ((u64::from(units) * 1_000_000) >> 16) as u32
}

/// Wall-clock NTP time for monotonic instants: the wall clock is read once, then follows the
/// monotonic clock, so the timestamps a worker sends and its RTT arithmetic never jump.
#[derive(Debug, Clone, Copy)]
pub struct NtpClock {
    base: Instant,
    base_since_1900: Duration,
}

impl NtpClock {
    /// The clock for which `base` is `wall`.
    pub fn new(base: Instant, wall: SystemTime) -> NtpClock {
        let since_unix = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        NtpClock {
            base,
            base_since_1900: since_unix + Duration::from_secs(NTP_UNIX_OFFSET_SECS),
        }
    }

    /// The NTP timestamp of `at` (instants before the base map to the base).
    pub fn ntp(&self, at: Instant) -> u64 {
        ntp_of(self.base_since_1900 + at.saturating_duration_since(self.base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> ReportBlock {
        ReportBlock {
            ssrc: 0x0102_0304,
            fraction_lost: 64,
            cumulative_lost: 9,
            highest_sequence: 0x0001_0005,
            jitter: 37,
            last_sr: 0xAABB_CCDD,
            delay_since_last_sr: 0x0001_8000,
        }
    }

    fn report(sender: bool, with_block: bool, bye: bool) -> CompoundReport {
        CompoundReport {
            ssrc: 0xDEAD_BEEF,
            sender: sender.then_some(SenderInfo {
                ntp: 0xE000_0001_8000_0000,
                rtp_timestamp: 160_000,
                packet_count: 1000,
                octet_count: 160_000,
            }),
            block: with_block.then(block),
            cname: Cname::for_ssrc(0xDEAD_BEEF),
            bye,
        }
    }

    #[test]
    fn compound_round_trips() {
        for (sender, with_block, bye) in [
            (true, true, false),
            (false, true, false),
            (false, false, false),
            (true, false, true),
            (false, true, true),
        ] {
            let compound = report(sender, with_block, bye);
            let mut buf = [0u8; MAX_REPORT_LEN];
            let len = compound.write(&mut buf).unwrap();
            assert_eq!(len % 4, 0);
            let packets: Vec<RtcpPacket> = parse_compound(&buf[..len]).unwrap().collect();
            let mut iter = packets.iter();
            let blocks: Vec<ReportBlock> = match iter.next().unwrap() {
                RtcpPacket::SenderReport { ssrc, info, blocks } => {
                    assert!(sender);
                    assert_eq!(*ssrc, 0xDEAD_BEEF);
                    assert_eq!(Some(*info), compound.sender);
                    blocks.collect()
                }
                RtcpPacket::ReceiverReport { ssrc, blocks } => {
                    assert!(!sender);
                    assert_eq!(*ssrc, 0xDEAD_BEEF);
                    blocks.collect()
                }
                other => panic!("first packet {other:?}"),
            };
            assert_eq!(blocks, compound.block.into_iter().collect::<Vec<_>>());
            assert_eq!(
                iter.next(),
                Some(&RtcpPacket::SourceDescription { count: 1 })
            );
            match iter.next() {
                Some(RtcpPacket::Bye { ssrcs }) => {
                    assert!(bye);
                    assert_eq!(ssrcs.collect::<Vec<_>>(), vec![0xDEAD_BEEF]);
                }
                None => assert!(!bye),
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(iter.next(), None);
        }
    }

    #[test]
    fn wire_bytes_of_an_rr_with_sdes() {
        let mut buf = [0u8; MAX_REPORT_LEN];
        let len = report(false, true, false).write(&mut buf).unwrap();
        // RR: V=2 RC=1 PT=201 length 7 (32 bytes), SSRC, then the block.
        assert_eq!(&buf[..8], &[0x81, 201, 0, 7, 0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(&buf[8..12], &[1, 2, 3, 4]);
        assert_eq!(&buf[12..16], &[64, 0, 0, 9], "fraction, 24-bit cumulative");
        // SDES: SC=1 PT=202, chunk SSRC, CNAME (type 1, length 20), end, padded to 32 bytes.
        assert_eq!(&buf[32..36], &[0x81, 202, 0, 7]);
        assert_eq!(&buf[36..40], &[0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(&buf[40..42], &[1, 20]);
        assert_eq!(&buf[42..62], b"switchboard-deadbeef");
        assert_eq!(&buf[62..64], &[0, 0], "end of items, padding");
        assert_eq!(len, 64);
    }

    #[test]
    fn cumulative_lost_is_24_bit_signed() {
        let mut buf = [0u8; MAX_REPORT_LEN];
        for (lost, wire) in [
            (-1, [0xFF, 0xFF, 0xFF]),
            (0x7F_FFFF, [0x7F, 0xFF, 0xFF]),
            (50_000_000, [0x7F, 0xFF, 0xFF]),
            (-50_000_000, [0x80, 0x00, 0x00]),
        ] {
            let mut compound = report(false, true, false);
            compound.block = Some(ReportBlock {
                cumulative_lost: lost,
                ..block()
            });
            let len = compound.write(&mut buf).unwrap();
            assert_eq!(&buf[13..16], &wire);
            let parsed = match parse_compound(&buf[..len]).unwrap().next() {
                Some(RtcpPacket::ReceiverReport { mut blocks, .. }) => blocks.next().unwrap(),
                other => panic!("{other:?}"),
            };
            assert_eq!(parsed.cumulative_lost, lost.clamp(-0x80_0000, 0x7F_FFFF));
        }
    }

    #[test]
    fn unknown_packet_types_are_skipped_and_padding_is_honoured() {
        let mut buf = [0u8; MAX_REPORT_LEN];
        let len = report(false, false, false).write(&mut buf).unwrap();
        let mut datagram = buf[..len].to_vec();
        // An APP packet (PT 204) with 4 bytes of padding at the end of the compound.
        datagram.extend_from_slice(&[0xA0, 204, 0, 3, 0, 0, 0, 1, b'n', b'a', b'm', b'e']);
        datagram.extend_from_slice(&[0, 0, 0, 4]);
        let types: Vec<RtcpPacket> = parse_compound(&datagram).unwrap().collect();
        assert_eq!(types.len(), 3);
        assert_eq!(types[2], RtcpPacket::Other { packet_type: 204 });
    }

    #[test]
    fn malformed_compounds_are_errors() {
        let mut buf = [0u8; MAX_REPORT_LEN];
        let len = report(true, true, false).write(&mut buf).unwrap();
        let good = buf[..len].to_vec();
        assert!(parse_compound(&good).is_ok());
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut d = good.clone();
            f(&mut d);
            parse_compound(&d).err()
        };
        assert_eq!(parse_compound(&[]).err(), Some(RtcpError::Truncated));
        assert_eq!(
            parse_compound(&[0x80, 200]).err(),
            Some(RtcpError::Truncated)
        );
        assert_eq!(with(&|d| d[0] = 0x40), Some(RtcpError::BadVersion));
        assert_eq!(with(&|d| d.truncate(len - 4)), Some(RtcpError::BadLength));
        assert_eq!(with(&|d| d.push(0)), Some(RtcpError::Truncated));
        assert_eq!(with(&|d| d[3] = 200), Some(RtcpError::BadLength));
        // An SDES first is not a compound.
        assert_eq!(
            parse_compound(&good[52..]).err(),
            Some(RtcpError::NotCompound(PT_SDES))
        );
        // Padding in the first of two packets.
        assert_eq!(with(&|d| d[0] |= 0x20), Some(RtcpError::BadPadding));
        // A report count larger than the packet.
        assert_eq!(with(&|d| d[0] = 0x83), Some(RtcpError::BadCount));
        // BYE claiming more sources than it holds.
        let bye_len = report(false, false, true).write(&mut buf).unwrap();
        let mut bye = buf[..bye_len].to_vec();
        let at = bye_len - 8;
        bye[at] = 0x82;
        assert_eq!(parse_compound(&bye).err(), Some(RtcpError::BadCount));
    }

    #[test]
    fn rtcp_is_told_from_rtp() {
        assert!(is_rtcp(&[0x80, 200, 0, 1]));
        assert!(is_rtcp(&[0x81, 223]));
        assert!(!is_rtcp(&[0x80, 0x00, 0, 1]), "PCMU");
        assert!(
            !is_rtcp(&[0x80, 0xE5]),
            "telephone-event with the marker bit"
        );
        assert!(!is_rtcp(&[0x40, 200]), "version 1");
        assert!(!is_rtcp(&[0x80]));
    }

    #[test]
    fn ntp_arithmetic() {
        assert_eq!(ntp_of(Duration::new(1, 500_000_000)), 0x0000_0001_8000_0000);
        assert_eq!(ntp_middle(0x1234_5678_9ABC_DEF0), 0x5678_9ABC);
        assert_eq!(to_short_ntp(Duration::from_millis(500)), 0x8000);
        assert_eq!(to_short_ntp(Duration::from_secs(1 << 20)), u32::MAX);
        assert_eq!(short_ntp_micros(0x8000), 500_000);
        assert_eq!(short_ntp_micros(65), 991);
        let t0 = Instant::now();
        let clock = NtpClock::new(t0, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(
            clock.ntp(t0) >> 32,
            1_700_000_000 + NTP_UNIX_OFFSET_SECS,
            "seconds since 1900"
        );
        let later = clock.ntp(t0 + Duration::from_millis(250));
        assert_eq!(later - clock.ntp(t0), 1 << 30, "a quarter second");
        assert_eq!(
            clock.ntp(t0.checked_sub(Duration::from_secs(1)).unwrap_or(t0)),
            clock.ntp(t0)
        );
    }

    #[test]
    fn cname_names_the_ssrc() {
        assert_eq!(
            Cname::for_ssrc(0x0012_ABCD).as_bytes(),
            b"switchboard-0012abcd"
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..160)
        ) {
            if let Ok(compound) = parse_compound(&bytes) {
                for packet in compound {
                    if let RtcpPacket::SenderReport { blocks, .. }
                    | RtcpPacket::ReceiverReport { blocks, .. } = packet
                    {
                        let _ = blocks.count();
                    }
                }
            }
        }

        #[test]
        fn parsing_mutated_reports_never_panics(
            flips in proptest::collection::vec((0usize..96, proptest::num::u8::ANY), 1..6),
            cut in 0usize..100,
        ) {
            let mut buf = [0u8; MAX_REPORT_LEN];
            let len = report(true, true, true).write(&mut buf).unwrap();
            let mut datagram = buf[..len].to_vec();
            for (at, value) in flips {
                if let Some(byte) = datagram.get_mut(at) {
                    *byte = value;
                }
            }
            datagram.truncate(cut.max(1));
            if let Ok(compound) = parse_compound(&datagram) {
                let _ = compound.count();
            }
        }
    }
}
