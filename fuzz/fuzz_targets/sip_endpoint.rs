//! Fuzz target: the sans-IO SIP endpoint (`sip::endpoint::Endpoint`) driven by
//! a script of datagrams, clock advances and application actions.
//!
//! Input format: steps separated by NUL bytes; the first byte of a step picks
//! what it does, the rest is its argument:
//!   `D` datagram from 192.0.2.10:5060   `d` datagram from [2001:db8::7]:5070
//!   `T` advance the clock by the next two bytes (little-endian) × 10 ms,
//!       running every timer that falls due on the way
//!   `R` ringing / `A` answer (SDP = argument) / `J` reject (status from the
//!       next two bytes) / `H` hangup / `C` cancel, on the leg picked by the
//!       next byte (`A` and `J`: the newest leg)
//!   `O` place an outbound call to 192.0.2.10:5060 with Digest credentials
//!       (SDP offer = argument)
//!   anything else: the whole step is a datagram from 192.0.2.10:5060.
//! In datagrams, `$TAG` is replaced by the To tag of the last response the
//! endpoint sent, and `$BRANCH`, `$CALLID` and `$FTAG` by the branch, Call-ID
//! and From tag of the last request it sent, so the fuzzer can reach dialog
//! states although the endpoint draws tags, branches and Call-IDs from the OS
//! RNG.
//!
//! Beyond "never panics": every leg's `Terminated` event comes exactly once and
//! last; no two `IncomingCall`s share a leg id; every datagram the endpoint
//! sends, except a `400`/`505` answering a datagram that did not parse, parses
//! as SIP; `Progress`/`Answered`/`Failed` only ever concern outbound legs and
//! `IncomingCall` never does; the next deadline is never in the past after
//! timers ran; once the application rejects, hangs up or cancels every call
//! and 160 s pass, every leg has terminated and none is left.
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sip::endpoint::{DigestCredentials, Endpoint, EndpointConfig, LegId, OutgoingCall, SipEvent};
use sip::message::{self, SipMessage};

/// Cap on timer firings per clock advance, so a bug that reschedules a timer
/// at the same instant shows up as a failed check rather than a hang.
const MAX_TIMER_RUNS_PER_ADVANCE: usize = 10_000;

struct Harness {
    endpoint: Endpoint,
    now: Instant,
    legs: Vec<LegId>,
    seen_incoming: HashSet<LegId>,
    terminated: HashSet<LegId>,
    /// To tag of the last response the endpoint sent (`$TAG`).
    last_tag: Vec<u8>,
    /// Branch, Call-ID and From tag of the last request the endpoint sent
    /// (`$BRANCH`, `$CALLID`, `$FTAG`).
    last_branch: Vec<u8>,
    last_call_id: Vec<u8>,
    last_from_tag: Vec<u8>,
    outbound: HashSet<LegId>,
}

impl Harness {
    fn drain(&mut self, from_malformed: bool) {
        while let Some(transmit) = self.endpoint.poll_transmit() {
            match message::parse(&transmit.data) {
                Ok(SipMessage::Response(response)) => {
                    if let Some(tag) = response
                        .headers
                        .to()
                        .ok()
                        .and_then(|to| to.tag().map(str::to_owned))
                    {
                        self.last_tag = tag.into_bytes();
                    }
                }
                Ok(SipMessage::Request(request)) => {
                    let headers = &request.headers;
                    if let Some(branch) = headers
                        .top_via()
                        .ok()
                        .and_then(|via| via.branch().map(str::to_owned))
                    {
                        self.last_branch = branch.into_bytes();
                    }
                    if let Some(call_id) = headers.call_id() {
                        self.last_call_id = call_id.as_bytes().to_vec();
                    }
                    if let Some(tag) = headers
                        .from()
                        .ok()
                        .and_then(|from| from.tag().map(str::to_owned))
                    {
                        self.last_from_tag = tag.into_bytes();
                    }
                }
                Err(error) if !from_malformed => panic!(
                    "endpoint sent an unparsable datagram ({error}):\n{}",
                    String::from_utf8_lossy(&transmit.data)
                ),
                Err(_) => {}
            }
        }
        while let Some(event) = self.endpoint.poll_event() {
            let leg = match &event {
                SipEvent::IncomingCall(call) => {
                    assert!(
                        self.seen_incoming.insert(call.leg),
                        "leg id reused: {}",
                        call.leg
                    );
                    assert!(
                        !self.outbound.contains(&call.leg),
                        "{} is outbound",
                        call.leg
                    );
                    self.legs.push(call.leg);
                    call.leg
                }
                SipEvent::Acked { leg }
                | SipEvent::Cancelled { leg }
                | SipEvent::RemoteHangup { leg } => *leg,
                SipEvent::Progress { leg, .. }
                | SipEvent::Answered { leg, .. }
                | SipEvent::Failed { leg, .. } => {
                    assert!(self.outbound.contains(leg), "{event:?} on an inbound leg");
                    *leg
                }
                SipEvent::Terminated { leg, .. } => {
                    assert!(!self.terminated.contains(leg), "{leg} terminated twice");
                    self.terminated.insert(*leg);
                    continue;
                }
            };
            assert!(
                !self.terminated.contains(&leg),
                "event {event:?} after termination"
            );
        }
    }

    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        let mut runs = 0;
        while let Some(deadline) = self.endpoint.poll_timeout() {
            if deadline > target {
                break;
            }
            runs += 1;
            assert!(runs < MAX_TIMER_RUNS_PER_ADVANCE, "timers keep falling due");
            self.now = self.now.max(deadline);
            self.endpoint.handle_timeout(self.now);
            self.drain(false);
        }
        self.now = target;
        self.endpoint.handle_timeout(self.now);
        self.drain(false);
        if let Some(deadline) = self.endpoint.poll_timeout() {
            assert!(deadline > self.now, "deadline {deadline:?} already passed");
        }
    }

    fn leg(&self, selector: Option<&u8>) -> LegId {
        match (selector, self.legs.len()) {
            (_, 0) => LegId(1),
            (Some(&index), count) => self.legs[usize::from(index) % count],
            (None, count) => self.legs[count - 1],
        }
    }
}

