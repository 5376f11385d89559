//! WebhookClient against a real local HTTP server (axum on 127.0.0.1): what
//! arrives on the wire (method, parameters, signature recomputed by the
//! server), redirects, error statuses, refused connections, timeouts and the
//! fallback URL.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use webhook::*;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// One request as the app server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    url: String,
    params: Vec<(String, String)>,
    signature_valid: bool,
    user_agent: String,
    content_type: String,
}

#[derive(Clone, Default)]
struct AppState {
    seen: Arc<Mutex<Vec<Seen>>>,
    loop_hits: Arc<AtomicUsize>,
}

struct App {
    base: String,
    state: AppState,
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

fn parse_pairs(encoded: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(encoded.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Records the request and checks its X-Twilio-Signature the way an app
/// would: full URL as received + sorted POST parameters.
async fn echo(
    State(state): State<AppState>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let url = format!("http://{}{}", header("host"), uri);
    let (params, signed_params) = if method == HttpMethod::POST {
        let params = parse_pairs(std::str::from_utf8(&body).unwrap());
        (params.clone(), params)
    } else {
        (parse_pairs(uri.query().unwrap_or_default()), Vec::new())
    };
    let signature_valid = header("x-twilio-signature") == signature(TOKEN, &url, &signed_params);
    state.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        url,
        params,
        signature_valid,
        user_agent: header("user-agent"),
        content_type: header("content-type"),
    });
    if !signature_valid {
        return StatusCode::FORBIDDEN.into_response();
    }
    (
        [("content-type", "text/xml; charset=utf-8")],
        "<Response><Say>ok</Say></Response>",
    )
        .into_response()
}

async fn redirect(Path(code): Path<u16>) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [("location", format!("/echo?via={code}"))],
    )
        .into_response()
}

async fn endless_redirect(State(state): State<AppState>) -> Response {
    state.loop_hits.fetch_add(1, Ordering::SeqCst);
    (StatusCode::FOUND, [("location", "/loop")]).into_response()
}

async fn status(Path(code): Path<u16>) -> Response {
    (StatusCode::from_u16(code).unwrap(), "app error").into_response()
}

async fn slow() -> Response {
    tokio::time::sleep(Duration::from_secs(3)).await;
    "<Response/>".into_response()
}

async fn audio() -> Response {
    (
        [("content-type", "audio/wav")],
        vec![0x52u8, 0x49, 0x46, 0x46, 0, 1, 2, 255],
    )
        .into_response()
}

async fn start_app() -> App {
    let state = AppState::default();
    let router = Router::new()
        .route("/echo", any(echo))
        .route("/redirect/{code}", any(redirect))
        .route("/loop", any(endless_redirect))
        .route("/status/{code}", any(status))
        .route("/no-location", any(|| async { StatusCode::FOUND }))
        .route("/slow", any(slow))
        .route("/audio", any(audio))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    App {
        base: format!("http://{addr}"),
        state,
    }
}

/// A URL on a port where nothing listens.
async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/voice")
}

