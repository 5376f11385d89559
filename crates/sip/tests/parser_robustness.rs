//! Parser robustness: RFC 4475-style torture cases, and property tests that
//! feed arbitrary and mutated datagrams to the parser and the endpoint,
//! which must never panic and must keep producing valid SIP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sip::endpoint::{Endpoint, EndpointConfig, SipEvent};
use sip::message::{parse, recover_request_headers, Method, ParseError, SipMessage};

const BASE_INVITE: &str = "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
    Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKkdjuw\r\n\
    Max-Forwards: 70\r\n\
    To: <sip:vivekg@chair-dnrc.example.com>\r\n\
    From: \"J Rosenberg \\\\\\\"\" <sip:jdrosen@example.com>;tag=98asjd8\r\n\
    Call-ID: 0ha0isndaksdj@192.0.2.1\r\n\
    CSeq: 8 INVITE\r\n\
    Contact: <sip:jdrosen@192.0.2.2:5060>\r\n\
    Content-Type: application/sdp\r\n\
    Content-Length: 10\r\n\
    \r\n\
    v=0\r\no=x\r\n";

fn request(text: &[u8]) -> sip::message::Request {
    match parse(text) {
        Ok(SipMessage::Request(request)) => request,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// RFC 4475 §3.1.1.1 "wsinv": folding, odd whitespace, unusual spacing.
#[test]
fn folded_headers_and_odd_whitespace() {
    let text = "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
        TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
        from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
        MaX-fOrWaRdS: 0068\r\n\
        Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
        Content-Length   : 0\r\n\
        cseq: 0009\r\n  INVITE\r\n\
        Via  : SIP  /   2.0\r\n  /UDP\r\n    192.0.2.2;rport;branch=390skdjuw\r\n\
        s :\r\n\
        NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
        UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\
        Content-Type: application/sdp\r\n\
        Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n\
        v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n\
        m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33\r\n\
        \r\n";
    let request = request(text.as_bytes());
    let h = &request.headers;
    assert_eq!(request.method, Method::Invite);
    assert_eq!(h.to().unwrap().tag(), Some("1918181833n"));
    let from = h.from().unwrap();
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(from.display_name.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(h.max_forwards(), Some(68));
    assert_eq!(h.cseq().unwrap().seq, 9);
    let via = h.top_via().unwrap();
    assert_eq!(via.transport, "UDP");
    assert_eq!(via.host, "192.0.2.2");
    assert_eq!(via.branch(), Some("390skdjuw"));
    assert_eq!(h.vias().len(), 3, "two Via lines, one holding two elements");
    assert_eq!(h.get("Subject"), Some(""));
    assert_eq!(
        h.get("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(h.get("unknownheaderwithunusualvalue"), Some(";;,,;;,;"));
    let contact = h.contact().unwrap();
    assert_eq!(contact.uri, "sip:jdrosen@example.com");
    assert_eq!(contact.param("newparam"), Some(Some("newvalue")));
    assert_eq!(contact.param("q"), Some(Some("0.33")));
    assert!(request.body.is_empty());
}

/// Compact forms for every mandatory header.
#[test]
fn compact_header_forms() {
    let text = "OPTIONS sip:user@example.com SIP/2.0\r\n\
        v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKcompact\r\n\
        f: <sip:caller@example.net>;tag=abc\r\n\
        t: sip:user@example.com\r\n\
        i: compact-1@192.0.2.1\r\n\
        CSeq: 3 OPTIONS\r\n\
        m: <sip:caller@192.0.2.1>\r\n\
        k: timer\r\n\
        o: presence\r\n\
        e: gzip\r\n\
        c: text/plain\r\n\
        l: 5\r\n\
        \r\n\
        hello";
    let request = request(text.as_bytes());
    let h = &request.headers;
    assert_eq!(h.call_id(), Some("compact-1@192.0.2.1"));
    assert_eq!(h.get("Call-ID"), h.get("i"));
    assert_eq!(h.from().unwrap().tag(), Some("abc"));
    assert_eq!(h.to().unwrap().uri, "sip:user@example.com");
    assert_eq!(h.get("Supported"), Some("timer"));
    assert_eq!(h.get("Event"), Some("presence"));
    assert_eq!(h.get("Content-Encoding"), Some("gzip"));
    assert_eq!(h.content_type(), Some("text/plain"));
    assert_eq!(request.body, b"hello");
    let names: Vec<&str> = h.iter().map(|header| header.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "Via",
            "From",
            "To",
            "Call-ID",
            "CSeq",
            "Contact",
            "Supported",
            "Event",
            "Content-Encoding",
            "Content-Type",
            "Content-Length"
        ]
    );
}

/// RFC 4475 §3.1.1.2 "intmeth": an unusual but legal method token.
#[test]
fn unusual_method_token() {
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    let text = format!(
        "{method} sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n\
         Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\r\n\
         To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\r\n\
         From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\\\"\";tag=_token~1'+`*%!-.\r\n\
         Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}}{{\r\n\
         CSeq: 139122385 {method}\r\n\
         Max-Forwards: 255\r\n\
         extensionHeader-!.%*+_`'~: \u{EF}\u{BB}\u{BF}\u{5927}\u{90FD}\u{9E}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let request = request(text.as_bytes());
    assert_eq!(request.method, Method::Other(method.to_owned()));
    assert_eq!(request.headers.cseq().unwrap().method, request.method);
    assert_eq!(
        request.headers.from().unwrap().tag(),
        Some("_token~1'+`*%!-.")
    );
}

/// Bytes that are not UTF-8 in a header value are replaced, not fatal.
#[test]
fn non_utf8_header_values() {
    let mut text = BASE_INVITE.as_bytes().to_vec();
    let at = text.windows(11).position(|w| w == b"J Rosenberg").unwrap();
    text.splice(at..at + 1, [0xff, 0xfe, 0xc3]);
    let request = request(&text);
    let display = request.headers.from().unwrap().display_name.unwrap();
    assert!(display.contains('\u{FFFD}'), "{display:?}");

    let mut endpoint = Endpoint::new(EndpointConfig::new("192.0.2.9:5060".parse().unwrap(), "t"));
    endpoint.handle_datagram(Instant::now(), "192.0.2.2:5060".parse().unwrap(), &text);
    let sent = endpoint.poll_transmit().expect("100 Trying");
    assert!(matches!(parse(&sent.data), Ok(SipMessage::Response(r)) if r.status == 100));
    assert!(matches!(
        endpoint.poll_event(),
        Some(SipEvent::IncomingCall(_))
    ));

    // Non-UTF-8 in the start line is fatal.
    let broken = BASE_INVITE.replacen("vivekg", "viv\u{0}", 1).into_bytes();
    let mut broken = broken;
    broken[10] = 0xff;
    assert_eq!(parse(&broken), Err(ParseError::InvalidStartLine));
}

#[test]
fn bad_content_lengths() {
    let with_length = |value: &str| BASE_INVITE.replace("Content-Length: 10", value);
    assert!(matches!(
        parse(with_length("Content-Length: 9999").as_bytes()),
        Err(ParseError::ContentLengthTooLarge {
            declared: 9999,
            available: 10
        })
    ));
    for bad in [
        "Content-Length: -10",
        "Content-Length: ten",
        "Content-Length: +10",
        "Content-Length: 99999999999999999999",
        "Content-Length: 10\r\nl: 12",
    ] {
        assert_eq!(
            parse(with_length(bad).as_bytes()),
            Err(ParseError::InvalidContentLength),
            "{bad}"
        );
    }
    // Shorter than the datagram: the body is cut.
    let short = request(with_length("Content-Length: 3").as_bytes());
    assert_eq!(short.body, b"v=0");
    // Agreeing duplicates are fine.
    let duplicate = request(with_length("Content-Length: 10\r\nl: 10").as_bytes());
    assert_eq!(duplicate.body.len(), 10);
    // Missing on UDP: the rest of the datagram.
    let missing = request(with_length("X-No-Length: 1").as_bytes());
    assert_eq!(missing.body, b"v=0\r\no=x\r\n");
}

#[test]
fn missing_mandatory_headers() {
    for (line, name) in [
        (
            "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKkdjuw\r\n",
            "Via",
        ),
        ("To: <sip:vivekg@chair-dnrc.example.com>\r\n", "To"),
        ("Call-ID: 0ha0isndaksdj@192.0.2.1\r\n", "Call-ID"),
        ("CSeq: 8 INVITE\r\n", "CSeq"),
    ] {
        let text = BASE_INVITE.replace(line, "");
        assert_eq!(parse(text.as_bytes()), Err(ParseError::MissingHeader(name)));
        assert_eq!(recover_request_headers(text.as_bytes()), None);
    }
    let no_from = BASE_INVITE.replace(
        "From: \"J Rosenberg \\\\\\\"\" <sip:jdrosen@example.com>;tag=98asjd8\r\n",
        "",
    );
    assert_eq!(
        parse(no_from.as_bytes()),
        Err(ParseError::MissingHeader("From"))
    );
    // Max-Forwards and Contact are not fatal.
    let lean = BASE_INVITE
        .replace("Max-Forwards: 70\r\n", "")
        .replace("Contact: <sip:jdrosen@192.0.2.2:5060>\r\n", "");
    assert!(parse(lean.as_bytes()).is_ok());
}

#[test]
fn structural_errors() {
    let cases: &[(&str, ParseError)] = &[
        // RFC 4475 "ltgtruri": Request-URI in angle brackets.
        (
            "INVITE <sip:user@example.com> SIP/2.0",
            ParseError::InvalidUri,
        ),
        // "lwsruri": whitespace inside the Request-URI.
        (
            "INVITE sip:user@example.com; lr SIP/2.0",
            ParseError::InvalidStartLine,
        ),
        // "badvers".
        (
            "INVITE sip:t.watson@example.org SIP/7.0",
            ParseError::UnsupportedVersion,
        ),
        (
            "INVITE sip:t.watson@example.org",
            ParseError::InvalidStartLine,
        ),
        (
            "INV ITE sip:t.watson@example.org SIP/2.0",
            ParseError::InvalidStartLine,
        ),
    ];
    for (start_line, expected) in cases {
        let text = format!(
            "{start_line}\r\n{}",
            BASE_INVITE.split_once("\r\n").unwrap().1
        );
        assert_eq!(
            parse(text.as_bytes()).as_ref().err(),
            Some(expected),
            "{start_line}"
        );
    }
    // "mismatch01": CSeq method differs from the request method.
    let mismatch = BASE_INVITE.replace("CSeq: 8 INVITE", "CSeq: 8 OPTIONS");
    assert_eq!(
        parse(mismatch.as_bytes()),
        Err(ParseError::CSeqMethodMismatch)
    );
    // "scalar02"-like overflow.
    let overflow = BASE_INVITE.replace("CSeq: 8 INVITE", "CSeq: 36893488147419103232 INVITE");
    assert_eq!(
        parse(overflow.as_bytes()),
        Err(ParseError::InvalidHeader("CSeq"))
    );
    // A header line without a colon, or a continuation with nothing before it.
    let no_colon = BASE_INVITE.replace("Max-Forwards: 70", "Max-Forwards 70");
    assert_eq!(
        parse(no_colon.as_bytes()),
        Err(ParseError::InvalidHeaderLine)
    );
    let bad_from = BASE_INVITE.replace(
        "<sip:jdrosen@example.com>;tag",
        "<sip:jdrosen@example.com;tag",
    );
    assert_eq!(
        parse(bad_from.as_bytes()),
        Err(ParseError::InvalidHeader("From"))
    );
}

#[test]
fn leading_crlf_bare_lf_and_unknown_scheme() {
    let with_crlf = format!("\r\n\r\n{BASE_INVITE}");
    assert!(parse(with_crlf.as_bytes()).is_ok());
    let bare_lf = BASE_INVITE
        .replace("\r\n", "\n")
        .replace("Content-Length: 10", "Content-Length: 8");
    let request = request(bare_lf.as_bytes());
    assert_eq!(request.body, b"v=0\no=x\n");
    // "novelsc": an unknown scheme parses; the endpoint answers 416.
    let novel = BASE_INVITE.replacen(
        "sip:vivekg@chair-dnrc.example.com;unknownparam",
        "soap.beep://192.0.2.103:3002",
        1,
    );
    let request = self::request(novel.as_bytes());
    assert_eq!(request.request_uri.scheme, "soap.beep");
    let mut endpoint = Endpoint::new(EndpointConfig::new("192.0.2.9:5060".parse().unwrap(), "t"));
    endpoint.handle_datagram(
        Instant::now(),
        "192.0.2.2:5060".parse().unwrap(),
        novel.as_bytes(),
    );
    let sent = endpoint.poll_transmit().unwrap();
    assert!(matches!(parse(&sent.data), Ok(SipMessage::Response(r)) if r.status == 416));
}

#[test]
fn responses_with_odd_reason_phrases() {
    let text = "SIP/2.0 200 = 2**3 * 5**2 \u{43d}\u{43e} \u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{43d}\u{43e}\u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{442}\u{44c}\r\n\
        Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n\
        Call-ID: unreason.1234ksdfak3j2erwedfsASdf\r\n\
        CSeq: 35 INVITE\r\n\
        From: sip:user@example.com;tag=11141343\r\n\
        To: sip:user@example.edu;tag=2229\r\n\
        Content-Length: 0\r\n\r\n";
    let SipMessage::Response(response) = parse(text.as_bytes()).unwrap() else {
        panic!("expected a response");
    };
    assert_eq!(response.status, 200);
    assert!(response.reason.starts_with("= 2**3"));
    for bad in [
        "SIP/2.0 2000 OK",
        "SIP/2.0 099 Low",
        "SIP/2.0 abc OK",
        "SIP/2.0 700 High",
    ] {
        let text = text.replacen(text.split("\r\n").next().unwrap(), bad, 1);
        assert_eq!(
            parse(text.as_bytes()),
            Err(ParseError::InvalidStartLine),
            "{bad}"
        );
    }
}

// ---- property tests --------------------------------------------------------

const SEEDS: &[&str] = &[
    BASE_INVITE,
    "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
     To: <sip:b@h>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    "BYE sip:switchboard@192.0.2.9 SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.2;rport;branch=z9hG4bKb\r\n\
     f: <sip:a@h>;tag=1\r\nt: <sip:b@h>;tag=2\r\ni: x\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n",
    "CANCEL sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
     Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKkdjuw\r\n\
     To: <sip:vivekg@chair-dnrc.example.com>\r\n\
     From: <sip:jdrosen@example.com>;tag=98asjd8\r\nCall-ID: 0ha0isndaksdj@192.0.2.1\r\n\
     CSeq: 8 CANCEL\r\n\r\n",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, u8),
    Delete(usize, usize),
    Replace(usize, u8),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        any::<u8>(),
        Just(b'\r'),
        Just(b'\n'),
        Just(b' '),
        Just(b':'),
        Just(b';'),
        Just(b','),
        Just(b'<'),
        Just(b'>'),
        Just(b'"'),
        Just(b'\\'),
        Just(b'@'),
        Just(b'['),
        Just(0xff),
    ];
    prop_oneof![
        (any::<usize>(), interesting.clone()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), interesting).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..32).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
    ]
}

fn apply(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = data.len().max(1);
        match *mutation {
            Mutation::Insert(at, byte) => data.insert(at % (data.len() + 1), byte),
            Mutation::Delete(at, n) => {
                let start = at % len;
                let end = (start + n).min(data.len());
                if start < end {
                    data.drain(start..end);
                }
            }
            Mutation::Replace(at, byte) => {
                if let Some(slot) = data.get_mut(at % len) {
                    *slot = byte;
                }
            }
            Mutation::Truncate(at) => data.truncate(at % len),
            Mutation::Duplicate(at, n) => {
                let start = at % len;
                let end = (start + n).min(data.len());
                if start < end {
                    let copy = data[start..end].to_vec();
                    data.splice(end..end, copy);
                }
            }
        }
    }
    data
}

/// A parsed message, with Content-Length (rewritten by the serializer) removed.
fn comparable(message: &SipMessage) -> (String, Vec<(String, String)>, Vec<u8>) {
    let start = match message {
        SipMessage::Request(r) => format!("{} {}", r.method, r.uri),
        SipMessage::Response(r) => format!("{} {}", r.status, r.reason),
    };
    let headers = message
        .headers()
        .iter()
        .filter(|h| !h.name.eq_ignore_ascii_case("Content-Length"))
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    (start, headers, message.body().to_vec())
}

fn check_datagram(endpoint: &mut Endpoint, now: Instant, data: &[u8]) {
    let parsed = parse(data);
    let _ = recover_request_headers(data);
    if let Ok(message) = &parsed {
        let reparsed = parse(&message.to_bytes()).expect("a serialized message parses");
        assert_eq!(comparable(&reparsed), comparable(message));
    }
    let from: SocketAddr = "192.0.2.2:5060".parse().unwrap();
    endpoint.handle_datagram(now, from, data);
    while let Some(transmit) = endpoint.poll_transmit() {
        if parsed.is_ok() {
            parse(&transmit.data).expect("responses to valid requests are valid SIP");
        }
    }
    while endpoint.poll_event().is_some() {}
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let mut endpoint = Endpoint::new(EndpointConfig::new("192.0.2.9:5060".parse().unwrap(), "t"));
        check_datagram(&mut endpoint, Instant::now(), &data);
    }

    #[test]
    fn mutated_messages_never_panic(
        seeds in proptest::collection::vec((0..SEEDS.len(), proptest::collection::vec(mutation(), 0..6)), 1..8),
        answer_first in any::<bool>(),
    ) {
        let mut endpoint = Endpoint::new(EndpointConfig::new("192.0.2.9:5060".parse().unwrap(), "t"));
        let start = Instant::now();
        for (step, (seed, mutations)) in seeds.iter().enumerate() {
            let now = start + Duration::from_millis(700 * step as u64);
            endpoint.handle_timeout(now);
            let data = apply(SEEDS[*seed].as_bytes().to_vec(), mutations);
            check_datagram(&mut endpoint, now, &data);
            // Drive the app side too, on whatever legs exist.
            for leg in 1..=step as u64 + 1 {
                let leg = sip::endpoint::LegId(leg);
                if answer_first {
                    let _ = endpoint.answer(now, leg, b"v=0\r\n".to_vec());
                    let _ = endpoint.hangup(now, leg);
                } else {
                    let _ = endpoint.reject(now, leg, 486);
                }
            }
            while endpoint.poll_transmit().is_some() {}
        }
        let horizon = start + Duration::from_secs(300);
        for _ in 0..10_000 {
            match endpoint.poll_timeout() {
                Some(at) if at <= horizon => endpoint.handle_timeout(at),
                _ => break,
            }
            while endpoint.poll_transmit().is_some() {}
        }
        prop_assert_eq!(endpoint.poll_timeout(), None);
        prop_assert_eq!(endpoint.leg_count(), 0, "every leg is gone after its timers");
    }
}
