//! Call recordings: one row per recording, from the moment the media plane starts it
//! (`in-progress`) to its end (`completed`, `absent` when nothing was heard, `failed`).
//! The audio itself is a WAV file the media process writes into the recordings directory;
//! the row carries the status callback the recording reports to, so its end can be
//! reported after the call is gone.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::paging::{bind_page, list_sql, page_of_request, ListOrder};
use crate::{Page, PageRequest, Store, StoreError};

/// A recording of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// `RE` + 32 hex digits (the hex names the WAV file).
    pub sid: String,
    pub account_sid: String,
    pub call_sid: String,
    /// `in-progress`, `completed`, `absent`, `failed`.
    pub status: String,
    /// 1 or 2.
    pub channels: u8,
    /// Twilio's `source`: `OutboundAPI`, `RecordVerb`, `StartCallRecordingAPI`, …
    pub source: String,
    pub duration_ms: Option<i64>,
    pub file_bytes: Option<i64>,
    pub error_code: Option<i64>,
    pub start_time: i64,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    /// Which of `in-progress`, `completed`, `absent` reach the callback.
    pub status_callback_events: Vec<String>,
    pub date_created: i64,
    pub date_updated: i64,
}

/// Filters of the Recordings list.
#[derive(Debug, Clone, Default)]
pub struct RecordingFilter {
    pub call_sid: Option<String>,
    /// Created at or after (Unix ms).
    pub created_from: Option<i64>,
    /// Created before (Unix ms).
    pub created_before: Option<i64>,
}

impl Store {
    pub async fn insert_recording(&self, r: &Recording) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recordings (sid, account_sid, call_sid, status, channels, source,
                duration_ms, file_bytes, error_code, start_time, status_callback,
                status_callback_method, status_callback_events, date_created, date_updated)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.sid)
        .bind(&r.account_sid)
        .bind(&r.call_sid)
        .bind(&r.status)
        .bind(i64::from(r.channels))
        .bind(&r.source)
        .bind(r.duration_ms)
        .bind(r.file_bytes)
        .bind(r.error_code)
        .bind(r.start_time)
        .bind(&r.status_callback)
        .bind(&r.status_callback_method)
        .bind(r.status_callback_events.join(" "))
        .bind(r.date_created)
        .bind(r.date_updated)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A recording by SID alone (the media plane's completion knows no account).
    pub async fn recording_by_sid(&self, sid: &str) -> Result<Option<Recording>, StoreError> {
        let row = sqlx::query("SELECT * FROM recordings WHERE sid = ?")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(recording_from_row).transpose()
    }

    /// One recording of the account.
    pub async fn recording(
        &self,
        account_sid: &str,
        sid: &str,
    ) -> Result<Option<Recording>, StoreError> {
        let row = sqlx::query("SELECT * FROM recordings WHERE account_sid = ? AND sid = ?")
            .bind(account_sid)
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(recording_from_row).transpose()
    }

    /// Ends an in-progress recording; `false` if it was not in progress.
    pub async fn finish_recording(
        &self,
        sid: &str,
        status: &str,
        duration_ms: i64,
        file_bytes: i64,
        error_code: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE recordings SET status = ?, duration_ms = ?, file_bytes = ?, error_code = ?,
                date_updated = ?
             WHERE sid = ? AND status = 'in-progress'",
        )
        .bind(status)
        .bind(duration_ms)
        .bind(file_bytes)
        .bind(error_code)
        .bind(now)
        .bind(sid)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Marks every in-progress recording failed (the media plane that made them is gone).
    pub async fn fail_unfinished_recordings(&self, now: i64) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE recordings SET status = 'failed', date_updated = ?
             WHERE status = 'in-progress'",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// A page of the account's recordings, newest first.
    pub async fn list_recordings(
        &self,
        account_sid: &str,
        filter: &RecordingFilter,
        request: &PageRequest,
    ) -> Result<Page<Recording>, StoreError> {
        let sql = list_sql(
            "SELECT * FROM recordings WHERE account_sid = ?
                AND (? IS NULL OR call_sid = ?)
                AND (? IS NULL OR date_created >= ?)
                AND (? IS NULL OR date_created < ?)",
            ListOrder::NewestFirst,
            request,
        );
        let query = sqlx::query(sql)
            .bind(account_sid)
            .bind(&filter.call_sid)
            .bind(&filter.call_sid)
            .bind(filter.created_from)
            .bind(filter.created_from)
            .bind(filter.created_before)
            .bind(filter.created_before);
        let rows = bind_page(query, request).fetch_all(&self.pool).await?;
        page_of_request(rows, request, recording_from_row)
    }

    /// Deletes a finished recording's row; `false` when the account has no such recording
    /// (or it is still in progress).
    pub async fn delete_recording(&self, account_sid: &str, sid: &str) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "DELETE FROM recordings WHERE account_sid = ? AND sid = ? AND status != 'in-progress'",
        )
        .bind(account_sid)
        .bind(sid)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

