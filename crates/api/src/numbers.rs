//! The IncomingPhoneNumbers resource: an account's numbers and the apps that answer them.
//! A number's digits are unique across all accounts; the call router looks numbers up in
//! the store on every INVITE, so changes here route immediately. A parent account may
//! transfer numbers between itself and its subaccounts (`AccountSid` on update).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::Extension;
use store::{IncomingNumber, NumberFilter};

use crate::auth::Principal;

use crate::format::{Format, Reply};
use crate::params::{e164, Params};
use crate::{json, new_sid, now_ms, paging, resource_sid, ApiError, ApiState};

const TAG: &str = "IncomingPhoneNumber";

pub async fn list(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Reply, ApiError> {
    let paging = paging::Paging::from_query(&query)?;
    let params = Params(query.clone());
    let filter = NumberFilter {
        phone_number_digits: params
            .get("PhoneNumber")
            .map(store::number_digits)
            .filter(|d| !d.is_empty()),
        friendly_name: params.get("FriendlyName").map(str::to_string),
    };
    let page = state
        .store
        .list_incoming_numbers(&account, &filter, &paging.request())
        .await?;
    let body = paging.list(
        "incoming_phone_numbers",
        &page,
        json::incoming_number,
        uri.path(),
        &query,
    );
    Ok(Reply::list(
        Format::of_path(uri.path()),
        "incoming_phone_numbers",
        "IncomingPhoneNumbers",
        TAG,
        body,
    ))
}

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
            21421,
            format!("PhoneNumber {raw} is invalid"),
        )
    })?;
    let now = now_ms();
    let mut number = IncomingNumber {
        sid: new_sid("PN"),
        account_sid: account,
        phone_number,
        friendly_name: None,
        voice_url: None,
        voice_method: "POST".into(),
        voice_fallback_url: None,
        voice_fallback_method: "POST".into(),
        status_callback: None,
        status_callback_method: "POST".into(),
        sms_url: None,
        sms_method: "POST".into(),
        sms_fallback_url: None,
        sms_fallback_method: "POST".into(),
        date_created: now,
        date_updated: now,
    };
    apply(&mut number, &params)?;
    if number.friendly_name.is_none() {
        number.friendly_name = Some(crate::params::formatted_number(&number.phone_number));
    }
    if !state.store.insert_incoming_number(&number).await? {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            21422,
            format!("PhoneNumber {} is not available", number.phone_number),
        ));
    }
    Ok(Reply::created(
        Format::of_path(uri.path()),
        TAG,
        json::incoming_number(&number),
    ))
}

/// Applies the configuration parameters of a create or update request.
fn apply(number: &mut IncomingNumber, params: &Params) -> Result<(), ApiError> {
    if let Some(name) = params.get("FriendlyName") {
        if name.chars().count() > 64 {
            return Err(ApiError::invalid_parameter(
                "FriendlyName",
                "must be at most 64 characters",
            ));
        }
        number.friendly_name = Some(name.to_string());
    }
    let urls: [(&str, &mut Option<String>); 5] = [
        ("VoiceUrl", &mut number.voice_url),
        ("VoiceFallbackUrl", &mut number.voice_fallback_url),
        ("StatusCallback", &mut number.status_callback),
        ("SmsUrl", &mut number.sms_url),
        ("SmsFallbackUrl", &mut number.sms_fallback_url),
    ];
    for (name, field) in urls {
        if let Some(value) = params.url(name)? {
            *field = value;
        }
    }
    let methods: [(&str, &mut String); 5] = [
        ("VoiceMethod", &mut number.voice_method),
        ("VoiceFallbackMethod", &mut number.voice_fallback_method),
        ("StatusCallbackMethod", &mut number.status_callback_method),
        ("SmsMethod", &mut number.sms_method),
        ("SmsFallbackMethod", &mut number.sms_fallback_method),
    ];
    for (name, field) in methods {
        if let Some(value) = params.method(name)? {
            *field = value;
        }
    }
    Ok(())
}

async fn load(state: &ApiState, account: &str, sid: &str) -> Result<IncomingNumber, ApiError> {
    state
        .store
        .incoming_number(account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))
}

pub async fn fetch(
    State(state): State<ApiState>,
    Path((account, number)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&number)?;
    let number = load(&state, &account, sid).await?;
    Ok(Reply::one(format, TAG, json::incoming_number(&number)))
}

/// Updates a number's configuration; `AccountSid` transfers it to another account of the
/// same tree (only with the top-level account's credentials, as on Twilio).
pub async fn update(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((account, number)): Path<(String, String)>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&number)?;
    let params = Params::from_body(&body)?;
    let mut number = load(&state, &account, sid).await?;
    let transfer_to = params.get("AccountSid").filter(|to| *to != account);
    if let Some(to) = transfer_to {
        check_transfer(&state, &principal, to).await?;
    }
    apply(&mut number, &params)?;
    number.date_updated = now_ms();
    if !state.store.update_incoming_number(&number).await? {
        return Err(ApiError::not_found_resource(sid));
    }
    if let Some(to) = transfer_to {
        if !state
            .store
            .move_incoming_number(&account, sid, to, number.date_updated)
            .await?
        {
            return Err(ApiError::not_found_resource(sid));
        }
        number.account_sid = to.to_string();
    }
    Ok(Reply::one(format, TAG, json::incoming_number(&number)))
}

/// A transfer needs the top-level account's credentials and a target in its tree.
async fn check_transfer(state: &ApiState, principal: &Principal, to: &str) -> Result<(), ApiError> {
    if principal.account.parent_sid.is_some() {
        return Err(ApiError::forbidden(
            "Only the parent account can transfer numbers between its accounts",
        ));
    }
    let in_tree = to == principal.sid()
        || state
            .store
            .account_details(to)
            .await?
            .is_some_and(|a| a.parent_sid.as_deref() == Some(principal.sid()));
    if !in_tree {
        return Err(ApiError::invalid_parameter(
            "AccountSid",
            "must be your account or one of its subaccounts",
        ));
    }
    Ok(())
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((account, number)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, _) = resource_sid(&number)?;
    if !state.store.delete_incoming_number(&account, sid).await? {
        return Err(ApiError::not_found_resource(sid));
    }
    Ok(Reply::deleted())
}
