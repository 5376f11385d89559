//! Outbound call (UAC leg) tests: we place a call, play the trunk gateway by
//! feeding its responses and requests, and check every datagram, event and
//! deadline — no sockets, no clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use super::*;
use crate::message::{parse, Request, Response, SipMessage};

const GATEWAY: &str = "192.0.2.30:5060";
const REQUEST_URI: &str = "sip:+15551230000@gw.example:5060";
const OFFER: &[u8] = b"v=0\r\no=switchboard 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
const ANSWER: &str = "v=0\r\no=gw 1 1 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 192.0.2.30\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n";
const NONCE: &str = "dcd98b7102dd2f0e8b11d0f600bfb0c093";

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

struct Gateway {
    endpoint: Endpoint,
    t0: Instant,
    addr: SocketAddr,
}

fn call(credentials: bool) -> OutgoingCall {
    OutgoingCall {
        request_uri: REQUEST_URI.to_owned(),
        destination: GATEWAY.parse().unwrap(),
        from_uri: "sip:+15557654321@switchboard.example".to_owned(),
        from_display: Some("Switch \"Board\"".to_owned()),
        to_uri: "sip:+15551230000@gw.example".to_owned(),
        sdp: OFFER.to_vec(),
        credentials: credentials.then(|| DigestCredentials {
            username: "alice".to_owned(),
            password: "s3cret".to_owned(),
        }),
        headers: vec![("X-Call-Sid".to_owned(), "CA123".to_owned())],
    }
}

impl Gateway {
    fn new() -> Self {
        Gateway {
            endpoint: Endpoint::new(EndpointConfig::new(
                "192.0.2.10:5060".parse().unwrap(),
                "switchboard-test",
            )),
            t0: Instant::now(),
            addr: GATEWAY.parse().unwrap(),
        }
    }

    fn at(&self, offset: Duration) -> Instant {
        self.t0 + offset
    }

    /// Places the call and returns the leg and the INVITE sent.
    fn place(&mut self, credentials: bool) -> (LegId, Request) {
        let leg = self.endpoint.allocate_leg_id();
        self.endpoint
            .invite(self.at(ms(0)), leg, call(credentials))
            .unwrap();
        let invite = self.one_request("INVITE");
        (leg, invite)
    }

    fn feed(&mut self, offset: Duration, text: &str) {
        let now = self.at(offset);
        let from = self.addr;
        self.endpoint.handle_datagram(now, from, text.as_bytes());
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

    /// Exactly one datagram is queued: a `method` request to the gateway.
    fn one_request(&mut self, method: &str) -> Request {
        let transmits = self.transmits();
        assert_eq!(transmits.len(), 1, "expected one {method}: {transmits:?}");
        assert_eq!(transmits[0].to, self.addr);
        let request = request_of(&transmits[0]);
        assert_eq!(request.method.as_str(), method);
        request
    }
}

fn request_of(transmit: &Transmit) -> Request {
    match parse(&transmit.data).expect("our request parses") {
        SipMessage::Request(request) => request,
        SipMessage::Response(response) => panic!("expected a request, got {response:?}"),
    }
}

fn response_of(transmit: &Transmit) -> Response {
    match parse(&transmit.data).expect("our response parses") {
        SipMessage::Response(response) => response,
        SipMessage::Request(request) => panic!("expected a response, got {request:?}"),
    }
}

/// The gateway's response to `request`.
fn reply(request: &Request, status: u16, to_tag: Option<&str>, extra: &str, body: &str) -> String {
    let h = &request.headers;
    let to = match to_tag {
        Some(tag) => format!("{};tag={tag}", h.get("To").unwrap()),
        None => h.get("To").unwrap().to_owned(),
    };
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "SIP/2.0 {status} Whatever\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         {extra}{content_type}Content-Length: {}\r\n\r\n{body}",
        h.get("Via").unwrap(),
        h.get("From").unwrap(),
        h.call_id().unwrap(),
        h.get("CSeq").unwrap(),
        body.len()
    )
}

fn branch_of(request: &Request) -> String {
    request
        .headers
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .to_owned()
}

fn from_tag(request: &Request) -> String {
    request.headers.from().unwrap().tag().unwrap().to_owned()
}

