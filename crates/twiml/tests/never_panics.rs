//! Property tests: the parsers and helpers never panic, whatever the input.

use proptest::prelude::*;

/// Fragments that steer random documents into interesting TwiML shapes.
fn twiml_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<Response>".to_string()),
        Just("</Response>".to_string()),
        Just("<Gather numDigits=\"3\">".to_string()),
        Just("</Gather>".to_string()),
        Just("<Say loop=\"2\">".to_string()),
        Just("</Say>".to_string()),
        Just("<Dial>".to_string()),
        Just("</Dial>".to_string()),
        Just("<Number>".to_string()),
        Just("</Number>".to_string()),
        Just("<Play/>".to_string()),
        Just("<![CDATA[x]]>".to_string()),
        Just("&amp;".to_string()),
        Just("&#x1F600;".to_string()),
        Just("<!-- c -->".to_string()),
        Just("<?xml version=\"1.0\"?>".to_string()),
        "[a-zA-Z0-9 <>/=\"'&;#!?\\[\\]-]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_voice_never_panics_on_arbitrary_strings(input in any::<String>()) {
        let _ = twiml::parse_voice(&input);
        let _ = twiml::parse_messaging(&input);
    }

    #[test]
    fn parse_voice_never_panics_on_twiml_like_soup(parts in prop::collection::vec(twiml_fragment(), 0..24)) {
        let document = parts.concat();
        if let Err(err) = twiml::parse_voice(&document) {
            prop_assert!(matches!(err.code(), 12100 | 12200));
        }
    }

    #[test]
    fn helpers_never_panic(base in any::<String>(), reference in any::<String>(), template in any::<String>(),
                           name in "[A-Za-z]{1,8}", value in any::<String>()) {
        let _ = twiml::resolve_url(&base, &reference);
        let _ = twiml::classify_content_type(&reference);
        let expanded = twiml::expand_template(&template, &[(name, value)]);
        // Without any braces the template is copied verbatim.
        if !template.contains('{') {
            prop_assert_eq!(expanded, template);
        }
    }

    #[test]
    fn expanded_values_contain_only_unreserved_or_escapes(value in any::<String>()) {
        let expanded = twiml::expand_template("{V}", &[("V".to_string(), value)]);
        prop_assert!(expanded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
    }
}
