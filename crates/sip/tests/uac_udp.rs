//! Outbound calls over a real UDP socket: a hand-written gateway rings and
//! is cancelled through [`SipHandle::cancel`]; the transport bound to
//! `0.0.0.0` advertises a reachable address; outbound and inbound legs get
//! distinct ids from the shared counter.

use std::net::SocketAddr;
use std::time::Duration;

use sip::endpoint::{OutgoingCall, SipEvent, TerminationReason};
use sip::message::{parse, Method, Request, SipMessage};
use sip::transport::spawn_udp;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

async fn request(socket: &UdpSocket) -> (Request, SocketAddr) {
    let mut buffer = vec![0u8; 65536];
    loop {
        let (length, from) = timeout(WAIT, socket.recv_from(&mut buffer))
            .await
            .expect("a datagram in time")
            .unwrap();
        if let SipMessage::Request(request) = parse(&buffer[..length]).unwrap() {
            return (request, from);
        }
    }
}

async fn event(events: &mut UnboundedReceiver<SipEvent>) -> SipEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the transport is running")
}

fn reply(request: &Request, status: u16, to_tag: &str) -> String {
    let h = &request.headers;
    format!(
        "SIP/2.0 {status} Whatever\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag={to_tag}\r\nCall-ID: {}\r\n\
         CSeq: {}\r\nContent-Length: 0\r\n\r\n",
        h.get("Via").unwrap(),
        h.get("From").unwrap(),
        h.get("To").unwrap(),
        h.call_id().unwrap(),
        h.get("CSeq").unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_call_rings_and_is_cancelled() {
    let (handle, mut events) = spawn_udp("0.0.0.0:0".parse().unwrap(), "switchboard-test".into())
        .await
        .unwrap();
    let port = handle.local_addr().port();
    let gateway = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let gateway_addr = gateway.local_addr().unwrap();

    let leg = handle.invite(OutgoingCall {
        request_uri: format!("sip:+15551230000@{gateway_addr}"),
        destination: gateway_addr,
        from_uri: "sip:+15557654321@switchboard.example".to_owned(),
        from_display: None,
        to_uri: "sip:+15551230000@gw.example".to_owned(),
        sdp: Vec::new(),
        credentials: None,
        headers: Vec::new(),
    });
    let (invite, source) = request(&gateway).await;
    assert_eq!(invite.method, Method::Invite);
    assert_eq!(source.port(), port);
    // Bound to 0.0.0.0, the transport advertises the address it reaches us on.
    let expected_host = format!("127.0.0.1:{port}");
    assert_eq!(invite.headers.top_via().unwrap().sent_by(), expected_host);
    assert_eq!(
        invite.headers.contact().unwrap().uri,
        format!("sip:switchboard@{expected_host}")
    );
    assert!(invite.body.is_empty());

    gateway
        .send_to(reply(&invite, 180, "gw").as_bytes(), source)
        .await
        .unwrap();
    assert_eq!(
        event(&mut events).await,
        SipEvent::Progress {
            leg,
            status: 180,
            sdp: None
        }
    );

    handle.cancel(leg);
    let (cancel, _) = request(&gateway).await;
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(
        cancel.headers.top_via().unwrap().branch(),
        invite.headers.top_via().unwrap().branch()
    );
    gateway
        .send_to(reply(&cancel, 200, "gw").as_bytes(), source)
        .await
        .unwrap();
    gateway
        .send_to(reply(&invite, 487, "gw").as_bytes(), source)
        .await
        .unwrap();
    let (ack, _) = request(&gateway).await;
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.headers.cseq().unwrap().seq, 1);
    assert_eq!(
        event(&mut events).await,
        SipEvent::Failed { leg, status: 487 }
    );
    assert_eq!(
        event(&mut events).await,
        SipEvent::Terminated {
            leg,
            reason: TerminationReason::Failed { status: 487 }
        }
    );

    // An inbound call now gets an id distinct from the outbound one.
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller_addr = caller.local_addr().unwrap();
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let inbound = format!(
        "INVITE sip:+15551234@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {caller_addr};branch=z9hG4bK-in-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:caller@{caller_addr}>;tag=c1\r\n\
         To: <sip:+15551234@{server}>\r\n\
         Call-ID: inbound-1\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    caller.send_to(inbound.as_bytes(), server).await.unwrap();
    let SipEvent::IncomingCall(incoming) = event(&mut events).await else {
        panic!("expected IncomingCall");
    };
    assert_ne!(incoming.leg, leg);
    let next_outbound = handle.invite(OutgoingCall {
        request_uri: format!("sip:+15551230001@{gateway_addr}"),
        destination: gateway_addr,
        from_uri: "sip:+15557654321@switchboard.example".to_owned(),
        from_display: None,
        to_uri: "sip:+15551230001@gw.example".to_owned(),
        sdp: Vec::new(),
        credentials: None,
        headers: Vec::new(),
    });
    assert!(next_outbound != incoming.leg && next_outbound != leg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_outbound_call_reports_failed() {
    let (handle, mut events) = spawn_udp("127.0.0.1:0".parse().unwrap(), "switchboard-test".into())
        .await
        .unwrap();
    let leg = handle.invite(OutgoingCall {
        request_uri: "not a uri".to_owned(),
        destination: "127.0.0.1:9".parse().unwrap(),
        from_uri: "sip:a@b".to_owned(),
        from_display: None,
        to_uri: "sip:c@d".to_owned(),
        sdp: Vec::new(),
        credentials: None,
        headers: Vec::new(),
    });
    assert_eq!(
        event(&mut events).await,
        SipEvent::Failed { leg, status: 400 }
    );
    assert_eq!(
        event(&mut events).await,
        SipEvent::Terminated {
            leg,
            reason: TerminationReason::Failed { status: 400 }
        }
    );
}
