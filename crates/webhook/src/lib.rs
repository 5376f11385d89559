//! Outbound HTTP to customer apps, as Twilio does it: every request signed
//! with X-Twilio-Signature, form POST or GET with query parameters, redirects
//! followed and re-signed, one deadline per fetch, and a fallback URL tried
//! when the primary fails. Knows nothing about calls: callers pass the
//! parameters and get the app's response or Twilio-coded failures.
//!
//! `signing` (pure signature functions) and `fetch` (sans-IO per-hop
//! planning and redirect decisions) hold the logic; `client` is the thin
//! reqwest/tokio driver.

mod client;
mod error;
mod fetch;
mod signing;

pub use client::{
    AppResponse, FetchOutcome, WebhookClient, WebhookConfig, WebhookStats, SIGNATURE_HEADER,
};
pub use error::{
    WebhookError, CODE_HTTP_BAD_HOST, CODE_HTTP_CONNECTION_FAILURE, CODE_HTTP_RETRIEVAL_FAILURE,
    CODE_HTTP_TOO_MANY_REDIRECTS,
};
pub use fetch::{Method, WebhookRequest};
pub use signing::{body_sha256_url, signature, verify_signature};

/// Makes rustls use the ring crypto provider (idempotent). Every HTTPS client of the
/// process needs a provider installed before it is built.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
