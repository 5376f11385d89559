//! What an app's HTTP response is, judged by its Content-Type the way Twilio
//! does: TwiML to run, audio to play then hang up, or plain text to say.

/// How the body of an app response is to be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppContent {
    /// `text/xml`, `application/xml`, `text/html`: parse as TwiML.
    Twiml,
    /// `audio/*`: play it, then hang up.
    Audio,
    /// `text/plain`: say it then hang up (messaging: send it as the reply).
    PlainText,
    /// Anything else, including a missing Content-Type.
    Unsupported,
}

/// Classifies a Content-Type header value; parameters such as
/// `; charset=utf-8` are ignored and matching is case-insensitive.
pub fn classify_content_type(content_type: &str) -> AppContent {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/xml" | "application/xml" | "text/html" => AppContent::Twiml,
        "text/plain" => AppContent::PlainText,
        _ => match essence.split_once('/') {
            Some(("audio", subtype)) if !subtype.is_empty() => AppContent::Audio,
            _ => AppContent::Unsupported,
        },
    }
}
