//! The local admin API for operators (a separate listener from the Twilio API, with
//! operator credentials): SIP trunks today; accounts, numbers and limits later; and the
//! Prometheus scrape endpoint.
//!
//! `GET /admin/v1/trunks`, `GET|PUT|DELETE /admin/v1/trunks/{name}`; JSON in and out;
//! passwords are write-only. `GET /metrics`: the text exposition format 0.0.4 (see
//! [`crate::metrics`]), behind the same credentials (Prometheus scrapes with `basic_auth`).

use axum::extract::{Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use store::{Store, Trunk};

/// State of the admin routes.
#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    /// Operator credentials (HTTP Basic).
    pub username: String,
    pub password: String,
    /// Told after a trunk is stored (its SID and `max_channels`) or removed (`None`)
    /// through this API, so live state (the call router's channel pool) follows at once.
    pub on_trunk_change: Option<TrunkChangeHook>,
    /// What `GET /metrics` exposes; without it the route is not served (404).
    pub metrics: Option<crate::metrics::MetricsSources>,
}

/// See [`AdminState::on_trunk_change`].
pub type TrunkChangeHook = std::sync::Arc<dyn Fn(&str, Option<u32>) + Send + Sync>;

/// An admin API error: `{"code", "message", "status"}`.
#[derive(Debug)]
pub struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut response = (
            self.0,
            Json(json!({"code": self.0.as_u16(), "message": self.1, "status": self.0.as_u16()})),
        )
            .into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"Switchboard admin\""),
            );
        }
        response
    }
}

impl From<store::StoreError> for AdminError {
    fn from(e: store::StoreError) -> AdminError {
        tracing::error!(error = %e, "store error in admin request");
        AdminError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    }
}

/// The admin routes, all behind operator authentication.
pub fn admin_router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/v1/trunks", get(list_trunks))
        .route(
            "/admin/v1/trunks/{name}",
            get(fetch_trunk).put(put_trunk).delete(delete_trunk),
        )
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            operator,
        ))
        .with_state(state)
}

async fn operator(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Result<Response, AdminError> {
    let expected = (state.username.as_bytes(), state.password.as_bytes());
    let authorized = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::parse_basic)
        .is_some_and(|(user, password)| {
            // Both compared (no early exit on the user name).
            let user_ok = crate::auth::constant_time_eq(user.as_bytes(), expected.0);
            let password_ok = crate::auth::constant_time_eq(password.as_bytes(), expected.1);
            user_ok & password_ok
        });
    if !authorized {
        return Err(AdminError(
            StatusCode::UNAUTHORIZED,
            "operator credentials required".into(),
        ));
    }
    Ok(next.run(request).await)
}

async fn metrics(State(state): State<AdminState>) -> Result<Response, AdminError> {
    let Some(sources) = &state.metrics else {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            "metrics are not served here".into(),
        ));
    };
    let snapshot = sources.snapshot(&state.store).await;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            crate::exposition::CONTENT_TYPE,
        )],
        crate::metrics::render(&snapshot),
    )
        .into_response())
}

/// A trunk as the admin API shows it (no password).
pub fn trunk_json(t: &Trunk) -> Value {
    json!({
        "sid": t.sid,
        "name": t.name,
        "gateway": t.gateway,
        "transport": t.transport,
        "username": t.username,
        "has_password": t.password.is_some(),
        "caller_id": t.caller_id,
        "dial_prefix": t.dial_prefix,
        "strip_plus": t.strip_plus,
        "max_channels": t.max_channels,
        "prefixes": t.prefixes,
    })
}

async fn list_trunks(State(state): State<AdminState>) -> Result<Json<Value>, AdminError> {
    let trunks = state.store.trunks().await?;
    Ok(Json(
        json!({ "trunks": trunks.iter().map(trunk_json).collect::<Vec<_>>() }),
    ))
}

async fn fetch_trunk(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    match state.store.trunk(&name).await? {
        Some(t) => Ok(Json(trunk_json(&t))),
        None => Err(AdminError(
            StatusCode::NOT_FOUND,
            format!("no trunk {name}"),
        )),
    }
}

/// The body of `PUT /admin/v1/trunks/{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkSpec {
    /// Optional in the admin API (the path names the trunk; a different name here is an
    /// error); required in the configuration file.
    #[serde(default)]
    pub name: Option<String>,
    pub gateway: String,
    #[serde(default = "udp")]
    pub transport: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub caller_id: Option<String>,
    #[serde(default)]
    pub dial_prefix: String,
    #[serde(default)]
    pub strip_plus: bool,
    #[serde(default = "default_channels")]
    pub max_channels: u32,
    #[serde(default)]
    pub prefixes: Vec<String>,
}

fn udp() -> String {
    "udp".into()
}

fn default_channels() -> u32 {
    30
}

