//! Endpoint core tests: datagrams and instants in, datagrams, events and
//! deadlines out — no sockets, no clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::message::{parse, Response, SipMessage};

const UAC: &str = "192.0.2.20:5062";
const SDP_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
const SDP_ANSWER: &[u8] = b"v=0\r\no=switchboard 1 1 IN IP4 192.0.2.10\r\ns=switchboard\r\n";

struct Harness {
    endpoint: Endpoint,
    t0: Instant,
    uac: SocketAddr,
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

impl Harness {
    fn new() -> Self {
        Self::with_config(EndpointConfig::new(
            "192.0.2.10:5060".parse().unwrap(),
            "switchboard-test",
        ))
    }

    fn with_config(config: EndpointConfig) -> Self {
        Harness {
            endpoint: Endpoint::new(config),
            t0: Instant::now(),
            uac: UAC.parse().unwrap(),
        }
    }

    fn at(&self, offset: Duration) -> Instant {
        self.t0 + offset
    }

    fn feed(&mut self, offset: Duration, text: &str) {
        let now = self.at(offset);
        let uac = self.uac;
        self.endpoint.handle_datagram(now, uac, text.as_bytes());
    }

    fn tick(&mut self, offset: Duration) {
        let now = self.at(offset);
        self.endpoint.handle_timeout(now);
    }

    fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.endpoint.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<SipEvent> {
        std::iter::from_fn(|| self.endpoint.poll_event()).collect()
    }

    /// Every transmitted response, parsed, checking it goes to the UAC.
    fn responses(&mut self) -> Vec<Response> {
        let uac = self.uac;
        self.transmits()
            .into_iter()
            .map(|transmit| {
                assert_eq!(transmit.to, uac);
                match parse(&transmit.data).expect("our response parses") {
                    SipMessage::Response(response) => response,
                    SipMessage::Request(request) => panic!("expected a response, got {request:?}"),
                }
            })
            .collect()
    }

    fn statuses(&mut self) -> Vec<u16> {
        self.responses().iter().map(|r| r.status).collect()
    }

    /// Sends INVITE and returns the new leg (asserting 100 + IncomingCall).
    fn invite(&mut self, offset: Duration, call_id: &str) -> (LegId, IncomingCall) {
        let text = invite(call_id, "z9hG4bKinv1", Some(SDP_OFFER), "");
        self.feed(offset, &text);
        let responses = self.responses();
        assert_eq!(responses.len(), 1);
        assert_eq!(responses[0].status, 100);
        let events = self.events();
        let [SipEvent::IncomingCall(call)] = events.as_slice() else {
            panic!("expected one IncomingCall, got {events:?}");
        };
        (call.leg, call.clone())
    }

