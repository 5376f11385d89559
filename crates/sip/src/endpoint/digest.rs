//! HTTP Digest authentication for our outgoing requests (RFC 2617, RFC 7616
//! as used by SIP, RFC 3261 §22): parsing a `WWW-Authenticate` /
//! `Proxy-Authenticate` challenge and computing the matching
//! `Authorization` / `Proxy-Authorization` value. MD5, MD5-sess, SHA-256 and
//! SHA-256-sess; qop `auth`, `auth-int` or none. Pure functions only.

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::message::split_comma_list;

/// The hash a challenge asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    fn parse(token: Option<&str>) -> Option<Algorithm> {
        match token.map(str::to_ascii_uppercase).as_deref() {
            None | Some("MD5") => Some(Algorithm::Md5),
            Some("MD5-SESS") => Some(Algorithm::Md5Sess),
            Some("SHA-256") => Some(Algorithm::Sha256),
            Some("SHA-256-SESS") => Some(Algorithm::Sha256Sess),
            Some(_) => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    fn hash(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Quality of protection chosen from the challenge's `qop` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qop {
    Auth,
    AuthInt,
}

/// A parsed `Digest` challenge we know how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `None` when the challenge offered no qop (RFC 2069 compatibility).
    pub qop: Option<Qop>,
}

impl Challenge {
    /// Parses one challenge header value; `None` if it is not Digest, lacks
    /// a nonce, or asks for an algorithm or qop we do not implement.
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim_start();
        let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = None;
        let mut qop_options = None;
        for part in split_comma_list(rest) {
            let Some((name, raw)) = part.split_once('=') else {
                continue;
            };
            let value = unquote(raw.trim());
            match name.trim().to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "algorithm" => algorithm = Some(value),
                "qop" => qop_options = Some(value),
                _ => {}
            }
        }
        let algorithm = Algorithm::parse(algorithm.as_deref())?;
        let qop = match qop_options {
            None => None,
            Some(options) => {
                let offered: Vec<String> = options
                    .split(',')
                    .map(|option| option.trim().to_ascii_lowercase())
                    .collect();
                if offered.iter().any(|option| option == "auth") {
                    Some(Qop::Auth)
                } else if offered.iter().any(|option| option == "auth-int") {
                    Some(Qop::AuthInt)
                } else {
                    return None;
                }
            }
        };
        Some(Challenge {
            realm: realm.unwrap_or_default(),
            nonce: nonce.filter(|nonce| !nonce.is_empty())?,
            opaque,
            algorithm,
            qop,
        })
    }
}

/// Removes surrounding quotes and `\` escapes from a quoted-string.
fn unquote(text: &str) -> String {
    let Some(inner) = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes a value for a quoted-string.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What the response covers.
pub(crate) struct DigestInput<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub body: &'a [u8],
    /// Client nonce (used when the challenge has a qop or a -sess algorithm).
    pub cnonce: &'a str,
    pub nonce_count: u32,
}

/// The `response` value (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1).
pub(crate) fn response(challenge: &Challenge, input: &DigestInput<'_>) -> String {
    let algorithm = challenge.algorithm;
    let h = |text: String| algorithm.hash(text.as_bytes());
    let mut ha1 = h(format!(
        "{}:{}:{}",
        input.username, challenge.realm, input.password
    ));
    if algorithm.is_session() {
        ha1 = h(format!("{ha1}:{}:{}", challenge.nonce, input.cnonce));
    }
    let ha2 = match challenge.qop {
        Some(Qop::AuthInt) => h(format!(
            "{}:{}:{}",
            input.method,
            input.uri,
            algorithm.hash(input.body)
        )),
        _ => h(format!("{}:{}", input.method, input.uri)),
    };
    match challenge.qop {
        Some(qop) => h(format!(
            "{ha1}:{}:{:08x}:{}:{}:{ha2}",
            challenge.nonce,
            input.nonce_count,
            input.cnonce,
            qop_name(qop)
        )),
        None => h(format!("{ha1}:{}:{ha2}", challenge.nonce)),
    }
}

fn qop_name(qop: Qop) -> &'static str {
    match qop {
        Qop::Auth => "auth",
        Qop::AuthInt => "auth-int",
    }
}

/// The full `Authorization` / `Proxy-Authorization` header value.
pub(crate) fn authorization(challenge: &Challenge, input: &DigestInput<'_>) -> String {
    let mut value = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
        quote(input.username),
        quote(&challenge.realm),
        quote(&challenge.nonce),
        quote(input.uri),
        quote(&response(challenge, input)),
        challenge.algorithm.name()
    );
    if challenge.qop.is_some() || challenge.algorithm.is_session() {
        value.push_str(&format!(", cnonce={}", quote(input.cnonce)));
    }
    if let Some(opaque) = &challenge.opaque {
        value.push_str(&format!(", opaque={}", quote(opaque)));
    }
    if let Some(qop) = challenge.qop {
        value.push_str(&format!(
            ", qop={}, nc={:08x}",
            qop_name(qop),
            input.nonce_count
        ));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed independently with python3 hashlib.
    const URI: &str = "sip:+15551230000@gw.example:5060";
    const NONCE: &str = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
    const CNONCE: &str = "0a4f113b";

    fn input(uri: &'static str) -> DigestInput<'static> {
        DigestInput {
            username: "alice",
            password: "s3cret",
            method: "INVITE",
            uri,
            body: b"",
            cnonce: CNONCE,
            nonce_count: 1,
        }
    }

    fn challenge(extra: &str) -> Challenge {
        Challenge::parse(&format!("Digest realm=\"trunk\", nonce=\"{NONCE}\"{extra}")).unwrap()
    }

    #[test]
    fn rfc_2617_example() {
        let challenge = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(challenge.qop, Some(Qop::Auth));
        let input = DigestInput {
            username: "Mufasa",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
            cnonce: CNONCE,
            nonce_count: 1,
        };
        assert_eq!(
            response(&challenge, &input),
            "6629fae49393a05397450978507c4ef1"
        );
        let header = authorization(&challenge, &input);
        assert!(header.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
        assert!(header.contains("qop=auth, nc=00000001"));
        assert!(header.contains("cnonce=\"0a4f113b\""));
    }

    #[test]
    fn md5_without_qop() {
        let challenge = challenge("");
        assert_eq!(challenge.qop, None);
        assert_eq!(
            response(&challenge, &input(URI)),
            "ef1b3784d48288afa862d8ab72cbd3f3"
        );
        let header = authorization(&challenge, &input(URI));
        assert!(!header.contains("cnonce"));
        assert!(!header.contains("qop"));
    }

    #[test]
    fn md5_auth_md5_sess_and_sha256() {
        assert_eq!(
            response(&challenge(", qop=\"auth\""), &input(URI)),
            "eb7700b28a25df09fed90b4be834693e"
        );
        assert_eq!(
            response(
                &challenge(", algorithm=MD5-sess, qop=\"auth\""),
                &input(URI)
            ),
            "a870a2076a252e8329d78806c46728d5"
        );
        assert_eq!(
            response(&challenge(", algorithm=SHA-256, qop=\"auth\""), &input(URI)),
            "4682747d491560cdd484a38eec9cd1f14043d745c5d7caf0525c186529aeea0f"
        );
    }

    #[test]
    fn unsupported_challenges_are_refused() {
        assert_eq!(Challenge::parse("Basic realm=\"x\""), None);
        assert_eq!(Challenge::parse("Digest realm=\"x\""), None);
        assert_eq!(
            Challenge::parse("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256"),
            None
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"x\", nonce=\"n\", qop=\"token\""),
            None
        );
    }
}
