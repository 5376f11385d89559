//! The thin tokio driver: one task owns a UDP socket and an [`Endpoint`],
//! feeding it datagrams, timeouts and application actions (inbound call
//! decisions, outbound [`SipHandle::invite`] / [`SipHandle::cancel`]), and
//! flushing its transmits and events. All protocol behaviour lives in the
//! endpoint; the driver only picks the local address outbound calls
//! advertise when the socket is bound to an unspecified address.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::endpoint::{
    Endpoint, EndpointConfig, EndpointError, LegId, OutgoingCall, SipEvent, TerminationReason,
};

/// Receive buffer asked of the kernel: load tests burst thousands of calls/s.
const RECEIVE_BUFFER_BYTES: usize = 4 * 1024 * 1024;
const SEND_BUFFER_BYTES: usize = 1024 * 1024;
/// Largest UDP payload.
const DATAGRAM_BUFFER_BYTES: usize = 64 * 1024;
/// Datagrams read per wake-up before servicing timers and actions again.
const MAX_DATAGRAMS_PER_WAKE: usize = 64;

/// An application decision for one leg.
#[derive(Debug)]
enum Action {
    Ringing(LegId),
    Answer(LegId, Vec<u8>),
    Reject(LegId, u16),
    Hangup(LegId),
    Invite(LegId, Box<OutgoingCall>),
    Cancel(LegId),
}

/// Cloneable handle to the SIP task. When every handle is dropped the task
/// stops and the socket is closed.
#[derive(Debug, Clone)]
pub struct SipHandle {
    actions: mpsc::UnboundedSender<Action>,
    local_addr: SocketAddr,
    /// Shared with the endpoint, which allocates inbound legs from it too.
    leg_ids: Arc<AtomicU64>,
}

impl SipHandle {
    /// Sends `180 Ringing`.
    pub fn ringing(&self, leg: LegId) {
        self.send(Action::Ringing(leg));
    }

    /// Sends `200 OK` with this SDP answer.
    pub fn answer(&self, leg: LegId, sdp: Vec<u8>) {
        self.send(Action::Answer(leg, sdp));
    }

    /// Sends a non-2xx final response.
    pub fn reject(&self, leg: LegId, status: u16) {
        self.send(Action::Reject(leg, status));
    }

    /// Sends BYE on an answered leg (cancels an outbound one still ringing).
    pub fn hangup(&self, leg: LegId) {
        self.send(Action::Hangup(leg));
    }

    /// Places an outbound call and returns its leg at once; what happens
    /// next arrives as `Progress` / `Answered` / `Failed` / `Terminated`
    /// events. A call the endpoint refuses to place ends with
    /// `Failed { status: 400 }` (invalid input) or `503` (leg limit).
    pub fn invite(&self, call: OutgoingCall) -> LegId {
        let leg = LegId(self.leg_ids.fetch_add(1, Ordering::Relaxed));
        self.send(Action::Invite(leg, Box::new(call)));
        leg
    }

