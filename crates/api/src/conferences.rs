//! The Conferences resource (`…/Conferences`, stored rooms: live and finished) and its
//! Participants subresource (`…/Conferences/{Sid}/Participants`, the live participants
//! only, as on Twilio: a participant whose call left is gone from it).
//!
//! Reads of conferences come from the store; participants, and every change (ending a
//! conference, muting, holding or removing a participant), go through the call router's
//! live registry ([`crate::CallControl`]). A participant is addressed by its call SID or by
//! its label.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use serde_json::{json, Value};
use store::{Conference, ConferenceFilter, Page, SortKey};

use crate::format::{Format, Reply};
use crate::paging::{Listed, Paging};
use crate::params::Params;
use crate::{json, resource_sid, ApiError, ApiState};

const TAG: &str = "Conference";
const PARTICIPANT_TAG: &str = "Participant";

/// One live participant, as the call router reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantView {
    pub call_sid: String,
    pub label: Option<String>,
    pub muted: bool,
    pub hold: bool,
    pub start_conference_on_enter: bool,
    pub end_conference_on_exit: bool,
    pub date_created: i64,
    pub date_updated: i64,
}

/// A change to a participant (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParticipantUpdate {
    pub muted: Option<bool>,
    pub hold: Option<bool>,
    /// Empty: the platform's hold music.
    pub hold_url: Option<String>,
    pub hold_method: Option<String>,
    pub end_conference_on_exit: Option<bool>,
}

impl Listed for Conference {
    fn sort_key(&self) -> SortKey {
        SortKey {
            date_created: self.date_created,
            sid: self.sid.clone(),
        }
    }
}

impl Listed for ParticipantView {
    fn sort_key(&self) -> SortKey {
        SortKey {
            date_created: self.date_created,
            sid: self.call_sid.clone(),
        }
    }
}

pub async fn list(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Reply, ApiError> {
    let params = Params(query.clone());
    let (created_from, created_before) = crate::calls::time_filter(&query, "DateCreated")?;
    let (updated_from, updated_before) = crate::calls::time_filter(&query, "DateUpdated")?;
    let status = match params.get("Status") {
        None => None,
        Some(s @ ("init" | "in-progress" | "completed")) => Some(s.to_string()),
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "Status",
                "must be init, in-progress or completed",
            ))
        }
    };
    let filter = ConferenceFilter {
        friendly_name: params.get("FriendlyName").map(str::to_string),
        status,
        created_from,
        created_before,
        updated_from,
        updated_before,
    };
    let paging = Paging::from_query(&query)?;
    let page = state
        .store
        .list_conferences(&account, &filter, &paging.request())
        .await?;
    let body = paging.list("conferences", &page, conference_json, uri.path(), &query);
    Ok(Reply::list(
        Format::of_path(uri.path()),
        "conferences",
        "Conferences",
        TAG,
        body,
    ))
}

pub async fn fetch(
    State(state): State<ApiState>,
    Path((account, segment)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&segment)?;
    let conference = load(&state, &account, sid).await?;
    Ok(Reply::one(format, TAG, conference_json(&conference)))
}

/// `Status=completed` ends a live conference for everyone.
pub async fn update(
    State(state): State<ApiState>,
    Path((account, segment)): Path<(String, String)>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&segment)?;
    let params = Params::from_body(&body)?;
    let conference = load(&state, &account, sid).await?;
    if params.get("AnnounceUrl").is_some_and(|u| !u.is_empty()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            20001,
            "AnnounceUrl is not supported by this server",
        ));
    }
    match params.get("Status") {
        None => return Ok(Reply::one(format, TAG, conference_json(&conference))),
        Some("completed") => {}
        Some(_) => return Err(ApiError::invalid_parameter("Status", "must be completed")),
    }
    if conference.status != "completed" && !state.calls.end_conference(&account, sid).await {
        return Err(not_live(sid));
    }
    let conference = load(&state, &account, sid).await?;
    Ok(Reply::one(format, TAG, conference_json(&conference)))
}

pub async fn list_participants(
    State(state): State<ApiState>,
    Path((account, conference)): Path<(String, String)>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Reply, ApiError> {
    let params = Params(query.clone());
    let muted = flag(&params, "Muted")?;
    let hold = flag(&params, "Hold")?;
    if flag(&params, "Coaching")? == Some(true) {
        // Nobody coaches here.
        return participants_page(&account, &conference, Vec::new(), &uri, &query);
    }
    let stored = load(&state, &account, &conference).await?;
    let participants = state
        .calls
        .participants(&account, &stored.sid)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| muted.is_none_or(|m| p.muted == m))
        .filter(|p| hold.is_none_or(|h| p.hold == h))
        .collect();
    participants_page(&account, &conference, participants, &uri, &query)
}

