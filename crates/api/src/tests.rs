//! API tests through the real router and a real (in-memory) SQLite store.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use serde_json::Value;
use store::{Account, CallRecord, CallStatus, Store};
use tower::ServiceExt;

use crate::{router, ApiState};

async fn state() -> ApiState {
    let store = Store::open_in_memory().await.unwrap();
    for (sid, token) in [("AC1", "token1"), ("AC2", "token2")] {
        store
            .upsert_account(&Account {
                sid: sid.into(),
                auth_token: token.into(),
                friendly_name: sid.into(),
                status: "active".into(),
                date_created: 0,
            })
            .await
            .unwrap();
    }
    for (sid, account) in [("CA1", "AC1"), ("CA2", "AC2")] {
        store
            .insert_call(&CallRecord {
                sid: sid.into(),
                account_sid: account.into(),
                parent_call_sid: None,
                from: "+15551230000".into(),
                to: "+15005550006".into(),
                from_formatted: "+15551230000".into(),
                to_formatted: "+15005550006".into(),
                direction: "inbound".into(),
                status: CallStatus::Completed,
                caller_name: None,
                forwarded_from: None,
                date_created: 1_000,
                date_updated: 2_000,
                start_time: Some(1_000),
                end_time: Some(6_000),
                duration: Some(5),
            })
            .await
            .unwrap();
    }
    ApiState::without_calls(store)
}

