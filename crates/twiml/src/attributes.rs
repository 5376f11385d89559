//! Typed access to TwiML attributes with Twilio's defaults and validation:
//! numbers, booleans, HTTP methods and keyword enums that Twilio would reject
//! become 12200 errors; attributes nobody asked for become warnings.

use crate::dom::Element;
use crate::error::{TwimlError, TwimlWarning};
use crate::voice::HttpMethod;

/// Reads the attributes of one element and remembers which names were
/// consulted, so that the rest can be reported as unknown.
pub(crate) struct AttributeReader<'a> {
    element: &'a Element,
    consulted: Vec<&'static str>,
}

impl<'a> AttributeReader<'a> {
    pub fn new(element: &'a Element) -> Self {
        AttributeReader {
            element,
            consulted: Vec::new(),
        }
    }

    /// The trimmed value, `Some("")` when present but empty.
    pub fn raw(&mut self, name: &'static str) -> Option<&'a str> {
        self.consulted.push(name);
        self.element.attribute(name).map(str::trim)
    }

    /// A free-form value; absent or empty gives `None`.
    pub fn string(&mut self, name: &'static str) -> Option<String> {
        self.raw(name)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    }

    /// A free-form value with a default for absent or empty.
    pub fn string_or(&mut self, name: &'static str, default: &str) -> String {
        self.string(name).unwrap_or_else(|| default.to_owned())
    }

    /// A non-negative integer.
    pub fn u32_or(&mut self, name: &'static str, default: u32) -> Result<u32, TwimlError> {
        Ok(self.optional_u32(name)?.unwrap_or(default))
    }

    /// A non-negative integer that has no default.
    pub fn optional_u32(&mut self, name: &'static str) -> Result<Option<u32>, TwimlError> {
        match self.raw(name) {
            None => Ok(None),
            Some(value) => parse_u32(value)
                .map(Some)
                .ok_or_else(|| self.invalid(name, value, "a non-negative integer")),
        }
    }

    /// `true` / `false`, case-insensitive.
    pub fn bool_or(&mut self, name: &'static str, default: bool) -> Result<bool, TwimlError> {
        self.keyword_or(name, default, |value| match value {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
    }

    /// `GET` / `POST`, case-insensitive.
    pub fn method_or(
        &mut self,
        name: &'static str,
        default: HttpMethod,
    ) -> Result<HttpMethod, TwimlError> {
        self.keyword_or(name, default, |value| match value {
            "get" => Some(HttpMethod::Get),
            "post" => Some(HttpMethod::Post),
            _ => None,
        })
    }

    /// A keyword from a closed set; `parse` receives the lower-cased value.
    pub fn keyword_or<T>(
        &mut self,
        name: &'static str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, TwimlError> {
        match self.raw(name) {
            None => Ok(default),
            Some(value) => parse(&value.to_ascii_lowercase())
                .ok_or_else(|| self.invalid(name, value, "a known keyword")),
        }
    }

    /// A space-separated list of keywords (e.g. `statusCallbackEvent`);
    /// absent or empty gives `default`.
    pub fn keyword_list_or<T>(
        &mut self,
        name: &'static str,
        default: Vec<T>,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, TwimlError> {
        let Some(value) = self.raw(name).filter(|value| !value.is_empty()) else {
            return Ok(default);
        };
        value
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|item| !item.is_empty())
            .map(|item| {
                parse(&item.to_ascii_lowercase())
                    .ok_or_else(|| self.invalid(name, item, "a list of known keywords"))
            })
            .collect()
    }

    /// The 12200 error for a bad value.
    pub fn invalid(&self, name: &str, value: &str, expected: &str) -> TwimlError {
        TwimlError::schema(
            self.element.name.clone(),
            format!("attribute {name}={value:?} is not {expected}"),
        )
    }

    /// Reports every attribute that was never consulted (Twilio ignores them
    /// with a warning). Namespace declarations are not reported.
    pub fn finish(self, warnings: &mut Vec<TwimlWarning>) {
        for (name, _) in &self.element.attributes {
            let is_namespace =
                name == "xmlns" || name.starts_with("xmlns:") || name.starts_with("xml:");
            if !is_namespace && !self.consulted.contains(&name.as_str()) {
                warnings.push(TwimlWarning {
                    element: self.element.name.clone(),
                    detail: format!("unknown attribute {name} ignored"),
                });
            }
        }
    }
}

/// Parses a decimal non-negative integer (an optional leading `+` is allowed).
fn parse_u32(value: &str) -> Option<u32> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u32_parsing_rejects_signs_fractions_and_overflow() {
        assert_eq!(parse_u32("0"), Some(0));
        assert_eq!(parse_u32("+7"), Some(7));
        assert_eq!(parse_u32("4294967295"), Some(u32::MAX));
        for bad in ["", "-1", "1.5", "abc", "4294967296", "+", "1e3", " 1"] {
            assert_eq!(parse_u32(bad), None, "{bad:?}");
        }
    }
}
