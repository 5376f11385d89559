//! Interop with a real SIP peer: SIPp's built-in `uac` scenario places five
//! calls (INVITE → 100 → 200 → ACK → BYE → 200) against the UDP transport,
//! which answers each with an SDP answer from the `sdp` crate.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use sip::endpoint::SipEvent;
use sip::transport::spawn_udp;
use tokio::process::Command;
use tokio::time::timeout;

const SIPP: &str = "/usr/bin/sipp";
const CALLS: usize = 5;

/// A UDP port that was free a moment ago (even, with the next one free too,
/// as SIPp's media sockets want).
fn free_udp_port() -> u16 {
    loop {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        if port.is_multiple_of(2)
            && port < u16::MAX - 2
            && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
}

#[derive(Default, Debug)]
struct Counts {
    incoming: usize,
    acked: usize,
    remote_hangups: usize,
    terminated: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_completes_five_calls() {
    if !Path::new(SIPP).exists() {
        eprintln!("{SIPP} not installed: SIPp interop test not run");
        return;
    }
    let (handle, mut events) = spawn_udp("127.0.0.1:0".parse().unwrap(), "switchboard-test".into())
        .await
        .unwrap();
    let server = handle.local_addr();

    let answerer = handle.clone();
    let counter = tokio::spawn(async move {
        let mut counts = Counts::default();
        let mut next_rtp_port = 20_000u16;
        while counts.terminated < CALLS {
            let Some(event) = events.recv().await else {
                break;
            };
            match event {
                SipEvent::IncomingCall(call) => {
                    counts.incoming += 1;
                    let offer_text =
                        String::from_utf8(call.sdp.expect("SIPp sends an offer")).unwrap();
                    let offer = sdp::parse(&offer_text).expect("SIPp's offer parses");
                    let negotiated =
                        sdp::negotiate(&offer, &[sdp::AudioCodec::Pcmu, sdp::AudioCodec::Pcma])
                            .expect("SIPp offers PCMU");
                    let answer = sdp::answer(
                        &negotiated,
                        IpAddr::V4(Ipv4Addr::LOCALHOST),
                        next_rtp_port,
                        counts.incoming as u64,
                    );
                    next_rtp_port += 2;
                    answerer.answer(call.leg, answer.into_bytes());
                }
                SipEvent::Acked { .. } => counts.acked += 1,
                SipEvent::RemoteHangup { .. } => counts.remote_hangups += 1,
                SipEvent::Terminated { .. } => counts.terminated += 1,
                SipEvent::Cancelled { .. } => panic!("SIPp's uac scenario does not cancel"),
                other => panic!("no outbound calls here: {other:?}"),
            }
        }
        counts
    });

    let work_dir = std::env::temp_dir().join(format!("switchboard-sipp-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir).unwrap();
    let sipp_port = free_udp_port();
    let media_port = free_udp_port();
    let output = timeout(
        Duration::from_secs(60),
        Command::new(SIPP)
            .args(["-sn", "uac", &format!("127.0.0.1:{}", server.port())])
            .args(["-i", "127.0.0.1", "-p", &sipp_port.to_string()])
            .args(["-mp", &media_port.to_string()])
            .args([
                "-m",
                &CALLS.to_string(),
                "-r",
                "5",
                "-nostdin",
                "-timeout",
                "20s",
            ])
            .current_dir(&work_dir)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("SIPp finishes within 60 s")
    .expect("SIPp starts");
    let _ = std::fs::remove_dir_all(&work_dir);
    assert!(
        output.status.success(),
        "SIPp failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let counts = timeout(Duration::from_secs(10), counter)
        .await
        .expect("every leg terminates")
        .unwrap();
    assert_eq!(counts.incoming, CALLS, "{counts:?}");
    assert_eq!(counts.acked, CALLS, "{counts:?}");
    assert_eq!(counts.remote_hangups, CALLS, "{counts:?}");
    assert_eq!(counts.terminated, CALLS, "{counts:?}");
}
