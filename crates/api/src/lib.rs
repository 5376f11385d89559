//! Twilio's 2010-04-01 REST API and the local admin API (with Prometheus `/metrics`),
//! served with axum.
//!
//! Every route under `/2010-04-01/Accounts` is authenticated with HTTP Basic
//! `AccountSid:AuthToken` or `KeySid:KeySecret` (see [`auth`]); an account reaches its own
//! records and its subaccounts', and every store query is scoped by the account in the path.
//! Resources are served as `.json`, `.xml` (Twilio's `TwilioResponse` envelope) and `.csv`
//! (see [`format`]), with Twilio's paging fields and error format so the official SDKs work
//! unchanged. Voice Insights' Call Summary (`/v1/Voice/{CallSid}/Summary`, see [`insights`])
//! is served beside them, under the same authentication. This crate holds no business state:
//! it reads and writes through `store`.

mod accounts;
mod admin;
mod auth;
mod caller_ids;
mod calls;
mod conferences;
mod error;
mod exposition;
mod format;
mod insights;
mod json;
mod keys;
pub mod metrics;
mod numbers;
mod paging;
mod params;
mod rate_limit;
mod recordings;

use axum::routing::{get, MethodRouter};
use axum::Router;
use rand::Rng;
use store::Store;

pub use admin::{admin_router, AdminState, TrunkSpec};
pub use conferences::{ParticipantUpdate, ParticipantView};
pub use error::ApiError;
use format::Format;
pub use metrics::{count_api_requests, Metrics, MetricsSources};
pub use rate_limit::RateLimit;

/// Shared state of the API routes.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    /// Reaches calls in progress (live call control); the call router implements it.
    pub calls: std::sync::Arc<dyn CallControl>,
    /// How the call router reaches this API (`http://127.0.0.1:8080`): the base of the
    /// callback URLs of Switchboard's own calls (caller-ID validation).
    pub self_url: String,
    /// `From` of the caller-ID validation calls (the operator's number).
    pub validation_caller_id: String,
    /// Requests per account (20429 beyond it).
    pub rate_limit: RateLimit,
    /// Where the media process puts finished recordings (`<hex>.wav`).
    pub recordings_dir: std::path::PathBuf,
}

impl ApiState {
    /// State for a node without live calls (tests, tools): every update finds no call.
    pub fn without_calls(store: Store) -> ApiState {
        ApiState {
            store,
            calls: std::sync::Arc::new(NoCalls),
            self_url: "http://127.0.0.1".into(),
            validation_caller_id: "anonymous".into(),
            rate_limit: RateLimit::UNLIMITED,
            recordings_dir: std::path::PathBuf::from("recordings"),
        }
    }
}

/// A live update of a call in progress, as `POST /Calls/{Sid}` asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveUpdate {
    /// Leave the current verb and run the document at `url` (fetched with `method`).
    Redirect { url: String, method: String },
    /// Leave the current verb and run this TwiML.
    Twiml(String),
    /// `Status=completed`.
    Complete,
    /// `Status=canceled`.
    Cancel,
}

/// A Create Call request, validated (the call router places it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceCall {
    pub account_sid: String,
    pub to: String,
    pub from: String,
    pub url: Option<String>,
    pub method: String,
    pub twiml: Option<String>,
    pub fallback_url: Option<String>,
    pub fallback_method: String,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub status_callback_events: Vec<String>,
    pub timeout_seconds: u32,
    pub send_digits: Option<String>,
    /// Longest the call may last once answered (`TimeLimit`, default 14400).
    pub time_limit_seconds: u32,
    /// `Record=true`: record the call from the answer on.
    pub record: Option<RecordOptions>,
    pub purpose: CallPurpose,
}

/// How to record a call (`Record=true` and its `Recording*` parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOptions {
    /// `mono` (1) or `dual` (2).
    pub dual_channel: bool,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    /// Of `in-progress`, `completed`, `absent`; Twilio's default is `completed`.
    pub status_callback_events: Vec<String>,
}

