//! The Conferences resource (`…/Conferences`, stored rooms: live and finished) and its
//! Participants subresource (`…/Conferences/{Sid}/Participants`, the live participants
//! only, as on Twilio: a participant whose call left is gone from it).
//!
//! Reads of conferences come from the store; participants, and every change (ending a
//! conference, muting, holding or removing a participant), go through the call router's
//! live registry ([`crate::CallControl`]). A participant is addressed by its call SID or by
//! its label. Creating a participant places a call (Create Call) whose document joins it to
//! the conference.

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

/// Create Participant: dials `To` and joins the answered call to the conference (by SID,
/// or by friendly name: a room that does not exist yet is created by its first
/// participant). The `Conference*` parameters and the participant's own (`Muted`, `Beep`,
/// `StartConferenceOnEnter`, …) become the call's `<Dial><Conference>`; the others are
/// Create Call's.
pub async fn create_participant(
    State(state): State<ApiState>,
    Path((account, conference)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let format = Format::of_path(uri.path());
    let params = Params::from_body(&body)?;
    let is_sid = conference.len() == 34 && conference.starts_with("CF");
    let (conference_sid, name) = if is_sid {
        let stored = load(&state, &account, &conference).await?;
        if stored.status == "completed" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                20001,
                format!("Conference {} is completed", stored.sid),
            ));
        }
        (Some(stored.sid), stored.friendly_name)
    } else {
        (None, conference.clone())
    };
    let twiml = participant_twiml(&params, &name)?;
    let request = crate::calls::place_request(&account, &params, Some(twiml))?;
    let record = crate::calls::place(&state, request).await?;
    let view = ParticipantView {
        call_sid: record.sid.clone(),
        label: params.get("Label").map(str::to_string),
        muted: flag(&params, "Muted")?.unwrap_or(false),
        hold: false,
        start_conference_on_enter: flag(&params, "StartConferenceOnEnter")?.unwrap_or(true),
        end_conference_on_exit: flag(&params, "EndConferenceOnExit")?.unwrap_or(false),
        date_created: record.date_created,
        date_updated: record.date_updated,
    };
    let mut body = participant_json(
        &account,
        conference_sid.as_deref().unwrap_or(&conference),
        &view,
    );
    body["status"] = json!("queued");
    if conference_sid.is_none() {
        body["conference_sid"] = Value::Null;
    }
    Ok(Reply::created(format, PARTICIPANT_TAG, body))
}

/// The `<Dial><Conference>` document a created participant's call runs.
fn participant_twiml(params: &Params, name: &str) -> Result<String, ApiError> {
    let mut attributes = String::new();
    let mut attribute = |key: &str, value: &str| {
        attributes.push_str(&format!(" {key}=\"{}\"", xml_escape(value)));
    };
    for (param, attr) in [
        ("Muted", "muted"),
        ("StartConferenceOnEnter", "startConferenceOnEnter"),
        ("EndConferenceOnExit", "endConferenceOnExit"),
    ] {
        if let Some(value) = flag(params, param)? {
            attribute(attr, &value.to_string());
        }
    }
    if let Some(beep) = params.get("Beep") {
        if !["true", "false", "onEnter", "onExit"].contains(&beep) {
            return Err(ApiError::invalid_parameter(
                "Beep",
                "must be true, false, onEnter or onExit",
            ));
        }
        attribute("beep", beep);
    }
    if let Some(url) = params.get("WaitUrl") {
        attribute("waitUrl", url);
    }
    if let Some(method) = params.method("WaitMethod")? {
        attribute("waitMethod", &method);
    }
    if let Some(max) = params.get("MaxParticipants") {
        let valid = max.parse::<u32>().is_ok_and(|n| (2..=250).contains(&n));
        if !valid {
            return Err(ApiError::invalid_parameter(
                "MaxParticipants",
                "must be 2 to 250",
            ));
        }
        attribute("maxParticipants", max);
    }
    if let Some(label) = params.get("Label") {
        attribute("participantLabel", label);
    }
    if let Some(Some(url)) = params.url("ConferenceStatusCallback")? {
        attribute("statusCallback", &url);
    }
    if let Some(method) = params.method("ConferenceStatusCallbackMethod")? {
        attribute("statusCallbackMethod", &method);
    }
    let events: Vec<&str> = params
        .0
        .iter()
        .filter(|(k, _)| k == "ConferenceStatusCallbackEvent")
        .flat_map(|(_, v)| v.split_whitespace())
        .collect();
    if !events.is_empty() {
        attribute("statusCallbackEvent", &events.join(" "));
    }
    Ok(format!(
        "<Response><Dial><Conference{attributes}>{}</Conference></Dial></Response>",
        xml_escape(name)
    ))
}

/// `text` safe inside XML text and double-quoted attributes.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn a_created_participant_joins_with_its_attributes_escaped() {
        let twiml = participant_twiml(
            &params(&[
                ("Muted", "true"),
                ("Beep", "onExit"),
                ("Label", "agent \"A\" & co"),
                ("ConferenceStatusCallback", "http://app/conf?a=1&b=2"),
                ("ConferenceStatusCallbackEvent", "start end"),
                ("ConferenceStatusCallbackEvent", "join"),
                ("WaitUrl", ""),
            ]),
            "room <1>",
        )
        .unwrap();
        let parsed = twiml::parse_voice(&twiml).unwrap();
        let twiml::Verb::Dial(dial) = &parsed.verbs[0] else {
            panic!("{twiml}")
        };
        let twiml::DialTarget::Conference(conference) = &dial.targets[0] else {
            panic!("{twiml}")
        };
        assert_eq!(conference.name, "room <1>");
        assert!(conference.muted);
        assert_eq!(conference.beep, twiml::ConferenceBeep::OnExit);
        assert_eq!(
            conference.participant_label.as_deref(),
            Some("agent \"A\" & co")
        );
        assert_eq!(
            conference.status_callback.as_deref(),
            Some("http://app/conf?a=1&b=2")
        );
        assert_eq!(conference.status_callback_event.len(), 3);
        assert_eq!(conference.wait_url.as_deref(), Some(""));
    }

    #[test]
    fn bad_participant_parameters_are_400s() {
        for bad in [
            ("Beep", "loud"),
            ("Muted", "yes"),
            ("MaxParticipants", "1"),
            ("MaxParticipants", "251"),
            ("WaitMethod", "PUT"),
        ] {
            let error = participant_twiml(&params(&[bad]), "r").unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }
}
