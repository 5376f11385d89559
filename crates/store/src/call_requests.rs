//! Outbound call requests between the API's 201 and the moment the call is dialled:
//! kept with the `queued` call so a restart in between loses nothing.

use sqlx::Row;

use crate::{CallRecord, Store, StoreError};

impl Store {
    /// Stores a new `queued` call, then its request (an opaque text the router owns). A
    /// crash between the two leaves a queued call without a request, which the next start
    /// fails like any unfinished call: nothing is dialled twice or silently lost.
    pub async fn insert_call_request(
        &self,
        call: &CallRecord,
        request: &str,
    ) -> Result<(), StoreError> {
        self.insert_call(call).await?;
        sqlx::query(
            "INSERT INTO call_requests (call_sid, account_sid, request, date_created)
             VALUES (?, ?, ?, ?)",
        )
        .bind(&call.sid)
        .bind(&call.account_sid)
        .bind(request)
        .bind(call.date_created)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the request of a call still waiting (its instructions were updated before
    /// it was dialled). Returns false when the call has no stored request.
    pub async fn update_call_request(
        &self,
        call_sid: &str,
        request: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE call_requests SET request = ? WHERE call_sid = ?")
            .bind(request)
            .bind(call_sid)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// The call was dialled (or ended): its request is no longer needed.
    pub async fn delete_call_request(&self, call_sid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM call_requests WHERE call_sid = ?")
            .bind(call_sid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Requests still waiting, oldest first, with their calls (requests whose call is gone
    /// or no longer queued are dropped).
    pub async fn pending_call_requests(&self) -> Result<Vec<(CallRecord, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.call_sid, r.account_sid, r.request FROM call_requests r
             ORDER BY r.date_created, r.call_sid",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut pending = Vec::new();
        for row in rows {
            let sid: String = row.try_get("call_sid")?;
            let account: String = row.try_get("account_sid")?;
            let request: String = row.try_get("request")?;
            match self.call(&account, &sid).await? {
                Some(call) if call.status == crate::CallStatus::Queued => {
                    pending.push((call, request))
                }
                _ => self.delete_call_request(&sid).await?,
            }
        }
        Ok(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallStatus;

    fn queued(sid: &str) -> CallRecord {
        CallRecord {
            sid: sid.into(),
            account_sid: "AC1".into(),
            parent_call_sid: None,
            from: "+15005550006".into(),
            to: "+15551230000".into(),
            from_formatted: "+15005550006".into(),
            to_formatted: "+15551230000".into(),
            direction: "outbound-api".into(),
            status: CallStatus::Queued,
            caller_name: None,
            forwarded_from: None,
            date_created: 1,
            date_updated: 1,
            start_time: None,
            end_time: None,
            duration: None,
        }
    }

    #[tokio::test]
    async fn pending_requests_survive_and_keep_their_calls_queued() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .insert_call_request(&queued("CA1"), "{\"x\":1}")
            .await
            .unwrap();
        store
            .insert_call_request(&queued("CA2"), "{\"x\":2}")
            .await
            .unwrap();
        store
            .insert_call(&CallRecord {
                status: CallStatus::Ringing,
                ..queued("CA3")
            })
            .await
            .unwrap();
        // A restart fails the ringing call but not the queued ones with requests.
        assert_eq!(store.fail_unfinished_calls(5).await.unwrap(), 1);
        let pending = store.pending_call_requests().await.unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|(c, r)| (c.sid.as_str(), r.as_str()))
                .collect::<Vec<_>>(),
            [("CA1", "{\"x\":1}"), ("CA2", "{\"x\":2}")]
        );
        assert!(store.update_call_request("CA1", "{\"x\":3}").await.unwrap());
        assert!(!store.update_call_request("CA9", "{}").await.unwrap());
        assert_eq!(
            store.pending_call_requests().await.unwrap()[0].1,
            "{\"x\":3}"
        );
        store.delete_call_request("CA1").await.unwrap();
        // A request whose call is no longer queued is dropped.
        store
            .update_call_status("CA2", CallStatus::Canceled, 9, false)
            .await
            .unwrap();
        assert!(store.pending_call_requests().await.unwrap().is_empty());
    }
}
