//! Persistence for Switchboard: accounts, phone numbers, caller IDs, trunks, calls (with
//! their media quality) and notifications.
//!
//! SQLite (embedded, bundled by sqlx) is the single-node default; every SQL statement of the
//! project lives in this crate. Other crates see plain record structs and async methods.
//! Times are stored as Unix milliseconds; formatting for the API happens in `api`.

mod call_observer;
mod call_qos;
mod call_requests;
mod caller_ids;
mod conferences;
mod migrations;
mod paging;
mod recordings;
mod records;
mod resources;
mod trunks;
pub use call_observer::CallObserver;
pub use call_qos::{CallQos, RemoteCallQos};
pub use caller_ids::{CallerId, CallerIdFilter, CallerIdValidation, ValidationStatus};
pub use conferences::{Conference, ConferenceFilter};
pub use recordings::{Recording, RecordingFilter};
pub use trunks::Trunk;

pub use paging::{PageRequest, PageStart, SortKey};
pub use records::*;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqlitePool};

use paging::{bind_page, list_sql, page_of_request, ListOrder};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored value is invalid: {0}")]
    Invalid(String),
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Told about calls as they are stored (see [`Store::observe_calls`]).
    observer: Option<Arc<dyn CallObserver>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("pool", &self.pool)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

/// How many unfinished calls have one direction and status (see [`Store::active_call_counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCallCount {
    /// `inbound`, `outbound-api` or `outbound-dial`.
    pub direction: String,
    /// `queued`, `ringing` or `in-progress`.
    pub status: CallStatus,
    pub calls: u64,
}

/// One page of a list query.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether another page follows this one.
    pub has_more: bool,
}

