//! Ethernet II frames as the DPDK backend sends and receives them, with no kernel in
//! between: parsing a received frame into a UDP datagram for this host or an ARP packet
//! (or the reason it is dropped), and writing UDP datagrams and ARP packets as frames with
//! their IPv4 and UDP checksums. Pure functions over byte slices: nothing here allocates,
//! panics on input or touches a device.
//!
//! Scope: untagged Ethernet II, IPv4 without reassembly (fragments are dropped), UDP, ARP
//! for IPv4 over Ethernet. IPv4 options are skipped on receive and never sent. A UDP
//! checksum of zero is accepted (RFC 768); a non-zero one is not verified here, since NICs
//! and virtual devices often leave it to offload (see [`parse_frame`]).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

pub const ETHERNET_HEADER_LEN: usize = 14;
pub const IPV4_HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;
/// Ethernet, IPv4 (without options) and UDP headers.
pub const UDP_HEADERS_LEN: usize = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;
/// An ARP packet for IPv4 over Ethernet, with its Ethernet header.
pub const ARP_FRAME_LEN: usize = ETHERNET_HEADER_LEN + 28;
/// The shortest Ethernet frame (without its FCS); shorter ones are zero-padded.
pub const MIN_FRAME_LEN: usize = 60;
/// The largest UDP payload sent: what fits a 1500-byte IP MTU.
pub const MAX_UDP_PAYLOAD: usize = 1500 - IPV4_HEADER_LEN - UDP_HEADER_LEN;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const IP_PROTOCOL_UDP: u8 = 17;
const ARP_HARDWARE_ETHERNET: u16 = 1;
/// Don't Fragment: set on everything sent.
const IPV4_FLAG_DF: u16 = 0x4000;
const IPV4_FLAG_MF: u16 = 0x2000;
const IPV4_FRAGMENT_OFFSET: u16 = 0x1fff;
const SENT_TTL: u8 = 64;

/// An Ethernet (MAC-48) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    pub const BROADCAST: MacAddress = MacAddress([0xff; 6]);
    pub const ZERO: MacAddress = MacAddress([0; 6]);

    /// Group addresses (broadcast included) have the low bit of the first octet set.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// This host's side of the link: its MAC, its IPv4 address and prefix, its gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    pub mac: MacAddress,
    pub ipv4: Ipv4Addr,
    /// 0..=32.
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
}

impl Interface {
    fn mask(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n.min(32))),
        }
    }

    /// Whether `ip` is in this host's subnet (reached directly, not through the gateway).
    pub fn is_on_link(&self, ip: Ipv4Addr) -> bool {
        let mask = self.mask();
        u32::from(ip) & mask == u32::from(self.ipv4) & mask
    }

    /// Where a packet for `destination` goes on this link: the destination itself when on
    /// link, else the gateway; `None` when off link without a gateway, or not unicast.
    pub fn next_hop(&self, destination: Ipv4Addr) -> Option<Ipv4Addr> {
        if destination.is_unspecified() || destination.is_broadcast() || destination.is_multicast()
        {
            return None;
        }
        if self.is_on_link(destination) {
            Some(destination)
        } else {
            self.gateway
        }
    }
}

/// A UDP datagram for this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// The Ethernet source: the sender itself when it is on link, else a router.
    pub source_mac: MacAddress,
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    Request,
    Reply,
}

/// An ARP packet for IPv4 over Ethernet (RFC 826).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub operation: ArpOperation,
    pub sender_mac: MacAddress,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddress,
    pub target_ip: Ipv4Addr,
}

/// A received frame this host handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Udp(UdpDatagram<'a>),
    Arp(ArpPacket),
}

/// Why a received frame is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// Neither IPv4 nor ARP: IPv6, VLAN-tagged, LLDP…
    NotIpv4,
    /// Shorter than its headers say, impossible header fields, a bad IPv4 header checksum,
    /// or ARP for other hardware or protocols.
    Malformed,
    /// For another station: a unicast MAC not ours, or IPv4 to another (or a broadcast or
    /// multicast) address.
    OtherDestination,
    /// An IPv4 fragment (no reassembly: nothing we carry needs it).
    Fragment,
    /// IPv4 for us, but not UDP (ICMP…).
    NotUdp,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at + 2)?;
    Some(u16::from_be_bytes([*pair.first()?, *pair.get(1)?]))
}

