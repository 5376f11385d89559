//! Twilio list paging: `Page`/`PageSize` in, the paging fields of a list response out.

use serde_json::{json, Value};

use crate::ApiError;

const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 1000;

/// The page a list request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u32,
    pub page_size: u32,
}

impl Paging {
    pub fn from_query(query: &[(String, String)]) -> Result<Paging, ApiError> {
        let number = |name: &str, default: u32| -> Result<u32, ApiError> {
            match query.iter().find(|(k, _)| k == name) {
                None => Ok(default),
                Some((_, v)) => v.parse::<u32>().map_err(|_| {
                    ApiError::invalid_parameter(name, "must be a non-negative integer")
                }),
            }
        };
        let page_size = number("PageSize", DEFAULT_PAGE_SIZE)?.clamp(1, MAX_PAGE_SIZE);
        let page = number("Page", 0)?;
        // Every index of the page (and the next page's number) must stay representable.
        if page
            .checked_mul(page_size)
            .and_then(|start| start.checked_add(page_size))
            .is_none()
        {
            return Err(ApiError::invalid_parameter("Page", "is too large"));
        }
        Ok(Paging { page, page_size })
    }

    /// A list response: exactly one resource key plus Twilio's paging fields (relative URIs).
    pub fn list(
        &self,
        key: &str,
        items: Vec<Value>,
        has_more: bool,
        base: &str,
        query: &[(String, String)],
    ) -> Value {
        let filters: String = query
            .iter()
            .filter(|(k, _)| k != "Page" && k != "PageSize" && k != "PageToken")
            .map(|(k, v)| format!("&{}={}", encode(k), encode(v)))
            .collect();
        let uri_for =
            |page: u32| format!("{base}?PageSize={}&Page={page}{filters}", self.page_size);
        let start = self.page * self.page_size;
        let count = items.len() as u32;
        let end = if count == 0 { start } else { start + count - 1 };
        let mut body = json!({
            "first_page_uri": uri_for(0),
            "next_page_uri": if has_more { Value::String(uri_for(self.page + 1)) } else { Value::Null },
            "previous_page_uri": if self.page > 0 { Value::String(uri_for(self.page - 1)) } else { Value::Null },
            "page": self.page,
            "page_size": self.page_size,
            "start": start,
            "end": end,
            "uri": uri_for(self.page),
        });
        if let Value::Object(map) = &mut body {
            map.insert(key.to_string(), Value::Array(items));
        }
        body
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_fields_are_relative_and_complete() {
        let q = vec![
            ("PageSize".to_string(), "2".to_string()),
            ("Page".to_string(), "1".to_string()),
            ("To".to_string(), "+1500".to_string()),
        ];
        let p = Paging::from_query(&q).unwrap();
        let v = p.list("calls", vec![json!(1), json!(2)], true, "/x/Calls.json", &q);
        assert_eq!(v["calls"], json!([1, 2]));
        assert_eq!(v["start"], 2);
        assert_eq!(v["end"], 3);
        assert_eq!(
            v["next_page_uri"],
            "/x/Calls.json?PageSize=2&Page=2&To=%2B1500"
        );
        assert_eq!(
            v["previous_page_uri"],
            "/x/Calls.json?PageSize=2&Page=0&To=%2B1500"
        );
        assert_eq!(v.as_object().unwrap().len(), 9);
    }

    #[test]
    fn huge_pages_are_an_error_not_an_overflow() {
        for (page, size) in [("4294967295", "1000"), ("100000000", "50")] {
            let q = vec![
                ("Page".to_string(), page.to_string()),
                ("PageSize".to_string(), size.to_string()),
            ];
            assert_eq!(Paging::from_query(&q).unwrap_err().code, 20001);
        }
    }

    #[test]
    fn bad_page_size_is_an_error() {
        let q = vec![("PageSize".to_string(), "x".to_string())];
        assert_eq!(Paging::from_query(&q).unwrap_err().code, 20001);
    }
}
