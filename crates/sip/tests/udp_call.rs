//! End-to-end over a real UDP socket: a hand-written UAC calls the
//! transport, which answers; then both directions of hangup.

use std::net::SocketAddr;
use std::time::Duration;

use sip::endpoint::{SipEvent, TerminationReason};
use sip::message::{parse, Method, Request, Response, SipMessage};
use sip::transport::spawn_udp;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

const OFFER: &str = "v=0\r\no=uac 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

fn invite(server: SocketAddr, uac: SocketAddr, call_id: &str) -> String {
    format!(
        "INVITE sip:+15551234@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-{call_id}-inv;rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <sip:caller@{uac}>;tag=uac-tag\r\n\
         To: <sip:+15551234@{server}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{uac}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    )
}

fn in_dialog(
    method: &str,
    server: SocketAddr,
    uac: SocketAddr,
    call_id: &str,
    to_tag: &str,
    cseq: u32,
) -> String {
    format!(
        "{method} sip:switchboard@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {uac};branch=z9hG4bK-{call_id}-{method}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <sip:caller@{uac}>;tag=uac-tag\r\n\
         To: <sip:+15551234@{server}>;tag={to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

async fn receive(socket: &UdpSocket) -> SipMessage {
    let mut buffer = vec![0u8; 65536];
    let (length, _) = timeout(WAIT, socket.recv_from(&mut buffer))
        .await
        .expect("a datagram in time")
        .unwrap();
    parse(&buffer[..length]).expect("the transport sends valid SIP")
}

/// The next response whose CSeq method is `method` (skipping retransmissions of others).
async fn response_for(socket: &UdpSocket, method: Method) -> Response {
    loop {
        if let SipMessage::Response(response) = receive(socket).await {
            if response.headers.cseq().unwrap().method == method {
                return response;
            }
        }
    }
}

async fn request(socket: &UdpSocket) -> Request {
    loop {
        if let SipMessage::Request(request) = receive(socket).await {
            return request;
        }
    }
}

async fn event(events: &mut UnboundedReceiver<SipEvent>) -> SipEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the transport is running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_answered_then_remote_bye() {
    let (handle, mut events) = spawn_udp("127.0.0.1:0".parse().unwrap(), "switchboard-test".into())
        .await
        .unwrap();
    let server = handle.local_addr();
    assert_ne!(server.port(), 0);
    let uac = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let uac_addr = uac.local_addr().unwrap();

    uac.send_to(invite(server, uac_addr, "udp-call-1").as_bytes(), server)
        .await
        .unwrap();
    let trying = response_for(&uac, Method::Invite).await;
    assert_eq!(trying.status, 100);
    let via = trying.headers.top_via().unwrap();
    assert_eq!(via.rport(), Some(Some(uac_addr.port())));

    let SipEvent::IncomingCall(call) = event(&mut events).await else {
        panic!("expected IncomingCall");
    };
    assert_eq!(call.request_user, "+15551234");
    assert_eq!(call.from_display.as_deref(), Some("Caller"));
    assert_eq!(call.sdp.as_deref(), Some(OFFER.as_bytes()));
    assert_eq!(call.source, uac_addr);

    handle.ringing(call.leg);
    let ringing = response_for(&uac, Method::Invite).await;
    assert_eq!(ringing.status, 180);

    let answer_sdp = b"v=0\r\no=switchboard 1 1 IN IP4 127.0.0.1\r\ns=switchboard\r\n".to_vec();
    handle.answer(call.leg, answer_sdp.clone());
    let ok = response_for(&uac, Method::Invite).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, answer_sdp);
    assert_eq!(
        ok.headers.contact().unwrap().uri,
        format!("sip:switchboard@{server}")
    );
    let to_tag = ok.headers.to().unwrap().tag().unwrap().to_owned();

    uac.send_to(
        in_dialog("ACK", server, uac_addr, "udp-call-1", &to_tag, 1).as_bytes(),
        server,
    )
    .await
    .unwrap();
    assert_eq!(event(&mut events).await, SipEvent::Acked { leg: call.leg });

    uac.send_to(
        in_dialog("BYE", server, uac_addr, "udp-call-1", &to_tag, 2).as_bytes(),
        server,
    )
    .await
    .unwrap();
    let bye_ok = response_for(&uac, Method::Bye).await;
    assert_eq!(bye_ok.status, 200);
    assert_eq!(
        event(&mut events).await,
        SipEvent::RemoteHangup { leg: call.leg }
    );
    assert_eq!(
        event(&mut events).await,
        SipEvent::Terminated {
            leg: call.leg,
            reason: TerminationReason::RemoteHangup
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_answered_then_local_hangup() {
    let (handle, mut events) = spawn_udp("127.0.0.1:0".parse().unwrap(), "switchboard-test".into())
        .await
        .unwrap();
    let server = handle.local_addr();
    let uac = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let uac_addr = uac.local_addr().unwrap();

    uac.send_to(invite(server, uac_addr, "udp-call-2").as_bytes(), server)
        .await
        .unwrap();
    assert_eq!(response_for(&uac, Method::Invite).await.status, 100);
    let SipEvent::IncomingCall(call) = event(&mut events).await else {
        panic!("expected IncomingCall");
    };
    handle.answer(call.leg, b"v=0\r\n".to_vec());
    let ok = response_for(&uac, Method::Invite).await;
    let to_tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    uac.send_to(
        in_dialog("ACK", server, uac_addr, "udp-call-2", &to_tag, 1).as_bytes(),
        server,
    )
    .await
    .unwrap();
    assert_eq!(event(&mut events).await, SipEvent::Acked { leg: call.leg });

    handle.hangup(call.leg);
    let bye = request(&uac).await;
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri, format!("sip:caller@{uac_addr}"));
    assert_eq!(bye.headers.to().unwrap().tag(), Some("uac-tag"));
    assert_eq!(bye.headers.from().unwrap().tag(), Some(to_tag.as_str()));

    let h = &bye.headers;
    let reply = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        h.get("Via").unwrap(),
        h.get("From").unwrap(),
        h.get("To").unwrap(),
        h.call_id().unwrap(),
        h.get("CSeq").unwrap()
    );
    uac.send_to(reply.as_bytes(), server).await.unwrap();
    assert_eq!(
        event(&mut events).await,
        SipEvent::Terminated {
            leg: call.leg,
            reason: TerminationReason::LocalHangup
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_stop_the_transport() {
    let (handle, _events) = spawn_udp("127.0.0.1:0".parse().unwrap(), String::new())
        .await
        .unwrap();
    let server = handle.local_addr();
    let uac = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [
        &b"\x00\x01\x02"[..],
        b"INVITE",
        b"\r\n\r\n",
        &[0xffu8; 2000],
    ] {
        uac.send_to(junk, server).await.unwrap();
    }
    let options = format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKping\r\n\
         From: <sip:ping@127.0.0.1>;tag=1\r\nTo: <sip:{server}>\r\nCall-ID: ping\r\nCSeq: 1 OPTIONS\r\n\r\n",
        uac.local_addr().unwrap()
    );
    uac.send_to(options.as_bytes(), server).await.unwrap();
    let ok = response_for(&uac, Method::Options).await;
    assert_eq!(ok.status, 200);
}