/// Who asks for an outbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPurpose {
    /// Create Call: `From` must be one of the account's numbers or validated caller IDs.
    Api,
    /// A caller-ID validation call: `From` is the operator's, dialled after the delay.
    CallerIdValidation { delay_seconds: u32 },
}

/// Why a call could not be placed, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceCallError {
    /// 21210: `From` is not one of the account's numbers (or validated caller IDs).
    FromNotOwned,
    /// 21211: no trunk or address routes `To`.
    NoRoute,
    /// Anything else (20500).
    Internal(String),
}

/// A boxed future, for the object-safe [`CallControl`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The API's way into running calls. Implemented by the call router's wiring.
pub trait CallControl: Send + Sync {
    /// Hands `update` to the call; false when the call is not running on this node.
    fn update(&self, call_sid: &str, update: LiveUpdate) -> bool;
    /// Places an outbound call and returns its stored record.
    fn place(&self, request: PlaceCall)
        -> BoxFuture<'_, Result<store::CallRecord, PlaceCallError>>;
    /// Delivers a signed status callback that belongs to no call (at least once, retried).
    fn send_status_callback(&self, request: webhook::WebhookRequest);
    /// The live participants of the account's conference; `None` when it is not live here.
    fn participants(&self, account_sid: &str, conference_sid: &str)
        -> Option<Vec<ParticipantView>>;
    /// One live participant, by call SID or label.
    fn participant(
        &self,
        account_sid: &str,
        conference_sid: &str,
        participant: &str,
    ) -> Option<ParticipantView>;
    /// Changes a live participant; `None` when there is no such participant.
    fn update_participant<'a>(
        &'a self,
        account_sid: &'a str,
        conference_sid: &'a str,
        participant: &'a str,
        update: ParticipantUpdate,
    ) -> BoxFuture<'a, Option<ParticipantView>>;
    /// Removes a participant from its conference; false when there is no such participant.
    fn kick_participant<'a>(
        &'a self,
        account_sid: &'a str,
        conference_sid: &'a str,
        participant: &'a str,
    ) -> BoxFuture<'a, bool>;
    /// Ends a live conference; false when it is not live here.
    fn end_conference<'a>(
        &'a self,
        account_sid: &'a str,
        conference_sid: &'a str,
    ) -> BoxFuture<'a, bool>;
}

struct NoCalls;

impl CallControl for NoCalls {
    fn update(&self, _call_sid: &str, _update: LiveUpdate) -> bool {
        false
    }

    fn place(
        &self,
        _request: PlaceCall,
    ) -> BoxFuture<'_, Result<store::CallRecord, PlaceCallError>> {
        Box::pin(async { Err(PlaceCallError::NoRoute) })
    }

    fn send_status_callback(&self, request: webhook::WebhookRequest) {
        tracing::debug!(url = %request.url, "no call router: status callback dropped");
    }

    fn participants(&self, _account: &str, _conference: &str) -> Option<Vec<ParticipantView>> {
        None
    }

    fn participant(&self, _: &str, _: &str, _: &str) -> Option<ParticipantView> {
        None
    }

    fn update_participant<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: ParticipantUpdate,
    ) -> BoxFuture<'a, Option<ParticipantView>> {
        Box::pin(async { None })
    }

    fn kick_participant<'a>(&'a self, _: &'a str, _: &'a str, _: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }

    fn end_conference<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }
}

