//! Well-formedness layer: turns a TwiML body into a small element tree with
//! entities decoded and CDATA merged into text. Every failure here is a
//! Twilio 12100 "Document parse failure"; TwiML semantics live in `voice` and
//! `messaging`.

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::error::TwimlError;

/// Deepest element nesting accepted. Real TwiML is at most five levels deep
/// (Response > Gather > Say > SSML > SSML); the cap keeps hostile documents
/// from building trees whose recursive drop would exhaust the stack.
const MAX_DEPTH: usize = 64;

/// One XML element with its decoded attributes and children in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Node>,
}

/// A child of an element: a nested element or a run of character data
/// (adjacent text, CDATA and entity references are merged into one run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    /// The value of attribute `name`, if present (names are case-sensitive, as in Twilio).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Child elements, skipping text.
    pub fn child_elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            Node::Text(_) => None,
        })
    }

    /// All direct text of this element concatenated (child elements skipped).
    pub fn direct_text(&self) -> String {
        let mut text = String::new();
        for node in &self.children {
            if let Node::Text(run) = node {
                text.push_str(run);
            }
        }
        text
    }
}

/// Parses `xml` into its root element. Accepts an XML declaration, comments,
/// processing instructions, a DOCTYPE and whitespace around the root.
pub(crate) fn parse_document(xml: &str) -> Result<Element, TwimlError> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let mut reader = Reader::from_str(xml);
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;

    loop {
        let event = reader.read_event().map_err(|err| {
            TwimlError::parse(format!("{err} at byte {}", reader.error_position()))
        })?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(TwimlError::parse("content after the root element"));
                }
                if open.len() >= MAX_DEPTH {
                    return Err(TwimlError::parse(format!(
                        "elements nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                open.push(element_from_start(&start)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(TwimlError::parse("content after the root element"));
                }
                let element = element_from_start(&start)?;
                close_element(&mut open, &mut root, element);
            }
            Event::End(_) => {
                // quick-xml has already checked that the name matches.
                let Some(element) = open.pop() else {
                    return Err(TwimlError::parse("closing tag without an opening tag"));
                };
                close_element(&mut open, &mut root, element);
            }
            Event::Text(text) => {
                let content = text.xml10_content();
                push_text(&mut open, &content)?;
            }
            Event::CData(cdata) => {
                let content = cdata.xml10_content();
                if open.is_empty() {
                    return Err(TwimlError::parse("CDATA outside the root element"));
                }
                push_text(&mut open, &content)?;
            }
            Event::GeneralRef(reference) => {
                let decoded = decode_reference(&reference)?;
                if open.is_empty() {
                    return Err(TwimlError::parse(
                        "entity reference outside the root element",
                    ));
                }
                push_text(&mut open, decoded.encode_utf8(&mut [0u8; 4]))?;
            }
            Event::Decl(_) => {
                if root.is_some() || !open.is_empty() {
                    return Err(TwimlError::parse(
                        "XML declaration after the document start",
                    ));
                }
            }
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }

    if let Some(unclosed) = open.last() {
        return Err(TwimlError::parse(format!(
            "element <{}> is never closed",
            unclosed.name
        )));
    }
    root.ok_or_else(|| TwimlError::parse("document has no root element"))
}

/// Builds an element (without children) from a start tag, decoding attributes.
fn element_from_start(start: &BytesStart<'_>) -> Result<Element, TwimlError> {
    let name = start.name().as_ref().to_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute: Attribute<'_> = attribute
            .map_err(|err| TwimlError::parse(format!("bad attribute in <{name}>: {err}")))?;
        let key = attribute.key.as_ref().to_owned();
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| {
                TwimlError::parse(format!("bad value for attribute {key} of <{name}>: {err}"))
            })?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(Element {
        name,
        attributes,
        children: Vec::new(),
    })
}

/// Attaches a finished element to its parent, or makes it the root.
fn close_element(open: &mut [Element], root: &mut Option<Element>, element: Element) {
    match open.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

/// Appends character data to the innermost open element, merging with a
/// preceding text run. Outside the root only whitespace is allowed.
fn push_text(open: &mut [Element], content: &str) -> Result<(), TwimlError> {
    let Some(parent) = open.last_mut() else {
        if content.chars().all(char::is_whitespace) {
            return Ok(());
        }
        return Err(TwimlError::parse("text outside the root element"));
    };
    if let Some(Node::Text(run)) = parent.children.last_mut() {
        run.push_str(content);
    } else {
        parent.children.push(Node::Text(content.to_owned()));
    }
    Ok(())
}

/// Decodes `&name;` / `&#N;` / `&#xN;`. Only the five predefined XML entities
/// exist in TwiML (no DTD expansion).
fn decode_reference(reference: &BytesRef<'_>) -> Result<char, TwimlError> {
    match reference
        .resolve_char_ref()
        .map_err(|err| TwimlError::parse(format!("bad character reference: {err}")))?
    {
        Some(character) => Ok(character),
        None => match &**reference {
            "lt" => Ok('<'),
            "gt" => Ok('>'),
            "amp" => Ok('&'),
            "apos" => Ok('\''),
            "quot" => Ok('"'),
            other => Err(TwimlError::parse(format!("unknown entity &{other};"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_cdata_and_text_merge_into_one_run() {
        let root =
            parse_document("<R>a &amp; b &#65;&#x42; <![CDATA[<x> & y]]> &lt;z&gt;</R>").unwrap();
        assert_eq!(
            root.children,
            vec![Node::Text("a & b AB <x> & y <z>".into())]
        );
    }

    #[test]
    fn attributes_are_decoded() {
        let root = parse_document(r#"<R a="x &amp; y" b='&#49;'/>"#).unwrap();
        assert_eq!(root.attribute("a"), Some("x & y"));
        assert_eq!(root.attribute("b"), Some("1"));
        assert_eq!(root.attribute("c"), None);
    }

    #[test]
    fn prolog_and_epilog_are_accepted() {
        let xml = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- hi -->\n<R><!-- in --></R>\n<!-- after -->\n";
        let root = parse_document(xml).unwrap();
        assert_eq!(root.name, "R");
    }

    #[test]
    fn malformed_documents_are_parse_failures() {
        for xml in [
            "",
            "   ",
            "plain text",
            "<R>",
            "<R></S>",
            "<R></R><R/>",
            "<R></R>trailing",
            "<R>&bogus;</R>",
            "<R a=\"1\" a=\"2\"/>",
            "<R a/>",
            "<R>&#0;</R>",
        ] {
            let err = parse_document(xml).unwrap_err();
            assert_eq!(err.code(), 12100, "{xml:?} gave {err:?}");
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let xml = "<a>".repeat(100_000);
        assert_eq!(parse_document(&xml).unwrap_err().code(), 12100);
        let ok = format!("{}{}", "<a>".repeat(10), "</a>".repeat(10));
        assert!(parse_document(&ok).is_ok());
    }
}
