//! The async driver: sends the hops planned by `fetch` with reqwest, applies
//! one overall deadline per fetch, reads the body, maps transport failures to
//! Twilio error codes, and tries the fallback URL when the primary fails.

use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, LOCATION};
use tokio::time::{timeout_at, Instant};

use crate::error::WebhookError;
use crate::fetch::{Fetch, Hop, Method, Next, WebhookRequest};

/// Largest response body accepted (TwiML, text or an audio file).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Name of the signature header.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Settings shared by every request of a [`WebhookClient`].
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Deadline for a whole fetch (all redirects, body included). Default 15 s.
    pub timeout: Duration,
    /// Default `TwilioProxy/1.1`, what Twilio sends.
    pub user_agent: String,
    /// Redirects followed before giving up with 11215. Default 10.
    pub max_redirects: usize,
    /// Certificate authorities trusted for https:// apps besides the system's roots
    /// (a private CA in front of internal apps).
    pub extra_root_certificates: Vec<reqwest::Certificate>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout: Duration::from_secs(15),
            user_agent: "TwilioProxy/1.1".into(),
            max_redirects: 10,
            extra_root_certificates: Vec::new(),
        }
    }
}

/// What the app answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppResponse {
    /// Final URL after redirects (relative URLs in TwiML resolve against it).
    pub url: String,
    pub status: u16,
    /// The raw `Content-Type` header, empty if missing.
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Result of [`WebhookClient::request_with_fallback`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    /// The successful response, from the primary or else the fallback.
    pub response: Option<AppResponse>,
    /// Every failure in order (primary first), one Notification each.
    pub failures: Vec<WebhookError>,
    /// The fallback URL was tried (whether or not it succeeded).
    pub used_fallback: bool,
}

/// How many fetches a [`WebhookClient`] and its clones made, for metrics. A fetch is one
/// [`WebhookClient::request`] (redirects included; a fallback is a fetch of its own).
#[derive(Debug, Default)]
pub struct WebhookStats {
    requests: AtomicU64,
    failures: AtomicU64,
}

impl WebhookStats {
    /// Fetches started.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Fetches that ended in an error (no answer, timeout, non-2xx, bad body…).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// Calls customer apps. Cheap to clone: one shared connection pool and counters.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    timeout: Duration,
    max_redirects: usize,
    stats: Arc<WebhookStats>,
}

impl WebhookClient {
    /// Builds the client. Redirects are handled here (to re-sign each hop),
    /// not by reqwest.
    pub fn new(cfg: WebhookConfig) -> Result<Self, WebhookError> {
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .tls_certs_merge(cfg.extra_root_certificates)
            .user_agent(cfg.user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.timeout)
            .build()
            .map_err(|err| WebhookError::Connect {
                url: String::new(),
                detail: format!("cannot build HTTP client: {}", error_chain(&err)),
            })?;
        Ok(WebhookClient {
            http,
            timeout: cfg.timeout,
            max_redirects: cfg.max_redirects,
            stats: Arc::default(),
        })
    }

    /// The counters this client shares with its clones.
    pub fn stats(&self) -> Arc<WebhookStats> {
        Arc::clone(&self.stats)
    }

    /// One signed request, following redirects; non-2xx is an error.
    pub async fn request(&self, req: &WebhookRequest) -> Result<AppResponse, WebhookError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch(req).await;
        if result.is_err() {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn fetch(&self, req: &WebhookRequest) -> Result<AppResponse, WebhookError> {
        let mut fetch = Fetch::new(req, self.max_redirects)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let hop = fetch.hop().clone();
            let url = hop.url.to_string();
            tracing::debug!(method = hop.method.as_str(), %url, "webhook request");
            let response = match timeout_at(deadline, self.send(&hop)).await {
                Ok(Ok(response)) => response,
                Ok(Err(err)) => return Err(classify_send_error(&url, &err)),
                Err(_elapsed) => return Err(WebhookError::Timeout { url }),
            };
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            match fetch.on_response(status, location.as_deref())? {
                Next::FollowRedirect => {
                    tracing::debug!(%url, status, location = ?location, "webhook redirected");
                    continue;
                }
                Next::ReadBody => {
                    let content_type = response
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let body = match timeout_at(deadline, read_body(&url, response)).await {
                        Ok(body) => body?,
                        Err(_elapsed) => return Err(WebhookError::Timeout { url }),
                    };
                    return Ok(AppResponse {
                        url,
                        status,
                        content_type,
                        body,
                    });
                }
            }
        }
    }

    /// The primary, then the fallback if the primary failed in any way.
    pub async fn request_with_fallback(
        &self,
        primary: &WebhookRequest,
        fallback: Option<&WebhookRequest>,
    ) -> FetchOutcome {
        let mut failures = Vec::new();
        match self.request(primary).await {
            Ok(response) => {
                return FetchOutcome {
                    response: Some(response),
                    failures,
                    used_fallback: false,
                }
            }
            Err(err) => {
                tracing::warn!(code = err.twilio_code(), %err, "webhook failed");
                failures.push(err);
            }
        }
        let Some(fallback) = fallback else {
            return FetchOutcome {
                response: None,
                failures,
                used_fallback: false,
            };
        };
        let response = match self.request(fallback).await {
            Ok(response) => Some(response),
            Err(err) => {
                tracing::warn!(code = err.twilio_code(), %err, "fallback webhook failed");
                failures.push(err);
                None
            }
        };
        FetchOutcome {
            response,
            failures,
            used_fallback: true,
        }
    }

    async fn send(&self, hop: &Hop) -> Result<reqwest::Response, reqwest::Error> {
        let method = match hop.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut builder = self
            .http
            .request(method, hop.url.clone())
            .header(ACCEPT, HeaderValue::from_static("*/*"))
            .header(SIGNATURE_HEADER, hop.signature.as_str());
        if let Some(body) = &hop.form_body {
            builder = builder
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                )
                .body(body.clone());
        }
        builder.send().await
    }
}

/// Reads the body up to [`MAX_BODY_BYTES`].
async fn read_body(url: &str, mut response: reqwest::Response) -> Result<Vec<u8>, WebhookError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(WebhookError::Body {
                        url: url.to_owned(),
                        detail: format!("response larger than {MAX_BODY_BYTES} bytes"),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(err) if err.is_timeout() => {
                return Err(WebhookError::Timeout {
                    url: url.to_owned(),
                })
            }
            Err(err) => {
                return Err(WebhookError::Body {
                    url: url.to_owned(),
                    detail: error_chain(&err),
                })
            }
        }
    }
}

/// Maps a reqwest failure before any response to Twilio's categories.
fn classify_send_error(url: &str, err: &reqwest::Error) -> WebhookError {
    let detail = error_chain(err);
    if err.is_timeout() {
        WebhookError::Timeout {
            url: url.to_owned(),
        }
    } else if err.is_builder() || is_dns_failure(err) {
        WebhookError::BadUrl {
            url: url.to_owned(),
        }
    } else {
        WebhookError::Connect {
            url: url.to_owned(),
            detail,
        }
    }
}

/// hyper-util reports name resolution failures as a connect error whose
/// source chain contains a "dns error".
fn is_dns_failure(err: &reqwest::Error) -> bool {
    let mut source = err.source();
    while let Some(cause) = source {
        if cause.to_string().starts_with("dns error") {
            return true;
        }
        source = cause.source();
    }
    false
}

/// `err: cause: cause…` for logs and notifications.
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
