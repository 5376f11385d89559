//! The ordered header list of a SIP message: raw values in arrival order,
//! case-insensitive lookup, compact forms (RFC 3261 §7.3.3) mapped to their
//! full names, and typed accessors for the headers the endpoint relies on.

use super::values::{split_comma_list, CSeq, NameAddr, Via};
use super::ParseError;

/// One header line (after unfolding): its name and raw, trimmed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Headers in the order they appeared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<Header>,
}

/// Compact header forms and the full names they stand for.
const COMPACT_FORMS: &[(&str, &str)] = &[
    ("v", "Via"),
    ("f", "From"),
    ("t", "To"),
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("k", "Supported"),
    ("s", "Subject"),
    ("e", "Content-Encoding"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("u", "Allow-Events"),
    ("x", "Session-Expires"),
];

/// Maps a compact form to its full name; other names are returned unchanged.
pub fn canonical_name(name: &str) -> &str {
    if name.len() == 1 {
        for (compact, full) in COMPACT_FORMS {
            if compact.eq_ignore_ascii_case(name) {
                return full;
            }
        }
    }
    name
}

fn same_name(stored: &str, wanted: &str) -> bool {
    stored.eq_ignore_ascii_case(canonical_name(wanted))
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a header, mapping a compact name to its full form.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let name = match canonical_name(&name) {
            full if full.len() != name.len() => full.to_owned(),
            _ => name,
        };
        self.entries.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Replaces every header of this name with one value (appended at the
    /// position of the first one removed, or at the end).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let position = self.entries.iter().position(|h| same_name(&h.name, name));
        self.remove(name);
        let header = Header {
            name: canonical_name(name).to_owned(),
            value: value.into(),
        };
        match position {
            Some(index) if index <= self.entries.len() => self.entries.insert(index, header),
            _ => self.entries.push(header),
        }
    }

    /// Removes every header of this name.
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|h| !same_name(&h.name, name));
    }

    /// The first value of a header (case-insensitive; compact forms accepted).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|h| same_name(&h.name, name))
            .map(|h| h.value.as_str())
    }

    /// Every value of a header, in order (one per header line).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |h| same_name(&h.name, name))
            .map(|h| h.value.as_str())
    }

    /// Every element of a comma-separated list header across all its lines.
    pub fn list_elements(&self, name: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|h| same_name(&h.name, name))
            .flat_map(|h| split_comma_list(&h.value))
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All headers as owned `(name, value)` pairs.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect()
    }

    /// The topmost Via (the first element of the first Via header).
    pub fn top_via(&self) -> Result<Via, ParseError> {
        let first = self
            .list_elements("Via")
            .into_iter()
            .next()
            .ok_or(ParseError::MissingHeader("Via"))?;
        Via::parse(first)
    }

    /// Every Via element, top first, as raw text.
    pub fn vias(&self) -> Vec<&str> {
        self.list_elements("Via")
    }

    pub fn from(&self) -> Result<NameAddr, ParseError> {
        let value = self.get("From").ok_or(ParseError::MissingHeader("From"))?;
        NameAddr::parse(value).map_err(|_| ParseError::InvalidHeader("From"))
    }

    pub fn to(&self) -> Result<NameAddr, ParseError> {
        let value = self.get("To").ok_or(ParseError::MissingHeader("To"))?;
        NameAddr::parse(value).map_err(|_| ParseError::InvalidHeader("To"))
    }

    pub fn call_id(&self) -> Option<&str> {
        self.get("Call-ID").filter(|value| !value.is_empty())
    }

    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        let value = self.get("CSeq").ok_or(ParseError::MissingHeader("CSeq"))?;
        CSeq::parse(value)
    }

    /// The first Contact, unless it is `*` or unparsable.
    pub fn contact(&self) -> Option<NameAddr> {
        let first = self.list_elements("Contact").into_iter().next()?;
        if first.trim() == "*" {
            return None;
        }
        NameAddr::parse(first).ok()
    }

    /// The media type without parameters, e.g. `application/sdp`.
    pub fn content_type(&self) -> Option<&str> {
        let value = self.get("Content-Type")?;
        let media_type = value.split(';').next().unwrap_or(value).trim();
        (!media_type.is_empty()).then_some(media_type)
    }

    pub fn max_forwards(&self) -> Option<u32> {
        self.get("Max-Forwards")?.trim().parse().ok()
    }

    /// Every Record-Route element in order, as raw name-addr text.
    pub fn record_route(&self) -> Vec<String> {
        self.list_elements("Record-Route")
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_understands_compact_forms() {
        let mut headers = Headers::new();
        headers.push("v", "SIP/2.0/UDP a;branch=z9hG4bK1");
        headers.push("CALL-id", "abc");
        headers.push("X-Custom", "1");
        headers.push("x-custom", "2");
        assert_eq!(headers.get("Via"), Some("SIP/2.0/UDP a;branch=z9hG4bK1"));
        assert_eq!(headers.get("v"), Some("SIP/2.0/UDP a;branch=z9hG4bK1"));
        assert_eq!(headers.iter().next().map(|h| h.name.as_str()), Some("Via"));
        assert_eq!(headers.call_id(), Some("abc"));
        assert_eq!(headers.get("i"), Some("abc"));
        assert_eq!(
            headers.get_all("X-CUSTOM").collect::<Vec<_>>(),
            vec!["1", "2"]
        );
        headers.set("x-custom", "3");
        assert_eq!(headers.get_all("X-Custom").collect::<Vec<_>>(), vec!["3"]);
        assert_eq!(headers.len(), 3);
        headers.remove("via");
        assert!(!headers.contains("v"));
    }

    #[test]
    fn list_elements_split_across_lines_and_commas() {
        let mut headers = Headers::new();
        headers.push("Record-Route", "<sip:p1;lr>, \"a,b\" <sip:p2;lr>");
        headers.push("Record-Route", "<sip:p3;lr>");
        assert_eq!(
            headers.record_route(),
            vec!["<sip:p1;lr>", "\"a,b\" <sip:p2;lr>", "<sip:p3;lr>"]
        );
    }
}