    /// INVITE, answer and ACK; returns the leg and our To tag.
    fn established(&mut self, call_id: &str) -> (LegId, String) {
        let (leg, _) = self.invite(ms(0), call_id);
        self.endpoint
            .answer(self.at(ms(10)), leg, SDP_ANSWER.to_vec())
            .unwrap();
        let ok = self.responses().remove(0);
        assert_eq!(ok.status, 200);
        let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
        self.feed(ms(20), &ack(call_id, &tag, "z9hG4bKack1", 1));
        assert_eq!(self.events(), vec![SipEvent::Acked { leg }]);
        (leg, tag)
    }
}

fn invite(call_id: &str, branch: &str, sdp: Option<&str>, extra_headers: &str) -> String {
    let body = sdp.unwrap_or("");
    let content_type = if sdp.is_some() {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    format!(
        "INVITE sip:+15550001111@192.0.2.10:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.20:5062;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice A\" <sip:alice@192.0.2.20:5062>;tag=alicetag\r\n\
         To: <sip:+15550001111@192.0.2.10>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@192.0.2.20:5062>\r\n\
         {extra_headers}{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn ack(call_id: &str, to_tag: &str, branch: &str, cseq: u32) -> String {
    format!(
        "ACK sip:switchboard@192.0.2.10:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.20:5062;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice A\" <sip:alice@192.0.2.20:5062>;tag=alicetag\r\n\
         To: <sip:+15550001111@192.0.2.10>;tag={to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} ACK\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn in_dialog(method: &str, call_id: &str, to_tag: &str, branch: &str, cseq: u32) -> String {
    format!(
        "{method} sip:switchboard@192.0.2.10:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.20:5062;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice A\" <sip:alice@192.0.2.20:5062>;tag=alicetag\r\n\
         To: <sip:+15550001111@192.0.2.10>;tag={to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn cancel(call_id: &str, branch: &str) -> String {
    format!(
        "CANCEL sip:+15550001111@192.0.2.10:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.20:5062;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice A\" <sip:alice@192.0.2.20:5062>;tag=alicetag\r\n\
         To: <sip:+15550001111@192.0.2.10>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 CANCEL\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A response from the UAC to a request we sent.
fn response_to(request: &[u8], status: u16) -> String {
    let SipMessage::Request(request) = parse(request).unwrap() else {
        panic!("not a request");
    };
    let h = &request.headers;
    format!(
        "SIP/2.0 {status} Whatever\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        h.get("Via").unwrap(),
        h.get("From").unwrap(),
        h.get("To").unwrap(),
        h.call_id().unwrap(),
        h.get("CSeq").unwrap()
    )
}

fn request_of(transmit: &Transmit) -> crate::message::Request {
    match parse(&transmit.data).expect("our request parses") {
        SipMessage::Request(request) => request,
        SipMessage::Response(response) => panic!("expected a request, got {response:?}"),
    }
}

#[test]
fn invite_gets_100_trying_and_incoming_call() {
    let mut h = Harness::new();
    let text = invite(
        "call-1",
        "z9hG4bKinv1",
        Some(SDP_OFFER),
        "X-Tenant: acme\r\n",
    );
    h.feed(ms(0), &text);
    let responses = h.responses();
    assert_eq!(responses.len(), 1);
    let trying = &responses[0];
    assert_eq!(trying.status, 100);
    assert_eq!(trying.reason, "Trying");
    assert_eq!(
        trying.headers.get("Via"),
        Some("SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKinv1")
    );
    assert_eq!(trying.headers.call_id(), Some("call-1"));
    assert_eq!(trying.headers.get("CSeq"), Some("1 INVITE"));
    assert_eq!(trying.headers.to().unwrap().tag(), None);
    assert_eq!(trying.headers.from().unwrap().tag(), Some("alicetag"));
    assert_eq!(trying.headers.get("Server"), Some("switchboard-test"));

    let events = h.events();
    let [SipEvent::IncomingCall(call)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(call.call_id, "call-1");
    assert_eq!(call.from_uri, "sip:alice@192.0.2.20:5062");
    assert_eq!(call.from_user, "alice");
    assert_eq!(call.from_display.as_deref(), Some("Alice A"));
    assert_eq!(call.to_uri, "sip:+15550001111@192.0.2.10");
    assert_eq!(call.to_user, "+15550001111");
    assert_eq!(call.request_user, "+15550001111");
    assert_eq!(call.sdp.as_deref(), Some(SDP_OFFER.as_bytes()));
    assert_eq!(call.source, h.uac);
    assert!(call
        .headers
        .contains(&("X-Tenant".to_owned(), "acme".to_owned())));
    assert_eq!(
        h.endpoint.poll_timeout(),
        None,
        "no timers while proceeding"
    );
}

#[test]
fn invite_without_sdp_has_no_offer() {
    let mut h = Harness::new();
    h.feed(ms(0), &invite("call-nosdp", "z9hG4bKa", None, ""));
    assert_eq!(h.statuses(), vec![100]);
    let events = h.events();
    let [SipEvent::IncomingCall(call)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(call.sdp, None);
}

#[test]
fn invite_retransmission_is_absorbed() {
    let mut h = Harness::new();
    let (leg, _) = h.invite(ms(0), "call-rtx");
    h.feed(
        ms(400),
        &invite("call-rtx", "z9hG4bKinv1", Some(SDP_OFFER), ""),
    );
    assert_eq!(h.statuses(), vec![100]);
    assert!(h.events().is_empty(), "no second IncomingCall");

    h.endpoint.ringing(h.at(ms(500)), leg).unwrap();
    let ringing = h.responses().remove(0);
    assert_eq!(ringing.status, 180);
    let tag = ringing.headers.to().unwrap().tag().unwrap().to_owned();
    assert_eq!(
        ringing.headers.get("Contact"),
        Some("<sip:switchboard@192.0.2.10:5060>")
    );
    h.feed(
        ms(900),
        &invite("call-rtx", "z9hG4bKinv1", Some(SDP_OFFER), ""),
    );
    let again = h.responses();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].status, 180);
    assert_eq!(again[0].headers.to().unwrap().tag(), Some(tag.as_str()));
    assert!(h.events().is_empty());
    assert_eq!(h.endpoint.leg_count(), 1);
}

#[test]
fn answer_retransmits_with_backoff_until_ack() {
    let mut h = Harness::new();
    let (leg, _) = h.invite(ms(0), "call-2xx");
    h.endpoint.ringing(h.at(ms(5)), leg).unwrap();
    let ringing_tag = h.responses()[0]
        .headers
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_owned();

    h.endpoint
        .answer(h.at(ms(1000)), leg, SDP_ANSWER.to_vec())
        .unwrap();
    let ok = h.responses().remove(0);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, SDP_ANSWER);
    assert_eq!(ok.headers.content_type(), Some("application/sdp"));
    assert_eq!(
        ok.headers.get("Contact"),
        Some("<sip:switchboard@192.0.2.10:5060>")
    );
    let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    assert_eq!(tag, ringing_tag, "the To tag is stable across responses");

    // Retransmissions at +0.5, +1.5, +3.5, +7.5, +11.5 s (intervals 0.5, 1, 2, 4, 4).
    let mut expected_at = 1000;
    for interval in [500, 1000, 2000, 4000, 4000] {
        expected_at += interval;
        assert_eq!(h.endpoint.poll_timeout(), Some(h.at(ms(expected_at))));
        h.tick(ms(expected_at - 1));
        assert!(h.transmits().is_empty(), "nothing before the deadline");
        h.tick(ms(expected_at));
        let resent = h.transmits();
        assert_eq!(resent.len(), 1, "one retransmission at {expected_at} ms");
        assert_eq!(resent[0].data, ok_bytes(&ok));
    }

    h.feed(ms(12_000), &ack("call-2xx", &tag, "z9hG4bKack", 1));
    assert_eq!(h.events(), vec![SipEvent::Acked { leg }]);
    assert!(h.transmits().is_empty(), "ACK is never answered");
    h.tick(ms(60_000));
    assert!(h.transmits().is_empty(), "ACK stopped the retransmissions");
    assert!(h.events().is_empty());
}

/// The exact bytes of a response we sent (re-serialized identically).
fn ok_bytes(response: &Response) -> Vec<u8> {
    response.to_bytes()
}

#[test]
fn unacknowledged_2xx_sends_bye_and_terminates() {
    let mut h = Harness::new();
    let text = invite(
        "call-noack",
        "z9hG4bKinv1",
        Some(SDP_OFFER),
        "Record-Route: <sip:192.0.2.30;lr>, <sip:192.0.2.31;lr>\r\nRecord-Route: <sip:192.0.2.32;lr>\r\n",
    );
    h.feed(ms(0), &text);
    assert_eq!(h.statuses(), vec![100]);
    let leg = match h.events().remove(0) {
        SipEvent::IncomingCall(call) => call.leg,
        other => panic!("{other:?}"),
    };
    h.endpoint
        .answer(h.at(ms(0)), leg, SDP_ANSWER.to_vec())
        .unwrap();
    let ok = h.responses().remove(0);
    assert_eq!(
        ok.headers.record_route(),
        vec![
            "<sip:192.0.2.30;lr>",
            "<sip:192.0.2.31;lr>",
            "<sip:192.0.2.32;lr>"
        ]
    );
    let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();

    // Drive every timer up to just before 64*T1.
    while let Some(deadline) = h.endpoint.poll_timeout() {
        if deadline >= h.at(ms(32_000)) {
            break;
        }
        h.endpoint.handle_timeout(deadline);
    }
    let retransmissions = h.transmits();
    assert_eq!(
        retransmissions.len(),
        10,
        "0.5 1.5 3.5 7.5 11.5 15.5 19.5 23.5 27.5 31.5"
    );
    assert!(h.events().is_empty());

    h.tick(ms(32_000));
    let sent = h.transmits();
    let bye = sent
        .iter()
        .map(request_of)
        .find(|r| r.method == Method::Bye)
        .expect("BYE sent");
    assert_eq!(
        h.events(),
        vec![SipEvent::Terminated {
            leg,
            reason: TerminationReason::AckTimeout
        }]
    );
    // Loose routing: Request-URI is the remote Contact, Route = Record-Route in order,
    // and the BYE goes to the first route.
    assert_eq!(bye.uri, "sip:alice@192.0.2.20:5062");
    assert_eq!(
        bye.headers.get_all("Route").collect::<Vec<_>>(),
        vec![
            "<sip:192.0.2.30;lr>",
            "<sip:192.0.2.31;lr>",
            "<sip:192.0.2.32;lr>"
        ]
    );
    let bye_transmit = sent
        .iter()
        .find(|t| request_of(t).method == Method::Bye)
        .unwrap();
    assert_eq!(
        bye_transmit.to,
        "192.0.2.30:5060".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(bye.headers.from().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(
        bye.headers.from().unwrap().uri,
        "sip:+15550001111@192.0.2.10"
    );
    assert_eq!(bye.headers.to().unwrap().tag(), Some("alicetag"));
    assert_eq!(bye.headers.to().unwrap().uri, "sip:alice@192.0.2.20:5062");
    assert_eq!(bye.headers.call_id(), Some("call-noack"));
    assert_eq!(
        bye.headers.cseq().unwrap(),
        CSeq {
            seq: 1,
            method: Method::Bye
        }
    );
    let via = bye.headers.top_via().unwrap();
    assert_eq!(via.sent_by(), "192.0.2.10:5060");
    assert!(via.branch().unwrap().starts_with("z9hG4bK"));
    assert_eq!(bye.headers.get("User-Agent"), Some("switchboard-test"));

    // The BYE's 200 ends the transaction without a second Terminated.
    h.endpoint.handle_datagram(
        h.at(ms(32_100)),
        h.uac,
        response_to(&bye_transmit.data, 200).as_bytes(),
    );
    assert!(h.events().is_empty());
    h.tick(ms(40_000));
    assert!(h.transmits().is_empty());
    assert_eq!(h.endpoint.leg_count(), 0, "leg removed after lingering");
}

use crate::message::CSeq;

#[test]
fn cancel_before_answer() {
    let mut h = Harness::new();
    let (leg, _) = h.invite(ms(0), "call-cancel");
    h.endpoint.ringing(h.at(ms(10)), leg).unwrap();
    let tag = h.responses()[0]
        .headers
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_owned();

    h.feed(ms(2000), &cancel("call-cancel", "z9hG4bKinv1"));
    let responses = h.responses();
    assert_eq!(
        responses.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![200, 487]
    );
    assert_eq!(responses[0].headers.get("CSeq"), Some("1 CANCEL"));
    assert_eq!(responses[1].headers.get("CSeq"), Some("1 INVITE"));
    for response in &responses {
        assert_eq!(response.headers.to().unwrap().tag(), Some(tag.as_str()));
    }
    assert_eq!(h.events(), vec![SipEvent::Cancelled { leg }]);
    assert!(matches!(
        h.endpoint.answer(h.at(ms(2001)), leg, SDP_ANSWER.to_vec()),
        Err(EndpointError::InvalidState { .. })
    ));

    // The 487 is retransmitted (timer G), a retransmitted CANCEL gets the cached 200.
    h.tick(ms(2500));
    assert_eq!(h.statuses(), vec![487]);
    h.feed(ms(2600), &cancel("call-cancel", "z9hG4bKinv1"));
    assert_eq!(h.statuses(), vec![200]);
    assert!(h.events().is_empty());

    // The ACK for the 487 uses the INVITE's branch.
    let mut ack_487 = ack("call-cancel", &tag, "z9hG4bKinv1", 1);
    ack_487 = ack_487.replace(
        "ACK sip:switchboard@192.0.2.10:5060",
        "ACK sip:+15550001111@192.0.2.10:5060",
    );
    h.feed(ms(2700), &ack_487);
    assert_eq!(
        h.events(),
        vec![SipEvent::Terminated {
            leg,
            reason: TerminationReason::Cancelled
        }]
    );
    h.tick(ms(5000));
    assert!(
        h.transmits().is_empty(),
        "ACK stopped the 487 retransmissions"
    );
}

#[test]
fn cancel_without_matching_invite_gets_481() {
    let mut h = Harness::new();
    h.feed(ms(0), &cancel("call-nothing", "z9hG4bKnope"));
    assert_eq!(h.statuses(), vec![481]);
    assert!(h.events().is_empty());
}

#[test]
fn cancel_after_answer_changes_nothing() {
    let mut h = Harness::new();
    let (leg, _) = h.established("call-late-cancel");
    h.feed(ms(30), &cancel("call-late-cancel", "z9hG4bKinv1"));
    assert_eq!(h.statuses(), vec![200]);
    assert!(h.events().is_empty());
    h.endpoint.hangup(h.at(ms(40)), leg).unwrap();
}

#[test]
fn remote_bye_is_answered_and_reported() {
    let mut h = Harness::new();
    let (leg, tag) = h.established("call-rbye");
    h.feed(
        ms(5000),
        &in_dialog("BYE", "call-rbye", &tag, "z9hG4bKbye1", 2),
    );
    let responses = h.responses();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].headers.get("CSeq"), Some("2 BYE"));
    assert_eq!(
        h.events(),
        vec![
            SipEvent::RemoteHangup { leg },
            SipEvent::Terminated {
                leg,
                reason: TerminationReason::RemoteHangup
            }
        ]
    );
    // A retransmitted BYE gets the same 200 and no new events.
    h.feed(
        ms(5500),
        &in_dialog("BYE", "call-rbye", &tag, "z9hG4bKbye1", 2),
    );
    assert_eq!(h.responses(), responses);
    assert!(h.events().is_empty());
    assert!(matches!(
        h.endpoint.hangup(h.at(ms(5600)), leg),
        Err(EndpointError::InvalidState { .. })
    ));
    // After timer J and the linger, everything is gone.
    h.tick(ms(60_000));
    assert_eq!(h.endpoint.leg_count(), 0);
    assert_eq!(h.endpoint.poll_timeout(), None);
    assert_eq!(
        h.endpoint.hangup(h.at(ms(60_001)), leg),
        Err(EndpointError::UnknownLeg(leg))
    );
}

#[test]
fn bye_for_unknown_dialog_gets_481() {
    let mut h = Harness::new();
    h.feed(
        ms(0),
        &in_dialog("BYE", "call-unknown", "nosuchtag", "z9hG4bKb", 2),
    );
    assert_eq!(h.statuses(), vec![481]);
    h.feed(
        ms(0),
        &in_dialog("INVITE", "call-unknown", "nosuchtag", "z9hG4bKc", 3),
    );
    assert_eq!(h.statuses(), vec![481]);
    assert!(h.events().is_empty());
}

#[test]
fn local_bye_retransmits_until_final_response() {
    let mut h = Harness::new();
    let (leg, tag) = h.established("call-lbye");
    h.endpoint.hangup(h.at(ms(1000)), leg).unwrap();
    let sent = h.transmits();
    assert_eq!(sent.len(), 1);
    let bye = request_of(&sent[0]);
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(
        sent[0].to, h.uac,
        "no Record-Route: BYE goes to the Contact"
    );
    assert_eq!(bye.uri, "sip:alice@192.0.2.20:5062");
    assert!(!bye.headers.contains("Route"));
    assert_eq!(bye.headers.from().unwrap().tag(), Some(tag.as_str()));
    assert!(matches!(
        h.endpoint.hangup(h.at(ms(1001)), leg),
        Err(EndpointError::InvalidState { .. })
    ));

    // Timer E: 0.5, then 1 s.
    h.tick(ms(1500));
    let again = h.transmits();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].data, sent[0].data);
    assert_eq!(h.endpoint.poll_timeout(), Some(h.at(ms(2500))));
    // A provisional response stretches the interval to T2.
    h.endpoint.handle_datagram(
        h.at(ms(1600)),
        h.uac,
        response_to(&sent[0].data, 100).as_bytes(),
    );
    h.tick(ms(2500));
    assert_eq!(h.transmits().len(), 1);
    assert_eq!(h.endpoint.poll_timeout(), Some(h.at(ms(6500))));
    assert!(h.events().is_empty());

    h.endpoint.handle_datagram(
        h.at(ms(3000)),
        h.uac,
        response_to(&sent[0].data, 200).as_bytes(),
    );
    assert_eq!(
        h.events(),
        vec![SipEvent::Terminated {
            leg,
            reason: TerminationReason::LocalHangup
        }]
    );
    h.tick(ms(10_000));
    assert!(h.transmits().is_empty(), "200 stopped the retransmissions");
    // A duplicate 200 is ignored.
    h.endpoint.handle_datagram(
        h.at(ms(10_001)),
        h.uac,
        response_to(&sent[0].data, 200).as_bytes(),
    );
    assert!(h.events().is_empty());
}

#[test]
fn local_bye_times_out_after_64_t1() {
    let mut h = Harness::new();
    let (leg, _) = h.established("call-byetimeout");
    h.endpoint.hangup(h.at(ms(0)), leg).unwrap();
    while let Some(deadline) = h.endpoint.poll_timeout() {
        if deadline > h.at(ms(32_000)) {
            break;
        }
        h.endpoint.handle_timeout(deadline);
    }
    // 1 + retransmits at 0.5 1.5 3.5 7.5 11.5 15.5 19.5 23.5 27.5 31.5.
    assert_eq!(h.transmits().len(), 11);
    assert_eq!(
        h.events(),
        vec![SipEvent::Terminated {
            leg,
            reason: TerminationReason::LocalHangupTimeout
        }]
    );
}

#[test]
fn hangup_before_ack_waits_for_the_ack() {
    let mut h = Harness::new();
    let (leg, _) = h.invite(ms(0), "call-early-hangup");
    h.endpoint
        .answer(h.at(ms(10)), leg, SDP_ANSWER.to_vec())
        .unwrap();
    let tag = h.responses()[0]
        .headers
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_owned();
    h.endpoint.hangup(h.at(ms(20)), leg).unwrap();
    assert!(h.transmits().is_empty(), "no BYE before the ACK");
    h.feed(ms(30), &ack("call-early-hangup", &tag, "z9hG4bKack", 1));
    let sent = h.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(request_of(&sent[0]).method, Method::Bye);
    assert!(h.events().is_empty(), "no Acked for a leg being hung up");
    h.endpoint.handle_datagram(
        h.at(ms(40)),
        h.uac,
        response_to(&sent[0].data, 200).as_bytes(),
    );
    assert_eq!(
        h.events(),
        vec![SipEvent::Terminated {
            leg,
            reason: TerminationReason::LocalHangup
        }]
    );
}

#[test]
fn reject_404_is_retransmitted_until_ack() {
    let mut h = Harness::new();
    let (leg, _) = h.invite(ms(0), "call-404");
    assert_eq!(
        h.endpoint.reject(h.at(ms(1)), leg, 200),
        Err(EndpointError::InvalidStatus(200))
    );
    assert!(matches!(
        h.endpoint.hangup(h.at(ms(1)), leg),
        Err(EndpointError::InvalidState { .. })
    ));
    h.endpoint.reject(h.at(ms(10)), leg, 404).unwrap();
    let not_found = h.responses().remove(0);
    assert_eq!(not_found.status, 404);
    assert_eq!(not_found.reason, "Not Found");
    let tag = not_found.headers.to().unwrap().tag().unwrap().to_owned();
    h.tick(ms(510));
    assert_eq!(h.statuses(), vec![404]);
    h.tick(ms(1510));
    assert_eq!(h.statuses(), vec![404]);
    // An INVITE retransmission gets the 404 again.
    h.feed(
        ms(1600),
        &invite("call-404", "z9hG4bKinv1", Some(SDP_OFFER), ""),
    );
    assert_eq!(h.statuses(), vec![404]);
    assert!(h.events().is_empty());

    h.feed(ms(1700), &ack("call-404", &tag, "z9hG4bKinv1", 1));
    assert_eq!(
        h.events(),
        vec![SipEvent::Terminated {
            leg,
            reason: TerminationReason::Rejected { status: 404 }
        }]
    );
    h.tick(ms(20_000));
    assert!(h.transmits().is_empty());
    assert_eq!(h.endpoint.leg_count(), 0);
}

#[test]
fn reject_without_ack_ends_at_timer_h() {
    let mut h = Harness::new();
    let (leg, _) = h.invite(ms(0), "call-486");
    h.endpoint.reject(h.at(ms(0)), leg, 486).unwrap();
    h.transmits();
    h.tick(ms(31_999));
    assert!(h.events().is_empty());
    h.tick(ms(32_000));
    assert_eq!(
        h.events(),
        vec![SipEvent::Terminated {
            leg,
            reason: TerminationReason::Rejected { status: 486 }
        }]
    );
}

#[test]
fn options_in_and_out_of_dialog() {
    let mut h = Harness::new();
    let options = "OPTIONS sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKopt\r\n\
                   From: <sip:probe@192.0.2.20>;tag=p1\r\nTo: <sip:192.0.2.10>\r\nCall-ID: opt-1\r\n\
                   CSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\n\r\n";
    h.feed(ms(0), options);
    let ok = h.responses().remove(0);
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.headers.get("Allow"),
        Some("INVITE, ACK, CANCEL, BYE, OPTIONS")
    );
    assert_eq!(ok.headers.get("Accept"), Some("application/sdp"));
    assert!(ok.headers.contains("Supported"));
    assert!(ok.headers.to().unwrap().tag().is_some());
    assert!(h.events().is_empty());

    let (_, tag) = h.established("call-opt");
    h.feed(
        ms(100),
        &in_dialog("OPTIONS", "call-opt", &tag, "z9hG4bKopt2", 2),
    );
    let ok = h.responses().remove(0);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.to().unwrap().tag(), Some(tag.as_str()));
}

#[test]
fn unsupported_methods_get_405_or_501_with_allow() {
    let mut h = Harness::new();
    let request = |method: &str| {
        format!(
            "{method} sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bK{method}\r\n\
             From: <sip:a@192.0.2.20>;tag=x\r\nTo: <sip:192.0.2.10>\r\nCall-ID: m-{method}\r\n\
             CSeq: 1 {method}\r\nContact: <sip:a@192.0.2.20>\r\nExpires: 60\r\n\r\n"
        )
    };
    h.feed(ms(0), &request("REGISTER"));
    let response = h.responses().remove(0);
    assert_eq!(response.status, 405);
    assert_eq!(
        response.headers.get("Allow"),
        Some("INVITE, ACK, CANCEL, BYE, OPTIONS")
    );
    h.feed(ms(0), &request("FROBNICATE"));
    let response = h.responses().remove(0);
    assert_eq!(response.status, 501);
    assert!(response.headers.contains("Allow"));
    assert!(h.events().is_empty());
}

#[test]
fn garbage_is_dropped_and_malformed_requests_get_400() {
    let mut h = Harness::new();
    for junk in [
        &b""[..],
        b"\r\n\r\n",
        b"hello world",
        &[0xff, 0xfe, 0x00, 0x80],
        b"SIP/2.0 200 OK\r\n\r\n",
    ] {
        h.endpoint.handle_datagram(h.at(ms(0)), h.uac, junk);
        assert!(h.transmits().is_empty(), "{junk:?} must be dropped");
    }
    // Content-Length larger than the body: 400, echoing the headers.
    let bad = invite("call-bad", "z9hG4bKbad", Some(SDP_OFFER), "").replace(
        &format!("Content-Length: {}", SDP_OFFER.len()),
        "Content-Length: 9999",
    );
    h.feed(ms(0), &bad);
    let responses = h.responses();
    assert_eq!(responses.len(), 1);
    let response = &responses[0];
    assert_eq!(response.status, 400);
    assert_eq!(response.headers.call_id(), Some("call-bad"));
    assert_eq!(response.headers.get("CSeq"), Some("1 INVITE"));
    assert_eq!(
        response.headers.top_via().unwrap().branch(),
        Some("z9hG4bKbad")
    );
    assert!(response
        .headers
        .get("Warning")
        .unwrap()
        .contains("Content-Length"));
    assert!(response.headers.to().unwrap().tag().is_some());

    // No Call-ID: cannot build a response, dropped.
    let no_call_id = bad.replace("Call-ID: call-bad\r\n", "");
    h.feed(ms(0), &no_call_id);
    assert!(h.transmits().is_empty());
    // A malformed ACK is never answered.
    let bad_ack = ack("c", "t", "z9hG4bKx", 1).replace("Content-Length: 0", "Content-Length: 50");
    h.feed(ms(0), &bad_ack);
    assert!(h.transmits().is_empty());
    // Another SIP version: 505.
    let other_version =
        invite("call-v", "z9hG4bKv", None, "").replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1);
    h.feed(ms(0), &other_version);
    assert_eq!(h.statuses(), vec![505]);
    assert!(h.events().is_empty());
    assert_eq!(h.endpoint.leg_count(), 0);

    // Still serving afterwards.
    h.invite(ms(1), "call-after-garbage");
}

#[test]
fn reinvite_refreshes_with_the_same_sdp() {
    let mut h = Harness::new();
    let (leg, tag) = h.established("call-reinvite");
    let reinvite = in_dialog("INVITE", "call-reinvite", &tag, "z9hG4bKre1", 2).replace(
        "Content-Length: 0\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n",
            SDP_OFFER.len()
        ),
    ) + SDP_OFFER;
    h.feed(ms(1000), &reinvite);
    let ok = h.responses().remove(0);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.get("CSeq"), Some("2 INVITE"));
    assert_eq!(ok.body, SDP_ANSWER);
    assert_eq!(ok.headers.to().unwrap().tag(), Some(tag.as_str()));
    // Retransmitted until its ACK, a retransmitted re-INVITE gets the same 200.
    h.tick(ms(1500));
    assert_eq!(h.statuses(), vec![200]);
    h.feed(ms(1600), &reinvite);
    assert_eq!(h.statuses(), vec![200]);
    h.feed(ms(1700), &ack("call-reinvite", &tag, "z9hG4bKack2", 2));
    assert!(h.transmits().is_empty());
    h.tick(ms(10_000));
    assert!(h.transmits().is_empty(), "ACK stopped the re-INVITE 200");
    assert!(
        h.events().is_empty(),
        "session refresh is invisible to the app"
    );
    h.endpoint.hangup(h.at(ms(10_001)), leg).unwrap();
}

