//! X-Twilio-Signature: how Twilio signs every webhook, and how a receiver
//! checks it. Pure functions; see docs in twilio-compat.md for the vectors.
//!
//! Signed string = the full URL as requested (query included) followed by
//! each POST parameter's name and value, sorted by name and, for repeated
//! names, by value. Signature = base64(HMAC-SHA1(auth token, signed string)).

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use url::{Position, Url};

type HmacSha1 = Hmac<Sha1>;

/// The `X-Twilio-Signature` value for a request to `url` carrying the form
/// parameters `params` (pass `&[]` for GET, whose parameters are in `url`).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut signed = String::with_capacity(url.len() + params.len() * 24);
    signed.push_str(url);
    for (name, value) in sorted {
        signed.push_str(name);
        signed.push_str(value);
    }
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha1(auth_token.as_bytes(), signed.as_bytes()))
}

fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    match HmacSha1::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC is defined for keys of any length (RFC 2104 §2), so the
        // hmac crate never returns InvalidLength for it.
        Err(err) => {
            tracing::error!(%err, "HMAC-SHA1 rejected the auth token as a key");
            Vec::new()
        }
    }
}

/// The URL to sign for a JSON body: `url` with `bodySHA256=<hex SHA-256 of
/// body>` added to its query. Sign the result with no parameters.
pub fn body_sha256_url(url: &str, body: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(body));
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((head, tail)) => (head, Some(tail)),
        None => (url, None),
    };
    let separator = if !before_fragment.contains('?') {
        "?"
    } else if before_fragment.ends_with('?') || before_fragment.ends_with('&') {
        ""
    } else {
        "&"
    };
    let mut signed_url = format!("{before_fragment}{separator}bodySHA256={digest}");
    if let Some(fragment) = fragment {
        signed_url.push('#');
        signed_url.push_str(fragment);
    }
    signed_url
}

/// Checks a received `X-Twilio-Signature` the way Twilio's validators do:
/// the URL is tried as given, without its default port and with it.
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    received_signature: &str,
) -> bool {
    url_variants(url).iter().any(|candidate| {
        constant_time_eq(
            signature(auth_token, candidate, params).as_bytes(),
            received_signature.as_bytes(),
        )
    })
}

/// `url` itself, plus the forms with and without the scheme's default port.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Ok(parsed) = Url::parse(url) else {
        return variants;
    };
    // Url drops a default port when parsing, so its serialisation is the
    // "without port" form.
    let without_port = parsed.as_str().to_owned();
    if let Some(default_port) = parsed
        .port_or_known_default()
        .filter(|_| parsed.port().is_none())
    {
        let with_port = format!(
            "{}:{}{}",
            &parsed[..Position::AfterHost],
            default_port,
            &parsed[Position::BeforePath..]
        );
        variants.push(with_port);
    }
    variants.push(without_port);
    variants
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn vector_1_twilio_docs_example() {
        let p = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &p),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn vector_1_does_not_depend_on_parameter_order() {
        let p = params(&[
            ("To", "+18005551212"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
        ]);
        assert_eq!(
            signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &p),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn vector_2_inbound_call_webhook() {
        let account_sid = format!("AC{}", "1".repeat(32));
        let call_sid = format!("CA{}", "2".repeat(32));
        let p = params(&[
            ("AccountSid", &account_sid),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", &call_sid),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
            ("From", "+15017122661"),
            ("To", "+15558675310"),
        ]);
        assert_eq!(
            signature(
                "0123456789abcdef0123456789abcdef",
                "https://example.com/voice?x=1",
                &p
            ),
            "XJJ46BUHtPugH7Q1hxyH3uE8qsA="
        );
    }

    #[test]
    fn vector_3_json_body() {
        let url = body_sha256_url(
            "https://mycompany.com/myapp.php",
            br#"{"property": "value", "boolean": true}"#,
        );
        assert_eq!(
            url,
            "https://mycompany.com/myapp.php?bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        assert_eq!(
            signature("12345", &url, &[]),
            "y77kIzt2vzLz71DgmJGsen2scGs="
        );
    }

    #[test]
    fn body_hash_joins_existing_query_and_keeps_fragment() {
        let hash = hex::encode(Sha256::digest(b""));
        assert_eq!(
            body_sha256_url("http://a/x?y=1", b""),
            format!("http://a/x?y=1&bodySHA256={hash}")
        );
        assert_eq!(
            body_sha256_url("http://a/x?", b""),
            format!("http://a/x?bodySHA256={hash}")
        );
        assert_eq!(
            body_sha256_url("http://a/x#f", b""),
            format!("http://a/x?bodySHA256={hash}#f")
        );
    }

    #[test]
    fn repeated_values_are_sorted() {
        let ab = params(&[("Event", "b"), ("Event", "a"), ("A", "z")]);
        let ba = params(&[("A", "z"), ("Event", "a"), ("Event", "b")]);
        assert_eq!(
            signature("t", "http://x/", &ab),
            signature("t", "http://x/", &ba)
        );
        // The signed string is http://x/AzEventaEventb.
        assert_eq!(
            signature("t", "http://x/", &ab),
            signature("t", "http://x/AzEventaEventb", &[])
        );
    }

    #[test]
    fn verification_accepts_default_port_variants_only() {
        let p = params(&[("From", "+1")]);
        let sig = signature("tok", "https://example.com/hook", &p);
        assert!(verify_signature(
            "tok",
            "https://example.com/hook",
            &p,
            &sig
        ));
        assert!(verify_signature(
            "tok",
            "https://example.com:443/hook",
            &p,
            &sig
        ));
        assert!(!verify_signature(
            "tok",
            "https://example.com:8443/hook",
            &p,
            &sig
        ));
        assert!(!verify_signature(
            "other",
            "https://example.com/hook",
            &p,
            &sig
        ));
        assert!(!verify_signature(
            "tok",
            "https://example.com/hook",
            &params(&[("From", "+2")]),
            &sig
        ));
        let with_port = signature("tok", "http://example.com:80/hook", &p);
        assert!(verify_signature(
            "tok",
            "http://example.com/hook",
            &p,
            &with_port
        ));
    }
}