impl TrunkSpec {
    /// Checks the spec and turns it into a trunk record named `name`.
    pub fn into_trunk(self, name: &str, sid: String, now_ms: i64) -> Result<Trunk, String> {
        if self.name.as_deref().is_some_and(|n| n != name) {
            return Err(format!(
                "name {:?} differs from the trunk's name {name:?}",
                self.name
            ));
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(format!("trunk name {name:?}: use letters, digits, - _ ."));
        }
        if self.gateway.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("gateway {:?} must be ip:port", self.gateway));
        }
        if self.transport != "udp" {
            return Err(format!(
                "transport {:?}: only udp is supported",
                self.transport
            ));
        }
        if self.max_channels == 0 {
            return Err("max_channels must be at least 1".into());
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("username and password go together".into());
        }
        Ok(Trunk {
            sid,
            name: name.to_string(),
            gateway: self.gateway,
            transport: self.transport,
            username: self.username,
            password: self.password,
            caller_id: self.caller_id,
            dial_prefix: self.dial_prefix,
            strip_plus: self.strip_plus,
            max_channels: self.max_channels,
            prefixes: self.prefixes,
            date_created: now_ms,
            date_updated: now_ms,
        })
    }
}

async fn put_trunk(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let spec: TrunkSpec = serde_json::from_slice(&body)
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, format!("invalid trunk: {e}")))?;
    let sid = crate::new_sid("TK");
    let trunk = spec
        .into_trunk(&name, sid, crate::now_ms())
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, e))?;
    let stored = state.store.upsert_trunk(&trunk).await?;
    if let Some(hook) = &state.on_trunk_change {
        hook(&stored.sid, Some(stored.max_channels));
    }
    Ok(Json(trunk_json(&stored)))
}