/// The Twilio REST API routes, with authentication applied.
pub fn router(state: ApiState) -> Router {
    const ACCOUNT: &str = "/2010-04-01/Accounts/{account}";
    let mut routes = Router::new()
        .route(ACCOUNT, get(accounts::fetch).post(accounts::update))
        .route(
            &format!("{ACCOUNT}/Calls/{{call}}"),
            get(calls::fetch).post(calls::update).delete(calls::delete),
        )
        .route(
            &format!("{ACCOUNT}/Notifications/{{notification}}"),
            get(calls::fetch_notification),
        )
        .route(
            &format!("{ACCOUNT}/Calls/{{call}}/Notifications/{{notification}}"),
            get(calls::fetch_call_notification),
        )
        .route(
            &format!("{ACCOUNT}/IncomingPhoneNumbers/{{number}}"),
            get(numbers::fetch)
                .post(numbers::update)
                .delete(numbers::delete),
        )
        .route(
            &format!("{ACCOUNT}/Keys/{{key}}"),
            get(keys::fetch).post(keys::update).delete(keys::delete),
        )
        .route(
            &format!("{ACCOUNT}/Conferences/{{conference}}"),
            get(conferences::fetch).post(conferences::update),
        )
        .route(
            &format!("{ACCOUNT}/Conferences/{{conference}}/Participants/{{participant}}"),
            get(conferences::fetch_participant)
                .post(conferences::update_participant)
                .delete(conferences::delete_participant),
        )
        .route(
            &format!("{ACCOUNT}/Recordings/{{recording}}"),
            get(recordings::fetch).delete(recordings::delete),
        )
        .route(
            &format!("{ACCOUNT}/OutgoingCallerIds/{{caller_id}}"),
            get(caller_ids::fetch)
                .post(caller_ids::update)
                .delete(caller_ids::delete),
        )
        .route("/v1/Voice/{call}/Summary", get(insights::fetch_summary));
    // Lists are served in every format: one route per extension.
    let lists: [(String, MethodRouter<ApiState>); 11] = [
        (
            "/2010-04-01/Accounts".into(),
            get(accounts::list).post(accounts::create),
        ),
        (
            format!("{ACCOUNT}/Calls"),
            get(calls::list).post(calls::create),
        ),
        (
            format!("{ACCOUNT}/Calls/{{call}}/Notifications"),
            get(calls::list_call_notifications),
        ),
        (
            format!("{ACCOUNT}/Notifications"),
            get(calls::list_notifications),
        ),
        (
            format!("{ACCOUNT}/IncomingPhoneNumbers"),
            get(numbers::list).post(numbers::create),
        ),
        (
            format!("{ACCOUNT}/Keys"),
            get(keys::list).post(keys::create),
        ),
        (
            format!("{ACCOUNT}/OutgoingCallerIds"),
            get(caller_ids::list).post(caller_ids::create),
        ),
        (format!("{ACCOUNT}/Recordings"), get(recordings::list)),
        (format!("{ACCOUNT}/Conferences"), get(conferences::list)),
        (
            format!("{ACCOUNT}/Conferences/{{conference}}/Participants"),
            get(conferences::list_participants).post(conferences::create_participant),
        ),
        (
            format!("{ACCOUNT}/Calls/{{call}}/Recordings"),
            get(recordings::list_for_call),
        ),
    ];
    for (stem, methods) in lists {
        for ext in Format::EXTENSIONS {
            routes = routes.route(&format!("{stem}.{ext}"), methods.clone());
        }
    }
    routes
        // Layers run outside in: authentication first, then the principal's rate limit.
        .route_layer(axum::middleware::from_fn_with_state(
            rate_limit::RateLimiter::new(state.rate_limit),
            rate_limit::limit_requests,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_account,
        ))
        // Authenticated by the X-Twilio-Signature of the validation call, not Basic auth.
        .route(
            caller_ids::VALIDATION_PATH,
            axum::routing::post(caller_ids::gathered),
        )
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn(error::twilio_errors))
        .with_state(state)
}

/// Splits a resource segment (`CA….json`) into its SID and format; 404 without an extension.
fn resource_sid(segment: &str) -> Result<(&str, Format), ApiError> {
    Format::split(segment).ok_or_else(|| ApiError::not_found_resource(segment))
}

/// A new SID: the two-letter prefix and 32 lowercase hex digits.
fn new_sid(prefix: &str) -> String {
    let bytes: [u8; 16] = rand::rng().random();
    format!("{prefix}{}", hex::encode(bytes))
}

/// A random secret of 32 hex digits (auth tokens, API key secrets, salts).
fn new_secret() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests;
