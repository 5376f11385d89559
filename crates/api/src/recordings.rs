//! The Recordings resource: an account's call recordings (`…/Recordings`, and per call
//! `…/Calls/{CallSid}/Recordings`), their metadata as JSON/XML/CSV and their audio as
//! WAV (`…/Recordings/{Sid}.wav`, or the bare SID as Twilio serves it). The media process
//! writes the files (`<recordings dir>/<hex of the SID>.wav`) and renames them into place
//! only when complete, so a file that exists is whole. Deleting a recording removes its
//! file too. The audio is served under the same authentication as the rest of the API.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use store::{Recording, RecordingFilter};

use crate::format::{Format, Reply};
use crate::params::Params;
use crate::{json, paging, ApiError, ApiState};

const TAG: &str = "Recording";
/// Bytes read from a recording file per chunk of the response body.
const CHUNK: usize = 64 * 1024;

pub async fn list(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Reply, ApiError> {
    let params = Params(query.clone());
    let filter = filter_of(&params, params.get("CallSid").map(str::to_string))?;
    list_filtered(&state, &account, uri, &query, filter).await
}

pub async fn list_for_call(
    State(state): State<ApiState>,
    Path((account, call)): Path<(String, String)>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Reply, ApiError> {
    let params = Params(query.clone());
    let filter = filter_of(&params, Some(call))?;
    list_filtered(&state, &account, uri, &query, filter).await
}

fn filter_of(params: &Params, call_sid: Option<String>) -> Result<RecordingFilter, ApiError> {
    let (created_from, created_before) = crate::calls::time_filter(&params.0, "DateCreated")?;
    Ok(RecordingFilter {
        call_sid,
        created_from,
        created_before,
    })
}

async fn list_filtered(
    state: &ApiState,
    account: &str,
    uri: Uri,
    query: &[(String, String)],
    filter: RecordingFilter,
) -> Result<Reply, ApiError> {
    let paging = paging::Paging::from_query(query)?;
    let page = state
        .store
        .list_recordings(account, &filter, &paging.request())
        .await?;
    let body = paging.list(
        "recordings",
        &page,
        |r| recording_json(r, &state.self_url),
        uri.path(),
        query,
    );
    Ok(Reply::list(
        Format::of_path(uri.path()),
        "recordings",
        "Recordings",
        TAG,
        body,
    ))
}

/// What a `…/Recordings/{segment}` request asks for.
enum Representation<'a> {
    Metadata(&'a str, Format),
    Wav(&'a str),
}

fn representation(segment: &str) -> Result<Representation<'_>, ApiError> {
    if let Some((sid, format)) = Format::split(segment) {
        return Ok(Representation::Metadata(sid, format));
    }
    match segment.rsplit_once('.') {
        Some((sid, "wav")) => Ok(Representation::Wav(sid)),
        Some((_, "mp3")) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            20404,
            "Recordings are available as .wav (MP3 is not offered by this server)",
        )),
        Some(_) => Err(ApiError::not_found_resource(segment)),
        // The bare SID is the audio, as on Twilio.
        None => Ok(Representation::Wav(segment)),
    }
}

pub async fn fetch(
    State(state): State<ApiState>,
    Path((account, segment)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    match representation(&segment)? {
        Representation::Metadata(sid, format) => {
            let recording = load(&state, &account, sid).await?;
            Ok(
                Reply::one(format, TAG, recording_json(&recording, &state.self_url))
                    .into_response(),
            )
        }
        Representation::Wav(sid) => {
            let recording = load(&state, &account, sid).await?;
            wav_response(&state, &recording).await
        }
    }
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((account, segment)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let sid = match representation(&segment)? {
        Representation::Metadata(sid, _) | Representation::Wav(sid) => sid,
    };
    let recording = load(&state, &account, sid).await?;
    if recording.status == "in-progress" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            20009,
            "A recording in progress cannot be deleted",
        ));
    }
    if !state.store.delete_recording(&account, sid).await? {
        return Err(ApiError::not_found_resource(sid));
    }
    if let Some(path) = file_path(&state, sid) {
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot delete recording file")
            }
        }
    }
    Ok(Reply::deleted())
}

async fn load(state: &ApiState, account: &str, sid: &str) -> Result<Recording, ApiError> {
    state
        .store
        .recording(account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))
}

/// `<recordings dir>/<hex>.wav` for an `RE…` SID (anything else has no file).
fn file_path(state: &ApiState, sid: &str) -> Option<std::path::PathBuf> {
    let id = shmq::RecordingId::from_hex(sid.strip_prefix("RE")?)?;
    Some(state.recordings_dir.join(id.file_name()))
}

/// The WAV file, streamed in chunks (a long recording is never held in memory).
async fn wav_response(state: &ApiState, recording: &Recording) -> Result<Response, ApiError> {
    let unavailable = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The audio of recording {} is not available", recording.sid),
        )
    };
    if recording.status == "in-progress" {
        return Err(unavailable());
    }
    let path = file_path(state, &recording.sid).ok_or_else(unavailable)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| unavailable())?;
    let length = file.metadata().await.map(|m| m.len()).ok();
    let stream = futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut chunk = vec![0u8; CHUNK];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok::<_, std::io::Error>(chunk), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let mut response = (
        [(header::CONTENT_TYPE, "audio/x-wav")],
        Body::from_stream(stream),
    )
        .into_response();
    if let Some(length) = length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(length));
    }
    Ok(response)
}

