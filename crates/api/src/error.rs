//! Twilio's JSON error format: `{"code", "message", "more_info", "status"}`.

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An API error as Twilio reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 20404: the resource does not exist (or belongs to another account).
    pub fn not_found_resource(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {what} was not found"),
        )
    }

    /// 20003: missing or wrong credentials.
    pub fn unauthenticated() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
    }

    /// 20001-ish: a malformed parameter.
    pub fn invalid_parameter(name: &str, detail: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            20001,
            format!("Invalid parameter {name}: {detail}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        response
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> ApiError {
        tracing::error!(error = %e, "store error in API request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "An internal server error has occurred",
        )
    }
}

/// The fallback for paths that match no route.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found_resource(uri.path())
}
