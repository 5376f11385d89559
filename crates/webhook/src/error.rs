//! Why a webhook fetch failed, with the Twilio error code a Notification for
//! it must carry and the URL it concerned.

/// Twilio 11200 "HTTP retrieval failure".
pub const CODE_HTTP_RETRIEVAL_FAILURE: u32 = 11200;
/// Twilio 11205 "HTTP connection failure".
pub const CODE_HTTP_CONNECTION_FAILURE: u32 = 11205;
/// Twilio 11210 "HTTP bad host name".
pub const CODE_HTTP_BAD_HOST: u32 = 11210;
/// Twilio 11215 "HTTP too many redirects".
pub const CODE_HTTP_TOO_MANY_REDIRECTS: u32 = 11215;

/// A failed webhook fetch. `url` is the URL of the hop that failed (after
/// redirects, the redirect target).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("timed out fetching {url}")]
    Timeout { url: String },
    #[error("could not connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("bad URL or unknown host: {url}")]
    BadUrl { url: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("too many redirects fetching {url}")]
    TooManyRedirects { url: String },
    #[error("failed reading the response from {url}: {detail}")]
    Body { url: String, detail: String },
}

impl WebhookError {
    /// The Twilio error code for the Notification.
    pub fn twilio_code(&self) -> u32 {
        match self {
            WebhookError::Status { .. } | WebhookError::Body { .. } => CODE_HTTP_RETRIEVAL_FAILURE,
            WebhookError::Timeout { .. } | WebhookError::Connect { .. } => {
                CODE_HTTP_CONNECTION_FAILURE
            }
            WebhookError::BadUrl { .. } => CODE_HTTP_BAD_HOST,
            WebhookError::TooManyRedirects { .. } => CODE_HTTP_TOO_MANY_REDIRECTS,
        }
    }

    /// The URL the failure concerns.
    pub fn url(&self) -> &str {
        match self {
            WebhookError::Timeout { url }
            | WebhookError::Connect { url, .. }
            | WebhookError::BadUrl { url }
            | WebhookError::Status { url, .. }
            | WebhookError::TooManyRedirects { url }
            | WebhookError::Body { url, .. } => url,
        }
    }
}