#[test]
fn rport_and_nat_route_responses_to_the_source() {
    let mut h = Harness::new();
    let text = invite("call-nat", "z9hG4bKnat", None, "").replace(
        "Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKnat",
        "Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKnat",
    );
    h.feed(ms(0), &text);
    let responses = h.responses(); // asserts destination = source
    assert_eq!(
        responses[0].headers.get("Via"),
        Some("SIP/2.0/UDP 10.0.0.5:5060;rport=5062;branch=z9hG4bKnat;received=192.0.2.20")
    );

    // Sent-by naming the source IP but another port (no rport): the sent-by port.
    let mut h = Harness::new();
    let text = invite("call-port", "z9hG4bKport", None, "")
        .replace("192.0.2.20:5062;branch", "192.0.2.20:5070;branch");
    h.feed(ms(0), &text);
    let sent = h.transmits();
    assert_eq!(sent[0].to, "192.0.2.20:5070".parse::<SocketAddr>().unwrap());
}

#[test]
fn leg_cap_answers_503() {
    let mut config = EndpointConfig::new("192.0.2.10:5060".parse().unwrap(), "");
    config.max_legs = 1;
    let mut h = Harness::with_config(config);
    h.invite(ms(0), "call-cap-1");
    h.feed(ms(1), &invite("call-cap-2", "z9hG4bKcap2", None, ""));
    let response = h.responses().remove(0);
    assert_eq!(response.status, 503);
    assert!(
        !response.headers.contains("Server"),
        "empty user agent omitted"
    );
    assert!(h.events().is_empty());
}