fn ipv4_at(bytes: &[u8], at: usize) -> Option<Ipv4Addr> {
    let quad: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(quad))
}

fn mac_at(bytes: &[u8], at: usize) -> Option<MacAddress> {
    let six: [u8; 6] = bytes.get(at..at + 6)?.try_into().ok()?;
    Some(MacAddress(six))
}

/// Classifies a received frame for `interface`: a UDP datagram addressed to its IPv4
/// address and MAC, any ARP packet for IPv4 over Ethernet sent to its MAC or broadcast, or
/// why it is dropped. A frame may be longer than its IPv4 packet (Ethernet padding).
pub fn parse_frame<'a>(frame: &'a [u8], interface: &Interface) -> Result<Frame<'a>, Discard> {
    let destination_mac = mac_at(frame, 0).ok_or(Discard::Malformed)?;
    let source_mac = mac_at(frame, 6).ok_or(Discard::Malformed)?;
    let ethertype = u16_at(frame, 12).ok_or(Discard::Malformed)?;
    let to_us = destination_mac == interface.mac;
    let body = frame.get(ETHERNET_HEADER_LEN..).unwrap_or_default();
    match ethertype {
        ETHERTYPE_ARP => {
            if !to_us && destination_mac != MacAddress::BROADCAST {
                return Err(Discard::OtherDestination);
            }
            parse_arp(body).map(Frame::Arp)
        }
        ETHERTYPE_IPV4 => {
            if !to_us {
                return Err(Discard::OtherDestination);
            }
            parse_ipv4_udp(body, source_mac, interface.ipv4).map(Frame::Udp)
        }
        _ => Err(Discard::NotIpv4),
    }
}

fn parse_arp(body: &[u8]) -> Result<ArpPacket, Discard> {
    let field = |at| u16_at(body, at).ok_or(Discard::Malformed);
    let lengths = (body.get(4).copied(), body.get(5).copied());
    if field(0)? != ARP_HARDWARE_ETHERNET
        || field(2)? != ETHERTYPE_IPV4
        || lengths != (Some(6), Some(4))
    {
        return Err(Discard::Malformed);
    }
    let operation = match field(6)? {
        1 => ArpOperation::Request,
        2 => ArpOperation::Reply,
        _ => return Err(Discard::Malformed),
    };
    Ok(ArpPacket {
        operation,
        sender_mac: mac_at(body, 8).ok_or(Discard::Malformed)?,
        sender_ip: ipv4_at(body, 14).ok_or(Discard::Malformed)?,
        target_mac: mac_at(body, 18).ok_or(Discard::Malformed)?,
        target_ip: ipv4_at(body, 24).ok_or(Discard::Malformed)?,
    })
}

fn parse_ipv4_udp(
    packet: &[u8],
    source_mac: MacAddress,
    local: Ipv4Addr,
) -> Result<UdpDatagram<'_>, Discard> {
    let first = *packet.first().ok_or(Discard::Malformed)?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < IPV4_HEADER_LEN {
        return Err(Discard::Malformed);
    }
    let total_len = usize::from(u16_at(packet, 2).ok_or(Discard::Malformed)?);
    if total_len < header_len || total_len > packet.len() {
        return Err(Discard::Malformed);
    }
    let header = packet.get(..header_len).ok_or(Discard::Malformed)?;
    if fold(sum_be_words(header, 0)) != 0xffff {
        return Err(Discard::Malformed);
    }
    let destination = ipv4_at(packet, 16).ok_or(Discard::Malformed)?;
    if destination != local {
        return Err(Discard::OtherDestination);
    }
    let flags = u16_at(packet, 6).ok_or(Discard::Malformed)?;
    if flags & (IPV4_FLAG_MF | IPV4_FRAGMENT_OFFSET) != 0 {
        return Err(Discard::Fragment);
    }
    if packet.get(9).copied() != Some(IP_PROTOCOL_UDP) {
        return Err(Discard::NotUdp);
    }
    let source = ipv4_at(packet, 12).ok_or(Discard::Malformed)?;
    let udp = packet
        .get(header_len..total_len)
        .ok_or(Discard::Malformed)?;
    let udp_len = usize::from(u16_at(udp, 4).ok_or(Discard::Malformed)?);
    if udp_len < UDP_HEADER_LEN || udp_len > udp.len() {
        return Err(Discard::Malformed);
    }
    Ok(UdpDatagram {
        source_mac,
        source: SocketAddrV4::new(source, u16_at(udp, 0).ok_or(Discard::Malformed)?),
        destination: SocketAddrV4::new(destination, u16_at(udp, 2).ok_or(Discard::Malformed)?),
        payload: udp.get(UDP_HEADER_LEN..udp_len).ok_or(Discard::Malformed)?,
    })
}