/// A request from the gateway inside the dialog of `invite` (answered with `gw_tag`).
fn gateway_request(method: &str, invite: &Request, gw_tag: &str, cseq: u32) -> String {
    format!(
        "{method} sip:switchboard@192.0.2.10:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {GATEWAY};branch=z9hG4bKgw{method}{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15551230000@gw.example>;tag={gw_tag}\r\n\
         To: {}\r\n\
         Call-ID: {}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:gw@{GATEWAY}>\r\n\
         Content-Length: 0\r\n\r\n",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap(),
    )
}

#[test]
fn invite_is_well_formed() {
    let mut gw = Gateway::new();
    let (_, invite) = gw.place(false);
    assert_eq!(invite.uri, REQUEST_URI);
    let via = invite.headers.top_via().unwrap();
    assert!(via.branch().unwrap().starts_with("z9hG4bK"));
    assert_eq!(via.rport(), Some(None));
    assert_eq!(via.sent_by(), "192.0.2.10:5060");
    assert_eq!(invite.headers.max_forwards(), Some(70));
    let cseq = invite.headers.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (1, Method::Invite));
    let from = invite.headers.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("Switch \"Board\""));
    assert_eq!(from.uri, "sip:+15557654321@switchboard.example");
    assert!(from.tag().is_some());
    let to = invite.headers.to().unwrap();
    assert_eq!(
        (to.uri.as_str(), to.tag()),
        ("sip:+15551230000@gw.example", None)
    );
    assert_eq!(
        invite.headers.contact().unwrap().uri,
        "sip:switchboard@192.0.2.10:5060"
    );
    assert_eq!(invite.headers.get("X-Call-Sid"), Some("CA123"));
    assert_eq!(invite.headers.content_type(), Some("application/sdp"));
    assert_eq!(invite.body, OFFER);

    // A second call gets its own Call-ID, tag and branch.
    let (_, other) = gw.place(false);
    assert_ne!(other.headers.call_id(), invite.headers.call_id());
    assert_ne!(from_tag(&other), from_tag(&invite));
    assert_ne!(branch_of(&other), branch_of(&invite));
}

#[test]
fn invalid_calls_are_refused() {
    let mut gw = Gateway::new();
    let leg = gw.endpoint.allocate_leg_id();
    let mut bad = call(false);
    bad.headers
        .push(("X-Evil".to_owned(), "a\r\nVia: x".to_owned()));
    assert!(matches!(
        gw.endpoint.invite(gw.at(ms(0)), leg, bad),
        Err(EndpointError::InvalidRequest(_))
    ));
    let mut bad = call(false);
    bad.request_uri = "not a uri".to_owned();
    assert!(gw.endpoint.invite(gw.at(ms(0)), leg, bad).is_err());
    assert!(gw.transmits().is_empty());
    gw.endpoint.invite(gw.at(ms(0)), leg, call(false)).unwrap();
    assert_eq!(
        gw.endpoint.invite(gw.at(ms(0)), leg, call(false)),
        Err(EndpointError::LegInUse(leg))
    );
}