    /// Cancels an outbound call that has no final response yet.
    pub fn cancel(&self, leg: LegId) {
        self.send(Action::Cancel(leg));
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn send(&self, action: Action) {
        if self.actions.send(action).is_err() {
            warn!("SIP task has stopped; action dropped");
        }
    }
}

/// Binds a UDP socket and spawns the task serving it on the current tokio
/// runtime. Events arrive on the returned receiver; the endpoint keeps
/// serving even if nobody reads them.
pub async fn spawn_udp(
    bind: SocketAddr,
    user_agent: String,
) -> io::Result<(SipHandle, mpsc::UnboundedReceiver<SipEvent>)> {
    let socket = bind_udp(bind)?;
    let local_addr = socket.local_addr()?;
    let endpoint = Endpoint::new(EndpointConfig::new(local_addr, user_agent));
    let leg_ids = endpoint.leg_ids();
    let (action_tx, action_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    info!(%local_addr, "SIP UDP transport listening");
    tokio::spawn(run(socket, endpoint, action_rx, event_tx));
    Ok((
        SipHandle {
            actions: action_tx,
            local_addr,
            leg_ids,
        },
        event_rx,
    ))
}

fn bind_udp(bind: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    set_receive_buffer(&socket);
    if let Err(error) = socket.set_send_buffer_size(SEND_BUFFER_BYTES) {
        debug!(%error, "could not enlarge the UDP send buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&bind.into())?;
    UdpSocket::from_std(socket.into())
}

/// Asks for [`RECEIVE_BUFFER_BYTES`], past `net.core.rmem_max` when we have
/// CAP_NET_ADMIN (SO_RCVBUFFORCE), otherwise up to the sysctl limit.
fn set_receive_buffer(socket: &Socket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let size = RECEIVE_BUFFER_BYTES as libc::c_int;
        // SAFETY: setsockopt on a valid, owned socket fd with a pointer to a
        // live c_int and its exact size.
        let forced = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if forced == 0 {
            return;
        }
    }
    if let Err(error) = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES) {
        warn!(%error, "could not enlarge the UDP receive buffer");
    }
    match socket.recv_buffer_size() {
        Ok(actual) if actual < RECEIVE_BUFFER_BYTES => warn!(
            actual,
            wanted = RECEIVE_BUFFER_BYTES,
            "UDP receive buffer capped by net.core.rmem_max"
        ),
        _ => {}
    }
}

async fn run(
    socket: UdpSocket,
    mut endpoint: Endpoint,
    mut actions: mpsc::UnboundedReceiver<Action>,
    events: mpsc::UnboundedSender<SipEvent>,
) {
    let mut buffer = vec![0u8; DATAGRAM_BUFFER_BYTES];
    loop {
        flush(&socket, &mut endpoint, &events).await;
        let deadline = endpoint.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                match received {
                    Ok((length, from)) => {
                        let now = Instant::now();
                        endpoint.handle_datagram(now, from, buffer.get(..length).unwrap_or_default());
                        // Drain what is already queued before anything else.
                        for _ in 1..MAX_DATAGRAMS_PER_WAKE {
                            match socket.try_recv_from(&mut buffer) {
                                Ok((length, from)) => endpoint.handle_datagram(
                                    now, from, buffer.get(..length).unwrap_or_default()),
                                Err(_) => break,
                            }
                        }
                    }
                    // ICMP errors from earlier sends surface here on some systems.
                    Err(error) => debug!(%error, "UDP receive error"),
                }
            }
            action = actions.recv() => {
                let Some(action) = action else {
                    info!("all SIP handles dropped: stopping the UDP transport");
                    return;
                };
                apply(&mut endpoint, action, &events);
            }
            () = sleep => {}
        }
        let now = Instant::now();
        if endpoint.poll_timeout().is_some_and(|at| at <= now) {
            endpoint.handle_timeout(now);
        }
    }
}

fn apply(endpoint: &mut Endpoint, action: Action, events: &mpsc::UnboundedSender<SipEvent>) {
    let now = Instant::now();
    let (leg, result) = match action {
        Action::Invite(leg, call) => {
            let call = *call;
            let result = match outbound_local_host(endpoint.config().local_addr, call.destination) {
                Some(host) => endpoint.invite_with_local_host(now, leg, call, host),
                None => endpoint.invite(now, leg, call),
            };
            if let Err(error) = result {
                warn!(%leg, %error, "outbound call refused");
                let status = match error {
                    EndpointError::TooManyLegs => 503,
                    _ => 400,
                };
                let _ = events.send(SipEvent::Failed { leg, status });
                let _ = events.send(SipEvent::Terminated {
                    leg,
                    reason: TerminationReason::Failed { status },
                });
            }
            return;
        }
        Action::Cancel(leg) => (leg, endpoint.cancel(now, leg)),
        Action::Ringing(leg) => (leg, endpoint.ringing(now, leg)),
        Action::Answer(leg, sdp) => (leg, endpoint.answer(now, leg, sdp)),
        Action::Reject(leg, status) => (leg, endpoint.reject(now, leg, status)),
        Action::Hangup(leg) => (leg, endpoint.hangup(now, leg)),
    };
    if let Err(error) = result {
        debug!(%leg, %error, "SIP action refused");
    }
}

/// When bound to an unspecified address, the local address the kernel
/// would use towards `destination` (a connected UDP socket sends nothing),
/// so Via and Contact carry a reachable host.
fn outbound_local_host(local: SocketAddr, destination: SocketAddr) -> Option<String> {
    if !local.ip().is_unspecified() {
        return None;
    }
    let probe = StdUdpSocket::bind(SocketAddr::new(local.ip(), 0)).ok()?;
    probe.connect(destination).ok()?;
    let ip = probe.local_addr().ok()?.ip();
    Some(SocketAddr::new(ip, local.port()).to_string())
}

async fn flush(
    socket: &UdpSocket,
    endpoint: &mut Endpoint,
    events: &mpsc::UnboundedSender<SipEvent>,
) {
    while let Some(transmit) = endpoint.poll_transmit() {
        if let Err(error) = socket.send_to(&transmit.data, transmit.to).await {
            debug!(%error, to = %transmit.to, "UDP send failed");
        }
    }
    while let Some(event) = endpoint.poll_event() {
        // Nobody listening is not a reason to stop serving SIP.
        let _ = events.send(event);
    }
}
