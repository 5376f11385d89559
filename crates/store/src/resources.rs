//! Store queries behind the REST resources the API manages: IncomingPhoneNumbers, the
//! account tree (subaccounts) and API keys. Every query is scoped by account.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::paging::{bind_page, list_sql, page_of_request, ListOrder};
use crate::{
    account_from_row, number_digits, Account, AccountDetails, AccountFilter, ApiKey,
    IncomingNumber, NumberFilter, Page, PageRequest, Store, StoreError,
};

impl Store {
    // ----- incoming phone numbers -------------------------------------------------------

    /// Adds a number. Returns `false` (and changes nothing) when a number with the same
    /// digits already exists in any account.
    pub async fn insert_incoming_number(&self, n: &IncomingNumber) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO phone_numbers (sid, account_sid, phone_number, digits, friendly_name,
                voice_url, voice_method, voice_fallback_url, voice_fallback_method,
                status_callback, status_callback_method, sms_url, sms_method, sms_fallback_url,
                sms_fallback_method, date_created, date_updated)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(digits) DO NOTHING",
        )
        .bind(&n.sid)
        .bind(&n.account_sid)
        .bind(&n.phone_number)
        .bind(number_digits(&n.phone_number))
        .bind(&n.friendly_name)
        .bind(&n.voice_url)
        .bind(&n.voice_method)
        .bind(&n.voice_fallback_url)
        .bind(&n.voice_fallback_method)
        .bind(&n.status_callback)
        .bind(&n.status_callback_method)
        .bind(&n.sms_url)
        .bind(&n.sms_method)
        .bind(&n.sms_fallback_url)
        .bind(&n.sms_fallback_method)
        .bind(n.date_created)
        .bind(n.date_updated)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The number, only if it belongs to `account_sid`.
    pub async fn incoming_number(
        &self,
        account_sid: &str,
        sid: &str,
    ) -> Result<Option<IncomingNumber>, StoreError> {
        let row = sqlx::query("SELECT * FROM phone_numbers WHERE account_sid = ? AND sid = ?")
            .bind(account_sid)
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| incoming_number_from_row(&r)).transpose()
    }

    /// Numbers of one account, oldest first.
    pub async fn list_incoming_numbers(
        &self,
        account_sid: &str,
        filter: &NumberFilter,
        request: &PageRequest,
    ) -> Result<Page<IncomingNumber>, StoreError> {
        let sql = list_sql(
            "SELECT * FROM phone_numbers WHERE account_sid = ?
                AND (? IS NULL OR instr(digits, ?) > 0)
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
        page_of_request(rows, request, incoming_number_from_row)
    }

    /// Rewrites the number's configuration (not its digits or owner). Returns `false` when
    /// the number does not exist in `n.account_sid`.
    pub async fn update_incoming_number(&self, n: &IncomingNumber) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE phone_numbers SET friendly_name = ?, voice_url = ?, voice_method = ?,
                voice_fallback_url = ?, voice_fallback_method = ?, status_callback = ?,
                status_callback_method = ?, sms_url = ?, sms_method = ?, sms_fallback_url = ?,
                sms_fallback_method = ?, date_updated = ?
             WHERE account_sid = ? AND sid = ?",
        )
        .bind(&n.friendly_name)
        .bind(&n.voice_url)
        .bind(&n.voice_method)
        .bind(&n.voice_fallback_url)
        .bind(&n.voice_fallback_method)
        .bind(&n.status_callback)
        .bind(&n.status_callback_method)
        .bind(&n.sms_url)
        .bind(&n.sms_method)
        .bind(&n.sms_fallback_url)
        .bind(&n.sms_fallback_method)
        .bind(n.date_updated)
        .bind(&n.account_sid)
        .bind(&n.sid)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Transfers a number from `from_account` to `to_account` (the API checks both belong
    /// to one account tree). Returns `false` when it does not exist in `from_account`.
    pub async fn move_incoming_number(
        &self,
        from_account: &str,
        sid: &str,
        to_account: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE phone_numbers SET account_sid = ?, date_updated = ?
             WHERE account_sid = ? AND sid = ?",
        )
        .bind(to_account)
        .bind(at_ms)
        .bind(from_account)
        .bind(sid)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Releases the number. Returns `false` when it does not exist in `account_sid`.
    pub async fn delete_incoming_number(
        &self,
        account_sid: &str,
        sid: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM phone_numbers WHERE account_sid = ? AND sid = ?")
            .bind(account_sid)
            .bind(sid)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    // ----- the account tree -------------------------------------------------------------

    /// Creates `account` as a subaccount of `parent_sid`.
    pub async fn create_subaccount(
        &self,
        parent_sid: &str,
        account: &Account,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO accounts (sid, auth_token, friendly_name, status, date_created,
                parent_sid, date_updated)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&account.sid)
        .bind(&account.auth_token)
        .bind(&account.friendly_name)
        .bind(&account.status)
        .bind(account.date_created)
        .bind(parent_sid)
        .bind(account.date_created)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The account with its parent.
    pub async fn account_details(&self, sid: &str) -> Result<Option<AccountDetails>, StoreError> {
        let row = sqlx::query("SELECT * FROM accounts WHERE sid = ?")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| account_details_from_row(&r)).transpose()
    }

    /// `owner_sid` itself and its subaccounts, oldest first.
    pub async fn list_account_tree(
        &self,
        owner_sid: &str,
        filter: &AccountFilter,
        request: &PageRequest,
    ) -> Result<Page<AccountDetails>, StoreError> {
        let sql = list_sql(
            "SELECT * FROM accounts WHERE (sid = ? OR parent_sid = ?)
                AND (? IS NULL OR friendly_name = ?)
                AND (? IS NULL OR status = ?)",
            ListOrder::OldestFirst,
            request,
        );
        let query = sqlx::query(sql)
            .bind(owner_sid)
            .bind(owner_sid)
            .bind(&filter.friendly_name)
            .bind(&filter.friendly_name)
            .bind(&filter.status)
            .bind(&filter.status);
        let rows = bind_page(query, request).fetch_all(&self.pool).await?;
        page_of_request(rows, request, account_details_from_row)
    }

    /// Changes an account's name and/or status. Returns `false` when it does not exist.
    pub async fn update_account(
        &self,
        sid: &str,
        friendly_name: Option<&str>,
        status: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE accounts SET friendly_name = COALESCE(?, friendly_name),
                status = COALESCE(?, status), date_updated = ?
             WHERE sid = ?",
        )
        .bind(friendly_name)
        .bind(status)
        .bind(at_ms)
        .bind(sid)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    // ----- API keys ---------------------------------------------------------------------

    pub async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (sid, account_sid, friendly_name, secret_salt, secret_hash,
                date_created, date_updated)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.sid)
        .bind(&key.account_sid)
        .bind(&key.friendly_name)
        .bind(&key.secret_salt)
        .bind(&key.secret_hash)
        .bind(key.date_created)
        .bind(key.date_updated)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A key by SID alone (to authenticate `SK…:secret` credentials).
    pub async fn api_key_by_sid(&self, sid: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE sid = ?")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| api_key_from_row(&r)).transpose()
    }

    /// The key, only if it belongs to `account_sid`.
    pub async fn api_key(
        &self,
        account_sid: &str,
        sid: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE account_sid = ? AND sid = ?")
            .bind(account_sid)
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| api_key_from_row(&r)).transpose()
    }

    /// Keys of one account, oldest first.
    pub async fn list_api_keys(
        &self,
        account_sid: &str,
        request: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        let sql = list_sql(
            "SELECT * FROM api_keys WHERE account_sid = ?",
            ListOrder::OldestFirst,
            request,
        );
        let query = sqlx::query(sql).bind(account_sid);
        let rows = bind_page(query, request).fetch_all(&self.pool).await?;
        page_of_request(rows, request, api_key_from_row)
    }

    /// Renames a key. Returns `false` when it does not exist in `account_sid`.
    pub async fn rename_api_key(
        &self,
        account_sid: &str,
        sid: &str,
        friendly_name: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE api_keys SET friendly_name = ?, date_updated = ?
             WHERE account_sid = ? AND sid = ?",
        )
        .bind(friendly_name)
        .bind(at_ms)
        .bind(account_sid)
        .bind(sid)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Revokes a key. Returns `false` when it does not exist in `account_sid`.
    pub async fn delete_api_key(&self, account_sid: &str, sid: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM api_keys WHERE account_sid = ? AND sid = ?")
            .bind(account_sid)
            .bind(sid)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }
}