fn recording_json(r: &Recording, base_url: &str) -> Value {
    let base = format!(
        "/2010-04-01/Accounts/{}/Recordings/{}",
        r.account_sid, r.sid
    );
    json!({
        "account_sid": r.account_sid,
        "api_version": "2010-04-01",
        "call_sid": r.call_sid,
        "conference_sid": null,
        "date_created": json::rfc2822(r.date_created),
        "date_updated": json::rfc2822(r.date_updated),
        "start_time": json::rfc2822(r.start_time),
        // Whole seconds, rounded up; Twilio shows -1 while recording.
        "duration": match r.duration_ms {
            Some(ms) if r.status != "in-progress" => ((ms + 999) / 1000).to_string(),
            _ => "-1".to_string(),
        },
        "sid": r.sid,
        "price": null,
        "price_unit": "USD",
        "status": r.status,
        "channels": r.channels,
        "source": r.source,
        "error_code": r.error_code,
        "uri": format!("{base}.json"),
        "encryption_details": null,
        "subresource_uris": {
            "add_on_results": format!("{base}/AddOnResults.json"),
            "transcriptions": format!("{base}/Transcriptions.json"),
        },
        "media_url": format!("{}{base}", base_url.trim_end_matches('/')),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use base64::Engine;
    use tower::ServiceExt;

    const SID: &str = "RE0123456789abcdef0123456789abcdef";

    async fn state_with_recording(dir: &std::path::Path) -> ApiState {
        let store = store::Store::open_in_memory().await.unwrap();
        for (sid, token) in [("AC1", "token1"), ("AC2", "token2")] {
            store
                .upsert_account(&store::Account {
                    sid: sid.into(),
                    auth_token: token.into(),
                    friendly_name: sid.into(),
                    status: "active".into(),
                    date_created: 0,
                })
                .await
                .unwrap();
        }
        store
            .insert_recording(&Recording {
                sid: SID.into(),
                account_sid: "AC1".into(),
                call_sid: "CA1".into(),
                status: "in-progress".into(),
                channels: 1,
                source: "OutboundAPI".into(),
                duration_ms: None,
                file_bytes: None,
                error_code: None,
                start_time: 1_000,
                status_callback: None,
                status_callback_method: "POST".into(),
                status_callback_events: vec!["completed".into()],
                date_created: 1_000,
                date_updated: 1_000,
            })
            .await
            .unwrap();
        let mut state = ApiState::without_calls(store);
        state.recordings_dir = dir.to_path_buf();
        state
    }

    async fn request(
        state: &ApiState,
        method: &str,
        path: &str,
        user: &str,
        token: &str,
    ) -> (StatusCode, Vec<u8>, String) {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
        let response = crate::router(state.clone())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .header("Authorization", format!("Basic {auth}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, bytes.to_vec(), content_type)
    }

    #[tokio::test]
    async fn metadata_audio_isolation_and_delete() {
        let dir = std::env::temp_dir().join(format!("sb-recordings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = state_with_recording(&dir).await;
        let base = "/2010-04-01/Accounts/AC1/Recordings";

        let (status, body, _) = request(
            &state,
            "GET",
            &format!("{base}/{SID}.json"),
            "AC1",
            "token1",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["status"], "in-progress");
        assert_eq!(json["duration"], "-1");
        assert_eq!(json["call_sid"], "CA1");
        // In progress: no audio yet, and not deletable.
        let (status, _, _) =
            request(&state, "GET", &format!("{base}/{SID}.wav"), "AC1", "token1").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = request(
            &state,
            "DELETE",
            &format!("{base}/{SID}.json"),
            "AC1",
            "token1",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // The media process finished it: 200 KB of audio, more than one chunk.
        let audio: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join("0123456789abcdef0123456789abcdef.wav"), &audio).unwrap();
        state
            .store
            .finish_recording(SID, "completed", 12_300, 200_000, None, 2_000)
            .await
            .unwrap();
        for path in [format!("{base}/{SID}.wav"), format!("{base}/{SID}")] {
            let (status, body, content_type) = request(&state, "GET", &path, "AC1", "token1").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(content_type, "audio/x-wav");
            assert!(body == audio, "the file, byte for byte");
        }
        let (_, body, _) = request(
            &state,
            "GET",
            &format!("{base}.json?CallSid=CA1"),
            "AC1",
            "token1",
        )
        .await;
        let list: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(list["recordings"][0]["duration"], "13");
        let (_, body, _) = request(
            &state,
            "GET",
            "/2010-04-01/Accounts/AC1/Calls/CA2/Recordings.json",
            "AC1",
            "token1",
        )
        .await;
        let list: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(list["recordings"], serde_json::json!([]));

        // Another account sees nothing of it, through its own path either.
        let (status, _, _) =
            request(&state, "GET", &format!("{base}/{SID}.wav"), "AC2", "token2").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = request(
            &state,
            "GET",
            &format!("/2010-04-01/Accounts/AC2/Recordings/{SID}.wav"),
            "AC2",
            "token2",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, _, _) = request(
            &state,
            "DELETE",
            &format!("{base}/{SID}.json"),
            "AC1",
            "token1",
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(!dir.join("0123456789abcdef0123456789abcdef.wav").exists());
        let (status, _, _) = request(
            &state,
            "GET",
            &format!("{base}/{SID}.json"),
            "AC1",
            "token1",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_segment_says_metadata_or_audio() {
        assert!(matches!(
            representation("RE1.json"),
            Ok(Representation::Metadata("RE1", Format::Json))
        ));
        assert!(matches!(
            representation("RE1.wav"),
            Ok(Representation::Wav("RE1"))
        ));
        assert!(matches!(
            representation("RE1"),
            Ok(Representation::Wav("RE1"))
        ));
        assert_eq!(representation("RE1.mp3").err().map(|e| e.code), Some(20404));
        assert_eq!(representation("RE1.exe").err().map(|e| e.code), Some(20404));
    }
}
