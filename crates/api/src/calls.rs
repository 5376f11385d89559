//! The Calls resource (list with filters, fetch, delete) and Notifications.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use store::{CallDeletion, CallFilter};

use crate::format::{Format, Reply};
use crate::params::{date_range, e164, Params};
use crate::{
    json, paging, resource_sid, ApiError, ApiState, LiveUpdate, PlaceCall, PlaceCallError,
};

type QueryPairs = Query<Vec<(String, String)>>;

fn param(query: &[(String, String)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Reads one family of date filters (`StartTime`, `StartTime<`, `StartTime>`) as a half-open
/// `[from, before)` range in Unix ms. `X<=D` and `X>=D` arrive as keys `X<`/`X>` too.
pub(crate) fn time_filter(
    query: &[(String, String)],
    name: &str,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let mut from = None;
    let mut before = None;
    if let Some(v) = param(query, name) {
        let range = date_range(name, &v)?;
        from = Some(range.from);
        before = Some(range.until);
    }
    let after_key = format!("{name}>");
    if let Some(v) = param(query, &after_key) {
        let start = date_range(&after_key, v.trim_start_matches('='))?.from;
        from = Some(from.map_or(start, |f: i64| f.max(start)));
    }
    let before_key = format!("{name}<");
    if let Some(v) = param(query, &before_key) {
        let range = date_range(&before_key, v.trim_start_matches('='))?;
        // A date includes its whole day; an instant is an exclusive bound.
        let bound = if range.whole_day {
            range.until
        } else {
            range.from
        };
        before = Some(before.map_or(bound, |b: i64| b.min(bound)));
    }
    Ok((from, before))
}

/// Twilio's default `TimeLimit` (4 hours) and the most we accept (24 hours).
const DEFAULT_TIME_LIMIT_S: u32 = 14_400;
const MAX_TIME_LIMIT_S: u32 = 86_400;

pub async fn list(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    uri: Uri,
    Query(query): QueryPairs,
) -> Result<Reply, ApiError> {
    let paging = paging::Paging::from_query(&query)?;
    let (start_time_from, start_time_before) = time_filter(&query, "StartTime")?;
    let (end_time_from, end_time_before) = time_filter(&query, "EndTime")?;
    let filter = CallFilter {
        to: param(&query, "To"),
        from: param(&query, "From"),
        status: param(&query, "Status"),
        parent_call_sid: param(&query, "ParentCallSid"),
        start_time_from,
        start_time_before,
        end_time_from,
        end_time_before,
    };
    let page = state
        .store
        .list_calls(&account, &filter, &paging.request())
        .await?;
    let body = paging.list("calls", &page, json::call, uri.path(), &query);
    Ok(Reply::list(
        Format::of_path(uri.path()),
        "calls",
        "Calls",
        "Call",
        body,
    ))
}

pub async fn fetch(
    State(state): State<ApiState>,
    Path((account, call)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&call)?;
    let call = state
        .store
        .call(&account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    Ok(Reply::one(format, "Call", json::call(&call)))
}

/// Create Call: validates Twilio's parameters and hands the call to the router, which
/// stores it as `queued` and dials it (through a trunk, or a `sip:` URI).
pub async fn create(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let format = Format::of_path(uri.path());
    let params = Params::from_body(&body)?;
    let request = place_request(&account, &params, None)?;
    let record = place(&state, request).await?;
    Ok(Reply::created(format, "Call", json::call(&record)))
}

/// A Create Call request from its form parameters; `twiml` (the Participants resource's
/// conference document) replaces the `Url`/`Twiml` parameters.
pub(crate) fn place_request(
    account: &str,
    params: &Params,
    twiml: Option<String>,
) -> Result<PlaceCall, ApiError> {
    let required = |name: &str, code: u32| {
        params
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    code,
                    format!("Required parameter \"{name}\" missing."),
                )
            })
    };
    let to = required("To", 21201)?;
    // A phone number or a SIP URI; anything else would reach the catch-all trunk.
    if !to.starts_with("sip:") && e164(&to).is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            21211,
            format!("Invalid 'To' Phone Number: {to}"),
        ));
    }
    let from = required("From", 21213)?;
    let twiml = twiml.or_else(|| params.get("Twiml").map(str::to_string));
    if let Some(xml) = &twiml {
        if let Err(e) = twiml::parse_voice(xml) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                21232,
                format!("Invalid Twiml parameter: {e}"),
            ));
        }
    }
    let url = params.url("Url")?.flatten();
    if url.is_none() && twiml.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            21205,
            "Either Url or Twiml is required",
        ));
    }
    let events: Vec<String> = params
        .0
        .iter()
        .filter(|(k, _)| k == "StatusCallbackEvent")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_string))
        .collect();
    for event in &events {
        if !["initiated", "ringing", "answered", "completed"].contains(&event.as_str()) {
            return Err(ApiError::invalid_parameter("StatusCallbackEvent", event));
        }
    }
    let timeout_seconds = match params.get("Timeout") {
        None => 60,
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|t| (1..=600).contains(t))
            .ok_or_else(|| ApiError::invalid_parameter("Timeout", "must be 1 to 600 seconds"))?,
    };
    let time_limit_seconds = match params.get("TimeLimit") {
        None => DEFAULT_TIME_LIMIT_S,
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|t| (1..=MAX_TIME_LIMIT_S).contains(t))
            .ok_or_else(|| {
                ApiError::invalid_parameter("TimeLimit", "must be 1 to 86400 seconds")
            })?,
    };
    let record = match params.get("Record") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "Record",
                "must be true or false",
            ))
        }
    };
    let record = if record {
        let dual_channel = match params.get("RecordingChannels") {
            None => false,
            Some(c) if c.eq_ignore_ascii_case("mono") => false,
            Some(c) if c.eq_ignore_ascii_case("dual") => true,
            Some(_) => {
                return Err(ApiError::invalid_parameter(
                    "RecordingChannels",
                    "must be mono or dual",
                ))
            }
        };
        let events: Vec<String> = params
            .0
            .iter()
            .filter(|(k, _)| k == "RecordingStatusCallbackEvent")
            .flat_map(|(_, v)| v.split_whitespace().map(str::to_string))
            .collect();
        for event in &events {
            if !["in-progress", "completed", "absent"].contains(&event.as_str()) {
                return Err(ApiError::invalid_parameter(
                    "RecordingStatusCallbackEvent",
                    event,
                ));
            }
        }
        Some(crate::RecordOptions {
            dual_channel,
            status_callback: params.url("RecordingStatusCallback")?.flatten(),
            status_callback_method: params
                .method("RecordingStatusCallbackMethod")?
                .unwrap_or_else(|| "POST".into()),
            status_callback_events: if events.is_empty() {
                vec!["completed".into()]
            } else {
                events
            },
        })
    } else {
        None
    };
    let send_digits = params.get("SendDigits").map(str::to_string);
    if let Some(digits) = &send_digits {
        // The media plane's own rule for what it can send (and how many).
        let valid = digits.len() <= shmq::MAX_SEND_DIGITS
            && digits.bytes().all(shmq::records::is_send_digit);
        if !valid {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                21218,
                "Invalid SendDigits: up to 32 of 0-9 * # A-D and w",
            ));
        }
    }
    Ok(PlaceCall {
        account_sid: account.to_string(),
        to,
        from,
        url,
        method: params.method("Method")?.unwrap_or_else(|| "POST".into()),
        twiml,
        fallback_url: params.url("FallbackUrl")?.flatten(),
        fallback_method: params
            .method("FallbackMethod")?
            .unwrap_or_else(|| "POST".into()),
        status_callback: params.url("StatusCallback")?.flatten(),
        status_callback_method: params
            .method("StatusCallbackMethod")?
            .unwrap_or_else(|| "POST".into()),
        status_callback_events: if events.is_empty() {
            vec!["completed".into()]
        } else {
            events
        },
        timeout_seconds,
        send_digits,
        time_limit_seconds,
        record,
        purpose: crate::CallPurpose::Api,
    })
}

