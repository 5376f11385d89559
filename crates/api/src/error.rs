//! Twilio's JSON error format: `{"code", "message", "more_info", "status"}`, and the
//! 404/405 answers for unrouted paths and methods.

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::format::Format;

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

impl ApiError {
    /// 20001: a required parameter is absent.
    pub fn missing_parameter(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            20001,
            format!("Missing required parameter {name} in the post body"),
        )
    }

    /// 20403: the credentials are valid but may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, 20403, message)
    }

    /// 20004: the path exists but not with this HTTP method.
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            20004,
            format!("Method not allowed: {method} on {path}"),
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

/// Final touches on every answer: axum's bare 405 (a routed path, another method) becomes
/// Twilio's JSON error, and errors to `.xml` paths are rendered as Twilio's XML
/// `<RestException>`.
pub async fn twilio_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        let allow = response.headers().get(axum::http::header::ALLOW).cloned();
        response = ApiError::method_not_allowed(method.as_str(), &path).into_response();
        if let Some(allow) = allow {
            response
                .headers_mut()
                .insert(axum::http::header::ALLOW, allow);
        }
    }
    let is_error = response.status().is_client_error() || response.status().is_server_error();
    if is_error && Format::of_path(&path) == Format::Xml {
        let (mut parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let Ok(error) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Response::from_parts(parts, axum::body::Body::from(bytes));
        };
        parts.headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/xml"),
        );
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        let xml = crate::format::xml_document("RestException", &error);
        return Response::from_parts(parts, axum::body::Body::from(xml));
    }
    response
}

/// The fallback for paths that match no route.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found_resource(uri.path())
}
