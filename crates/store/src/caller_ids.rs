//! Validated caller IDs (Twilio's OutgoingCallerIds) and the validation requests that
//! create them: a request holds the code the callee must key in on the validation call;
//! only a matching code turns it into a caller ID. An account may present its own numbers
//! and its validated caller IDs as `From` of outbound calls.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::paging::{bind_page, list_sql, page_of_request, ListOrder};
use crate::{number_digits, Page, PageRequest, Store, StoreError};

/// A phone number the account proved it answers, usable as caller ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId {
    /// `PN` + 32 hex digits.
    pub sid: String,
    pub account_sid: String,
    /// E.164.
    pub phone_number: String,
    pub friendly_name: String,
    pub date_created: i64,
    pub date_updated: i64,
}

/// Filters of the OutgoingCallerIds list.
#[derive(Debug, Clone, Default)]
pub struct CallerIdFilter {
    /// Exact match on the number's digits.
    pub phone_number_digits: Option<String>,
    pub friendly_name: Option<String>,
}

/// Where a validation request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationStatus {
    /// The validation call is placed or running; the code has not been entered yet.
    Pending,
    /// The right code was entered: the caller ID exists.
    Success,
    /// A wrong code (or none) was entered.
    Failed,
}

impl ValidationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationStatus::Pending => "pending",
            ValidationStatus::Success => "success",
            ValidationStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<ValidationStatus, StoreError> {
        match s {
            "pending" => Ok(ValidationStatus::Pending),
            "success" => Ok(ValidationStatus::Success),
            "failed" => Ok(ValidationStatus::Failed),
            other => Err(StoreError::Invalid(format!("validation status {other}"))),
        }
    }
}

/// A caller-ID validation in progress (POST on OutgoingCallerIds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdValidation {
    /// Opaque id (`VR` + 32 hex digits) in the validation call's callback URL.
    pub id: String,
    pub account_sid: String,
    pub phone_number: String,
    pub friendly_name: String,
    /// The digits the callee must enter.
    pub validation_code: String,
    /// The validation call, once placed.
    pub call_sid: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub status: ValidationStatus,
    pub date_created: i64,
}

impl Store {
    /// Stores a new caller ID; `false` when the account already has this number.
    pub async fn insert_caller_id(&self, c: &CallerId) -> Result<bool, StoreError> {
        let result = insert_caller_id_query(c).execute(&self.pool).await?;
        Ok(result.rows_affected() == 1)
    }

    /// One caller ID of the account.
    pub async fn caller_id(
        &self,
        account_sid: &str,
        sid: &str,
    ) -> Result<Option<CallerId>, StoreError> {
        let row =
            sqlx::query("SELECT * FROM outgoing_caller_ids WHERE account_sid = ? AND sid = ?")
                .bind(account_sid)
                .bind(sid)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(caller_id_from_row).transpose()
    }

