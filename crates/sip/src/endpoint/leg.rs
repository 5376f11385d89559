//! One call leg: the INVITE server transaction (inbound) or the INVITE
//! client transaction state (outbound, see `uac`), the dialog it creates, the
//! BYE client transaction that ends it, and the retransmission schedules of
//! each (RFC 3261 §13.3.1.4, §17.1.2.2, §17.2.1; RFC 6026 "Accepted").

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::uac::{OutgoingInvite, UacAck};
use super::{LegId, TerminationReason};
use crate::message::Uri;

/// Retransmission schedule: first resend after T1, interval doubling up to
/// a cap, and a deadline after which the sender gives up.
#[derive(Debug, Clone)]
pub(crate) struct Retransmit {
    pub next_at: Instant,
    pub interval: Duration,
    pub give_up_at: Instant,
}

/// What a [`Retransmit`] asks for at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetransmitAction {
    Resend,
    GiveUp,
    Nothing,
}

impl Retransmit {
    pub fn start(now: Instant, t1: Duration, lifetime: Duration) -> Self {
        Retransmit {
            next_at: now + t1,
            interval: t1,
            give_up_at: now + lifetime,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.next_at.min(self.give_up_at)
    }

    /// Advances the schedule; the caller performs the returned action.
    pub fn poll(&mut self, now: Instant, cap: Duration) -> RetransmitAction {
        if now >= self.give_up_at {
            RetransmitAction::GiveUp
        } else if now >= self.next_at {
            self.interval = (self.interval * 2).min(cap);
            self.next_at = now + self.interval;
            RetransmitAction::Resend
        } else {
            RetransmitAction::Nothing
        }
    }
}

/// A request we sent and retransmit until a final response (timers E/F).
#[derive(Debug, Clone)]
pub(crate) struct ClientTransaction {
    pub branch: String,
    pub request: Vec<u8>,
    pub destination: SocketAddr,
    pub retransmit: Retransmit,
}

/// Our 2xx to a re-INVITE, retransmitted until its ACK.
#[derive(Debug, Clone)]
pub(crate) struct ReinviteAnswer {
    pub cseq: u32,
    pub response: Vec<u8>,
    pub destination: SocketAddr,
    pub retransmit: Retransmit,
}

#[derive(Debug, Clone)]
pub(crate) enum LegState {
    /// INVITE received, 100/18x sent; waiting for the app's final answer.
    Proceeding,
    /// 2xx sent, retransmitted until the ACK arrives.
    Accepted {
        retransmit: Retransmit,
        hangup_requested: bool,
    },
    /// 2xx acknowledged: the dialog is up.
    Confirmed { reinvite: Option<ReinviteAnswer> },
    /// Non-2xx final response sent, retransmitted until ACK (timers G/H).
    Completed {
        retransmit: Retransmit,
        reason: TerminationReason,
    },
    /// Our BYE is in flight.
    ByeSent { transaction: ClientTransaction },
    /// Outbound call: our INVITE client transaction is running (RFC 3261
    /// §17.1.1), possibly with a CANCEL in flight.
    Calling(Box<OutgoingInvite>),
    /// Over; kept briefly so late retransmissions are absorbed, not treated
    /// as new calls.
    Lingering { until: Instant },
}

impl LegState {
    pub fn name(&self) -> &'static str {
        match self {
            LegState::Proceeding => "proceeding",
            LegState::Calling(_) => "calling",
            LegState::Accepted { .. } => "accepted",
            LegState::Confirmed { .. } => "confirmed",
            LegState::Completed { .. } => "completed",
            LegState::ByeSent { .. } => "terminating",
            LegState::Lingering { .. } => "terminated",
        }
    }
}

/// The headers a UAS copies from a request into each of its responses.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResponseContext {
    /// Via elements, the top one already stamped with received/rport.
    pub vias: Vec<String>,
    pub record_route: Vec<String>,
    pub from: String,
    pub to: String,
    pub to_has_tag: bool,
    pub call_id: String,
    pub cseq: String,
}