#[test]
fn answered_call_acks_reacks_and_hangs_up_through_the_route_set() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(false);

    gw.feed(ms(50), &reply(&invite, 100, None, "", ""));
    assert!(gw.transmits().is_empty());
    assert!(gw.events().is_empty());
    // A provisional stops timer A (and B).
    for step in 1..=70u64 {
        gw.tick(ms(step * 500));
    }
    assert!(gw.transmits().is_empty());
    assert!(gw.events().is_empty());

    gw.feed(ms(35_100), &reply(&invite, 180, Some("gwtag"), "", ""));
    gw.feed(ms(35_150), &reply(&invite, 180, Some("gwtag"), "", ""));
    assert_eq!(
        gw.events(),
        vec![SipEvent::Progress {
            leg,
            status: 180,
            sdp: None
        }]
    );
    gw.feed(ms(200), &reply(&invite, 183, Some("gwtag"), "", ANSWER));
    assert_eq!(
        gw.events(),
        vec![SipEvent::Progress {
            leg,
            status: 183,
            sdp: Some(ANSWER.as_bytes().to_vec())
        }]
    );

    // Record-Route p1 (nearest the gateway) then p2 (nearest us).
    let ok = reply(
        &invite,
        200,
        Some("gwtag"),
        "Record-Route: <sip:192.0.2.41:5060;lr>, <sip:192.0.2.42:5060;lr>\r\n\
         Contact: <sip:gw@192.0.2.31:5070>\r\n",
        ANSWER,
    );
    gw.feed(ms(300), &ok);
    assert_eq!(
        gw.events(),
        vec![SipEvent::Answered {
            leg,
            sdp: Some(ANSWER.as_bytes().to_vec())
        }]
    );
    let transmits = gw.transmits();
    assert_eq!(transmits.len(), 1);
    let first_hop: SocketAddr = "192.0.2.42:5060".parse().unwrap();
    assert_eq!(transmits[0].to, first_hop);
    let ack = request_of(&transmits[0]);
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, "sip:gw@192.0.2.31:5070");
    assert_eq!(
        ack.headers.get_all("Route").collect::<Vec<_>>(),
        vec!["<sip:192.0.2.42:5060;lr>", "<sip:192.0.2.41:5060;lr>"]
    );
    assert_eq!(ack.headers.cseq().unwrap().seq, 1);
    assert_eq!(ack.headers.cseq().unwrap().method, Method::Ack);
    assert_eq!(ack.headers.to().unwrap().tag(), Some("gwtag"));
    assert_ne!(branch_of(&ack), branch_of(&invite));

    // The 2xx retransmitted: the same ACK again, no new event.
    gw.feed(ms(800), &ok);
    let again = gw.transmits();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].data, transmits[0].data);
    assert!(gw.events().is_empty());

    gw.endpoint.hangup(gw.at(ms(1000)), leg).unwrap();
    let transmits = gw.transmits();
    assert_eq!(transmits.len(), 1);
    assert_eq!(transmits[0].to, first_hop);
    let bye = request_of(&transmits[0]);
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri, "sip:gw@192.0.2.31:5070");
    assert_eq!(
        bye.headers.get_all("Route").collect::<Vec<_>>(),
        vec!["<sip:192.0.2.42:5060;lr>", "<sip:192.0.2.41:5060;lr>"]
    );
    assert_eq!(from_tag(&bye), from_tag(&invite));
    assert_eq!(bye.headers.to().unwrap().tag(), Some("gwtag"));
    assert_eq!(bye.headers.call_id(), invite.headers.call_id());
    assert_eq!(bye.headers.cseq().unwrap().seq, 2);

    gw.feed(ms(1100), &reply(&bye, 200, None, "", ""));
    assert_eq!(
        gw.events(),
        vec![SipEvent::Terminated {
            leg,
            reason: TerminationReason::LocalHangup
        }]
    );
}

#[test]
fn timer_a_retransmits_and_timer_b_fails_with_408() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(false);
    let mut resent_at = Vec::new();
    for step in 1..=64u64 {
        let offset = ms(step * 500);
        gw.tick(offset);
        for transmit in gw.transmits() {
            assert_eq!(transmit.to, gw.addr);
            let request = request_of(&transmit);
            assert_eq!(request.method, Method::Invite);
            assert_eq!(branch_of(&request), branch_of(&invite));
            resent_at.push(step * 500);
        }
        if step < 64 {
            assert!(gw.events().is_empty(), "no event before timer B");
        }
    }
    // Timer A: T1, 2T1, 4T1, … after the first send; timer B at 64·T1.
    assert_eq!(resent_at, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(
        gw.events(),
        vec![
            SipEvent::Failed { leg, status: 408 },
            SipEvent::Terminated {
                leg,
                reason: TerminationReason::Failed { status: 408 }
            }
        ]
    );
    // Gone for good after the linger.
    gw.tick(ms(70_000));
    assert_eq!(gw.endpoint.leg_count(), 0);
}

/// Checks the non-2xx ACK: same branch and CSeq number as `invite`, To tag
/// of the response.
fn assert_non_2xx_ack(ack: &Request, invite: &Request, to_tag: &str) {
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, invite.uri);
    assert_eq!(branch_of(ack), branch_of(invite));
    assert_eq!(
        ack.headers.cseq().unwrap().seq,
        invite.headers.cseq().unwrap().seq
    );
    assert_eq!(ack.headers.to().unwrap().tag(), Some(to_tag));
    assert_eq!(from_tag(ack), from_tag(invite));
}

