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
        .list_calls("AC1", &CallFilter::default(), &PageRequest::offset(0, 2))
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
        .list_calls("AC1", &CallFilter::default(), &PageRequest::offset(2, 2))
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
            &PageRequest::offset(0, 50),
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
        .list_notifications("AC1", Some("CA1"), &PageRequest::offset(0, 50))
        .await
        .unwrap();
    assert_eq!(for_call.items, vec![n.clone()]);
    assert!(store
        .list_notifications("AC1", Some("CA2"), &PageRequest::offset(0, 50))
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .list_notifications("AC2", None, &PageRequest::offset(0, 50))
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(store.notification("AC1", "NO1").await.unwrap(), Some(n));
}

fn incoming(sid: &str, account: &str, number: &str, created: i64) -> IncomingNumber {
    IncomingNumber {
        sid: sid.into(),
        account_sid: account.into(),
        phone_number: number.into(),
        friendly_name: Some(format!("name {sid}")),
        voice_url: Some("http://x/voice".into()),
        voice_method: "POST".into(),
        voice_fallback_url: None,
        voice_fallback_method: "POST".into(),
        status_callback: None,
        status_callback_method: "POST".into(),
        sms_url: Some("http://x/sms".into()),
        sms_method: "GET".into(),
        sms_fallback_url: None,
        sms_fallback_method: "POST".into(),
        date_created: created,
        date_updated: created,
    }
}

#[tokio::test]
async fn incoming_numbers_are_unique_scoped_and_routable() {
    let store = Store::open_in_memory().await.unwrap();
    store.upsert_account(&account("AC1")).await.unwrap();
    store.upsert_account(&account("AC2")).await.unwrap();
    let pn1 = incoming("PN1", "AC1", "+15005550001", 1);
    assert!(store.insert_incoming_number(&pn1).await.unwrap());
    // Same digits, any account: refused.
    assert!(!store
        .insert_incoming_number(&incoming("PN9", "AC2", "15005550001", 2))
        .await
        .unwrap());
    assert!(store
        .insert_incoming_number(&incoming("PN2", "AC1", "+15005550002", 2))
        .await
        .unwrap());
    assert!(store
        .insert_incoming_number(&incoming("PN3", "AC2", "+15005550003", 3))
        .await
        .unwrap());

    // The call router finds API-created numbers.
    let routed = store
        .number_by_dialled("+15005550001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(routed.sid, "PN1");
    assert_eq!(routed.voice_url.as_deref(), Some("http://x/voice"));

    assert_eq!(
        store.incoming_number("AC1", "PN1").await.unwrap(),
        Some(pn1.clone())
    );
    assert_eq!(store.incoming_number("AC2", "PN1").await.unwrap(), None);

    let page = store
        .list_incoming_numbers("AC1", &NumberFilter::default(), &PageRequest::offset(0, 1))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].sid, "PN1");
    assert!(page.has_more);
    let page = store
        .list_incoming_numbers("AC1", &NumberFilter::default(), &PageRequest::offset(1, 1))
        .await
        .unwrap();
    assert_eq!(page.items[0].sid, "PN2");
    assert!(!page.has_more);
    let filtered = store
        .list_incoming_numbers(
            "AC1",
            &NumberFilter {
                phone_number_digits: Some("0002".into()),
                friendly_name: None,
            },
            &PageRequest::offset(0, 50),
        )
        .await
        .unwrap();
    assert_eq!(filtered.items.len(), 1);
    assert_eq!(filtered.items[0].sid, "PN2");
    let by_name = store
        .list_incoming_numbers(
            "AC1",
            &NumberFilter {
                phone_number_digits: None,
                friendly_name: Some("name PN3".into()),
            },
            &PageRequest::offset(0, 50),
        )
        .await
        .unwrap();
    assert!(
        by_name.items.is_empty(),
        "AC2's number leaked into AC1's list"
    );

    let mut changed = pn1.clone();
    changed.voice_url = Some("http://y/voice".into());
    changed.date_updated = 10;
    assert!(store.update_incoming_number(&changed).await.unwrap());
    let mut foreign = changed.clone();
    foreign.account_sid = "AC2".into();
    assert!(!store.update_incoming_number(&foreign).await.unwrap());
    assert_eq!(
        store
            .number_by_dialled("15005550001")
            .await
            .unwrap()
            .unwrap()
            .voice_url
            .as_deref(),
        Some("http://y/voice")
    );

    // Transfers change the owner the router sees.
    assert!(!store
        .move_incoming_number("AC2", "PN1", "AC2", 11)
        .await
        .unwrap());
    assert!(store
        .move_incoming_number("AC1", "PN1", "AC2", 11)
        .await
        .unwrap());
    assert_eq!(
        store
            .number_by_dialled("15005550001")
            .await
            .unwrap()
            .unwrap()
            .account_sid,
        "AC2"
    );
    assert_eq!(store.incoming_number("AC1", "PN1").await.unwrap(), None);
    assert!(store
        .move_incoming_number("AC2", "PN1", "AC1", 12)
        .await
        .unwrap());

    assert!(!store.delete_incoming_number("AC2", "PN1").await.unwrap());
    assert!(store.delete_incoming_number("AC1", "PN1").await.unwrap());
    assert_eq!(store.number_by_dialled("15005550001").await.unwrap(), None);
    assert!(!store.delete_incoming_number("AC1", "PN1").await.unwrap());
}

