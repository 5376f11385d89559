//! Twilio list paging: `Page`, `PageSize` and `PageToken` in, the paging fields of a list
//! response out.
//!
//! The SDKs follow `next_page_uri` verbatim, so it carries a `PageToken` naming the last item
//! of the page: the next page is read by keyset (the items after that one in list order),
//! which neither skips nor repeats items when records are added or removed between requests.
//! `previous_page_uri` carries a token naming the first item (the items before it). Without
//! a token, `Page` × `PageSize` is an offset. A token is `PA` (after) or `PB` (before)
//! followed by the unpadded base64url of `<date_created ms>.<sid>`; anything else is a 400.

use base64::Engine;
use serde_json::{json, Value};
use store::{Page, PageRequest, PageStart, SortKey};

use crate::ApiError;

const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 1000;
/// Longest SID a token may name (ours are 34 characters).
const MAX_TOKEN_SID: usize = 64;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A record that can be listed: where it sits in its list.
pub trait Listed {
    fn sort_key(&self) -> SortKey;
}

impl Listed for store::CallRecord {
    fn sort_key(&self) -> SortKey {
        key(self.date_created, &self.sid)
    }
}

impl Listed for store::Notification {
    fn sort_key(&self) -> SortKey {
        key(self.date_created, &self.sid)
    }
}

impl Listed for store::IncomingNumber {
    fn sort_key(&self) -> SortKey {
        key(self.date_created, &self.sid)
    }
}

impl Listed for store::AccountDetails {
    fn sort_key(&self) -> SortKey {
        key(self.account.date_created, &self.account.sid)
    }
}

impl Listed for store::ApiKey {
    fn sort_key(&self) -> SortKey {
        key(self.date_created, &self.sid)
    }
}

impl Listed for store::Recording {
    fn sort_key(&self) -> SortKey {
        key(self.date_created, &self.sid)
    }
}

impl Listed for store::CallerId {
    fn sort_key(&self) -> SortKey {
        key(self.date_created, &self.sid)
    }
}

fn key(date_created: i64, sid: &str) -> SortKey {
    SortKey {
        date_created,
        sid: sid.to_string(),
    }
}

/// A `PageToken`: the item a page starts after (`PA…`) or ends before (`PB…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageToken {
    After(SortKey),
    Before(SortKey),
}

impl PageToken {
    pub fn parse(text: &str) -> Option<PageToken> {
        let (after, body) = match (text.strip_prefix("PA"), text.strip_prefix("PB")) {
            (Some(body), _) => (true, body),
            (None, Some(body)) => (false, body),
            (None, None) => return None,
        };
        let decoded = BASE64.decode(body).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (ms, sid) = decoded.split_once('.')?;
        let valid_sid = !sid.is_empty()
            && sid.len() <= MAX_TOKEN_SID
            && sid.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid_sid {
            return None;
        }
        let key = key(ms.parse().ok()?, sid);
        Some(if after {
            PageToken::After(key)
        } else {
            PageToken::Before(key)
        })
    }

    fn render(&self) -> String {
        let (prefix, key) = match self {
            PageToken::After(key) => ("PA", key),
            PageToken::Before(key) => ("PB", key),
        };
        let body = format!("{}.{}", key.date_created, key.sid);
        format!("{prefix}{}", BASE64.encode(body))
    }
}

/// The page a list request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub page: u32,
    pub page_size: u32,
    pub token: Option<PageToken>,
}