#[test]
fn www_authenticate_challenge_is_answered_once() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(true);
    let challenge = format!("WWW-Authenticate: Digest realm=\"trunk\", nonce=\"{NONCE}\"\r\n");
    let unauthorized = reply(&invite, 401, Some("t401"), &challenge, "");
    gw.feed(ms(40), &unauthorized);
    assert!(gw.events().is_empty());
    let transmits = gw.transmits();
    assert_eq!(transmits.len(), 2, "ACK then the new INVITE");
    assert_non_2xx_ack(&request_of(&transmits[0]), &invite, "t401");
    let retry = request_of(&transmits[1]);
    assert_eq!(retry.method, Method::Invite);
    assert_eq!(retry.headers.cseq().unwrap().seq, 2);
    assert_ne!(branch_of(&retry), branch_of(&invite));
    assert_eq!(retry.headers.call_id(), invite.headers.call_id());
    assert_eq!(from_tag(&retry), from_tag(&invite));
    assert_eq!(retry.headers.to().unwrap().tag(), None);
    assert_eq!(retry.body, OFFER);
    // MD5, no qop: md5(md5("alice:trunk:s3cret"):NONCE:md5("INVITE:" + uri)),
    // computed with python3 hashlib.
    assert_eq!(
        retry.headers.get("Authorization"),
        Some(
            "Digest username=\"alice\", realm=\"trunk\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             uri=\"sip:+15551230000@gw.example:5060\", \
             response=\"ef1b3784d48288afa862d8ab72cbd3f3\", algorithm=MD5"
        )
    );

    // The 401 retransmitted: its ACK again, no third INVITE.
    gw.feed(ms(60), &unauthorized);
    let transmits = gw.transmits();
    assert_eq!(transmits.len(), 1);
    assert_non_2xx_ack(&request_of(&transmits[0]), &invite, "t401");

    gw.feed(ms(100), &reply(&retry, 200, Some("gwtag"), "", ANSWER));
    assert_eq!(
        gw.events(),
        vec![SipEvent::Answered {
            leg,
            sdp: Some(ANSWER.as_bytes().to_vec())
        }]
    );
    let ack = gw.one_request("ACK");
    assert_eq!(ack.headers.cseq().unwrap().seq, 2);
    // Without Contact in the 2xx, the Request-URI stays the target.
    assert_eq!(ack.uri, REQUEST_URI);

    gw.endpoint.hangup(gw.at(ms(200)), leg).unwrap();
    let bye = gw.one_request("BYE");
    assert_eq!(bye.headers.cseq().unwrap().seq, 3);
}

fn hex_md5(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The value of `name="value"` or `name=value` in a Digest header.
fn digest_param(header: &str, name: &str) -> String {
    let start = header
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("{name} in {header}"))
        + name.len()
        + 1;
    let rest = &header[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted[..quoted.find('"').unwrap()].to_owned(),
        None => rest.split(',').next().unwrap().trim().to_owned(),
    }
}

#[test]
fn proxy_authenticate_challenge_with_qop_auth() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(true);
    let challenge = format!(
        "Proxy-Authenticate: Digest realm=\"proxy\", nonce=\"{NONCE}\", opaque=\"op1\", \
         algorithm=MD5, qop=\"auth\"\r\n"
    );
    gw.feed(ms(40), &reply(&invite, 407, Some("t407"), &challenge, ""));
    let transmits = gw.transmits();
    assert_eq!(transmits.len(), 2);
    assert_non_2xx_ack(&request_of(&transmits[0]), &invite, "t407");
    let retry = request_of(&transmits[1]);
    assert_eq!(retry.headers.get("Authorization"), None);
    let header = retry.headers.get("Proxy-Authorization").unwrap().to_owned();
    assert!(header.starts_with("Digest "));
    assert_eq!(digest_param(&header, "username"), "alice");
    assert_eq!(digest_param(&header, "realm"), "proxy");
    assert_eq!(digest_param(&header, "uri"), REQUEST_URI);
    assert_eq!(digest_param(&header, "opaque"), "op1");
    assert_eq!(digest_param(&header, "qop"), "auth");
    assert_eq!(digest_param(&header, "nc"), "00000001");
    let cnonce = digest_param(&header, "cnonce");
    assert!(!cnonce.is_empty());
    // RFC 2617 §3.2.2.1 with qop=auth, computed here from first principles.
    let ha1 = hex_md5("alice:proxy:s3cret");
    let ha2 = hex_md5(&format!("INVITE:{REQUEST_URI}"));
    let expected = hex_md5(&format!("{ha1}:{NONCE}:00000001:{cnonce}:auth:{ha2}"));
    assert_eq!(digest_param(&header, "response"), expected);

    gw.feed(ms(100), &reply(&retry, 200, Some("gwtag"), "", ANSWER));
    assert!(matches!(
        gw.events().as_slice(),
        [SipEvent::Answered { leg: answered, .. }] if *answered == leg
    ));
    gw.one_request("ACK");
}