fn incoming_number_from_row(r: &SqliteRow) -> Result<IncomingNumber, StoreError> {
    let date_created: i64 = r.try_get("date_created")?;
    let date_updated: Option<i64> = r.try_get("date_updated")?;
    Ok(IncomingNumber {
        sid: r.try_get("sid")?,
        account_sid: r.try_get("account_sid")?,
        phone_number: r.try_get("phone_number")?,
        friendly_name: r.try_get("friendly_name")?,
        voice_url: r.try_get("voice_url")?,
        voice_method: r.try_get("voice_method")?,
        voice_fallback_url: r.try_get("voice_fallback_url")?,
        voice_fallback_method: r.try_get("voice_fallback_method")?,
        status_callback: r.try_get("status_callback")?,
        status_callback_method: r.try_get("status_callback_method")?,
        sms_url: r.try_get("sms_url")?,
        sms_method: r.try_get("sms_method")?,
        sms_fallback_url: r.try_get("sms_fallback_url")?,
        sms_fallback_method: r.try_get("sms_fallback_method")?,
        date_created,
        date_updated: date_updated.unwrap_or(date_created),
    })
}

fn account_details_from_row(r: &SqliteRow) -> Result<AccountDetails, StoreError> {
    let account = account_from_row(r)?;
    let date_updated: Option<i64> = r.try_get("date_updated")?;
    Ok(AccountDetails {
        parent_sid: r.try_get("parent_sid")?,
        date_updated: date_updated.unwrap_or(account.date_created),
        account,
    })
}

fn api_key_from_row(r: &SqliteRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        sid: r.try_get("sid")?,
        account_sid: r.try_get("account_sid")?,
        friendly_name: r.try_get("friendly_name")?,
        secret_salt: r.try_get("secret_salt")?,
        secret_hash: r.try_get("secret_hash")?,
        date_created: r.try_get("date_created")?,
        date_updated: r.try_get("date_updated")?,
    })
}
