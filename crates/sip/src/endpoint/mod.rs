//! The sans-IO SIP endpoint: answers inbound calls (UAS legs) and places
//! outbound ones (UAC legs, see the `uac` module).
//!
//! [`Endpoint`] owns every transaction and dialog. Its inputs are datagrams
//! ([`Endpoint::handle_datagram`]), the passage of time
//! ([`Endpoint::handle_timeout`]) and the application's decisions
//! ([`Endpoint::ringing`], [`Endpoint::answer`], [`Endpoint::reject`],
//! [`Endpoint::hangup`], [`Endpoint::invite`], [`Endpoint::cancel`]); its
//! outputs are datagrams ([`Endpoint::poll_transmit`]), [`SipEvent`]s
//! ([`Endpoint::poll_event`]) and the next deadline
//! ([`Endpoint::poll_timeout`]). It never blocks, reads a clock or touches a
//! socket, so it is tested by feeding it bytes and instants.
//!
//! Server transactions follow RFC 3261 §17.2 over UDP (with RFC 6026's
//! "Accepted" state for 2xx), dialogs §12, CANCEL §9.2, BYE §15. Client
//! transactions (our BYEs, and the INVITE and CANCEL of outbound legs) are
//! keyed by branch in `client_transactions`. Leg ids come from a counter
//! shared with the transport ([`Endpoint::leg_ids`]).

mod build;
mod digest;
mod leg;
#[cfg(test)]
mod tests;
mod uac;
#[cfg(test)]
mod uac_tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;
use tracing::{debug, trace};

use crate::message::BRANCH_MAGIC_COOKIE;
use crate::message::{self, Method, ParseError, Request, Response, SipMessage, Via};
use build::{bye_request, ALLOW};
use leg::{
    ClientTransaction, Leg, LegState, ReinviteAnswer, ResponseContext, Retransmit, RetransmitAction,
};
pub use uac::{DigestCredentials, OutgoingCall};

/// Default cap on tracked legs (including briefly lingering ones).
pub const DEFAULT_MAX_LEGS: usize = 100_000;
/// Cap on cached non-INVITE final responses.
const MAX_CACHED_RESPONSES: usize = 200_000;

/// Endpoint settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Our address: used in Contact and Via. When its IP is unspecified
    /// (`0.0.0.0`), the host the caller used in the Request-URI is used.
    pub local_addr: SocketAddr,
    /// Sent as `Server` in responses and `User-Agent` in requests.
    pub user_agent: String,
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Maximum retransmit interval, 4 s by default.
    pub t2: Duration,
    /// New INVITEs beyond this many tracked legs get `503`.
    pub max_legs: usize,
}

impl EndpointConfig {
    /// RFC 3261 default timers and [`DEFAULT_MAX_LEGS`].
    pub fn new(local_addr: SocketAddr, user_agent: impl Into<String>) -> Self {
        EndpointConfig {
            local_addr,
            user_agent: user_agent.into(),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            max_legs: DEFAULT_MAX_LEGS,
        }
    }

    fn transaction_lifetime(&self) -> Duration {
        self.t1 * 64
    }

    /// T4 scaled from T1 (5 s for the default 500 ms).
    fn linger(&self) -> Duration {
        self.t1 * 10
    }
}

/// Identifies one call leg for the life of an [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "leg-{}", self.0)
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// A new INVITE, already answered with `100 Trying`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub leg: LegId,
    pub call_id: String,
    pub from_uri: String,
    pub from_user: String,
    pub from_display: Option<String>,
    pub to_uri: String,
    pub to_user: String,
    /// User part of the Request-URI (the dialled number for trunks).
    pub request_user: String,
    /// The SDP offer, when the INVITE carried one.
    pub sdp: Option<Vec<u8>>,
    pub source: SocketAddr,
    /// Every header of the INVITE, in order.
    pub headers: Vec<(String, String)>,
}

/// Why a leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminationReason {
    /// Our BYE got a final response.
    LocalHangup,
    /// Our BYE got no final response within 64*T1.
    LocalHangupTimeout,
    /// The remote side sent BYE.
    RemoteHangup,
    /// The caller cancelled before our final response.
    Cancelled,
    /// We answered with this non-2xx final response.
    Rejected { status: u16 },
    /// Our 2xx was never acknowledged; the endpoint sent BYE itself.
    AckTimeout,
    /// Our outbound call was not answered: this final status (408 on
    /// timeout, 487 when cancelled).
    Failed { status: u16 },
}