#[tokio::test]
async fn config_numbers_appear_in_the_resource_with_defaults() {
    let store = Store::open_in_memory().await.unwrap();
    store.upsert_account(&account("AC1")).await.unwrap();
    store
        .upsert_number(&PhoneNumber {
            sid: "PN1".into(),
            account_sid: "AC1".into(),
            phone_number: "+15005550006".into(),
            voice_url: None,
            voice_method: "POST".into(),
            voice_fallback_url: None,
            voice_fallback_method: "POST".into(),
            status_callback: None,
            status_callback_method: "POST".into(),
            date_created: 7,
        })
        .await
        .unwrap();
    let n = store.incoming_number("AC1", "PN1").await.unwrap().unwrap();
    assert_eq!(n.friendly_name, None);
    assert_eq!(n.sms_method, "POST");
    assert_eq!(n.date_updated, 7);
}

#[tokio::test]
async fn subaccounts_form_a_tree() {
    let store = Store::open_in_memory().await.unwrap();
    store.upsert_account(&account("AC1")).await.unwrap();
    store.upsert_account(&account("AC2")).await.unwrap();
    let mut sub = account("AC1a");
    sub.date_created = 5;
    sub.friendly_name = "sub".into();
    store.create_subaccount("AC1", &sub).await.unwrap();

    let details = store.account_details("AC1a").await.unwrap().unwrap();
    assert_eq!(details.parent_sid.as_deref(), Some("AC1"));
    assert_eq!(details.owner_sid(), "AC1");
    assert_eq!(details.account, sub);
    let top = store.account_details("AC1").await.unwrap().unwrap();
    assert_eq!(top.owner_sid(), "AC1");

    let tree = store
        .list_account_tree(
            "AC1",
            &AccountFilter::default(),
            &PageRequest::offset(0, 50),
        )
        .await
        .unwrap();
    let sids: Vec<_> = tree.items.iter().map(|a| a.account.sid.as_str()).collect();
    assert_eq!(sids, ["AC1", "AC1a"]);
    let named = store
        .list_account_tree(
            "AC1",
            &AccountFilter {
                friendly_name: Some("sub".into()),
                status: None,
            },
            &PageRequest::offset(0, 50),
        )
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    let other = store
        .list_account_tree(
            "AC2",
            &AccountFilter::default(),
            &PageRequest::offset(0, 50),
        )
        .await
        .unwrap();
    assert_eq!(other.items.len(), 1);

    assert!(store
        .update_account("AC1a", None, Some("suspended"), 9)
        .await
        .unwrap());
    let details = store.account_details("AC1a").await.unwrap().unwrap();
    assert_eq!(details.account.status, "suspended");
    assert_eq!(details.account.friendly_name, "sub");
    assert_eq!(details.date_updated, 9);
    assert!(!store
        .update_account("AC9", Some("x"), None, 9)
        .await
        .unwrap());
}

