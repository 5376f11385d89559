//! Typed views of individual header values: Via, name-addr (From, To,
//! Contact, Record-Route), CSeq, and the generic `;name=value` parameter and
//! comma-list syntax they share.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::uri::{host_ip, split_host_port, Uri};
use super::{Method, ParseError};

/// A generic parameter list entry.
pub type Param = (String, Option<String>);

/// Splits a header value on commas that are outside quotes and `<...>`.
/// A `"` with no closing quote after it is an ordinary character (see
/// [`QuoteTracker`]).
pub fn split_comma_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quotes = QuoteTracker::default();
    let mut angle_depth = 0u32;
    let mut start = 0;
    for (index, c) in value.char_indices() {
        if quotes.step(value, index, c) {
            continue;
        }
        match c {
            '<' => angle_depth = angle_depth.saturating_add(1),
            '>' => angle_depth = angle_depth.saturating_sub(1),
            ',' if angle_depth == 0 => {
                if let Some(part) = value.get(start..index) {
                    push_trimmed(&mut parts, part);
                }
                start = index + 1;
            }
            _ => {}
        }
    }
    if let Some(part) = value.get(start..) {
        push_trimmed(&mut parts, part);
    }
    parts
}

fn push_trimmed<'a>(parts: &mut Vec<&'a str>, part: &'a str) {
    let part = part.trim();
    if !part.is_empty() {
        parts.push(part);
    }
}

/// Parses `name[=value];name[=value]...` (leading `;` optional). Values may
/// be quoted strings; whitespace around names and values is dropped.
pub fn parse_params(text: &str) -> Vec<Param> {
    split_outside_quotes(text, ';')
        .into_iter()
        .filter_map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            Some(match part.split_once('=') {
                Some((name, value)) => (name.trim().to_owned(), Some(value.trim().to_owned())),
                None => (part.to_owned(), None),
            })
        })
        .collect()
}

/// Tracks quoted strings (RFC 3261 §25.1 `quoted-string`, with `\\` escapes)
/// while scanning a header value left to right. A `"` opens a quoted string
/// only when a closing `"` follows; an unterminated one is an ordinary
/// character. Otherwise a stray quote would swallow every separator after it,
/// and parameters appended when the value is re-rendered (Via `received`,
/// To `tag`) would vanish into it when the value is parsed again.
#[derive(Default)]
struct QuoteTracker {
    in_quotes: bool,
    escaped: bool,
    /// Set once a `"` was found to have no closing quote: no later one has
    /// one either, so the rest of the value is scanned without lookahead.
    unterminated: bool,
}

impl QuoteTracker {
    /// Feeds the character `c` found at byte `index` of `text`; returns true
    /// when it is inside a quoted string (or is one of its quotes), so the
    /// caller must not treat it as a separator.
    fn step(&mut self, text: &str, index: usize, c: char) -> bool {
        if self.in_quotes {
            if self.escaped {
                self.escaped = false;
            } else if c == '\\' {
                self.escaped = true;
            } else if c == '"' {
                self.in_quotes = false;
            }
            return true;
        }
        if c != '"' || self.unterminated {
            return false;
        }
        let after = text.get(index + 1..).unwrap_or_default();
        if has_closing_quote(after) {
            self.in_quotes = true;
            true
        } else {
            self.unterminated = true;
            false
        }
    }
}

/// Whether the inside of a quoted string (after its opening `"`) is closed.
fn has_closing_quote(inside: &str) -> bool {
    let mut escaped = false;
    for c in inside.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return true,
            _ => {}
        }
    }
    false
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quotes = QuoteTracker::default();
    let mut start = 0;
    for (index, c) in text.char_indices() {
        if quotes.step(text, index, c) {
            continue;
        }
        if c == separator {
            if let Some(part) = text.get(start..index) {
                parts.push(part);
            }
            start = index + c.len_utf8();
        }
    }
    if let Some(part) = text.get(start..) {
        parts.push(part);
    }
    parts
}

fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_deref())
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[Param]) -> fmt::Result {
    for (name, value) in params {
        match value {
            Some(value) => write!(f, ";{name}={value}")?,
            None => write!(f, ";{name}")?,
        }
    }
    Ok(())
}

/// One Via element: `SIP/2.0/UDP host:port;branch=...;rport;received=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `SIP/2.0`.
    pub protocol: String,
    /// `UDP`, `TCP`, ...
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

/// RFC 3261 magic cookie that marks a globally unique branch.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

impl Via {
    pub fn parse(text: &str) -> Result<Via, ParseError> {
        let invalid = || ParseError::InvalidHeader("Via");
        let text = text.trim();
        let (sent, params) = match text.split_once(';') {
            Some((sent, params)) => (sent, parse_params(params)),
            None => (text, Vec::new()),
        };
        let mut pieces = sent.splitn(3, '/');
        let name = pieces.next().ok_or_else(invalid)?.trim();
        let version = pieces.next().ok_or_else(invalid)?.trim();
        let rest = pieces.next().ok_or_else(invalid)?.trim_start();
        let transport_end = rest.find(|c: char| c.is_whitespace()).ok_or_else(invalid)?;
        let transport = rest.get(..transport_end).ok_or_else(invalid)?;
        let sent_by: String = rest
            .get(transport_end..)
            .ok_or_else(invalid)?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        // Drop a trailing comment such as "(ignored)".
        let sent_by = sent_by.split('(').next().unwrap_or_default();
        if name.is_empty() || version.is_empty() || transport.is_empty() {
            return Err(invalid());
        }
        let (host, port) = split_host_port(sent_by).ok_or_else(invalid)?;
        Ok(Via {
            protocol: format!("{name}/{version}"),
            transport: transport.to_owned(),
            host: host.to_owned(),
            port,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// The `sent-by` as text, `host[:port]`.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    pub fn received(&self) -> Option<&str> {
        self.param("received").flatten()
    }

    /// `None`: no rport; `Some(None)`: bare `;rport`; `Some(Some(p))`: filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport")
            .map(|value| value.and_then(|port| port.parse().ok()))
    }

    /// Where responses go (RFC 3261 §18.2.2 with RFC 3581): the source
    /// address when `rport` is present or the sent-by host is not the
    /// source IP; otherwise the sent-by host and port (default 5060).
    pub fn response_destination(&self, source: SocketAddr) -> SocketAddr {
        if self.rport().is_some() {
            return source;
        }
        match host_ip(&self.host) {
            Some(ip) if ip == source.ip() => SocketAddr::new(ip, self.port.unwrap_or(5060)),
            _ => source,
        }
    }

    /// Adds `received` (when the source IP differs from sent-by, or rport
    /// was asked for) and fills in `rport`, as a server does before copying
    /// this Via into a response.
    pub fn stamp_source(&mut self, source: SocketAddr) {
        let wants_rport = self.rport().is_some();
        let sent_by_ip: Option<IpAddr> = host_ip(&self.host);
        if wants_rport || sent_by_ip != Some(source.ip()) {
            self.set_param("received", Some(source.ip().to_string()));
        }
        if wants_rport {
            self.set_param("rport", Some(source.port().to_string()));
        }
    }

    fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
        {
            Some(entry) => entry.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.protocol, self.transport, self.sent_by())?;
        write_params(f, &self.params)
    }
}

/// `["Display Name"] <uri>;params` or `uri;params` (From, To, Contact, Route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display_name: Option<String>,
    /// The URI text as written (without angle brackets).
    pub uri: String,
    pub parsed_uri: Uri,
    /// Header parameters after the URI (`tag`, `expires`, ...).
    pub params: Vec<Param>,
}