/// What the endpoint tells the application.
// A handful of events per call: boxing IncomingCall would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipEvent {
    IncomingCall(IncomingCall),
    /// The ACK for our 2xx arrived: the call is up.
    Acked {
        leg: LegId,
    },
    /// CANCEL before our final response; 200 (CANCEL) and 487 (INVITE) are sent.
    Cancelled {
        leg: LegId,
    },
    /// BYE received; 200 is sent.
    RemoteHangup {
        leg: LegId,
    },
    /// Outbound call: a provisional response (180, 183, …; once per status
    /// change), with its early-media SDP if it had a body.
    Progress {
        leg: LegId,
        status: u16,
        sdp: Option<Vec<u8>>,
    },
    /// Outbound call answered (2xx); the endpoint has sent the ACK.
    Answered {
        leg: LegId,
        sdp: Option<Vec<u8>>,
    },
    /// Outbound call ended without an answer: the final non-2xx status
    /// (after one Digest retry on 401/407), 408 when the INVITE timed out,
    /// 487 after [`Endpoint::cancel`]. `Terminated` follows.
    Failed {
        leg: LegId,
        status: u16,
    },
    /// The leg is gone for good. Emitted exactly once per leg, last.
    Terminated {
        leg: LegId,
        reason: TerminationReason,
    },
}

/// Why an application action was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    #[error("{0} is not a known leg")]
    UnknownLeg(LegId),
    #[error("{leg} cannot do that while {state}")]
    InvalidState { leg: LegId, state: &'static str },
    #[error("{0} is not a valid final non-2xx status")]
    InvalidStatus(u16),
    #[error("{0} is already in use")]
    LegInUse(LegId),
    #[error("too many legs")]
    TooManyLegs,
    #[error("invalid outgoing call: {0}")]
    InvalidRequest(String),
}

/// Transaction identity (RFC 3261 §17.2.3, with the RFC 2543 fallback).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TxKey {
    Branch {
        branch: String,
        sent_by: String,
        method: String,
    },
    Legacy {
        call_id: String,
        from_tag: String,
        cseq: u32,
        sent_by: String,
        method: String,
    },
}

impl TxKey {
    /// The key of `request`'s transaction, as if its method were `method`
    /// (ACK and CANCEL look up the INVITE transaction).
    fn for_request(request: &Request, via: &Via, method: &Method) -> TxKey {
        let sent_by = via.sent_by().to_ascii_lowercase();
        match via.branch() {
            Some(branch) if branch.starts_with(BRANCH_MAGIC_COOKIE) => TxKey::Branch {
                branch: branch.to_owned(),
                sent_by,
                method: method.as_str().to_owned(),
            },
            _ => TxKey::Legacy {
                call_id: request.headers.call_id().unwrap_or_default().to_owned(),
                from_tag: request
                    .headers
                    .from()
                    .ok()
                    .and_then(|from| from.tag().map(str::to_owned))
                    .unwrap_or_default(),
                cseq: request.headers.cseq().map(|cseq| cseq.seq).unwrap_or(0),
                sent_by,
                method: method.as_str().to_owned(),
            },
        }
    }
}

/// A non-INVITE server transaction's final response, kept for timer J.
struct CachedResponse {
    destination: SocketAddr,
    data: Vec<u8>,
    expires_at: Instant,
}

/// Final responses of non-INVITE server transactions, so retransmitted
/// requests get the same answer without being processed again.
#[derive(Default)]
struct ResponseCache {
    entries: HashMap<TxKey, CachedResponse>,
    expiry: VecDeque<(Instant, TxKey)>,
}

impl ResponseCache {
    fn get(&self, key: &TxKey) -> Option<&CachedResponse> {
        self.entries.get(key)
    }