/// The length of the frame [`write_udp_frame`] writes for a payload of `payload_len`.
pub fn udp_frame_len(payload_len: usize) -> usize {
    (UDP_HEADERS_LEN + payload_len).max(MIN_FRAME_LEN)
}

/// Everything about a UDP frame to send except its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrameHeader {
    pub source_mac: MacAddress,
    pub destination_mac: MacAddress,
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    /// The IPv4 identification field.
    pub identification: u16,
}

/// Writes `payload` as an Ethernet/IPv4/UDP frame at the start of `out` (Don't Fragment,
/// TTL 64, both checksums) and returns its length, [`udp_frame_len`]; `None` if `out` is
/// shorter or the payload exceeds [`MAX_UDP_PAYLOAD`].
pub fn write_udp_frame(out: &mut [u8], header: &UdpFrameHeader, payload: &[u8]) -> Option<usize> {
    if payload.len() > MAX_UDP_PAYLOAD {
        return None;
    }
    let frame_len = udp_frame_len(payload.len());
    let frame = out.get_mut(..frame_len)?;
    let udp_len = (UDP_HEADER_LEN + payload.len()) as u16;
    let ip_len = IPV4_HEADER_LEN as u16 + udp_len;
    let (ethernet, rest) = frame.split_at_mut(ETHERNET_HEADER_LEN);
    ethernet[..6].copy_from_slice(&header.destination_mac.0);
    ethernet[6..12].copy_from_slice(&header.source_mac.0);
    ethernet[12..].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let (ip, rest) = rest.split_at_mut(IPV4_HEADER_LEN);
    let source_ip = header.source.ip().octets();
    let destination_ip = header.destination.ip().octets();
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&header.identification.to_be_bytes());
    ip[6..8].copy_from_slice(&IPV4_FLAG_DF.to_be_bytes());
    ip[8] = SENT_TTL;
    ip[9] = IP_PROTOCOL_UDP;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&source_ip);
    ip[16..20].copy_from_slice(&destination_ip);
    let ip_checksum = !fold(sum_be_words(ip, 0));
    ip[10..12].copy_from_slice(&ip_checksum.to_be_bytes());
    let (udp, padding) = rest.split_at_mut(usize::from(udp_len));
    udp[0..2].copy_from_slice(&header.source.port().to_be_bytes());
    udp[2..4].copy_from_slice(&header.destination.port().to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    udp[UDP_HEADER_LEN..].copy_from_slice(payload);
    // Pseudo-header: addresses, protocol, UDP length.
    let pseudo = sum_be_words(&source_ip, 0)
        + sum_be_words(&destination_ip, 0)
        + u64::from(IP_PROTOCOL_UDP)
        + u64::from(udp_len);
    let udp_checksum = match !fold(sum_be_words(udp, pseudo)) {
        // Zero means "no checksum" in UDP over IPv4; its ones' complement twin is sent.
        0 => 0xffff,
        sum => sum,
    };
    udp[6..8].copy_from_slice(&udp_checksum.to_be_bytes());
    padding.fill(0);
    Some(frame_len)
}

