//! Response formats chosen by the path's extension: `.json` (the default), `.xml` (Twilio's
//! `<TwilioResponse>` envelope with PascalCase elements) and `.csv` (one row per resource).

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// A representation the API can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
    Csv,
}

impl Format {
    /// Splits a resource segment: `CA1.json` → (`CA1`, Json). `None` without a known extension.
    pub fn split(segment: &str) -> Option<(&str, Format)> {
        let (stem, ext) = segment.rsplit_once('.')?;
        let format = match ext {
            "json" => Format::Json,
            "xml" => Format::Xml,
            "csv" => Format::Csv,
            _ => return None,
        };
        (!stem.is_empty()).then_some((stem, format))
    }

    /// The format of a request path, from its last segment's extension (JSON by default).
    pub fn of_path(path: &str) -> Format {
        let last = path.rsplit('/').next().unwrap_or(path);
        Format::split(last).map_or(Format::Json, |(_, f)| f)
    }

    /// The extensions every routed resource is served with.
    pub const EXTENSIONS: [&'static str; 3] = ["json", "xml", "csv"];
}

/// A successful API answer, rendered in the requested format.
#[derive(Debug, Clone)]
pub struct Reply {
    status: StatusCode,
    format: Format,
    shape: Shape,
}

#[derive(Debug, Clone)]
enum Shape {
    /// One resource: `tag` names its XML element (`Call`).
    One { tag: &'static str, value: Value },
    /// A Twilio list: `key` is the JSON key (`calls`), `list_tag`/`item_tag` the XML elements.
    List {
        key: &'static str,
        list_tag: &'static str,
        item_tag: &'static str,
        value: Value,
    },
    /// 204, empty body (deletes).
    Empty,
}

impl Reply {
    pub fn one(format: Format, tag: &'static str, value: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            format,
            shape: Shape::One { tag, value },
        }
    }

    /// Like [`Reply::one`] with status 201 (creates).
    pub fn created(format: Format, tag: &'static str, value: Value) -> Reply {
        Reply {
            status: StatusCode::CREATED,
            ..Reply::one(format, tag, value)
        }
    }

    /// A list response built by `Paging::list` (`value[key]` holds the items).
    pub fn list(
        format: Format,
        key: &'static str,
        list_tag: &'static str,
        item_tag: &'static str,
        value: Value,
    ) -> Reply {
        Reply {
            status: StatusCode::OK,
            format,
            shape: Shape::List {
                key,
                list_tag,
                item_tag,
                value,
            },
        }
    }

