//! The media layer's error type and its mapping to Twilio error codes.
//!
//! Each variant names the stage that failed (URL, fetch, decode, TTS, cache file I/O) so
//! the router can report the Twilio code the caller's debugger would show for the same
//! failure on Twilio.

use std::path::PathBuf;

/// Why preparing a piece of media failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The Play URL does not parse or uses a scheme other than http(s).
    #[error("invalid media URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The HTTP GET failed: connection, timeout, non-2xx status, or an oversized body.
    #[error("fetching {url} failed: {reason}")]
    Fetch { url: String, reason: String },
    /// The bytes are not audio in a format the transcoder reads (or the server said so
    /// through its Content-Type and the bytes agree).
    #[error("unsupported audio: {0}")]
    UnsupportedAudio(String),
    /// The bytes looked like a supported format but decoding produced no usable audio.
    #[error("undecodable audio: {0}")]
    Undecodable(String),
    /// The decoded audio is longer than the cache accepts.
    #[error("audio too long: {seconds} s exceeds the {limit} s limit")]
    TooLong { seconds: u64, limit: u64 },
    /// Say text is empty (after trimming) or longer than Twilio's limit.
    #[error("invalid Say text: {0}")]
    InvalidText(String),
    /// The TTS program could not be started, failed, timed out or produced no audio.
    #[error("text-to-speech failed: {0}")]
    Tts(String),
    /// Reading or writing the cache directory failed.
    #[error("cache file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A blocking worker task panicked or was cancelled.
    #[error("internal media-layer failure: {0}")]
    Internal(String),
}

impl MediaError {
    /// The Twilio error code closest to this failure, as documented at
    /// <https://www.twilio.com/docs/api/errors>:
    ///
    /// - `11100` "Invalid URL format" — [`MediaError::InvalidUrl`].
    /// - `11200` "HTTP retrieval failure" — [`MediaError::Fetch`] (404, 5xx, timeout,
    ///   connection refused, body too large).
    /// - `12300` "Invalid Content-Type" — [`MediaError::UnsupportedAudio`],
    ///   [`MediaError::Undecodable`] and [`MediaError::TooLong`]: Twilio documents 12300 for
    ///   "a Play verb attempting to play non-audio content". (A router that wants the
    ///   verb-specific code may report 13420 "Play: Invalid Content-Type" instead.)
    /// - `13520` "Say: Invalid text" — [`MediaError::InvalidText`] and [`MediaError::Tts`]:
    ///   Twilio has no code for an engine failure, and 13520 is the Say verb's "could not
    ///   speak this text" code.
    /// - `20500` "Internal Server Error" — [`MediaError::Io`] and [`MediaError::Internal`].
    pub fn twilio_code(&self) -> u32 {
        match self {
            MediaError::InvalidUrl { .. } => 11100,
            MediaError::Fetch { .. } => 11200,
            MediaError::UnsupportedAudio(_)
            | MediaError::Undecodable(_)
            | MediaError::TooLong { .. } => 12300,
            MediaError::InvalidText(_) | MediaError::Tts(_) => 13520,
            MediaError::Io { .. } | MediaError::Internal(_) => 20500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_documented_mapping() {
        let fetch = MediaError::Fetch {
            url: "http://x/".into(),
            reason: "404".into(),
        };
        assert_eq!(fetch.twilio_code(), 11200);
        assert_eq!(
            MediaError::InvalidUrl {
                url: "x".into(),
                reason: "no scheme".into()
            }
            .twilio_code(),
            11100
        );
        assert_eq!(
            MediaError::UnsupportedAudio("x".into()).twilio_code(),
            12300
        );
        assert_eq!(MediaError::Undecodable("x".into()).twilio_code(), 12300);
        assert_eq!(MediaError::Tts("x".into()).twilio_code(), 13520);
        assert_eq!(MediaError::InvalidText("".into()).twilio_code(), 13520);
        let io = MediaError::Io {
            path: "/x".into(),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(io.twilio_code(), 20500);
    }
}
