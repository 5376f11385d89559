//! The datagram parser: start line, unfolded header lines, Content-Length
//! framing and the mandatory-header checks of RFC 3261 §8.1.1, plus a
//! best-effort header salvage for building `400 Bad Request`.
//!
//! Everything here works on untrusted bytes: no indexing that can panic, no
//! unbounded recursion, no allocation beyond the datagram's own size.

use super::headers::Headers;
use super::uri::Uri;
use super::{is_token, Method, ParseError, Request, Response, SipMessage};

/// The split of a datagram into start line, header lines and body.
struct RawMessage<'a> {
    start_line: &'a [u8],
    header_lines: Vec<&'a [u8]>,
    body: &'a [u8],
}

/// Parses one datagram as a SIP message.
pub fn parse(data: &[u8]) -> Result<SipMessage, ParseError> {
    let raw = split_message(data)?;
    let headers = parse_header_lines(&raw.header_lines, false)?;
    let start_line =
        std::str::from_utf8(raw.start_line).map_err(|_| ParseError::InvalidStartLine)?;
    let body = frame_body(&headers, raw.body)?;

    let message = if let Some(status_line) = strip_prefix_ignore_case(start_line, "SIP/") {
        let (status, reason) = parse_status_line(status_line)?;
        SipMessage::Response(Response {
            status,
            reason,
            headers,
            body,
        })
    } else {
        let (method, uri) = parse_request_line(start_line)?;
        let request_uri = Uri::parse(&uri)?;
        SipMessage::Request(Request {
            method,
            uri,
            request_uri,
            headers,
            body,
        })
    };
    validate_mandatory_headers(&message)?;
    Ok(message)
}

/// What could be salvaged from a request that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredRequest {
    /// From the request line, or from CSeq when the request line is unusable.
    pub method: Method,
    /// Every header line that could be read; Via, From, To, Call-ID and CSeq
    /// are guaranteed present and non-empty.
    pub headers: Headers,
}

/// Salvages enough of a malformed request to answer it with an error
/// response: the start line must not be a status line, and Via, From, To,
/// Call-ID and CSeq must be present. Returns `None` otherwise.
pub fn recover_request_headers(data: &[u8]) -> Option<RecoveredRequest> {
    let raw = split_message(data).ok()?;
    let start_line = String::from_utf8_lossy(raw.start_line);
    if strip_prefix_ignore_case(&start_line, "SIP/").is_some() {
        return None;
    }
    let headers = parse_header_lines(&raw.header_lines, true).ok()?;
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if headers
            .get(name)
            .is_none_or(|value| value.trim().is_empty())
        {
            return None;
        }
    }
    let method_token = start_line
        .split_whitespace()
        .next()
        .filter(|token| is_token(token))
        .or_else(|| headers.get("CSeq")?.split_whitespace().nth(1))?;
    Some(RecoveredRequest {
        method: Method::from_token(method_token),
        headers,
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// Splits a datagram into its start line, header lines (CRLF or bare LF
/// terminated) and body (everything after the first empty line).
fn split_message(data: &[u8]) -> Result<RawMessage<'_>, ParseError> {
    // RFC 3261 §7.5: ignore CRLFs before the start line (keep-alives too).
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(ParseError::Empty)?;
    let mut rest = data.get(start..).ok_or(ParseError::Empty)?;
    let mut lines = Vec::new();
    let mut body: &[u8] = &[];
    loop {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(newline) => (
                rest.get(..newline).unwrap_or_default(),
                rest.get(newline + 1..).unwrap_or_default(),
            ),
            None => (rest, &[][..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if !lines.is_empty() {
                body = after;
            }
            break;
        }
        lines.push(line);
        if after.is_empty() {
            break;
        }
        rest = after;
    }
    let mut lines = lines.into_iter();
    let start_line = lines.next().ok_or(ParseError::Empty)?;
    Ok(RawMessage {
        start_line,
        header_lines: lines.collect(),
        body,
    })
}

/// Unfolds continuation lines and splits `name: value`. With `lenient`,
/// unreadable lines are skipped instead of failing the whole message.
fn parse_header_lines(lines: &[&[u8]], lenient: bool) -> Result<Headers, ParseError> {
    let mut unfolded: Vec<String> = Vec::with_capacity(lines.len());
    for line in lines {
        let text = String::from_utf8_lossy(line);
        if text.starts_with([' ', '\t']) {
            match unfolded.last_mut() {
                Some(previous) => {
                    previous.push(' ');
                    previous.push_str(text.trim());
                }
                None if lenient => {}
                None => return Err(ParseError::InvalidHeaderLine),
            }
        } else {
            unfolded.push(text.into_owned());
        }
    }
    let mut headers = Headers::new();
    for line in &unfolded {
        let Some((name, value)) = line.split_once(':') else {
            if lenient {
                continue;
            }
            return Err(ParseError::InvalidHeaderLine);
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            if lenient {
                continue;
            }
            return Err(ParseError::InvalidHeaderLine);
        }
        headers.push(name, value.trim());
    }
    Ok(headers)
}

fn parse_status_line(after_sip_slash: &str) -> Result<(u16, String), ParseError> {
    let (version, rest) = after_sip_slash
        .split_once(' ')
        .ok_or(ParseError::InvalidStartLine)?;
    if version != "2.0" {
        return Err(ParseError::UnsupportedVersion);
    }
    let rest = rest.trim_start();
    let (code, reason) = match rest.split_once(' ') {
        Some((code, reason)) => (code, reason.trim()),
        None => (rest.trim_end(), ""),
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::InvalidStartLine);
    }
    let status: u16 = code.parse().map_err(|_| ParseError::InvalidStartLine)?;
    if !(100..=699).contains(&status) {
        return Err(ParseError::InvalidStartLine);
    }
    Ok((status, reason.to_owned()))
}

fn parse_request_line(line: &str) -> Result<(Method, String), ParseError> {
    let mut fields = line.split_whitespace();
    let (Some(method), Some(uri), Some(version), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(ParseError::InvalidStartLine);
    };
    match strip_prefix_ignore_case(version, "SIP/") {
        Some("2.0") => {}
        Some(_) => return Err(ParseError::UnsupportedVersion),
        None => return Err(ParseError::InvalidStartLine),
    }
    if !is_token(method) {
        return Err(ParseError::InvalidStartLine);
    }
    Ok((Method::from_token(method), uri.to_owned()))
}

/// Applies Content-Length: the body is cut to it, and a declared length
/// longer than the bytes received is an error. Without the header the rest
/// of the datagram is the body (RFC 3261 §18.3 for UDP).
fn frame_body(headers: &Headers, body: &[u8]) -> Result<Vec<u8>, ParseError> {
    let mut declared: Option<usize> = None;
    for value in headers.get_all("Content-Length") {
        let value = value.trim();
        if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::InvalidContentLength);
        }
        let length: usize = value
            .parse()
            .map_err(|_| ParseError::InvalidContentLength)?;
        if declared.is_some_and(|previous| previous != length) {
            return Err(ParseError::InvalidContentLength);
        }
        declared = Some(length);
    }
    match declared {
        Some(length) => {
            body.get(..length)
                .map(<[u8]>::to_vec)
                .ok_or(ParseError::ContentLengthTooLarge {
                    declared: length,
                    available: body.len(),
                })
        }
        None => Ok(body.to_vec()),
    }
}

