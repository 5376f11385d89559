//! HTTP Basic authentication of `AccountSid:AuthToken` against the account in the path.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;

use crate::{ApiError, ApiState};

/// Rejects the request unless its Basic credentials are the path account's SID and token.
pub async fn require_account(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path_account = account_in_path(request.uri().path())
        .ok_or_else(ApiError::unauthenticated)?
        .to_string();
    let (user, password) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_basic)
        .ok_or_else(ApiError::unauthenticated)?;
    let account = state
        .store
        .account(&user)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    if !constant_time_eq(account.auth_token.as_bytes(), password.as_bytes()) {
        return Err(ApiError::unauthenticated());
    }
    if account.sid != path_account {
        // Twilio answers a request for another account's resources as not found.
        return Err(ApiError::not_found_resource(request.uri().path()));
    }
    Ok(next.run(request).await)
}

/// `/2010-04-01/Accounts/AC…[.json][/…]` → `AC…`.
fn account_in_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/2010-04-01/Accounts/")?;
    let segment = rest.split('/').next()?;
    let sid = segment.strip_suffix(".json").unwrap_or(segment);
    (!sid.is_empty()).then_some(sid)
}

/// Decodes `Basic base64(user:password)`.
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_is_taken_from_the_path() {
        assert_eq!(
            account_in_path("/2010-04-01/Accounts/AC1/Calls.json"),
            Some("AC1")
        );
        assert_eq!(
            account_in_path("/2010-04-01/Accounts/AC1.json"),
            Some("AC1")
        );
        assert_eq!(account_in_path("/2010-04-01/Accounts/"), None);
        assert_eq!(account_in_path("/other"), None);
    }

    #[test]
    fn basic_credentials_parse() {
        // "AC1:tok:en" — the password may itself contain a colon.
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("AC1:tok:en")
        );
        assert_eq!(
            parse_basic(&header),
            Some(("AC1".to_string(), "tok:en".to_string()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