fn recording_from_row(r: &SqliteRow) -> Result<Recording, StoreError> {
    let channels: i64 = r.try_get("channels")?;
    let events: String = r.try_get("status_callback_events")?;
    Ok(Recording {
        sid: r.try_get("sid")?,
        account_sid: r.try_get("account_sid")?,
        call_sid: r.try_get("call_sid")?,
        status: r.try_get("status")?,
        channels: u8::try_from(channels)
            .map_err(|_| StoreError::Invalid(format!("recording channels {channels}")))?,
        source: r.try_get("source")?,
        duration_ms: r.try_get("duration_ms")?,
        file_bytes: r.try_get("file_bytes")?,
        error_code: r.try_get("error_code")?,
        start_time: r.try_get("start_time")?,
        status_callback: r.try_get("status_callback")?,
        status_callback_method: r.try_get("status_callback_method")?,
        status_callback_events: events.split_whitespace().map(str::to_string).collect(),
        date_created: r.try_get("date_created")?,
        date_updated: r.try_get("date_updated")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(sid: &str, account: &str, call: &str, created: i64) -> Recording {
        Recording {
            sid: sid.into(),
            account_sid: account.into(),
            call_sid: call.into(),
            status: "in-progress".into(),
            channels: 2,
            source: "OutboundAPI".into(),
            duration_ms: None,
            file_bytes: None,
            error_code: None,
            start_time: created,
            status_callback: Some("http://app.test/rec".into()),
            status_callback_method: "POST".into(),
            status_callback_events: vec!["in-progress".into(), "completed".into()],
            date_created: created,
            date_updated: created,
        }
    }

    #[tokio::test]
    async fn a_recording_runs_finishes_once_and_is_listed_per_account() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .insert_recording(&recording("RE1", "AC1", "CA1", 10))
            .await
            .unwrap();
        store
            .insert_recording(&recording("RE2", "AC1", "CA2", 20))
            .await
            .unwrap();
        store
            .insert_recording(&recording("RE3", "AC2", "CA3", 30))
            .await
            .unwrap();
        assert_eq!(
            store
                .recording_by_sid("RE1")
                .await
                .unwrap()
                .unwrap()
                .status_callback_events,
            ["in-progress", "completed"]
        );
        assert!(store.recording("AC2", "RE1").await.unwrap().is_none());
        // In progress: not deletable.
        assert!(!store.delete_recording("AC1", "RE1").await.unwrap());
        assert!(store
            .finish_recording("RE1", "completed", 4200, 67244, None, 50)
            .await
            .unwrap());
        assert!(!store
            .finish_recording("RE1", "failed", 0, 0, None, 60)
            .await
            .unwrap());
        let done = store.recording("AC1", "RE1").await.unwrap().unwrap();
        assert_eq!(
            (done.status.as_str(), done.duration_ms, done.file_bytes),
            ("completed", Some(4200), Some(67244))
        );

        let page = store
            .list_recordings(
                "AC1",
                &RecordingFilter::default(),
                &PageRequest::offset(0, 10),
            )
            .await
            .unwrap();
        let sids: Vec<_> = page.items.iter().map(|r| r.sid.as_str()).collect();
        assert_eq!(sids, ["RE2", "RE1"]);
        let by_call = RecordingFilter {
            call_sid: Some("CA2".into()),
            ..Default::default()
        };
        let page = store
            .list_recordings("AC1", &by_call, &PageRequest::offset(0, 10))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);

        assert_eq!(store.fail_unfinished_recordings(70).await.unwrap(), 2);
        assert_eq!(
            store.recording("AC1", "RE2").await.unwrap().unwrap().status,
            "failed"
        );
        assert!(!store.delete_recording("AC2", "RE1").await.unwrap());
        assert!(store.delete_recording("AC1", "RE1").await.unwrap());
        assert!(store.recording("AC1", "RE1").await.unwrap().is_none());
    }
}
