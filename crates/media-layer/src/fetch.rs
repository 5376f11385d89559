//! HTTP retrieval of `<Play>` media: one GET with the configured timeout, a bounded body,
//! and the response's Content-Type kept as the decoder's hint.

use reqwest::header::CONTENT_TYPE;

use crate::MediaError;

/// Largest media body accepted, in bytes.
pub const MAX_MEDIA_BYTES: usize = 64 * 1024 * 1024;

/// A fetched media body.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

/// Checks that `url` is an absolute http(s) URL.
pub fn validate_url(url: &str) -> Result<reqwest::Url, MediaError> {
    let invalid = |reason: String| MediaError::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| invalid(e.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(invalid(format!("scheme {other:?} is not http or https"))),
    }
}

/// GETs `url`; any transport error, non-2xx status or oversized body is a
/// [`MediaError::Fetch`].
pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<Fetched, MediaError> {
    let parsed = validate_url(url)?;
    let failed = |reason: String| MediaError::Fetch {
        url: url.to_string(),
        reason,
    };
    let mut response = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| failed(describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("HTTP status {status}")));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_MEDIA_BYTES as u64)
    {
        return Err(failed(format!("body larger than {MAX_MEDIA_BYTES} bytes")));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(describe(&e)))? {
        if body.len() + chunk.len() > MAX_MEDIA_BYTES {
            return Err(failed(format!("body larger than {MAX_MEDIA_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { body, content_type })
}

/// reqwest's Display hides the cause ("error sending request"); include the chain.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_timeout() {
        text.push_str(" (timed out)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation() {
        assert!(validate_url("http://127.0.0.1:8080/a.wav").is_ok());
        assert!(validate_url("https://example.com/a.mp3").is_ok());
        assert_eq!(
            validate_url("ftp://x/a.wav").unwrap_err().twilio_code(),
            11100
        );
        assert_eq!(validate_url("not a url").unwrap_err().twilio_code(), 11100);
    }
}