    /// Whether `number` (any formatting) is a validated caller ID of the account.
    pub async fn is_caller_id_of(
        &self,
        account_sid: &str,
        number: &str,
    ) -> Result<bool, StoreError> {
        let digits = number_digits(number);
        if digits.is_empty() {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT 1 FROM outgoing_caller_ids WHERE account_sid = ? AND digits = ? LIMIT 1",
        )
        .bind(account_sid)
        .bind(digits)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// A page of the account's caller IDs, oldest first.
    pub async fn list_caller_ids(
        &self,
        account_sid: &str,
        filter: &CallerIdFilter,
        request: &PageRequest,
    ) -> Result<Page<CallerId>, StoreError> {
        let sql = list_sql(
            "SELECT * FROM outgoing_caller_ids WHERE account_sid = ?
                AND (? IS NULL OR digits = ?)
                AND (? IS NULL OR friendly_name = ?)",
            ListOrder::OldestFirst,
            request,
        );
        let query = sqlx::query(sql)
            .bind(account_sid)
            .bind(&filter.phone_number_digits)
            .bind(&filter.phone_number_digits)
            .bind(&filter.friendly_name)
            .bind(&filter.friendly_name);
        let rows = bind_page(query, request).fetch_all(&self.pool).await?;
        page_of_request(rows, request, caller_id_from_row)
    }

    /// Renames a caller ID; `false` when the account has no such caller ID.
    pub async fn rename_caller_id(
        &self,
        account_sid: &str,
        sid: &str,
        friendly_name: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE outgoing_caller_ids SET friendly_name = ?, date_updated = ?
             WHERE account_sid = ? AND sid = ?",
        )
        .bind(friendly_name)
        .bind(now)
        .bind(account_sid)
        .bind(sid)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes a caller ID; `false` when the account has no such caller ID.
    pub async fn delete_caller_id(&self, account_sid: &str, sid: &str) -> Result<bool, StoreError> {
        let result =
            sqlx::query("DELETE FROM outgoing_caller_ids WHERE account_sid = ? AND sid = ?")
                .bind(account_sid)
                .bind(sid)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Stores a new validation request (status pending).
    pub async fn insert_caller_id_validation(
        &self,
        v: &CallerIdValidation,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO caller_id_validations (id, account_sid, phone_number, friendly_name,
                validation_code, call_sid, status_callback, status_callback_method, status,
                date_created)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&v.id)
        .bind(&v.account_sid)
        .bind(&v.phone_number)
        .bind(&v.friendly_name)
        .bind(&v.validation_code)
        .bind(&v.call_sid)
        .bind(&v.status_callback)
        .bind(&v.status_callback_method)
        .bind(v.status.as_str())
        .bind(v.date_created)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the validation call's SID.
    pub async fn set_caller_id_validation_call(
        &self,
        id: &str,
        call_sid: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE caller_id_validations SET call_sid = ? WHERE id = ?")
            .bind(call_sid)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A validation request by its id.
    pub async fn caller_id_validation(
        &self,
        id: &str,
    ) -> Result<Option<CallerIdValidation>, StoreError> {
        let row = sqlx::query("SELECT * FROM caller_id_validations WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(validation_from_row).transpose()
    }

    /// Ends a pending validation: on success the caller ID is stored in the same
    /// transaction. Returns `false` (and changes nothing) when the validation was not
    /// pending any more, so a code can be used at most once.
    pub async fn finish_caller_id_validation(
        &self,
        id: &str,
        outcome: Result<&CallerId, ()>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let status = if outcome.is_ok() {
            ValidationStatus::Success
        } else {
            ValidationStatus::Failed
        };
        let result = sqlx::query(
            "UPDATE caller_id_validations SET status = ? WHERE id = ? AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        if let Ok(c) = outcome {
            // An already validated number stays as it is (same account, same digits).
            insert_caller_id_query(c).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Inserts a caller ID unless the account already has its digits.
fn insert_caller_id_query(
    c: &CallerId,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(
        "INSERT INTO outgoing_caller_ids (sid, account_sid, phone_number, digits,
            friendly_name, date_created, date_updated)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_sid, digits) DO NOTHING",
    )
    .bind(&c.sid)
    .bind(&c.account_sid)
    .bind(&c.phone_number)
    .bind(number_digits(&c.phone_number))
    .bind(&c.friendly_name)
    .bind(c.date_created)
    .bind(c.date_updated)
}

fn caller_id_from_row(r: &SqliteRow) -> Result<CallerId, StoreError> {
    Ok(CallerId {
        sid: r.try_get("sid")?,
        account_sid: r.try_get("account_sid")?,
        phone_number: r.try_get("phone_number")?,
        friendly_name: r.try_get("friendly_name")?,
        date_created: r.try_get("date_created")?,
        date_updated: r.try_get("date_updated")?,
    })
}

fn validation_from_row(r: &SqliteRow) -> Result<CallerIdValidation, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(CallerIdValidation {
        id: r.try_get("id")?,
        account_sid: r.try_get("account_sid")?,
        phone_number: r.try_get("phone_number")?,
        friendly_name: r.try_get("friendly_name")?,
        validation_code: r.try_get("validation_code")?,
        call_sid: r.try_get("call_sid")?,
        status_callback: r.try_get("status_callback")?,
        status_callback_method: r.try_get("status_callback_method")?,
        status: ValidationStatus::parse(&status)?,
        date_created: r.try_get("date_created")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_account() -> (Store, String) {
        let store = Store::open_in_memory().await.unwrap();
        let account = crate::Account {
            sid: "AC1".into(),
            auth_token: "token".into(),
            friendly_name: "test".into(),
            status: "active".into(),
            date_created: 1,
        };
        store.upsert_account(&account).await.unwrap();
        (store, account.sid)
    }

    fn caller_id(account: &str, sid: &str, number: &str) -> CallerId {
        CallerId {
            sid: sid.into(),
            account_sid: account.into(),
            phone_number: number.into(),
            friendly_name: "(555) 123-4567".into(),
            date_created: 1,
            date_updated: 1,
        }
    }

    fn validation(account: &str, id: &str) -> CallerIdValidation {
        CallerIdValidation {
            id: id.into(),
            account_sid: account.into(),
            phone_number: "+15551234567".into(),
            friendly_name: "mobile".into(),
            validation_code: "123456".into(),
            call_sid: None,
            status_callback: None,
            status_callback_method: "POST".into(),
            status: ValidationStatus::Pending,
            date_created: 1,
        }
    }

    #[tokio::test]
    async fn caller_ids_are_per_account_and_unique_by_digits() {
        let (store, account) = store_with_account().await;
        let first = caller_id(&account, "PN1", "+15551234567");
        assert!(store.insert_caller_id(&first).await.unwrap());
        assert!(!store
            .insert_caller_id(&caller_id(&account, "PN2", "+1 (555) 123-4567"))
            .await
            .unwrap());
        assert!(store
            .is_caller_id_of(&account, "15551234567")
            .await
            .unwrap());
        assert!(!store
            .is_caller_id_of("ACother", "+15551234567")
            .await
            .unwrap());
        assert!(!store
            .is_caller_id_of(&account, "+15550000000")
            .await
            .unwrap());
        assert!(store.caller_id("ACother", "PN1").await.unwrap().is_none());
        assert_eq!(store.caller_id(&account, "PN1").await.unwrap(), Some(first));

        assert!(store
            .rename_caller_id(&account, "PN1", "desk", 2)
            .await
            .unwrap());
        assert!(!store
            .rename_caller_id("ACother", "PN1", "x", 2)
            .await
            .unwrap());
        let filter = CallerIdFilter {
            friendly_name: Some("desk".into()),
            ..CallerIdFilter::default()
        };
        let page = store
            .list_caller_ids(&account, &filter, &PageRequest::offset(0, 10))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].date_updated, 2);

        assert!(!store.delete_caller_id("ACother", "PN1").await.unwrap());
        assert!(store.delete_caller_id(&account, "PN1").await.unwrap());
        assert!(!store
            .is_caller_id_of(&account, "+15551234567")
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_validation_finishes_once_and_creates_the_caller_id_on_success() {
        let (store, account) = store_with_account().await;
        store
            .insert_caller_id_validation(&validation(&account, "VR1"))
            .await
            .unwrap();
        store
            .set_caller_id_validation_call("VR1", "CA1")
            .await
            .unwrap();
        let stored = store.caller_id_validation("VR1").await.unwrap().unwrap();
        assert_eq!(stored.call_sid.as_deref(), Some("CA1"));
        assert_eq!(stored.status, ValidationStatus::Pending);

        let created = caller_id(&account, "PN9", "+15551234567");
        assert!(store
            .finish_caller_id_validation("VR1", Ok(&created))
            .await
            .unwrap());
        // A second attempt (replayed request) changes nothing.
        assert!(!store
            .finish_caller_id_validation("VR1", Err(()))
            .await
            .unwrap());
        let done = store.caller_id_validation("VR1").await.unwrap().unwrap();
        assert_eq!(done.status, ValidationStatus::Success);
        assert!(store
            .is_caller_id_of(&account, "+15551234567")
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_failed_validation_creates_nothing() {
        let (store, account) = store_with_account().await;
        store
            .insert_caller_id_validation(&validation(&account, "VR2"))
            .await
            .unwrap();
        assert!(store
            .finish_caller_id_validation("VR2", Err(()))
            .await
            .unwrap());
        let done = store.caller_id_validation("VR2").await.unwrap().unwrap();
        assert_eq!(done.status, ValidationStatus::Failed);
        assert!(!store
            .is_caller_id_of(&account, "+15551234567")
            .await
            .unwrap());
        assert!(store.caller_id_validation("VR3").await.unwrap().is_none());
    }
}