/// Writes an ARP packet in a (padded) Ethernet frame to `ethernet_destination` and returns
/// its length, [`MIN_FRAME_LEN`]; `None` if `out` is shorter.
pub fn write_arp_frame(
    out: &mut [u8],
    ethernet_destination: MacAddress,
    arp: &ArpPacket,
) -> Option<usize> {
    let frame = out.get_mut(..MIN_FRAME_LEN)?;
    let (ethernet, rest) = frame.split_at_mut(ETHERNET_HEADER_LEN);
    ethernet[..6].copy_from_slice(&ethernet_destination.0);
    ethernet[6..12].copy_from_slice(&arp.sender_mac.0);
    ethernet[12..].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let (body, padding) = rest.split_at_mut(ARP_FRAME_LEN - ETHERNET_HEADER_LEN);
    body[0..2].copy_from_slice(&ARP_HARDWARE_ETHERNET.to_be_bytes());
    body[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    body[4] = 6;
    body[5] = 4;
    let operation: u16 = match arp.operation {
        ArpOperation::Request => 1,
        ArpOperation::Reply => 2,
    };
    body[6..8].copy_from_slice(&operation.to_be_bytes());
    body[8..14].copy_from_slice(&arp.sender_mac.0);
    body[14..18].copy_from_slice(&arp.sender_ip.octets());
    body[18..24].copy_from_slice(&arp.target_mac.0);
    body[24..28].copy_from_slice(&arp.target_ip.octets());
    padding.fill(0);
    Some(MIN_FRAME_LEN)
}

/// The sum of `bytes` as big-endian 16-bit words (an odd last byte padded with zero),
/// plus `initial`, unfolded. Four bytes at a time: a u64 cannot overflow on any frame.
fn sum_be_words(bytes: &[u8], initial: u64) -> u64 {
    let mut sum = initial;
    let mut chunks = bytes.chunks_exact(4);
    for chunk in &mut chunks {
        if let Ok(word) = <[u8; 4]>::try_from(chunk) {
            sum += u64::from(u32::from_be_bytes(word));
        }
    }
    let mut rest = chunks.remainder().chunks(2);
    for pair in &mut rest {
        let high = pair.first().copied().unwrap_or(0);
        let low = pair.get(1).copied().unwrap_or(0);
        sum += u64::from(u16::from_be_bytes([high, low]));
    }
    sum
}

/// Folds a sum of words into 16 bits with end-around carry (the ones' complement sum).
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: MacAddress = MacAddress([0x02, 0, 0, 0, 0, 1]);
    const PEER: MacAddress = MacAddress([0x02, 0, 0, 0, 0, 2]);

    fn interface() -> Interface {
        Interface {
            mac: OURS,
            ipv4: Ipv4Addr::new(10, 211, 0, 1),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(10, 211, 0, 254)),
        }
    }

    fn header() -> UdpFrameHeader {
        UdpFrameHeader {
            source_mac: PEER,
            destination_mac: OURS,
            source: "10.211.0.2:40000".parse().unwrap(),
            destination: "10.211.0.1:30000".parse().unwrap(),
            identification: 7,
        }
    }

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 2048];
        let len = write_udp_frame(&mut out, &header(), payload).unwrap();
        out.truncate(len);
        out
    }

    /// An RFC 1071 checksum written the plain way (16 bits at a time), to check ours.
    fn reference_checksum(words: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in words.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn a_written_udp_frame_parses_back_with_correct_checksums() {
        let payload: Vec<u8> = (0..172u8).collect();
        let frame = udp_frame(&payload);
        assert_eq!(frame.len(), UDP_HEADERS_LEN + 172);
        let ip = &frame[14..34];
        assert_eq!(reference_checksum(ip), 0, "IPv4 header checksum");
        let udp = &frame[34..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&frame[26..34]); // source and destination addresses
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(udp);
        assert_eq!(reference_checksum(&pseudo), 0, "UDP checksum");
        assert_eq!(&frame[20..22], &[0x40, 0], "Don't Fragment");
        let parsed = parse_frame(&frame, &interface()).unwrap();
        assert_eq!(
            parsed,
            Frame::Udp(UdpDatagram {
                source_mac: PEER,
                source: header().source,
                destination: header().destination,
                payload: &payload,
            })
        );
    }

    #[test]
    fn short_frames_are_padded_and_parse_by_the_ip_length() {
        let frame = udp_frame(b"hi");
        assert_eq!(frame.len(), MIN_FRAME_LEN);
        assert!(frame[UDP_HEADERS_LEN + 2..].iter().all(|b| *b == 0));
        match parse_frame(&frame, &interface()) {
            Ok(Frame::Udp(d)) => assert_eq!(d.payload, b"hi"),
            other => panic!("{other:?}"),
        }
        assert_eq!(udp_frame(b"").len(), MIN_FRAME_LEN);
    }

    #[test]
    fn a_udp_checksum_that_sums_to_zero_is_sent_as_all_ones() {
        // Search a two-byte payload whose checksum computes to zero.
        let found = (0..=u16::MAX).find_map(|word| {
            let frame = udp_frame(&word.to_be_bytes());
            (frame[40..42] == [0xff, 0xff]).then_some(frame)
        });
        let frame = found.expect("some payload checksums to zero");
        assert!(parse_frame(&frame, &interface()).is_ok());
    }

    #[test]
    fn payloads_beyond_the_mtu_or_the_buffer_are_refused() {
        let mut out = vec![0u8; 2048];
        assert!(write_udp_frame(&mut out, &header(), &[0; MAX_UDP_PAYLOAD + 1]).is_none());
        assert_eq!(
            write_udp_frame(&mut out, &header(), &[0; MAX_UDP_PAYLOAD]),
            Some(1514)
        );
        let mut small = [0u8; 59];
        assert!(write_udp_frame(&mut small, &header(), b"x").is_none());
        assert!(write_arp_frame(&mut small, MacAddress::BROADCAST, &arp_request()).is_none());
    }

    fn arp_request() -> ArpPacket {
        ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: PEER,
            sender_ip: Ipv4Addr::new(10, 211, 0, 2),
            target_mac: MacAddress::ZERO,
            target_ip: Ipv4Addr::new(10, 211, 0, 1),
        }
    }

    #[test]
    fn arp_round_trips_broadcast_or_to_us_only() {
        let mut out = [0u8; 64];
        let len = write_arp_frame(&mut out, MacAddress::BROADCAST, &arp_request()).unwrap();
        assert_eq!(len, MIN_FRAME_LEN);
        assert_eq!(
            parse_frame(&out[..len], &interface()),
            Ok(Frame::Arp(arp_request()))
        );
        let reply = ArpPacket {
            operation: ArpOperation::Reply,
            ..arp_request()
        };
        write_arp_frame(&mut out, OURS, &reply).unwrap();
        assert_eq!(
            parse_frame(&out[..len], &interface()),
            Ok(Frame::Arp(reply))
        );
        write_arp_frame(&mut out, PEER, &reply).unwrap();
        assert_eq!(
            parse_frame(&out[..len], &interface()),
            Err(Discard::OtherDestination)
        );
        // The bare 42-byte packet (no padding) parses too.
        write_arp_frame(&mut out, OURS, &reply).unwrap();
        assert!(parse_frame(&out[..ARP_FRAME_LEN], &interface()).is_ok());
    }

    #[test]
    fn arp_for_other_hardware_or_operations_is_malformed() {
        let mut out = [0u8; 64];
        write_arp_frame(&mut out, MacAddress::BROADCAST, &arp_request()).unwrap();
        for (at, value) in [(15, 6u8), (17, 0x86), (18, 8), (19, 16), (21, 3)] {
            let mut bad = out;
            bad[at] = value;
            assert_eq!(
                parse_frame(&bad, &interface()),
                Err(Discard::Malformed),
                "byte {at}"
            );
        }
    }

    /// Rewrites the IPv4 header checksum after a test changed the header.
    fn fix_ip_checksum(frame: &mut [u8]) {
        frame[24..26].copy_from_slice(&[0, 0]);
        let checksum = reference_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    }

    #[test]
    fn each_drop_reason() {
        let good = udp_frame(b"0123456789ab");
        let iface = interface();
        let check = |frame: &[u8], want: Discard, what: &str| {
            assert_eq!(parse_frame(frame, &iface), Err(want), "{what}");
        };
        let mut f = good.clone();
        f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        check(&f, Discard::NotIpv4, "IPv6");
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        check(&f, Discard::NotIpv4, "VLAN tag");
        let mut f = good.clone();
        f[0] = 0x04;
        check(&f, Discard::OtherDestination, "another unicast MAC");
        f[..6].copy_from_slice(&[0xff; 6]);
        check(&f, Discard::OtherDestination, "IPv4 to the broadcast MAC");
        let mut f = good.clone();
        f[33] = 9;
        fix_ip_checksum(&mut f);
        check(&f, Discard::OtherDestination, "another IPv4 address");
        let mut f = good.clone();
        f[24] ^= 0x55;
        check(&f, Discard::Malformed, "bad header checksum");
        for (flags, what) in [(0x2000u16, "more fragments"), (0x0010, "a later fragment")] {
            let mut f = good.clone();
            f[20..22].copy_from_slice(&flags.to_be_bytes());
            fix_ip_checksum(&mut f);
            check(&f, Discard::Fragment, what);
        }
        let mut f = good.clone();
        f[23] = 1;
        fix_ip_checksum(&mut f);
        check(&f, Discard::NotUdp, "ICMP");
        let mut f = good.clone();
        f[14] = 0x65;
        check(&f, Discard::Malformed, "IP version 6 in an IPv4 frame");
        let mut f = good.clone();
        f[14] = 0x44;
        fix_ip_checksum(&mut f);
        check(&f, Discard::Malformed, "header length 16");
        let mut f = good.clone();
        f[16..18].copy_from_slice(&2000u16.to_be_bytes());
        fix_ip_checksum(&mut f);
        check(&f, Discard::Malformed, "IP length beyond the frame");
        let mut f = good.clone();
        f[38..40].copy_from_slice(&7u16.to_be_bytes());
        check(&f, Discard::Malformed, "UDP length below its header");
        f[38..40].copy_from_slice(&100u16.to_be_bytes());
        check(&f, Discard::Malformed, "UDP length beyond the IP packet");
        for len in [0, 5, 13, 14, 20, 33, 41] {
            check(
                &good[..len],
                Discard::Malformed,
                &format!("truncated to {len}"),
            );
        }
    }

    #[test]
    fn ip_options_are_skipped() {
        let payload = b"with options";
        let plain = udp_frame(payload);
        let mut f = plain[..34].to_vec();
        f.extend_from_slice(&[1, 1, 1, 0]); // NOP, NOP, NOP, end of options
        f.extend_from_slice(&plain[34..]);
        f[14] = 0x46;
        let total = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        fix_ip_checksum_with_len(&mut f, 24);
        match parse_frame(&f, &interface()) {
            Ok(Frame::Udp(d)) => assert_eq!(d.payload, payload),
            other => panic!("{other:?}"),
        }
    }

    fn fix_ip_checksum_with_len(frame: &mut [u8], header_len: usize) {
        frame[24..26].copy_from_slice(&[0, 0]);
        let checksum = reference_checksum(&frame[14..14 + header_len]);
        frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    }

    #[test]
    fn next_hops() {
        let iface = interface();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(iface.next_hop(ip("10.211.0.77")), Some(ip("10.211.0.77")));
        assert_eq!(iface.next_hop(ip("192.0.2.9")), Some(ip("10.211.0.254")));
        assert_eq!(iface.next_hop(ip("255.255.255.255")), None);
        assert_eq!(iface.next_hop(ip("224.0.0.1")), None);
        assert_eq!(iface.next_hop(ip("0.0.0.0")), None);
        let no_gateway = Interface {
            gateway: None,
            ..iface
        };
        assert_eq!(no_gateway.next_hop(ip("192.0.2.9")), None);
        let host_route = Interface {
            prefix_len: 32,
            ..iface
        };
        assert!(!host_route.is_on_link(ip("10.211.0.2")));
        let everything = Interface {
            prefix_len: 0,
            ..iface
        };
        assert!(everything.is_on_link(ip("192.0.2.9")));
        assert_eq!(OURS.to_string(), "02:00:00:00:00:01");
        assert!(MacAddress::BROADCAST.is_multicast() && !OURS.is_multicast());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_frame(&bytes, &interface());
        }

        #[test]
        fn arbitrary_ipv4_frames_to_us_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..120)) {
            let mut frame = udp_frame(b"")[..14].to_vec();
            frame.extend_from_slice(&tail);
            let _ = parse_frame(&frame, &interface());
        }

        #[test]
        fn any_payload_round_trips(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..MAX_UDP_PAYLOAD)) {
            let frame = udp_frame(&payload);
            match parse_frame(&frame, &interface()) {
                Ok(Frame::Udp(d)) => proptest::prop_assert_eq!(d.payload, &payload[..]),
                other => proptest::prop_assert!(false, "{:?}", other),
            }
        }
    }
}
