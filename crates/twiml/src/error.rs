//! Errors and warnings produced while reading TwiML, each carrying the Twilio
//! error code that a Notification for it must report.

/// Twilio's "Document parse failure": the body is not well-formed XML or its
/// root element is not `<Response>`.
pub const CODE_DOCUMENT_PARSE_FAILURE: u32 = 12100;
/// Twilio's "Schema validation warning": unknown verb, verb nested where it is
/// not allowed, or an attribute value Twilio would reject.
pub const CODE_SCHEMA_VALIDATION: u32 = 12200;
/// Twilio's "Invalid URL format": a URL in the document cannot be resolved.
pub const CODE_INVALID_URL: u32 = 11100;

/// Why a TwiML document (or a URL inside it) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    /// Not well-formed XML, or the root element is not `<Response>` (12100).
    #[error("TwiML document parse failure: {detail}")]
    Parse { detail: String },
    /// Well-formed XML that is not valid TwiML (12200). `element` names the
    /// offending element (e.g. `Gather`).
    #[error("TwiML schema validation failed at <{element}>: {detail}")]
    Schema { element: String, detail: String },
    /// A URL (document URL, action, Redirect or Play target) is unusable (11100).
    #[error("invalid URL {url:?}: {detail}")]
    InvalidUrl { url: String, detail: String },
}

impl TwimlError {
    /// The Twilio error code to put in the Notification for this error.
    pub fn code(&self) -> u32 {
        match self {
            TwimlError::Parse { .. } => CODE_DOCUMENT_PARSE_FAILURE,
            TwimlError::Schema { .. } => CODE_SCHEMA_VALIDATION,
            TwimlError::InvalidUrl { .. } => CODE_INVALID_URL,
        }
    }

    pub(crate) fn parse(detail: impl Into<String>) -> Self {
        TwimlError::Parse {
            detail: detail.into(),
        }
    }

    pub(crate) fn schema(element: impl Into<String>, detail: impl Into<String>) -> Self {
        TwimlError::Schema {
            element: element.into(),
            detail: detail.into(),
        }
    }
}

/// Something Twilio accepts but warns about (code 12200), such as an unknown
/// attribute, or text inside a verb that takes none. The document still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwimlWarning {
    /// The element the warning is about.
    pub element: String,
    /// What was ignored.
    pub detail: String,
}

impl TwimlWarning {
    /// Twilio reports these as schema validation warnings.
    pub fn code(&self) -> u32 {
        CODE_SCHEMA_VALIDATION
    }
}
