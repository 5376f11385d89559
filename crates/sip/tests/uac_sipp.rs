//! Outbound calls against a real far end: SIPp plays a trunk
//! (`tests/peers/uas_digest_answer.xml`) that challenges our INVITE with a
//! 401, verifies the Digest response of the retried INVITE itself
//! (`verifyauth`), answers only if it is right, then expects our ACK and BYE.
//! With a wrong password SIPp answers 403 and fails.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use sip::endpoint::{DigestCredentials, OutgoingCall, SipEvent, TerminationReason};
use sip::transport::spawn_udp;
use tokio::process::Command;
use tokio::time::timeout;

const SIPP: &str = "/usr/bin/sipp";
const OFFER: &str = "v=0\r\no=switchboard 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/uas_digest_answer.xml")
}

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

/// Calls SIPp's digest UAS with `password`, hanging up once answered;
/// returns SIPp's output and every event of the leg.
async fn call_digest_trunk(password: &str) -> (Output, Vec<SipEvent>) {
    let (handle, mut events) = spawn_udp("127.0.0.1:0".parse().unwrap(), "switchboard-test".into())
        .await
        .unwrap();
    let work_dir = std::env::temp_dir().join(format!(
        "switchboard-uac-sipp-{}-{password}",
        std::process::id()
    ));
    std::fs::create_dir_all(&work_dir).unwrap();
    let sipp_port = free_udp_port();
    let media_port = free_udp_port();
    let sipp = Command::new(SIPP)
        .arg("-sf")
        .arg(scenario())
        .args(["-i", "127.0.0.1", "-p", &sipp_port.to_string()])
        .args(["-mp", &media_port.to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "20s"])
        .current_dir(&work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("SIPp starts");
    // Let SIPp bind (timer A would cover a lost first INVITE anyway).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let leg = handle.invite(OutgoingCall {
        request_uri: format!("sip:+15551230000@127.0.0.1:{sipp_port}"),
        destination: format!("127.0.0.1:{sipp_port}").parse().unwrap(),
        from_uri: "sip:+15557654321@127.0.0.1".to_owned(),
        from_display: Some("Switchboard".to_owned()),
        to_uri: "sip:+15551230000@127.0.0.1".to_owned(),
        sdp: OFFER.as_bytes().to_vec(),
        credentials: Some(DigestCredentials {
            username: "alice".to_owned(),
            password: password.to_owned(),
        }),
        headers: vec![("X-Test".to_owned(), "uac".to_owned())],
    });

    let mut seen = Vec::new();
    loop {
        let event = timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("an event in time")
            .expect("the transport is running");
        match &event {
            SipEvent::Answered { leg: answered, .. } if *answered == leg => handle.hangup(leg),
            SipEvent::Terminated { leg: ended, .. } if *ended == leg => {
                seen.push(event);
                break;
            }
            _ => {}
        }
        seen.push(event);
    }
    let output = timeout(Duration::from_secs(30), sipp.wait_with_output())
        .await
        .expect("SIPp finishes")
        .expect("SIPp runs");
    let _ = std::fs::remove_dir_all(&work_dir);
    (output, seen)
}

fn describe(output: &Output) -> String {
    format!(
        "SIPp {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_challenged_call_is_answered_and_hung_up() {
    if !Path::new(SIPP).exists() {
        eprintln!("{SIPP} not installed: SIPp interop test not run");
        return;
    }
    let (output, events) = call_digest_trunk("s3cret").await;
    assert!(output.status.success(), "{}", describe(&output));
    let [SipEvent::Answered { leg, sdp }, SipEvent::Terminated { leg: ended, reason }] =
        events.as_slice()
    else {
        panic!("unexpected events {events:?}\n{}", describe(&output));
    };
    assert_eq!(leg, ended);
    assert_eq!(*reason, TerminationReason::LocalHangup);
    let sdp = String::from_utf8(sdp.clone().expect("SIPp's 200 has SDP")).unwrap();
    assert!(sdp.contains("m=audio"), "{sdp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_by_sipp() {
    if !Path::new(SIPP).exists() {
        eprintln!("{SIPP} not installed: SIPp interop test not run");
        return;
    }
    let (output, events) = call_digest_trunk("wrong").await;
    assert!(!output.status.success(), "{}", describe(&output));
    let [SipEvent::Failed { leg, status: 403 }, SipEvent::Terminated { leg: ended, reason }] =
        events.as_slice()
    else {
        panic!("unexpected events {events:?}\n{}", describe(&output));
    };
    assert_eq!(leg, ended);
    assert_eq!(*reason, TerminationReason::Failed { status: 403 });
}