#[test]
fn second_challenge_fails_the_call() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(true);
    let challenge = format!("WWW-Authenticate: Digest realm=\"trunk\", nonce=\"{NONCE}\"\r\n");
    gw.feed(ms(40), &reply(&invite, 401, Some("a"), &challenge, ""));
    let retry = request_of(&gw.transmits()[1]);
    gw.feed(ms(80), &reply(&retry, 401, Some("b"), &challenge, ""));
    let ack = gw.one_request("ACK");
    assert_non_2xx_ack(&ack, &retry, "b");
    assert_eq!(
        gw.events(),
        vec![
            SipEvent::Failed { leg, status: 401 },
            SipEvent::Terminated {
                leg,
                reason: TerminationReason::Failed { status: 401 }
            }
        ]
    );
}

#[test]
fn challenge_without_credentials_fails_the_call() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(false);
    let challenge = format!("WWW-Authenticate: Digest realm=\"trunk\", nonce=\"{NONCE}\"\r\n");
    gw.feed(ms(40), &reply(&invite, 401, Some("a"), &challenge, ""));
    gw.one_request("ACK");
    assert_eq!(gw.events()[0], SipEvent::Failed { leg, status: 401 });
}

#[test]
fn busy_is_acked_and_reported() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(false);
    gw.feed(ms(40), &reply(&invite, 180, Some("busytag"), "", ""));
    gw.events();
    let busy = reply(&invite, 486, Some("busytag"), "", "");
    gw.feed(ms(100), &busy);
    let ack = gw.one_request("ACK");
    assert_non_2xx_ack(&ack, &invite, "busytag");
    assert_eq!(
        gw.events(),
        vec![
            SipEvent::Failed { leg, status: 486 },
            SipEvent::Terminated {
                leg,
                reason: TerminationReason::Failed { status: 486 }
            }
        ]
    );
    // Timer D: a retransmitted 486 is ACKed again and reported no more.
    gw.feed(ms(600), &busy);
    let again = gw.one_request("ACK");
    assert_eq!(again, ack);
    assert!(gw.events().is_empty());
    gw.tick(ms(20_000));
    assert!(gw.transmits().is_empty());
    // After 64·T1 the leg is forgotten.
    gw.tick(ms(40_000));
    assert_eq!(gw.endpoint.leg_count(), 0);
}

#[test]
fn cancel_after_ringing() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(false);
    gw.feed(ms(40), &reply(&invite, 180, Some("ringtag"), "", ""));
    gw.events();
    gw.endpoint.cancel(gw.at(ms(1000)), leg).unwrap();
    let cancel = gw.one_request("CANCEL");
    assert_eq!(cancel.uri, invite.uri);
    assert_eq!(branch_of(&cancel), branch_of(&invite));
    let cseq = cancel.headers.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (1, Method::Cancel));
    assert_eq!(cancel.headers.to().unwrap().tag(), None);
    assert_eq!(cancel.headers.get("From"), invite.headers.get("From"));
    assert_eq!(cancel.headers.call_id(), invite.headers.call_id());

    // CANCEL is retransmitted like any non-INVITE request until answered.
    gw.tick(ms(1500));
    assert_eq!(gw.one_request("CANCEL"), cancel);
    gw.feed(ms(1600), &reply(&cancel, 200, Some("ringtag"), "", ""));
    gw.tick(ms(2500));
    assert!(gw.transmits().is_empty());
    assert!(gw.events().is_empty());

    gw.feed(ms(1700), &reply(&invite, 487, Some("ringtag"), "", ""));
    assert_non_2xx_ack(&gw.one_request("ACK"), &invite, "ringtag");
    assert_eq!(
        gw.events(),
        vec![
            SipEvent::Failed { leg, status: 487 },
            SipEvent::Terminated {
                leg,
                reason: TerminationReason::Failed { status: 487 }
            }
        ]
    );
    assert!(gw.endpoint.cancel(gw.at(ms(1800)), leg).is_err());
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(false);
    gw.endpoint.cancel(gw.at(ms(10)), leg).unwrap();
    assert!(gw.transmits().is_empty(), "no CANCEL before a provisional");
    gw.feed(ms(100), &reply(&invite, 100, None, "", ""));
    let cancel = gw.one_request("CANCEL");
    assert_eq!(branch_of(&cancel), branch_of(&invite));
    gw.feed(ms(150), &reply(&cancel, 200, None, "", ""));
    // The gateway never sends 487: give up 64·T1 after the CANCEL.
    gw.tick(ms(32_000));
    assert!(gw.events().is_empty());
    gw.tick(ms(32_100));
    assert_eq!(gw.events()[0], SipEvent::Failed { leg, status: 487 });
}

