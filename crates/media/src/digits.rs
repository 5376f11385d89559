//! RFC 4733 telephone-event sending: the packet-by-packet schedule of a `SendDigits` string.
//!
//! A [`DigitSender`] is a pure state machine the play queue advances once per packet
//! (every ptime). Per digit it yields an event of [`TONE_SAMPLES`] (100 ms): packets that all
//! carry the RTP timestamp of the event's first packet, the first one with the marker bit,
//! the duration growing by one packet's samples up to 100 ms; then [`END_PACKETS`] end
//! packets (E bit, final duration); then [`INTER_DIGIT_SAMPLES`] (50 ms) of audio silence.
//! `w` is [`PAUSE_SAMPLES`] (500 ms) of silence. Silences are rounded up to whole packets
//! so every event starts on a packet boundary. Times are in 8 kHz samples, so a ptime change
//! between packets takes effect at the next packet.

use crate::session::SAMPLES_PER_MS;

/// Length of one digit's event: 100 ms.
pub const TONE_SAMPLES: u32 = 100 * SAMPLES_PER_MS;
/// Silence after each digit: 50 ms.
pub const INTER_DIGIT_SAMPLES: u32 = 50 * SAMPLES_PER_MS;
/// Silence of a `w`: 500 ms.
pub const PAUSE_SAMPLES: u32 = 500 * SAMPLES_PER_MS;
/// End packets sent per event (RFC 4733 §2.5.1.4 recommends three).
pub const END_PACKETS: u8 = 3;
/// The volume field of the events we send (RFC 4733: 0 to -63 dBm0, here -10 dBm0).
pub const EVENT_VOLUME: u8 = 10;
/// Length of a telephone-event payload (one event block).
pub const TELEPHONE_EVENT_LEN: usize = 4;

/// The RFC 4733 event code of an ASCII DTMF digit (`0-9`, `*`, `#`, `A-D`).
pub fn digit_event(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'*' => Some(10),
        b'#' => Some(11),
        b'A'..=b'D' => Some(12 + (digit - b'A')),
        _ => None,
    }
}

/// One telephone-event packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    pub event: u8,
    pub end: bool,
    /// Samples since the event's start, this packet included.
    pub duration: u16,
    /// The RTP timestamp of the event's first packet (every packet of the event carries it).
    pub timestamp: u32,
    /// The first packet of the event (RTP marker bit).
    pub marker: bool,
}

impl EventPacket {
    /// Writes the 4-byte payload block (RFC 4733 §2.3); `None` if `out` is too short.
    pub fn write_payload(&self, out: &mut [u8]) -> Option<usize> {
        let block = out.get_mut(..TELEPHONE_EVENT_LEN)?;
        block[0] = self.event;
        block[1] = (u8::from(self.end) << 7) | EVENT_VOLUME;
        block[2..4].copy_from_slice(&self.duration.to_be_bytes());
        Some(TELEPHONE_EVENT_LEN)
    }
}

/// What to send for one packet of a digit string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitPacket {
    Event(EventPacket),
    /// An audio packet of silence.
    Silence,
}

/// An event being sent: its code, RTP timestamp and duration so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveEvent {
    pub event: u8,
    pub timestamp: u32,
    pub duration: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between characters: take the next one.
    Next,
    /// The event's update packets (`E` clear).
    Tone(ActiveEvent),
    /// End packets still to send.
    End(ActiveEvent, u8),
    /// Silence samples still to send.
    Gap(u32),
}

/// The packet schedule of one digit string.
#[derive(Debug, Clone)]
pub struct DigitSender {
    digits: [u8; shmq::MAX_SEND_DIGITS],
    len: usize,
    next: usize,
    phase: Phase,
}

/// A digits string longer than [`shmq::MAX_SEND_DIGITS`] or with a character other than
/// `0-9 * # A-D w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid digits to send")]
pub struct BadDigits;

impl DigitSender {
    /// A sender for `digits`, checked like the shmq record (`0-9 * # A-D w`, at most 32).
    pub fn new(digits: &[u8]) -> Result<DigitSender, BadDigits> {
        if digits.len() > shmq::MAX_SEND_DIGITS
            || !digits.iter().all(|c| shmq::records::is_send_digit(*c))
        {
            return Err(BadDigits);
        }
        let mut packed = [0u8; shmq::MAX_SEND_DIGITS];
        for (slot, c) in packed.iter_mut().zip(digits) {
            *slot = *c;
        }
        Ok(DigitSender {
            digits: packed,
            len: digits.len(),
            next: 0,
            phase: Phase::Next,
        })
    }