#[tokio::test]
async fn api_keys_are_scoped_by_account() {
    let store = Store::open_in_memory().await.unwrap();
    store.upsert_account(&account("AC1")).await.unwrap();
    let key = ApiKey {
        sid: "SK1".into(),
        account_sid: "AC1".into(),
        friendly_name: "k".into(),
        secret_salt: "salt".into(),
        secret_hash: "hash".into(),
        date_created: 1,
        date_updated: 1,
    };
    store.insert_api_key(&key).await.unwrap();
    assert_eq!(
        store.api_key_by_sid("SK1").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.api_key("AC2", "SK1").await.unwrap(), None);
    assert_eq!(
        store
            .list_api_keys("AC1", &PageRequest::offset(0, 50))
            .await
            .unwrap()
            .items,
        std::slice::from_ref(&key)
    );
    assert!(store
        .list_api_keys("AC2", &PageRequest::offset(0, 50))
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(!store.rename_api_key("AC2", "SK1", "x", 2).await.unwrap());
    assert!(store
        .rename_api_key("AC1", "SK1", "renamed", 2)
        .await
        .unwrap());
    assert_eq!(
        store
            .api_key("AC1", "SK1")
            .await
            .unwrap()
            .unwrap()
            .friendly_name,
        "renamed"
    );
    assert!(!store.delete_api_key("AC2", "SK1").await.unwrap());
    assert!(store.delete_api_key("AC1", "SK1").await.unwrap());
    assert_eq!(store.api_key_by_sid("SK1").await.unwrap(), None);
}

#[tokio::test]
async fn calls_filter_by_time_and_only_finished_calls_delete() {
    let store = Store::open_in_memory().await.unwrap();
    let mut early = call("CA1", "AC1", 1_000);
    early.status = CallStatus::Completed;
    early.start_time = Some(1_000);
    early.end_time = Some(2_000);
    let mut late = call("CA2", "AC1", 5_000);
    late.status = CallStatus::Completed;
    late.start_time = Some(5_000);
    late.end_time = Some(9_000);
    let live = call("CA3", "AC1", 6_000);
    for c in [&early, &late, &live] {
        store.insert_call(c).await.unwrap();
    }
    let sids = |page: Page<CallRecord>| page.items.into_iter().map(|c| c.sid).collect::<Vec<_>>();
    let filter = CallFilter {
        start_time_from: Some(1_000),
        start_time_before: Some(5_000),
        ..CallFilter::default()
    };
    assert_eq!(
        sids(
            store
                .list_calls("AC1", &filter, &PageRequest::offset(0, 50))
                .await
                .unwrap()
        ),
        ["CA1"]
    );
    let filter = CallFilter {
        end_time_from: Some(3_000),
        ..CallFilter::default()
    };
    assert_eq!(
        sids(
            store
                .list_calls("AC1", &filter, &PageRequest::offset(0, 50))
                .await
                .unwrap()
        ),
        ["CA2"]
    );
    let filter = CallFilter {
        start_time_from: Some(0),
        ..CallFilter::default()
    };
    assert_eq!(
        sids(
            store
                .list_calls("AC1", &filter, &PageRequest::offset(0, 50))
                .await
                .unwrap()
        ),
        ["CA2", "CA1"]
    );

    assert_eq!(
        store.delete_call("AC2", "CA1").await.unwrap(),
        CallDeletion::NotFound
    );
    assert_eq!(
        store.delete_call("AC1", "CA3").await.unwrap(),
        CallDeletion::StillActive
    );
    assert_eq!(
        store.delete_call("AC1", "CA1").await.unwrap(),
        CallDeletion::Deleted
    );
    assert_eq!(
        store.delete_call("AC1", "CA1").await.unwrap(),
        CallDeletion::NotFound
    );
    assert_eq!(store.call("AC1", "CA1").await.unwrap(), None);
}

fn sids<T>(page: &Page<T>, sid: fn(&T) -> &str) -> Vec<String> {
    page.items
        .iter()
        .map(|item| sid(item).to_string())
        .collect()
}

#[tokio::test]
async fn keyset_pages_follow_the_last_item_and_survive_inserts() {
    let store = Store::open_in_memory().await.unwrap();
    // Two calls share a creation time: the SID breaks the tie.
    for (sid, created) in [("CA1", 1), ("CA2", 2), ("CA3", 2), ("CA4", 3), ("CA5", 4)] {
        store.insert_call(&call(sid, "AC1", created)).await.unwrap();
    }
    let filter = CallFilter::default();
    let first = store
        .list_calls("AC1", &filter, &PageRequest::offset(0, 2))
        .await
        .unwrap();
    assert_eq!(sids(&first, |c| &c.sid), ["CA5", "CA4"]);
    // A call arriving between requests must not shift the next page.
    store.insert_call(&call("CA9", "AC1", 9)).await.unwrap();
    let after = |c: &CallRecord| PageRequest {
        start: PageStart::After(SortKey {
            date_created: c.date_created,
            sid: c.sid.clone(),
        }),
        size: 2,
    };
    let second = store
        .list_calls("AC1", &filter, &after(&first.items[1]))
        .await
        .unwrap();
    assert_eq!(sids(&second, |c| &c.sid), ["CA3", "CA2"]);
    assert!(second.has_more);
    let third = store
        .list_calls("AC1", &filter, &after(&second.items[1]))
        .await
        .unwrap();
    assert_eq!(sids(&third, |c| &c.sid), ["CA1"]);
    assert!(!third.has_more);
    // Back from the third page: the two before CA1, in list order, and more before them.
    let before = PageRequest {
        start: PageStart::Before(SortKey {
            date_created: 1,
            sid: "CA1".into(),
        }),
        size: 2,
    };
    let previous = store.list_calls("AC1", &filter, &before).await.unwrap();
    assert_eq!(sids(&previous, |c| &c.sid), ["CA3", "CA2"]);
    assert!(previous.has_more);
}

#[tokio::test]
async fn keyset_pages_of_oldest_first_lists() {
    let store = Store::open_in_memory().await.unwrap();
    store.upsert_account(&account("AC1")).await.unwrap();
    for i in 0..5 {
        let key = ApiKey {
            sid: format!("SK{i}"),
            account_sid: "AC1".into(),
            friendly_name: String::new(),
            secret_salt: "salt".into(),
            secret_hash: "hash".into(),
            date_created: 100,
            date_updated: 100,
        };
        store.insert_api_key(&key).await.unwrap();
    }
    let key_of = |sid: &str| SortKey {
        date_created: 100,
        sid: sid.into(),
    };
    let next = store
        .list_api_keys(
            "AC1",
            &PageRequest {
                start: PageStart::After(key_of("SK1")),
                size: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(sids(&next, |k| &k.sid), ["SK2", "SK3"]);
    assert!(next.has_more);
    let previous = store
        .list_api_keys(
            "AC1",
            &PageRequest {
                start: PageStart::Before(key_of("SK1")),
                size: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(sids(&previous, |k| &k.sid), ["SK0"]);
    assert!(!previous.has_more);
    // The item named by the token may be gone: the page still starts after it.
    store.delete_api_key("AC1", "SK3").await.unwrap();
    let next = store
        .list_api_keys(
            "AC1",
            &PageRequest {
                start: PageStart::After(key_of("SK3")),
                size: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(sids(&next, |k| &k.sid), ["SK4"]);
    assert!(!next.has_more);
}

/// Records what the store reports, as `created <sid>` and `<status> x<calls>`.
#[derive(Default)]
struct SeenCalls(std::sync::Mutex<Vec<String>>);

impl CallObserver for SeenCalls {
    fn call_created(&self, call: &CallRecord) {
        self.0.lock().unwrap().push(format!("created {}", call.sid));
    }

    fn call_status_changed(&self, status: CallStatus, calls: u64) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} x{calls}", status.as_str()));
    }
}

#[tokio::test]
async fn the_observer_hears_of_each_call_once_and_each_end_once() {
    let seen = std::sync::Arc::new(SeenCalls::default());
    let store = Store::open_in_memory()
        .await
        .unwrap()
        .observe_calls(seen.clone());
    let clone = store.clone();
    clone.insert_call(&call("CA1", "AC1", 1)).await.unwrap();
    store
        .insert_call_request(&call("CA2", "AC1", 2), "{}")
        .await
        .unwrap();
    clone
        .update_call_status("CA1", CallStatus::InProgress, 10, true)
        .await
        .unwrap();
    store
        .update_call_status("CA1", CallStatus::Completed, 20, false)
        .await
        .unwrap();
    // A final status replaced by another is stored as before, but not reported again.
    store
        .update_call_status("CA1", CallStatus::Failed, 30, false)
        .await
        .unwrap();
    let c = store.call("AC1", "CA1").await.unwrap().unwrap();
    assert_eq!(c.status, CallStatus::Failed);
    assert_eq!(c.end_time, Some(30));
    store
        .update_call_status("CA-none", CallStatus::Completed, 40, false)
        .await
        .unwrap();
    store.delete_call_request("CA2").await.unwrap();
    assert_eq!(store.fail_unfinished_calls(50).await.unwrap(), 1);
    assert_eq!(store.fail_unfinished_calls(60).await.unwrap(), 0);
    assert_eq!(
        *seen.0.lock().unwrap(),
        [
            "created CA1",
            "created CA2",
            "in-progress x1",
            "completed x1",
            "failed x1"
        ]
    );
}

#[tokio::test]
async fn unfinished_calls_are_counted_by_direction_and_status() {
    let store = Store::open_in_memory().await.unwrap();
    assert!(store.active_call_counts().await.unwrap().is_empty());
    let mut outbound = call("CA3", "AC2", 3);
    outbound.direction = "outbound-api".into();
    outbound.status = CallStatus::Queued;
    for c in [call("CA1", "AC1", 1), call("CA2", "AC1", 2), outbound] {
        store.insert_call(&c).await.unwrap();
    }
    let mut done = call("CA4", "AC1", 4);
    done.status = CallStatus::Completed;
    store.insert_call(&done).await.unwrap();
    store
        .update_call_status("CA2", CallStatus::InProgress, 5, true)
        .await
        .unwrap();
    let count = |direction: &str, status, calls| ActiveCallCount {
        direction: direction.into(),
        status,
        calls,
    };
    assert_eq!(
        store.active_call_counts().await.unwrap(),
        [
            count("inbound", CallStatus::InProgress, 1),
            count("inbound", CallStatus::Ringing, 1),
            count("outbound-api", CallStatus::Queued, 1),
        ]
    );
}

fn qos(call_sid: &str, packets_received: i64, final_report: bool) -> CallQos {
    CallQos {
        call_sid: call_sid.into(),
        account_sid: "AC1".into(),
        codec: 0,
        packets_received,
        packets_lost: 2,
        fraction_lost: 5,
        jitter_us: 1_250,
        jitter_max_us: 4_000,
        jitter_avg_us: 900,
        rtt_us: None,
        rtt_max_us: None,
        rtt_avg_us: None,
        packets_sent: 300,
        octets_sent: 48_000,
        remote: None,
        final_report,
        date_updated: packets_received,
    }
}

#[tokio::test]
async fn call_qos_is_replaced_until_the_final_report() {
    let store = Store::open_in_memory().await.unwrap();
    assert_eq!(store.call_qos("CA1").await.unwrap(), None);
    assert!(store
        .upsert_call_qos(&qos("CA1", 100, false))
        .await
        .unwrap());
    let later = CallQos {
        rtt_us: Some(40_000),
        rtt_max_us: Some(55_000),
        rtt_avg_us: Some(41_000),
        remote: Some(RemoteCallQos {
            fraction_lost: 1,
            packets_lost: -2,
            jitter_us: 500,
            jitter_max_us: 750,
            jitter_avg_us: 600,
        }),
        ..qos("CA1", 250, false)
    };
    assert!(store.upsert_call_qos(&later).await.unwrap());
    assert_eq!(store.call_qos("CA1").await.unwrap(), Some(later));
    let last = qos("CA1", 300, true);
    assert!(store.upsert_call_qos(&last).await.unwrap());
    // Once final, a straggler changes nothing.
    assert!(!store
        .upsert_call_qos(&qos("CA1", 280, false))
        .await
        .unwrap());
    assert_eq!(store.call_qos("CA1").await.unwrap(), Some(last));
    assert_eq!(store.call_qos("CA2").await.unwrap(), None);
}

#[tokio::test]
async fn calls_by_sid_alone_and_deleting_a_call_deletes_its_quality() {
    let store = Store::open_in_memory().await.unwrap();
    store.insert_call(&call("CA1", "AC1", 10)).await.unwrap();
    assert_eq!(
        store
            .call_by_sid("CA1")
            .await
            .unwrap()
            .map(|c| c.account_sid),
        Some("AC1".to_string())
    );
    assert_eq!(store.call_by_sid("CA9").await.unwrap(), None);
    store.upsert_call_qos(&qos("CA1", 10, true)).await.unwrap();
    store
        .update_call_status("CA1", CallStatus::Completed, 20, false)
        .await
        .unwrap();
    assert_eq!(
        store.delete_call("AC1", "CA1").await.unwrap(),
        CallDeletion::Deleted
    );
    assert_eq!(store.call_qos("CA1").await.unwrap(), None);
}