    fn insert(&mut self, key: TxKey, destination: SocketAddr, data: Vec<u8>, expires_at: Instant) {
        if self.entries.len() >= MAX_CACHED_RESPONSES {
            return;
        }
        self.expiry.push_back((expires_at, key.clone()));
        self.entries.insert(
            key,
            CachedResponse {
                destination,
                data,
                expires_at,
            },
        );
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiry.front() {
            if *at > now {
                break;
            }
            if let Some((at, key)) = self.expiry.pop_front() {
                if self
                    .entries
                    .get(&key)
                    .is_some_and(|entry| entry.expires_at == at)
                {
                    self.entries.remove(&key);
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.expiry.front().map(|(at, _)| *at)
    }
}

/// Queued outputs.
#[derive(Default)]
struct Outputs {
    transmits: VecDeque<Transmit>,
    events: VecDeque<SipEvent>,
}

impl Outputs {
    fn send(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.transmits.push_back(Transmit { to, data });
    }

    fn emit(&mut self, event: SipEvent) {
        self.events.push_back(event);
    }
}

/// Tags and branches.
struct IdGenerator {
    rng: StdRng,
}

impl IdGenerator {
    fn tag(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }

    fn branch(&mut self) -> String {
        format!("{BRANCH_MAGIC_COOKIE}{:016x}", self.rng.random::<u64>())
    }
}

/// What a leg's timer asks the endpoint to do once the leg is released.
enum TimerOutcome {
    Nothing,
    Send(SocketAddr, Vec<u8>),
    AckTimedOut,
    Terminate(TerminationReason),
    /// An outbound INVITE ended without a final response (timer B, or no
    /// answer to our CANCEL): fail the leg with this status.
    Fail(u16),
    Remove,
}

/// The SIP protocol core. See the module docs.
pub struct Endpoint {
    config: EndpointConfig,
    legs: HashMap<LegId, Leg>,
    /// INVITE server transactions → leg (retransmissions, CANCEL, non-2xx ACK).
    invite_transactions: HashMap<TxKey, LegId>,
    /// (Call-ID, our tag) → leg.
    dialogs: HashMap<(String, String), LegId>,
    /// Branch of a request we sent → leg.
    client_transactions: HashMap<String, LegId>,
    responses: ResponseCache,
    timers: BinaryHeap<Reverse<(Instant, LegId)>>,
    out: Outputs,
    ids: IdGenerator,
    /// Leg ids, shared with the transport so ids it allocates for outbound
    /// calls never collide with inbound ones.
    leg_ids: Arc<AtomicU64>,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        Endpoint {
            config,
            legs: HashMap::new(),
            invite_transactions: HashMap::new(),
            dialogs: HashMap::new(),
            client_transactions: HashMap::new(),
            responses: ResponseCache::default(),
            timers: BinaryHeap::new(),
            out: Outputs::default(),
            ids: IdGenerator {
                rng: StdRng::from_os_rng(),
            },
            leg_ids: Arc::new(AtomicU64::new(1)),
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Legs currently tracked, including ones lingering after termination.
    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match message::parse(data) {
            Ok(SipMessage::Request(request)) => self.on_request(now, from, request),
            Ok(SipMessage::Response(response)) => self.on_response(now, response),
            Err(error) => self.on_malformed(from, data, &error),
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.responses.expire(now);
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let due = match self.legs.get_mut(&id) {
                Some(leg) if leg.scheduled == Some(at) => {
                    leg.scheduled = None;
                    true
                }
                _ => false,
            };
            if due {
                self.on_leg_timer(now, id);
                self.reschedule(id);
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SipEvent> {
        self.out.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let leg_timer = self.timers.peek().map(|Reverse((at, _))| *at);
        match (leg_timer, self.responses.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends `180 Ringing` (with our To tag and Contact).
    pub fn ringing(&mut self, now: Instant, leg: LegId) -> Result<(), EndpointError> {
        let _ = now;
        let call = proceeding_leg(&mut self.legs, leg)?;
        let response = call.invite_context.build(
            180,
            Some(&call.local_tag),
            &self.config.user_agent,
            &[("Contact", call.contact_header())],
            b"",
        );
        call.last_response = response.clone();
        let destination = call.response_destination;
        self.out.send(destination, response);
        Ok(())
    }

    /// Sends `200 OK` with `sdp`, retransmitted (T1, 2T1, … capped at T2)
    /// until the ACK arrives or 64*T1 passes.
    pub fn answer(&mut self, now: Instant, leg: LegId, sdp: Vec<u8>) -> Result<(), EndpointError> {
        let t1 = self.config.t1;
        let lifetime = self.config.transaction_lifetime();
        let call = proceeding_leg(&mut self.legs, leg)?;
        let mut extra = vec![
            ("Contact", call.contact_header()),
            ("Allow", ALLOW.to_owned()),
        ];
        if !sdp.is_empty() {
            extra.push(("Content-Type", "application/sdp".to_owned()));
        }
        let response = call.invite_context.build(
            200,
            Some(&call.local_tag),
            &self.config.user_agent,
            &extra,
            &sdp,
        );
        call.last_response = response.clone();
        call.local_sdp = Some(sdp);
        call.state = LegState::Accepted {
            retransmit: Retransmit::start(now, t1, lifetime),
            hangup_requested: false,
        };
        let destination = call.response_destination;
        self.out.send(destination, response);
        self.reschedule(leg);
        Ok(())
    }

    /// Sends a non-2xx final response (300–699), retransmitted until the
    /// ACK arrives (timers G/H).
    pub fn reject(&mut self, now: Instant, leg: LegId, status: u16) -> Result<(), EndpointError> {
        if !(300..=699).contains(&status) {
            return Err(EndpointError::InvalidStatus(status));
        }
        self.proceeding_leg(leg)?;
        self.send_final_failure(now, leg, status, TerminationReason::Rejected { status });
        Ok(())
    }

    /// Ends an answered call (inbound or outbound) with BYE. On a 2xx not
    /// yet acknowledged the BYE waits for the ACK (RFC 3261 §15). Unanswered
    /// inbound legs must use [`Endpoint::reject`]; an unanswered outbound
    /// leg is cancelled ([`Endpoint::cancel`]).
    pub fn hangup(&mut self, now: Instant, leg: LegId) -> Result<(), EndpointError> {
        let call = self
            .legs
            .get_mut(&leg)
            .ok_or(EndpointError::UnknownLeg(leg))?;
        if matches!(call.state, LegState::Calling(_)) {
            return self.cancel(now, leg);
        }
        let terminated = call.terminated_emitted;
        match &mut call.state {
            LegState::Confirmed { .. } => {}
            LegState::Accepted {
                hangup_requested, ..
            } if !*hangup_requested && !terminated => {
                // RFC 3261 §15: the BYE waits for the ACK (or its timeout).
                *hangup_requested = true;
                return Ok(());
            }
            other => {
                return Err(EndpointError::InvalidState {
                    leg,
                    state: other.name(),
                })
            }
        }
        self.send_bye(now, leg);
        Ok(())
    }

    fn proceeding_leg(&mut self, leg: LegId) -> Result<&mut Leg, EndpointError> {
        proceeding_leg(&mut self.legs, leg)
    }

    // ---- incoming requests -------------------------------------------------

    fn on_request(&mut self, now: Instant, source: SocketAddr, request: Request) {
        let Ok(via) = request.headers.top_via() else {
            return;
        };
        let destination = via.response_destination(source);
        match &request.method {
            Method::Ack => self.on_ack(now, &request, &via),
            Method::Invite => self.on_invite(now, source, destination, &request, &via),
            method => {
                let key = TxKey::for_request(&request, &via, method);
                if let Some(cached) = self.responses.get(&key) {
                    trace!("retransmitted {method}: resending cached response");
                    let (to, data) = (cached.destination, cached.data.clone());
                    self.out.send(to, data);
                    return;
                }
                match method {
                    Method::Cancel => self.on_cancel(now, source, destination, key, &request, &via),
                    Method::Bye => self.on_bye(now, source, destination, key, &request),
                    Method::Options => {
                        let extra = [
                            ("Allow", ALLOW.to_owned()),
                            ("Accept", "application/sdp".to_owned()),
                            ("Supported", String::new()),
                        ];
                        self.reply_stateless(
                            now,
                            source,
                            destination,
                            Some(key),
                            &request,
                            200,
                            &extra,
                        );
                    }
                    Method::Other(_) => {
                        let extra = [("Allow", ALLOW.to_owned())];
                        self.reply_stateless(
                            now,
                            source,
                            destination,
                            Some(key),
                            &request,
                            501,
                            &extra,
                        );
                    }
                    _ => {
                        let extra = [("Allow", ALLOW.to_owned())];
                        self.reply_stateless(
                            now,
                            source,
                            destination,
                            Some(key),
                            &request,
                            405,
                            &extra,
                        );
                    }
                }
            }
        }
    }

    /// Answers outside any leg (a random To tag is added when missing). With
    /// a key, the response is cached for retransmissions (timer J).
    #[allow(clippy::too_many_arguments)]
    fn reply_stateless(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        key: Option<TxKey>,
        request: &Request,
        status: u16,
        extra: &[(&str, String)],
    ) {
        let tag = self.ids.tag();
        let response = ResponseContext::from_request(request, source).build(
            status,
            Some(&tag),
            &self.config.user_agent,
            extra,
            b"",
        );
        self.reply(now, key, destination, response);
    }

    fn reply(
        &mut self,
        now: Instant,
        key: Option<TxKey>,
        destination: SocketAddr,
        response: Vec<u8>,
    ) {
        if let Some(key) = key {
            let expires_at = now + self.config.transaction_lifetime();
            self.responses
                .insert(key, destination, response.clone(), expires_at);
        }
        self.out.send(destination, response);
    }

    fn on_invite(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        request: &Request,
        via: &Via,
    ) {
        let has_to_tag = request
            .headers
            .to()
            .ok()
            .is_some_and(|to| to.tag().is_some());
        if has_to_tag {
            self.on_reinvite(now, source, destination, request);
            return;
        }
        let key = TxKey::for_request(request, via, &Method::Invite);
        if let Some(id) = self.invite_transactions.get(&key) {
            if let Some(call) = self.legs.get(id) {
                let resend = matches!(
                    call.state,
                    LegState::Proceeding | LegState::Accepted { .. } | LegState::Completed { .. }
                );
                if resend && !call.last_response.is_empty() {
                    trace!(leg = %call.id, "INVITE retransmission: resending last response");
                    let (to, data) = (call.response_destination, call.last_response.clone());
                    self.out.send(to, data);
                }
            }
            return;
        }
        if self.legs.len() >= self.config.max_legs {
            debug!("leg limit reached: refusing INVITE with 503");
            let extra = [("Retry-After", "5".to_owned())];
            self.reply_stateless(now, source, destination, None, request, 503, &extra);
            return;
        }
        if !matches!(request.request_uri.scheme.as_str(), "sip" | "sips" | "tel") {
            self.reply_stateless(now, source, destination, None, request, 416, &[]);
            return;
        }
        self.create_leg(source, destination, key, request);
    }

    fn create_leg(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        key: TxKey,
        request: &Request,
    ) {
        let headers = &request.headers;
        let (Ok(from), Ok(to), Ok(cseq), Some(call_id)) = (
            headers.from(),
            headers.to(),
            headers.cseq(),
            headers.call_id(),
        ) else {
            return;
        };
        let id = self.allocate_leg_id();
        let local_tag = self.ids.tag();
        let invite_context = ResponseContext::from_request(request, source);
        let trying = invite_context.build(100, None, &self.config.user_agent, &[], b"");
        self.out.send(destination, trying.clone());

        let has_sdp_body = !request.body.is_empty()
            && headers
                .content_type()
                .is_none_or(|kind| kind.eq_ignore_ascii_case("application/sdp"));
        let remote_target = headers
            .contact()
            .map(|contact| contact.uri)
            .unwrap_or_else(|| from.uri.clone());
        let call = Leg {
            id,
            call_id: call_id.to_owned(),
            local_tag: local_tag.clone(),
            remote_tag: from.tag().map(str::to_owned),
            invite_key: key.clone(),
            invite_cseq: cseq.seq,
            remote_cseq: cseq.seq,
            local_cseq: 0,
            invite_context,
            response_destination: destination,
            source,
            local_party: format!("{};tag={local_tag}", headers.get("To").unwrap_or_default()),
            remote_party: headers.get("From").unwrap_or_default().to_owned(),
            remote_target,
            route_set: headers.record_route(),
            local_host: self.advertised_host(request),
            local_sdp: None,
            last_response: trying,
            state: LegState::Proceeding,
            terminated_emitted: false,
            uac_acks: Vec::new(),
            client_branches: Vec::new(),
            scheduled: None,
        };
        let incoming = IncomingCall {
            leg: id,
            call_id: call_id.to_owned(),
            from_uri: from.uri.clone(),
            from_user: from.user().to_owned(),
            from_display: from.display_name.clone(),
            to_uri: to.uri.clone(),
            to_user: to.user().to_owned(),
            request_user: request.request_uri.user.clone().unwrap_or_default(),
            sdp: has_sdp_body.then(|| request.body.clone()),
            source,
            headers: headers.to_pairs(),
        };
        debug!(leg = %id, call_id, "incoming call");
        self.invite_transactions.insert(key, id);
        self.dialogs.insert((call_id.to_owned(), local_tag), id);
        self.legs.insert(id, call);
        self.out.emit(SipEvent::IncomingCall(incoming));
    }

    /// `host:port` for Contact and Via.
    fn advertised_host(&self, request: &Request) -> String {
        let local = self.config.local_addr;
        if !local.ip().is_unspecified() {
            return local.to_string();
        }
        let uri = &request.request_uri;
        if uri.host.is_empty() {
            return local.to_string();
        }
        format!("{}:{}", uri.host, uri.port.unwrap_or(local.port()))
    }

    /// The leg whose dialog a request (with a To tag) belongs to.
    fn find_dialog(&self, request: &Request) -> Option<LegId> {
        let to = request.headers.to().ok()?;
        let call_id = request.headers.call_id()?;
        let id = *self
            .dialogs
            .get(&(call_id.to_owned(), to.tag()?.to_owned()))?;
        let call = self.legs.get(&id)?;
        let from_tag = request.headers.from().ok()?;
        let from_tag = from_tag.tag();
        match (&call.remote_tag, from_tag) {
            (Some(expected), Some(actual)) if expected != actual => None,
            _ => Some(id),
        }
    }

    fn on_reinvite(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        request: &Request,
    ) {
        let Some(id) = self.find_dialog(request) else {
            self.reply_stateless(now, source, destination, None, request, 481, &[]);
            return;
        };
        let Ok(cseq) = request.headers.cseq() else {
            return;
        };
        let t1 = self.config.t1;
        let lifetime = self.config.transaction_lifetime();
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        let contact = call.contact_header();
        let retry_after = [("Retry-After", "1".to_owned())];
        let status = match &mut call.state {
            LegState::Confirmed { reinvite } => {
                if let Some(pending) = reinvite.as_ref().filter(|p| p.cseq == cseq.seq) {
                    let (to, data) = (pending.destination, pending.response.clone());
                    self.out.send(to, data);
                    return;
                }
                if cseq.seq < call.remote_cseq {
                    500
                } else if cseq.seq == call.remote_cseq {
                    // An already acknowledged re-INVITE: absorb.
                    return;
                } else {
                    call.remote_cseq = cseq.seq;
                    let sdp = call.local_sdp.clone().unwrap_or_default();
                    let mut extra = vec![("Contact", contact), ("Allow", ALLOW.to_owned())];
                    if !sdp.is_empty() {
                        extra.push(("Content-Type", "application/sdp".to_owned()));
                    }
                    let response = ResponseContext::from_request(request, source).build(
                        200,
                        None,
                        &self.config.user_agent,
                        &extra,
                        &sdp,
                    );
                    *reinvite = Some(ReinviteAnswer {
                        cseq: cseq.seq,
                        response: response.clone(),
                        destination,
                        retransmit: Retransmit::start(now, t1, lifetime),
                    });
                    debug!(leg = %id, "re-INVITE answered with the current session");
                    self.out.send(destination, response);
                    self.reschedule(id);
                    return;
                }
            }
            LegState::Proceeding | LegState::Accepted { .. } => 500,
            _ => 481,
        };
        let extra: &[(&str, String)] = if status == 500 { &retry_after } else { &[] };
        self.reply_stateless(now, source, destination, None, request, status, extra);
    }

    fn on_ack(&mut self, now: Instant, request: &Request, via: &Via) {
        let id = self.find_dialog(request).or_else(|| {
            let key = TxKey::for_request(request, via, &Method::Invite);
            self.invite_transactions.get(&key).copied()
        });
        let (Some(id), Ok(cseq)) = (id, request.headers.cseq()) else {
            trace!("ACK matches no leg: dropped");
            return;
        };
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        match &mut call.state {
            LegState::Accepted {
                hangup_requested, ..
            } if cseq.seq == call.invite_cseq => {
                if *hangup_requested {
                    self.send_bye(now, id);
                } else {
                    call.state = LegState::Confirmed { reinvite: None };
                    self.out.emit(SipEvent::Acked { leg: id });
                    self.reschedule(id);
                }
            }
            LegState::Confirmed { reinvite }
                if reinvite.as_ref().is_some_and(|p| p.cseq == cseq.seq) =>
            {
                *reinvite = None;
                self.reschedule(id);
            }
            LegState::Completed { reason, .. } => {
                let reason = *reason;
                self.terminate(now, id, reason);
            }
            _ => {}
        }
    }

    fn on_cancel(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        key: TxKey,
        request: &Request,
        via: &Via,
    ) {
        let invite_key = TxKey::for_request(request, via, &Method::Invite);
        let Some(call) = self
            .invite_transactions
            .get(&invite_key)
            .and_then(|id| self.legs.get(id))
        else {
            self.reply_stateless(now, source, destination, Some(key), request, 481, &[]);
            return;
        };
        let id = call.id;
        let pending = matches!(call.state, LegState::Proceeding);
        let response = ResponseContext::from_request(request, source).build(
            200,
            Some(&call.local_tag),
            &self.config.user_agent,
            &[],
            b"",
        );
        self.reply(now, Some(key), destination, response);
        if pending {
            debug!(leg = %id, "cancelled by caller");
            self.out.emit(SipEvent::Cancelled { leg: id });
            self.send_final_failure(now, id, 487, TerminationReason::Cancelled);
        }
    }

    fn on_bye(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        key: TxKey,
        request: &Request,
    ) {
        /// Where a BYE's dialog stands.
        enum ByeTarget {
            Early,
            Established,
            Terminating,
            Gone,
        }
        let found = self.find_dialog(request).and_then(|id| {
            let call = self.legs.get(&id)?;
            let target = match call.state {
                LegState::Proceeding => ByeTarget::Early,
                LegState::Calling(_) => ByeTarget::Gone,
                LegState::Accepted { .. } | LegState::Confirmed { .. } => ByeTarget::Established,
                LegState::ByeSent { .. } => ByeTarget::Terminating,
                LegState::Completed { .. } | LegState::Lingering { .. } => ByeTarget::Gone,
            };
            Some((id, target, call.remote_cseq))
        });
        let (id, target) = match found {
            Some((_, ByeTarget::Gone, _)) | None => {
                self.reply_stateless(now, source, destination, Some(key), request, 481, &[]);
                return;
            }
            Some((id, target, remote_cseq)) => {
                let cseq = request.headers.cseq().map(|cseq| cseq.seq).unwrap_or(0);
                if cseq < remote_cseq {
                    self.reply_stateless(now, source, destination, Some(key), request, 500, &[]);
                    return;
                }
                if let Some(call) = self.legs.get_mut(&id) {
                    call.remote_cseq = cseq;
                }
                (id, target)
            }
        };
        self.reply_stateless(now, source, destination, Some(key), request, 200, &[]);
        match target {
            ByeTarget::Early => {
                debug!(leg = %id, "BYE on an early dialog");
                self.out.emit(SipEvent::RemoteHangup { leg: id });
                self.send_final_failure(now, id, 487, TerminationReason::RemoteHangup);
            }
            ByeTarget::Established => {
                debug!(leg = %id, "remote hangup");
                self.out.emit(SipEvent::RemoteHangup { leg: id });
                self.terminate(now, id, TerminationReason::RemoteHangup);
            }
            // BYE glare: ours is in flight and will end the leg.
            ByeTarget::Terminating | ByeTarget::Gone => {}
        }
    }

    // ---- incoming responses ------------------------------------------------

    fn on_response(&mut self, now: Instant, response: Response) {
        let Ok(via) = response.headers.top_via() else {
            return;
        };
        let Some(branch) = via.branch() else {
            return;
        };
        let Some(&id) = self.client_transactions.get(branch) else {
            trace!(
                status = response.status,
                "response matches no client transaction"
            );
            return;
        };
        match response.headers.cseq().map(|cseq| cseq.method) {
            Ok(Method::Bye) => {}
            Ok(Method::Invite) => {
                let branch = branch.to_owned();
                self.on_invite_response(now, id, &branch, &response);
                return;
            }
            Ok(Method::Cancel) => {
                self.on_cancel_response(id, &response);
                return;
            }
            _ => return,
        }
        let t2 = self.config.t2;
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        let LegState::ByeSent { transaction } = &mut call.state else {
            return;
        };
        if response.status < 200 {
            transaction.retransmit.interval = t2;
            return;
        }
        debug!(leg = %id, status = response.status, "BYE answered");
        let branch = transaction.branch.clone();
        self.client_transactions.remove(&branch);
        self.terminate(now, id, TerminationReason::LocalHangup);
    }

    // ---- malformed input ---------------------------------------------------

    fn on_malformed(&mut self, source: SocketAddr, data: &[u8], error: &ParseError) {
        let Some(recovered) = message::recover_request_headers(data) else {
            debug!(%source, %error, len = data.len(), "unparsable datagram dropped");
            return;
        };
        if recovered.method == Method::Ack {
            return;
        }
        let status = if *error == ParseError::UnsupportedVersion {
            505
        } else {
            400
        };
        debug!(%source, %error, status, "malformed request rejected");
        let warning = format!(
            "399 switchboard \"{}\"",
            error.to_string().replace('"', "'")
        );
        let tag = self.ids.tag();
        let response = ResponseContext::from_recovered(&recovered.headers, source).build(
            status,
            Some(&tag),
            &self.config.user_agent,
            &[("Warning", warning)],
            b"",
        );
        self.out.send(source, response);
    }

    // ---- leg lifecycle -----------------------------------------------------

    /// Sends a non-2xx final response on a proceeding leg and waits for its ACK.
    fn send_final_failure(
        &mut self,
        now: Instant,
        id: LegId,
        status: u16,
        reason: TerminationReason,
    ) {
        let t1 = self.config.t1;
        let lifetime = self.config.transaction_lifetime();
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        let response = call.invite_context.build(
            status,
            Some(&call.local_tag),
            &self.config.user_agent,
            &[],
            b"",
        );
        call.last_response = response.clone();
        call.state = LegState::Completed {
            retransmit: Retransmit::start(now, t1, lifetime),
            reason,
        };
        let destination = call.response_destination;
        self.out.send(destination, response);
        self.reschedule(id);
    }

    fn send_bye(&mut self, now: Instant, id: LegId) {
        let branch = self.ids.branch();
        let t1 = self.config.t1;
        let lifetime = self.config.transaction_lifetime();
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        call.local_cseq += 1;
        let (request, destination) = bye_request(call, &branch, &self.config.user_agent);
        debug!(leg = %id, %destination, "sending BYE");
        call.state = LegState::ByeSent {
            transaction: ClientTransaction {
                branch: branch.clone(),
                request: request.clone(),
                destination,
                retransmit: Retransmit::start(now, t1, lifetime),
            },
        };
        self.client_transactions.insert(branch, id);
        self.out.send(destination, request);
        self.reschedule(id);
    }

    fn emit_terminated(&mut self, id: LegId, reason: TerminationReason) {
        if let Some(call) = self.legs.get_mut(&id) {
            if !call.terminated_emitted {
                call.terminated_emitted = true;
                self.out.emit(SipEvent::Terminated { leg: id, reason });
            }
        }
    }

    /// Ends the leg: Terminated (once), then a short linger.
    fn terminate(&mut self, now: Instant, id: LegId, reason: TerminationReason) {
        self.emit_terminated(id, reason);
        let until = now + self.config.linger();
        if let Some(call) = self.legs.get_mut(&id) {
            call.state = LegState::Lingering { until };
            call.release_payloads();
        }
        self.reschedule(id);
    }

    fn remove_leg(&mut self, id: LegId) {
        let Some(call) = self.legs.remove(&id) else {
            return;
        };
        if self.invite_transactions.get(&call.invite_key) == Some(&id) {
            self.invite_transactions.remove(&call.invite_key);
        }
        let dialog = (call.call_id, call.local_tag);
        if self.dialogs.get(&dialog) == Some(&id) {
            self.dialogs.remove(&dialog);
        }
        if let LegState::ByeSent { transaction } = call.state {
            self.client_transactions.remove(&transaction.branch);
        }
        for branch in call.client_branches {
            if self.client_transactions.get(&branch) == Some(&id) {
                self.client_transactions.remove(&branch);
            }
        }
    }

    /// Queues the leg's next deadline in the timer heap if it changed.
    fn reschedule(&mut self, id: LegId) {
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        let deadline = call.next_deadline();
        if deadline != call.scheduled {
            call.scheduled = deadline;
            if let Some(at) = deadline {
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    fn on_leg_timer(&mut self, now: Instant, id: LegId) {
        let t2 = self.config.t2;
        let lifetime = self.config.transaction_lifetime();
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        let outcome = match &mut call.state {
            LegState::Proceeding => TimerOutcome::Nothing,
            LegState::Calling(invite) => invite.poll_timer(now, t2, lifetime),
            LegState::Accepted { retransmit, .. } => match retransmit.poll(now, t2) {
                RetransmitAction::Resend => {
                    TimerOutcome::Send(call.response_destination, call.last_response.clone())
                }
                RetransmitAction::GiveUp => TimerOutcome::AckTimedOut,
                RetransmitAction::Nothing => TimerOutcome::Nothing,
            },
            LegState::Confirmed { reinvite } => match reinvite.as_mut() {
                Some(pending) => match pending.retransmit.poll(now, t2) {
                    RetransmitAction::Resend => {
                        TimerOutcome::Send(pending.destination, pending.response.clone())
                    }
                    RetransmitAction::GiveUp => {
                        *reinvite = None;
                        TimerOutcome::Nothing
                    }
                    RetransmitAction::Nothing => TimerOutcome::Nothing,
                },
                None => TimerOutcome::Nothing,
            },
            LegState::Completed { retransmit, reason } => match retransmit.poll(now, t2) {
                RetransmitAction::Resend => {
                    TimerOutcome::Send(call.response_destination, call.last_response.clone())
                }
                RetransmitAction::GiveUp => TimerOutcome::Terminate(*reason),
                RetransmitAction::Nothing => TimerOutcome::Nothing,
            },
            LegState::ByeSent { transaction } => match transaction.retransmit.poll(now, t2) {
                RetransmitAction::Resend => {
                    TimerOutcome::Send(transaction.destination, transaction.request.clone())
                }
                RetransmitAction::GiveUp => {
                    let branch = transaction.branch.clone();
                    self.client_transactions.remove(&branch);
                    TimerOutcome::Terminate(TerminationReason::LocalHangupTimeout)
                }
                RetransmitAction::Nothing => TimerOutcome::Nothing,
            },
            LegState::Lingering { until } if now >= *until => TimerOutcome::Remove,
            LegState::Lingering { .. } => TimerOutcome::Nothing,
        };
        match outcome {
            TimerOutcome::Nothing => {}
            TimerOutcome::Send(to, data) => self.out.send(to, data),
            TimerOutcome::AckTimedOut => {
                debug!(leg = %id, "2xx never acknowledged: sending BYE");
                self.emit_terminated(id, TerminationReason::AckTimeout);
                self.send_bye(now, id);
            }
            TimerOutcome::Terminate(reason) => self.terminate(now, id, reason),
            TimerOutcome::Fail(status) => {
                debug!(leg = %id, status, "outbound INVITE gave up");
                self.fail_outbound(now, id, status);
            }
            TimerOutcome::Remove => self.remove_leg(id),
        }
    }
}

/// The leg, if it exists and still awaits a final response.
fn proceeding_leg(legs: &mut HashMap<LegId, Leg>, leg: LegId) -> Result<&mut Leg, EndpointError> {
    let call = legs.get_mut(&leg).ok_or(EndpointError::UnknownLeg(leg))?;
    match call.state {
        LegState::Proceeding => Ok(call),
        ref other => Err(EndpointError::InvalidState {
            leg,
            state: other.name(),
        }),
    }
}