/// Places a call (Create Call, Create Participant), with the API's errors.
pub(crate) async fn place(
    state: &ApiState,
    request: PlaceCall,
) -> Result<store::CallRecord, ApiError> {
    match state.calls.place(request).await {
        Ok(record) => Ok(record),
        Err(PlaceCallError::FromNotOwned) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            21210,
            "The source phone number provided, From, is not yet verified for your account",
        )),
        Err(PlaceCallError::NoRoute) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            21211,
            "Invalid 'To' Phone Number: no route to it",
        )),
        Err(PlaceCallError::Internal(detail)) => {
            tracing::error!(%detail, "placing a call failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                "An internal server error has occurred",
            ))
        }
    }
}

/// Live call control: `Url` (+ `Method`) or `Twiml` redirect the call to new
/// instructions; `Status=completed` hangs it up, `Status=canceled` cancels it if it is not
/// answered yet. A finished call cannot be modified (21220).
pub async fn update(
    State(state): State<ApiState>,
    Path((account, call)): Path<(String, String)>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&call)?;
    let params = Params::from_body(&body)?;
    let record = state
        .store
        .call(&account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    let update = live_update(&params)?;
    let Some(update) = update else {
        // Nothing to change (e.g. only callback parameters): answer with the call.
        return Ok(Reply::one(format, "Call", json::call(&record)));
    };
    let ends_the_call = matches!(update, LiveUpdate::Complete | LiveUpdate::Cancel);
    if record.status.is_final() || !state.calls.update(sid, update) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            21220,
            format!("Call {sid} is not in-progress. Cannot redirect or end it."),
        ));
    }
    // Hanging up or canceling is carried out by the call's own task: answer with its final
    // status as Twilio does, once it is stored (briefly; else the status as it stands).
    let deadline = tokio::time::Instant::now() + END_REPLY_WAIT;
    let mut current = state.store.call(&account, sid).await?.unwrap_or(record);
    while ends_the_call && !current.status.is_final() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        if let Some(latest) = state.store.call(&account, sid).await? {
            current = latest;
        }
    }
    Ok(Reply::one(format, "Call", json::call(&current)))
}

