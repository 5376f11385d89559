//! TwiML for Switchboard: parses and validates voice and messaging TwiML
//! into typed verbs exactly as Twilio accepts them (defaults, nesting rules,
//! error codes 12100/12200), classifies app responses by Content-Type, and
//! resolves / expands the URLs found in documents. No I/O.
//!
//! Layers: `dom` (well-formed XML → element tree, 12100) → `voice` /
//! `messaging` (element tree → verbs, 12200) using `attributes` for typed
//! attribute values; `uri` and `content_type` are independent helpers.

mod attributes;
mod content_type;
mod dom;
mod error;
mod messaging;
mod uri;
mod voice;

pub use content_type::{classify_content_type, AppContent};
pub use error::{
    TwimlError, TwimlWarning, CODE_DOCUMENT_PARSE_FAILURE, CODE_INVALID_URL, CODE_SCHEMA_VALIDATION,
};
pub use messaging::{
    parse_messaging, parse_messaging_with_warnings, MessagingResponse, MessagingVerb,
};
pub use uri::{expand_template, resolve_url};
pub use voice::{
    parse_voice, parse_voice_with_warnings, CallProgressEvent, Conference, ConferenceBeep,
    ConferenceEvent, ConferenceRecord, Dial, DialClient, DialNumber, DialQueue, DialRecord,
    DialSip, DialTarget, Enqueue, EnqueueTask, Gather, GatherChild, GatherInput, HttpMethod,
    LegCallbacks, MessageElement, Pause, Play, Record, RecordingEvent, Redirect, Reject,
    RejectReason, Response, Say, Sms, Trim, Verb,
};
