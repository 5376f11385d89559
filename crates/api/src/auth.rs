//! HTTP Basic authentication and account access rules.
//!
//! Credentials are `AccountSid:AuthToken` or `KeySid:KeySecret` (an API key acts for the
//! account that owns it). The authenticated account (and a subaccount's parent) must be
//! `active`. It reaches its own path and the paths of its subaccounts; any other account's
//! path answers 404, as Twilio does. Handlers read the authenticated [`Principal`] from the request extensions.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};
use store::AccountDetails;

use crate::{ApiError, ApiState};

/// Who made the request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The authenticated account (the key's owner for key credentials).
    pub account: AccountDetails,
    /// The API key used, if any.
    pub key_sid: Option<String>,
}

impl Principal {
    pub fn sid(&self) -> &str {
        &self.account.account.sid
    }
}

/// Authenticates the request and checks it may reach the account in its path.
pub async fn require_account(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (user, password) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_basic)
        .ok_or_else(ApiError::unauthenticated)?;
    let principal = authenticate(&state, &user, &password).await?;
    if let Some(path_account) = account_in_path(request.uri().path()) {
        if path_account != principal.sid() {
            let owned = state
                .store
                .account_details(path_account)
                .await?
                .is_some_and(|a| a.parent_sid.as_deref() == Some(principal.sid()));
            if !owned {
                // Twilio answers a request for another account's resources as not found.
                return Err(ApiError::not_found_resource(request.uri().path()));
            }
        }
    }
    if principal.key_sid.is_some() && manages_credentials(request.method(), request.uri().path()) {
        return Err(ApiError::forbidden(
            "API keys cannot manage accounts or keys; use the account's auth token",
        ));
    }
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// Whether the request touches the Keys resource or changes an account (as on Twilio,
/// standard API keys may not).
fn manages_credentials(method: &axum::http::Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/2010-04-01/Accounts") else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let account_level = segments.len() <= 1;
    let keys = segments.get(1).is_some_and(|s| s.starts_with("Keys"));
    keys || (account_level && method != axum::http::Method::GET)
}

/// Checks `user:password` against the accounts and API keys.
async fn authenticate(state: &ApiState, user: &str, password: &str) -> Result<Principal, ApiError> {
    let (account_sid, key_sid) = if user.starts_with("SK") {
        let key = state
            .store
            .api_key_by_sid(user)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        let hash = hash_secret(&key.secret_salt, password);
        if !constant_time_eq(hash.as_bytes(), key.secret_hash.as_bytes()) {
            return Err(ApiError::unauthenticated());
        }
        (key.account_sid, Some(key.sid))
    } else {
        (user.to_string(), None)
    };
    let account = state
        .store
        .account_details(&account_sid)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    if key_sid.is_none()
        && !constant_time_eq(account.account.auth_token.as_bytes(), password.as_bytes())
    {
        return Err(ApiError::unauthenticated());
    }
    if account.account.status != "active" {
        return Err(ApiError::unauthenticated());
    }
    // A subaccount is out of service while its parent is.
    if let Some(parent_sid) = &account.parent_sid {
        let parent_active = state
            .store
            .account(parent_sid)
            .await?
            .is_some_and(|parent| parent.status == "active");
        if !parent_active {
            return Err(ApiError::unauthenticated());
        }
    }
    Ok(Principal { account, key_sid })
}

/// Hex SHA-256 of the salt followed by the secret: how API key secrets are stored.
pub fn hash_secret(salt: &str, secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(secret.as_bytes());
    hex::encode(hasher.finalize())
}

/// `/2010-04-01/Accounts/AC…[.json][/…]` → `AC…`.
fn account_in_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/2010-04-01/Accounts/")?;
    let segment = rest.split('/').next()?;
    let sid = crate::format::Format::split(segment).map_or(segment, |(sid, _)| sid);
    (!sid.is_empty()).then_some(sid)
}

/// Decodes `Basic base64(user:password)`.
pub(crate) fn parse_basic(header: &str) -> Option<(String, String)> {
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

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_is_exact() {
        assert!(constant_time_eq(b"123456", b"123456"));
        assert!(!constant_time_eq(b"123457", b"123456"));
        assert!(!constant_time_eq(b"12345", b"123456"));
        assert!(!constant_time_eq(b"1234567", b"123456"));
        assert!(!constant_time_eq(b"", b"123456"));
    }

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
        assert_eq!(account_in_path("/2010-04-01/Accounts/AC1.xml"), Some("AC1"));
        assert_eq!(account_in_path("/2010-04-01/Accounts/"), None);
        assert_eq!(account_in_path("/2010-04-01/Accounts.json"), None);
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

    #[test]
    fn keys_may_not_manage_credentials() {
        use axum::http::Method;
        assert!(manages_credentials(
            &Method::GET,
            "/2010-04-01/Accounts/AC1/Keys.json"
        ));
        assert!(manages_credentials(
            &Method::GET,
            "/2010-04-01/Accounts/AC1/Keys/SK1.json"
        ));
        assert!(manages_credentials(
            &Method::POST,
            "/2010-04-01/Accounts.json"
        ));
        assert!(manages_credentials(
            &Method::POST,
            "/2010-04-01/Accounts/AC1.json"
        ));
        assert!(!manages_credentials(
            &Method::GET,
            "/2010-04-01/Accounts/AC1.json"
        ));
        assert!(!manages_credentials(
            &Method::GET,
            "/2010-04-01/Accounts/AC1/Calls.json"
        ));
        assert!(!manages_credentials(
            &Method::POST,
            "/2010-04-01/Accounts/AC1/IncomingPhoneNumbers.json"
        ));
    }

    #[test]
    fn secret_hash_is_salted_sha256() {
        // sha256("abc")
        assert_eq!(
            hash_secret("a", "bc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(hash_secret("salt1", "s"), hash_secret("salt2", "s"));
    }
}