/// How long `Status=completed|canceled` waits for the call to reach its final status.
const END_REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The live update a `POST /Calls/{Sid}` body asks for, validated like Twilio does.
fn live_update(params: &Params) -> Result<Option<LiveUpdate>, ApiError> {
    if let Some(status) = params.get("Status") {
        return match status {
            "completed" => Ok(Some(LiveUpdate::Complete)),
            "canceled" => Ok(Some(LiveUpdate::Cancel)),
            other => Err(ApiError::invalid_parameter(
                "Status",
                &format!("{other:?} is not canceled or completed"),
            )),
        };
    }
    if let Some(twiml) = params.get("Twiml") {
        if let Err(e) = twiml::parse_voice(twiml) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                21232,
                format!("Invalid Twiml parameter: {e}"),
            ));
        }
        return Ok(Some(LiveUpdate::Twiml(twiml.to_string())));
    }
    match params.url("Url")? {
        Some(Some(url)) => {
            let method = params.method("Method")?.unwrap_or_else(|| "POST".into());
            Ok(Some(LiveUpdate::Redirect { url, method }))
        }
        Some(None) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            21205,
            "Url parameter is empty",
        )),
        None => Ok(None),
    }
}

/// Deletes a finished call's record; a live call cannot be deleted (409, Twilio's 20009).
pub async fn delete(
    State(state): State<ApiState>,
    Path((account, call)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, _) = resource_sid(&call)?;
    match state.store.delete_call(&account, sid).await? {
        CallDeletion::Deleted => Ok(Reply::deleted()),
        CallDeletion::NotFound => Err(ApiError::not_found_resource(sid)),
        CallDeletion::StillActive => Err(ApiError::new(
            StatusCode::CONFLICT,
            20009,
            format!("Cannot delete call {sid} before it is complete"),
        )),
    }
}

pub async fn list_call_notifications(
    State(state): State<ApiState>,
    Path((account, call)): Path<(String, String)>,
    uri: Uri,
    Query(query): QueryPairs,
) -> Result<Reply, ApiError> {
    notifications_page(&state, &account, Some(&call), &uri, &query).await
}

pub async fn list_notifications(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    uri: Uri,
    Query(query): QueryPairs,
) -> Result<Reply, ApiError> {
    notifications_page(&state, &account, None, &uri, &query).await
}

/// One page of an account's notifications (optionally of one call) as a Twilio list.
async fn notifications_page(
    state: &ApiState,
    account: &str,
    call: Option<&str>,
    uri: &Uri,
    query: &[(String, String)],
) -> Result<Reply, ApiError> {
    let paging = paging::Paging::from_query(query)?;
    let page = state
        .store
        .list_notifications(account, call, &paging.request())
        .await?;
    let body = paging.list(
        "notifications",
        &page,
        json::notification,
        uri.path(),
        query,
    );
    Ok(Reply::list(
        Format::of_path(uri.path()),
        "notifications",
        "Notifications",
        "Notification",
        body,
    ))
}

pub async fn fetch_notification(
    State(state): State<ApiState>,
    Path((account, notification)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&notification)?;
    let n = state
        .store
        .notification(&account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    Ok(Reply::one(format, "Notification", json::notification(&n)))
}

/// A notification of one call (`…/Calls/{CallSid}/Notifications/{Sid}`): 404 unless it
/// belongs to that call.
pub async fn fetch_call_notification(
    State(state): State<ApiState>,
    Path((account, call, notification)): Path<(String, String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&notification)?;
    let n = state
        .store
        .notification(&account, sid)
        .await?
        .filter(|n| n.call_sid.as_deref() == Some(call.as_str()))
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    Ok(Reply::one(format, "Notification", json::notification(&n)))
}
