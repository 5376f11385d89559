//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), parsed into scheme,
//! user, host, port and parameters. Other absolute URIs are kept with the
//! text after the scheme as their host so they can at least be echoed.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::values::parse_params;
use super::ParseError;

/// A parsed URI. `Display` renders it back in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// Lower-cased scheme: `sip`, `sips`, `tel`, ...
    pub scheme: String,
    /// User part (without password); the number for `tel:`.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host as written; IPv6 references keep their brackets.
    pub host: String,
    pub port: Option<u16>,
    /// URI parameters (`;lr`, `;transport=udp`), in order.
    pub params: Vec<(String, Option<String>)>,
    /// Raw `?headers` part without the `?`.
    pub headers: Option<String>,
}

impl Uri {
    pub fn parse(text: &str) -> Result<Uri, ParseError> {
        let text = text.trim();
        let (scheme, rest) = text.split_once(':').ok_or(ParseError::InvalidUri)?;
        if scheme.is_empty()
            || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(ParseError::InvalidUri);
        }
        if rest.is_empty()
            || rest
                .chars()
                .any(|c| c.is_whitespace() || c == '<' || c == '>')
        {
            return Err(ParseError::InvalidUri);
        }
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "sip" | "sips" => Self::parse_sip(scheme, rest),
            "tel" => {
                let (number, params) = match rest.split_once(';') {
                    Some((number, params)) => (number, parse_params(params)),
                    None => (rest, Vec::new()),
                };
                Ok(Uri {
                    scheme,
                    user: Some(number.to_owned()),
                    password: None,
                    host: String::new(),
                    port: None,
                    params,
                    headers: None,
                })
            }
            _ => Ok(Uri {
                scheme,
                user: None,
                password: None,
                host: rest.to_owned(),
                port: None,
                params: Vec::new(),
                headers: None,
            }),
        }
    }

    fn parse_sip(scheme: String, rest: &str) -> Result<Uri, ParseError> {
        // '@' may not appear unescaped in parameters or headers, while the
        // user part may contain '?' and ';': split userinfo off first.
        let (userinfo, after_userinfo) = match rest.rsplit_once('@') {
            Some((userinfo, after)) => (Some(userinfo), after),
            None => (None, rest),
        };
        let (hostpart, headers) = match after_userinfo.split_once('?') {
            Some((hostpart, headers)) => (hostpart, Some(headers.to_owned())),
            None => (after_userinfo, None),
        };
        let (user, password) = match userinfo {
            Some(userinfo) => {
                if userinfo.is_empty() {
                    return Err(ParseError::InvalidUri);
                }
                match userinfo.split_once(':') {
                    Some((user, password)) => (Some(user.to_owned()), Some(password.to_owned())),
                    None => (Some(userinfo.to_owned()), None),
                }
            }
            None => (None, None),
        };
        let (hostport, params) = match hostpart.split_once(';') {
            Some((hostport, params)) => (hostport, parse_params(params)),
            None => (hostpart, Vec::new()),
        };
        let (host, port) = split_host_port(hostport).ok_or(ParseError::InvalidUri)?;
        Ok(Uri {
            scheme,
            user,
            password,
            host: host.to_owned(),
            port,
            params,
            headers,
        })
    }

    /// The value of a URI parameter (`None` if absent; `Some(None)` if it has no value).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_deref())
    }

    /// The host as an IP address, if it is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        host_ip(&self.host)
    }

    /// The socket address for an IP-literal host (port defaulting to 5060).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip()
            .map(|ip| SocketAddr::new(ip, self.port.unwrap_or(5060)))
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(password) = &self.password {
                write!(f, ":{password}")?;
            }
            if !self.host.is_empty() {
                f.write_str("@")?;
            }
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for (name, value) in &self.params {
            match value {
                Some(value) => write!(f, ";{name}={value}")?,
                None => write!(f, ";{name}")?,
            }
        }
        if let Some(headers) = &self.headers {
            write!(f, "?{headers}")?;
        }
        Ok(())
    }
}

/// Splits `host[:port]` where host may be a bracketed IPv6 reference.
pub(crate) fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let (host, port_text) = if text.starts_with('[') {
        let close = text.find(']')?;
        let host = text.get(..=close)?;
        let after = text.get(close + 1..)?;
        let port_text = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return None,
        };
        (host, port_text)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'))
    {
        return None;
    }
    let port = match port_text {
        Some(port) => Some(port.trim().parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
}

/// Parses an IP literal host (IPv6 with or without brackets).
pub(crate) fn host_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_sip_uri() {
        let uri =
            Uri::parse("sip:alice:secret@example.com:5070;transport=udp;lr?subject=x").unwrap();
        assert_eq!(uri.scheme, "sip");
        assert_eq!(uri.user.as_deref(), Some("alice"));
        assert_eq!(uri.password.as_deref(), Some("secret"));
        assert_eq!(uri.host, "example.com");
        assert_eq!(uri.port, Some(5070));
        assert_eq!(uri.param("transport"), Some(Some("udp")));
        assert_eq!(uri.param("lr"), Some(None));
        assert_eq!(uri.headers.as_deref(), Some("subject=x"));
        assert_eq!(
            uri.to_string(),
            "sip:alice:secret@example.com:5070;transport=udp;lr?subject=x"
        );
    }

    #[test]
    fn parses_ipv6_and_tel() {
        let uri = Uri::parse("SIPS:[2001:db8::1]:5061").unwrap();
        assert_eq!(uri.scheme, "sips");
        assert_eq!(uri.host, "[2001:db8::1]");
        assert_eq!(uri.port, Some(5061));
        assert_eq!(
            uri.socket_addr(),
            Some("[2001:db8::1]:5061".parse().unwrap())
        );

        let tel = Uri::parse("tel:+15551234567;phone-context=x").unwrap();
        assert_eq!(tel.user.as_deref(), Some("+15551234567"));
        assert_eq!(tel.to_string(), "tel:+15551234567;phone-context=x");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "nocolon",
            ":x",
            "sip:",
            "sip:a b@c",
            "sip:@host",
            "sip:host:99999",
            "9sip:x",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
