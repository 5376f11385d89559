//! Voice TwiML through the public API: every verb with its defaults and with
//! all attributes, nesting rules, and the Twilio error codes.

use twiml::*;

fn one_verb(xml: &str) -> Verb {
    let response = parse_voice(xml).unwrap_or_else(|err| panic!("{xml}: {err}"));
    assert_eq!(response.verbs.len(), 1, "{xml}");
    response.verbs.into_iter().next().unwrap()
}

fn error_code(xml: &str) -> u32 {
    match parse_voice(xml) {
        Ok(response) => panic!("{xml} parsed: {response:?}"),
        Err(err) => err.code(),
    }
}

#[test]
fn empty_response_is_valid_in_every_form() {
    for xml in [
        "<Response/>",
        "<Response></Response>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>\n  <!-- nothing -->\n</Response>\n",
    ] {
        assert_eq!(
            parse_voice(xml).unwrap(),
            Response { verbs: vec![] },
            "{xml}"
        );
    }
}

#[test]
fn say_defaults() {
    assert_eq!(
        one_verb("<Response><Say>  Hello   world \n</Say></Response>"),
        Verb::Say(Say {
            text: "Hello   world".into(),
            voice: "man".into(),
            language: "en-US".into(),
            loop_count: 1,
        })
    );
}

#[test]
fn say_all_attributes_entities_and_cdata() {
    let xml = r#"<Response><Say voice="alice" language="fr-FR" loop="0">Tom &amp; Jerry <![CDATA[<3]]></Say></Response>"#;
    assert_eq!(
        one_verb(xml),
        Verb::Say(Say {
            text: "Tom & Jerry <3".into(),
            voice: "alice".into(),
            language: "fr-FR".into(),
            loop_count: 0,
        })
    );
}

#[test]
fn say_accepts_ssml_and_flattens_it() {
    let xml = r#"<Response><Say voice="Polly.Joanna">Hi <break time="1s"/><prosody rate="slow">there</prosody>, <say-as interpret-as="digits">123</say-as>.</Say></Response>"#;
    let Verb::Say(say) = one_verb(xml) else {
        panic!()
    };
    assert_eq!(say.text, "Hi there , 123 .");
    assert_eq!(
        error_code("<Response><Say>Hi <Play>x</Play></Say></Response>"),
        12200
    );
}

