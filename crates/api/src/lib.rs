//! Twilio's 2010-04-01 REST API (and, later, the local admin API), served with axum.
//!
//! Every route under `/2010-04-01/Accounts/{AccountSid}` is authenticated with HTTP Basic
//! `AccountSid:AuthToken`; an account only ever sees its own records (every store query is
//! scoped by the account in the path, which must be the authenticated one). Responses use
//! Twilio's JSON shapes, paging fields and error format so the official SDKs work unchanged.
//! This crate holds no business state: it reads and writes through `store`.

mod auth;
mod error;
mod json;
mod paging;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use store::{CallFilter, Store};

pub use error::ApiError;

/// Shared state of the API routes.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
}

/// The Twilio REST API routes, with authentication applied.
pub fn router(state: ApiState) -> Router {
    let accounts = Router::new()
        .route("/2010-04-01/Accounts/{account}", get(fetch_account))
        .route("/2010-04-01/Accounts/{account}/Calls.json", get(list_calls))
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{call}",
            get(fetch_call),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{call}/Notifications.json",
            get(list_call_notifications),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Notifications.json",
            get(list_notifications),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Notifications/{notification}",
            get(fetch_notification),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_account,
        ));
    accounts.fallback(error::not_found).with_state(state)
}

/// Strips the `.json` suffix every Twilio resource path carries.
fn resource_sid(segment: &str) -> Result<&str, ApiError> {
    segment
        .strip_suffix(".json")
        .ok_or_else(|| ApiError::not_found_resource(segment))
}

async fn fetch_account(
    State(state): State<ApiState>,
    Path(account): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let sid = resource_sid(&account)?;
    let account = state
        .store
        .account(sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    Ok(Json(json::account(&account)))
}

async fn list_calls(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let paging = paging::Paging::from_query(&query)?;
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let filter = CallFilter {
        to: param("To"),
        from: param("From"),
        status: param("Status"),
        parent_call_sid: param("ParentCallSid"),
    };
    let page = state
        .store
        .list_calls(&account, &filter, paging.page, paging.page_size)
        .await?;
    let items = page.items.iter().map(json::call).collect();
    let base = format!("/2010-04-01/Accounts/{account}/Calls.json");
    Ok(Json(paging.list(
        "calls",
        items,
        page.has_more,
        &base,
        &query,
    )))
}

async fn fetch_call(
    State(state): State<ApiState>,
    Path((account, call)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let sid = resource_sid(&call)?;
    let call = state
        .store
        .call(&account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    Ok(Json(json::call(&call)))
}

async fn list_call_notifications(
    State(state): State<ApiState>,
    Path((account, call)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let base = format!("/2010-04-01/Accounts/{account}/Calls/{call}/Notifications.json");
    notifications_page(&state, &account, Some(&call), &base, &query).await
}

async fn list_notifications(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let base = format!("/2010-04-01/Accounts/{account}/Notifications.json");
    notifications_page(&state, &account, None, &base, &query).await
}

/// One page of an account's notifications (optionally of one call) as a Twilio list.
async fn notifications_page(
    state: &ApiState,
    account: &str,
    call: Option<&str>,
    base: &str,
    query: &[(String, String)],
) -> Result<Json<Value>, ApiError> {
    let paging = paging::Paging::from_query(query)?;
    let page = state
        .store
        .list_notifications(account, call, paging.page, paging.page_size)
        .await?;
    let items = page.items.iter().map(json::notification).collect();
    Ok(Json(paging.list(
        "notifications",
        items,
        page.has_more,
        base,
        query,
    )))
}

async fn fetch_notification(
    State(state): State<ApiState>,
    Path((account, notification)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let sid = resource_sid(&notification)?;
    let n = state
        .store
        .notification(&account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    Ok(Json(json::notification(&n)))
}

#[cfg(test)]
mod tests;
