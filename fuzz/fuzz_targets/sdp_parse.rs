//! Fuzz target: `sdp::parse` and offer/answer negotiation on arbitrary text.
//!
//! Beyond "never panics": when an offer negotiates (PCMU+PCMA, and PCMA only),
//! the result is sane (ptime 10..=60 in steps of 10, payload types that fit
//! RTP's 7 bits, a codec from the supported list, the remote port non-zero),
//! `answer_offer` agrees with `negotiate`, and our rendered answer parses and
//! negotiates back to the same codec, payload types and ptime. Our own
//! `offer` (codec order, telephone-event PT 96..=127 and ptime picked by the
//! first two input bytes) parses and negotiates to exactly what it offered,
//! and a far end answering it with `answer_offer` agrees.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use sdp::AudioCodec;

const BOTH: &[AudioCodec] = &[AudioCodec::Pcmu, AudioCodec::Pcma];
const PCMA_ONLY: &[AudioCodec] = &[AudioCodec::Pcma];

fuzz_target!(|data: &[u8]| {
    check_our_offer(
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
    );
    let text = String::from_utf8_lossy(data);
    let Ok(offer) = sdp::parse(&text) else {
        return;
    };
    for supported in [BOTH, PCMA_ONLY] {
        let Ok(negotiated) = sdp::negotiate(&offer, supported) else {
            continue;
        };
        assert!(supported.contains(&negotiated.codec));
        assert!(
            (10..=60).contains(&negotiated.ptime_ms) && negotiated.ptime_ms % 10 == 0,
            "ptime {}",
            negotiated.ptime_ms
        );
        assert!(
            negotiated.payload_type <= 127,
            "payload type {}",
            negotiated.payload_type
        );
        if let Some(te) = negotiated.telephone_event_pt {
            assert!(te <= 127, "telephone-event payload type {te}");
            assert_ne!(te, negotiated.payload_type);
        }
        assert_ne!(negotiated.remote_rtp.port(), 0);

        for local_ip in ["198.51.100.7", "2001:db8::5"] {
            let local_ip: IpAddr = local_ip.parse().expect("literal");
            let (from_answer, answer_text) =
                sdp::answer_offer(&offer, supported, local_ip, 40_000, 7)
                    .expect("negotiate succeeded, so answer_offer must");
            assert_eq!(from_answer, negotiated);
            let answer = match sdp::parse(&answer_text) {
                Ok(answer) => answer,
                Err(error) => panic!("our answer does not parse ({error}):\n{answer_text}"),
            };
            assert_eq!(
                answer.media.len(),
                offer.media.len(),
                "one answer m= per offer m="
            );
            let back = sdp::negotiate(&answer, supported).expect("our answer negotiates");
            assert_eq!(back.codec, negotiated.codec);
            assert_eq!(back.payload_type, negotiated.payload_type);
            assert_eq!(back.telephone_event_pt, negotiated.telephone_event_pt);
            assert_eq!(back.ptime_ms, negotiated.ptime_ms);
            assert_eq!(back.remote_rtp, std::net::SocketAddr::new(local_ip, 40_000));

            let simple = sdp::answer(&negotiated, local_ip, 40_000, 7);
            let simple = sdp::parse(&simple).expect("answer() output parses");
            assert_eq!(
                sdp::negotiate(&simple, supported).map(|n| n.codec),
                Ok(negotiated.codec)
            );
        }
    }
});

fn check_our_offer(choice: u8, ptime_choice: u8) {
    let codecs: &[AudioCodec] = match choice & 3 {
        0 => &[AudioCodec::Pcmu, AudioCodec::Pcma],
        1 => &[AudioCodec::Pcma, AudioCodec::Pcmu],
        2 => &[AudioCodec::Pcmu],
        _ => &[AudioCodec::Pcma],
    };
    let te_pt = 96 + (choice >> 2) % 32;
    let ptime_ms = 10 * u16::from(1 + ptime_choice % 6);
    let local_ip: IpAddr = if ptime_choice & 0x80 == 0 {
        "198.51.100.7"
    } else {
        "2001:db8::5"
    }
    .parse()
    .expect("literal");
    let text = sdp::offer(codecs, te_pt, ptime_ms, local_ip, 40_002, 9);
    let offer = sdp::parse(&text)
        .unwrap_or_else(|error| panic!("our offer does not parse ({error}):\n{text}"));
    let ours = sdp::negotiate(&offer, BOTH).expect("our offer negotiates");
    assert_eq!(ours.codec, codecs[0]);
    assert_eq!(ours.payload_type, codecs[0].payload_type());
    assert_eq!(ours.telephone_event_pt, Some(te_pt));
    assert_eq!(ours.ptime_ms, ptime_ms);
    assert_eq!(ours.remote_rtp, std::net::SocketAddr::new(local_ip, 40_002));
    let far_ip: IpAddr = "192.0.2.30".parse().expect("literal");
    let (far, answer_text) =
        sdp::answer_offer(&offer, BOTH, far_ip, 5004, 3).expect("far end answers");
    assert_eq!(far, ours);
    let answer = sdp::parse(&answer_text).expect("the far end's answer parses");
    let agreed = sdp::negotiate(&answer, codecs).expect("the answer negotiates");
    assert_eq!(
        (agreed.codec, agreed.telephone_event_pt, agreed.ptime_ms),
        (ours.codec, Some(te_pt), ptime_ms)
    );
}