fn u16_le(bytes: &[u8]) -> u16 {
    match bytes {
        [] => 0,
        [low] => u16::from(*low),
        [low, high, ..] => u16::from_le_bytes([*low, *high]),
    }
}

/// `data` with every `pattern` replaced by `with`.
fn replace(data: &[u8], pattern: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while !rest.is_empty() {
        if rest.starts_with(pattern) {
            out.extend_from_slice(with);
            rest = &rest[pattern.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

fn datagram(harness: &mut Harness, from: SocketAddr, data: &[u8]) {
    let data = replace(data, b"$TAG", &harness.last_tag);
    let data = replace(&data, b"$BRANCH", &harness.last_branch);
    let data = replace(&data, b"$CALLID", &harness.last_call_id);
    let data = &replace(&data, b"$FTAG", &harness.last_from_tag);
    let malformed = message::parse(data).is_err();
    harness.endpoint.handle_datagram(harness.now, from, data);
    harness.drain(malformed);
}

fuzz_target!(|data: &[u8]| {
    let local: SocketAddr = "203.0.113.5:5060".parse().expect("literal");
    let peer_v4: SocketAddr = "192.0.2.10:5060".parse().expect("literal");
    let peer_v6: SocketAddr = "[2001:db8::7]:5070".parse().expect("literal");
    // A small leg cap so the 503 path is reachable too.
    let mut config = EndpointConfig::new(local, "fuzz");
    config.max_legs = 4;
    let mut harness = Harness {
        endpoint: Endpoint::new(config),
        now: Instant::now(),
        legs: Vec::new(),
        seen_incoming: HashSet::new(),
        terminated: HashSet::new(),
        last_tag: Vec::new(),
        last_branch: Vec::new(),
        last_call_id: Vec::new(),
        last_from_tag: Vec::new(),
        outbound: HashSet::new(),
    };
    for step in data.split(|&b| b == 0) {
        let Some((&op, arg)) = step.split_first() else {
            continue;
        };
        let now = harness.now;
        match op {
            b'D' => datagram(&mut harness, peer_v4, arg),
            b'd' => datagram(&mut harness, peer_v6, arg),
            b'T' => harness.advance(Duration::from_millis(u64::from(u16_le(arg)) * 10)),
            b'R' => {
                let leg = harness.leg(arg.first());
                let _ = harness.endpoint.ringing(now, leg);
                harness.drain(false);
            }
            b'A' => {
                let leg = harness.leg(None);
                let _ = harness.endpoint.answer(now, leg, arg.to_vec());
                harness.drain(false);
            }
            b'J' => {
                let leg = harness.leg(None);
                let _ = harness.endpoint.reject(now, leg, u16_le(arg));
                harness.drain(false);
            }
            b'H' => {
                let leg = harness.leg(arg.first());
                let _ = harness.endpoint.hangup(now, leg);
                harness.drain(false);
            }
            b'C' => {
                let leg = harness.leg(arg.first());
                let _ = harness.endpoint.cancel(now, leg);
                harness.drain(false);
            }
            b'O' => {
                let leg = harness.endpoint.allocate_leg_id();
                let call = OutgoingCall {
                    request_uri: "sip:+15551230000@192.0.2.10:5060".to_owned(),
                    destination: peer_v4,
                    from_uri: "sip:+15005550006@203.0.113.5".to_owned(),
                    from_display: Some("Fuzz \"Caller\"".to_owned()),
                    to_uri: "sip:+15551230000@192.0.2.10".to_owned(),
                    sdp: arg.to_vec(),
                    credentials: Some(DigestCredentials {
                        username: "trunk".to_owned(),
                        password: "secret".to_owned(),
                    }),
                    headers: vec![("X-Fuzz".to_owned(), "1".to_owned())],
                };
                if harness.endpoint.invite(now, leg, call).is_ok() {
                    harness.outbound.insert(leg);
                    harness.legs.push(leg);
                }
                harness.drain(false);
            }
            _ => datagram(&mut harness, peer_v4, step),
        }
    }
    // The application ends every call still up; then every leg must run out.
    let now = harness.now;
    for leg in harness.legs.clone() {
        if !harness.terminated.contains(&leg)
            && harness.endpoint.reject(now, leg, 480).is_err()
            && harness.endpoint.hangup(now, leg).is_err()
        {
            let _ = harness.endpoint.cancel(now, leg);
        }
        harness.drain(false);
    }
    for _ in 0..4 {
        harness.advance(Duration::from_secs(40));
    }
    for leg in &harness.legs {
        assert!(harness.terminated.contains(leg), "{leg} never terminated");
    }
    assert_eq!(
        harness.endpoint.leg_count(),
        0,
        "legs left after every call ended"
    );
});
