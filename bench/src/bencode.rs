//! Bencode, the encoding of rtpengine's NG control protocol: byte strings (`4:spam`),
//! integers (`i42e`), lists (`l…e`) and dictionaries (`d…e`, keys are byte strings written
//! in sorted order). A pure encoder and a decoder that never panics on any input.

use std::collections::BTreeMap;

/// How deep lists and dictionaries may nest before decoding gives up (NG replies nest 4–5).
const MAX_DEPTH: usize = 64;

/// One bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bytes(Vec<u8>),
    Int(i64),
    List(Vec<Value>),
    /// Keys are kept sorted, as the encoding requires.
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Why some bytes are not one bencoded value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    #[error("input ends inside a value")]
    Truncated,
    #[error("unexpected byte {byte:#04x} at offset {offset}")]
    Unexpected { byte: u8, offset: usize },
    #[error("malformed integer at offset {0}")]
    BadInteger(usize),
    #[error("malformed string length at offset {0}")]
    BadLength(usize),
    #[error("dictionary key at offset {0} is not a byte string")]
    KeyNotString(usize),
    #[error("values nest deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("{0} bytes follow the value")]
    TrailingBytes(usize),
}

impl Value {
    /// A byte-string value from text.
    pub fn str(text: &str) -> Value {
        Value::Bytes(text.as_bytes().to_vec())
    }

    /// A dictionary from (key, value) pairs.
    pub fn dict<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(
            entries
                .into_iter()
                .map(|(key, value)| (key.as_bytes().to_vec(), value))
                .collect(),
        )
    }

    /// A list of byte strings from text.
    pub fn str_list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|item| Value::str(item)).collect())
    }

    /// The value under `key`, if this is a dictionary that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries.get(key.as_bytes()),
            _ => None,
        }
    }

    /// The bytes of a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// A byte string as UTF-8 text.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
    }

    /// Appends the encoding of this value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Bytes(bytes) => {
                out.extend_from_slice(bytes.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(bytes);
            }
            Value::Int(value) => {
                out.push(b'i');
                out.extend_from_slice(value.to_string().as_bytes());
                out.push(b'e');
            }
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(entries) => {
                out.push(b'd');
                for (key, value) in entries {
                    Value::Bytes(key.clone()).encode_into(out);
                    value.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The encoding of this value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly one value spanning all of `input`.
    pub fn decode(input: &[u8]) -> Result<Value, BencodeError> {
        let mut decoder = Decoder { input, offset: 0 };
        let value = decoder.value(0)?;
        match input.len() - decoder.offset {
            0 => Ok(value),
            extra => Err(BencodeError::TrailingBytes(extra)),
        }
    }
}

struct Decoder<'a> {
    input: &'a [u8],
    offset: usize,
}

impl Decoder<'_> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.input
            .get(self.offset)
            .copied()
            .ok_or(BencodeError::Truncated)
    }

    fn value(&mut self, depth: usize) -> Result<Value, BencodeError> {
        if depth > MAX_DEPTH {
            return Err(BencodeError::TooDeep);
        }
        match self.peek()? {
            b'i' => {
                let start = self.offset;
                self.offset += 1;
                let digits = self.until(b'e')?;
                let value = parse_integer(digits).ok_or(BencodeError::BadInteger(start))?;
                Ok(Value::Int(value))
            }
            b'l' => {
                self.offset += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.offset += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.offset += 1;
                let mut entries = BTreeMap::new();
                while self.peek()? != b'e' {
                    let key_offset = self.offset;
                    let Value::Bytes(key) = self.value(depth + 1)? else {
                        return Err(BencodeError::KeyNotString(key_offset));
                    };
                    let value = self.value(depth + 1)?;
                    entries.insert(key, value);
                }
                self.offset += 1;
                Ok(Value::Dict(entries))
            }
            b'0'..=b'9' => {
                let start = self.offset;
                let digits = self.until(b':')?;
                let len = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|text| text.parse::<usize>().ok())
                    .filter(|_| digits.len() == 1 || digits.first() != Some(&b'0'))
                    .ok_or(BencodeError::BadLength(start))?;
                let end = self
                    .offset
                    .checked_add(len)
                    .ok_or(BencodeError::Truncated)?;
                let bytes = self
                    .input
                    .get(self.offset..end)
                    .ok_or(BencodeError::Truncated)?;
                self.offset = end;
                Ok(Value::Bytes(bytes.to_vec()))
            }
            byte => Err(BencodeError::Unexpected {
                byte,
                offset: self.offset,
            }),
        }
    }

    /// The bytes up to `terminator` (consumed, not returned).
    fn until(&mut self, terminator: u8) -> Result<&[u8], BencodeError> {
        let rest = self.input.get(self.offset..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|byte| *byte == terminator)
            .ok_or(BencodeError::Truncated)?;
        let bytes = rest.get(..len).unwrap_or_default();
        self.offset += len + 1;
        Ok(bytes)
    }
}

