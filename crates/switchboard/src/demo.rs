//! The bundled demo application: a spoken menu that the default number answers with.
//!
//! It is an ordinary TwiML web app served beside the API, so a fresh install has a
//! number that does something when called.

use axum::extract::Form;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;

const TWIML: &str = "text/xml; charset=utf-8";

pub fn router() -> Router {
    Router::new()
        .route("/demo/voice", any(voice))
        .route("/demo/menu", any(menu))
        .route("/demo/hello", any(hello))
}

async fn voice() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, TWIML)],
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Gather numDigits="1" action="/demo/menu" timeout="8">
    <Say>Welcome to Switchboard. Press 1 to hear the time. Press 2 to hear about Switchboard. Press 9 to hang up.</Say>
  </Gather>
  <Say>We did not receive any input. Goodbye.</Say>
  <Hangup/>
</Response>"#,
    )
}

/// A one-line greeting then hang-up: the call-setup benchmark's app.
async fn hello() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, TWIML)],
        "<Response><Say>Hello from Switchboard.</Say><Hangup/></Response>",
    )
}

async fn menu(Form(params): Form<Vec<(String, String)>>) -> impl IntoResponse {
    let digits = params
        .iter()
        .find(|(k, _)| k == "Digits")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let body = match digits {
        "1" => {
            let now = chrono::Utc::now().format("%H:%M");
            format!(
                "<Response><Say>The time is {now} UTC.</Say><Redirect>/demo/voice</Redirect></Response>"
            )
        }
        "2" => "<Response><Say>Switchboard runs your TwiML applications on your own servers.</Say><Redirect>/demo/voice</Redirect></Response>".to_string(),
        "9" => "<Response><Say>Goodbye.</Say><Hangup/></Response>".to_string(),
        _ => "<Response><Say>Sorry, that is not an option.</Say><Redirect>/demo/voice</Redirect></Response>".to_string(),
    };
    ([(CONTENT_TYPE, TWIML)], body)
}
