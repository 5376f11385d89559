//! A UAS that answers every call with a G.711 SDP answer and lets the caller
//! hang up: the smallest wiring of `sip::transport` and `sdp`, handy for
//! pointing SIPp at (`cargo run -p sip --example answer_all -- 127.0.0.1:5080`).

use std::net::{IpAddr, SocketAddr};

use sip::endpoint::SipEvent;
use sip::transport::spawn_udp;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bind: SocketAddr = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5080)));
    let (handle, mut events) = spawn_udp(bind, "switchboard-example".into()).await?;
    let local_ip: IpAddr = handle.local_addr().ip();
    let supported = [sdp::AudioCodec::Pcmu, sdp::AudioCodec::Pcma];
    let (mut calls, mut ended) = (0u64, 0u64);
    while let Some(event) = events.recv().await {
        match event {
            SipEvent::IncomingCall(call) => {
                calls += 1;
                let offer = call
                    .sdp
                    .as_deref()
                    .and_then(|body| std::str::from_utf8(body).ok())
                    .and_then(|text| sdp::parse(text).ok());
                match offer.map(|offer| sdp::negotiate(&offer, &supported)) {
                    Some(Ok(negotiated)) => {
                        let port = 20_000 + (calls % 10_000) as u16 * 2;
                        let answer = sdp::answer(&negotiated, local_ip, port, calls);
                        handle.answer(call.leg, answer.into_bytes());
                    }
                    _ => handle.reject(call.leg, 488),
                }
            }
            SipEvent::Terminated { .. } => {
                ended += 1;
                if ended % 1000 == 0 {
                    println!("{calls} calls, {ended} ended");
                }
            }
            _ => {}
        }
    }
    Ok(())
}
