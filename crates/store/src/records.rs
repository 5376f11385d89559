//! The records the store keeps, as plain structs shared with the other crates.

/// A tenant: an account with its API credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub sid: String,
    pub auth_token: String,
    pub friendly_name: String,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    pub date_created: i64,
}

/// A phone number an account owns and the app that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    pub sid: String,
    pub account_sid: String,
    /// E.164 as configured, e.g. `+15005550006`.
    pub phone_number: String,
    pub voice_url: Option<String>,
    pub voice_method: String,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: String,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub date_created: i64,
}

/// Twilio's call statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::Failed => "failed",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<CallStatus> {
        Some(match s {
            "queued" => CallStatus::Queued,
            "ringing" => CallStatus::Ringing,
            "in-progress" => CallStatus::InProgress,
            "completed" => CallStatus::Completed,
            "busy" => CallStatus::Busy,
            "failed" => CallStatus::Failed,
            "no-answer" => CallStatus::NoAnswer,
            "canceled" => CallStatus::Canceled,
            _ => return None,
        })
    }

    /// Whether the call is over in this status.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            CallStatus::Queued | CallStatus::Ringing | CallStatus::InProgress
        )
    }
}

/// One call (a leg), as the Calls resource shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub sid: String,
    pub account_sid: String,
    pub parent_call_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub from_formatted: String,
    pub to_formatted: String,
    /// `inbound`, `outbound-api` or `outbound-dial`.
    pub direction: String,
    pub status: CallStatus,
    pub caller_name: Option<String>,
    pub forwarded_from: Option<String>,
    pub date_created: i64,
    pub date_updated: i64,
    /// When the call was answered (Unix ms).
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    /// Seconds between answer and end; set when the call ends.
    pub duration: Option<i64>,
}

/// An error or warning raised while running an account's application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub sid: String,
    pub account_sid: String,
    pub call_sid: Option<String>,
    /// Twilio error code, e.g. `11200`.
    pub error_code: String,
    /// 0 = error, 1 = warning (Twilio's `log`).
    pub log_level: i64,
    pub message_text: String,
    pub more_info: String,
    pub request_method: Option<String>,
    pub request_url: Option<String>,
    pub request_variables: Option<String>,
    pub response_body: Option<String>,
    pub response_headers: Option<String>,
    pub date_created: i64,
}

/// A number as the IncomingPhoneNumbers resource shows it: the routing configuration of
/// [`PhoneNumber`] plus its name, messaging URLs and update time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingNumber {
    pub sid: String,
    pub account_sid: String,
    /// E.164, e.g. `+15005550006`.
    pub phone_number: String,
    /// `None` for numbers provisioned from the config file (shown formatted by the API).
    pub friendly_name: Option<String>,
    pub voice_url: Option<String>,
    pub voice_method: String,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: String,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub sms_url: Option<String>,
    pub sms_method: String,
    pub sms_fallback_url: Option<String>,
    pub sms_fallback_method: String,
    pub date_created: i64,
    pub date_updated: i64,
}

/// Filters for listing numbers (Twilio's `PhoneNumber` and `FriendlyName` list parameters).
#[derive(Debug, Clone, Default)]
pub struct NumberFilter {
    /// Matches numbers whose digits contain these digits.
    pub phone_number_digits: Option<String>,
    pub friendly_name: Option<String>,
}

/// An account with its place in the account tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDetails {
    pub account: Account,
    /// The parent's SID for a subaccount; `None` for a top-level account.
    pub parent_sid: Option<String>,
    pub date_updated: i64,
}

impl AccountDetails {
    /// Twilio's `owner_account_sid`: the parent, or the account itself.
    pub fn owner_sid(&self) -> &str {
        self.parent_sid.as_deref().unwrap_or(&self.account.sid)
    }
}

/// Filters for listing accounts (Twilio's `FriendlyName` and `Status`).
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub friendly_name: Option<String>,
    pub status: Option<String>,
}

/// An API key (`SK…`); the secret itself is never stored, only `secret_hash`
/// (hex SHA-256 of `secret_salt` followed by the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub secret_salt: String,
    pub secret_hash: String,
    pub date_created: i64,
    pub date_updated: i64,
}

/// Result of deleting a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDeletion {
    Deleted,
    NotFound,
    /// The call is not over yet.
    StillActive,
}
