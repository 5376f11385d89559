//! Request parameters: Twilio's form-encoded POST bodies and list filters, with the
//! validation shared by the resources (HTTP methods, URLs, phone numbers, dates).

use axum::body::Bytes;

use crate::ApiError;

/// Decoded `name=value` pairs, in request order (repeated names kept).
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Parses an `application/x-www-form-urlencoded` body (an empty body has no parameters).
    pub fn from_body(body: &Bytes) -> Result<Params, ApiError> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(Params)
            .map_err(|_| ApiError::invalid_parameter("body", "is not form-encoded"))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An optional HTTP method parameter (`GET`/`POST`, any case), upper-cased; else 21403.
    pub fn method(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => {
                let upper = v.to_ascii_uppercase();
                if upper == "GET" || upper == "POST" {
                    Ok(Some(upper))
                } else {
                    Err(ApiError::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        21403,
                        format!("Invalid Method: {name} must be GET or POST"),
                    ))
                }
            }
        }
    }

    /// An optional callback URL; an empty value clears it (`Some(None)`); else 21402.
    pub fn url(&self, name: &str) -> Result<Option<Option<String>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("") => Ok(Some(None)),
            Some(v) if is_http_url(v) => Ok(Some(Some(v.to_string()))),
            Some(_) => Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                21402,
                format!("Invalid Url: {name} must be an absolute http(s) URL"),
            )),
        }
    }
}

fn is_http_url(v: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        v.len() > scheme.len()
            && v.get(..scheme.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
    })
}

/// A phone number given by the client, as E.164 (`+` and 8 to 15 digits): `+1 (500)
/// 555-0006` → `+15005550006`. `None` if it is not one.
pub fn e164(input: &str) -> Option<String> {
    let trimmed = input.trim();
    let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
    {
        return None;
    }
    let digits = store::number_digits(body);
    (8..=15)
        .contains(&digits.len())
        .then(|| format!("+{digits}"))
}

/// Twilio's default friendly name: `(500) 555-0006` for North American numbers, else E.164.
pub fn formatted_number(e164: &str) -> String {
    let digits = store::number_digits(e164);
    match digits.strip_prefix('1') {
        Some(national) if national.len() == 10 && e164.starts_with('+') => {
            // `national` is ten ASCII digits, so these ranges exist.
            match (national.get(..3), national.get(3..6), national.get(6..)) {
                (Some(area), Some(exchange), Some(line)) => format!("({area}) {exchange}-{line}"),
                _ => e164.to_string(),
            }
        }
        _ => e164.to_string(),
    }
}

/// A date filter value as a half-open range `[from, until)` in Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub from: i64,
    pub until: i64,
    /// A whole UTC day (`YYYY-MM-DD`, or a date-time at midnight as the SDKs send dates),
    /// rather than one instant.
    pub whole_day: bool,
}

/// Parses a date filter: `YYYY-MM-DD` or an RFC 3339 date-time (one at exactly midnight
/// UTC means its whole day, since the SDKs serialise dates that way).
pub fn date_range(name: &str, value: &str) -> Result<DateRange, ApiError> {
    const DAY_MS: i64 = 86_400_000;
    let day_start = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis());
    let instant = chrono::DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.timestamp_millis());
    match (day_start, instant) {
        (Some(start), _) => Ok(DateRange {
            from: start,
            until: start + DAY_MS,
            whole_day: true,
        }),
        (None, Some(ms)) if ms.rem_euclid(DAY_MS) == 0 => Ok(DateRange {
            from: ms,
            until: ms + DAY_MS,
            whole_day: true,
        }),
        (None, Some(ms)) => Ok(DateRange {
            from: ms,
            until: ms + 1_000,
            whole_day: false,
        }),
        (None, None) => Err(ApiError::invalid_parameter(
            name,
            "must be a date (YYYY-MM-DD) or an ISO 8601 date-time",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_normalise_to_e164() {
        assert_eq!(e164("+15005550006").as_deref(), Some("+15005550006"));
        assert_eq!(e164("+1 (500) 555-0006").as_deref(), Some("+15005550006"));
        assert_eq!(e164("15005550006").as_deref(), Some("+15005550006"));
        assert_eq!(e164("+1500abc0006"), None);
        assert_eq!(e164("+123"), None);
        assert_eq!(e164(""), None);
    }

    #[test]
    fn friendly_names_format_nanp() {
        assert_eq!(formatted_number("+15005550006"), "(500) 555-0006");
        assert_eq!(formatted_number("+442071234567"), "+442071234567");
    }

    #[test]
    fn dates_are_day_ranges() {
        let day = date_range("StartTime", "1970-01-02").unwrap();
        assert_eq!(
            (day.from, day.until, day.whole_day),
            (86_400_000, 172_800_000, true)
        );
        // The SDKs send dates as midnight date-times.
        assert_eq!(
            date_range("StartTime", "1970-01-02T00:00:00Z").unwrap(),
            day
        );
        let instant = date_range("StartTime", "1970-01-01T00:00:05Z").unwrap();
        assert_eq!((instant.from, instant.whole_day), (5_000, false));
        let e = date_range("StartTime", "yesterday").unwrap_err();
        assert!(e.message.contains("StartTime"));
    }

    #[test]
    fn urls_and_methods_are_checked() {
        let p = Params(vec![
            ("VoiceUrl".into(), "ftp://x".into()),
            ("SmsUrl".into(), "".into()),
            ("VoiceMethod".into(), "get".into()),
            ("SmsMethod".into(), "PUT".into()),
        ]);
        assert_eq!(p.url("VoiceUrl").unwrap_err().code, 21402);
        assert_eq!(p.url("SmsUrl").unwrap(), Some(None));
        assert_eq!(p.url("Nope").unwrap(), None);
        // Multi-byte characters where the scheme would end: an error, not a panic.
        let odd = Params(vec![("VoiceUrl".into(), "http€€€".into())]);
        assert_eq!(odd.url("VoiceUrl").unwrap_err().code, 21402);
        assert_eq!(p.method("VoiceMethod").unwrap().as_deref(), Some("GET"));
        assert!(p
            .method("SmsMethod")
            .unwrap_err()
            .message
            .contains("SmsMethod"));
    }
}