impl Paging {
    pub fn from_query(query: &[(String, String)]) -> Result<Paging, ApiError> {
        let value = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let number = |name: &str, default: u32| -> Result<u32, ApiError> {
            match value(name) {
                None => Ok(default),
                Some(v) => v.parse::<u32>().map_err(|_| {
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
        let token = match value("PageToken") {
            None => None,
            Some(text) => Some(
                PageToken::parse(text)
                    .ok_or_else(|| ApiError::invalid_parameter("PageToken", "is not valid"))?,
            ),
        };
        Ok(Paging {
            page,
            page_size,
            token,
        })
    }

    /// What to ask the store for.
    pub fn request(&self) -> PageRequest {
        match &self.token {
            None => PageRequest::offset(self.page, self.page_size),
            Some(PageToken::After(key)) => PageRequest {
                start: PageStart::After(key.clone()),
                size: self.page_size,
            },
            Some(PageToken::Before(key)) => PageRequest {
                start: PageStart::Before(key.clone()),
                size: self.page_size,
            },
        }
    }

    /// A list response: exactly one resource key (`key`, the items rendered by `render`)
    /// plus Twilio's paging fields, with relative URIs under `base` keeping the request's
    /// filters.
    pub fn list<T: Listed>(
        &self,
        key: &str,
        page: &Page<T>,
        render: impl Fn(&T) -> Value,
        base: &str,
        query: &[(String, String)],
    ) -> Value {
        let filters: String = query
            .iter()
            .filter(|(k, _)| k != "Page" && k != "PageSize" && k != "PageToken")
            .map(|(k, v)| format!("&{}={}", encode(k), encode(v)))
            .collect();
        let uri_for = |page: u32, token: Option<&PageToken>| {
            let token = token
                .map(|t| format!("&PageToken={}", t.render()))
                .unwrap_or_default();
            format!(
                "{base}?PageSize={}&Page={page}{token}{filters}",
                self.page_size
            )
        };
        // `has_more` looks in the direction the page was read: backwards for a `PB` token.
        let reads_backwards = matches!(self.token, Some(PageToken::Before(_)));
        let more_after = if reads_backwards { true } else { page.has_more };
        let more_before = match &self.token {
            Some(PageToken::Before(_)) => page.has_more,
            _ => self.page > 0,
        };
        let first = page.items.first().map(Listed::sort_key);
        let last = page.items.last().map(Listed::sort_key);
        let next = match last {
            Some(last) if more_after => Value::String(uri_for(
                self.page.saturating_add(1),
                Some(&PageToken::After(last)),
            )),
            _ => Value::Null,
        };
        let previous = match (self.page.checked_sub(1), more_before) {
            (Some(previous), true) => {
                Value::String(uri_for(previous, first.map(PageToken::Before).as_ref()))
            }
            _ => Value::Null,
        };
        let start = self.page * self.page_size;
        let count = page.items.len() as u32;
        let end = if count == 0 { start } else { start + count - 1 };
        let mut body = json!({
            "first_page_uri": uri_for(0, None),
            "next_page_uri": next,
            "previous_page_uri": previous,
            "page": self.page,
            "page_size": self.page_size,
            "start": start,
            "end": end,
            "uri": uri_for(self.page, self.token.as_ref()),
        });
        if let Value::Object(map) = &mut body {
            map.insert(
                key.to_string(),
                Value::Array(page.items.iter().map(render).collect()),
            );
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

    struct Item(i64, &'static str);

    impl Listed for Item {
        fn sort_key(&self) -> SortKey {
            key(self.0, self.1)
        }
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn page(items: Vec<Item>, has_more: bool) -> Page<Item> {
        Page { items, has_more }
    }

    fn render(item: &Item) -> Value {
        json!(item.1)
    }

    /// The query pairs of a relative URI.
    fn pairs(uri: &Value) -> Vec<(String, String)> {
        let text = uri.as_str().unwrap();
        let (_, query) = text.split_once('?').unwrap();
        query
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn paging_fields_are_relative_and_complete() {
        let q = query(&[("PageSize", "2"), ("Page", "1"), ("To", "+1500")]);
        let p = Paging::from_query(&q).unwrap();
        let v = p.list(
            "calls",
            &page(vec![Item(7, "CA7"), Item(6, "CA6")], true),
            render,
            "/x/Calls.json",
            &q,
        );
        assert_eq!(v["calls"], json!(["CA7", "CA6"]));
        assert_eq!(v["start"], 2);
        assert_eq!(v["end"], 3);
        assert_eq!(
            v["first_page_uri"],
            "/x/Calls.json?PageSize=2&Page=0&To=%2B1500"
        );
        assert_eq!(v["uri"], "/x/Calls.json?PageSize=2&Page=1&To=%2B1500");
        let next = v["next_page_uri"].as_str().unwrap();
        assert!(
            next.starts_with("/x/Calls.json?PageSize=2&Page=2&PageToken=PA")
                && next.ends_with("&To=%2B1500"),
            "{next}"
        );
        let previous = v["previous_page_uri"].as_str().unwrap();
        assert!(
            previous.starts_with("/x/Calls.json?PageSize=2&Page=0&PageToken=PB"),
            "{previous}"
        );
        assert_eq!(v.as_object().unwrap().len(), 9);
    }

    #[test]
    fn next_page_token_names_the_last_item() {
        let q = query(&[("PageSize", "2")]);
        let p = Paging::from_query(&q).unwrap();
        let v = p.list(
            "keys",
            &page(vec![Item(1, "SK1"), Item(2, "SK2")], true),
            render,
            "/k",
            &q,
        );
        assert!(v["previous_page_uri"].is_null());
        // Following next_page_uri verbatim asks the store for the items after SK2.
        let next = Paging::from_query(&pairs(&v["next_page_uri"])).unwrap();
        assert_eq!(next.page, 1);
        assert_eq!(
            next.request(),
            PageRequest {
                start: PageStart::After(key(2, "SK2")),
                size: 2
            }
        );
        // And that page's previous_page_uri asks for the items before its first one.
        let v = next.list("keys", &page(vec![Item(3, "SK3")], false), render, "/k", &q);
        assert!(v["next_page_uri"].is_null());
        let previous = Paging::from_query(&pairs(&v["previous_page_uri"])).unwrap();
        assert_eq!(previous.page, 0);
        assert_eq!(previous.request().start, PageStart::Before(key(3, "SK3")));
    }

    #[test]
    fn a_page_read_backwards_always_has_a_next_page() {
        let q = query(&[("PageSize", "1"), ("Page", "3")]);
        let mut p = Paging::from_query(&q).unwrap();
        p.token = Some(PageToken::Before(key(5, "CA5")));
        let v = p.list(
            "calls",
            &page(vec![Item(6, "CA6")], false),
            render,
            "/c",
            &q,
        );
        assert!(v["previous_page_uri"].is_null(), "nothing before: {v}");
        let next = Paging::from_query(&pairs(&v["next_page_uri"])).unwrap();
        assert_eq!(next.page, 4);
        assert_eq!(next.token, Some(PageToken::After(key(6, "CA6"))));
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_rejected() {
        for token in [
            PageToken::After(key(1_776_158_802_000, "CAabc")),
            PageToken::Before(key(-5, "PN1")),
        ] {
            assert_eq!(PageToken::parse(&token.render()), Some(token));
        }
        let bad_sid = format!("PA{}", BASE64.encode("1.CA/../x"));
        let bad_time = format!("PA{}", BASE64.encode("x.CA1"));
        let too_long = format!("PA{}", BASE64.encode(format!("1.{}", "a".repeat(65))));
        for text in [
            "",
            "PA",
            "XX",
            "PA!!!",
            bad_sid.as_str(),
            bad_time.as_str(),
            too_long.as_str(),
        ] {
            assert_eq!(PageToken::parse(text), None, "{text:?}");
            let q = query(&[("PageToken", text)]);
            let e = Paging::from_query(&q).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (400, 20001));
        }
    }

    #[test]
    fn huge_pages_are_an_error_not_an_overflow() {
        for (page, size) in [("4294967295", "1000"), ("100000000", "50")] {
            let q = query(&[("Page", page), ("PageSize", size)]);
            assert_eq!(Paging::from_query(&q).unwrap_err().code, 20001);
        }
    }

    #[test]
    fn bad_page_size_is_an_error() {
        let q = query(&[("PageSize", "x")]);
        assert_eq!(Paging::from_query(&q).unwrap_err().code, 20001);
    }
}
