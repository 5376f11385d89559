//! Tests of the call core: inputs in, outputs checked, no sockets.

use super::*;
use crate::params::CallParams;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const VOICE_URL: &str = "http://app.test/voice";

fn config(fallback: Option<&str>, status_callback: Option<&str>) -> CallConfig {
    CallConfig {
        params: CallParams {
            call_sid: "CA1".into(),
            account_sid: "AC1".into(),
            from: "+15551230000".into(),
            to: "+15005550006".into(),
            direction: "inbound".into(),
            caller_name: None,
            forwarded_from: None,
            parent_call_sid: None,
        },
        voice_url: Some(VOICE_URL.into()),
        voice_method: HttpMethod::Post,
        fallback_url: fallback.map(String::from),
        fallback_method: HttpMethod::Post,
        status_callback: status_callback.map(String::from),
        status_callback_method: HttpMethod::Post,
        status_callback_events: vec!["completed".into()],
        outbound: None,
        time_limit: DEFAULT_TIME_LIMIT,
        media: MediaSetup {
            session: SessionId(7),
            negotiated: sdp::Negotiated {
                codec: sdp::AudioCodec::Pcmu,
                payload_type: 0,
                remote_rtp: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6000),
                telephone_event_pt: Some(101),
                ptime_ms: 20,
            },
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        },
    }
}

fn drain(call: &mut Call) -> Vec<Output> {
    std::iter::from_fn(|| call.poll_output()).collect()
}

fn param<'a>(request: &'a AppRequest, name: &str) -> Option<&'a str> {
    request
        .params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn fetch_of(outputs: &[Output]) -> (u64, AppRequest) {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Fetch {
                request_id,
                request,
            } => Some((*request_id, request.clone())),
            _ => None,
        })
        .expect("a Fetch output")
}

fn prepare_of(outputs: &[Output]) -> (u64, MediaSource) {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::PrepareMedia { request_id, source } => Some((*request_id, source.clone())),
            _ => None,
        })
        .expect("a PrepareMedia output")
}

fn play_of(outputs: &[Output]) -> u32 {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Media(Command::Play { play_id, .. })
            | Output::Media(Command::Silence { play_id, .. }) => Some(*play_id),
            _ => None,
        })
        .expect("a Play/Silence command")
}

fn twiml(url: &str, body: &str) -> AppResult {
    AppResult::Response {
        url: url.into(),
        content_type: "text/xml".into(),
        body: body.as_bytes().to_vec(),
    }
}

/// Starts a call and answers the voice request with `body`; the media session opens.
fn started_with(body: &str, cfg: CallConfig) -> (Call, Vec<Output>) {
    let mut call = Call::new(cfg);
    call.start();
    let out = drain(&mut call);
    let (id, _) = fetch_of(&out);
    call.handle(Input::SessionOpened { local_port: 20000 });
    call.handle(Input::AppResult {
        request_id: id,
        result: twiml(VOICE_URL, body),
    });
    let out = drain(&mut call);
    (call, out)
}

fn media_id() -> MediaId {
    MediaId([1; 32])
}

#[test]
fn start_rings_opens_media_and_requests_the_voice_url() {
    let mut call = Call::new(config(None, None));
    call.start();
    let out = drain(&mut call);
    assert_eq!(out[0], Output::Sip(SipAction::Ringing));
    assert!(matches!(
        out[1],
        Output::Media(Command::OpenSession {
            session: SessionId(7),
            codec: shmq::Codec::Pcmu,
            dtmf_payload_type: Some(101),
            ptime_ms: 20,
            ..
        })
    ));
    let (_, request) = fetch_of(&out);
    assert_eq!(request.url, VOICE_URL);
    assert_eq!(param(&request, "CallStatus"), Some("ringing"));
    assert_eq!(param(&request, "Direction"), Some("inbound"));
}

#[test]
fn gather_plays_prompt_collects_digits_and_posts_them_to_the_action() {
    let (mut call, out) = started_with(
        r#"<Response><Gather numDigits="2" action="/digits"><Say>Enter two digits</Say></Gather></Response>"#,
        config(None, None),
    );
    // Answered with an SDP answer on the session's port, then the prompt is prepared.
    let answer = out
        .iter()
        .find_map(|o| match o {
            Output::Sip(SipAction::Answer { sdp }) => {
                Some(String::from_utf8_lossy(sdp).to_string())
            }
            _ => None,
        })
        .expect("answer");
    assert!(answer.contains("m=audio 20000 RTP/AVP 0"), "{answer}");
    assert!(out.contains(&Output::Status {
        status: CallStatus::InProgress,
        answered: true
    }));
    let (prep, source) = prepare_of(&out);
    assert_eq!(
        source,
        MediaSource::Say {
            text: "Enter two digits".into(),
            voice: "man".into(),
            language: "en-US".into()
        }
    );
    call.handle(Input::MediaPrepared {
        request_id: prep,
        result: Ok(media_id()),
    });
    let out = drain(&mut call);
    let play = play_of(&out);
    // The first key interrupts the prompt.
    call.handle(Input::Dtmf { digit: '1' });
    let out = drain(&mut call);
    assert!(out.contains(&Output::Media(Command::StopPlayback {
        session: SessionId(7)
    })));
    call.handle(Input::PlayDone { play_id: play });
    call.handle(Input::Dtmf { digit: '2' });
    let out = drain(&mut call);
    let (_, request) = fetch_of(&out);
    assert_eq!(request.url, "http://app.test/digits");
    assert_eq!(request.method, HttpMethod::Post);
    assert_eq!(param(&request, "Digits"), Some("12"));
    assert_eq!(param(&request, "CallStatus"), Some("in-progress"));
}

#[test]
fn gather_timeout_without_digits_falls_through_to_the_next_verb() {
    let (mut call, out) = started_with(
        r#"<Response><Gather timeout="3"><Pause length="1"/></Gather><Hangup/></Response>"#,
        config(None, None),
    );
    let play = play_of(&out);
    call.handle(Input::PlayDone { play_id: play });
    let out = drain(&mut call);
    let timer = out
        .iter()
        .find_map(|o| match o {
            Output::SetTimer { id, after } => Some((*id, *after)),
            _ => None,
        })
        .expect("gather timer");
    assert_eq!(timer.1, Duration::from_secs(3));
    call.handle(Input::Timer(timer.0));
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Hangup)));
    assert!(out.contains(&Output::Status {
        status: CallStatus::Completed,
        answered: false
    }));
    assert!(!out.iter().any(|o| matches!(o, Output::Fetch { .. })));
}

#[test]
fn finish_on_key_submits_and_uri_templates_expand() {
    let (mut call, out) = started_with(
        r#"<Response><Gather action="/menu/{Digits}.xml" method="GET"><Pause/></Gather></Response>"#,
        config(None, None),
    );
    let _ = play_of(&out);
    for d in ['4', '2', '#'] {
        call.handle(Input::Dtmf { digit: d });
    }
    let out = drain(&mut call);
    let (_, request) = fetch_of(&out);
    assert_eq!(request.url, "http://app.test/menu/42.xml");
    assert_eq!(request.method, HttpMethod::Get);
}

#[test]
fn stale_gather_timer_is_ignored_after_a_digit() {
    let (mut call, out) = started_with(
        r#"<Response><Gather timeout="5" numDigits="3"></Gather><Say>none</Say></Response>"#,
        config(None, None),
    );
    let first = out
        .iter()
        .find_map(|o| match o {
            Output::SetTimer { id, .. } if id.kind == TimerKind::GatherTimeout => Some(*id),
            _ => None,
        })
        .expect("timer");
    call.handle(Input::Dtmf { digit: '5' });
    let _ = drain(&mut call);
    call.handle(Input::Timer(first));
    assert!(
        drain(&mut call).is_empty(),
        "the stale timer must do nothing"
    );
}

#[test]
fn app_down_without_fallback_speaks_the_error_and_hangs_up() {
    let mut call = Call::new(config(None, Some("http://app.test/status")));
    call.start();
    let (id, _) = fetch_of(&drain(&mut call));
    call.handle(Input::SessionOpened { local_port: 20002 });
    call.handle(Input::AppResult {
        request_id: id,
        result: AppResult::Failed {
            code: 11205,
            url: VOICE_URL.into(),
            message: "connection refused".into(),
        },
    });
    let out = drain(&mut call);
    let notify = out
        .iter()
        .find_map(|o| match o {
            Output::Notify(n) => Some(n.clone()),
            _ => None,
        })
        .expect("notification");
    assert_eq!(notify.code, 11205);
    assert_eq!(notify.request_url.as_deref(), Some(VOICE_URL));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Sip(SipAction::Answer { .. }))));
    let (prep, source) = prepare_of(&out);
    assert!(matches!(source, MediaSource::Say { ref text, .. } if text == APPLICATION_ERROR_TEXT));
    call.handle(Input::MediaPrepared {
        request_id: prep,
        result: Ok(media_id()),
    });
    let play = play_of(&drain(&mut call));
    call.handle(Input::PlayDone { play_id: play });
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Hangup)));
    let callback = out
        .iter()
        .find_map(|o| match o {
            Output::StatusCallback(r) => Some(r.clone()),
            _ => None,
        })
        .expect("status callback");
    assert_eq!(param(&callback, "CallStatus"), Some("completed"));
    call.handle(Input::LegTerminated);
    assert_eq!(drain(&mut call), vec![Output::Finished]);
    assert!(call.is_finished());
}

