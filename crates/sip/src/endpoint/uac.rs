//! Outbound calls: UAC legs. The INVITE client transaction (RFC 3261
//! §17.1.1 over UDP: timer A retransmits until a provisional, timer B gives
//! up after 64·T1, timer D absorbs retransmitted final responses), the ACK
//! for non-2xx (same branch) and for 2xx (new transaction, sent by the
//! endpoint itself and resent on 2xx retransmissions), one Digest
//! authentication retry on 401/407 (RFC 3261 §22.2), and CANCEL (§9.1, sent
//! only once a provisional arrived). Once answered, an outbound leg is a
//! confirmed dialog like an inbound one: [`Endpoint::hangup`], remote BYE,
//! re-INVITE and OPTIONS go through the same code.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, trace};

use super::build::{in_dialog_request, ALLOW};
use super::digest::{self, Challenge, DigestInput};
use super::leg::{ClientTransaction, Leg, LegState, Retransmit, RetransmitAction};
use super::{Endpoint, EndpointError, LegId, SipEvent, TerminationReason, TimerOutcome, TxKey};
use crate::message::{is_token, Response, Uri};

/// Username and password for Digest authentication with a trunk.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for DigestCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A call to place through a trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingCall {
    /// e.g. `sip:+15551230000@gw.example:5060`.
    pub request_uri: String,
    /// Where to send the INVITE (the trunk gateway).
    pub destination: SocketAddr,
    /// Caller ID.
    pub from_uri: String,
    pub from_display: Option<String>,
    pub to_uri: String,
    /// Our SDP offer (may be empty for a late offer).
    pub sdp: Vec<u8>,
    pub credentials: Option<DigestCredentials>,
    /// Extra headers (e.g. `X-…`), added to every INVITE we send.
    pub headers: Vec<(String, String)>,
}

/// An ACK we sent for a final response, resent when that response is
/// retransmitted (keyed by the INVITE's branch).
#[derive(Debug, Clone)]
pub(crate) struct UacAck {
    pub branch: String,
    pub data: Vec<u8>,
    pub destination: SocketAddr,
}

/// Where cancelling an outgoing INVITE stands.
#[derive(Debug, Clone)]
pub(crate) enum CancelState {
    NotRequested,
    /// Asked for before any provisional: sent when one arrives (§9.1).
    AwaitingProvisional,
    /// CANCEL sent; `answered` once its final response arrived. The INVITE
    /// is given up 64·T1 after the CANCEL if no final response comes.
    Sent {
        transaction: ClientTransaction,
        answered: bool,
    },
}

impl CancelState {
    fn requested(&self) -> bool {
        !matches!(self, CancelState::NotRequested)
    }
}

/// The running INVITE client transaction of an outbound leg.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingInvite {
    pub call: OutgoingCall,
    /// Our From header, with our tag.
    pub from: String,
    /// The To header of the INVITE (no tag).
    pub to: String,
    pub cseq: u32,
    pub branch: String,
    pub request: Vec<u8>,
    /// Timer A (`next_at`) and timer B (`give_up_at`).
    pub retransmit: Retransmit,
    /// A provisional response arrived: retransmissions and timer B stop.
    pub proceeding: bool,
    pub last_progress: Option<u16>,
    pub auth_attempted: bool,
    pub cancel: CancelState,
}

