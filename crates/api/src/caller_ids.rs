//! The OutgoingCallerIds resource: numbers an account proved it answers, usable as `From`
//! of outbound calls next to its own numbers.
//!
//! `POST …/OutgoingCallerIds.json` does not create a caller ID: it starts a validation.
//! Switchboard answers with a 6-digit `ValidationCode` and calls the number (from the
//! operator's validation caller ID); the call's TwiML asks the callee to key in the code
//! and posts the digits, signed like every webhook, to Switchboard's own validation
//! endpoint ([`VALIDATION_PATH`]). Only the right code creates the caller ID; a wrong code
//! or none ends the validation as failed. Either way the request's `StatusCallback` gets
//! `VerificationStatus` (`success`/`failed`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{json, Value};
use store::{CallerId, CallerIdFilter, CallerIdValidation, ValidationStatus};

use crate::format::{Format, Reply};
use crate::params::{e164, formatted_number, Params};
use crate::{
    json, new_sid, now_ms, paging, resource_sid, ApiError, ApiState, CallPurpose, PlaceCall,
    PlaceCallError,
};

const TAG: &str = "OutgoingCallerId";

/// Where the validation call posts the digits it gathered (`{id}`: the validation's id).
/// Outside the Basic-auth routes: the request is authenticated by its X-Twilio-Signature.
pub const VALIDATION_PATH: &str = "/switchboard/v1/caller-id-validations/{id}";

/// Digits in a validation code.
const CODE_LENGTH: usize = 6;
/// Longest a validation call may last.
const VALIDATION_CALL_LIMIT_S: u32 = 120;
/// Seconds the callee has to key in the code, per prompt.
const GATHER_TIMEOUT_S: u32 = 10;

pub async fn list(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Reply, ApiError> {
    let paging = paging::Paging::from_query(&query)?;
    let params = Params(query.clone());
    let filter = CallerIdFilter {
        phone_number_digits: params
            .get("PhoneNumber")
            .map(store::number_digits)
            .filter(|d| !d.is_empty()),
        friendly_name: params.get("FriendlyName").map(str::to_string),
    };
    let page = state
        .store
        .list_caller_ids(&account, &filter, &paging.request())
        .await?;
    let body = paging.list(
        "outgoing_caller_ids",
        &page,
        caller_id_json,
        uri.path(),
        &query,
    );
    Ok(Reply::list(
        Format::of_path(uri.path()),
        "outgoing_caller_ids",
        "OutgoingCallerIds",
        TAG,
        body,
    ))
}

/// Starts a validation: stores the code, places the validation call, answers with the
/// ValidationRequest (200, as Twilio does).
pub async fn create(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let params = Params::from_body(&body)?;
    let raw = params
        .get("PhoneNumber")
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ApiError::missing_parameter("PhoneNumber"))?;
    let phone_number = e164(raw).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            21217,
            format!("Phone number {raw} does not appear to be valid"),
        )
    })?;
    let friendly_name = match params.get("FriendlyName") {
        Some(name) if name.chars().count() > 64 => {
            return Err(ApiError::invalid_parameter(
                "FriendlyName",
                "must be at most 64 characters",
            ))
        }
        Some(name) if !name.is_empty() => name.to_string(),
        _ => formatted_number(&phone_number),
    };
    let delay_seconds =
        match params.get("CallDelay") {
            None => 0,
            Some(d) => d.parse::<u32>().ok().filter(|d| *d <= 60).ok_or_else(|| {
                ApiError::invalid_parameter("CallDelay", "must be 0 to 60 seconds")
            })?,
        };
    let extension = params.get("Extension").filter(|e| !e.is_empty());
    if let Some(extension) = extension {
        let valid = extension.len() <= shmq::MAX_SEND_DIGITS
            && extension.bytes().all(shmq::records::is_send_digit);
        if !valid {
            return Err(ApiError::invalid_parameter(
                "Extension",
                "must be up to 32 of 0-9 * # A-D and w",
            ));
        }
    }
    let status_callback = params.url("StatusCallback")?.flatten();
    let status_callback_method = params
        .method("StatusCallbackMethod")?
        .unwrap_or_else(|| "POST".into());
    if state.store.is_caller_id_of(&account, &phone_number).await? {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            21450,
            format!("Phone number {phone_number} is already verified for your account"),
        ));
    }

    let validation = CallerIdValidation {
        id: new_sid("VR"),
        account_sid: account.clone(),
        phone_number: phone_number.clone(),
        friendly_name,
        validation_code: new_code(),
        call_sid: None,
        status_callback,
        status_callback_method,
        status: ValidationStatus::Pending,
        date_created: now_ms(),
    };
    state.store.insert_caller_id_validation(&validation).await?;
    let request = PlaceCall {
        account_sid: account,
        to: phone_number,
        from: state.validation_caller_id.clone(),
        url: None,
        method: "POST".into(),
        twiml: Some(validation_twiml(&validation_url(&state, &validation.id))),
        fallback_url: None,
        fallback_method: "POST".into(),
        status_callback: None,
        status_callback_method: "POST".into(),
        status_callback_events: Vec::new(),
        timeout_seconds: 60,
        send_digits: extension.map(str::to_string),
        time_limit_seconds: VALIDATION_CALL_LIMIT_S,
        record: None,
        purpose: CallPurpose::CallerIdValidation { delay_seconds },
    };
    let record = match state.calls.place(request).await {
        Ok(record) => record,
        Err(PlaceCallError::NoRoute) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                21211,
                format!(
                    "Invalid 'PhoneNumber' {}: no trunk routes it",
                    validation.phone_number
                ),
            ))
        }
        Err(other) => {
            tracing::error!(error = ?other, "placing a caller-ID validation call failed");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                "An internal server error has occurred",
            ));
        }
    };
    state
        .store
        .set_caller_id_validation_call(&validation.id, &record.sid)
        .await?;
    Ok(Reply::one(
        Format::of_path(uri.path()),
        "ValidationRequest",
        json!({
            "account_sid": validation.account_sid,
            "call_sid": record.sid,
            "friendly_name": validation.friendly_name,
            "phone_number": validation.phone_number,
            "validation_code": validation.validation_code,
        }),
    ))
}