#[test]
fn app_down_goes_to_the_fallback_with_error_code() {
    let mut call = Call::new(config(Some("http://fallback.test/fb"), None));
    call.start();
    let (id, _) = fetch_of(&drain(&mut call));
    call.handle(Input::AppResult {
        request_id: id,
        result: AppResult::Failed {
            code: 11200,
            url: VOICE_URL.into(),
            message: "HTTP 500".into(),
        },
    });
    let out = drain(&mut call);
    let (fb_id, request) = fetch_of(&out);
    assert_eq!(request.url, "http://fallback.test/fb");
    assert_eq!(param(&request, "ErrorCode"), Some("11200"));
    assert_eq!(param(&request, "ErrorUrl"), Some(VOICE_URL));
    // The fallback's document runs.
    call.handle(Input::AppResult {
        request_id: fb_id,
        result: twiml(
            "http://fallback.test/fb",
            "<Response><Reject reason=\"busy\"/></Response>",
        ),
    });
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Reject { status: 486 })));
}

#[test]
fn invalid_twiml_is_a_12100_notification_then_the_error_message() {
    let (_, out) = started_with("<Response><Say>unclosed", config(None, None));
    let codes: Vec<u32> = out
        .iter()
        .filter_map(|o| match o {
            Output::Notify(n) => Some(n.code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, vec![12100]);
    let (_, source) = prepare_of(&out);
    assert!(matches!(source, MediaSource::Say { ref text, .. } if text == APPLICATION_ERROR_TEXT));
}

#[test]
fn reject_answers_with_busy_or_decline_and_never_answers() {
    for (reason, code) in [("busy", 486), ("rejected", 603)] {
        let (_, out) = started_with(
            &format!("<Response><Reject reason=\"{reason}\"/></Response>"),
            config(None, None),
        );
        assert!(out.contains(&Output::Sip(SipAction::Reject { status: code })));
        assert!(!out
            .iter()
            .any(|o| matches!(o, Output::Sip(SipAction::Answer { .. }))));
    }
}

#[test]
fn remote_hangup_mid_prompt_closes_media_and_completes() {
    let (mut call, out) = started_with("<Response><Say>hello</Say></Response>", config(None, None));
    let (prep, _) = prepare_of(&out);
    call.handle(Input::MediaPrepared {
        request_id: prep,
        result: Ok(media_id()),
    });
    let _ = drain(&mut call);
    call.handle(Input::RemoteHangup);
    let out = drain(&mut call);
    assert!(out.contains(&Output::Media(Command::CloseSession {
        session: SessionId(7)
    })));
    assert!(out.contains(&Output::Status {
        status: CallStatus::Completed,
        answered: false
    }));
    assert_eq!(out.last(), Some(&Output::Finished));
}

#[test]
fn media_lost_fails_the_call_and_hangs_up() {
    let (mut call, _) = started_with(
        "<Response><Pause length=\"30\"/></Response>",
        config(None, Some("http://app.test/s")),
    );
    // Pause before answer: nothing answered yet, but a Say forces an answer.
    call.handle(Input::MediaLost);
    let out = drain(&mut call);
    assert!(out.contains(&Output::Status {
        status: CallStatus::Failed,
        answered: false
    }));
    let callback = out
        .iter()
        .find_map(|o| match o {
            Output::StatusCallback(r) => Some(r.clone()),
            _ => None,
        })
        .expect("status callback");
    assert_eq!(param(&callback, "CallStatus"), Some("failed"));
    // Not answered yet (the Pause delays answering): the leg is rejected.
    assert!(out.contains(&Output::Sip(SipAction::Reject { status: 503 })));
}

#[test]
fn pause_first_delays_the_answer() {
    let (mut call, out) = started_with(
        "<Response><Pause length=\"2\"/><Say>hi</Say></Response>",
        config(None, None),
    );
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Sip(SipAction::Answer { .. }))));
    let timer = out
        .iter()
        .find_map(|o| match o {
            Output::SetTimer { id, after } => Some((*id, *after)),
            _ => None,
        })
        .expect("pause timer");
    assert_eq!(timer.1, Duration::from_secs(2));
    call.handle(Input::Timer(timer.0));
    let out = drain(&mut call);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Sip(SipAction::Answer { .. }))));
    assert!(matches!(prepare_of(&out).1, MediaSource::Say { .. }));
}

#[test]
fn plain_text_is_spoken_then_the_call_hangs_up() {
    let mut call = Call::new(config(None, None));
    call.start();
    let (id, _) = fetch_of(&drain(&mut call));
    call.handle(Input::SessionOpened { local_port: 20000 });
    call.handle(Input::AppResult {
        request_id: id,
        result: AppResult::Response {
            url: VOICE_URL.into(),
            content_type: "text/plain; charset=utf-8".into(),
            body: b"Hello there".to_vec(),
        },
    });
    let out = drain(&mut call);
    let (prep, source) = prepare_of(&out);
    assert!(matches!(source, MediaSource::Say { ref text, .. } if text == "Hello there"));
    call.handle(Input::MediaPrepared {
        request_id: prep,
        result: Ok(media_id()),
    });
    let play = play_of(&drain(&mut call));
    call.handle(Input::PlayDone { play_id: play });
    assert!(drain(&mut call).contains(&Output::Sip(SipAction::Hangup)));
}

#[test]
fn audio_body_is_played_then_the_call_hangs_up() {
    let mut call = Call::new(config(None, None));
    call.start();
    let (id, _) = fetch_of(&drain(&mut call));
    call.handle(Input::SessionOpened { local_port: 20000 });
    call.handle(Input::AppResult {
        request_id: id,
        result: AppResult::Response {
            url: VOICE_URL.into(),
            content_type: "audio/wav".into(),
            body: vec![1, 2, 3],
        },
    });
    let out = drain(&mut call);
    assert!(matches!(prepare_of(&out).1, MediaSource::Bytes { .. }));
}

#[test]
fn session_opening_late_defers_the_answer() {
    let mut call = Call::new(config(None, None));
    call.start();
    let (id, _) = fetch_of(&drain(&mut call));
    call.handle(Input::AppResult {
        request_id: id,
        result: twiml(VOICE_URL, "<Response><Say>hi</Say></Response>"),
    });
    assert!(!drain(&mut call)
        .iter()
        .any(|o| matches!(o, Output::Sip(SipAction::Answer { .. }))));
    call.handle(Input::SessionOpened { local_port: 20004 });
    let out = drain(&mut call);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Sip(SipAction::Answer { .. }))));
    assert!(matches!(prepare_of(&out).1, MediaSource::Say { .. }));
}

#[test]
fn redirect_fetches_the_resolved_url() {
    let (_, out) = started_with(
        "<Response><Redirect method=\"GET\">next?x={From}</Redirect></Response>",
        config(None, None),
    );
    let (_, request) = fetch_of(&out);
    assert_eq!(request.url, "http://app.test/next?x=%2B15551230000");
    assert_eq!(request.method, HttpMethod::Get);
}

#[test]
fn cancel_before_answer_ends_as_canceled() {
    let mut call = Call::new(config(None, None));
    call.start();
    let _ = drain(&mut call);
    call.handle(Input::Cancelled);
    let out = drain(&mut call);
    assert!(out.contains(&Output::Status {
        status: CallStatus::Canceled,
        answered: false
    }));
    assert_eq!(out.last(), Some(&Output::Finished));
}

#[test]
fn hangup_or_an_empty_document_answers_first_like_twilio() {
    for doc in ["<Response/>", "<Response><Hangup/></Response>"] {
        let (mut call, out) = started_with(doc, config(None, None));
        let answer = out
            .iter()
            .position(|o| matches!(o, Output::Sip(SipAction::Answer { .. })))
            .expect("answered");
        let bye = out
            .iter()
            .position(|o| *o == Output::Sip(SipAction::Hangup))
            .expect("BYE");
        assert!(answer < bye);
        assert!(out.contains(&Output::Status {
            status: CallStatus::Completed,
            answered: false
        }));
        call.handle(Input::LegTerminated);
        assert!(call.is_finished());
    }
}