async fn get(state: &ApiState, path: &str, user: &str, token: &str) -> (StatusCode, Value) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
    let response = router(state.clone())
        .oneshot(
            Request::get(path)
                .header("Authorization", format!("Basic {auth}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn list_and_fetch_calls_in_twilio_shape() {
    let s = state().await;
    let (status, body) = get(&s, "/2010-04-01/Accounts/AC1/Calls.json", "AC1", "token1").await;
    assert_eq!(status, StatusCode::OK);
    let calls = body["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["sid"], "CA1");
    assert_eq!(calls[0]["duration"], "5");
    assert_eq!(calls[0]["status"], "completed");
    assert_eq!(body["next_page_uri"], Value::Null);

    let (status, body) = get(
        &s,
        "/2010-04-01/Accounts/AC1/Calls/CA1.json",
        "AC1",
        "token1",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["uri"], "/2010-04-01/Accounts/AC1/Calls/CA1.json");
    assert_eq!(body["start_time"], "Thu, 01 Jan 1970 00:00:01 +0000");
}

#[tokio::test]
async fn wrong_credentials_are_401_in_twilio_format() {
    let s = state().await;
    let (status, body) = get(&s, "/2010-04-01/Accounts/AC1/Calls.json", "AC1", "nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], 20003);
    assert_eq!(body["status"], 401);
    let (status, _) = get(&s, "/2010-04-01/Accounts/AC1/Calls.json", "AC9", "token1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tenants_cannot_see_each_other() {
    let s = state().await;
    // AC1's credentials, AC2's call under AC1's path: not found.
    let (status, body) = get(
        &s,
        "/2010-04-01/Accounts/AC1/Calls/CA2.json",
        "AC1",
        "token1",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 20404);
    // AC1's credentials on AC2's path: not found either.
    let (status, _) = get(&s, "/2010-04-01/Accounts/AC2/Calls.json", "AC1", "token1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = get(&s, "/2010-04-01/Accounts/AC2/Calls.json", "AC2", "token2").await;
    assert_eq!(body["calls"][0]["sid"], "CA2");
}

#[tokio::test]
async fn unknown_routes_are_twilio_404s() {
    let s = state().await;
    let (status, body) = get(&s, "/2010-04-01/Nope.json", "AC1", "token1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 20404);
}

/// Sends one request through the router; returns status, content type and body text.
async fn send(
    state: &ApiState,
    method: &str,
    path: &str,
    user: &str,
    token: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", k, v.replace('+', "%2B").replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&");
    let response = router(state.clone())
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .header("Authorization", format!("Basic {auth}"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

async fn send_json(
    state: &ApiState,
    method: &str,
    path: &str,
    user: &str,
    token: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let (status, _, body) = send(state, method, path, user, token, form).await;
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap()
    };
    (status, value)
}

const NUMBERS: &str = "/2010-04-01/Accounts/AC1/IncomingPhoneNumbers.json";

#[tokio::test]
async fn incoming_numbers_crud_in_twilio_shape() {
    let s = state().await;
    let (status, created) = send_json(
        &s,
        "POST",
        NUMBERS,
        "AC1",
        "token1",
        &[
            ("PhoneNumber", "+15005550100"),
            ("VoiceUrl", "http://app/voice"),
            ("VoiceMethod", "GET"),
            ("SmsUrl", "http://app/sms"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let sid = created["sid"].as_str().unwrap().to_string();
    assert!(sid.starts_with("PN") && sid.len() == 34, "{sid}");
    assert_eq!(created["phone_number"], "+15005550100");
    assert_eq!(created["friendly_name"], "(500) 555-0100");
    assert_eq!(created["voice_url"], "http://app/voice");
    assert_eq!(created["voice_method"], "GET");
    assert_eq!(created["sms_url"], "http://app/sms");
    assert_eq!(created["sms_method"], "POST");
    assert_eq!(created["capabilities"]["voice"], true);
    assert_eq!(created["account_sid"], "AC1");
    assert_eq!(
        created["uri"],
        format!("/2010-04-01/Accounts/AC1/IncomingPhoneNumbers/{sid}.json")
    );
    assert!(created["date_created"].as_str().unwrap().ends_with("+0000"));

    // The router sees it.
    let routed = s
        .store
        .number_by_dialled("15005550100")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(routed.voice_url.as_deref(), Some("http://app/voice"));

    let item = format!("/2010-04-01/Accounts/AC1/IncomingPhoneNumbers/{sid}.json");
    let (status, updated) = send_json(
        &s,
        "POST",
        &item,
        "AC1",
        "token1",
        &[
            ("FriendlyName", "Front desk"),
            ("VoiceUrl", "http://app/other"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["friendly_name"], "Front desk");
    assert_eq!(updated["voice_url"], "http://app/other");
    assert_eq!(updated["voice_method"], "GET", "unchanged fields are kept");
    let (_, fetched) = send_json(&s, "GET", &item, "AC1", "token1", &[]).await;
    assert_eq!(fetched["friendly_name"], "Front desk");

    let (_, listed) = send_json(
        &s,
        "GET",
        &format!("{NUMBERS}?FriendlyName=Front+desk"),
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(listed["incoming_phone_numbers"][0]["sid"], sid.as_str());
    let (_, listed) = send_json(
        &s,
        "GET",
        &format!("{NUMBERS}?PhoneNumber=%2B15005550199"),
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(listed["incoming_phone_numbers"], serde_json::json!([]));

    // Isolation: AC2 neither sees nor changes it.
    let foreign = format!("/2010-04-01/Accounts/AC2/IncomingPhoneNumbers/{sid}.json");
    for method in ["GET", "POST", "DELETE"] {
        let (status, body) = send_json(&s, method, &foreign, "AC2", "token2", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(body["code"], 20404);
    }
    let (_, listed) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC2/IncomingPhoneNumbers.json",
        "AC2",
        "token2",
        &[],
    )
    .await;
    assert_eq!(listed["incoming_phone_numbers"], serde_json::json!([]));

    let (status, body) = send_json(&s, "DELETE", &item, "AC1", "token1", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (status, _) = send_json(&s, "GET", &item, "AC1", "token1", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.store.number_by_dialled("15005550100").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn incoming_number_errors_name_the_parameter() {
    let s = state().await;
    let (status, body) = send_json(&s, "POST", NUMBERS, "AC1", "token1", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 20001);
    assert!(body["message"].as_str().unwrap().contains("PhoneNumber"));
    let (_, body) = send_json(
        &s,
        "POST",
        NUMBERS,
        "AC1",
        "token1",
        &[("PhoneNumber", "abc")],
    )
    .await;
    assert_eq!(body["code"], 21421);
    let (_, body) = send_json(
        &s,
        "POST",
        NUMBERS,
        "AC1",
        "token1",
        &[("PhoneNumber", "+15005550101"), ("VoiceUrl", "nope")],
    )
    .await;
    assert_eq!(body["code"], 21402);
    assert!(body["message"].as_str().unwrap().contains("VoiceUrl"));
    let (_, body) = send_json(
        &s,
        "POST",
        NUMBERS,
        "AC1",
        "token1",
        &[("PhoneNumber", "+15005550101"), ("VoiceMethod", "PUT")],
    )
    .await;
    assert_eq!(body["code"], 21403);
    assert!(body["message"].as_str().unwrap().contains("VoiceMethod"));

    // Digits are unique across accounts.
    let (status, _) = send_json(
        &s,
        "POST",
        NUMBERS,
        "AC1",
        "token1",
        &[("PhoneNumber", "+15005550101")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = send_json(
        &s,
        "POST",
        "/2010-04-01/Accounts/AC2/IncomingPhoneNumbers.json",
        "AC2",
        "token2",
        &[("PhoneNumber", "1 500 555 0101")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 21422);
}

#[tokio::test]
async fn incoming_numbers_page() {
    let s = state().await;
    for i in 0..5 {
        let number = format!("+1500555020{i}");
        let (status, _) = send_json(
            &s,
            "POST",
            NUMBERS,
            "AC1",
            "token1",
            &[("PhoneNumber", &number)],
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut next = Some(format!("{NUMBERS}?PageSize=2"));
    while let Some(uri) = next {
        let (status, page) = send_json(&s, "GET", &uri, "AC1", "token1", &[]).await;
        assert_eq!(status, StatusCode::OK);
        for n in page["incoming_phone_numbers"].as_array().unwrap() {
            seen.push(n["phone_number"].as_str().unwrap().to_string());
        }
        next = page["next_page_uri"].as_str().map(str::to_string);
    }
    // Every number exactly once across the pages (same-millisecond creations order by SID).
    seen.sort();
    let expected: Vec<String> = (0..5).map(|i| format!("+1500555020{i}")).collect();
    assert_eq!(seen, expected);
}

/// Creates a subaccount of AC1 through the API; returns its SID and token.
async fn subaccount(s: &ApiState, name: &str) -> (String, String) {
    let (status, body) = send_json(
        s,
        "POST",
        "/2010-04-01/Accounts.json",
        "AC1",
        "token1",
        &[("FriendlyName", name)],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["owner_account_sid"], "AC1");
    assert_eq!(body["friendly_name"], name);
    assert_eq!(body["status"], "active");
    (
        body["sid"].as_str().unwrap().to_string(),
        body["auth_token"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn subaccounts_are_reachable_by_their_parent_only() {
    let s = state().await;
    let (sub, sub_token) = subaccount(&s, "child").await;
    assert!(sub.starts_with("AC") && sub.len() == 34);

    // The parent reaches the subaccount's resources.
    let sub_calls = format!("/2010-04-01/Accounts/{sub}/Calls.json");
    let (status, body) = send_json(&s, "GET", &sub_calls, "AC1", "token1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["calls"], serde_json::json!([]));
    let (status, body) = send_json(
        &s,
        "POST",
        &format!("/2010-04-01/Accounts/{sub}/IncomingPhoneNumbers.json"),
        "AC1",
        "token1",
        &[("PhoneNumber", "+15005550300")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["account_sid"], sub.as_str());
    // The subaccount reaches its own, not its parent's.
    let (status, _) = send_json(&s, "GET", &sub_calls, &sub, &sub_token, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC1/Calls.json",
        &sub,
        &sub_token,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 20404);
    let (status, _) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC1.json",
        &sub,
        &sub_token,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another top-level account does not reach it.
    let (status, _) = send_json(&s, "GET", &sub_calls, "AC2", "token2", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Lists: the parent sees itself and its subaccount; the subaccount only itself.
    let (_, list) = send_json(&s, "GET", "/2010-04-01/Accounts.json", "AC1", "token1", &[]).await;
    let sids: Vec<&str> = list["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["AC1", sub.as_str()]);
    let (_, list) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts.json?FriendlyName=child",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1);
    let (_, list) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts.json",
        &sub,
        &sub_token,
        &[],
    )
    .await;
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1);
    let (_, list) = send_json(&s, "GET", "/2010-04-01/Accounts.json", "AC2", "token2", &[]).await;
    assert_eq!(list["accounts"][0]["sid"], "AC2");
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1);

    // A subaccount cannot create subaccounts.
    let (status, body) = send_json(
        &s,
        "POST",
        "/2010-04-01/Accounts.json",
        &sub,
        &sub_token,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 20403);
}

#[tokio::test]
async fn parents_transfer_numbers_within_their_tree() {
    let s = state().await;
    let (sub, sub_token) = subaccount(&s, "child").await;
    let (_, created) = send_json(
        &s,
        "POST",
        NUMBERS,
        "AC1",
        "token1",
        &[("PhoneNumber", "+15005550400")],
    )
    .await;
    let sid = created["sid"].as_str().unwrap().to_string();
    let item = format!("/2010-04-01/Accounts/AC1/IncomingPhoneNumbers/{sid}.json");

    // Not to an account outside the tree.
    let (status, body) =
        send_json(&s, "POST", &item, "AC1", "token1", &[("AccountSid", "AC2")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("AccountSid"));
    // Parent → subaccount.
    let (status, moved) = send_json(
        &s,
        "POST",
        &item,
        "AC1",
        "token1",
        &[("AccountSid", sub.as_str()), ("FriendlyName", "moved")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["account_sid"], sub.as_str());
    assert_eq!(moved["friendly_name"], "moved");
    let routed = s
        .store
        .number_by_dialled("15005550400")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(routed.account_sid, sub);
    let (status, _) = send_json(&s, "GET", &item, "AC1", "token1", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let sub_item = format!("/2010-04-01/Accounts/{sub}/IncomingPhoneNumbers/{sid}.json");
    // The subaccount's own credentials cannot move it back.
    let (status, _) = send_json(
        &s,
        "POST",
        &sub_item,
        &sub,
        &sub_token,
        &[("AccountSid", "AC1")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The parent can.
    let (status, back) = send_json(
        &s,
        "POST",
        &sub_item,
        "AC1",
        "token1",
        &[("AccountSid", "AC1")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(back["account_sid"], "AC1");
}

#[tokio::test]
async fn only_the_parent_changes_a_subaccount_status() {
    let s = state().await;
    let (sub, sub_token) = subaccount(&s, "child").await;
    let sub_path = format!("/2010-04-01/Accounts/{sub}.json");

    // The subaccount may rename itself but not change its status.
    let (status, body) = send_json(
        &s,
        "POST",
        &sub_path,
        &sub,
        &sub_token,
        &[("FriendlyName", "renamed")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["friendly_name"], "renamed");
    let (status, body) = send_json(
        &s,
        "POST",
        &sub_path,
        &sub,
        &sub_token,
        &[("Status", "closed")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 20403);
    // Nor may a top-level account change its own.
    let (status, _) = send_json(
        &s,
        "POST",
        "/2010-04-01/Accounts/AC1.json",
        "AC1",
        "token1",
        &[("Status", "suspended")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = send_json(
        &s,
        "POST",
        &sub_path,
        "AC1",
        "token1",
        &[("Status", "sleeping")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("Status"));

    // Suspended: the subaccount's credentials stop working; the parent still reaches it.
    let (status, body) = send_json(
        &s,
        "POST",
        &sub_path,
        "AC1",
        "token1",
        &[("Status", "suspended")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "suspended");
    let (status, body) = send_json(&s, "GET", &sub_path, &sub, &sub_token, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], 20003);
    let (status, _) = send_json(&s, "GET", &sub_path, "AC1", "token1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts.json?Status=suspended",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(list["accounts"][0]["sid"], sub.as_str());

    // Reactivated, then closed for good.
    let (_, body) = send_json(
        &s,
        "POST",
        &sub_path,
        "AC1",
        "token1",
        &[("Status", "active")],
    )
    .await;
    assert_eq!(body["status"], "active");
    let (status, _) = send_json(&s, "GET", &sub_path, &sub, &sub_token, &[]).await;
    assert_eq!(status, StatusCode::OK);
    // A suspended parent takes its subaccounts down with it.
    s.store
        .update_account("AC1", None, Some("suspended"), 1)
        .await
        .unwrap();
    let (status, _) = send_json(&s, "GET", &sub_path, &sub, &sub_token, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    s.store
        .update_account("AC1", None, Some("active"), 2)
        .await
        .unwrap();

    let (_, body) = send_json(
        &s,
        "POST",
        &sub_path,
        "AC1",
        "token1",
        &[("Status", "closed")],
    )
    .await;
    assert_eq!(body["status"], "closed");
    let (status, _) = send_json(
        &s,
        "POST",
        &sub_path,
        "AC1",
        "token1",
        &[("Status", "active")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send_json(&s, "GET", &sub_path, &sub, &sub_token, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

const KEYS: &str = "/2010-04-01/Accounts/AC1/Keys.json";

#[tokio::test]
async fn api_keys_authenticate_for_their_account() {
    let s = state().await;
    let (status, key) =
        send_json(&s, "POST", KEYS, "AC1", "token1", &[("FriendlyName", "ci")]).await;
    assert_eq!(status, StatusCode::CREATED);
    let sk = key["sid"].as_str().unwrap().to_string();
    let secret = key["secret"].as_str().unwrap().to_string();
    assert!(sk.starts_with("SK") && sk.len() == 34);
    assert_eq!(secret.len(), 32);
    assert_eq!(key["friendly_name"], "ci");
    // The secret is stored only hashed.
    let stored = s.store.api_key_by_sid(&sk).await.unwrap().unwrap();
    assert_ne!(stored.secret_hash, secret);
    assert!(!stored.secret_hash.contains(&secret));

    // Listing and fetching never show the secret.
    let (_, list) = send_json(&s, "GET", KEYS, "AC1", "token1", &[]).await;
    assert_eq!(list["keys"][0]["sid"], sk.as_str());
    assert!(list["keys"][0].get("secret").is_none());
    let item = format!("/2010-04-01/Accounts/AC1/Keys/{sk}.json");
    let (_, fetched) = send_json(&s, "GET", &item, "AC1", "token1", &[]).await;
    assert!(fetched.get("secret").is_none());
    let (_, renamed) = send_json(
        &s,
        "POST",
        &item,
        "AC1",
        "token1",
        &[("FriendlyName", "deploy")],
    )
    .await;
    assert_eq!(renamed["friendly_name"], "deploy");

    // SK:secret works for AC1's resources, not with a wrong secret, not for AC2.
    let (status, body) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC1/Calls.json",
        &sk,
        &secret,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["calls"][0]["sid"], "CA1");
    let (status, body) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC1/Calls.json",
        &sk,
        "wrong",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], 20003);
    let (status, _) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC2/Calls.json",
        &sk,
        &secret,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A key cannot manage keys.
    let (status, _) = send_json(&s, "POST", KEYS, &sk, &secret, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nor is it visible to another account.
    let (status, _) = send_json(
        &s,
        "GET",
        &format!("/2010-04-01/Accounts/AC2/Keys/{sk}.json"),
        "AC2",
        "token2",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A parent's key reaches its subaccounts.
    let (sub, _) = subaccount(&s, "child").await;
    let (status, _) = send_json(
        &s,
        "GET",
        &format!("/2010-04-01/Accounts/{sub}/Calls.json"),
        &sk,
        &secret,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Deleted: the key stops authenticating.
    let (status, _) = send_json(&s, "DELETE", &item, "AC1", "token1", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC1/Calls.json",
        &sk,
        &secret,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send_json(&s, "DELETE", &item, "AC1", "token1", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn insert_call(s: &ApiState, sid: &str, status: CallStatus, start_ms: i64) {
    s.store
        .insert_call(&CallRecord {
            sid: sid.into(),
            account_sid: "AC1".into(),
            parent_call_sid: None,
            from: "+15551230000".into(),
            to: "+15005550006".into(),
            from_formatted: "+15551230000".into(),
            to_formatted: "+15005550006".into(),
            direction: "inbound".into(),
            status,
            caller_name: None,
            forwarded_from: None,
            date_created: start_ms,
            date_updated: start_ms,
            start_time: Some(start_ms),
            end_time: status.is_final().then_some(start_ms + 5_000),
            duration: status.is_final().then_some(5),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn next_page_uris_carry_a_page_token_and_stay_stable() {
    let s = state().await;
    for i in 0..7 {
        insert_call(&s, &format!("CAp{i}"), CallStatus::Completed, 1_000 + i).await;
    }
    let calls = "/2010-04-01/Accounts/AC1/Calls.json";
    let mut seen = Vec::new();
    let mut next = Some(format!("{calls}?PageSize=2&Status=completed"));
    let mut pages = 0;
    while let Some(uri) = next {
        let (status, page) = get(&s, &uri, "AC1", "token1").await;
        assert_eq!(status, StatusCode::OK, "{uri}: {page}");
        for c in page["calls"].as_array().unwrap() {
            seen.push(c["sid"].as_str().unwrap().to_string());
        }
        next = page["next_page_uri"].as_str().map(str::to_string);
        if let Some(next) = &next {
            assert!(next.contains("&PageToken=PA"), "{next}");
            assert!(next.ends_with("&Status=completed"), "{next}");
        }
        pages += 1;
        if pages == 1 {
            // Newer calls arriving while a client pages must not shift the later pages.
            insert_call(&s, "CAp8", CallStatus::Completed, 5_000).await;
            insert_call(&s, "CAp9", CallStatus::Completed, 6_000).await;
        }
    }
    assert_eq!(pages, 4);
    // (CA1, the fixture's call, shares CAp0's creation time: the SID breaks the tie.)
    assert_eq!(
        seen,
        ["CAp6", "CAp5", "CAp4", "CAp3", "CAp2", "CAp1", "CAp0", "CA1"]
    );

    for token in ["nonsense", "PA", "PA%21%21"] {
        let (status, body) = get(&s, &format!("{calls}?PageToken={token}"), "AC1", "token1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{token}: {body}");
        assert_eq!(body["code"], 20001);
        assert_eq!(body["status"], 400);
    }
}

#[tokio::test]
async fn calls_filter_by_date_and_delete() {
    let s = state().await;
    const DAY: i64 = 86_400_000;
    // CA1 (fixture) started 1970-01-01; these on 01-03 and 01-05.
    insert_call(&s, "CA3", CallStatus::Completed, 2 * DAY + 1_000).await;
    insert_call(&s, "CA5", CallStatus::InProgress, 4 * DAY + 1_000).await;
    let sids = |body: &Value| -> Vec<String> {
        body["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sid"].as_str().unwrap().to_string())
            .collect()
    };
    let calls = "/2010-04-01/Accounts/AC1/Calls.json";
    for (query, expected) in [
        ("StartTime=1970-01-03", vec!["CA3"]),
        ("StartTime%3E=1970-01-03", vec!["CA5", "CA3"]),
        ("StartTime%3E=1970-01-02", vec!["CA5", "CA3"]),
        ("StartTime%3C=1970-01-03", vec!["CA3", "CA1"]),
        ("StartTime%3C=1970-01-02", vec!["CA1"]),
        (
            "StartTime%3E=1970-01-02&StartTime%3C=1970-01-04",
            vec!["CA3"],
        ),
        ("EndTime=1970-01-01", vec!["CA1"]),
        // The SDKs serialise dates as midnight date-times.
        ("StartTime%3C=1970-01-03T00%3A00%3A00Z", vec!["CA3", "CA1"]),
        ("StartTime=1970-01-03T00%3A00%3A00Z", vec!["CA3"]),
        // A real instant is an exclusive upper bound.
        ("StartTime%3C=1970-01-03T00%3A00%3A01Z", vec!["CA1"]),
        ("EndTime%3E=1970-01-02", vec!["CA3"]),
    ] {
        let (status, body) =
            send_json(&s, "GET", &format!("{calls}?{query}"), "AC1", "token1", &[]).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(sids(&body), expected, "{query}");
    }
    let (status, body) = send_json(
        &s,
        "GET",
        &format!("{calls}?StartTime=soon"),
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("StartTime"));

    // Delete: finished calls only, own calls only, then gone.
    let (status, body) = send_json(
        &s,
        "DELETE",
        "/2010-04-01/Accounts/AC1/Calls/CA5.json",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], 20009);
    let (status, _) = send_json(
        &s,
        "DELETE",
        "/2010-04-01/Accounts/AC2/Calls/CA3.json",
        "AC2",
        "token2",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send_json(
        &s,
        "DELETE",
        "/2010-04-01/Accounts/AC1/Calls/CA3.json",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send_json(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC1/Calls/CA3.json",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send_json(
        &s,
        "DELETE",
        "/2010-04-01/Accounts/AC1/Calls/CA3.json",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn xml_and_csv_formats() {
    let s = state().await;
    let (status, content_type, body) = send(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC1/Calls/CA1.xml",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/xml");
    assert!(body.starts_with("<?xml"), "{body}");
    assert!(body.contains("<TwilioResponse><Call>"), "{body}");
    assert!(body.contains("<Sid>CA1</Sid>"), "{body}");
    assert!(body.contains("<AccountSid>AC1</AccountSid>"), "{body}");
    assert!(body.ends_with("</Call></TwilioResponse>"), "{body}");

    let (status, _, body) = send(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC1/Calls.xml?PageSize=1",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("<TwilioResponse><Calls page=\"0\" pagesize=\"1\""),
        "{body}"
    );
    assert!(
        body.contains("uri=\"/2010-04-01/Accounts/AC1/Calls.xml?PageSize=1&amp;Page=0\""),
        "{body}"
    );
    assert!(body.contains("<Call><"), "{body}");
    assert!(body.ends_with("</Call></Calls></TwilioResponse>"), "{body}");

    let (status, content_type, body) = send(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC1/Calls.csv",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/csv");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert!(lines[0].split(',').any(|h| h == "Sid"), "{body}");
    assert!(lines[0].split(',').any(|h| h == "DateCreated"), "{body}");
    assert!(lines[1].contains(",CA1,"), "{body}");
    // Dates hold commas, so they are quoted.
    assert!(
        lines[1].contains("\"Thu, 01 Jan 1970 00:00:01 +0000\""),
        "{body}"
    );

    for path in [
        "/2010-04-01/Accounts.xml",
        "/2010-04-01/Accounts/AC1.xml",
        "/2010-04-01/Accounts/AC1/IncomingPhoneNumbers.csv",
        "/2010-04-01/Accounts/AC1/Keys.xml",
        "/2010-04-01/Accounts/AC1/Notifications.csv",
    ] {
        let (status, _, _) = send(&s, "GET", path, "AC1", "token1", &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (_, _, body) = send(&s, "GET", "/2010-04-01/Accounts.xml", "AC1", "token1", &[]).await;
    assert!(body.contains("<Accounts page=\"0\""), "{body}");
    assert!(
        body.contains("<Account><AuthToken>token1</AuthToken>"),
        "{body}"
    );
    // Isolation holds for every format.
    let (status, _, _) = send(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC2/Calls.csv",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Errors to .xml paths are XML.
    let (status, content_type, body) = send(
        &s,
        "GET",
        "/2010-04-01/Accounts/AC1/Calls/CA9.xml",
        "AC1",
        "token1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/xml");
    assert!(
        body.contains("<TwilioResponse><RestException><Code>20404</Code><Message>"),
        "{body}"
    );
    assert!(
        body.contains("<Status>404</Status></RestException></TwilioResponse>"),
        "{body}"
    );
}

#[tokio::test]
async fn wrong_methods_are_twilio_405s() {
    let s = state().await;
    for (method, path) in [
        ("PUT", "/2010-04-01/Accounts/AC1/Calls.json"),
        (
            "DELETE",
            "/2010-04-01/Accounts/AC1/IncomingPhoneNumbers.json",
        ),
        ("PATCH", "/2010-04-01/Accounts/AC1/Keys.json"),
        ("DELETE", "/2010-04-01/Accounts.json"),
    ] {
        let (status, body) = send_json(&s, method, path, "AC1", "token1", &[]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(body["code"], 20004, "{method} {path}");
        assert_eq!(body["status"], 405);
    }
}

#[tokio::test]
async fn a_call_notification_is_fetched_only_under_its_call() {
    let s = state().await;
    s.store
        .insert_notification(&store::Notification {
            sid: "NO1".into(),
            account_sid: "AC1".into(),
            call_sid: Some("CA1".into()),
            error_code: "11200".into(),
            log_level: 0,
            message_text: "HTTP retrieval failure".into(),
            more_info: "https://www.twilio.com/docs/errors/11200".into(),
            request_method: None,
            request_url: None,
            request_variables: None,
            response_body: None,
            response_headers: None,
            date_created: 5_000,
        })
        .await
        .unwrap();
    let base = "/2010-04-01/Accounts/AC1/Calls";
    let (status, body) = get(
        &s,
        &format!("{base}/CA1/Notifications/NO1.json"),
        "AC1",
        "token1",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sid"], "NO1");
    assert_eq!(body["error_code"], "11200");
    let (status, _) = get(
        &s,
        &format!("{base}/CA2/Notifications/NO1.json"),
        "AC1",
        "token1",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(
        &s,
        "/2010-04-01/Accounts/AC2/Calls/CA1/Notifications/NO1.json",
        "AC2",
        "token2",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn call_summaries_are_authenticated_and_tenant_isolated() {
    let s = state().await;
    s.store
        .upsert_call_qos(&store::CallQos {
            call_sid: "CA1".into(),
            account_sid: "AC1".into(),
            codec: 0,
            packets_received: 250,
            packets_lost: 0,
            fraction_lost: 0,
            jitter_us: 500,
            jitter_max_us: 1_000,
            jitter_avg_us: 400,
            rtt_us: None,
            rtt_max_us: None,
            rtt_avg_us: None,
            packets_sent: 251,
            octets_sent: 40_160,
            remote: None,
            final_report: true,
            date_updated: 6_000,
        })
        .await
        .unwrap();
    let (status, body) = get(&s, "/v1/Voice/CA1/Summary", "AC1", "token1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["call_sid"], "CA1");
    assert_eq!(body["processing_state"], "complete");
    assert_eq!(body["duration"], 5);
    let inbound = &body["carrier_edge"]["metrics"]["inbound"];
    assert_eq!(inbound["packets_received"], 250);
    assert_eq!(inbound["packets_loss_percentage"], 0.0);
    assert_eq!(
        body["carrier_edge"]["metrics"]["outbound"]["packets_sent"],
        251
    );
    // The complete summary is asked for explicitly: there it is.
    let (status, _) = get(
        &s,
        "/v1/Voice/CA1/Summary?ProcessingState=complete",
        "AC1",
        "token1",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(
        &s,
        "/v1/Voice/CA1/Summary?ProcessingState=x",
        "AC1",
        "token1",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Another account's call, an unknown call, no credentials.
    let (status, body) = get(&s, "/v1/Voice/CA2/Summary", "AC1", "token1").await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::NOT_FOUND, Some(20404))
    );
    let (status, _) = get(&s, "/v1/Voice/CA9/Summary", "AC1", "token1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&s, "/v1/Voice/CA1/Summary", "AC1", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // AC2 sees its own (no media reported: no edge).
    let (status, body) = get(&s, "/v1/Voice/CA2/Summary", "AC2", "token2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["carrier_edge"], Value::Null);
}

#[tokio::test]
async fn a_parent_reaches_its_subaccounts_call_summaries() {
    let s = state().await;
    let (sub, sub_token) = subaccount(&s, "child").await;
    let running = CallRecord {
        sid: "CA5".into(),
        account_sid: sub.clone(),
        parent_call_sid: None,
        from: "+15551230000".into(),
        to: "+15005550006".into(),
        from_formatted: "+15551230000".into(),
        to_formatted: "+15005550006".into(),
        direction: "inbound".into(),
        status: CallStatus::InProgress,
        caller_name: None,
        forwarded_from: None,
        date_created: 1_000,
        date_updated: 1_000,
        start_time: Some(1_000),
        end_time: None,
        duration: None,
    };
    s.store.insert_call(&running).await.unwrap();
    for (user, token) in [("AC1", "token1"), (sub.as_str(), sub_token.as_str())] {
        let (status, body) = get(&s, "/v1/Voice/CA5/Summary", user, token).await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(body["processing_state"], "partial");
        assert_eq!(body["call_state"], "answered");
    }
    // Not complete yet; the subaccount does not reach its parent's calls.
    let (status, _) = get(
        &s,
        "/v1/Voice/CA5/Summary?ProcessingState=complete",
        "AC1",
        "token1",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&s, "/v1/Voice/CA1/Summary", &sub, &sub_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