/// Filters for listing calls (Twilio's `To`, `From`, `Status` list parameters).
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub to: Option<String>,
    pub from: Option<String>,
    pub status: Option<String>,
    pub parent_call_sid: Option<String>,
    /// Only calls answered at or after this instant (Unix ms).
    pub start_time_from: Option<i64>,
    /// Only calls answered before this instant (Unix ms).
    pub start_time_before: Option<i64>,
    /// Only calls that ended at or after this instant (Unix ms).
    pub end_time_from: Option<i64>,
    /// Only calls that ended before this instant (Unix ms).
    pub end_time_before: Option<i64>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        Self::connect(options, 4).await
    }

    /// An in-memory database (one connection), for tests.
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        Self::connect(options, 1).await
    }

    async fn connect(options: SqliteConnectOptions, max: u32) -> Result<Store, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(options)
            .await?;
        migrations::apply(&pool).await?;
        Ok(Store {
            pool,
            observer: None,
        })
    }

    // ----- accounts -------------------------------------------------------------------

    /// Creates the account or updates its token and name.
    pub async fn upsert_account(&self, account: &Account) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO accounts (sid, auth_token, friendly_name, status, date_created)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(sid) DO UPDATE SET auth_token = excluded.auth_token,
                friendly_name = excluded.friendly_name, status = excluded.status",
        )
        .bind(&account.sid)
        .bind(&account.auth_token)
        .bind(&account.friendly_name)
        .bind(&account.status)
        .bind(account.date_created)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn account(&self, sid: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query("SELECT * FROM accounts WHERE sid = ?")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| account_from_row(&r)).transpose()
    }

    /// All accounts, oldest first.
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query("SELECT * FROM accounts ORDER BY date_created, sid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(account_from_row).collect()
    }

    // ----- phone numbers ---------------------------------------------------------------

    /// Creates or replaces the number's configuration (keyed by its digits).
    pub async fn upsert_number(&self, number: &PhoneNumber) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO phone_numbers (sid, account_sid, phone_number, digits, voice_url,
                voice_method, voice_fallback_url, voice_fallback_method, status_callback,
                status_callback_method, date_created)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(digits) DO UPDATE SET account_sid = excluded.account_sid,
                phone_number = excluded.phone_number, voice_url = excluded.voice_url,
                voice_method = excluded.voice_method,
                voice_fallback_url = excluded.voice_fallback_url,
                voice_fallback_method = excluded.voice_fallback_method,
                status_callback = excluded.status_callback,
                status_callback_method = excluded.status_callback_method",
        )
        .bind(&number.sid)
        .bind(&number.account_sid)
        .bind(&number.phone_number)
        .bind(number_digits(&number.phone_number))
        .bind(&number.voice_url)
        .bind(&number.voice_method)
        .bind(&number.voice_fallback_url)
        .bind(&number.voice_fallback_method)
        .bind(&number.status_callback)
        .bind(&number.status_callback_method)
        .bind(number.date_created)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Finds a number by the digits of a dialled string (`+15005550006`, `15005550006`).
    pub async fn number_by_dialled(
        &self,
        dialled: &str,
    ) -> Result<Option<PhoneNumber>, StoreError> {
        let digits = number_digits(dialled);
        if digits.is_empty() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT * FROM phone_numbers WHERE digits = ?")
            .bind(digits)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| number_from_row(&r)).transpose()
    }

    // ----- calls -----------------------------------------------------------------------

    pub async fn insert_call(&self, call: &CallRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO calls (sid, account_sid, parent_call_sid, from_addr, to_addr,
                from_formatted, to_formatted, direction, status, caller_name, forwarded_from,
                date_created, date_updated, start_time, end_time, duration)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&call.sid)
        .bind(&call.account_sid)
        .bind(&call.parent_call_sid)
        .bind(&call.from)
        .bind(&call.to)
        .bind(&call.from_formatted)
        .bind(&call.to_formatted)
        .bind(&call.direction)
        .bind(call.status.as_str())
        .bind(&call.caller_name)
        .bind(&call.forwarded_from)
        .bind(call.date_created)
        .bind(call.date_updated)
        .bind(call.start_time)
        .bind(call.end_time)
        .bind(call.duration)
        .execute(&self.pool)
        .await?;
        self.notify_created(call);
        Ok(())
    }

    /// Moves a call to `status`; `start_time`/`end_time` are set when given (never cleared),
    /// and the duration is derived from them when the call ends.
    pub async fn update_call_status(
        &self,
        sid: &str,
        status: CallStatus,
        at_ms: i64,
        answered: bool,
    ) -> Result<(), StoreError> {
        // A call still unfinished moves (and the observer hears of it); else the update
        // applies all the same, unreported (a final status replaced, or no such call).
        if self
            .set_call_status(sid, status, at_ms, answered, true)
            .await?
        {
            self.notify_status(status, 1);
        } else {
            self.set_call_status(sid, status, at_ms, answered, false)
                .await?;
        }
        Ok(())
    }

    /// The update of [`Store::update_call_status`], only of an unfinished call if
    /// `unfinished_only`; whether a row was updated.
    async fn set_call_status(
        &self,
        sid: &str,
        status: CallStatus,
        at_ms: i64,
        answered: bool,
        unfinished_only: bool,
    ) -> Result<bool, StoreError> {
        let ended = status.is_final();
        let result = sqlx::query(
            "UPDATE calls SET status = ?, date_updated = ?,
                start_time = CASE WHEN ? AND start_time IS NULL THEN ? ELSE start_time END,
                end_time = CASE WHEN ? THEN ? ELSE end_time END,
                duration = CASE WHEN ? THEN
                    CASE WHEN start_time IS NULL THEN 0 ELSE MAX(0, (? - start_time) / 1000) END
                    ELSE duration END
             WHERE sid = ? AND (NOT ? OR status IN ('queued', 'ringing', 'in-progress'))",
        )
        .bind(status.as_str())
        .bind(at_ms)
        .bind(answered)
        .bind(at_ms)
        .bind(ended)
        .bind(at_ms)
        .bind(ended)
        .bind(at_ms)
        .bind(sid)
        .bind(unfinished_only)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Marks every call still in a non-final state as `failed` (used at start-up, after a
    /// crash), except queued calls whose request is still waiting to be placed.
    pub async fn fail_unfinished_calls(&self, at_ms: i64) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE calls SET status = 'failed', date_updated = ?, end_time = ?,
                duration = CASE WHEN start_time IS NULL THEN 0 ELSE MAX(0, (? - start_time) / 1000) END
             WHERE status IN ('queued', 'ringing', 'in-progress')
                AND sid NOT IN (SELECT call_sid FROM call_requests)",
        )
        .bind(at_ms)
        .bind(at_ms)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        self.notify_status(CallStatus::Failed, result.rows_affected());
        Ok(result.rows_affected())
    }

    /// Unfinished calls (`queued`, `ringing`, `in-progress`) counted by direction and status,
    /// over every account; only the combinations that have calls.
    pub async fn active_call_counts(&self) -> Result<Vec<ActiveCallCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT direction, status, COUNT(*) AS calls FROM calls
             WHERE status IN ('queued', 'ringing', 'in-progress')
             GROUP BY direction, status ORDER BY direction, status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                let calls: i64 = r.try_get("calls")?;
                Ok(ActiveCallCount {
                    direction: r.try_get("direction")?,
                    status: CallStatus::parse(&status)
                        .ok_or_else(|| StoreError::Invalid(format!("call status {status:?}")))?,
                    calls: u64::try_from(calls).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The call, only if it belongs to `account_sid`.
    pub async fn call(
        &self,
        account_sid: &str,
        sid: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM calls WHERE account_sid = ? AND sid = ?")
            .bind(account_sid)
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| call_from_row(&r)).transpose()
    }

    /// Calls of one account, newest first.
    pub async fn list_calls(
        &self,
        account_sid: &str,
        filter: &CallFilter,
        request: &PageRequest,
    ) -> Result<Page<CallRecord>, StoreError> {
        let sql = list_sql(
            "SELECT * FROM calls WHERE account_sid = ?
                AND (? IS NULL OR to_addr = ?)
                AND (? IS NULL OR from_addr = ?)
                AND (? IS NULL OR status = ?)
                AND (? IS NULL OR parent_call_sid = ?)
                AND (? IS NULL OR start_time >= ?)
                AND (? IS NULL OR start_time < ?)
                AND (? IS NULL OR end_time >= ?)
                AND (? IS NULL OR end_time < ?)",
            ListOrder::NewestFirst,
            request,
        );
        let query = sqlx::query(sql)
            .bind(account_sid)
            .bind(&filter.to)
            .bind(&filter.to)
            .bind(&filter.from)
            .bind(&filter.from)
            .bind(&filter.status)
            .bind(&filter.status)
            .bind(&filter.parent_call_sid)
            .bind(&filter.parent_call_sid)
            .bind(filter.start_time_from)
            .bind(filter.start_time_from)
            .bind(filter.start_time_before)
            .bind(filter.start_time_before)
            .bind(filter.end_time_from)
            .bind(filter.end_time_from)
            .bind(filter.end_time_before)
            .bind(filter.end_time_before);
        let rows = bind_page(query, request).fetch_all(&self.pool).await?;
        page_of_request(rows, request, call_from_row)
    }

    /// Deletes a finished call of `account_sid` (its notifications stay, as on Twilio).
    pub async fn delete_call(
        &self,
        account_sid: &str,
        sid: &str,
    ) -> Result<CallDeletion, StoreError> {
        let result = sqlx::query(
            "DELETE FROM calls WHERE account_sid = ? AND sid = ?
                AND status NOT IN ('queued', 'ringing', 'in-progress')",
        )
        .bind(account_sid)
        .bind(sid)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 1 {
            sqlx::query("DELETE FROM call_qos WHERE call_sid = ?")
                .bind(sid)
                .execute(&self.pool)
                .await?;
            return Ok(CallDeletion::Deleted);
        }
        Ok(match self.call(account_sid, sid).await? {
            Some(_) => CallDeletion::StillActive,
            None => CallDeletion::NotFound,
        })
    }

    // ----- notifications ---------------------------------------------------------------

    pub async fn insert_notification(&self, n: &Notification) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notifications (sid, account_sid, call_sid, error_code, log_level,
                message_text, more_info, request_method, request_url, request_variables,
                response_body, response_headers, date_created)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&n.sid)
        .bind(&n.account_sid)
        .bind(&n.call_sid)
        .bind(&n.error_code)
        .bind(n.log_level)
        .bind(&n.message_text)
        .bind(&n.more_info)
        .bind(&n.request_method)
        .bind(&n.request_url)
        .bind(&n.request_variables)
        .bind(&n.response_body)
        .bind(&n.response_headers)
        .bind(n.date_created)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notifications of one account (optionally of one call), newest first.
    pub async fn list_notifications(
        &self,
        account_sid: &str,
        call_sid: Option<&str>,
        request: &PageRequest,
    ) -> Result<Page<Notification>, StoreError> {
        let sql = list_sql(
            "SELECT * FROM notifications WHERE account_sid = ? AND (? IS NULL OR call_sid = ?)",
            ListOrder::NewestFirst,
            request,
        );
        let query = sqlx::query(sql)
            .bind(account_sid)
            .bind(call_sid)
            .bind(call_sid);
        let rows = bind_page(query, request).fetch_all(&self.pool).await?;
        page_of_request(rows, request, notification_from_row)
    }

    pub async fn notification(
        &self,
        account_sid: &str,
        sid: &str,
    ) -> Result<Option<Notification>, StoreError> {
        let row = sqlx::query("SELECT * FROM notifications WHERE account_sid = ? AND sid = ?")
            .bind(account_sid)
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| notification_from_row(&r)).transpose()
    }
}