    pub fn deleted() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            format: Format::Json,
            shape: Shape::Empty,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let (body, content_type) = match (&self.shape, self.format) {
            (Shape::Empty, _) => return self.status.into_response(),
            (Shape::One { value, .. }, Format::Json)
            | (Shape::List { value, .. }, Format::Json) => (value.to_string(), "application/json"),
            (Shape::One { tag, value }, Format::Xml) => {
                (xml_document(tag, value), "application/xml")
            }
            (
                Shape::List {
                    key,
                    list_tag,
                    item_tag,
                    value,
                },
                Format::Xml,
            ) => (xml_list(value, key, list_tag, item_tag), "application/xml"),
            (Shape::One { value, .. }, Format::Csv) => {
                (csv(std::slice::from_ref(value)), "text/csv")
            }
            (Shape::List { key, value, .. }, Format::Csv) => {
                let items = value
                    .get(*key)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                (csv(&items), "text/csv")
            }
        };
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

const XML_PROLOG: &str = "<?xml version='1.0' encoding='UTF-8'?>\n";

/// `<?xml …?><TwilioResponse><tag>…</tag></TwilioResponse>`.
pub fn xml_document(tag: &str, value: &Value) -> String {
    let mut out = String::from(XML_PROLOG);
    out.push_str("<TwilioResponse>");
    element(&mut out, tag, value);
    out.push_str("</TwilioResponse>");
    out
}

/// `account_sid` → `AccountSid`.
fn pascal(key: &str) -> String {
    key.split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

pub(crate) fn escape_xml(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
}

/// Writes `<tag>value</tag>`: objects become nested PascalCase elements, nulls empty elements.
fn element(out: &mut String, tag: &str, value: &Value) {
    match value {
        Value::Null => {
            out.push('<');
            out.push_str(tag);
            out.push_str("/>");
        }
        _ => {
            out.push('<');
            out.push_str(tag);
            out.push('>');
            content(out, value);
            out.push_str("</");
            out.push_str(tag);
            out.push('>');
        }
    }
}

fn content(out: &mut String, value: &Value) {
    match value {
        Value::Null => {}
        Value::String(s) => escape_xml(s, out),
        Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
        Value::Object(map) => object_elements(out, map),
        Value::Array(items) => {
            for item in items {
                element(out, "Item", item);
            }
        }
    }
}

fn object_elements(out: &mut String, map: &Map<String, Value>) {
    for (k, v) in map {
        element(out, &pascal(k), v);
    }
}

/// `<TwilioResponse><Calls page="0" …><Call>…</Call></Calls></TwilioResponse>`.
fn xml_list(value: &Value, key: &str, list_tag: &str, item_tag: &str) -> String {
    let mut out = String::from(XML_PROLOG);
    out.push_str("<TwilioResponse><");
    out.push_str(list_tag);
    for (attribute, field) in [
        ("page", "page"),
        ("pagesize", "page_size"),
        ("start", "start"),
        ("end", "end"),
        ("uri", "uri"),
        ("firstpageuri", "first_page_uri"),
        ("nextpageuri", "next_page_uri"),
        ("previouspageuri", "previous_page_uri"),
    ] {
        let text = match value.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        out.push(' ');
        out.push_str(attribute);
        out.push_str("=\"");
        escape_xml(&text, &mut out);
        out.push('"');
    }
    out.push('>');
    if let Some(items) = value.get(key).and_then(Value::as_array) {
        for item in items {
            element(&mut out, item_tag, item);
        }
    }
    out.push_str("</");
    out.push_str(list_tag);
    out.push_str("></TwilioResponse>");
    out
}

/// A header row of PascalCase field names (from the first item), then one row per item;
/// nested objects are written as JSON.
fn csv(items: &[Value]) -> String {
    let Some(Value::Object(first)) = items.first() else {
        return String::new();
    };
    let keys: Vec<&String> = first.keys().collect();
    let mut out = keys
        .iter()
        .map(|k| csv_field(&pascal(k)))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    for item in items {
        let row = keys
            .iter()
            .map(|k| match item.get(k.as_str()) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => csv_field(s),
                Some(other) => csv_field(&other.to_string()),
            })
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&row);
        out.push_str("\r\n");
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extensions_split() {
        assert_eq!(Format::split("CA1.json"), Some(("CA1", Format::Json)));
        assert_eq!(Format::split("CA1.xml"), Some(("CA1", Format::Xml)));
        assert_eq!(Format::split("CA1.csv"), Some(("CA1", Format::Csv)));
        assert_eq!(Format::split("CA1.txt"), None);
        assert_eq!(Format::split("CA1"), None);
        assert_eq!(Format::split(".json"), None);
        assert_eq!(
            Format::of_path("/2010-04-01/Accounts/AC1/Calls.xml"),
            Format::Xml
        );
        assert_eq!(
            Format::of_path("/2010-04-01/Accounts/AC1/Calls"),
            Format::Json
        );
    }

    #[test]
    fn xml_envelope_escapes_and_nests() {
        let mut out = String::new();
        element(
            &mut out,
            "Call",
            &json!({"account_sid": "AC<1>", "end_time": null, "subresource_uris": {"notifications": "/n"}}),
        );
        assert_eq!(
            out,
            "<Call><AccountSid>AC&lt;1&gt;</AccountSid><EndTime/>\
             <SubresourceUris><Notifications>/n</Notifications></SubresourceUris></Call>"
        );
    }

    #[test]
    fn xml_list_carries_paging_attributes() {
        let value = json!({"calls": [{"sid": "CA1"}], "page": 0, "page_size": 50, "start": 0,
            "end": 0, "uri": "/u?a=1&b=2", "first_page_uri": "/f", "next_page_uri": null,
            "previous_page_uri": null});
        let xml = xml_list(&value, "calls", "Calls", "Call");
        assert!(
            xml.contains(
                "<Calls page=\"0\" pagesize=\"50\" start=\"0\" end=\"0\" uri=\"/u?a=1&amp;b=2\""
            ),
            "{xml}"
        );
        assert!(xml.contains("nextpageuri=\"\""), "{xml}");
        assert!(
            xml.ends_with("<Call><Sid>CA1</Sid></Call></Calls></TwilioResponse>"),
            "{xml}"
        );
    }

    #[test]
    fn csv_quotes_fields() {
        let text = csv(&[json!({"sid": "CA1", "friendly_name": "a, \"b\"", "duration": null})]);
        // serde_json maps are sorted by key.
        assert_eq!(
            text,
            "Duration,FriendlyName,Sid\r\n,\"a, \"\"b\"\"\",CA1\r\n"
        );
        assert_eq!(csv(&[]), "");
    }
}
