//! Store tests against a real (in-memory and on-disk) SQLite database.

use super::*;

fn account(sid: &str) -> Account {
    Account {
        sid: sid.into(),
        auth_token: "token".into(),
        friendly_name: "test".into(),
        status: "active".into(),
        date_created: 1,
    }
}

fn call(sid: &str, account: &str, created: i64) -> CallRecord {
    CallRecord {
        sid: sid.into(),
        account_sid: account.into(),
        parent_call_sid: None,
        from: "+15551230000".into(),
        to: "+15005550006".into(),
        from_formatted: "(555) 123-0000".into(),
        to_formatted: "(500) 555-0006".into(),
        direction: "inbound".into(),
        status: CallStatus::Ringing,
        caller_name: None,
        forwarded_from: None,
        date_created: created,
        date_updated: created,
        start_time: None,
        end_time: None,
        duration: None,
    }
}

#[tokio::test]
async fn numbers_match_by_digits() {
    let store = Store::open_in_memory().await.unwrap();
    store.upsert_account(&account("AC1")).await.unwrap();
    let number = PhoneNumber {
        sid: "PN1".into(),
        account_sid: "AC1".into(),
        phone_number: "+15005550006".into(),
        voice_url: Some("http://x/voice".into()),
        voice_method: "POST".into(),
        voice_fallback_url: None,
        voice_fallback_method: "POST".into(),
        status_callback: None,
        status_callback_method: "POST".into(),
        date_created: 1,
    };
    store.upsert_number(&number).await.unwrap();
    assert_eq!(
        store.number_by_dialled("15005550006").await.unwrap(),
        Some(number.clone())
    );
    assert_eq!(
        store.number_by_dialled("+1 500 555 0006").await.unwrap(),
        Some(number)
    );
    assert_eq!(store.number_by_dialled("15005550007").await.unwrap(), None);
    assert_eq!(store.number_by_dialled("sipp").await.unwrap(), None);
}

#[tokio::test]
async fn call_lifecycle_sets_times_and_duration() {
    let store = Store::open_in_memory().await.unwrap();
    store.insert_call(&call("CA1", "AC1", 1_000)).await.unwrap();
    store
        .update_call_status("CA1", CallStatus::InProgress, 2_000, true)
        .await
        .unwrap();
    store
        .update_call_status("CA1", CallStatus::Completed, 9_500, false)
        .await
        .unwrap();
    let c = store.call("AC1", "CA1").await.unwrap().unwrap();
    assert_eq!(c.status, CallStatus::Completed);
    assert_eq!(c.start_time, Some(2_000));
    assert_eq!(c.end_time, Some(9_500));
    assert_eq!(c.duration, Some(7));
}

#[tokio::test]
async fn calls_are_isolated_by_account_and_paged() {
    let store = Store::open_in_memory().await.unwrap();
    for i in 0..5 {
        store
            .insert_call(&call(&format!("CA{i}"), "AC1", i))
            .await
            .unwrap();
    }
    store.insert_call(&call("CAX", "AC2", 10)).await.unwrap();
    assert!(store.call("AC1", "CAX").await.unwrap().is_none());
    assert!(store.call("AC2", "CAX").await.unwrap().is_some());
    let first = store
        .list_calls("AC1", &CallFilter::default(), 0, 2)
        .await
        .unwrap();
    assert_eq!(
        first
            .items
            .iter()
            .map(|c| c.sid.as_str())
            .collect::<Vec<_>>(),
        ["CA4", "CA3"]
    );
    assert!(first.has_more);
    let last = store
        .list_calls("AC1", &CallFilter::default(), 2, 2)
        .await
        .unwrap();
    assert_eq!(last.items.len(), 1);
    assert!(!last.has_more);
    let filtered = store
        .list_calls(
            "AC1",
            &CallFilter {
                status: Some("completed".into()),
                ..Default::default()
            },
            0,
            50,
        )
        .await
        .unwrap();
    assert!(filtered.items.is_empty());
}

#[tokio::test]
async fn unfinished_calls_fail_after_restart() {
    let dir = std::env::temp_dir().join(format!("store-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db.sqlite");
    {
        let store = Store::open(&path).await.unwrap();
        store.insert_call(&call("CA1", "AC1", 1)).await.unwrap();
    }
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.fail_unfinished_calls(5_000).await.unwrap(), 1);
    let c = store.call("AC1", "CA1").await.unwrap().unwrap();
    assert_eq!(c.status, CallStatus::Failed);
    assert_eq!(c.duration, Some(0));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn notifications_per_call() {
    let store = Store::open_in_memory().await.unwrap();
    let n = Notification {
        sid: "NO1".into(),
        account_sid: "AC1".into(),
        call_sid: Some("CA1".into()),
        error_code: "11200".into(),
        log_level: 0,
        message_text: "HTTP retrieval failure".into(),
        more_info: "https://www.twilio.com/docs/errors/11200".into(),
        request_method: Some("POST".into()),
        request_url: Some("http://x/voice".into()),
        request_variables: None,
        response_body: None,
        response_headers: None,
        date_created: 3,
    };
    store.insert_notification(&n).await.unwrap();
    let for_call = store
        .list_notifications("AC1", Some("CA1"), 0, 50)
        .await
        .unwrap();
    assert_eq!(for_call.items, vec![n.clone()]);
    assert!(store
        .list_notifications("AC1", Some("CA2"), 0, 50)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .list_notifications("AC2", None, 0, 50)
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(store.notification("AC1", "NO1").await.unwrap(), Some(n));
}