/// Everything the endpoint tracks for one call leg.
#[derive(Debug)]
pub(crate) struct Leg {
    pub id: LegId,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    pub invite_key: super::TxKey,
    pub invite_cseq: u32,
    /// Highest CSeq seen from the remote side in this dialog.
    pub remote_cseq: u32,
    pub local_cseq: u32,
    pub invite_context: ResponseContext,
    /// Where responses to the INVITE go.
    pub response_destination: SocketAddr,
    /// Where the INVITE came from (fallback for in-dialog requests).
    pub source: SocketAddr,
    /// The To header we answered with (their To plus our tag): our From.
    pub local_party: String,
    /// Their From header: our To.
    pub remote_party: String,
    /// Their Contact URI.
    pub remote_target: String,
    /// Record-Route of the INVITE, in order (RFC 3261 §12.1.1).
    pub route_set: Vec<String>,
    /// `host:port` we advertise in Contact and Via.
    pub local_host: String,
    pub local_sdp: Option<Vec<u8>>,
    /// The last response sent to the INVITE, for retransmission.
    pub last_response: Vec<u8>,
    pub state: LegState,
    pub terminated_emitted: bool,
    /// Outbound legs: the ACKs we sent for final responses to our INVITEs,
    /// resent when those responses are retransmitted.
    pub uac_acks: Vec<UacAck>,
    /// Outbound legs: branches of our INVITEs (mapped to this leg in the
    /// endpoint's client transactions until the leg is removed).
    pub client_branches: Vec<String>,
    /// The deadline currently queued in the endpoint's timer heap.
    pub scheduled: Option<Instant>,
}

impl Leg {
    pub fn contact_header(&self) -> String {
        format!("<sip:switchboard@{}>", self.local_host)
    }

    /// The earliest time this leg needs [`super::Endpoint::handle_timeout`].
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            LegState::Proceeding => None,
            LegState::Calling(invite) => invite.next_deadline(),
            LegState::Accepted { retransmit, .. } | LegState::Completed { retransmit, .. } => {
                Some(retransmit.deadline())
            }
            LegState::Confirmed { reinvite } => {
                reinvite.as_ref().map(|answer| answer.retransmit.deadline())
            }
            LegState::ByeSent { transaction, .. } => Some(transaction.retransmit.deadline()),
            LegState::Lingering { until } => Some(*until),
        }
    }

    /// Drops what a lingering leg no longer needs.
    pub fn release_payloads(&mut self) {
        self.last_response = Vec::new();
        self.local_sdp = None;
        self.invite_context = ResponseContext::default();
        self.route_set = Vec::new();
    }

    /// Request-URI, Route headers and next-hop address for a request inside
    /// this dialog (RFC 3261 §12.2.1.1, loose and strict routing).
    pub fn in_dialog_target(&self) -> (String, Vec<String>, SocketAddr) {
        let first_route = self.route_set.first().and_then(|route| {
            crate::message::NameAddr::parse(route)
                .ok()
                .map(|name_addr| name_addr.parsed_uri)
        });
        let (request_uri, routes, next_hop) = match first_route {
            Some(first) if first.param("lr").is_none() => {
                // Strict router: it becomes the Request-URI, the remote target
                // goes last in the Route set.
                let mut routes: Vec<String> = self.route_set.iter().skip(1).cloned().collect();
                routes.push(format!("<{}>", self.remote_target));
                (first.to_string(), routes, Some(first))
            }
            Some(first) => (
                self.remote_target.clone(),
                self.route_set.clone(),
                Some(first),
            ),
            None => (
                self.remote_target.clone(),
                Vec::new(),
                Uri::parse(&self.remote_target).ok(),
            ),
        };
        let destination = next_hop
            .and_then(|uri| uri.socket_addr())
            .unwrap_or(self.source);
        (request_uri, routes, destination)
    }
}
