//! rtpengine's NG control protocol: UDP datagrams `"<cookie> <bencoded dictionary>"`, the
//! reply echoing the cookie. The messages the harness sends (ping, offer, answer, delete)
//! and reply checking are pure; [`NgClient`] is a thin blocking driver with retries.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use shmq::Codec;

use crate::bencode::{BencodeError, Value};

/// Why an NG exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum NgError {
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    #[error("no reply to {command:?} within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("malformed reply: {0}")]
    Malformed(String),
    #[error("reply does not decode: {0}")]
    Bencode(#[from] BencodeError),
    #[error("{command:?} refused: {reason}")]
    Refused { command: String, reason: String },
}

/// The datagram carrying `message` under `cookie`.
pub fn encode_request(cookie: &str, message: &Value) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(cookie.len() + 1 + 256);
    datagram.extend_from_slice(cookie.as_bytes());
    datagram.push(b' ');
    message.encode_into(&mut datagram);
    datagram
}

/// Splits a reply into its cookie and decoded dictionary.
pub fn decode_reply(datagram: &[u8]) -> Result<(&[u8], Value), NgError> {
    let space = datagram
        .iter()
        .position(|byte| *byte == b' ')
        .ok_or_else(|| NgError::Malformed("no space after the cookie".into()))?;
    let (cookie, rest) = datagram.split_at(space);
    let value = Value::decode(rest.get(1..).unwrap_or_default())?;
    Ok((cookie, value))
}

/// `Ok` if the reply's `result` is `ok` or `pong`; the `error-reason` otherwise.
pub fn check_result(command: &str, reply: &Value) -> Result<(), NgError> {
    match reply.get("result").and_then(Value::as_str) {
        Some("ok") | Some("pong") => Ok(()),
        Some(other) => Err(NgError::Refused {
            command: command.to_string(),
            reason: reply
                .get("error-reason")
                .and_then(Value::as_str)
                .unwrap_or(other)
                .to_string(),
        }),
        None => Err(NgError::Malformed(format!(
            "reply to {command:?} has no result"
        ))),
    }
}

pub fn ping() -> Value {
    Value::dict([("command", Value::str("ping"))])
}

fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Pcmu => "PCMU",
        Codec::Pcma => "PCMA",
    }
}

/// The offer of the calling side (leg A). `transcode_to`: a codec the answering side may
/// pick instead, which rtpengine then transcodes to and from.
pub fn offer(call_id: &str, from_tag: &str, sdp: &str, transcode_to: Option<Codec>) -> Value {
    let mut entries = vec![
        ("command", Value::str("offer")),
        ("call-id", Value::str(call_id)),
        ("from-tag", Value::str(from_tag)),
        ("sdp", Value::str(sdp)),
        ("flags", Value::str_list(&["trust-address"])),
    ];
    if let Some(codec) = transcode_to {
        entries.push((
            "codec",
            Value::dict([("transcode", Value::str_list(&[codec_name(codec)]))]),
        ));
    }
    Value::dict(entries)
}

/// The answer of the called side (leg B).
pub fn answer(call_id: &str, from_tag: &str, to_tag: &str, sdp: &str) -> Value {
    Value::dict([
        ("command", Value::str("answer")),
        ("call-id", Value::str(call_id)),
        ("from-tag", Value::str(from_tag)),
        ("to-tag", Value::str(to_tag)),
        ("sdp", Value::str(sdp)),
        ("flags", Value::str_list(&["trust-address"])),
    ])
}

pub fn delete(call_id: &str, from_tag: &str) -> Value {
    Value::dict([
        ("command", Value::str("delete")),
        ("call-id", Value::str(call_id)),
        ("from-tag", Value::str(from_tag)),
    ])
}

/// A blocking NG client: one request at a time, re-sent if no reply comes.
#[derive(Debug)]
pub struct NgClient {
    socket: UdpSocket,
    next_cookie: u64,
    /// How long to wait for each attempt's reply.
    pub attempt_timeout: Duration,
    pub attempts: u32,
}