/// The digits of a dialled string: `+1 (500) 555-0006` → `15005550006`.
pub fn number_digits(dialled: &str) -> String {
    dialled.chars().filter(|c| c.is_ascii_digit()).collect()
}

pub(crate) fn page_of<T>(
    rows: Vec<SqliteRow>,
    page_size: u32,
    convert: fn(&SqliteRow) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let has_more = rows.len() > page_size as usize;
    let items = rows
        .iter()
        .take(page_size as usize)
        .map(convert)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { items, has_more })
}

pub(crate) fn account_from_row(r: &SqliteRow) -> Result<Account, StoreError> {
    Ok(Account {
        sid: r.try_get("sid")?,
        auth_token: r.try_get("auth_token")?,
        friendly_name: r.try_get("friendly_name")?,
        status: r.try_get("status")?,
        date_created: r.try_get("date_created")?,
    })
}

fn number_from_row(r: &SqliteRow) -> Result<PhoneNumber, StoreError> {
    Ok(PhoneNumber {
        sid: r.try_get("sid")?,
        account_sid: r.try_get("account_sid")?,
        phone_number: r.try_get("phone_number")?,
        voice_url: r.try_get("voice_url")?,
        voice_method: r.try_get("voice_method")?,
        voice_fallback_url: r.try_get("voice_fallback_url")?,
        voice_fallback_method: r.try_get("voice_fallback_method")?,
        status_callback: r.try_get("status_callback")?,
        status_callback_method: r.try_get("status_callback_method")?,
        date_created: r.try_get("date_created")?,
    })
}

