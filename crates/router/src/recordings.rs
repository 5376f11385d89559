//! Call recordings on the control plane: a recording is stored (`in-progress`) when the
//! call core asks the media plane to start it, and finished when the media plane's
//! `RecordingDone` arrives — which may be after the call ended, so this runs beside the
//! calls, not inside one. Each change is reported to the recording's status callback
//! (Twilio's `RecordingStatusCallback` parameters), signed, at least once.

use shmq::{Event, RecordingEnd};
use store::{Recording, Store};
use tokio::sync::mpsc::UnboundedReceiver;
use twiml::HttpMethod;
use webhook::{WebhookClient, WebhookRequest};

use crate::call::RecordSetup;
use crate::driver::{deliver_status_callback, now_ms, rfc2822};

/// Stores recordings and reports them.
#[derive(Clone)]
pub(crate) struct RecordingReporter {
    store: Store,
    webhook: WebhookClient,
    /// Base of `RecordingUrl` (`http://host:port`, the REST API).
    api_base_url: String,
}

impl RecordingReporter {
    pub(crate) fn new(store: Store, webhook: WebhookClient, api_base_url: String) -> Self {
        RecordingReporter {
            store,
            webhook,
            api_base_url,
        }
    }

    /// The media plane was asked to record `call_sid`.
    pub(crate) async fn started(&self, account_sid: &str, call_sid: &str, setup: &RecordSetup) {
        let now = now_ms();
        let recording = Recording {
            sid: setup.recording_sid.clone(),
            account_sid: account_sid.to_string(),
            call_sid: call_sid.to_string(),
            status: "in-progress".into(),
            channels: setup.channels as u8,
            source: "OutboundAPI".into(),
            duration_ms: None,
            file_bytes: None,
            error_code: None,
            start_time: now,
            status_callback: setup.status_callback.clone(),
            status_callback_method: crate::call::method_name(setup.status_callback_method).into(),
            status_callback_events: setup.status_callback_events.clone(),
            date_created: now,
            date_updated: now,
        };
        if let Err(e) = self.store.insert_recording(&recording).await {
            tracing::error!(error = %e, recording = %recording.sid, "cannot store recording");
            return;
        }
        self.report(&recording).await;
    }

    /// Consumes the media plane's `RecordingDone` events until the channel closes.
    pub(crate) async fn run(self, mut events: UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            if let Event::RecordingDone {
                recording,
                duration_ms,
                bytes,
                end,
                ..
            } = event
            {
                let sid = format!("RE{}", recording.to_hex());
                self.finished(&sid, duration_ms, bytes, end).await;
            }
        }
    }

    async fn finished(&self, sid: &str, duration_ms: u32, bytes: u64, end: RecordingEnd) {
        let (status, error_code) = final_status(duration_ms, end);
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        match self
            .store
            .finish_recording(
                sid,
                status,
                i64::from(duration_ms),
                bytes,
                error_code,
                now_ms(),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(recording = %sid, "RecordingDone for no recording in progress");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, recording = %sid, "cannot finish recording");
                return;
            }
        }
        match self.store.recording_by_sid(sid).await {
            Ok(Some(recording)) => self.report(&recording).await,
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, recording = %sid, "cannot read recording"),
        }
    }

    /// Posts the recording's status callback if it asked for this status.
    async fn report(&self, recording: &Recording) {
        let Some(url) = &recording.status_callback else {
            return;
        };
        let event = match recording.status.as_str() {
            // A failure is how that recording completed.
            "failed" => "completed",
            other => other,
        };
        if !recording.status_callback_events.iter().any(|e| e == event) {
            return;
        }
        let auth_token = match self.store.account(&recording.account_sid).await {
            Ok(Some(account)) => account.auth_token,
            _ => return,
        };
        let request = WebhookRequest {
            url: url.clone(),
            method: if recording.status_callback_method == "GET" {
                webhook::Method::Get
            } else {
                webhook::Method::Post
            },
            params: callback_params(recording, &self.api_base_url),
            auth_token,
        };
        tokio::spawn(deliver_status_callback(self.webhook.clone(), request));
    }
}

/// The stored status of a finished recording, and its error code.
fn final_status(duration_ms: u32, end: RecordingEnd) -> (&'static str, Option<i64>) {
    match end {
        RecordingEnd::WriteFailed => ("failed", Some(16104)),
        _ if duration_ms == 0 => ("absent", None),
        _ => ("completed", None),
    }
}

/// Twilio's recording status callback parameters.
fn callback_params(r: &Recording, api_base_url: &str) -> Vec<(String, String)> {
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Recordings/{}",
        api_base_url.trim_end_matches('/'),
        r.account_sid,
        r.sid
    );
    let mut params = vec![
        ("AccountSid".to_string(), r.account_sid.clone()),
        ("CallSid".to_string(), r.call_sid.clone()),
        ("RecordingSid".to_string(), r.sid.clone()),
        ("RecordingUrl".to_string(), url),
        ("RecordingStatus".to_string(), r.status.clone()),
        ("RecordingChannels".to_string(), r.channels.to_string()),
        ("RecordingSource".to_string(), r.source.clone()),
        ("RecordingStartTime".to_string(), rfc2822(r.start_time)),
        (
            "ErrorCode".to_string(),
            r.error_code.unwrap_or(0).to_string(),
        ),
    ];
    if let Some(ms) = r.duration_ms {
        // Whole seconds, rounded up as Twilio bills them.
        params.push((
            "RecordingDuration".to_string(),
            ((ms + 999) / 1000).to_string(),
        ));
    }
    params
}

/// `Record=true` on Create Call, as the router keeps it with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRequest {
    pub channels: shmq::RecordingChannels,
    pub status_callback: Option<String>,
    pub status_callback_method: HttpMethod,
    pub status_callback_events: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(status: &str, duration_ms: Option<i64>) -> Recording {
        Recording {
            sid: "RE0123".into(),
            account_sid: "AC1".into(),
            call_sid: "CA1".into(),
            status: status.into(),
            channels: 2,
            source: "OutboundAPI".into(),
            duration_ms,
            file_bytes: None,
            error_code: None,
            start_time: 0,
            status_callback: None,
            status_callback_method: "POST".into(),
            status_callback_events: vec![],
            date_created: 0,
            date_updated: 0,
        }
    }

    #[test]
    fn final_statuses() {
        assert_eq!(
            final_status(4000, RecordingEnd::SessionClosed),
            ("completed", None)
        );
        assert_eq!(final_status(0, RecordingEnd::Stopped), ("absent", None));
        assert_eq!(
            final_status(4000, RecordingEnd::WriteFailed),
            ("failed", Some(16104))
        );
        assert_eq!(
            final_status(10, RecordingEnd::MaxLength),
            ("completed", None)
        );
    }

    #[test]
    fn callback_parameters_are_twilios() {
        let params = callback_params(
            &recording("completed", Some(4001)),
            "http://127.0.0.1:8080/",
        );
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("RecordingUrl"),
            Some("http://127.0.0.1:8080/2010-04-01/Accounts/AC1/Recordings/RE0123")
        );
        assert_eq!(get("RecordingDuration"), Some("5"));
        assert_eq!(get("RecordingStatus"), Some("completed"));
        assert_eq!(get("RecordingChannels"), Some("2"));
        assert_eq!(
            get("RecordingStartTime"),
            Some("Thu, 01 Jan 1970 00:00:00 +0000")
        );
        assert_eq!(get("ErrorCode"), Some("0"));
        let running = callback_params(&recording("in-progress", None), "http://x");
        assert!(!running.iter().any(|(k, _)| k == "RecordingDuration"));
    }
}