#[test]
fn hangup_waits_for_the_media_session_to_answer() {
    let mut call = Call::new(config(None, None));
    call.start();
    let (id, _) = fetch_of(&drain(&mut call));
    call.handle(Input::AppResult {
        request_id: id,
        result: twiml(VOICE_URL, "<Response><Hangup/></Response>"),
    });
    assert!(!drain(&mut call).iter().any(|o| matches!(o, Output::Sip(_))));
    call.handle(Input::SessionOpened { local_port: 20000 });
    let out = drain(&mut call);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Sip(SipAction::Answer { .. }))));
    assert!(out.contains(&Output::Sip(SipAction::Hangup)));
}

#[test]
fn reject_statuses_follow_the_reason() {
    for (reason, status) in [
        ("busy", CallStatus::Busy),
        ("rejected", CallStatus::NoAnswer),
    ] {
        let (_, out) = started_with(
            &format!("<Response><Reject reason=\"{reason}\"/></Response>"),
            config(None, None),
        );
        assert!(out.contains(&Output::Status {
            status,
            answered: false
        }));
    }
}

#[test]
fn caller_bye_before_answer_is_canceled() {
    let mut call = Call::new(config(None, None));
    call.start();
    let _ = drain(&mut call);
    call.handle(Input::RemoteHangup);
    let out = drain(&mut call);
    assert!(out.contains(&Output::Status {
        status: CallStatus::Canceled,
        answered: false
    }));
}

#[test]
fn no_media_session_refuses_the_call_at_once() {
    let mut call = Call::new(config(None, None));
    call.start();
    let _ = drain(&mut call);
    // The webhook is still in flight: the call does not wait for it.
    call.handle(Input::SessionFailed);
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Reject { status: 503 })));
    assert!(out.contains(&Output::Status {
        status: CallStatus::Failed,
        answered: false
    }));
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Media(Command::CloseSession { .. }))),
        "a session that never opened is not closed"
    );
}

#[test]
fn a_dtmf_flood_keeps_a_bounded_digit_string() {
    let (mut call, _) = started_with(
        r#"<Response><Gather finishOnKey=""></Gather></Response>"#,
        config(None, None),
    );
    for _ in 0..10_000 {
        call.handle(Input::Dtmf { digit: '5' });
        let _ = drain(&mut call);
    }
    let timer = {
        call.handle(Input::Dtmf { digit: '5' });
        drain(&mut call)
            .iter()
            .find_map(|o| match o {
                Output::SetTimer { id, .. } => Some(*id),
                _ => None,
            })
            .expect("timer")
    };
    call.handle(Input::Timer(timer));
    let out = drain(&mut call);
    let (_, request) = fetch_of(&out);
    assert_eq!(
        param(&request, "Digits").map(str::len),
        Some(MAX_GATHER_DIGITS)
    );
}

fn playing_say(body: &str) -> Call {
    let (mut call, out) = started_with(body, config(None, None));
    let (prep, _) = prepare_of(&out);
    call.handle(Input::MediaPrepared {
        request_id: prep,
        result: Ok(media_id()),
    });
    let _ = drain(&mut call);
    call
}

#[test]
fn live_redirect_leaves_the_prompt_and_runs_the_new_document() {
    let mut call = playing_say("<Response><Say loop=\"0\">hold music</Say></Response>");
    call.handle(Input::Control(CallUpdate::Redirect {
        url: "/waiting".into(),
        method: HttpMethod::Get,
    }));
    let out = drain(&mut call);
    assert_eq!(
        out[0],
        Output::Media(Command::StopPlayback {
            session: SessionId(7)
        })
    );
    let (id, request) = fetch_of(&out);
    assert_eq!(request.url, "http://app.test/waiting");
    assert_eq!(request.method, HttpMethod::Get);
    assert_eq!(param(&request, "CallStatus"), Some("in-progress"));
    // The interrupted prompt's PlayDone no longer moves the call on.
    call.handle(Input::PlayDone { play_id: 1 });
    assert!(drain(&mut call).is_empty());
    call.handle(Input::AppResult {
        request_id: id,
        result: twiml(
            "http://app.test/waiting",
            "<Response><Say>welcome back</Say></Response>",
        ),
    });
    let out = drain(&mut call);
    assert!(
        matches!(prepare_of(&out).1, MediaSource::Say { ref text, .. } if text == "welcome back")
    );
}

#[test]
fn live_twiml_replaces_a_gather() {
    let (mut call, _) = started_with(
        "<Response><Gather timeout=\"30\"></Gather></Response>",
        config(None, None),
    );
    call.handle(Input::Control(CallUpdate::Twiml(
        "<Response><Hangup/></Response>".into(),
    )));
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Hangup)));
    // Digits after the update no longer count.
    call.handle(Input::Dtmf { digit: '1' });
    assert!(!drain(&mut call)
        .iter()
        .any(|o| matches!(o, Output::Fetch { .. })));
}

#[test]
fn live_complete_hangs_up_and_cancel_only_applies_before_answer() {
    let mut call = playing_say("<Response><Say>long</Say></Response>");
    assert!(!call.accepts(&CallUpdate::Cancel));
    call.handle(Input::Control(CallUpdate::Cancel));
    assert!(
        drain(&mut call).is_empty(),
        "cancel has no effect on an answered call"
    );
    call.handle(Input::Control(CallUpdate::Complete));
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Hangup)));
    assert!(out.contains(&Output::Status {
        status: CallStatus::Completed,
        answered: false
    }));

    let mut ringing = Call::new(config(None, None));
    ringing.start();
    let _ = drain(&mut ringing);
    ringing.handle(Input::Control(CallUpdate::Cancel));
    let out = drain(&mut ringing);
    assert!(out.contains(&Output::Sip(SipAction::Reject { status: 487 })));
    assert!(out.contains(&Output::Status {
        status: CallStatus::Canceled,
        answered: false
    }));
}

// ----- outbound calls --------------------------------------------------------------------

fn outbound_config(send_digits: Option<&str>, twiml: Option<&str>, events: &[&str]) -> CallConfig {
    let mut cfg = config(None, Some("http://app.test/status"));
    cfg.params.direction = "outbound-api".into();
    cfg.status_callback_events = events.iter().map(|e| e.to_string()).collect();
    cfg.media.negotiated.remote_rtp = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9);
    cfg.outbound = Some(Box::new(OutboundSetup {
        request_uri: "sip:+15551230000@127.0.0.1:5090".into(),
        destination: "127.0.0.1:5090".parse().unwrap(),
        from_uri: "sip:+15005550006@127.0.0.1".into(),
        to_uri: "sip:+15551230000@127.0.0.1:5090".into(),
        credentials: None,
        ring_timeout: Duration::from_secs(20),
        send_digits: send_digits.map(String::from),
        twiml: twiml.map(String::from),
        record: None,
        dial_leg: false,
    }));
    cfg
}

const FAR_END_ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
    t=0 0\r\nm=audio 7000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\n";

fn callback_statuses(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::StatusCallback(r) => param(r, "CallStatus").map(String::from),
            _ => None,
        })
        .collect()
}

/// Starts an outbound call up to the INVITE; returns the call and the outputs so far.
fn dialing(cfg: CallConfig) -> (Call, Vec<Output>) {
    let mut call = Call::new(cfg);
    call.start();
    let mut out = drain(&mut call);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Sip(_) | Output::Fetch { .. })),
        "nothing is sent before the media session exists"
    );
    call.handle(Input::SessionOpened { local_port: 20010 });
    out.extend(drain(&mut call));
    (call, out)
}

#[test]
fn outbound_call_offers_rings_answers_and_runs_the_app() {
    let events = ["initiated", "ringing", "answered", "completed"];
    let (mut call, out) = dialing(outbound_config(None, None, &events));
    let invite = out
        .iter()
        .find_map(|o| match o {
            Output::Sip(SipAction::Invite(call)) => Some(call.clone()),
            _ => None,
        })
        .expect("INVITE");
    let offer = String::from_utf8(invite.sdp.clone()).unwrap();
    assert!(offer.contains("m=audio 20010 RTP/AVP 0 8 101"), "{offer}");
    assert_eq!(invite.request_uri, "sip:+15551230000@127.0.0.1:5090");
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::SetTimer { id, after }
        if id.kind == TimerKind::NoAnswer && *after == Duration::from_secs(20))));
    call.handle(Input::Progress { status: 180 });
    call.handle(Input::Progress { status: 183 });
    let ringing = drain(&mut call);
    assert_eq!(
        callback_statuses(&ringing),
        ["ringing"],
        "ringing reported once"
    );
    call.handle(Input::Answered {
        sdp: Some(FAR_END_ANSWER.as_bytes().to_vec()),
    });
    let answered = drain(&mut call);
    assert!(answered.contains(&Output::Media(Command::UpdateSession {
        session: SessionId(7),
        remote: "127.0.0.1:7000".parse().unwrap(),
        codec: shmq::Codec::Pcma,
        dtmf_payload_type: Some(101),
        ptime_ms: 20,
    })));
    assert!(answered.contains(&Output::Status {
        status: CallStatus::InProgress,
        answered: true
    }));
    let (_, request) = fetch_of(&answered);
    assert_eq!(request.url, VOICE_URL);
    assert_eq!(param(&request, "CallStatus"), Some("in-progress"));
    assert_eq!(param(&request, "Direction"), Some("outbound-api"));
    let mut all = out;
    all.extend(ringing);
    all.extend(answered);
    assert_eq!(
        callback_statuses(&all),
        ["initiated", "ringing", "in-progress"]
    );
}

