//! Fuzz target: `sip::message::parse` on arbitrary datagrams.
//!
//! Beyond "never panics": a message that parses must serialize (`to_bytes`) to
//! bytes that parse again to the same message (method or status, URI, every
//! header except Content-Length, which the serializer rewrites, and the body),
//! and the typed views the endpoint copies into responses (Request-URI, Via,
//! From/To/Contact) must survive their own `Display` → `parse` round trip.
//! `recover_request_headers` (the 400-salvage path) runs on every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::message::{self, Header, NameAddr, SipMessage, Uri, Via};

fuzz_target!(|data: &[u8]| {
    if let Some(recovered) = message::recover_request_headers(data) {
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            assert!(
                recovered.headers.get(name).is_some(),
                "recovered without {name}"
            );
        }
    }
    let Ok(parsed) = message::parse(data) else {
        return;
    };
    let bytes = parsed.to_bytes();
    let reparsed = match message::parse(&bytes) {
        Ok(reparsed) => reparsed,
        Err(error) => panic!(
            "serialized message does not parse again ({error}):\n{}",
            String::from_utf8_lossy(&bytes)
        ),
    };
    match (&parsed, &reparsed) {
        (SipMessage::Request(a), SipMessage::Request(b)) => {
            assert_eq!(a.method, b.method);
            assert_eq!(a.uri, b.uri);
            assert_eq!(a.request_uri, b.request_uri);
            check_uri_round_trip(&a.request_uri);
        }
        (SipMessage::Response(a), SipMessage::Response(b)) => {
            assert_eq!(a.status, b.status);
            assert_eq!(a.reason, b.reason);
        }
        _ => panic!("request/response kind changed by serialization"),
    }
    assert_eq!(
        without_content_length(&parsed),
        without_content_length(&reparsed)
    );
    assert_eq!(reparsed.headers().get_all("Content-Length").count(), 1);
    assert_eq!(parsed.body(), reparsed.body());

    let headers = parsed.headers();
    // Mandatory headers were validated by parse.
    let mut via = headers.top_via().expect("validated Via");
    check_via_round_trip(&via);
    for source in ["192.0.2.1:5060", "[2001:db8::1]:5062"] {
        let source = source.parse().expect("literal address");
        let _ = via.response_destination(source);
        via.stamp_source(source);
        check_via_round_trip(&via);
    }
    check_name_addr_round_trip(&headers.from().expect("validated From"));
    check_name_addr_round_trip(&headers.to().expect("validated To"));
    if let Some(contact) = headers.contact() {
        check_name_addr_round_trip(&contact);
    }
    let _ = headers.vias();
    let _ = headers.record_route();
    let _ = headers.max_forwards();
    let _ = headers.content_type();
    let _ = headers.list_elements("Supported");
});

fn without_content_length(message: &SipMessage) -> Vec<&Header> {
    message
        .headers()
        .iter()
        .filter(|h| !h.name.eq_ignore_ascii_case("Content-Length"))
        .collect()
}

fn check_uri_round_trip(uri: &Uri) {
    let text = uri.to_string();
    match Uri::parse(&text) {
        Ok(again) => assert_eq!(&again, uri, "URI changed through {text:?}"),
        Err(error) => panic!("rendered URI {text:?} does not parse: {error}"),
    }
}

fn check_via_round_trip(via: &Via) {
    let text = via.to_string();
    match Via::parse(&text) {
        Ok(again) => assert_eq!(&again, via, "Via changed through {text:?}"),
        Err(error) => panic!("rendered Via {text:?} does not parse: {error}"),
    }
}

fn check_name_addr_round_trip(name_addr: &NameAddr) {
    let text = name_addr.to_string();
    match NameAddr::parse(&text) {
        Ok(again) => assert_eq!(&again, name_addr, "name-addr changed through {text:?}"),
        Err(error) => panic!("rendered name-addr {text:?} does not parse: {error}"),
    }
}
