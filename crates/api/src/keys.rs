//! The Keys resource: API keys (`SK…`) whose `SK…:secret` credentials act for the owning
//! account. The secret is returned once, by create, and stored only as a salted hash.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use store::ApiKey;

use crate::auth::hash_secret;
use crate::format::{Format, Reply};
use crate::params::Params;
use crate::{json, new_secret, new_sid, now_ms, paging, resource_sid, ApiError, ApiState};

const TAG: &str = "Key";

fn friendly_name(params: &Params) -> Result<Option<String>, ApiError> {
    match params.get("FriendlyName") {
        Some(name) if name.chars().count() > 64 => Err(ApiError::invalid_parameter(
            "FriendlyName",
            "must be at most 64 characters",
        )),
        other => Ok(other.map(str::to_string)),
    }
}

pub async fn create(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let params = Params::from_body(&body)?;
    let secret = new_secret();
    let salt = new_secret();
    let now = now_ms();
    let key = ApiKey {
        sid: new_sid("SK"),
        account_sid: account,
        friendly_name: friendly_name(&params)?.unwrap_or_default(),
        secret_hash: hash_secret(&salt, &secret),
        secret_salt: salt,
        date_created: now,
        date_updated: now,
    };
    state.store.insert_api_key(&key).await?;
    Ok(Reply::created(
        Format::of_path(uri.path()),
        "NewKey",
        json::new_api_key(&key, &secret),
    ))
}

pub async fn list(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Reply, ApiError> {
    let paging = paging::Paging::from_query(&query)?;
    let page = state
        .store
        .list_api_keys(&account, &paging.request())
        .await?;
    let body = paging.list("keys", &page, json::api_key, uri.path(), &query);
    Ok(Reply::list(
        Format::of_path(uri.path()),
        "keys",
        "Keys",
        TAG,
        body,
    ))
}

pub async fn fetch(
    State(state): State<ApiState>,
    Path((account, key)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&key)?;
    let key = state
        .store
        .api_key(&account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    Ok(Reply::one(format, TAG, json::api_key(&key)))
}

pub async fn update(
    State(state): State<ApiState>,
    Path((account, key)): Path<(String, String)>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let (sid, format) = resource_sid(&key)?;
    let params = Params::from_body(&body)?;
    if let Some(name) = friendly_name(&params)? {
        if !state
            .store
            .rename_api_key(&account, sid, &name, now_ms())
            .await?
        {
            return Err(ApiError::not_found_resource(sid));
        }
    }
    let key = state
        .store
        .api_key(&account, sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(sid))?;
    Ok(Reply::one(format, TAG, json::api_key(&key)))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((account, key)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (sid, _) = resource_sid(&key)?;
    if !state.store.delete_api_key(&account, sid).await? {
        return Err(ApiError::not_found_resource(sid));
    }
    Ok(Reply::deleted())
}