#[test]
fn outbound_send_digits_go_before_the_inline_twiml() {
    let (mut call, _) = dialing(outbound_config(
        Some("1w2"),
        Some("<Response><Hangup/></Response>"),
        &[],
    ));
    call.handle(Input::Answered {
        sdp: Some(FAR_END_ANSWER.as_bytes().to_vec()),
    });
    let out = drain(&mut call);
    let play_id = out
        .iter()
        .find_map(|o| match o {
            Output::Media(Command::SendDigits {
                play_id,
                digits,
                len,
                ..
            }) => {
                assert_eq!(&digits[..usize::from(*len)], b"1w2");
                Some(*play_id)
            }
            _ => None,
        })
        .expect("SendDigits");
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Sip(SipAction::Hangup))));
    call.handle(Input::PlayDone { play_id });
    let out = drain(&mut call);
    assert!(
        out.contains(&Output::Sip(SipAction::Hangup)),
        "the inline TwiML runs after the digits"
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Fetch { .. })));
}

#[test]
fn outbound_failures_map_to_twilio_statuses() {
    for (sip_status, status) in [
        (486, CallStatus::Busy),
        (603, CallStatus::Busy),
        (408, CallStatus::NoAnswer),
        (503, CallStatus::Failed),
        (404, CallStatus::Failed),
    ] {
        let (mut call, _) = dialing(outbound_config(None, None, &["completed"]));
        call.handle(Input::DialFailed { status: sip_status });
        let out = drain(&mut call);
        assert!(
            out.contains(&Output::Status {
                status,
                answered: false
            }),
            "{sip_status}"
        );
        assert_eq!(callback_statuses(&out), [status.as_str()]);
        assert!(
            !out.iter().any(|o| matches!(o, Output::Sip(_))),
            "nothing to send after a final failure"
        );
        call.handle(Input::LegTerminated);
        assert!(call.is_finished());
    }
}

#[test]
fn outbound_ring_timeout_cancels_and_ends_as_no_answer() {
    let (mut call, out) = dialing(outbound_config(None, None, &[]));
    let timer = out
        .iter()
        .find_map(|o| match o {
            Output::SetTimer { id, .. } if id.kind == TimerKind::NoAnswer => Some(*id),
            _ => None,
        })
        .unwrap();
    call.handle(Input::Progress { status: 180 });
    let _ = drain(&mut call);
    call.handle(Input::Timer(timer));
    assert_eq!(drain(&mut call), vec![Output::Sip(SipAction::Cancel)]);
    call.handle(Input::DialFailed { status: 487 });
    assert!(drain(&mut call).contains(&Output::Status {
        status: CallStatus::NoAnswer,
        answered: false
    }));
}

#[test]
fn outbound_cancel_through_the_api_before_answer() {
    let (mut call, _) = dialing(outbound_config(None, None, &[]));
    call.handle(Input::Control(CallUpdate::Cancel));
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Cancel)));
    assert!(out.contains(&Output::Status {
        status: CallStatus::Canceled,
        answered: false
    }));
    // The 487 that follows changes nothing.
    call.handle(Input::DialFailed { status: 487 });
    assert!(drain(&mut call).is_empty());
}

#[test]
fn the_time_limit_runs_from_the_answer_and_hangs_up_as_completed() {
    let mut cfg = outbound_config(
        None,
        Some("<Response><Pause length=\"600\"/></Response>"),
        &[],
    );
    cfg.time_limit = Duration::from_secs(30);
    let (mut call, out) = dialing(cfg);
    let time_limit = |outputs: &[Output]| {
        outputs.iter().find_map(|o| match o {
            Output::SetTimer { id, after } if id.kind == TimerKind::TimeLimit => {
                Some((*id, *after))
            }
            _ => None,
        })
    };
    assert_eq!(time_limit(&out), None, "not armed before the answer");
    // Fired early (a stale timer of another call state): an unanswered call goes on.
    call.handle(Input::Timer(TimerId {
        kind: TimerKind::TimeLimit,
        generation: 0,
    }));
    assert!(!drain(&mut call)
        .iter()
        .any(|o| matches!(o, Output::Sip(_) | Output::Finished)));
    call.handle(Input::Answered {
        sdp: Some(FAR_END_ANSWER.as_bytes().to_vec()),
    });
    let answered = drain(&mut call);
    let (id, after) = time_limit(&answered).expect("TimeLimit armed on answer");
    assert_eq!(after, Duration::from_secs(30));
    // Other timers (the Pause) do not invalidate it.
    call.handle(Input::Timer(id));
    let ended = drain(&mut call);
    assert!(ended.contains(&Output::Sip(SipAction::Hangup)), "{ended:?}");
    assert!(
        ended.iter().any(|o| matches!(
            o,
            Output::Status {
                status: CallStatus::Completed,
                ..
            }
        )),
        "{ended:?}"
    );
}

#[test]
fn an_inbound_call_arms_the_default_time_limit_when_answered() {
    let (_, out) = started_with("<Response><Say>Hi</Say></Response>", config(None, None));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::SetTimer { id, after }
        if id.kind == TimerKind::TimeLimit && *after == DEFAULT_TIME_LIMIT)),
        "{out:?}"
    );
}

#[test]
fn a_call_canceled_before_it_is_dialled_only_reports_its_end() {
    let mut call = Call::new(outbound_config(None, None, &["initiated", "completed"]));
    call.end_before_dialing(CallStatus::Canceled);
    let out = drain(&mut call);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Sip(_) | Output::Media(_) | Output::Fetch { .. })),
        "nothing was opened or sent: {out:?}"
    );
    assert!(out.contains(&Output::Status {
        status: CallStatus::Canceled,
        answered: false
    }));
    assert_eq!(callback_statuses(&out), ["canceled"]);
    assert_eq!(out.last(), Some(&Output::Finished));
    assert!(call.is_finished());
    call.end_before_dialing(CallStatus::Failed);
    assert!(drain(&mut call).is_empty(), "it ends once");
}

#[test]
fn record_true_starts_the_recording_at_the_answer() {
    let mut cfg = outbound_config(
        None,
        Some("<Response><Pause length=\"5\"/></Response>"),
        &[],
    );
    let setup = RecordSetup {
        recording_sid: "RE0123456789abcdef0123456789abcdef".into(),
        channels: shmq::RecordingChannels::Dual,
        status_callback: None,
        status_callback_method: HttpMethod::Post,
        status_callback_events: vec!["completed".into()],
    };
    if let Some(outbound) = cfg.outbound.as_mut() {
        outbound.record = Some(setup.clone());
    }
    let (mut call, out) = dialing(cfg);
    assert!(!out.iter().any(|o| matches!(o, Output::RecordingStarted(_))));
    call.handle(Input::Answered {
        sdp: Some(FAR_END_ANSWER.as_bytes().to_vec()),
    });
    let answered = drain(&mut call);
    let update = answered
        .iter()
        .position(|o| matches!(o, Output::Media(Command::UpdateSession { .. })))
        .expect("UpdateSession");
    let start = answered
        .iter()
        .position(|o| {
            matches!(o, Output::Media(Command::StartRecording { session, recording, channels, max_duration_ms: 0 })
                if *session == SessionId(7)
                    && recording.to_hex() == "0123456789abcdef0123456789abcdef"
                    && *channels == shmq::RecordingChannels::Dual)
        })
        .expect("StartRecording");
    assert!(
        update < start,
        "the session is re-targeted before recording starts"
    );
    assert!(answered.contains(&Output::RecordingStarted(Box::new(setup))));
}

// ----- <Dial>: the caller's side ----------------------------------------------------------

fn dial_plan_of(out: &[Output]) -> DialPlan {
    out.iter()
        .find_map(|o| match o {
            Output::Dial(plan) => Some((**plan).clone()),
            _ => None,
        })
        .expect("a Dial output")
}

fn leg_controls(out: &[Output]) -> Vec<(u32, CallUpdate)> {
    out.iter()
        .filter_map(|o| match o {
            Output::DialLegControl { leg, update } => Some((*leg, update.clone())),
            _ => None,
        })
        .collect()
}

