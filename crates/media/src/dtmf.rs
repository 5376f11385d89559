//! RFC 4733 telephone-event reception: payload parsing and per-event deduplication.
//!
//! A sender reports one key press as a series of packets that all carry the RTP timestamp
//! of the event's start: several updates with a growing duration, then (usually) three
//! identical end packets. The detector reports a digit once, on the first packet it sees
//! with a new (timestamp, event) pair; updates, end packets and retransmissions of the
//! same event are duplicates.

/// One telephone-event payload block (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

/// Parses the first event block of a telephone-event payload (`None` if shorter than 4 bytes).
pub fn parse_telephone_event(payload: &[u8]) -> Option<TelephoneEvent> {
    let block = payload.get(..4)?;
    Some(TelephoneEvent {
        event: block[0],
        end: block[1] & 0x80 != 0,
        volume: block[1] & 0x3F,
        duration: u16::from_be_bytes([block[2], block[3]]),
    })
}

/// Maps an RFC 4733 DTMF event code to its ASCII digit (`0-9`, `*`, `#`, `A-D`).
pub fn event_digit(event: u8) -> Option<u8> {
    match event {
        0..=9 => Some(b'0' + event),
        10 => Some(b'*'),
        11 => Some(b'#'),
        12..=15 => Some(b'A' + (event - 12)),
        _ => None,
    }
}

/// What one telephone-event packet meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfOutcome {
    /// The first packet of a new key press: report this digit.
    NewDigit(u8),
    /// Another packet of an event already reported.
    Duplicate,
    /// Not a DTMF digit (other event codes, or a truncated payload).
    NotDigit,
}

/// Remembers the last reported event so that its other packets are not reported again.
#[derive(Debug, Default, Clone)]
pub struct DtmfDetector {
    last_event: Option<(u32, u8)>,
}

impl DtmfDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies a telephone-event packet given its RTP timestamp and payload.
    pub fn on_packet(&mut self, rtp_timestamp: u32, payload: &[u8]) -> DtmfOutcome {
        let Some(event) = parse_telephone_event(payload) else {
            return DtmfOutcome::NotDigit;
        };
        let Some(digit) = event_digit(event.event) else {
            return DtmfOutcome::NotDigit;
        };
        let key = (rtp_timestamp, event.event);
        if self.last_event == Some(key) {
            return DtmfOutcome::Duplicate;
        }
        self.last_event = Some(key);
        DtmfOutcome::NewDigit(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_mapping_covers_all_sixteen_codes() {
        let all: Vec<u8> = (0..16).map(|e| event_digit(e).unwrap()).collect();
        assert_eq!(all, b"0123456789*#ABCD");
        assert_eq!(event_digit(16), None);
        assert_eq!(event_digit(255), None);
    }

    #[test]
    fn parses_event_block() {
        let ev = parse_telephone_event(&[0x05, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(parse_telephone_event(&[1, 2, 3]), None);
    }

    #[test]
    fn one_digit_per_event_even_with_repeated_end_packets() {
        let mut det = DtmfDetector::new();
        let ts = 0x3E0;
        let outcomes: Vec<DtmfOutcome> = [
            [1u8, 0x0A, 0x00, 0xA0],
            [1, 0x0A, 0x01, 0x40],
            [1, 0x8A, 0x03, 0x20],
            [1, 0x8A, 0x03, 0x20],
            [1, 0x8A, 0x03, 0x20],
        ]
        .iter()
        .map(|p| det.on_packet(ts, p))
        .collect();
        assert_eq!(outcomes[0], DtmfOutcome::NewDigit(b'1'));
        assert!(outcomes[1..].iter().all(|o| *o == DtmfOutcome::Duplicate));
        // The same digit pressed again is a new event: new timestamp.
        assert_eq!(
            det.on_packet(ts + 1600, &[1, 0x0A, 0, 0xA0]),
            DtmfOutcome::NewDigit(b'1')
        );
        assert_eq!(
            det.on_packet(ts + 3200, &[11, 0x0A, 0, 0xA0]),
            DtmfOutcome::NewDigit(b'#')
        );
        assert_eq!(
            det.on_packet(ts + 4800, &[16, 0x0A, 0, 0xA0]),
            DtmfOutcome::NotDigit
        );
    }
}