impl NameAddr {
    pub fn parse(text: &str) -> Result<NameAddr, ParseError> {
        let text = text.trim();
        let (display_name, after_display) = if let Some(quoted) = text.strip_prefix('"') {
            let (display, rest) = parse_quoted(quoted).ok_or(ParseError::InvalidNameAddr)?;
            (Some(display), rest.trim_start())
        } else if let Some(open) = text.find('<') {
            let display = text.get(..open).unwrap_or_default().trim();
            (
                (!display.is_empty()).then(|| display.to_owned()),
                text.get(open..).unwrap_or_default(),
            )
        } else {
            (None, text)
        };

        let (uri_text, params_text) = if let Some(inner) = after_display.strip_prefix('<') {
            let close = inner.find('>').ok_or(ParseError::InvalidNameAddr)?;
            let uri = inner.get(..close).ok_or(ParseError::InvalidNameAddr)?;
            let after = inner.get(close + 1..).unwrap_or_default().trim();
            if !after.is_empty() && !after.starts_with(';') {
                return Err(ParseError::InvalidNameAddr);
            }
            (uri, after)
        } else if display_name.is_some() {
            // A display name must be followed by <uri>.
            return Err(ParseError::InvalidNameAddr);
        } else {
            // addr-spec form: parameters after ';' belong to the header.
            match after_display.split_once(';') {
                Some((uri, params)) => (uri, params),
                None => (after_display, ""),
            }
        };
        let uri_text = uri_text.trim();
        let parsed_uri = Uri::parse(uri_text).map_err(|_| ParseError::InvalidNameAddr)?;
        Ok(NameAddr {
            display_name,
            uri: uri_text.to_owned(),
            parsed_uri,
            params: parse_params(params_text),
        })
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    /// The URI's user part, or "" when it has none.
    pub fn user(&self) -> &str {
        self.parsed_uri.user.as_deref().unwrap_or_default()
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(display) = &self.display_name {
            write!(
                f,
                "\"{}\" ",
                display.replace('\\', "\\\\").replace('"', "\\\"")
            )?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

/// Parses the inside of a quoted string (after the opening quote); returns
/// the unescaped text and what follows the closing quote.
fn parse_quoted(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, text.get(index + 1..)?)),
            _ => out.push(c),
        }
    }
    None
}

