//! The content-addressed media cache: turns Say text, Play URLs and uploaded audio into
//! `<dir>/<hex sha256>.ulaw` files (raw μ-law, 8 kHz, mono) that media workers map.
//!
//! Files are written to a temporary name in the same directory and renamed into place, so
//! a reader never sees a partial file. Say and Play results are also memoised in-process
//! by (espeak voice, text) and by URL; concurrent identical requests share one
//! synthesis/fetch (a `OnceCell` per key), and TTS runs are bounded by a semaphore.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use shmq::MediaId;
use tokio::sync::{OnceCell, Semaphore};

use crate::decode::{decode_to_ulaw, TELEPHONY_RATE};
use crate::{fetch, tones, tts, voice, MediaError};

/// Where and how the cache prepares media.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The cache directory (created if missing); media workers map files from here.
    pub dir: PathBuf,
    /// The espeak-ng program (a name looked up in `PATH`, or a path).
    pub tts_program: PathBuf,
    /// Whole-request timeout for Play URL fetches.
    pub http_timeout: Duration,
    /// How many TTS processes may run at once (0 is treated as 1).
    pub max_concurrent_tts: usize,
    /// Certificate authorities trusted for https:// media besides the system's roots.
    pub extra_root_certificates: Vec<reqwest::Certificate>,
}

impl CacheConfig {
    /// A config for `dir` with defaults: `espeak-ng` from `PATH`, a 10 s HTTP timeout and
    /// two concurrent syntheses.
    pub fn new(dir: impl Into<PathBuf>) -> CacheConfig {
        CacheConfig {
            dir: dir.into(),
            tts_program: PathBuf::from("espeak-ng"),
            http_timeout: Duration::from_secs(10),
            max_concurrent_tts: 2,
            extra_root_certificates: Vec::new(),
        }
    }
}

/// A telephony-ready file in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prepared {
    /// SHA-256 of the file's bytes; the file is `<dir>/<id.file_name()>`.
    pub id: MediaId,
    /// Play time: one byte per sample at 8 kHz.
    pub duration: Duration,
}

/// Counters of the expensive work the cache has done (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// TTS program runs started.
    pub tts_runs: u64,
    /// HTTP GETs sent for Play URLs.
    pub http_fetches: u64,
}

type Memo<K> = Mutex<HashMap<K, Arc<OnceCell<Prepared>>>>;

#[derive(Debug)]
struct Inner {
    cfg: CacheConfig,
    http: reqwest::Client,
    tts_permits: Semaphore,
    /// (espeak voice spec, text) → prepared speech.
    spoken: Memo<(String, String)>,
    /// URL → prepared download.
    fetched: Memo<String>,
    /// Ringback tone name → its rendered cycle.
    /// Ringbacks and melodies, by name.
    ringbacks: Memo<&'static str>,
    tts_runs: AtomicU64,
    http_fetches: AtomicU64,
    temp_counter: AtomicU64,
}

/// The media cache. Cheap to clone (an `Arc` inside); `Send + Sync`.
#[derive(Debug, Clone)]
pub struct MediaCache {
    inner: Arc<Inner>,
}