pub(crate) fn call_from_row(r: &SqliteRow) -> Result<CallRecord, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(CallRecord {
        sid: r.try_get("sid")?,
        account_sid: r.try_get("account_sid")?,
        parent_call_sid: r.try_get("parent_call_sid")?,
        from: r.try_get("from_addr")?,
        to: r.try_get("to_addr")?,
        from_formatted: r.try_get("from_formatted")?,
        to_formatted: r.try_get("to_formatted")?,
        direction: r.try_get("direction")?,
        status: CallStatus::parse(&status)
            .ok_or_else(|| StoreError::Invalid(format!("call status {status:?}")))?,
        caller_name: r.try_get("caller_name")?,
        forwarded_from: r.try_get("forwarded_from")?,
        date_created: r.try_get("date_created")?,
        date_updated: r.try_get("date_updated")?,
        start_time: r.try_get("start_time")?,
        end_time: r.try_get("end_time")?,
        duration: r.try_get("duration")?,
    })
}

fn notification_from_row(r: &SqliteRow) -> Result<Notification, StoreError> {
    Ok(Notification {
        sid: r.try_get("sid")?,
        account_sid: r.try_get("account_sid")?,
        call_sid: r.try_get("call_sid")?,
        error_code: r.try_get("error_code")?,
        log_level: r.try_get("log_level")?,
        message_text: r.try_get("message_text")?,
        more_info: r.try_get("more_info")?,
        request_method: r.try_get("request_method")?,
        request_url: r.try_get("request_url")?,
        request_variables: r.try_get("request_variables")?,
        response_body: r.try_get("response_body")?,
        response_headers: r.try_get("response_headers")?,
        date_created: r.try_get("date_created")?,
    })
}

#[cfg(test)]
mod tests;
