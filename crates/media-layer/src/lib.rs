//! The control-plane side of media: turns `<Say>` text, `<Play>` URLs and uploaded audio
//! into telephony-ready files (raw μ-law, 8 kHz, mono, no header) named
//! `<hex sha256 of the bytes>.ulaw` in a cache directory that the media workers map and
//! play (docs/design/shmq-abi.md, "Media files").
//!
//! - [`MediaCache`]: the cache (`say`, `play_url`, `from_bytes`, `ringback`, `path_of`).
//! - [`decode_to_ulaw`]: the transcoder (symphonia + rubato + G.711), usable on its own.
//! - [`voice`]: Twilio voice/language → espeak-ng voice mapping.
//! - [`tones`]: call-progress tones (the `<Dial>` ringback), rendered once into the cache.
//! - [`MediaError`]: failures, each with [`MediaError::twilio_code`].
//!
//! TTS runs the espeak-ng *program*; libespeak-ng (GPL) is never linked.

mod cache;
mod container;
mod decode;
mod error;
mod fetch;
pub mod tones;
mod tts;
pub mod voice;

pub use cache::{media_id_of, CacheConfig, CacheStats, MediaCache, Prepared};
pub use decode::{decode_to_ulaw, MAX_AUDIO_SECONDS, TELEPHONY_RATE};
pub use error::MediaError;
pub use fetch::MAX_MEDIA_BYTES;
pub use shmq::MediaId;
pub use tts::{MAX_SAY_CHARS, TTS_TIMEOUT};