impl MediaCache {
    /// Creates the cache directory if needed and builds the HTTP client.
    pub fn new(cfg: CacheConfig) -> Result<MediaCache, MediaError> {
        std::fs::create_dir_all(&cfg.dir).map_err(|source| MediaError::Io {
            path: cfg.dir.clone(),
            source,
        })?;
        // rustls with the ring provider (idempotent; every HTTPS client needs one).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .tls_certs_merge(cfg.extra_root_certificates.clone())
            .timeout(cfg.http_timeout)
            .build()
            .map_err(|e| MediaError::Internal(format!("HTTP client: {e}")))?;
        let permits = cfg.max_concurrent_tts.max(1);
        Ok(MediaCache {
            inner: Arc::new(Inner {
                cfg,
                http,
                tts_permits: Semaphore::new(permits),
                spoken: Mutex::new(HashMap::new()),
                fetched: Mutex::new(HashMap::new()),
                ringbacks: Mutex::new(HashMap::new()),
                tts_runs: AtomicU64::new(0),
                http_fetches: AtomicU64::new(0),
                temp_counter: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration this cache runs with.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.cfg
    }

    /// Where the file for `id` lives.
    pub fn path_of(&self, id: &MediaId) -> PathBuf {
        self.inner.cfg.dir.join(id.file_name())
    }

    /// Counters of TTS runs and HTTP fetches so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            tts_runs: self.inner.tts_runs.load(Ordering::Relaxed),
            http_fetches: self.inner.http_fetches.load(Ordering::Relaxed),
        }
    }

    /// Speaks `text` with the espeak voice that stands in for Twilio's `voice` and
    /// `language` (see [`crate::voice`]). Identical requests (same espeak voice and text)
    /// are synthesised once per process.
    pub async fn say(
        &self,
        text: &str,
        voice: &str,
        language: &str,
    ) -> Result<Prepared, MediaError> {
        tts::validate_text(text)?;
        let espeak_voice = voice::espeak_voice(voice, language);
        let key = (espeak_voice.clone(), text.to_string());
        self.memoized(&self.inner.spoken, key, || async {
            let wav = {
                let _permit = self
                    .inner
                    .tts_permits
                    .acquire()
                    .await
                    .map_err(|e| MediaError::Internal(format!("TTS semaphore: {e}")))?;
                self.inner.tts_runs.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(voice = %espeak_voice, chars = text.len(), "synthesising speech");
                tts::synthesize_wav(&self.inner.cfg.tts_program, &espeak_voice, text).await?
            };
            self.transcode_and_store(wav, Some("wav".to_string()))
                .await
                .map_err(|e| match e {
                    MediaError::UnsupportedAudio(m) | MediaError::Undecodable(m) => {
                        MediaError::Tts(format!("TTS output did not decode: {m}"))
                    }
                    other => other,
                })
        })
        .await
    }

    /// Fetches `url` (HTTP GET) and transcodes it. Each URL is fetched once per process;
    /// failures are not remembered, so a later call retries.
    pub async fn play_url(&self, url: &str) -> Result<Prepared, MediaError> {
        fetch::validate_url(url)?;
        self.memoized(&self.inner.fetched, url.to_string(), || async {
            self.inner.http_fetches.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(url, "fetching media");
            let fetched = fetch::fetch(&self.inner.http, url).await?;
            self.transcode_and_store(fetched.body, fetched.content_type)
                .await
        })
        .await
    }

    /// Transcodes an uploaded audio body (`content_type` as in [`decode_to_ulaw`]).
    pub async fn from_bytes(
        &self,
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<Prepared, MediaError> {
        self.transcode_and_store(bytes.to_vec(), content_type.map(str::to_string))
            .await
    }

    /// The ringback tone for Twilio's `ringTone` country (see [`crate::tones`]): one
    /// cadence cycle, to be played with `loops = 0`. Rendered and stored once per process.
    pub async fn ringback(&self, country: Option<&str>) -> Result<Prepared, MediaError> {
        let tone = tones::ringback_for(country);
        self.memoized(&self.inner.ringbacks, tone.name, || async {
            let dir = self.inner.cfg.dir.clone();
            let temp_serial = self.inner.temp_counter.fetch_add(1, Ordering::Relaxed);
            tokio::task::spawn_blocking(move || {
                store_file(&dir, &tones::render_ulaw(&tone), temp_serial)
            })
            .await
            .map_err(|e| MediaError::Internal(format!("tone task: {e}")))?
        })
        .await
    }

    /// A platform sound (conference beeps, hold music) as a cached file, made once.
    pub async fn melody(&self, melody: &tones::Melody) -> Result<Prepared, MediaError> {
        let melody = *melody;
        self.memoized(&self.inner.ringbacks, melody.name, || async {
            let dir = self.inner.cfg.dir.clone();
            let temp_serial = self.inner.temp_counter.fetch_add(1, Ordering::Relaxed);
            tokio::task::spawn_blocking(move || {
                store_file(&dir, &tones::render_melody_ulaw(&melody), temp_serial)
            })
            .await
            .map_err(|e| MediaError::Internal(format!("tone task: {e}")))?
        })
        .await
    }

    /// Returns the memoised result for `key`, or runs `make` once (concurrent callers for
    /// the same key wait for it). A memoised file that disappeared from disk is remade.
    async fn memoized<K, F, Fut>(
        &self,
        memo: &Memo<K>,
        key: K,
        make: F,
    ) -> Result<Prepared, MediaError>
    where
        K: Eq + Hash + Clone,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Prepared, MediaError>>,
    {
        loop {
            let cell = {
                let mut map = memo.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                Arc::clone(map.entry(key.clone()).or_default())
            };
            let prepared = *cell.get_or_try_init(&make).await?;
            if tokio::fs::metadata(self.path_of(&prepared.id))
                .await
                .is_ok()
            {
                return Ok(prepared);
            }
            // Someone removed the file: forget this entry (unless already replaced) and redo.
            tracing::warn!(id = %prepared.id, "cached media file vanished; preparing it again");
            let mut map = memo.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if map
                .get(&key)
                .is_some_and(|current| Arc::ptr_eq(current, &cell))
            {
                map.remove(&key);
            }
        }
    }

    /// Decodes on a blocking thread and writes the result under its hash.
    async fn transcode_and_store(
        &self,
        bytes: Vec<u8>,
        hint: Option<String>,
    ) -> Result<Prepared, MediaError> {
        let dir = self.inner.cfg.dir.clone();
        let temp_serial = self.inner.temp_counter.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let ulaw = decode_to_ulaw(&bytes, hint.as_deref())?;
            store_file(&dir, &ulaw, temp_serial)
        })
        .await
        .map_err(|e| MediaError::Internal(format!("transcoder task: {e}")))?
    }
}

/// The id (SHA-256) of telephony-ready bytes.
pub fn media_id_of(ulaw: &[u8]) -> MediaId {
    MediaId(Sha256::digest(ulaw).into())
}

/// Writes `ulaw` as `<dir>/<sha256>.ulaw` atomically (temp file in `dir`, fsync, rename).
/// An existing file of the right length is kept as is: same name, same bytes.
fn store_file(dir: &Path, ulaw: &[u8], temp_serial: u64) -> Result<Prepared, MediaError> {
    let id = media_id_of(ulaw);
    let path = dir.join(id.file_name());
    let prepared = Prepared {
        id,
        duration: Duration::from_secs_f64(ulaw.len() as f64 / f64::from(TELEPHONY_RATE)),
    };
    if std::fs::metadata(&path).is_ok_and(|meta| meta.len() == ulaw.len() as u64) {
        return Ok(prepared);
    }
    let temp = dir.join(format!(
        ".{}.{}.{}.tmp",
        id.to_hex(),
        std::process::id(),
        temp_serial
    ));
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MediaError::Io { path, source }
    };
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(ulaw)?;
        file.sync_data()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error(&temp)(e));
    }
    if let Err(e) = std::fs::rename(&temp, &path) {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error(&path)(e));
    }
    tracing::debug!(id = %id, bytes = ulaw.len(), "stored media");
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("media-layer-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn store_names_file_by_hash_and_leaves_no_temp() {
        let dir = temp_dir("store");
        let bytes = vec![0x55u8; 4000];
        let prepared = store_file(&dir, &bytes, 0).unwrap();
        assert_eq!(prepared.duration, Duration::from_millis(500));
        let path = dir.join(prepared.id.file_name());
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        // The hash really is SHA-256 of the bytes (known vector for "abc").
        assert_eq!(
            media_id_of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Storing again is idempotent.
        assert_eq!(store_file(&dir, &bytes, 1).unwrap(), prepared);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![prepared.id.file_name()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn ringback_is_stored_once_by_content_hash() {
        let dir = temp_dir("ringback");
        let cache = MediaCache::new(CacheConfig::new(&dir)).unwrap();
        let us = cache.ringback(None).await.unwrap();
        assert_eq!(us, cache.ringback(Some("US")).await.unwrap());
        assert_eq!(us.duration, Duration::from_secs(6));
        let bytes = std::fs::read(cache.path_of(&us.id)).unwrap();
        assert_eq!(media_id_of(&bytes), us.id, "named by the hash of its bytes");
        assert_eq!(bytes, tones::render_ulaw(&tones::RINGBACK_US));
        assert_ne!(cache.ringback(Some("uk")).await.unwrap().id, us.id);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cache_is_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<MediaCache>();
    }
}
