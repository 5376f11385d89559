//! URLs inside TwiML: resolving relative `action`/`Redirect`/`Play` URLs
//! against the document's URL, and expanding URI templates (`{Digits}`, any
//! request parameter in braces) with percent-encoded values.

use url::Url;

use crate::error::TwimlError;

/// Resolves `reference` (as written in a TwiML document) against `base`, the
/// URL of that document. An absolute http(s) reference is returned as written
/// (trimmed); a relative one is joined per RFC 3986. Only http and https
/// results are accepted (11100 otherwise).
pub fn resolve_url(base: &str, reference: &str) -> Result<String, TwimlError> {
    let reference = reference.trim();
    if let Ok(absolute) = Url::parse(reference) {
        return if is_http(&absolute) {
            Ok(reference.to_owned())
        } else {
            Err(invalid_url(
                reference,
                "only http and https URLs can be fetched",
            ))
        };
    }
    let base_url = Url::parse(base.trim())
        .map_err(|err| invalid_url(base, &format!("document URL is not absolute: {err}")))?;
    let joined = base_url
        .join(reference)
        .map_err(|err| invalid_url(reference, &err.to_string()))?;
    if !is_http(&joined) {
        return Err(invalid_url(
            joined.as_str(),
            "only http and https URLs can be fetched",
        ));
    }
    Ok(joined.into())
}

fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.has_host()
}

fn invalid_url(url: &str, detail: &str) -> TwimlError {
    TwimlError::InvalidUrl {
        url: url.to_owned(),
        detail: detail.to_owned(),
    }
}

/// Expands a URI template: each `{Name}` becomes the percent-encoded value of
/// the first request parameter called `Name` (RFC 3986 unreserved characters
/// kept), or nothing if there is none. A `{` with no `}` after it, and braces
/// that do not enclose a plain name (empty, whitespace, nested `{`), are
/// copied literally.
pub fn expand_template(template: &str, params: &[(String, String)]) -> String {
    let mut expanded = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let (literal, from_brace) = rest.split_at(open);
        expanded.push_str(literal);
        let after_brace = &from_brace[1..];
        match after_brace.find(['{', '}']) {
            Some(close)
                if after_brace[close..].starts_with('}')
                    && is_template_name(&after_brace[..close]) =>
            {
                let name = &after_brace[..close];
                if let Some((_, value)) = params.iter().find(|(key, _)| key == name) {
                    percent_encode_into(value, &mut expanded);
                }
                rest = &after_brace[close + 1..];
            }
            _ => {
                expanded.push('{');
                rest = after_brace;
            }
        }
    }
    expanded.push_str(rest);
    expanded
}

/// A parameter name: non-empty, no whitespace.
fn is_template_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_whitespace)
}

/// Percent-encodes every byte except RFC 3986 unreserved characters.
fn percent_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}