async fn delete_trunk(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<StatusCode, AdminError> {
    let existing = state.store.trunk(&name).await?;
    if state.store.delete_trunk(&name).await? {
        if let (Some(hook), Some(trunk)) = (&state.on_trunk_change, existing) {
            hook(&trunk.sid, None);
        }
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError(
            StatusCode::NOT_FOUND,
            format!("no trunk {name}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use base64::Engine;
    use tower::ServiceExt;

    async fn call(
        state: &AdminState,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if let Some((u, p)) = auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            request = request.header("Authorization", format!("Basic {token}"));
        }
        let response = admin_router(state.clone())
            .oneshot(request.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn state() -> AdminState {
        AdminState {
            store: Store::open_in_memory().await.unwrap(),
            username: "op".into(),
            password: "pw".into(),
            on_trunk_change: None,
            metrics: None,
        }
    }

    #[tokio::test]
    async fn trunks_are_managed_with_operator_credentials_only() {
        let s = state().await;
        let op = Some(("op", "pw"));
        let (status, _) = call(&s, "GET", "/admin/v1/trunks", None, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(&s, "GET", "/admin/v1/trunks", Some(("op", "nope")), "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let body = r#"{"gateway":"127.0.0.1:5090","username":"u","password":"p","prefixes":["1"],"max_channels":4}"#;
        let (status, trunk) = call(&s, "PUT", "/admin/v1/trunks/carrier-a", op, body).await;
        assert_eq!(status, StatusCode::OK, "{trunk}");
        assert_eq!(trunk["name"], "carrier-a");
        assert_eq!(trunk["has_password"], true);
        assert!(trunk.get("password").is_none(), "passwords are write-only");
        assert!(trunk["sid"].as_str().unwrap().starts_with("TK"));
        let (_, list) = call(&s, "GET", "/admin/v1/trunks", op, "").await;
        assert_eq!(list["trunks"][0]["max_channels"], 4);
        assert_eq!(
            s.store
                .trunk_for_number("+15551230000")
                .await
                .unwrap()
                .unwrap()
                .name,
            "carrier-a"
        );
        let (status, _) = call(&s, "DELETE", "/admin/v1/trunks/carrier-a", op, "").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = call(&s, "GET", "/admin/v1/trunks/carrier-a", op, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn trunk_changes_reach_the_hook_with_their_channel_limits() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut s = state().await;
        let log = seen.clone();
        s.on_trunk_change = Some(std::sync::Arc::new(move |sid: &str, limit: Option<u32>| {
            log.lock().unwrap().push((sid.to_string(), limit));
        }));
        let op = Some(("op", "pw"));
        let body = r#"{"gateway":"127.0.0.1:5090","max_channels":4}"#;
        let (_, trunk) = call(&s, "PUT", "/admin/v1/trunks/t", op, body).await;
        let sid = trunk["sid"].as_str().unwrap().to_string();
        let body = r#"{"gateway":"127.0.0.1:5090","max_channels":1}"#;
        call(&s, "PUT", "/admin/v1/trunks/t", op, body).await;
        call(&s, "DELETE", "/admin/v1/trunks/t", op, "").await;
        call(&s, "DELETE", "/admin/v1/trunks/t", op, "").await;
        assert_eq!(
            *seen.lock().unwrap(),
            [(sid.clone(), Some(4)), (sid.clone(), Some(1)), (sid, None)]
        );
    }

    /// `GET /metrics` as (status, content type, body).
    async fn scrape(
        state: &AdminState,
        auth: Option<(&str, &str)>,
    ) -> (StatusCode, String, String) {
        let mut request = axum::http::Request::builder().uri("/metrics");
        if let Some((u, p)) = auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            request = request.header("Authorization", format!("Basic {token}"));
        }
        let response = admin_router(state.clone())
            .oneshot(request.body(Body::empty()).unwrap())
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

    #[tokio::test]
    async fn metrics_are_scraped_with_operator_credentials_from_every_source() {
        let path = std::env::temp_dir().join(format!(
            "switchboard-admin-metrics-{}.shm",
            std::process::id()
        ));
        let segment = shmq::Segment::create(&path, 2, 8).unwrap();
        let counters = crate::metrics::Metrics::new();
        let mut s = state().await;
        s.store = s.store.clone().observe_calls(counters.clone());
        let webhook = webhook::WebhookClient::new(webhook::WebhookConfig::default()).unwrap();
        s.metrics = Some(crate::metrics::MetricsSources {
            counters,
            segment: segment.clone(),
            media_attached: std::sync::Arc::new(|| true),
            webhooks: webhook.stats(),
        });
        let stats = segment.worker_stats(1);
        stats
            .packets_out
            .store(42, std::sync::atomic::Ordering::Relaxed);
        stats
            .sessions_active
            .store(3, std::sync::atomic::Ordering::Relaxed);
        let mut commands = segment.command_producer(0).unwrap();
        commands.push(&shmq::Record::zeroed()).unwrap();
        let mut record = store::CallRecord {
            sid: "CA1".into(),
            account_sid: "AC1".into(),
            parent_call_sid: None,
            from: "+15551230000".into(),
            to: "+15005550006".into(),
            from_formatted: String::new(),
            to_formatted: String::new(),
            direction: "inbound".into(),
            status: store::CallStatus::Ringing,
            caller_name: None,
            forwarded_from: None,
            date_created: 1,
            date_updated: 1,
            start_time: None,
            end_time: None,
            duration: None,
        };
        s.store.insert_call(&record).await.unwrap();
        record.sid = "CA2".into();
        s.store.insert_call(&record).await.unwrap();
        s.store
            .update_call_status("CA2", store::CallStatus::Busy, 2, false)
            .await
            .unwrap();

        let (status, _, _) = scrape(&s, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = scrape(&s, Some(("op", "wrong"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, content_type, text) = scrape(&s, Some(("op", "pw"))).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let parsed = crate::exposition::tests::parse(&text);
        assert_eq!(parsed.value("switchboard_media_attached", &[]), 1.0);
        assert_eq!(parsed.value("switchboard_media_workers", &[]), 2.0);
        let w1 = [("worker", "1")];
        assert_eq!(
            parsed.value("switchboard_media_packets_sent_total", &w1),
            42.0
        );
        assert_eq!(parsed.value("switchboard_media_sessions", &w1), 3.0);
        let depth = |worker, ring| {
            parsed.value(
                "switchboard_media_ring_depth",
                &[("worker", worker), ("ring", ring)],
            )
        };
        assert_eq!(depth("0", "commands"), 1.0);
        assert_eq!(depth("0", "events"), 0.0);
        assert_eq!(depth("1", "commands"), 0.0);
        let active = [("direction", "inbound"), ("status", "ringing")];
        assert_eq!(parsed.value("switchboard_calls_active", &active), 1.0);
        let inbound = [("direction", "inbound")];
        assert_eq!(
            parsed.value("switchboard_calls_started_total", &inbound),
            2.0
        );
        let busy = [("status", "busy")];
        assert_eq!(parsed.value("switchboard_calls_ended_total", &busy), 1.0);
        assert_eq!(parsed.value("switchboard_webhook_requests_total", &[]), 0.0);

        let _ = std::fs::remove_file(&path);
        s.metrics = None;
        let (status, _, _) = scrape(&s, Some(("op", "pw"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn bad_trunks_are_refused_clearly() {
        let s = state().await;
        let op = Some(("op", "pw"));
        for body in [
            r#"{"gateway":"not-an-address"}"#,
            r#"{"gateway":"127.0.0.1:5090","transport":"tls"}"#,
            r#"{"gateway":"127.0.0.1:5090","username":"u"}"#,
            r#"{"gateway":"127.0.0.1:5090","max_channels":0}"#,
            r#"{"gateway":"127.0.0.1:5090","surprise":1}"#,
            "not json",
        ] {
            let (status, err) = call(&s, "PUT", "/admin/v1/trunks/t", op, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
            assert!(err["message"].as_str().unwrap().len() > 5);
        }
        let (status, _) = call(
            &s,
            "PUT",
            "/admin/v1/trunks/bad%20name",
            op,
            r#"{"gateway":"127.0.0.1:5090"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