#[test]
fn answer_racing_a_cancel_is_acked_and_hung_up() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(false);
    gw.feed(ms(40), &reply(&invite, 180, Some("t"), "", ""));
    gw.events();
    gw.endpoint.cancel(gw.at(ms(50)), leg).unwrap();
    gw.one_request("CANCEL");
    gw.feed(ms(60), &reply(&invite, 200, Some("t"), "", ANSWER));
    let transmits = gw.transmits();
    let methods: Vec<String> = transmits
        .iter()
        .map(|t| request_of(t).method.as_str().to_owned())
        .collect();
    assert_eq!(methods, vec!["ACK", "BYE"]);
    assert_eq!(
        gw.events(),
        vec![
            SipEvent::Failed { leg, status: 487 },
            SipEvent::Terminated {
                leg,
                reason: TerminationReason::Failed { status: 487 }
            }
        ]
    );
}

#[test]
fn gateway_requests_on_an_answered_outbound_leg() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(false);
    gw.feed(ms(40), &reply(&invite, 200, Some("gwtag"), "", ANSWER));
    gw.events();
    gw.one_request("ACK");

    gw.feed(ms(100), &gateway_request("OPTIONS", &invite, "gwtag", 1));
    let transmits = gw.transmits();
    assert_eq!(response_of(&transmits[0]).status, 200);

    // re-INVITE: answered with our offer as the current session.
    gw.feed(ms(200), &gateway_request("INVITE", &invite, "gwtag", 2));
    let transmits = gw.transmits();
    let ok = response_of(&transmits[0]);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, OFFER);
    gw.feed(ms(250), &gateway_request("ACK", &invite, "gwtag", 2));
    assert!(gw.events().is_empty());

    gw.feed(ms(300), &gateway_request("BYE", &invite, "gwtag", 3));
    let transmits = gw.transmits();
    assert_eq!(transmits.len(), 1);
    let ok = response_of(&transmits[0]);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.cseq().unwrap().method, Method::Bye);
    assert_eq!(
        gw.events(),
        vec![
            SipEvent::RemoteHangup { leg },
            SipEvent::Terminated {
                leg,
                reason: TerminationReason::RemoteHangup
            }
        ]
    );
}

#[test]
fn hangup_while_calling_cancels() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(false);
    gw.feed(ms(40), &reply(&invite, 183, Some("t"), "", ANSWER));
    gw.events();
    gw.endpoint.hangup(gw.at(ms(50)), leg).unwrap();
    gw.one_request("CANCEL");
}

#[test]
fn inbound_and_outbound_leg_ids_share_one_counter() {
    let gw = Gateway::new();
    let ids = gw.endpoint.leg_ids();
    let first = gw.endpoint.allocate_leg_id();
    let outside = LegId(ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let second = gw.endpoint.allocate_leg_id();
    assert!(first < outside && outside < second);
}

#[test]
fn a_second_fork_answering_is_acked_and_hung_up() {
    let mut gw = Gateway::new();
    let (leg, invite) = gw.place(false);
    gw.feed(ms(40), &reply(&invite, 200, Some("first"), "", ANSWER));
    gw.events();
    gw.one_request("ACK");

    let fork = reply(
        &invite,
        200,
        Some("second"),
        "Contact: <sip:fork@192.0.2.33:5060>\r\n",
        ANSWER,
    );
    gw.feed(ms(60), &fork);
    assert!(
        gw.events().is_empty(),
        "the first 2xx's dialog stays the call"
    );
    let transmits = gw.transmits();
    assert_eq!(transmits.len(), 2);
    let fork_addr: SocketAddr = "192.0.2.33:5060".parse().unwrap();
    for (transmit, method) in transmits.iter().zip([Method::Ack, Method::Bye]) {
        assert_eq!(transmit.to, fork_addr);
        let request = request_of(transmit);
        assert_eq!(request.method, method);
        assert_eq!(request.uri, "sip:fork@192.0.2.33:5060");
        assert_eq!(request.headers.to().unwrap().tag(), Some("second"));
    }

    // Our own hangup still ends the first dialog.
    gw.endpoint.hangup(gw.at(ms(100)), leg).unwrap();
    let bye = gw.one_request("BYE");
    assert_eq!(bye.headers.to().unwrap().tag(), Some("first"));
    assert_eq!(bye.uri, REQUEST_URI);
}
