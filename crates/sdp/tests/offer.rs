//! Our outbound offer parses back, and a far end's answer to it negotiates.

use std::net::{IpAddr, Ipv4Addr};

use sdp::{negotiate, offer, parse, AudioCodec};

#[test]
fn offer_round_trips_and_an_answer_negotiates() {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let text = offer(
        &[AudioCodec::Pcmu, AudioCodec::Pcma],
        101,
        20,
        ip,
        20_000,
        7,
    );
    let parsed = parse(&text).unwrap();
    let media = &parsed.media[0];
    assert_eq!(media.port, 20_000);
    assert_eq!(media.formats, vec![0, 8, 101]);
    assert_eq!(media.ptime, Some(20));
    assert_eq!(media.rtpmap(101).unwrap().encoding, "telephone-event");
    // A far end that picks PCMA.
    let answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                  m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
                  a=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\n";
    let neg = negotiate(
        &parse(answer).unwrap(),
        &[AudioCodec::Pcmu, AudioCodec::Pcma],
    )
    .unwrap();
    assert_eq!(neg.codec, AudioCodec::Pcma);
    assert_eq!(neg.telephone_event_pt, Some(101));
    assert_eq!(neg.ptime_ms, 30);
    assert_eq!(neg.remote_rtp.port(), 6000);
}
