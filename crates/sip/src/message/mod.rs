//! SIP messages (RFC 3261 §7): the data model, the datagram parser and the
//! serializer.
//!
//! [`parse`] turns one UDP datagram into a [`SipMessage`] or a
//! [`ParseError`]; it never panics, whatever the bytes. Header values are kept
//! raw (folded lines joined, invalid UTF-8 replaced) in arrival order, with
//! typed accessors on [`Headers`]. [`recover_request_headers`] salvages the
//! headers a `400 Bad Request` needs from a request that failed to parse.

mod headers;
mod parser;
mod uri;
mod values;

use std::fmt;

use thiserror::Error;

pub use headers::{canonical_name, Header, Headers};
pub use parser::{parse, recover_request_headers, RecoveredRequest};
pub use uri::Uri;
pub use values::{parse_params, split_comma_list, CSeq, NameAddr, Param, Via, BRANCH_MAGIC_COOKIE};

/// Why a datagram is not a valid SIP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("malformed start line")]
    InvalidStartLine,
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    #[error("malformed Request-URI")]
    InvalidUri,
    #[error("malformed header line")]
    InvalidHeaderLine,
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    InvalidHeader(&'static str),
    #[error("malformed name-addr")]
    InvalidNameAddr,
    #[error("malformed Content-Length")]
    InvalidContentLength,
    #[error("Content-Length {declared} exceeds the {available} body bytes received")]
    ContentLengthTooLarge { declared: usize, available: usize },
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
}

/// A SIP method. Unknown extension methods are kept as [`Method::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(String),
}

impl Method {
    /// Maps a method token (case-sensitive, as RFC 3261 requires).
    pub fn from_token(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(token) => token,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request: start line, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The Request-URI exactly as received.
    pub uri: String,
    /// The Request-URI parsed.
    pub request_uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A response: status line, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A parsed SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    Request(Request),
    Response(Response),
}

impl SipMessage {
    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(request) => &request.headers,
            SipMessage::Response(response) => &response.headers,
        }
    }

    pub fn body(&self) -> &[u8] {
        match self {
            SipMessage::Request(request) => &request.body,
            SipMessage::Response(response) => &response.body,
        }
    }

    /// Serializes the message. Any Content-Length headers are replaced by
    /// one that matches the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SipMessage::Request(request) => request.to_bytes(),
            SipMessage::Response(response) => response.to_bytes(),
        }
    }
}

impl Request {
    pub fn to_bytes(&self) -> Vec<u8> {
        let start_line = format!("{} {} SIP/2.0", self.method, self.uri);
        serialize(&start_line, &self.headers, &self.body)
    }
}

impl Response {
    pub fn to_bytes(&self) -> Vec<u8> {
        let start_line = format!("SIP/2.0 {} {}", self.status, self.reason);
        serialize(&start_line, &self.headers, &self.body)
    }
}

fn serialize(start_line: &str, headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(start_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in headers.iter() {
        if header.name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        out.extend_from_slice(header.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// RFC 3261 `token` characters.
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

/// The standard reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match status / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}
