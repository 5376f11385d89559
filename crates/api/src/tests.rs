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
    ApiState { store }
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