async fn load(state: &ApiState, account: &str, sid: &str) -> Result<CallerId, ApiError> {
    state
        .store
        .caller_id(account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))
}

pub async fn fetch(
    State(state): State<ApiState>,
    Path((account, caller_id)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&caller_id)?;
    let caller_id = load(&state, &account, sid).await?;
    Ok(Reply::one(format, TAG, caller_id_json(&caller_id)))
}

/// Renames a caller ID (`FriendlyName`, the only attribute that can change).
pub async fn update(
    State(state): State<ApiState>,
    Path((account, caller_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&caller_id)?;
    let params = Params::from_body(&body)?;
    let mut caller_id = load(&state, &account, sid).await?;
    if let Some(name) = params.get("FriendlyName") {
        if name.chars().count() > 64 {
            return Err(ApiError::invalid_parameter(
                "FriendlyName",
                "must be at most 64 characters",
            ));
        }
        caller_id.friendly_name = name.to_string();
        caller_id.date_updated = now_ms();
        if !state
            .store
            .rename_caller_id(&account, sid, name, caller_id.date_updated)
            .await?
        {
            return Err(ApiError::not_found_resource(sid));
        }
    }
    Ok(Reply::one(format, TAG, caller_id_json(&caller_id)))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((account, caller_id)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, _) = resource_sid(&caller_id)?;
    if !state.store.delete_caller_id(&account, sid).await? {
        return Err(ApiError::not_found_resource(sid));
    }
    Ok(Reply::deleted())
}

/// The validation call's `<Gather>` action (and its final `<Redirect>` when nothing was
/// entered). Checks the signature with the account's auth token, compares the digits
/// with the code once, creates the caller ID on a match, reports the outcome to the
/// request's StatusCallback and answers with TwiML that says how it went and hangs up.
pub async fn gathered(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match check_code(&state, &id, &headers, &body).await {
        Ok(twiml) => ([("content-type", "text/xml")], twiml).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn check_code(
    state: &ApiState,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<String, ApiError> {
    let validation = state
        .store
        .caller_id_validation(id)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(id))?;
    let account = state
        .store
        .account(&validation.account_sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(id))?;
    let params = Params::from_body(body)?;
    let signature = headers
        .get(webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let url = validation_url(state, id);
    let signed = webhook::verify_signature(&account.auth_token, &url, &params.0, signature);
    let same_call =
        validation.call_sid.is_some() && params.get("CallSid") == validation.call_sid.as_deref();
    if !signed || !same_call {
        return Err(ApiError::forbidden(
            "The request is not signed by this validation's call",
        ));
    }
    let entered = params.get("Digits").unwrap_or("");
    let matches =
        crate::auth::constant_time_eq(entered.as_bytes(), validation.validation_code.as_bytes());
    let now = now_ms();
    let caller_id = CallerId {
        sid: new_sid("PN"),
        account_sid: validation.account_sid.clone(),
        phone_number: validation.phone_number.clone(),
        friendly_name: validation.friendly_name.clone(),
        date_created: now,
        date_updated: now,
    };
    let outcome = if matches { Ok(&caller_id) } else { Err(()) };
    if !state.store.finish_caller_id_validation(id, outcome).await? {
        // Already decided (a retried or replayed request): the code counts once.
        return Ok(say_and_hang_up(
            "This validation has already ended. Goodbye.",
        ));
    }
    if let Some(url) = &validation.status_callback {
        let mut params = vec![
            ("AccountSid".to_string(), validation.account_sid.clone()),
            (
                "CallSid".to_string(),
                params.get("CallSid").unwrap_or("").to_string(),
            ),
            ("To".to_string(), validation.phone_number.clone()),
            ("Called".to_string(), validation.phone_number.clone()),
            (
                "VerificationStatus".to_string(),
                if matches { "success" } else { "failed" }.to_string(),
            ),
        ];
        if matches {
            params.push(("OutgoingCallerIdSid".to_string(), caller_id.sid.clone()));
        }
        state.calls.send_status_callback(webhook::WebhookRequest {
            url: url.clone(),
            method: if validation.status_callback_method == "GET" {
                webhook::Method::Get
            } else {
                webhook::Method::Post
            },
            params,
            auth_token: account.auth_token.clone(),
        });
    }
    tracing::info!(
        account = %validation.account_sid,
        number = %validation.phone_number,
        verified = matches,
        "caller-ID validation ended"
    );
    Ok(if matches {
        say_and_hang_up("Thank you. Your phone number has been verified. Goodbye.")
    } else if entered.is_empty() {
        say_and_hang_up("No validation code was entered. Goodbye.")
    } else {
        say_and_hang_up("Sorry, that validation code is not correct. Goodbye.")
    })
}

/// The absolute URL of a validation's endpoint on this node, as the call router signs it.
fn validation_url(state: &ApiState, id: &str) -> String {
    format!(
        "{}{}",
        state.self_url.trim_end_matches('/'),
        VALIDATION_PATH.replace("{id}", id)
    )
}

/// The validation call: prompt, gather the code (asked twice), and post nothing-entered
/// to the same endpoint so the validation ends either way.
fn validation_twiml(action: &str) -> String {
    let action = xml_attribute(action);
    let gather = |prompt: &str| {
        format!(
            "<Gather input=\"dtmf\" numDigits=\"{CODE_LENGTH}\" timeout=\"{GATHER_TIMEOUT_S}\" \
             action=\"{action}\" method=\"POST\"><Say>{prompt}</Say></Gather>"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{}{}<Redirect method=\"POST\">{action}</Redirect></Response>",
        gather(
            "Hello. This call verifies your phone number as a caller ID. \
             Please enter your validation code now."
        ),
        gather("We did not receive your code. Please enter your validation code."),
    )
}

fn say_and_hang_up(text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{text}</Say><Hangup/></Response>"
    )
}

fn xml_attribute(s: &str) -> String {
    let mut escaped = String::with_capacity(s.len());
    crate::format::escape_xml(s, &mut escaped);
    escaped
}

/// A random code of [`CODE_LENGTH`] decimal digits.
fn new_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LENGTH)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

fn caller_id_json(c: &CallerId) -> Value {
    json!({
        "sid": c.sid,
        "account_sid": c.account_sid,
        "friendly_name": c.friendly_name,
        "phone_number": c.phone_number,
        "date_created": json::rfc2822(c.date_created),
        "date_updated": json::rfc2822(c.date_updated),
        "uri": format!("/2010-04-01/Accounts/{}/OutgoingCallerIds/{}.json", c.account_sid, c.sid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// A store with account AC1 (token `token1`) and a pending validation `VR1` whose call
    /// is `CA1` and whose code is `123456`.
    async fn pending_validation() -> ApiState {
        let store = store::Store::open_in_memory().await.unwrap();
        store
            .upsert_account(&store::Account {
                sid: "AC1".into(),
                auth_token: "token1".into(),
                friendly_name: "AC1".into(),
                status: "active".into(),
                date_created: 0,
            })
            .await
            .unwrap();
        store
            .insert_caller_id_validation(&CallerIdValidation {
                id: "VR1".into(),
                account_sid: "AC1".into(),
                phone_number: "+15557770001".into(),
                friendly_name: "desk".into(),
                validation_code: "123456".into(),
                call_sid: Some("CA1".into()),
                status_callback: None,
                status_callback_method: "POST".into(),
                status: ValidationStatus::Pending,
                date_created: 0,
            })
            .await
            .unwrap();
        ApiState::without_calls(store)
    }

    async fn post_digits(
        state: &ApiState,
        params: &[(&str, &str)],
        token: Option<&str>,
    ) -> (StatusCode, String) {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let url = validation_url(state, "VR1");
        let mut request = Request::post("/switchboard/v1/caller-id-validations/VR1")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(token) = token {
            request = request.header(
                webhook::SIGNATURE_HEADER,
                webhook::signature(token, &url, &params),
            );
        }
        let body = serde_urlencoded::to_string(&params).unwrap();
        let response = crate::router(state.clone())
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn only_a_signed_request_of_the_validation_call_counts() {
        let state = pending_validation().await;
        let right = [("CallSid", "CA1"), ("Digits", "123456")];
        // Unsigned, signed with another token, or from another call: refused, nothing changes.
        assert_eq!(
            post_digits(&state, &right, None).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            post_digits(&state, &right, Some("token2")).await.0,
            StatusCode::FORBIDDEN
        );
        let other_call = [("CallSid", "CA2"), ("Digits", "123456")];
        assert_eq!(
            post_digits(&state, &other_call, Some("token1")).await.0,
            StatusCode::FORBIDDEN
        );
        assert!(!state
            .store
            .is_caller_id_of("AC1", "+15557770001")
            .await
            .unwrap());

        let (status, twiml) = post_digits(&state, &right, Some("token1")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(twiml.contains("verified"), "{twiml}");
        assert!(twiml.contains("<Hangup/>"), "{twiml}");
        assert!(state
            .store
            .is_caller_id_of("AC1", "+15557770001")
            .await
            .unwrap());
        // Replayed: the validation has ended.
        let (_, again) = post_digits(&state, &right, Some("token1")).await;
        assert!(again.contains("already ended"), "{again}");
    }

    #[tokio::test]
    async fn a_wrong_code_ends_the_validation_without_a_caller_id() {
        let state = pending_validation().await;
        let wrong = [("CallSid", "CA1"), ("Digits", "654321")];
        let (status, twiml) = post_digits(&state, &wrong, Some("token1")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(twiml.contains("not correct"), "{twiml}");
        // The right code afterwards is too late.
        let right = [("CallSid", "CA1"), ("Digits", "123456")];
        let (_, late) = post_digits(&state, &right, Some("token1")).await;
        assert!(late.contains("already ended"), "{late}");
        assert!(!state
            .store
            .is_caller_id_of("AC1", "+15557770001")
            .await
            .unwrap());
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = new_code();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
    }

    #[test]
    fn the_validation_twiml_gathers_six_digits_and_always_reports_back() {
        let xml = validation_twiml(
            "http://127.0.0.1:8080/switchboard/v1/caller-id-validations/VR1?a=1&b=2",
        );
        let doc = twiml::parse_voice(&xml).unwrap();
        let text = format!("{doc:?}");
        assert!(text.contains("Gather"), "{text}");
        assert!(text.contains("Redirect"), "{text}");
        assert!(xml.contains("numDigits=\"6\""));
        assert!(xml.contains("VR1?a=1&amp;b=2"));
        assert_eq!(xml.matches("<Gather").count(), 2);
    }
}