/// `-?[0-9]+` without leading zeros (and no `-0`), as bencode requires.
fn parse_integer(digits: &[u8]) -> Option<i64> {
    let magnitude = digits.strip_prefix(b"-").unwrap_or(digits);
    let canonical = match magnitude {
        [] => false,
        [b'0'] => magnitude.len() == digits.len(),
        [b'0', ..] => false,
        _ => magnitude.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_kind_with_sorted_keys() {
        let value = Value::dict([
            ("sdp", Value::str("v=0")),
            ("command", Value::str("offer")),
            ("flags", Value::str_list(&["trust-address"])),
            ("n", Value::Int(-12)),
            (
                "codec",
                Value::dict([("transcode", Value::str_list(&["PCMA"]))]),
            ),
        ]);
        assert_eq!(
            value.encode(),
            b"d5:codecd9:transcodel4:PCMAee7:command5:offer5:flagsl13:trust-addresse\
              1:ni-12e3:sdp3:v=0e"
                .to_vec()
        );
    }

    #[test]
    fn decodes_what_it_encodes() {
        let value = Value::dict([
            ("result", Value::str("ok")),
            ("empty", Value::Bytes(Vec::new())),
            ("zero", Value::Int(0)),
            ("big", Value::Int(i64::MAX)),
            (
                "nested",
                Value::List(vec![Value::List(vec![]), Value::Int(7)]),
            ),
            ("binary", Value::Bytes(vec![0, 255, b':', b'e'])),
        ]);
        assert_eq!(Value::decode(&value.encode()), Ok(value));
    }

    #[test]
    fn decodes_an_rtpengine_reply() {
        let reply = b"d3:sdp10:v=0\r\nm=x\r\n6:result2:oke";
        let value = Value::decode(reply).unwrap();
        assert_eq!(value.get("result").and_then(Value::as_str), Some("ok"));
        assert_eq!(
            value.get("sdp").and_then(Value::as_bytes),
            Some(b"v=0\r\nm=x\r\n".as_slice())
        );
        assert_eq!(value.get("missing"), None);
        assert_eq!(Value::Int(1).get("result"), None);
    }

    #[test]
    fn rejects_malformed_input_without_panicking() {
        let cases: &[(&[u8], BencodeError)] = &[
            (b"", BencodeError::Truncated),
            (b"i12", BencodeError::Truncated),
            (b"i-0e", BencodeError::BadInteger(0)),
            (b"i03e", BencodeError::BadInteger(0)),
            (b"ie", BencodeError::BadInteger(0)),
            (b"i1x2e", BencodeError::BadInteger(0)),
            (b"i99999999999999999999e", BencodeError::BadInteger(0)),
            (b"5:abc", BencodeError::Truncated),
            (b"01:a", BencodeError::BadLength(0)),
            (b"99999999999999999999999:a", BencodeError::BadLength(0)),
            (b"l1:a", BencodeError::Truncated),
            (b"di1e1:ae", BencodeError::KeyNotString(1)),
            (
                b"x",
                BencodeError::Unexpected {
                    byte: b'x',
                    offset: 0,
                },
            ),
            (b"i1ei2e", BencodeError::TrailingBytes(3)),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Value::decode(input).as_ref(),
                Err(expected),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
        let deep: Vec<u8> = std::iter::repeat_n(b'l', 100)
            .chain(std::iter::repeat_n(b'e', 100))
            .collect();
        assert_eq!(Value::decode(&deep), Err(BencodeError::TooDeep));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix and many mutations of a real message.
        let message = Value::dict([
            ("command", Value::str("answer")),
            ("flags", Value::str_list(&["trust-address", "x"])),
            ("n", Value::Int(-5)),
        ])
        .encode();
        for end in 0..=message.len() {
            let _ = Value::decode(&message[..end]);
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut mutated = message.clone();
            let index = (state % mutated.len() as u64) as usize;
            mutated[index] = (state >> 32) as u8;
            let _ = Value::decode(&mutated);
        }
    }
}