#[test]
fn play_defaults_and_attributes() {
    assert_eq!(
        one_verb("<Response><Play> https://example.com/a.mp3 </Play></Response>"),
        Verb::Play(Play {
            url: "https://example.com/a.mp3".into(),
            loop_count: 1,
            digits: None,
        })
    );
    assert_eq!(
        one_verb(r#"<Response><Play loop="3" digits="ww12#">/relative.wav</Play></Response>"#),
        Verb::Play(Play {
            url: "/relative.wav".into(),
            loop_count: 3,
            digits: Some("ww12#".into()),
        })
    );
    assert_eq!(
        one_verb(r#"<Response><Play digits="1w2"/></Response>"#),
        Verb::Play(Play {
            url: String::new(),
            loop_count: 1,
            digits: Some("1w2".into()),
        })
    );
    assert_eq!(error_code("<Response><Play/></Response>"), 12200);
    assert_eq!(
        error_code(r#"<Response><Play digits="12x">a.wav</Play></Response>"#),
        12200
    );
}

#[test]
fn pause_defaults_and_length() {
    assert_eq!(
        one_verb("<Response><Pause/></Response>"),
        Verb::Pause(Pause { length: 1 })
    );
    assert_eq!(
        one_verb(r#"<Response><Pause length="10"></Pause></Response>"#),
        Verb::Pause(Pause { length: 10 })
    );
}

#[test]
fn gather_defaults() {
    assert_eq!(
        one_verb("<Response><Gather/></Response>"),
        Verb::Gather(Gather {
            action: None,
            method: HttpMethod::Post,
            timeout: 5,
            finish_on_key: "#".into(),
            num_digits: None,
            input: vec![GatherInput::Dtmf],
            action_on_empty_result: false,
            children: vec![],
        })
    );
}

#[test]
fn gather_all_attributes_and_children() {
    let xml = r#"<Response>
      <Gather action="/menu?x=1" method="get" timeout="10" finishOnKey="*" numDigits="4"
              input="dtmf speech" actionOnEmptyResult="true">
        <Say loop="2">Enter your PIN</Say>
        <Play>beep.wav</Play>
        <Pause length="2"/>
      </Gather>
    </Response>"#;
    assert_eq!(
        one_verb(xml),
        Verb::Gather(Gather {
            action: Some("/menu?x=1".into()),
            method: HttpMethod::Get,
            timeout: 10,
            finish_on_key: "*".into(),
            num_digits: Some(4),
            input: vec![GatherInput::Dtmf, GatherInput::Speech],
            action_on_empty_result: true,
            children: vec![
                GatherChild::Say(Say {
                    text: "Enter your PIN".into(),
                    loop_count: 2,
                    ..Say::default()
                }),
                GatherChild::Play(Play {
                    url: "beep.wav".into(),
                    ..Play::default()
                }),
                GatherChild::Pause(Pause { length: 2 }),
            ],
        })
    );
}

#[test]
fn gather_finish_on_key_empty_disables() {
    let Verb::Gather(gather) = one_verb(r#"<Response><Gather finishOnKey=""/></Response>"#) else {
        panic!()
    };
    assert_eq!(gather.finish_on_key, "");
}

#[test]
fn gather_bad_attribute_values_are_schema_errors() {
    for xml in [
        r#"<Response><Gather timeout="-1"/></Response>"#,
        r#"<Response><Gather timeout="five"/></Response>"#,
        r#"<Response><Gather timeout=""/></Response>"#,
        r#"<Response><Gather numDigits="0"/></Response>"#,
        r#"<Response><Gather numDigits="2.5"/></Response>"#,
        r#"<Response><Gather method="PUT"/></Response>"#,
        r###"<Response><Gather finishOnKey="##"/></Response>"###,
        r#"<Response><Gather finishOnKey="x"/></Response>"#,
        r#"<Response><Gather input="voice"/></Response>"#,
        r#"<Response><Gather actionOnEmptyResult="yes"/></Response>"#,
        r#"<Response><Gather timeout="99999999999"/></Response>"#,
    ] {
        assert_eq!(error_code(xml), 12200, "{xml}");
    }
}

#[test]
fn nesting_rules() {
    for xml in [
        "<Response><Gather><Gather/></Gather></Response>",
        "<Response><Gather><Dial>123</Dial></Gather></Response>",
        "<Response><Gather><Redirect>/x</Redirect></Gather></Response>",
        "<Response><Gather><Hangup/></Gather></Response>",
        "<Response><Gather><Record/></Gather></Response>",
        "<Response><Number>123</Number></Response>",
        "<Response><Conference>room</Conference></Response>",
        "<Response><Dial><Say>hi</Say></Dial></Response>",
        "<Response><Dial><Number>1</Number><Dial/></Dial></Response>",
        "<Response><Pause><Say>x</Say></Pause></Response>",
        "<Response><Play><Say>x</Say></Play></Response>",
        "<Response><Hangup><Say>x</Say></Hangup></Response>",
        "<Response><Redirect><Say>x</Say></Redirect></Response>",
        "<Response><Record><Say>x</Say></Record></Response>",
        "<Response><Dial><Number><Say>x</Say></Number></Dial></Response>",
        "<Response><Response/></Response>",
    ] {
        assert_eq!(error_code(xml), 12200, "{xml}");
    }
}

#[test]
fn unknown_verbs_and_wrong_case_are_schema_errors() {
    for xml in [
        "<Response><Speak>hi</Speak></Response>",
        "<Response><say>hi</say></Response>",
        "<Response><Connect><Stream url=\"wss://x\"/></Connect></Response>",
    ] {
        assert_eq!(error_code(xml), 12200, "{xml}");
    }
}

#[test]
fn wrong_root_and_malformed_xml_are_parse_failures() {
    for xml in [
        "<Resp/>",
        "<response/>",
        "<Say>hi</Say>",
        "<Response><Say>hi</Response>",
        "<Response>",
        "not xml at all",
        "",
        "<Response><Say>&nbsp;</Say></Response>",
        "<Response/><Response/>",
    ] {
        assert_eq!(error_code(xml), 12100, "{xml}");
    }
}

#[test]
fn unknown_attributes_are_ignored_with_a_warning() {
    let xml = r#"<Response xmlns:x="urn:x"><Say foo="bar" voice="woman">hi</Say><Hangup extra="1"/></Response>"#;
    let (response, warnings) = parse_voice_with_warnings(xml).unwrap();
    assert_eq!(
        response.verbs,
        vec![
            Verb::Say(Say {
                text: "hi".into(),
                voice: "woman".into(),
                ..Say::default()
            }),
            Verb::Hangup
        ]
    );
    let details: Vec<_> = warnings
        .iter()
        .map(|w| (w.element.as_str(), w.detail.as_str(), w.code()))
        .collect();
    assert_eq!(
        details,
        vec![
            ("Say", "unknown attribute foo ignored", 12200),
            ("Hangup", "unknown attribute extra ignored", 12200),
        ]
    );
}

#[test]
fn redirect_hangup_reject_leave() {
    let xml = r#"<Response>
        <Redirect>next.xml</Redirect>
        <Redirect method="GET">https://example.com/a?b=c&amp;d=e</Redirect>
        <Hangup/>
        <Reject/>
        <Reject reason="busy"/>
        <Leave/>
    </Response>"#;
    assert_eq!(
        parse_voice(xml).unwrap().verbs,
        vec![
            Verb::Redirect(Redirect {
                url: "next.xml".into(),
                method: HttpMethod::Post
            }),
            Verb::Redirect(Redirect {
                url: "https://example.com/a?b=c&d=e".into(),
                method: HttpMethod::Get
            }),
            Verb::Hangup,
            Verb::Reject(Reject {
                reason: RejectReason::Rejected
            }),
            Verb::Reject(Reject {
                reason: RejectReason::Busy
            }),
            Verb::Leave,
        ]
    );
    assert_eq!(
        error_code(r#"<Response><Reject reason="nope"/></Response>"#),
        12200
    );
    assert_eq!(
        error_code(r#"<Response><Redirect method="DELETE">x</Redirect></Response>"#),
        12200
    );
    assert_eq!(error_code("<Response><Redirect/></Response>"), 12200);
}

#[test]
fn dial_plain_number_defaults() {
    assert_eq!(
        one_verb("<Response><Dial> +15551234567 </Dial></Response>"),
        Verb::Dial(Dial {
            targets: vec![DialTarget::Number(DialNumber {
                number: "+15551234567".into(),
                send_digits: None,
                callbacks: LegCallbacks::default(),
            })],
            ..Dial::default()
        })
    );
    let defaults = Dial::default();
    assert_eq!(defaults.timeout, 30);
    assert_eq!(defaults.time_limit, 14400);
    assert_eq!(defaults.record, DialRecord::DoNotRecord);
    assert!(!defaults.hangup_on_star && !defaults.answer_on_bridge);
    assert_eq!(defaults.method, HttpMethod::Post);
}

#[test]
fn dial_all_attributes_and_nouns() {
    let xml = r#"<Response><Dial action="/after" method="GET" timeout="20" hangupOnStar="true"
        timeLimit="600" callerId="+15550000000" record="record-from-answer-dual" trim="trim-silence"
        recordingStatusCallback="/rec" recordingStatusCallbackMethod="GET"
        recordingStatusCallbackEvent="in-progress completed absent" answerOnBridge="true"
        ringTone="de" sequential="true">
        <Number sendDigits="ww1234" url="/whisper" method="GET" statusCallback="/leg"
                statusCallbackMethod="GET" statusCallbackEvent="initiated ringing answered completed">+15551112222</Number>
        <Sip username="alice" password="s3cret" url="/sipwhisper">sip:bob@example.com;transport=udp</Sip>
        <Client>carol</Client>
        <Client statusCallback="/c"><Identity>dave</Identity><Parameter name="team" value="blue"/></Client>
    </Dial></Response>"#;
    let Verb::Dial(dial) = one_verb(xml) else {
        panic!()
    };
    assert_eq!(dial.action.as_deref(), Some("/after"));
    assert_eq!(dial.method, HttpMethod::Get);
    assert_eq!(dial.timeout, 20);
    assert!(dial.hangup_on_star);
    assert_eq!(dial.time_limit, 600);
    assert_eq!(dial.caller_id.as_deref(), Some("+15550000000"));
    assert_eq!(dial.record, DialRecord::RecordFromAnswerDual);
    assert_eq!(dial.trim, Trim::TrimSilence);
    assert_eq!(dial.recording_status_callback.as_deref(), Some("/rec"));
    assert_eq!(dial.recording_status_callback_method, HttpMethod::Get);
    assert_eq!(
        dial.recording_status_callback_event,
        vec![
            RecordingEvent::InProgress,
            RecordingEvent::Completed,
            RecordingEvent::Absent
        ]
    );
    assert!(dial.answer_on_bridge);
    assert_eq!(dial.ring_tone.as_deref(), Some("de"));
    assert!(dial.sequential);
    assert_eq!(
        dial.targets,
        vec![
            DialTarget::Number(DialNumber {
                number: "+15551112222".into(),
                send_digits: Some("ww1234".into()),
                callbacks: LegCallbacks {
                    url: Some("/whisper".into()),
                    method: HttpMethod::Get,
                    status_callback: Some("/leg".into()),
                    status_callback_method: HttpMethod::Get,
                    status_callback_event: vec![
                        CallProgressEvent::Initiated,
                        CallProgressEvent::Ringing,
                        CallProgressEvent::Answered,
                        CallProgressEvent::Completed
                    ],
                },
            }),
            DialTarget::Sip(DialSip {
                uri: "sip:bob@example.com;transport=udp".into(),
                username: Some("alice".into()),
                password: Some("s3cret".into()),
                callbacks: LegCallbacks {
                    url: Some("/sipwhisper".into()),
                    ..LegCallbacks::default()
                },
            }),
            DialTarget::Client(DialClient {
                identity: "carol".into(),
                parameters: vec![],
                callbacks: LegCallbacks::default(),
            }),
            DialTarget::Client(DialClient {
                identity: "dave".into(),
                parameters: vec![("team".into(), "blue".into())],
                callbacks: LegCallbacks {
                    status_callback: Some("/c".into()),
                    ..LegCallbacks::default()
                },
            }),
        ]
    );
}

#[test]
fn dial_legacy_record_booleans() {
    let Verb::Dial(dial) = one_verb(r#"<Response><Dial record="true">1</Dial></Response>"#) else {
        panic!()
    };
    assert_eq!(dial.record, DialRecord::RecordFromAnswer);
}

#[test]
fn dial_conference_defaults_and_attributes() {
    let Verb::Dial(dial) =
        one_verb("<Response><Dial><Conference>Room 1</Conference></Dial></Response>")
    else {
        panic!()
    };
    assert_eq!(
        dial.targets,
        vec![DialTarget::Conference(Conference {
            name: "Room 1".into(),
            ..Conference::default()
        })]
    );
    let defaults = Conference::default();
    assert!(
        !defaults.muted && defaults.start_conference_on_enter && !defaults.end_conference_on_exit
    );
    assert_eq!(defaults.beep, ConferenceBeep::Always);
    assert_eq!(defaults.max_participants, 250);

    let xml = r#"<Response><Dial><Conference muted="true" beep="onExit" startConferenceOnEnter="false"
        endConferenceOnExit="true" waitUrl="/hold" waitMethod="GET" maxParticipants="10"
        record="record-from-start" trim="do-not-trim" coach="CA00000000000000000000000000000000"
        participantLabel="agent" statusCallback="/conf" statusCallbackMethod="GET"
        statusCallbackEvent="start end join leave mute hold modify speaker announcement"
        recordingStatusCallback="/crec" recordingStatusCallbackMethod="GET"
        recordingStatusCallbackEvent="in-progress">Room 2</Conference></Dial></Response>"#;
    let Verb::Dial(dial) = one_verb(xml) else {
        panic!()
    };
    assert_eq!(
        dial.targets,
        vec![DialTarget::Conference(Conference {
            name: "Room 2".into(),
            muted: true,
            beep: ConferenceBeep::OnExit,
            start_conference_on_enter: false,
            end_conference_on_exit: true,
            wait_url: Some("/hold".into()),
            wait_method: HttpMethod::Get,
            max_participants: 10,
            record: ConferenceRecord::RecordFromStart,
            trim: Trim::DoNotTrim,
            coach: Some("CA00000000000000000000000000000000".into()),
            participant_label: Some("agent".into()),
            status_callback: Some("/conf".into()),
            status_callback_method: HttpMethod::Get,
            status_callback_event: vec![
                ConferenceEvent::Start,
                ConferenceEvent::End,
                ConferenceEvent::Join,
                ConferenceEvent::Leave,
                ConferenceEvent::Mute,
                ConferenceEvent::Hold,
                ConferenceEvent::Modify,
                ConferenceEvent::Speaker,
                ConferenceEvent::Announcement
            ],
            recording_status_callback: Some("/crec".into()),
            recording_status_callback_method: HttpMethod::Get,
            recording_status_callback_event: vec![RecordingEvent::InProgress],
        })]
    );
}

#[test]
fn dial_queue_noun() {
    let Verb::Dial(dial) = one_verb(
        r#"<Response><Dial><Queue url="/about-to-connect" method="GET">support</Queue></Dial></Response>"#,
    ) else {
        panic!()
    };
    assert_eq!(
        dial.targets,
        vec![DialTarget::Queue(DialQueue {
            name: "support".into(),
            url: Some("/about-to-connect".into()),
            method: HttpMethod::Get,
        })]
    );
}

#[test]
fn dial_invalid_forms() {
    for xml in [
        "<Response><Dial/></Response>",
        "<Response><Dial>123<Number>456</Number></Dial></Response>",
        "<Response><Dial><Conference>a</Conference><Number>1</Number></Dial></Response>",
        "<Response><Dial><Queue>q</Queue><Queue>r</Queue></Dial></Response>",
        "<Response><Dial><Number/></Dial></Response>",
        "<Response><Dial><Sip>http://not-sip</Sip></Dial></Response>",
        "<Response><Dial><Client/></Dial></Response>",
        r#"<Response><Dial timeout="-5">1</Dial></Response>"#,
        r#"<Response><Dial record="sometimes">1</Dial></Response>"#,
        r#"<Response><Dial hangupOnStar="maybe">1</Dial></Response>"#,
        r#"<Response><Dial><Number statusCallbackEvent="ringing exploded">1</Number></Dial></Response>"#,
        r#"<Response><Dial><Number sendDigits="12z">1</Number></Dial></Response>"#,
        r#"<Response><Dial><Conference beep="loud">a</Conference></Dial></Response>"#,
        r#"<Response><Dial><Conference maxParticipants="many">a</Conference></Dial></Response>"#,
        r#"<Response><Dial><Client><Parameter value="x"/>bob</Client></Dial></Response>"#,
    ] {
        assert_eq!(error_code(xml), 12200, "{xml}");
    }
}

#[test]
fn record_defaults_and_attributes() {
    assert_eq!(
        one_verb("<Response><Record/></Response>"),
        Verb::Record(Record {
            action: None,
            method: HttpMethod::Post,
            timeout: 5,
            finish_on_key: "1234567890*#".into(),
            max_length: 3600,
            play_beep: true,
            trim: Trim::TrimSilence,
            transcribe: false,
            transcribe_callback: None,
            recording_status_callback: None,
            recording_status_callback_method: HttpMethod::Post,
            recording_status_callback_event: vec![RecordingEvent::Completed],
        })
    );
    let xml = r##"<Response><Record action="/done" method="GET" timeout="0" finishOnKey="#" maxLength="30"
        playBeep="false" trim="do-not-trim" transcribe="true" transcribeCallback="/tx"
        recordingStatusCallback="/rs" recordingStatusCallbackMethod="GET"
        recordingStatusCallbackEvent="in-progress completed"/></Response>"##;
    assert_eq!(
        one_verb(xml),
        Verb::Record(Record {
            action: Some("/done".into()),
            method: HttpMethod::Get,
            timeout: 0,
            finish_on_key: "#".into(),
            max_length: 30,
            play_beep: false,
            trim: Trim::DoNotTrim,
            transcribe: true,
            transcribe_callback: Some("/tx".into()),
            recording_status_callback: Some("/rs".into()),
            recording_status_callback_method: HttpMethod::Get,
            recording_status_callback_event: vec![
                RecordingEvent::InProgress,
                RecordingEvent::Completed
            ],
        })
    );
    for xml in [
        r#"<Response><Record maxLength="-1"/></Response>"#,
        r#"<Response><Record trim="yes"/></Response>"#,
        r#"<Response><Record finishOnKey="1a"/></Response>"#,
        r#"<Response><Record playBeep="0"/></Response>"#,
    ] {
        assert_eq!(error_code(xml), 12200, "{xml}");
    }
}

#[test]
fn enqueue_defaults_attributes_and_task() {
    assert_eq!(
        one_verb("<Response><Enqueue>support</Enqueue></Response>"),
        Verb::Enqueue(Enqueue {
            queue_name: "support".into(),
            action: None,
            method: HttpMethod::Post,
            wait_url: None,
            wait_url_method: HttpMethod::Post,
            max_queue_size: 100,
            workflow_sid: None,
            task: None,
        })
    );
    let xml = r#"<Response><Enqueue action="/left" method="GET" waitUrl="/wait" waitUrlMethod="GET"
        maxQueueSize="5" workflowSid="WW00000000000000000000000000000000"><Task priority="5" timeout="200">{"a":1}</Task></Enqueue></Response>"#;
    assert_eq!(
        one_verb(xml),
        Verb::Enqueue(Enqueue {
            queue_name: String::new(),
            action: Some("/left".into()),
            method: HttpMethod::Get,
            wait_url: Some("/wait".into()),
            wait_url_method: HttpMethod::Get,
            max_queue_size: 5,
            workflow_sid: Some("WW00000000000000000000000000000000".into()),
            task: Some(EnqueueTask {
                attributes: r#"{"a":1}"#.into(),
                priority: Some(5),
                timeout: Some(200),
            }),
        })
    );
    assert_eq!(error_code("<Response><Enqueue/></Response>"), 12200);
    assert_eq!(
        error_code("<Response><Enqueue>q<Say>x</Say></Enqueue></Response>"),
        12200
    );
    assert_eq!(
        error_code(r#"<Response><Enqueue maxQueueSize="x">q</Enqueue></Response>"#),
        12200
    );
}

#[test]
fn sms_and_message_in_voice() {
    assert_eq!(
        one_verb("<Response><Sms>Thanks for calling</Sms></Response>"),
        Verb::Sms(Sms {
            element: MessageElement::Sms,
            body: "Thanks for calling".into(),
            media: vec![],
            to: None,
            from: None,
            action: None,
            method: HttpMethod::Post,
            status_callback: None,
        })
    );
    let xml = r#"<Response><Message to="+15551230000" from="+15559870000" action="/sent" method="GET"
        statusCallback="/status"><Body>See attached</Body><Media>https://example.com/a.jpg</Media><Media>b.png</Media></Message></Response>"#;
    let verb = one_verb(xml);
    assert_eq!(verb.name(), "Message");
    assert_eq!(
        verb,
        Verb::Sms(Sms {
            element: MessageElement::Message,
            body: "See attached".into(),
            media: vec!["https://example.com/a.jpg".into(), "b.png".into()],
            to: Some("+15551230000".into()),
            from: Some("+15559870000".into()),
            action: Some("/sent".into()),
            method: HttpMethod::Get,
            status_callback: Some("/status".into()),
        })
    );
    assert_eq!(
        error_code("<Response><Sms><Media>x</Media></Sms></Response>"),
        12200
    );
    let eleven_media = format!(
        "<Response><Message>{}</Message></Response>",
        "<Media>m</Media>".repeat(11)
    );
    assert_eq!(error_code(&eleven_media), 12200);
}

#[test]
fn a_realistic_ivr_document() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Say voice="woman">Welcome to Example Corp.</Say>
    <Gather numDigits="1" action="/ivr/menu">
        <Say>For sales press 1.</Say>
    </Gather>
    <Say>We didn't receive any input. Goodbye!</Say>
    <Hangup/>
</Response>"#;
    let verbs = parse_voice(xml).unwrap().verbs;
    let names: Vec<_> = verbs.iter().map(Verb::name).collect();
    assert_eq!(names, vec!["Say", "Gather", "Say", "Hangup"]);
}