fn leg_event(call: &mut Call, leg: u32, event: LegEvent) -> Vec<Output> {
    call.handle(Input::DialLeg {
        leg,
        call_sid: format!("CAleg{leg}"),
        event,
    });
    drain(call)
}

fn ended(status: CallStatus, duration: u64) -> LegEvent {
    LegEvent::Ended { status, duration }
}

/// A call running `<Dial>` (answered, legs placed); returns it with the outputs so far.
fn dialing_from(body: &str) -> (Call, Vec<Output>) {
    started_with(body, config(None, None))
}

/// Plays the ringback, then answers and readies `leg`, whose session is 9; returns the
/// outputs of the Ready.
fn connect(call: &mut Call, out: &[Output], leg: u32) -> Vec<Output> {
    let _ = out;
    let _ = leg_event(call, leg, LegEvent::Answered);
    leg_event(
        call,
        leg,
        LegEvent::Ready {
            session: SessionId(9),
        },
    )
}

#[test]
fn dial_answers_places_the_legs_rings_back_and_bridges_the_first_answer() {
    let (mut call, out) = dialing_from(
        r#"<Response><Dial action="/done" timeout="20"><Number>+1 (555) 123-4567</Number><Sip>sip:bob@127.0.0.1:5090</Sip></Dial><Say>never</Say></Response>"#,
    );
    assert!(out.contains(&Output::Status {
        status: CallStatus::InProgress,
        answered: true
    }));
    let plan = dial_plan_of(&out);
    assert_eq!(
        plan.caller_id, "+15551230000",
        "the caller's number by default"
    );
    assert!(!plan.check_caller_id);
    assert_eq!(plan.ring_timeout, Duration::from_secs(20));
    assert_eq!(plan.time_limit, Duration::from_secs(14400));
    let targets: Vec<_> = plan.legs.iter().map(|l| l.target.clone()).collect();
    assert_eq!(
        targets,
        [
            DialLegTarget::Number("+15551234567".into()),
            DialLegTarget::Sip {
                uri: "sip:bob@127.0.0.1:5090".into(),
                username: None,
                password: None
            }
        ]
    );
    assert_eq!(plan.legs[0].status_callback_events, ["completed"]);
    assert_ne!(plan.legs[0].leg, plan.legs[1].leg);
    let (first, second) = (plan.legs[0].leg, plan.legs[1].leg);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::SetTimer { id, after }
        if id.kind == TimerKind::DialTimeout && *after > Duration::from_secs(20))));
    // Ringback: a tone played until stopped.
    let (prep, source) = prepare_of(&out);
    assert_eq!(source, MediaSource::Ringback { country: None });
    call.handle(Input::MediaPrepared {
        request_id: prep,
        result: Ok(media_id()),
    });
    let out = drain(&mut call);
    assert!(matches!(
        out.as_slice(),
        [Output::Media(Command::Play {
            session: SessionId(7),
            loops: 0,
            ..
        })]
    ));
    assert!(leg_event(&mut call, second, LegEvent::Ringing).is_empty());
    // The first answer wins: the other leg is hung up (canceled while it rings).
    let answered = leg_event(&mut call, first, LegEvent::Answered);
    assert_eq!(leg_controls(&answered), [(second, CallUpdate::Complete)]);
    let ready = leg_event(
        &mut call,
        first,
        LegEvent::Ready {
            session: SessionId(9),
        },
    );
    assert_eq!(
        ready,
        [
            Output::Media(Command::StopPlayback {
                session: SessionId(7)
            }),
            Output::Media(Command::Bridge {
                session: SessionId(7),
                peer: SessionId(9)
            })
        ]
    );
    call.handle(Input::Bridged);
    assert!(leg_event(&mut call, second, ended(CallStatus::Canceled, 0)).is_empty());
    // The connected leg hangs up: the outcome goes to the action URL.
    let over = leg_event(&mut call, first, ended(CallStatus::Completed, 42));
    let (_, request) = fetch_of(&over);
    assert_eq!(request.url, "http://app.test/done");
    assert_eq!(param(&request, "DialCallStatus"), Some("completed"));
    assert_eq!(param(&request, "DialCallSid"), Some("CAleg0"));
    assert_eq!(param(&request, "DialCallDuration"), Some("42"));
    assert_eq!(param(&request, "DialBridged"), Some("true"));
    assert_eq!(param(&request, "CallStatus"), Some("in-progress"));
    assert!(!over
        .iter()
        .any(|o| matches!(o, Output::PrepareMedia { .. })));
}

#[test]
fn without_action_a_dial_that_fails_goes_on_with_the_next_verb() {
    let (mut call, out) = dialing_from(
        r#"<Response><Dial><Sip>sip:busy@127.0.0.1:5090</Sip></Dial><Say>after</Say></Response>"#,
    );
    let leg = dial_plan_of(&out).legs[0].leg;
    let _ = leg_event(&mut call, leg, LegEvent::Ringing);
    let out = leg_event(&mut call, leg, ended(CallStatus::Busy, 0));
    assert!(!out.iter().any(|o| matches!(o, Output::Fetch { .. })));
    let (_, source) = prepare_of(&out);
    assert!(matches!(source, MediaSource::Say { text, .. } if text == "after"));
}

#[test]
fn dial_outcomes_without_an_answer_follow_the_legs() {
    for (statuses, expected) in [
        (vec![CallStatus::Busy], "busy"),
        (vec![CallStatus::NoAnswer], "no-answer"),
        (vec![CallStatus::Failed], "failed"),
        (vec![CallStatus::Failed, CallStatus::Busy], "busy"),
        (vec![CallStatus::Failed, CallStatus::NoAnswer], "no-answer"),
    ] {
        let nouns: String = statuses
            .iter()
            .enumerate()
            .map(|(i, _)| format!("<Sip>sip:leg{i}@127.0.0.1</Sip>"))
            .collect();
        let (mut call, out) = dialing_from(&format!(
            r#"<Response><Dial action="/done">{nouns}</Dial></Response>"#
        ));
        let legs: Vec<u32> = dial_plan_of(&out).legs.iter().map(|l| l.leg).collect();
        let mut last = Vec::new();
        for (leg, status) in legs.iter().zip(&statuses) {
            last = leg_event(&mut call, *leg, ended(*status, 0));
        }
        let (_, request) = fetch_of(&last);
        assert_eq!(
            param(&request, "DialCallStatus"),
            Some(expected),
            "{statuses:?}"
        );
        assert_eq!(param(&request, "DialBridged"), Some("false"));
        assert_eq!(param(&request, "DialCallDuration"), None);
        let last_leg = format!("CAleg{}", legs[legs.len() - 1]);
        assert_eq!(param(&request, "DialCallSid"), Some(last_leg.as_str()));
    }
}

#[test]
fn nobody_answering_within_the_timeout_is_no_answer() {
    let (mut call, out) = dialing_from(
        r#"<Response><Dial timeout="3" action="/done"><Sip>sip:a@127.0.0.1</Sip><Sip>sip:b@127.0.0.1</Sip></Dial></Response>"#,
    );
    let plan = dial_plan_of(&out);
    assert_eq!(plan.ring_timeout, Duration::from_secs(3));
    let timer = out
        .iter()
        .find_map(|o| match o {
            Output::SetTimer { id, .. } if id.kind == TimerKind::DialTimeout => Some(*id),
            _ => None,
        })
        .unwrap();
    let _ = leg_event(&mut call, plan.legs[0].leg, LegEvent::Ringing);
    call.handle(Input::Timer(timer));
    let out = drain(&mut call);
    assert_eq!(
        leg_controls(&out),
        [
            (plan.legs[0].leg, CallUpdate::Complete),
            (plan.legs[1].leg, CallUpdate::Complete)
        ]
    );
    let (_, request) = fetch_of(&out);
    assert_eq!(param(&request, "DialCallStatus"), Some("no-answer"));
    // The legs' own ends come later and change nothing.
    assert!(leg_event(&mut call, plan.legs[0].leg, ended(CallStatus::Canceled, 0)).is_empty());
}

#[test]
fn the_caller_hanging_up_while_the_legs_ring_cancels_them_and_reports_canceled() {
    let (mut call, out) = dialing_from(
        r#"<Response><Dial action="/done"><Sip>sip:a@127.0.0.1</Sip></Dial></Response>"#,
    );
    let leg = dial_plan_of(&out).legs[0].leg;
    let _ = leg_event(&mut call, leg, LegEvent::Ringing);
    call.handle(Input::RemoteHangup);
    let out = drain(&mut call);
    assert_eq!(leg_controls(&out), [(leg, CallUpdate::Complete)]);
    let (_, request) = fetch_of(&out);
    assert_eq!(param(&request, "DialCallStatus"), Some("canceled"));
    assert_eq!(param(&request, "CallStatus"), Some("completed"));
    assert!(out.contains(&Output::Status {
        status: CallStatus::Completed,
        answered: false
    }));
    assert_eq!(out.last(), Some(&Output::Finished));
    assert!(call.is_finished());
}