impl OutgoingInvite {
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.proceeding {
            return Some(self.retransmit.deadline());
        }
        match &self.cancel {
            CancelState::Sent {
                transaction,
                answered: true,
            } => Some(transaction.retransmit.give_up_at),
            CancelState::Sent { transaction, .. } => Some(transaction.retransmit.deadline()),
            _ => None,
        }
    }

    /// Runs timers A/B and the CANCEL's retransmissions.
    pub(super) fn poll_timer(
        &mut self,
        now: Instant,
        t2: Duration,
        lifetime: Duration,
    ) -> TimerOutcome {
        let give_up_status = if self.cancel.requested() { 487 } else { 408 };
        if !self.proceeding {
            // INVITE retransmissions double without the T2 cap (§17.1.1.2).
            return match self.retransmit.poll(now, lifetime) {
                RetransmitAction::Resend => {
                    TimerOutcome::Send(self.call.destination, self.request.clone())
                }
                RetransmitAction::GiveUp => TimerOutcome::Fail(give_up_status),
                RetransmitAction::Nothing => TimerOutcome::Nothing,
            };
        }
        match &mut self.cancel {
            CancelState::Sent {
                transaction,
                answered: true,
            } if now >= transaction.retransmit.give_up_at => TimerOutcome::Fail(487),
            CancelState::Sent {
                transaction,
                answered: false,
            } => match transaction.retransmit.poll(now, t2) {
                RetransmitAction::Resend => {
                    TimerOutcome::Send(transaction.destination, transaction.request.clone())
                }
                RetransmitAction::GiveUp => TimerOutcome::Fail(487),
                RetransmitAction::Nothing => TimerOutcome::Nothing,
            },
            _ => TimerOutcome::Nothing,
        }
    }

    fn via(&self, local_host: &str) -> String {
        format!("SIP/2.0/UDP {local_host};branch={};rport", self.branch)
    }

    /// The INVITE, optionally carrying an (Proxy-)Authorization header.
    fn build_invite(
        &self,
        local_host: &str,
        call_id: &str,
        user_agent: &str,
        authorization: Option<(&str, &str)>,
    ) -> Vec<u8> {
        let mut text = format!(
            "INVITE {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
             Call-ID: {call_id}\r\nCSeq: {} INVITE\r\nContact: <sip:switchboard@{local_host}>\r\n\
             Allow: {ALLOW}\r\n",
            self.call.request_uri,
            self.via(local_host),
            self.from,
            self.to,
            self.cseq
        );
        if !user_agent.is_empty() {
            text.push_str(&format!("User-Agent: {user_agent}\r\n"));
        }
        if let Some((name, value)) = authorization {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        for (name, value) in &self.call.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.call.sdp.is_empty() {
            text.push_str("Content-Type: application/sdp\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n", self.call.sdp.len()));
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&self.call.sdp);
        bytes
    }

    /// ACK for a non-2xx final response: same branch as the INVITE, the
    /// response's To (§17.1.1.3).
    fn build_ack(&self, local_host: &str, call_id: &str, to: &str) -> Vec<u8> {
        format!(
            "ACK {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            self.call.request_uri,
            self.via(local_host),
            self.from,
            self.cseq
        )
        .into_bytes()
    }

    /// CANCEL for the current INVITE (§9.1).
    fn build_cancel(&self, local_host: &str, call_id: &str, user_agent: &str) -> Vec<u8> {
        let mut text = format!(
            "CANCEL {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
             Call-ID: {call_id}\r\nCSeq: {} CANCEL\r\n",
            self.call.request_uri,
            self.via(local_host),
            self.from,
            self.to,
            self.cseq
        );
        if !user_agent.is_empty() {
            text.push_str(&format!("User-Agent: {user_agent}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        text.into_bytes()
    }
}

/// Escapes a display name for a quoted-string.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn has_line_break(text: &str) -> bool {
    text.contains(['\r', '\n'])
}

/// Checks what the application supplied before it goes on the wire.
fn validate(call: &OutgoingCall) -> Result<(), EndpointError> {
    let invalid = |what: &str| Err(EndpointError::InvalidRequest(what.to_owned()));
    for (what, uri) in [
        ("request_uri", &call.request_uri),
        ("from_uri", &call.from_uri),
        ("to_uri", &call.to_uri),
    ] {
        if has_line_break(uri) || uri.contains(['<', '>', ' ']) || Uri::parse(uri).is_err() {
            return invalid(what);
        }
    }
    if call.from_display.as_deref().is_some_and(has_line_break) {
        return invalid("from_display");
    }
    for (name, value) in &call.headers {
        if !is_token(name) || has_line_break(value) {
            return invalid("headers");
        }
        let reserved = [
            "via",
            "from",
            "to",
            "call-id",
            "cseq",
            "contact",
            "content-length",
            "content-type",
            "max-forwards",
        ];
        if reserved.contains(&name.to_ascii_lowercase().as_str()) {
            return invalid("headers");
        }
    }
    Ok(())
}

impl Endpoint {
    /// A fresh leg id from the counter shared with inbound legs.
    pub fn allocate_leg_id(&self) -> LegId {
        LegId(self.leg_ids.fetch_add(1, Ordering::Relaxed))
    }

    /// The leg id counter, to allocate ids outside the endpoint (the
    /// transport's [`crate::transport::SipHandle::invite`]) without collisions.
    pub fn leg_ids(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.leg_ids)
    }

    /// Places an outbound call on `leg` (see [`Endpoint::allocate_leg_id`]).
    /// Contact and Via advertise the configured local address (the loopback
    /// address towards a loopback destination when it is unspecified; use
    /// [`Endpoint::invite_with_local_host`] to choose).
    pub fn invite(
        &mut self,
        now: Instant,
        leg: LegId,
        call: OutgoingCall,
    ) -> Result<(), EndpointError> {
        let local = self.config.local_addr;
        let host = match local.ip() {
            ip if !ip.is_unspecified() => local.to_string(),
            IpAddr::V4(_) if call.destination.ip().is_loopback() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), local.port()).to_string()
            }
            IpAddr::V6(_) if call.destination.ip().is_loopback() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), local.port()).to_string()
            }
            _ => local.to_string(),
        };
        self.invite_with_local_host(now, leg, call, host)
    }

    /// [`Endpoint::invite`] advertising `local_host` (`host:port`) in Via
    /// and Contact.
    pub fn invite_with_local_host(
        &mut self,
        now: Instant,
        leg: LegId,
        call: OutgoingCall,
        local_host: String,
    ) -> Result<(), EndpointError> {
        if self.legs.contains_key(&leg) {
            return Err(EndpointError::LegInUse(leg));
        }
        if self.legs.len() >= self.config.max_legs {
            return Err(EndpointError::TooManyLegs);
        }
        validate(&call)?;
        if has_line_break(&local_host) {
            return Err(EndpointError::InvalidRequest("local_host".to_owned()));
        }
        let call_id = format!("{}{}", self.ids.tag(), self.ids.tag());
        let local_tag = self.ids.tag();
        let branch = self.ids.branch();
        let from = match &call.from_display {
            Some(display) => format!("{} <{}>;tag={local_tag}", quoted(display), call.from_uri),
            None => format!("<{}>;tag={local_tag}", call.from_uri),
        };
        let to = format!("<{}>", call.to_uri);
        let destination = call.destination;
        let mut invite = OutgoingInvite {
            from: from.clone(),
            to: to.clone(),
            cseq: 1,
            branch: branch.clone(),
            request: Vec::new(),
            retransmit: Retransmit::start(now, self.config.t1, self.config.transaction_lifetime()),
            proceeding: false,
            last_progress: None,
            auth_attempted: false,
            cancel: CancelState::NotRequested,
            call,
        };
        invite.request = invite.build_invite(&local_host, &call_id, &self.config.user_agent, None);
        let request = invite.request.clone();
        let remote_target = invite.call.request_uri.clone();
        let local_sdp = Some(invite.call.sdp.clone());
        let state = Leg {
            id: leg,
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: None,
            // Never matches a received request: outbound legs have no
            // INVITE server transaction.
            invite_key: TxKey::Legacy {
                call_id: call_id.clone(),
                from_tag: local_tag.clone(),
                cseq: 0,
                sent_by: String::new(),
                method: "UAC".to_owned(),
            },
            invite_cseq: 1,
            remote_cseq: 0,
            local_cseq: 1,
            invite_context: Default::default(),
            response_destination: destination,
            source: destination,
            local_party: from,
            remote_party: to,
            remote_target,
            route_set: Vec::new(),
            local_host,
            local_sdp,
            last_response: Vec::new(),
            state: LegState::Calling(Box::new(invite)),
            terminated_emitted: false,
            uac_acks: Vec::new(),
            client_branches: vec![branch.clone()],
            scheduled: None,
        };
        debug!(%leg, %destination, call_id, "placing outbound call");
        self.client_transactions.insert(branch, leg);
        self.dialogs.insert((call_id, local_tag), leg);
        self.legs.insert(leg, state);
        self.out.send(destination, request);
        self.reschedule(leg);
        Ok(())
    }

    /// Cancels an outbound call that has no final response yet: CANCEL now
    /// if a provisional arrived, else as soon as one does (RFC 3261 §9.1).
    /// The leg then ends with `Failed { status: 487 }` (or whatever final
    /// response the callee sends; a 2xx racing the CANCEL is ACKed and
    /// hung up at once).
    pub fn cancel(&mut self, now: Instant, leg: LegId) -> Result<(), EndpointError> {
        let call = self
            .legs
            .get_mut(&leg)
            .ok_or(EndpointError::UnknownLeg(leg))?;
        let LegState::Calling(invite) = &mut call.state else {
            return Err(EndpointError::InvalidState {
                leg,
                state: call.state.name(),
            });
        };
        match invite.cancel {
            CancelState::NotRequested if invite.proceeding => self.send_cancel(now, leg),
            CancelState::NotRequested => invite.cancel = CancelState::AwaitingProvisional,
            _ => {}
        }
        Ok(())
    }

    fn send_cancel(&mut self, now: Instant, id: LegId) {
        let t1 = self.config.t1;
        let lifetime = self.config.transaction_lifetime();
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        let LegState::Calling(invite) = &mut call.state else {
            return;
        };
        let request = invite.build_cancel(&call.local_host, &call.call_id, &self.config.user_agent);
        let destination = invite.call.destination;
        debug!(leg = %id, "sending CANCEL");
        invite.cancel = CancelState::Sent {
            transaction: ClientTransaction {
                branch: invite.branch.clone(),
                request: request.clone(),
                destination,
                retransmit: Retransmit::start(now, t1, lifetime),
            },
            answered: false,
        };
        self.out.send(destination, request);
        self.reschedule(id);
    }

    pub(super) fn on_cancel_response(&mut self, id: LegId, response: &Response) {
        if response.status < 200 {
            return;
        }
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        if let LegState::Calling(invite) = &mut call.state {
            if let CancelState::Sent { answered, .. } = &mut invite.cancel {
                *answered = true;
            }
        }
        self.reschedule(id);
    }

    /// A response to one of our INVITEs (the branch maps to leg `id`).
    pub(super) fn on_invite_response(
        &mut self,
        now: Instant,
        id: LegId,
        branch: &str,
        response: &Response,
    ) {
        let Some(call) = self.legs.get(&id) else {
            return;
        };
        let current = matches!(&call.state, LegState::Calling(invite) if invite.branch == branch);
        if !current {
            self.on_finished_invite_response(id, branch, response);
            return;
        }
        match response.status {
            100..=199 => self.on_provisional(now, id, response),
            200..=299 => self.on_invite_accepted(now, id, branch, response),
            _ => self.on_invite_failed(now, id, branch, response),
        }
    }

    /// A retransmitted final response of an INVITE transaction we already
    /// finished: resend our ACK (timer D / 2xx retransmissions).
    fn on_finished_invite_response(&mut self, id: LegId, branch: &str, response: &Response) {
        if response.status < 200 {
            return;
        }
        let Some(call) = self.legs.get(&id) else {
            return;
        };
        let to_tag = response
            .headers
            .to()
            .ok()
            .and_then(|to| to.tag().map(str::to_owned));
        if response.status < 300 && to_tag != call.remote_tag {
            self.end_extra_fork(id, response);
            return;
        }
        if let Some(ack) = call.uac_acks.iter().find(|ack| ack.branch == branch) {
            trace!(leg = %id, status = response.status, "final response retransmitted: re-ACK");
            let (to, data) = (ack.destination, ack.data.clone());
            self.out.send(to, data);
        }
    }

    /// Another fork answered after the first 2xx won: ACK that dialog and
    /// BYE it at once (sent once; the fork's 2xx retransmissions get the
    /// same treatment).
    fn end_extra_fork(&mut self, id: LegId, response: &Response) {
        let ack_branch = self.ids.branch();
        let bye_branch = self.ids.branch();
        let user_agent = self.config.user_agent.clone();
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        let (Some(to), Ok(cseq)) = (response.headers.get("To"), response.headers.cseq()) else {
            return;
        };
        debug!(leg = %id, "2xx from another fork: ACK and BYE it");
        let fork_target = response
            .headers
            .contact()
            .map(|contact| contact.uri)
            .unwrap_or_else(|| call.remote_target.clone());
        let fork_routes = response.headers.record_route().into_iter().rev().collect();
        // Borrow the leg's dialog fields for the fork's dialog, then restore.
        let saved = (
            std::mem::replace(&mut call.remote_party, to.to_owned()),
            std::mem::replace(&mut call.remote_target, fork_target),
            std::mem::replace(&mut call.route_set, fork_routes),
        );
        let (ack, ack_to) = in_dialog_request(call, "ACK", cseq.seq, &ack_branch, &user_agent);
        let (bye, bye_to) = in_dialog_request(call, "BYE", cseq.seq + 1, &bye_branch, &user_agent);
        (call.remote_party, call.remote_target, call.route_set) = saved;
        self.out.send(ack_to, ack);
        self.out.send(bye_to, bye);
    }

    fn on_provisional(&mut self, now: Instant, id: LegId, response: &Response) {
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        let LegState::Calling(invite) = &mut call.state else {
            return;
        };
        invite.proceeding = true;
        let status = response.status;
        if status > 100 && invite.last_progress != Some(status) {
            invite.last_progress = Some(status);
            let sdp = (!response.body.is_empty()).then(|| response.body.clone());
            self.out.emit(SipEvent::Progress {
                leg: id,
                status,
                sdp,
            });
        }
        if matches!(invite.cancel, CancelState::AwaitingProvisional) {
            self.send_cancel(now, id);
        }
        self.reschedule(id);
    }

    fn on_invite_accepted(&mut self, now: Instant, id: LegId, branch: &str, response: &Response) {
        let ack_branch = self.ids.branch();
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        let LegState::Calling(invite) =
            std::mem::replace(&mut call.state, LegState::Confirmed { reinvite: None })
        else {
            return;
        };
        let headers = &response.headers;
        call.remote_tag = headers.to().ok().and_then(|to| to.tag().map(str::to_owned));
        if let Some(to) = headers.get("To") {
            call.remote_party = to.to_owned();
        }
        call.remote_target = headers
            .contact()
            .map(|contact| contact.uri)
            .unwrap_or_else(|| invite.call.request_uri.clone());
        // A UAC's route set is the Record-Route in reverse (§12.1.2).
        call.route_set = headers.record_route().into_iter().rev().collect();
        let (ack, destination) = in_dialog_request(
            call,
            "ACK",
            invite.cseq,
            &ack_branch,
            &self.config.user_agent,
        );
        call.uac_acks.push(UacAck {
            branch: branch.to_owned(),
            data: ack.clone(),
            destination,
        });
        self.out.send(destination, ack);
        if invite.cancel.requested() {
            debug!(leg = %id, "answered despite CANCEL: hanging up");
            let reason = TerminationReason::Failed { status: 487 };
            self.out.emit(SipEvent::Failed {
                leg: id,
                status: 487,
            });
            self.emit_terminated(id, reason);
            self.send_bye(now, id);
            return;
        }
        debug!(leg = %id, status = response.status, "outbound call answered");
        let sdp = (!response.body.is_empty()).then(|| response.body.clone());
        self.out.emit(SipEvent::Answered { leg: id, sdp });
        self.reschedule(id);
    }

    fn on_invite_failed(&mut self, now: Instant, id: LegId, branch: &str, response: &Response) {
        let status = response.status;
        let retry_branch = self.ids.branch();
        let cnonce = self.ids.tag();
        let Some(call) = self.legs.get_mut(&id) else {
            return;
        };
        let LegState::Calling(invite) = &mut call.state else {
            return;
        };
        let to = response.headers.get("To").unwrap_or(&invite.to).to_owned();
        let ack = invite.build_ack(&call.local_host, &call.call_id, &to);
        let destination = invite.call.destination;
        call.uac_acks.push(UacAck {
            branch: branch.to_owned(),
            data: ack.clone(),
            destination,
        });
        self.out.send(destination, ack);

        let challenge_headers = match status {
            401 => Some(("WWW-Authenticate", "Authorization")),
            407 => Some(("Proxy-Authenticate", "Proxy-Authorization")),
            _ => None,
        };
        let retry = match (challenge_headers, &invite.call.credentials) {
            (Some((challenge_name, answer_name)), Some(credentials))
                if !invite.auth_attempted && !invite.cancel.requested() =>
            {
                response
                    .headers
                    .get_all(challenge_name)
                    .find_map(Challenge::parse)
                    .map(|challenge| {
                        let value = digest::authorization(
                            &challenge,
                            &DigestInput {
                                username: &credentials.username,
                                password: &credentials.password,
                                method: "INVITE",
                                uri: &invite.call.request_uri,
                                body: &invite.call.sdp,
                                cnonce: &cnonce,
                                nonce_count: 1,
                            },
                        );
                        (answer_name, value)
                    })
            }
            _ => None,
        };
        if let Some((answer_name, value)) = retry {
            debug!(leg = %id, status, "challenged: retrying with credentials");
            invite.auth_attempted = true;
            invite.cseq += 1;
            invite.branch = retry_branch.clone();
            invite.proceeding = false;
            invite.retransmit =
                Retransmit::start(now, self.config.t1, self.config.transaction_lifetime());
            invite.request = invite.build_invite(
                &call.local_host,
                &call.call_id,
                &self.config.user_agent,
                Some((answer_name, &value)),
            );
            call.invite_cseq = invite.cseq;
            call.local_cseq = invite.cseq;
            call.client_branches.push(retry_branch.clone());
            let request = invite.request.clone();
            self.client_transactions.insert(retry_branch, id);
            self.out.send(destination, request);
            self.reschedule(id);
            return;
        }
        // A challenge we did not answer because the app cancelled.
        let status = if invite.cancel.requested() && challenge_headers.is_some() {
            487
        } else {
            status
        };
        debug!(leg = %id, status, "outbound call failed");
        self.fail_outbound(now, id, status);
    }

    /// Ends an unanswered outbound leg: Failed, Terminated, then it lingers
    /// for timer D (64·T1) to re-ACK retransmitted final responses.
    pub(super) fn fail_outbound(&mut self, now: Instant, id: LegId, status: u16) {
        self.out.emit(SipEvent::Failed { leg: id, status });
        self.emit_terminated(id, TerminationReason::Failed { status });
        let until = now + self.config.transaction_lifetime();
        if let Some(call) = self.legs.get_mut(&id) {
            call.state = LegState::Lingering { until };
            call.release_payloads();
        }
        self.reschedule(id);
    }
}