    /// Whether every packet has been sent.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Next && self.next >= self.len
    }

    /// The event on the wire right now (started, its end packets not all sent), if any:
    /// what an interrupted sender should still end.
    pub fn active_event(&self) -> Option<ActiveEvent> {
        match self.phase {
            Phase::Tone(active) | Phase::End(active, _) => Some(active),
            Phase::Next | Phase::Gap(_) => None,
        }
    }

    /// The next packet, given this packet's samples and the RTP timestamp it would carry
    /// as audio. `None` once finished.
    pub fn next_packet(&mut self, samples_per_packet: u32, timestamp: u32) -> Option<DigitPacket> {
        let samples_per_packet = samples_per_packet.max(1);
        if self.phase == Phase::Next {
            if self.next >= self.len {
                return None;
            }
            let c = *self.digits.get(self.next)?;
            self.next += 1;
            self.phase = match digit_event(c) {
                Some(event) => Phase::Tone(ActiveEvent {
                    event,
                    timestamp,
                    duration: 0,
                }),
                None => Phase::Gap(PAUSE_SAMPLES),
            };
        }
        match self.phase {
            Phase::Next => None,
            Phase::Tone(mut active) => {
                let marker = active.duration == 0;
                let duration = (u32::from(active.duration) + samples_per_packet).min(TONE_SAMPLES);
                // TONE_SAMPLES fits in u16.
                active.duration = duration as u16;
                self.phase = if duration >= TONE_SAMPLES {
                    Phase::End(active, END_PACKETS)
                } else {
                    Phase::Tone(active)
                };
                Some(DigitPacket::Event(EventPacket {
                    event: active.event,
                    end: false,
                    duration: active.duration,
                    timestamp: active.timestamp,
                    marker,
                }))
            }
            Phase::End(active, left) => {
                self.phase = if left <= 1 {
                    Phase::Gap(INTER_DIGIT_SAMPLES)
                } else {
                    Phase::End(active, left - 1)
                };
                Some(DigitPacket::Event(EventPacket {
                    event: active.event,
                    end: true,
                    duration: active.duration,
                    timestamp: active.timestamp,
                    marker: false,
                }))
            }
            Phase::Gap(samples) => {
                let left = samples.saturating_sub(samples_per_packet);
                self.phase = if left == 0 {
                    Phase::Next
                } else {
                    Phase::Gap(left)
                };
                Some(DigitPacket::Silence)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::{event_digit, parse_telephone_event};

    fn run(digits: &[u8], spp: u32) -> Vec<(u32, DigitPacket)> {
        let mut sender = DigitSender::new(digits).unwrap();
        let mut ts = 1000u32;
        let mut out = Vec::new();
        while let Some(p) = sender.next_packet(spp, ts) {
            out.push((ts, p));
            ts = ts.wrapping_add(spp);
            assert!(out.len() < 10_000);
        }
        assert!(sender.is_finished());
        out
    }

    #[test]
    fn event_codes_round_trip_with_the_detector_mapping() {
        for c in b"0123456789*#ABCD" {
            assert_eq!(event_digit(digit_event(*c).unwrap()), Some(*c));
        }
        assert_eq!(digit_event(b'w'), None);
        assert_eq!(digit_event(b'a'), None);
    }

    #[test]
    fn one_digit_at_20ms() {
        let packets = run(b"5", 160);
        // 5 updates, 3 end packets, 3 silence packets (50 ms rounded up to 60).
        assert_eq!(packets.len(), 11);
        for (i, (_, p)) in packets[..8].iter().enumerate() {
            let DigitPacket::Event(e) = p else {
                panic!("packet {i} is not an event");
            };
            assert_eq!(e.event, 5);
            assert_eq!(
                e.timestamp, 1000,
                "every packet carries the start timestamp"
            );
            assert_eq!(e.marker, i == 0);
            assert_eq!(e.end, i >= 5);
            assert_eq!(u32::from(e.duration), (160 * (i as u32 + 1)).min(800));
        }
        assert!(packets[8..].iter().all(|(_, p)| *p == DigitPacket::Silence));
    }

    #[test]
    fn pause_and_uneven_ptime() {
        let packets = run(b"w", 160);
        assert_eq!(packets.len(), 25);
        assert!(packets.iter().all(|(_, p)| *p == DigitPacket::Silence));
        // 30 ms: durations 240, 480, 720, 800 (capped), then 3 ends at 800.
        let packets = run(b"#", 240);
        let durations: Vec<(u16, bool)> = packets
            .iter()
            .filter_map(|(_, p)| match p {
                DigitPacket::Event(e) => Some((e.duration, e.end)),
                DigitPacket::Silence => None,
            })
            .collect();
        assert_eq!(
            durations,
            [
                (240, false),
                (480, false),
                (720, false),
                (800, false),
                (800, true),
                (800, true),
                (800, true)
            ]
        );
        assert_eq!(packets.len(), 7 + 2, "50 ms at 30 ms ptime: 2 packets");
    }

    #[test]
    fn payload_block_parses_back() {
        let packet = EventPacket {
            event: 11,
            end: true,
            duration: 800,
            timestamp: 0,
            marker: false,
        };
        let mut buf = [0u8; 4];
        assert_eq!(packet.write_payload(&mut buf), Some(4));
        let parsed = parse_telephone_event(&buf).unwrap();
        assert_eq!(
            (parsed.event, parsed.end, parsed.volume, parsed.duration),
            (11, true, 10, 800)
        );
        assert_eq!(packet.write_payload(&mut [0u8; 3]), None);
    }

    #[test]
    fn empty_and_invalid_strings() {
        assert!(run(b"", 160).is_empty());
        assert_eq!(DigitSender::new(b"12x").unwrap_err(), BadDigits);
        assert_eq!(DigitSender::new(&[b'1'; 33]).unwrap_err(), BadDigits);
        let mut sender = DigitSender::new(b"1").unwrap();
        assert_eq!(sender.active_event(), None);
        sender.next_packet(160, 7);
        assert_eq!(
            sender.active_event(),
            Some(ActiveEvent {
                event: 1,
                timestamp: 7,
                duration: 160
            })
        );
    }
}