/// `CSeq: 4711 INVITE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(text: &str) -> Result<CSeq, ParseError> {
        let mut fields = text.split_whitespace();
        let seq = fields
            .next()
            .and_then(|seq| seq.parse::<u32>().ok())
            .filter(|seq| *seq < 1 << 31)
            .ok_or(ParseError::InvalidHeader("CSeq"))?;
        let method = fields
            .next()
            .filter(|method| super::is_token(method))
            .ok_or(ParseError::InvalidHeader("CSeq"))?;
        if fields.next().is_some() {
            return Err(ParseError::InvalidHeader("CSeq"));
        }
        Ok(CSeq {
            seq,
            method: Method::from_token(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_odd_whitespace_and_params() {
        let via = Via::parse(
            "SIP / 2.0 / UDP  192.0.2.1 : 5070 ;branch=z9hG4bKabc;rport;received=10.0.0.1",
        )
        .unwrap();
        assert_eq!(via.protocol, "SIP/2.0");
        assert_eq!(via.transport, "UDP");
        assert_eq!(via.host, "192.0.2.1");
        assert_eq!(via.port, Some(5070));
        assert_eq!(via.branch(), Some("z9hG4bKabc"));
        assert_eq!(via.rport(), Some(None));
        assert_eq!(via.received(), Some("10.0.0.1"));
    }

    #[test]
    fn via_response_destination() {
        let source: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let nat = Via::parse("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1").unwrap();
        assert_eq!(nat.response_destination(source), source);
        let direct = Via::parse("SIP/2.0/UDP 203.0.113.9:5062;branch=z9hG4bK1").unwrap();
        assert_eq!(
            direct.response_destination(source),
            "203.0.113.9:5062".parse().unwrap()
        );
        let mut rport = Via::parse("SIP/2.0/UDP 203.0.113.9:5062;rport;branch=z9hG4bK1").unwrap();
        assert_eq!(rport.response_destination(source), source);
        rport.stamp_source(source);
        assert_eq!(
            rport.to_string(),
            "SIP/2.0/UDP 203.0.113.9:5062;rport=40000;branch=z9hG4bK1;received=203.0.113.9"
        );
        let mut hostname = Via::parse("SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1").unwrap();
        hostname.stamp_source(source);
        assert_eq!(hostname.received(), Some("203.0.113.9"));
    }

    #[test]
    fn name_addr_forms() {
        let quoted = NameAddr::parse(
            "\"Bob \\\"B\\\" Smith\" <sip:bob@biloxi.com;transport=udp>;tag=a6c85cf",
        )
        .unwrap();
        assert_eq!(quoted.display_name.as_deref(), Some("Bob \"B\" Smith"));
        assert_eq!(quoted.uri, "sip:bob@biloxi.com;transport=udp");
        assert_eq!(quoted.tag(), Some("a6c85cf"));
        assert_eq!(quoted.user(), "bob");

        let token = NameAddr::parse("Alice<sip:alice@atlanta.com>").unwrap();
        assert_eq!(token.display_name.as_deref(), Some("Alice"));
        assert_eq!(token.tag(), None);

        let bare = NameAddr::parse("sip:+1234@gw.example.com;tag=xyz").unwrap();
        assert_eq!(bare.uri, "sip:+1234@gw.example.com");
        assert_eq!(bare.tag(), Some("xyz"));
        assert_eq!(bare.user(), "+1234");

        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_err());
        assert!(NameAddr::parse("<sip:a@b").is_err());
        assert!(NameAddr::parse("Bob sip:a@b").is_err());
        assert!(NameAddr::parse("<sip:a@b> junk").is_err());
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(
            CSeq::parse("  4711   INVITE ").unwrap(),
            CSeq {
                seq: 4711,
                method: Method::Invite
            }
        );
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("INVITE").is_err());
        assert!(CSeq::parse("1 INVITE extra").is_err());
    }

    #[test]
    fn comma_lists_respect_quotes_and_brackets() {
        assert_eq!(
            split_comma_list("\"Doe, J\" <sip:a@b;x=1,2>, <sip:c@d> ,"),
            vec!["\"Doe, J\" <sip:a@b;x=1,2>", "<sip:c@d>"]
        );
    }

    /// Found by the sip_message fuzz target: a stray `"` in a Via parameter
    /// swallowed the `received` parameter `stamp_source` appends, so the Via
    /// we copy into responses no longer said where the request came from.
    #[test]
    fn unterminated_quote_does_not_swallow_later_params() {
        let mut via =
            Via::parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;x\"y <a;rport").unwrap();
        assert_eq!(via.params.len(), 3, "{:?}", via.params);
        via.stamp_source("192.0.2.1:5062".parse().unwrap());
        assert_eq!(via.received(), Some("192.0.2.1"));
        assert_eq!(via.rport(), Some(Some(5062)));
        let rendered = via.to_string();
        assert_eq!(Via::parse(&rendered).unwrap(), via, "{rendered}");

        assert_eq!(
            parse_params(";a=\"x;y\";b=\"open;c"),
            vec![
                ("a".to_owned(), Some("\"x;y\"".to_owned())),
                ("b".to_owned(), Some("\"open".to_owned())),
                ("c".to_owned(), None),
            ]
        );
        assert_eq!(
            split_comma_list("\"a, b\", c\", d"),
            vec!["\"a, b\"", "c\"", "d"]
        );
        assert_eq!(
            NameAddr::parse("<sip:a@b>;x=\"1;tag=t").unwrap().tag(),
            Some("t")
        );
    }
}