impl NgClient {
    pub fn connect(server: SocketAddr) -> io::Result<NgClient> {
        let local: SocketAddr = if server.is_ipv4() {
            "127.0.0.1:0".parse().map_err(io::Error::other)?
        } else {
            "[::1]:0".parse().map_err(io::Error::other)?
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(server)?;
        Ok(NgClient {
            socket,
            next_cookie: u64::from(std::process::id()) << 32,
            attempt_timeout: Duration::from_secs(1),
            attempts: 3,
        })
    }

    /// Sends `message` and returns the reply whose cookie matches, after checking its result.
    pub fn request(&mut self, message: &Value) -> Result<Value, NgError> {
        let command = message
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let cookie = format!("{:x}", self.next_cookie);
        self.next_cookie += 1;
        let datagram = encode_request(&cookie, message);
        let mut buffer = vec![0u8; 65_536];
        for _ in 0..self.attempts.max(1) {
            self.socket.send(&datagram)?;
            let deadline = Instant::now() + self.attempt_timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.socket.set_read_timeout(Some(left))?;
                let length = match self.socket.recv(&mut buffer) {
                    Ok(length) => length,
                    Err(error)
                        if matches!(
                            error.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    // Nothing listens (yet): ICMP port unreachable.
                    Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => break,
                    Err(error) => return Err(error.into()),
                };
                let (reply_cookie, reply) = decode_reply(buffer.get(..length).unwrap_or_default())?;
                if reply_cookie != cookie.as_bytes() {
                    continue; // a late reply to an earlier attempt
                }
                check_result(&command, &reply)?;
                return Ok(reply);
            }
        }
        Err(NgError::Timeout {
            command,
            timeout: self.attempt_timeout * self.attempts.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_cookie_space_bencode() {
        assert_eq!(
            encode_request("c1", &ping()),
            b"c1 d7:command4:pinge".to_vec()
        );
        let offer = offer("call", "ftag", "v=0\r\n", Some(Codec::Pcma));
        let encoded = String::from_utf8(offer.encode()).unwrap();
        assert!(
            encoded.contains("5:codecd9:transcodel4:PCMAee"),
            "{encoded}"
        );
        assert!(encoded.contains("5:flagsl13:trust-addresse"), "{encoded}");
        assert!(encoded.contains("7:command5:offer"), "{encoded}");
        let relay = String::from_utf8(super::offer("c", "f", "s", None).encode()).unwrap();
        assert!(!relay.contains("codec"));
        let answer = String::from_utf8(answer("c", "f", "t", "s").encode()).unwrap();
        assert!(answer.contains("6:to-tag1:t"));
        let delete = String::from_utf8(delete("c", "f").encode()).unwrap();
        assert_eq!(delete, "d7:call-id1:c7:command6:delete8:from-tag1:fe");
    }

    #[test]
    fn replies_are_checked() {
        let (cookie, reply) = decode_reply(b"abc d6:result4:ponge").unwrap();
        assert_eq!(cookie, b"abc");
        assert!(check_result("ping", &reply).is_ok());
        let (_, error) =
            decode_reply(b"x d6:result5:error12:error-reason12:Unknown calle").unwrap();
        let refused = check_result("answer", &error).unwrap_err();
        assert_eq!(refused.to_string(), "\"answer\" refused: Unknown call");
        assert!(matches!(
            decode_reply(b"nospace"),
            Err(NgError::Malformed(_))
        ));
        assert!(matches!(
            decode_reply(b"c d6:result"),
            Err(NgError::Bencode(_))
        ));
        let (_, empty) = decode_reply(b"c de").unwrap();
        assert!(matches!(
            check_result("ping", &empty),
            Err(NgError::Malformed(_))
        ));
    }

    #[test]
    fn client_matches_cookies_and_retries() {
        // A fake server that drops the first datagram, then answers a stale cookie before
        // the right one.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = server.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut buffer = [0u8; 1500];
            let _ = server.recv_from(&mut buffer).unwrap(); // dropped
            let (length, peer) = server.recv_from(&mut buffer).unwrap();
            let (cookie, request) = decode_reply(&buffer[..length]).unwrap();
            assert_eq!(request.get("command").and_then(Value::as_str), Some("ping"));
            let cookie = cookie.to_vec();
            server.send_to(b"stale d6:result4:ponge", peer).unwrap();
            let mut reply = cookie.clone();
            reply.extend_from_slice(b" d6:result4:ponge");
            server.send_to(&reply, peer).unwrap();
        });
        let mut client = NgClient::connect(address).unwrap();
        client.attempt_timeout = Duration::from_millis(300);
        let reply = client.request(&ping()).unwrap();
        assert_eq!(reply.get("result").and_then(Value::as_str), Some("pong"));
        handle.join().unwrap();

        // Nobody answers: a timeout naming the command.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut client = NgClient::connect(silent.local_addr().unwrap()).unwrap();
        client.attempt_timeout = Duration::from_millis(50);
        client.attempts = 2;
        let error = client.request(&ping()).unwrap_err();
        assert!(
            matches!(error, NgError::Timeout { ref command, .. } if command == "ping"),
            "{error}"
        );
    }
}