fn call_params() -> Vec<(String, String)> {
    [
        ("CallSid", "CA22222222222222222222222222222222"),
        ("AccountSid", "AC11111111111111111111111111111111"),
        ("From", "+1 501-712-2661"),
        ("To", "+15558675310"),
        ("Digits", "12#"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("Body", "héllo & bye"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn post(url: String) -> WebhookRequest {
    WebhookRequest {
        url,
        method: Method::Post,
        params: call_params(),
        auth_token: TOKEN.into(),
    }
}

fn client() -> WebhookClient {
    WebhookClient::new(WebhookConfig::default()).unwrap()
}

#[tokio::test]
async fn post_arrives_as_signed_form_with_repeated_keys() {
    let app = start_app().await;
    let response = client().request(&post(app.url("/echo?x=1"))).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.url, app.url("/echo?x=1"));
    assert_eq!(response.content_type, "text/xml; charset=utf-8");
    assert_eq!(response.body, b"<Response><Say>ok</Say></Response>");

    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, app.url("/echo?x=1"));
    assert_eq!(request.params, call_params());
    assert!(request.signature_valid);
    assert_eq!(request.user_agent, "TwilioProxy/1.1");
    assert_eq!(request.content_type, "application/x-www-form-urlencoded");
}

#[tokio::test]
async fn get_arrives_with_params_in_query_and_url_signature() {
    let app = start_app().await;
    let mut request = post(app.url("/echo?x=1"));
    request.method = Method::Get;
    let response = client().request(&request).await.unwrap();
    assert_eq!(response.status, 200);

    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    let mut expected = vec![("x".to_string(), "1".to_string())];
    expected.extend(call_params());
    assert_eq!(seen[0].params, expected);
    assert!(seen[0].signature_valid);
    assert_eq!(response.url, seen[0].url);
}

#[tokio::test]
async fn custom_user_agent_is_sent() {
    let app = start_app().await;
    let client = WebhookClient::new(WebhookConfig {
        user_agent: "Switchboard-Test/9".into(),
        ..WebhookConfig::default()
    })
    .unwrap();
    client.request(&post(app.url("/echo"))).await.unwrap();
    assert_eq!(app.seen()[0].user_agent, "Switchboard-Test/9");
}

#[tokio::test]
async fn redirects_are_followed_and_resigned() {
    let app = start_app().await;
    let client = client();
    for code in [301u16, 302, 307, 308] {
        let response = client
            .request(&post(app.url(&format!("/redirect/{code}"))))
            .await
            .unwrap();
        assert_eq!(response.url, app.url(&format!("/echo?via={code}")));
        assert_eq!(response.status, 200);
        let last = app.seen().pop().unwrap();
        assert_eq!(last.method, "POST", "{code}");
        assert_eq!(last.params, call_params(), "{code}");
        assert!(last.signature_valid, "{code}");
    }
    // 303 See Other: GET the new location as given.
    let response = client
        .request(&post(app.url("/redirect/303")))
        .await
        .unwrap();
    assert_eq!(response.url, app.url("/echo?via=303"));
    let last = app.seen().pop().unwrap();
    assert_eq!(last.method, "GET");
    assert_eq!(last.params, vec![("via".to_string(), "303".to_string())]);
    assert!(last.signature_valid);
}

#[tokio::test]
async fn too_many_redirects_is_11215() {
    let app = start_app().await;
    let client = WebhookClient::new(WebhookConfig {
        max_redirects: 3,
        ..WebhookConfig::default()
    })
    .unwrap();
    let err = client.request(&post(app.url("/loop"))).await.unwrap_err();
    assert_eq!(
        err,
        WebhookError::TooManyRedirects {
            url: app.url("/loop")
        }
    );
    assert_eq!(err.twilio_code(), 11215);
    assert_eq!(app.state.loop_hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn server_error_is_status_11200() {
    let app = start_app().await;
    let err = client()
        .request(&post(app.url("/status/500")))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WebhookError::Status {
            url: app.url("/status/500"),
            status: 500
        }
    );
    assert_eq!(err.twilio_code(), 11200);
    assert_eq!(err.url(), app.url("/status/500"));

    let err = client()
        .request(&post(app.url("/status/404")))
        .await
        .unwrap_err();
    assert_eq!(err.twilio_code(), 11200);
    let err = client()
        .request(&post(app.url("/no-location")))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WebhookError::Status {
            url: app.url("/no-location"),
            status: 302
        }
    );
}

#[tokio::test]
async fn bad_signature_token_is_rejected_by_the_app() {
    let app = start_app().await;
    let mut request = post(app.url("/echo"));
    request.auth_token = "wrong-token".into();
    let err = client().request(&request).await.unwrap_err();
    assert_eq!(
        err,
        WebhookError::Status {
            url: app.url("/echo"),
            status: 403
        }
    );
    assert!(!app.seen()[0].signature_valid);
}

#[tokio::test]
async fn audio_body_and_content_type_are_returned() {
    let app = start_app().await;
    let response = client().request(&post(app.url("/audio"))).await.unwrap();
    assert_eq!(response.content_type, "audio/wav");
    assert_eq!(response.body, vec![0x52u8, 0x49, 0x46, 0x46, 0, 1, 2, 255]);
}

#[tokio::test]
async fn connection_refused_is_11205() {
    let url = refused_url().await;
    let err = client().request(&post(url.clone())).await.unwrap_err();
    assert!(
        matches!(&err, WebhookError::Connect { url: u, .. } if *u == url),
        "{err:?}"
    );
    assert_eq!(err.twilio_code(), 11205);
}

#[tokio::test]
async fn slow_app_times_out_with_11205() {
    let app = start_app().await;
    let client = WebhookClient::new(WebhookConfig {
        timeout: Duration::from_millis(300),
        ..WebhookConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let err = client.request(&post(app.url("/slow"))).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        err,
        WebhookError::Timeout {
            url: app.url("/slow")
        }
    );
    assert_eq!(err.twilio_code(), 11205);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn unusable_urls_are_11210_without_network() {
    for url in ["not a url", "ftp://example.com/x", "/relative/path"] {
        let err = client().request(&post(url.into())).await.unwrap_err();
        assert_eq!(err, WebhookError::BadUrl { url: url.into() });
        assert_eq!(err.twilio_code(), 11210);
    }
}

#[tokio::test]
async fn primary_success_does_not_touch_fallback() {
    let app = start_app().await;
    let fallback = post(app.url("/echo?fallback=1"));
    let outcome = client()
        .request_with_fallback(&post(app.url("/echo")), Some(&fallback))
        .await;
    assert_eq!(outcome.response.unwrap().url, app.url("/echo"));
    assert!(outcome.failures.is_empty());
    assert!(!outcome.used_fallback);
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn fallback_is_used_after_primary_failure() {
    let app = start_app().await;
    let fallback = post(app.url("/echo?fallback=1"));
    let outcome = client()
        .request_with_fallback(&post(app.url("/status/500")), Some(&fallback))
        .await;
    let response = outcome.response.expect("fallback response");
    assert_eq!(response.url, app.url("/echo?fallback=1"));
    assert_eq!(
        outcome.failures,
        vec![WebhookError::Status {
            url: app.url("/status/500"),
            status: 500
        }]
    );
    assert!(outcome.used_fallback);
    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].signature_valid);
    assert_eq!(seen[0].params, call_params());
}

#[tokio::test]
async fn both_failures_are_recorded_in_order() {
    let app = start_app().await;
    let refused = refused_url().await;
    let fallback = post(refused.clone());
    let outcome = client()
        .request_with_fallback(&post(app.url("/status/503")), Some(&fallback))
        .await;
    assert_eq!(outcome.response, None);
    assert!(outcome.used_fallback);
    let codes: Vec<_> = outcome
        .failures
        .iter()
        .map(WebhookError::twilio_code)
        .collect();
    assert_eq!(codes, vec![11200, 11205]);
    let urls: Vec<_> = outcome.failures.iter().map(WebhookError::url).collect();
    assert_eq!(
        urls,
        vec![app.url("/status/503").as_str(), refused.as_str()]
    );
}

#[tokio::test]
async fn primary_failure_without_fallback() {
    let refused = refused_url().await;
    let outcome = client().request_with_fallback(&post(refused), None).await;
    assert_eq!(outcome.response, None);
    assert!(!outcome.used_fallback);
    assert_eq!(outcome.failures.len(), 1);
    assert_eq!(outcome.failures[0].twilio_code(), 11205);
}

#[tokio::test]
async fn unresolvable_host_is_11210() {
    // RFC 6761: names under .invalid never resolve.
    let client = WebhookClient::new(WebhookConfig {
        timeout: Duration::from_secs(5),
        ..WebhookConfig::default()
    })
    .unwrap();
    let url = "http://no-such-host.invalid/voice".to_string();
    let err = client.request(&post(url.clone())).await.unwrap_err();
    assert_eq!(err, WebhookError::BadUrl { url });
    assert_eq!(err.twilio_code(), 11210);
}

#[tokio::test]
async fn fetches_and_failures_are_counted_across_clones() {
    let app = start_app().await;
    let shared = client();
    let stats = shared.stats();
    let clone = shared.clone();
    // A redirect followed is still one fetch; the fallback is a fetch of its own.
    shared
        .request(&post(app.url("/redirect/302")))
        .await
        .unwrap();
    clone
        .request_with_fallback(
            &post(app.url("/status/500")),
            Some(&post(app.url("/echo?fallback=1"))),
        )
        .await;
    clone.request(&post(refused_url().await)).await.unwrap_err();
    assert_eq!(stats.requests(), 4);
    assert_eq!(stats.failures(), 2);
    let other = client();
    assert_eq!(
        other.stats().requests(),
        0,
        "a new client counts on its own"
    );
}