#[test]
fn the_caller_hanging_up_while_bridged_reports_once_the_leg_has_ended() {
    let (mut call, out) = dialing_from(
        r#"<Response><Dial action="/done"><Sip>sip:a@127.0.0.1</Sip></Dial></Response>"#,
    );
    let leg = dial_plan_of(&out).legs[0].leg;
    let _ = connect(&mut call, &out, leg);
    call.handle(Input::Bridged);
    call.handle(Input::RemoteHangup);
    let out = drain(&mut call);
    assert_eq!(leg_controls(&out), [(leg, CallUpdate::Complete)]);
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Fetch { .. } | Output::Finished)));
    call.handle(Input::LegTerminated);
    assert!(drain(&mut call).is_empty(), "still waiting for the leg");
    let out = leg_event(&mut call, leg, ended(CallStatus::Completed, 12));
    let (_, request) = fetch_of(&out);
    assert_eq!(param(&request, "DialCallStatus"), Some("completed"));
    assert_eq!(param(&request, "DialCallDuration"), Some("12"));
    assert_eq!(param(&request, "DialBridged"), Some("true"));
    assert_eq!(out.last(), Some(&Output::Finished));
    assert!(call.is_finished());
}

#[test]
fn hangup_on_star_hangs_up_the_connected_leg_and_the_document_goes_on() {
    let body = r#"<Response><Dial hangupOnStar="true"><Sip>sip:a@127.0.0.1</Sip></Dial><Say>back</Say></Response>"#;
    let (mut call, out) = dialing_from(body);
    let leg = dial_plan_of(&out).legs[0].leg;
    // Before a leg is connected, * is nothing.
    call.handle(Input::Dtmf { digit: '*' });
    assert!(drain(&mut call).is_empty());
    let _ = connect(&mut call, &out, leg);
    call.handle(Input::Bridged);
    call.handle(Input::Dtmf { digit: '1' });
    assert!(drain(&mut call).is_empty());
    call.handle(Input::Dtmf { digit: '*' });
    assert_eq!(
        leg_controls(&drain(&mut call)),
        [(leg, CallUpdate::Complete)]
    );
    let out = leg_event(&mut call, leg, ended(CallStatus::Completed, 3));
    let (_, source) = prepare_of(&out);
    assert!(matches!(source, MediaSource::Say { text, .. } if text == "back"));

    // Without hangupOnStar, * stays with the legs.
    let (mut call, out) =
        dialing_from(r#"<Response><Dial><Sip>sip:a@127.0.0.1</Sip></Dial></Response>"#);
    let leg = dial_plan_of(&out).legs[0].leg;
    let _ = connect(&mut call, &out, leg);
    call.handle(Input::Bridged);
    call.handle(Input::Dtmf { digit: '*' });
    assert!(leg_controls(&drain(&mut call)).is_empty());
}

#[test]
fn a_bridge_the_media_plane_refuses_fails_the_dial_but_not_the_call() {
    let (mut call, out) = dialing_from(
        r#"<Response><Dial action="/done"><Sip>sip:a@127.0.0.1</Sip></Dial></Response>"#,
    );
    let leg = dial_plan_of(&out).legs[0].leg;
    let _ = connect(&mut call, &out, leg);
    call.handle(Input::SessionFailed);
    let out = drain(&mut call);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Notify(n) if n.code == 13227)));
    assert_eq!(leg_controls(&out), [(leg, CallUpdate::Complete)]);
    assert!(!out.iter().any(|o| matches!(o, Output::Sip(_))));
    let out = leg_event(&mut call, leg, ended(CallStatus::Completed, 0));
    let (_, request) = fetch_of(&out);
    assert_eq!(param(&request, "DialCallStatus"), Some("failed"));
    assert_eq!(param(&request, "DialBridged"), Some("false"));
}

#[test]
fn a_caller_id_the_account_may_not_use_is_refused_with_13214() {
    let (mut call, out) = dialing_from(
        r#"<Response><Dial callerId="+15550009999" action="/done"><Number>+15551234567</Number></Dial></Response>"#,
    );
    let plan = dial_plan_of(&out);
    assert_eq!(plan.caller_id, "+15550009999");
    assert!(plan.check_caller_id, "the driver checks a chosen caller ID");
    call.handle(Input::DialRefused {
        code: 13214,
        message: "Dial: Invalid callerId value".into(),
    });
    let out = drain(&mut call);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Notify(n) if n.code == 13214 && n.warning)));
    let (_, request) = fetch_of(&out);
    assert_eq!(param(&request, "DialCallStatus"), Some("failed"));

    // The caller's own number and SIP users (to SIP endpoints) need no check.
    for (caller_id, noun) in [
        ("+15551230000", "<Number>+15551234567</Number>"),
        ("alice", "<Sip>sip:bob@127.0.0.1</Sip>"),
    ] {
        let (_, out) = dialing_from(&format!(
            r#"<Response><Dial callerId="{caller_id}">{noun}</Dial></Response>"#
        ));
        let plan = dial_plan_of(&out);
        assert_eq!(plan.caller_id, caller_id);
        assert!(!plan.check_caller_id, "{caller_id}");
    }
    // A phone number to a SIP endpoint is checked like any other.
    let (_, out) = dialing_from(
        r#"<Response><Dial callerId="+15550009999"><Sip>sip:bob@127.0.0.1</Sip></Dial></Response>"#,
    );
    assert!(dial_plan_of(&out).check_caller_id);
}

#[test]
fn an_outbound_api_call_dials_with_its_to_as_caller_id() {
    let (mut call, _) = dialing(outbound_config(
        None,
        Some(
            r#"<Response><Dial timeLimit="60" timeout="700"><Number>+15557654321</Number></Dial></Response>"#,
        ),
        &[],
    ));
    call.handle(Input::Answered {
        sdp: Some(FAR_END_ANSWER.as_bytes().to_vec()),
    });
    let plan = dial_plan_of(&drain(&mut call));
    assert_eq!(plan.caller_id, "+15005550006");
    assert_eq!(plan.time_limit, Duration::from_secs(60));
    assert_eq!(plan.ring_timeout, Duration::from_secs(600), "at most 600 s");
}

#[test]
fn answer_on_bridge_answers_the_caller_only_when_the_leg_is_connected() {
    let mut call = Call::new(config(None, None));
    call.start();
    let (id, _) = fetch_of(&drain(&mut call));
    call.handle(Input::AppResult {
        request_id: id,
        result: twiml(
            VOICE_URL,
            r#"<Response><Dial answerOnBridge="true"><Sip>sip:a@127.0.0.1</Sip></Dial></Response>"#,
        ),
    });
    assert!(
        drain(&mut call).is_empty(),
        "the Dial waits for the caller's session"
    );
    call.handle(Input::SessionOpened { local_port: 20000 });
    let out = drain(&mut call);
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Sip(SipAction::Answer { .. }))));
    assert!(
        !out.iter().any(|o| matches!(o, Output::PrepareMedia { .. })),
        "no ringback before the answer"
    );
    let leg = dial_plan_of(&out).legs[0].leg;
    let out = connect(&mut call, &[], leg);
    let answer = out
        .iter()
        .position(|o| matches!(o, Output::Sip(SipAction::Answer { .. })))
        .expect("answered at the bridge");
    let bridge = out
        .iter()
        .position(|o| matches!(o, Output::Media(Command::Bridge { .. })))
        .expect("Bridge");
    assert!(answer < bridge);
}

#[test]
fn a_live_redirect_during_a_dial_hangs_up_the_legs_without_an_action_request() {
    let (mut call, out) = dialing_from(
        r#"<Response><Dial action="/done"><Sip>sip:a@127.0.0.1</Sip></Dial></Response>"#,
    );
    let leg = dial_plan_of(&out).legs[0].leg;
    let _ = connect(&mut call, &out, leg);
    call.handle(Input::Control(CallUpdate::Twiml(
        "<Response><Say>new</Say></Response>".into(),
    )));
    let out = drain(&mut call);
    assert_eq!(leg_controls(&out), [(leg, CallUpdate::Complete)]);
    let (_, source) = prepare_of(&out);
    assert!(matches!(source, MediaSource::Say { text, .. } if text == "new"));
    assert!(leg_event(&mut call, leg, ended(CallStatus::Completed, 1)).is_empty());
}

