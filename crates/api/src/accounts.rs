//! The Accounts resource: fetch/update an account, list the authenticated account with its
//! subaccounts, and create subaccounts. Only a parent may change a subaccount's status, and
//! a closed account stays closed.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::Extension;
use store::{Account, AccountFilter};

use crate::auth::Principal;
use crate::format::{Format, Reply};
use crate::params::Params;
use crate::{json, new_secret, new_sid, now_ms, paging, resource_sid, ApiError, ApiState};

const TAG: &str = "Account";
const STATUSES: [&str; 3] = ["active", "suspended", "closed"];

pub async fn fetch(
    State(state): State<ApiState>,
    Path(account): Path<String>,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&account)?;
    let details = state
        .store
        .account_details(sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    Ok(Reply::one(format, TAG, json::account(&details)))
}

fn friendly_name(params: &Params) -> Result<Option<&str>, ApiError> {
    match params.get("FriendlyName") {
        Some(name) if name.chars().count() > 64 => Err(ApiError::invalid_parameter(
            "FriendlyName",
            "must be at most 64 characters",
        )),
        other => Ok(other),
    }
}

pub async fn update(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(account): Path<String>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&account)?;
    let params = Params::from_body(&body)?;
    let name = friendly_name(&params)?;
    let target = state
        .store
        .account_details(sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    let status = params.get("Status");
    if let Some(status) = status {
        if !STATUSES.contains(&status) {
            return Err(ApiError::invalid_parameter(
                "Status",
                "must be one of active, suspended, closed",
            ));
        }
        if status != target.account.status {
            if target.parent_sid.as_deref() != Some(principal.sid()) {
                return Err(ApiError::forbidden(
                    "Only the parent account may change a subaccount's Status",
                ));
            }
            if target.account.status == "closed" {
                return Err(ApiError::invalid_parameter(
                    "Status",
                    "a closed account cannot be reopened",
                ));
            }
        }
    }
    state
        .store
        .update_account(sid, name, status, now_ms())
        .await?;
    let details = state
        .store
        .account_details(sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    Ok(Reply::one(format, TAG, json::account(&details)))
}

/// The authenticated account and its subaccounts.
pub async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Reply, ApiError> {
    let paging = paging::Paging::from_query(&query)?;
    let params = Params(query.clone());
    let filter = AccountFilter {
        friendly_name: params.get("FriendlyName").map(str::to_string),
        status: params.get("Status").map(str::to_string),
    };
    let page = state
        .store
        .list_account_tree(principal.sid(), &filter, &paging.request())
        .await?;
    let body = paging.list("accounts", &page, json::account, uri.path(), &query);
    Ok(Reply::list(
        Format::of_path(uri.path()),
        "accounts",
        "Accounts",
        TAG,
        body,
    ))
}

/// Creates a subaccount of the authenticated (top-level) account.
pub async fn create(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    uri: Uri,
    body: Bytes,
) -> Result<Reply, ApiError> {
    if principal.account.parent_sid.is_some() {
        return Err(ApiError::forbidden(
            "A subaccount cannot create subaccounts",
        ));
    }
    let params = Params::from_body(&body)?;
    let now = now_ms();
    let name = match friendly_name(&params)? {
        Some(name) => name.to_string(),
        None => format!(
            "SubAccount Created at {}",
            chrono::DateTime::from_timestamp_millis(now)
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default()
        ),
    };
    let account = Account {
        sid: new_sid("AC"),
        auth_token: new_secret(),
        friendly_name: name,
        status: "active".into(),
        date_created: now,
    };
    state
        .store
        .create_subaccount(principal.sid(), &account)
        .await?;
    let details = state
        .store
        .account_details(&account.sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(&account.sid))?;
    Ok(Reply::created(
        Format::of_path(uri.path()),
        TAG,
        json::account(&details),
    ))
}