#[test]
fn unsupported_uri_scheme_gets_416() {
    let mut h = Harness::new();
    let text = invite("call-scheme", "z9hG4bKs", None, "").replacen(
        "INVITE sip:+15550001111@192.0.2.10:5060",
        "INVITE http://example.com/x",
        1,
    );
    h.feed(ms(0), &text);
    assert_eq!(h.statuses(), vec![416]);
}

#[test]
fn unspecified_local_address_advertises_the_request_uri_host() {
    let mut h = Harness::with_config(EndpointConfig::new("0.0.0.0:5060".parse().unwrap(), "sb"));
    let (leg, _) = h.invite(ms(0), "call-any");
    h.endpoint.ringing(h.at(ms(1)), leg).unwrap();
    let ringing = h.responses().remove(0);
    assert_eq!(
        ringing.headers.get("Contact"),
        Some("<sip:switchboard@192.0.2.10:5060>")
    );
}

#[test]
fn early_bye_is_treated_like_a_cancel() {
    let mut h = Harness::new();
    let (leg, _) = h.invite(ms(0), "call-earlybye");
    h.endpoint.ringing(h.at(ms(1)), leg).unwrap();
    let tag = h.responses()[0]
        .headers
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_owned();
    h.feed(
        ms(10),
        &in_dialog("BYE", "call-earlybye", &tag, "z9hG4bKeb", 2),
    );
    assert_eq!(h.statuses(), vec![200, 487]);
    assert_eq!(h.events(), vec![SipEvent::RemoteHangup { leg }]);
    h.feed(ms(20), &ack("call-earlybye", &tag, "z9hG4bKinv1", 1));
    assert_eq!(
        h.events(),
        vec![SipEvent::Terminated {
            leg,
            reason: TerminationReason::RemoteHangup
        }]
    );
}

#[test]
fn strict_route_becomes_the_request_uri() {
    let mut h = Harness::new();
    let text = invite(
        "call-strict",
        "z9hG4bKst",
        None,
        "Record-Route: <sip:192.0.2.40>\r\n",
    );
    h.feed(ms(0), &text);
    h.transmits();
    let leg = match h.events().remove(0) {
        SipEvent::IncomingCall(call) => call.leg,
        other => panic!("{other:?}"),
    };
    h.endpoint.answer(h.at(ms(0)), leg, Vec::new()).unwrap();
    let ok = h.responses().remove(0);
    assert_eq!(ok.headers.content_type(), None, "no body, no Content-Type");
    let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    h.feed(ms(1), &ack("call-strict", &tag, "z9hG4bKa", 1));
    h.endpoint.hangup(h.at(ms(2)), leg).unwrap();
    let sent = h.transmits();
    let bye = request_of(&sent[0]);
    assert_eq!(bye.uri, "sip:192.0.2.40");
    assert_eq!(
        bye.headers.get("Route"),
        Some("<sip:alice@192.0.2.20:5062>")
    );
    assert_eq!(sent[0].to, "192.0.2.40:5060".parse::<SocketAddr>().unwrap());
}