#[test]
fn legs_of_an_earlier_dial_cannot_touch_the_next_one() {
    let (mut call, out) = dialing_from(
        r#"<Response><Dial><Sip>sip:a@127.0.0.1</Sip></Dial><Dial action="/done"><Sip>sip:b@127.0.0.1</Sip></Dial></Response>"#,
    );
    let first = dial_plan_of(&out).legs[0].leg;
    let out = leg_event(&mut call, first, ended(CallStatus::Busy, 0));
    let second = dial_plan_of(&out).legs[0].leg;
    assert_ne!(first, second);
    assert!(leg_event(&mut call, first, LegEvent::Answered).is_empty());
    assert!(leg_event(&mut call, first, ended(CallStatus::Busy, 0)).is_empty());
}

#[test]
fn unsupported_nouns_are_skipped_with_a_warning() {
    let (_, out) =
        dialing_from(r#"<Response><Dial><Client>alice</Client></Dial><Say>next</Say></Response>"#);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Notify(n) if n.code == 13201 && n.warning)));
    assert!(!out.iter().any(|o| matches!(o, Output::Dial(_))));
    let (_, source) = prepare_of(&out);
    assert!(matches!(source, MediaSource::Say { text, .. } if text == "next"));
}

#[test]
fn number_callbacks_and_whisper_urls_resolve_against_the_document() {
    let (_, out) = dialing_from(
        r#"<Response><Dial><Number sendDigits="1w2" url="/whisper" method="GET" statusCallback="/leg-status" statusCallbackEvent="initiated answered">+15551234567</Number></Dial></Response>"#,
    );
    let leg = &dial_plan_of(&out).legs[0];
    assert_eq!(leg.send_digits.as_deref(), Some("1w2"));
    assert_eq!(leg.whisper_url.as_deref(), Some("http://app.test/whisper"));
    assert_eq!(leg.whisper_method, HttpMethod::Get);
    assert_eq!(
        leg.status_callback.as_deref(),
        Some("http://app.test/leg-status")
    );
    assert_eq!(leg.status_callback_events, ["initiated", "answered"]);
    assert!(!out.iter().any(|o| matches!(o, Output::Notify(_))));
    // Recording a Dial is not there yet: said, not silently dropped.
    let (_, out) = dialing_from(
        r#"<Response><Dial record="record-from-answer"><Sip>sip:a@127.0.0.1</Sip></Dial></Response>"#,
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Notify(n) if n.code == 13201 && n.warning)));
    assert!(out.iter().any(|o| matches!(o, Output::Dial(_))));
}

// ----- <Dial>: the leg's side -------------------------------------------------------------

fn dial_leg_config(send_digits: Option<&str>, whisper: Option<&str>) -> CallConfig {
    let mut cfg = outbound_config(send_digits, None, &["completed"]);
    cfg.params.direction = "outbound-dial".into();
    cfg.params.parent_call_sid = Some("CAparent".into());
    cfg.voice_url = whisper.map(String::from);
    if let Some(outbound) = cfg.outbound.as_mut() {
        outbound.dial_leg = true;
    }
    cfg
}

fn leg_events(out: &[Output]) -> Vec<LegEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::LegEvent(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_dial_leg_reports_ringing_and_answer_then_waits_to_be_bridged() {
    let (mut call, out) = dialing(dial_leg_config(None, None));
    assert!(leg_events(&out).is_empty());
    call.handle(Input::Progress { status: 180 });
    call.handle(Input::Progress { status: 183 });
    assert_eq!(leg_events(&drain(&mut call)), [LegEvent::Ringing]);
    call.handle(Input::Answered {
        sdp: Some(FAR_END_ANSWER.as_bytes().to_vec()),
    });
    let out = drain(&mut call);
    assert_eq!(
        leg_events(&out),
        [
            LegEvent::Answered,
            LegEvent::Ready {
                session: SessionId(7)
            }
        ]
    );
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Fetch { .. } | Output::Sip(_))),
        "no app runs on a leg: {out:?}"
    );
    // The far end hangs up: the leg ends and says so.
    call.handle(Input::RemoteHangup);
    let out = drain(&mut call);
    assert_eq!(leg_events(&out), [ended(CallStatus::Completed, 0)]);
    assert!(out.contains(&Output::Media(Command::CloseSession {
        session: SessionId(7)
    })));
}

#[test]
fn a_dial_leg_sends_its_digits_and_runs_its_whisper_before_it_is_ready() {
    let (mut call, _) = dialing(dial_leg_config(Some("12"), Some("http://app.test/whisper")));
    call.handle(Input::Answered {
        sdp: Some(FAR_END_ANSWER.as_bytes().to_vec()),
    });
    let out = drain(&mut call);
    assert_eq!(leg_events(&out), [LegEvent::Answered]);
    let play_id = out
        .iter()
        .find_map(|o| match o {
            Output::Media(Command::SendDigits { play_id, .. }) => Some(*play_id),
            _ => None,
        })
        .expect("SendDigits");
    call.handle(Input::PlayDone { play_id });
    let out = drain(&mut call);
    let (id, request) = fetch_of(&out);
    assert_eq!(request.url, "http://app.test/whisper");
    assert_eq!(param(&request, "Direction"), Some("outbound-dial"));
    assert_eq!(param(&request, "ParentCallSid"), Some("CAparent"));
    call.handle(Input::AppResult {
        request_id: id,
        result: twiml(
            "http://app.test/whisper",
            r#"<Response><Pause length="1"/></Response>"#,
        ),
    });
    let play = play_of(&drain(&mut call));
    call.handle(Input::PlayDone { play_id: play });
    assert_eq!(
        leg_events(&drain(&mut call)),
        [LegEvent::Ready {
            session: SessionId(7)
        }]
    );
}

#[test]
fn a_whisper_that_hangs_up_ends_the_leg_unbridged() {
    let (mut call, _) = dialing(dial_leg_config(None, Some("http://app.test/whisper")));
    call.handle(Input::Answered {
        sdp: Some(FAR_END_ANSWER.as_bytes().to_vec()),
    });
    let (id, _) = fetch_of(&drain(&mut call));
    call.handle(Input::AppResult {
        request_id: id,
        result: twiml("http://app.test/whisper", "<Response><Hangup/></Response>"),
    });
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Hangup)));
    assert_eq!(leg_events(&out), [ended(CallStatus::Completed, 0)]);
}

#[test]
fn the_caller_hangs_up_a_dial_leg_ringing_or_connected() {
    let (mut call, _) = dialing(dial_leg_config(None, None));
    call.handle(Input::Control(CallUpdate::Complete));
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Cancel)));
    assert_eq!(leg_events(&out), [ended(CallStatus::Canceled, 0)]);

    let (mut call, _) = dialing(dial_leg_config(None, None));
    call.handle(Input::Answered {
        sdp: Some(FAR_END_ANSWER.as_bytes().to_vec()),
    });
    let _ = drain(&mut call);
    call.handle(Input::Control(CallUpdate::Complete));
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Hangup)));
    assert_eq!(leg_events(&out), [ended(CallStatus::Completed, 0)]);
}

#[test]
fn a_dial_leg_that_fails_reports_its_status() {
    let (mut call, _) = dialing(dial_leg_config(None, None));
    call.handle(Input::DialFailed { status: 486 });
    assert_eq!(leg_events(&drain(&mut call)), [ended(CallStatus::Busy, 0)]);
    let mut call = Call::new(dial_leg_config(None, None));
    call.end_before_dialing(CallStatus::Failed);
    assert_eq!(
        leg_events(&drain(&mut call)),
        [ended(CallStatus::Failed, 0)]
    );
}

#[test]
fn rtp_timeout_hangs_up_an_answered_call_as_completed_and_is_ignored_before_answer() {
    // Before answer (a Pause delays answering): nothing happens.
    let (mut ringing, _) = started_with(
        "<Response><Pause length=\"30\"/></Response>",
        config(None, None),
    );
    ringing.handle(Input::RtpTimeout { idle_ms: 60_000 });
    assert!(
        drain(&mut ringing).is_empty(),
        "no RTP is expected before the answer"
    );

    // Answered (a Say answers): the call ends, the caller gets a BYE, status completed.
    let (mut call, out) = started_with(
        "<Response><Say>Hello</Say><Pause length=\"30\"/></Response>",
        config(None, None),
    );
    assert!(out.contains(&Output::Status {
        status: CallStatus::InProgress,
        answered: true
    }));
    call.handle(Input::RtpTimeout { idle_ms: 60_000 });
    let out = drain(&mut call);
    assert!(out.contains(&Output::Sip(SipAction::Hangup)), "{out:?}");
    assert!(out.contains(&Output::Media(Command::CloseSession {
        session: SessionId(7)
    })));
    assert!(
        out.contains(&Output::Status {
            status: CallStatus::Completed,
            answered: false
        }),
        "{out:?}"
    );
}

// ----- <Dial><Conference> ------------------------------------------------------------------

fn conference_join_of(out: &[Output]) -> ConferenceJoin {
    out.iter()
        .find_map(|o| match o {
            Output::JoinConference(join) => Some((**join).clone()),
            _ => None,
        })
        .expect("a JoinConference output")
}

