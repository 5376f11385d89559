//! Conferences: one row per conference room, from its creation (`init`) through
//! `in-progress` to `completed`, with why it ended. Live participants are not stored: the
//! router's registry holds them (Twilio's Participants resource shows only live ones).

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::paging::{bind_page, list_sql, page_of_request, ListOrder};
use crate::{Page, PageRequest, Store, StoreError};

/// A conference room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    /// `CF` + 32 hex digits.
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    /// `init`, `in-progress`, `completed`.
    pub status: String,
    /// Twilio's `reason_conference_ended`, once completed.
    pub reason_conference_ended: Option<String>,
    pub call_sid_ending_conference: Option<String>,
    pub date_created: i64,
    pub date_updated: i64,
}

/// Filters of the Conferences list.
#[derive(Debug, Clone, Default)]
pub struct ConferenceFilter {
    pub friendly_name: Option<String>,
    pub status: Option<String>,
    /// Created at or after (Unix ms).
    pub created_from: Option<i64>,
    /// Created before (Unix ms).
    pub created_before: Option<i64>,
    /// Updated at or after (Unix ms).
    pub updated_from: Option<i64>,
    /// Updated before (Unix ms).
    pub updated_before: Option<i64>,
}

impl Store {
    /// Inserts the conference or updates it, unless the stored row is newer or already
    /// `completed` (writes of one room may arrive out of order).
    pub async fn upsert_conference(&self, c: &Conference) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO conferences (sid, account_sid, friendly_name, status,
                reason_conference_ended, call_sid_ending_conference, date_created, date_updated)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(sid) DO UPDATE SET status = excluded.status,
                reason_conference_ended = excluded.reason_conference_ended,
                call_sid_ending_conference = excluded.call_sid_ending_conference,
                date_updated = excluded.date_updated
             WHERE conferences.status != 'completed'
                AND excluded.date_updated >= conferences.date_updated",
        )
        .bind(&c.sid)
        .bind(&c.account_sid)
        .bind(&c.friendly_name)
        .bind(&c.status)
        .bind(&c.reason_conference_ended)
        .bind(&c.call_sid_ending_conference)
        .bind(c.date_created)
        .bind(c.date_updated)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One conference of the account.
    pub async fn conference(
        &self,
        account_sid: &str,
        sid: &str,
    ) -> Result<Option<Conference>, StoreError> {
        let row = sqlx::query("SELECT * FROM conferences WHERE account_sid = ? AND sid = ?")
            .bind(account_sid)
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(conference_from_row).transpose()
    }

    /// Marks every unfinished conference completed (the node that ran them restarted).
    pub async fn complete_unfinished_conferences(&self, now: i64) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE conferences SET status = 'completed', date_updated = ?,
                reason_conference_ended = 'conference-ended-via-api'
             WHERE status != 'completed'",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// A page of the account's conferences, newest first.
    pub async fn list_conferences(
        &self,
        account_sid: &str,
        filter: &ConferenceFilter,
        request: &PageRequest,
    ) -> Result<Page<Conference>, StoreError> {
        let sql = list_sql(
            "SELECT * FROM conferences WHERE account_sid = ?
                AND (? IS NULL OR friendly_name = ?)
                AND (? IS NULL OR status = ?)
                AND (? IS NULL OR date_created >= ?)
                AND (? IS NULL OR date_created < ?)
                AND (? IS NULL OR date_updated >= ?)
                AND (? IS NULL OR date_updated < ?)",
            ListOrder::NewestFirst,
            request,
        );
        let query = sqlx::query(sql)
            .bind(account_sid)
            .bind(&filter.friendly_name)
            .bind(&filter.friendly_name)
            .bind(&filter.status)
            .bind(&filter.status)
            .bind(filter.created_from)
            .bind(filter.created_from)
            .bind(filter.created_before)
            .bind(filter.created_before)
            .bind(filter.updated_from)
            .bind(filter.updated_from)
            .bind(filter.updated_before)
            .bind(filter.updated_before);
        let rows = bind_page(query, request).fetch_all(&self.pool).await?;
        page_of_request(rows, request, conference_from_row)
    }
}

fn conference_from_row(r: &SqliteRow) -> Result<Conference, StoreError> {
    Ok(Conference {
        sid: r.try_get("sid")?,
        account_sid: r.try_get("account_sid")?,
        friendly_name: r.try_get("friendly_name")?,
        status: r.try_get("status")?,
        reason_conference_ended: r.try_get("reason_conference_ended")?,
        call_sid_ending_conference: r.try_get("call_sid_ending_conference")?,
        date_created: r.try_get("date_created")?,
        date_updated: r.try_get("date_updated")?,
    })
}
