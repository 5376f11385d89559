//! Fuzz target: TwiML documents (`twiml::parse_voice`, `parse_messaging`) and
//! the URL helpers (`resolve_url`, `expand_template`) on arbitrary text.
//!
//! The whole input is the document. For the URL helpers its first line is the
//! document URL, its second a reference found in it, and the whole text a
//! template whose parameters are the first two lines.
//!
//! Beyond "never panics": `parse_voice` agrees with `parse_voice_with_warnings`,
//! well-formedness failures (12100) are the same for voice and messaging, every
//! error carries a Twilio code; a resolved URL is an absolute http(s) URL with a
//! host that resolves to itself; template expansion of a single `{Name}` is the
//! parameter percent-encoded with only RFC 3986 unreserved characters and
//! decodes back to the value, and a template without `{` comes back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twiml::{TwimlError, CODE_DOCUMENT_PARSE_FAILURE, CODE_INVALID_URL, CODE_SCHEMA_VALIDATION};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let voice = twiml::parse_voice_with_warnings(&text);
    assert_eq!(
        twiml::parse_voice(&text),
        voice.clone().map(|(response, _)| response)
    );
    let messaging = twiml::parse_messaging(&text);
    assert_eq!(
        matches!(voice, Err(TwimlError::Parse { .. })),
        matches!(messaging, Err(TwimlError::Parse { .. })),
        "voice {voice:?} vs messaging {messaging:?}"
    );
    for error in [voice.err(), messaging.err()].into_iter().flatten() {
        assert!(matches!(
            error.code(),
            CODE_DOCUMENT_PARSE_FAILURE | CODE_SCHEMA_VALIDATION | CODE_INVALID_URL
        ));
    }
    let _ = twiml::classify_content_type(&text);

    let mut lines = text.split('\n');
    let base = lines.next().unwrap_or_default();
    let reference = lines.next().unwrap_or_default();
    if let Ok(resolved) = twiml::resolve_url(base, reference) {
        let url = url::Url::parse(&resolved)
            .unwrap_or_else(|error| panic!("resolved {resolved:?} is not a URL: {error}"));
        assert!(
            matches!(url.scheme(), "http" | "https") && url.has_host(),
            "{resolved:?}"
        );
        assert_eq!(twiml::resolve_url(base, &resolved).as_ref(), Ok(&resolved));
        assert_eq!(twiml::resolve_url(&resolved, "").map(|_| ()), Ok(()));
    }

    let params = vec![
        ("Digits".to_owned(), base.to_owned()),
        ("From".to_owned(), reference.to_owned()),
    ];
    let expanded = twiml::expand_template(&text, &params);
    if !text.contains('{') {
        assert_eq!(expanded, text);
    }
    let encoded = twiml::expand_template("{Digits}", &params);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
        "{encoded:?}"
    );
    assert_eq!(percent_decode(&encoded), base.as_bytes());
});

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .expect("two hex digits after %");
            let hex = std::str::from_utf8(hex).expect("ASCII hex");
            out.push(u8::from_str_radix(hex, 16).expect("hex digits"));
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    out
}