fn validate_mandatory_headers(message: &SipMessage) -> Result<(), ParseError> {
    let headers = message.headers();
    headers.top_via()?;
    headers.from()?;
    headers.to()?;
    headers
        .call_id()
        .ok_or(ParseError::MissingHeader("Call-ID"))?;
    let cseq = headers.cseq()?;
    if let SipMessage::Request(request) = message {
        if cseq.method != request.method {
            return Err(ParseError::CSeqMethodMismatch);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\n\
        To: Bob <sip:bob@biloxi.example.com>\r\n\
        From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\
        \r\n\
        v=0\r\n";

    #[test]
    fn parses_a_request_and_truncates_to_content_length() {
        let SipMessage::Request(request) = parse(INVITE.as_bytes()).unwrap() else {
            panic!("expected a request");
        };
        assert_eq!(request.method, Method::Invite);
        assert_eq!(request.uri, "sip:bob@biloxi.example.com");
        assert_eq!(request.request_uri.user.as_deref(), Some("bob"));
        assert_eq!(request.body, b"v=0\r");
        assert_eq!(request.headers.max_forwards(), Some(70));
        assert_eq!(request.headers.cseq().unwrap().seq, 314159);
        assert_eq!(request.headers.content_type(), Some("application/sdp"));
        assert_eq!(
            request.headers.top_via().unwrap().branch(),
            Some("z9hG4bK776asdhds")
        );
    }

    #[test]
    fn serializer_round_trips() {
        let message = parse(INVITE.as_bytes()).unwrap();
        let bytes = message.to_bytes();
        assert_eq!(parse(&bytes).unwrap(), message);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with("Content-Length: 4\r\n\r\nv=0\r"), "{text}");
    }

    #[test]
    fn parses_a_response_without_reason() {
        let response = "SIP/2.0 180 \r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
        let SipMessage::Response(response) = parse(response.as_bytes()).unwrap() else {
            panic!("expected a response");
        };
        assert_eq!(response.status, 180);
        assert_eq!(response.reason, "");
        assert!(response.body.is_empty());
    }

    #[test]
    fn recovery_needs_the_five_headers() {
        let broken = INVITE.replace("Content-Length: 4", "Content-Length: 400");
        assert!(matches!(
            parse(broken.as_bytes()),
            Err(ParseError::ContentLengthTooLarge { declared: 400, .. })
        ));
        let recovered = recover_request_headers(broken.as_bytes()).unwrap();
        assert_eq!(recovered.method, Method::Invite);
        assert_eq!(
            recovered.headers.call_id(),
            Some("a84b4c76e66710@pc33.atlanta.example.com")
        );
        let no_call_id = broken.replace("Call-ID", "X-Call-ID");
        assert_eq!(recover_request_headers(no_call_id.as_bytes()), None);
        let response =
            "SIP/2.0 200 OK\r\nVia: x\r\nFrom: x\r\nTo: x\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
        assert_eq!(recover_request_headers(response.as_bytes()), None);
    }
}