fn joined(call: &mut Call) {
    call.handle(Input::Conference(crate::conference::Notice::Joined {
        conference_sid: "CF1".into(),
        mix: shmq::MixId(77),
    }));
}

#[test]
fn conference_answers_joins_the_room_and_waits_with_hold_music() {
    let body = r#"<Response><Dial><Conference muted="true" beep="onEnter"
        endConferenceOnExit="true" participantLabel="agent" statusCallback="/conf"
        statusCallbackEvent="join leave">room 7</Conference></Dial></Response>"#;
    let (mut call, out) = started_with(body, config(None, None));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Sip(SipAction::Answer { .. }))));
    let join = conference_join_of(&out);
    assert_eq!(join.name, "room 7");
    assert_eq!(join.request.call_sid, "CA1");
    assert!(join.request.muted && join.request.end_conference_on_exit);
    assert_eq!(join.request.beep, twiml::ConferenceBeep::OnEnter);
    assert_eq!(join.request.label.as_deref(), Some("agent"));
    let callback = join.request.status_callback.expect("a status callback");
    assert_eq!(callback.url, "http://app.test/conf");
    assert_eq!(
        callback.events,
        vec![twiml::ConferenceEvent::Join, twiml::ConferenceEvent::Leave]
    );
    joined(&mut call);
    assert_eq!(call.conference_sid(), Some("CF1"));
    call.handle(Input::Conference(crate::conference::Notice::Wait));
    let out = drain(&mut call);
    let (id, source) = prepare_of(&out);
    assert_eq!(source, MediaSource::Tone(ToneKind::HoldMusic));
    call.handle(Input::MediaPrepared {
        request_id: id,
        result: Ok(media_id()),
    });
    let out = drain(&mut call);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Media(Command::Play { loops: 0, .. }))));

    // Live: the wait music stops, the session joins the mix.
    call.handle(Input::Conference(crate::conference::Notice::Live {
        muted: true,
        hold: false,
        hold_url: None,
        hold_method: HttpMethod::Get,
    }));
    let out = drain(&mut call);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Media(Command::StopPlayback { .. }))));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Media(Command::JoinMix {
            session: SessionId(7),
            mix: shmq::MixId(77),
            muted: true,
            deaf: false
        })
    )));

    // A beep is played over the mix; its end changes nothing.
    call.handle(Input::Conference(crate::conference::Notice::Beep(
        crate::conference::Beep::Enter,
    )));
    let out = drain(&mut call);
    let (id, source) = prepare_of(&out);
    assert_eq!(source, MediaSource::Tone(ToneKind::BeepEnter));
    call.handle(Input::MediaPrepared {
        request_id: id,
        result: Ok(media_id()),
    });
    let out = drain(&mut call);
    let beep = play_of(&out);
    call.handle(Input::PlayDone { play_id: beep });
    assert!(drain(&mut call).is_empty());

    // The caller hangs up: the room hears it.
    call.handle(Input::RemoteHangup);
    let out = drain(&mut call);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::LeaveConference {
            reason: crate::conference::LeaveReason::HungUp
        }
    )));
    assert!(out.iter().any(|o| matches!(o, Output::Finished)));
}

#[test]
fn leaving_a_conference_goes_to_the_action_and_star_asks_to_leave() {
    let body = r#"<Response><Dial action="/after" hangupOnStar="true"><Conference>r</Conference></Dial><Say>unused</Say></Response>"#;
    let (mut call, _) = started_with(body, config(None, None));
    joined(&mut call);
    call.handle(Input::Conference(crate::conference::Notice::Live {
        muted: false,
        hold: false,
        hold_url: None,
        hold_method: HttpMethod::Get,
    }));
    drain(&mut call);
    call.handle(Input::Dtmf { digit: '1' });
    assert!(drain(&mut call).is_empty(), "only * leaves");
    call.handle(Input::Dtmf { digit: '*' });
    let out = drain(&mut call);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::LeaveConference {
            reason: crate::conference::LeaveReason::HangupOnStar
        }
    )));
    call.handle(Input::Conference(crate::conference::Notice::Left));
    let out = drain(&mut call);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Media(Command::LeaveMix {
            session: SessionId(7)
        })
    )));
    let (_, request) = fetch_of(&out);
    assert_eq!(request.url, "http://app.test/after");
    assert_eq!(call.conference_sid(), None);
}

#[test]
fn without_an_action_the_document_goes_on_after_the_conference() {
    let body = r#"<Response><Dial><Conference waitUrl="">r</Conference></Dial><Say>after</Say></Response>"#;
    let (mut call, out) = started_with(body, config(None, None));
    assert!(out
        .iter()
        .all(|o| !matches!(o, Output::PrepareMedia { .. })));
    joined(&mut call);
    call.handle(Input::Conference(crate::conference::Notice::Wait));
    assert!(
        drain(&mut call).is_empty(),
        "an empty waitUrl waits in silence"
    );
    call.handle(Input::Conference(crate::conference::Notice::Left));
    let out = drain(&mut call);
    let (_, source) = prepare_of(&out);
    assert!(matches!(source, MediaSource::Say { ref text, .. } if text == "after"));
}

#[test]
fn a_wait_url_document_plays_its_items_and_runs_again() {
    let body = r#"<Response><Dial><Conference waitUrl="/wait" waitMethod="GET">r</Conference></Dial></Response>"#;
    let (mut call, _) = started_with(body, config(None, None));
    joined(&mut call);
    call.handle(Input::Conference(crate::conference::Notice::Wait));
    let out = drain(&mut call);
    let (id, request) = fetch_of(&out);
    assert_eq!(request.url, "http://app.test/wait");
    assert_eq!(request.method, HttpMethod::Get);
    assert_eq!(param(&request, "ConferenceSid"), Some("CF1"));
    call.handle(Input::AppResult {
        request_id: id,
        result: twiml(
            "http://app.test/wait",
            "<Response><Say>please hold</Say><Pause length=\"2\"/><Dial>1</Dial></Response>",
        ),
    });
    let out = drain(&mut call);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Notify(n) if n.code == 13201 && n.warning)),
        "a verb not allowed in a wait document is reported"
    );
    let (id, source) = prepare_of(&out);
    assert!(matches!(source, MediaSource::Say { ref text, .. } if text == "please hold"));
    call.handle(Input::MediaPrepared {
        request_id: id,
        result: Ok(media_id()),
    });
    let say = play_of(&drain(&mut call));
    call.handle(Input::PlayDone { play_id: say });
    let out = drain(&mut call);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Media(Command::Silence {
            duration_ms: 2000,
            ..
        })
    )));
    let pause = play_of(&out);
    call.handle(Input::PlayDone { play_id: pause });
    let (_, again) = fetch_of(&drain(&mut call));
    assert_eq!(again.url, "http://app.test/wait");
}

#[test]
fn hold_joins_deaf_with_hold_music_and_a_refused_mix_moves_on() {
    let body = r#"<Response><Dial><Conference>r</Conference></Dial></Response>"#;
    let (mut call, _) = started_with(body, config(None, None));
    joined(&mut call);
    call.handle(Input::Conference(crate::conference::Notice::Live {
        muted: false,
        hold: true,
        hold_url: None,
        hold_method: HttpMethod::Get,
    }));
    let out = drain(&mut call);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Media(Command::JoinMix {
            muted: true,
            deaf: true,
            ..
        })
    )));
    let (_, source) = prepare_of(&out);
    assert_eq!(source, MediaSource::Tone(ToneKind::HoldMusic));
    // The media plane refuses the mix: a notification, out of the room, on with the
    // document (here: its end, so the call hangs up).
    call.handle(Input::SessionFailed);
    let out = drain(&mut call);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Notify(n) if n.code == 13227)));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::LeaveConference { .. })));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Sip(SipAction::Hangup))));
}

#[test]
fn a_live_redirect_takes_the_call_out_of_the_conference() {
    let body = r#"<Response><Dial><Conference>r</Conference></Dial></Response>"#;
    let (mut call, _) = started_with(body, config(None, None));
    joined(&mut call);
    call.handle(Input::Conference(crate::conference::Notice::Live {
        muted: false,
        hold: false,
        hold_url: None,
        hold_method: HttpMethod::Get,
    }));
    drain(&mut call);
    call.handle(Input::Control(CallUpdate::Twiml(
        "<Response><Say>bye</Say></Response>".into(),
    )));
    let out = drain(&mut call);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::LeaveConference {
            reason: crate::conference::LeaveReason::Redirected
        }
    )));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Media(Command::LeaveMix { .. }))));
    // Late notices from the room change nothing.
    call.handle(Input::Conference(crate::conference::Notice::Left));
    let late = drain(&mut call);
    assert!(late.is_empty(), "{late:?}");
}
