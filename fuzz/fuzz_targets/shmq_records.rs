//! Fuzz target: decoding shmq ring records (`shmq::Command::decode`,
//! `shmq::Event::decode`) from 96 arbitrary bytes (zero-padded when shorter).
//!
//! Beyond "never panics": a record is never both a command and an event; what
//! decodes re-encodes to a record of the same kind and session that decodes to
//! the same value, and re-encoding is a fixed point (reserved bytes zeroed);
//! a decoded DTMF digit is one of the sixteen RFC 4733 digits; a media id
//! renders as 64 hex digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmq::{Command, Event, Record, RECORD_SIZE};

fuzz_target!(|data: &[u8]| {
    let mut bytes = [0u8; RECORD_SIZE];
    let used = data.len().min(RECORD_SIZE);
    bytes[..used].copy_from_slice(&data[..used]);
    let record: Record = bytemuck::pod_read_unaligned(&bytes);

    let command = Command::decode(&record);
    let event = Event::decode(&record);
    assert!(
        command.is_err() || event.is_err(),
        "record decodes as both {command:?} and {event:?}"
    );

    if let Ok(command) = command {
        let encoded = command.encode();
        assert_eq!(
            (encoded.kind, encoded.session),
            (record.kind, record.session)
        );
        assert_eq!(encoded.flags, 0);
        assert_eq!(Command::decode(&encoded), Ok(command));
        assert_eq!(command.session().0, record.session);
        assert_eq!(Command::decode(&encoded).map(|c| c.encode()), Ok(encoded));
        if let Command::Play { media, .. } = command {
            let hex = media.to_hex();
            assert_eq!(hex.len(), 64);
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(media.file_name().contains(&hex));
        }
    }
    if let Ok(event) = event {
        let encoded = event.encode();
        assert_eq!(
            (encoded.kind, encoded.session),
            (record.kind, record.session)
        );
        assert_eq!(encoded.flags, 0);
        assert_eq!(Event::decode(&encoded), Ok(event));
        assert_eq!(event.session().0, record.session);
        assert_eq!(Event::decode(&encoded).map(|e| e.encode()), Ok(encoded));
        if let Event::Dtmf { digit, .. } = event {
            assert!(shmq::records::is_dtmf_digit(digit), "digit {digit:#04x}");
        }
    }
});