fn participants_page(
    account: &str,
    conference: &str,
    mut participants: Vec<ParticipantView>,
    uri: &Uri,
    query: &[(String, String)],
) -> Result<Reply, ApiError> {
    // A page of the live list by page number (a conference holds at most 250).
    let mut paging = Paging::from_query(query)?;
    paging.token = None;
    let start = (paging.page as usize).saturating_mul(paging.page_size as usize);
    let total = participants.len();
    participants.drain(..start.min(total));
    let has_more = participants.len() > paging.page_size as usize;
    participants.truncate(paging.page_size as usize);
    let page = Page {
        items: participants,
        has_more,
    };
    let body = paging.list(
        "participants",
        &page,
        |p| participant_json(account, conference, p),
        uri.path(),
        query,
    );
    Ok(Reply::list(
        Format::of_path(uri.path()),
        "participants",
        "Participants",
        PARTICIPANT_TAG,
        body,
    ))
}

pub async fn fetch_participant(
    State(state): State<ApiState>,
    Path((account, conference, segment)): Path<(String, String, String)>,
) -> Result<Reply, ApiError> {
    let (participant, format) = resource_sid(&segment)?;
    let view = state
        .calls
        .participant(&account, &conference, participant)
        .ok_or_else(|| ApiError::not_found_resource(participant))?;
    Ok(Reply::one(
        format,
        PARTICIPANT_TAG,
        participant_json(&account, &conference, &view),
    ))
}

pub async fn update_participant(
    State(state): State<ApiState>,
    Path((account, conference, segment)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let (participant, format) = resource_sid(&segment)?;
    let params = Params::from_body(&body)?;
    if params.get("AnnounceUrl").is_some_and(|u| !u.is_empty()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            20001,
            "AnnounceUrl is not supported by this server",
        ));
    }
    let hold_url = params.url("HoldUrl")?.map(Option::unwrap_or_default);
    let update = ParticipantUpdate {
        muted: flag(&params, "Muted")?,
        hold: flag(&params, "Hold")?,
        hold_url,
        hold_method: params.method("HoldMethod")?,
        end_conference_on_exit: flag(&params, "EndConferenceOnExit")?,
    };
    let view = state
        .calls
        .update_participant(&account, &conference, participant, update)
        .await
        .ok_or_else(|| ApiError::not_found_resource(participant))?;
    Ok(Reply::one(
        format,
        PARTICIPANT_TAG,
        participant_json(&account, &conference, &view),
    ))
}

/// Removes the participant from the conference (its call goes on with its next verb).
pub async fn delete_participant(
    State(state): State<ApiState>,
    Path((account, conference, segment)): Path<(String, String, String)>,
) -> Result<Reply, ApiError> {
    let (participant, _) = resource_sid(&segment)?;
    if !state
        .calls
        .kick_participant(&account, &conference, participant)
        .await
    {
        return Err(ApiError::not_found_resource(participant));
    }
    Ok(Reply::deleted())
}

async fn load(state: &ApiState, account: &str, sid: &str) -> Result<Conference, ApiError> {
    state
        .store
        .conference(account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))
}

fn not_live(sid: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        20404,
        format!("Conference {sid} is not in progress on this server"),
    )
}

/// An optional `true`/`false` parameter.
fn flag(params: &Params, name: &str) -> Result<Option<bool>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid_parameter(name, "must be true or false")),
    }
}

fn conference_json(c: &Conference) -> Value {
    let base = format!(
        "/2010-04-01/Accounts/{}/Conferences/{}",
        c.account_sid, c.sid
    );
    json!({
        "account_sid": c.account_sid,
        "api_version": "2010-04-01",
        "date_created": json::rfc2822(c.date_created),
        "date_updated": json::rfc2822(c.date_updated),
        "friendly_name": c.friendly_name,
        "region": "us1",
        "sid": c.sid,
        "status": c.status,
        "reason_conference_ended": c.reason_conference_ended,
        "call_sid_ending_conference": c.call_sid_ending_conference,
        "uri": format!("{base}.json"),
        "subresource_uris": {
            "participants": format!("{base}/Participants.json"),
            "recordings": format!("{base}/Recordings.json"),
        },
    })
}

fn participant_json(account: &str, conference: &str, p: &ParticipantView) -> Value {
    json!({
        "account_sid": account,
        "call_sid": p.call_sid,
        "label": p.label,
        "call_sid_to_coach": null,
        "coaching": false,
        "conference_sid": conference,
        "date_created": json::rfc2822(p.date_created),
        "date_updated": json::rfc2822(p.date_updated),
        "end_conference_on_exit": p.end_conference_on_exit,
        "muted": p.muted,
        "hold": p.hold,
        "start_conference_on_enter": p.start_conference_on_enter,
        "status": "connected",
        "queue_time": null,
        "uri": format!(
            "/2010-04-01/Accounts/{account}/Conferences/{conference}/Participants/{}.json",
            p.call_sid
        ),
    })
}
