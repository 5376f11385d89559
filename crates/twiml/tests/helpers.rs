//! The non-parsing helpers: Content-Type classification, URL resolution,
//! URI template expansion, and messaging TwiML.

use twiml::*;

#[test]
fn content_types_are_classified_like_twilio() {
    for (content_type, expected) in [
        ("text/xml", AppContent::Twiml),
        ("application/xml", AppContent::Twiml),
        ("text/html", AppContent::Twiml),
        ("TEXT/XML; charset=utf-8", AppContent::Twiml),
        (" application/xml ;charset=\"UTF-8\"", AppContent::Twiml),
        ("audio/mpeg", AppContent::Audio),
        ("audio/x-wav", AppContent::Audio),
        ("Audio/WAV; rate=8000", AppContent::Audio),
        ("text/plain", AppContent::PlainText),
        ("text/plain; charset=iso-8859-1", AppContent::PlainText),
        ("application/json", AppContent::Unsupported),
        ("audio", AppContent::Unsupported),
        ("audio/", AppContent::Unsupported),
        ("", AppContent::Unsupported),
        ("image/png", AppContent::Unsupported),
    ] {
        assert_eq!(
            classify_content_type(content_type),
            expected,
            "{content_type:?}"
        );
    }
}

#[test]
fn relative_urls_resolve_against_the_document() {
    let base = "https://app.example.com/ivr/start.xml?step=1";
    for (reference, expected) in [
        ("menu", "https://app.example.com/ivr/menu"),
        ("/root.xml", "https://app.example.com/root.xml"),
        ("../up?x=1", "https://app.example.com/up?x=1"),
        ("?step=2", "https://app.example.com/ivr/start.xml?step=2"),
        ("//cdn.example.net/a.mp3", "https://cdn.example.net/a.mp3"),
        (
            " sound%20file.wav ",
            "https://app.example.com/ivr/sound%20file.wav",
        ),
    ] {
        assert_eq!(
            resolve_url(base, reference).unwrap(),
            expected,
            "{reference}"
        );
    }
}

#[test]
fn absolute_urls_stay_as_written() {
    let base = "https://app.example.com/a/b";
    for reference in [
        "http://other.example.org",
        "https://Other.Example.org:443/X?y=1&z=%41",
        "http://10.0.0.1:8080/hook",
    ] {
        assert_eq!(resolve_url(base, reference).unwrap(), reference);
    }
}

#[test]
fn unusable_urls_are_errors() {
    let err = resolve_url("https://a.example/", "ftp://files.example/x.wav").unwrap_err();
    assert_eq!(err.code(), 11100);
    assert!(matches!(err, TwimlError::InvalidUrl { .. }));
    assert_eq!(
        resolve_url("not a url", "relative").unwrap_err().code(),
        11100
    );
    assert_eq!(resolve_url("", "next.xml").unwrap_err().code(), 11100);
    assert_eq!(
        resolve_url("https://a.example/", "mailto:x@y")
            .unwrap_err()
            .code(),
        11100
    );
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn templates_expand_request_parameters_percent_encoded() {
    let p = params(&[
        ("Digits", "12#"),
        ("From", "+1 555-0100"),
        ("Body", "héllo/wörld~._"),
        ("Digits", "ignored second value"),
    ]);
    assert_eq!(
        expand_template("https://app/lookup?d={Digits}&f={From}", &p),
        "https://app/lookup?d=12%23&f=%2B1%20555-0100"
    );
    assert_eq!(
        expand_template("/m/{Body}", &p),
        "/m/h%C3%A9llo%2Fw%C3%B6rld~._"
    );
    assert_eq!(expand_template("/x/{Unknown}/y", &p), "/x//y");
    assert_eq!(expand_template("{Digits}{Digits}", &p), "12%2312%23");
    assert_eq!(expand_template("no template", &p), "no template");
    assert_eq!(expand_template("", &p), "");
}

#[test]
fn template_braces_that_are_not_expressions_stay() {
    let p = params(&[("Digits", "5")]);
    assert_eq!(expand_template("/a{Digits", &p), "/a{Digits");
    assert_eq!(expand_template("/a{", &p), "/a{");
    assert_eq!(expand_template("{}", &p), "{}");
    assert_eq!(expand_template("{a b}", &p), "{a b}");
    assert_eq!(expand_template("{{Digits}}", &p), "{5}");
    assert_eq!(expand_template("}{Digits}{", &p), "}5{");
    assert_eq!(expand_template("é{Digits}ü", &p), "é5ü");
}

#[test]
fn messaging_twiml() {
    let xml = r#"<Response>
        <Message>Got it</Message>
        <Message to="+15550001111"><Body>Forwarded</Body><Media>https://m.example/1.jpg</Media></Message>
        <Redirect method="GET">/next</Redirect>
    </Response>"#;
    assert_eq!(
        parse_messaging(xml).unwrap().verbs,
        vec![
            MessagingVerb::Message(Sms {
                body: "Got it".into(),
                ..Sms::default()
            }),
            MessagingVerb::Message(Sms {
                body: "Forwarded".into(),
                to: Some("+15550001111".into()),
                media: vec!["https://m.example/1.jpg".into()],
                ..Sms::default()
            }),
            MessagingVerb::Redirect(Redirect {
                url: "/next".into(),
                method: HttpMethod::Get,
            }),
        ]
    );
    assert_eq!(parse_messaging("<Response/>").unwrap().verbs, vec![]);
    assert_eq!(
        parse_messaging("<Response><Say>x</Say></Response>")
            .unwrap_err()
            .code(),
        12200
    );
    assert_eq!(
        parse_messaging("<Response><Message>a<Body>b</Body></Message></Response>")
            .unwrap_err()
            .code(),
        12200
    );
    assert_eq!(
        parse_messaging("<Message>x</Message>").unwrap_err().code(),
        12100
    );
}
