//! End-to-end tests of the media cache with real programs (espeak-ng, sox), real files
//! and a real HTTP server on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use media::g711::ULAW_DECODE;
use media_layer::{decode_to_ulaw, media_id_of, CacheConfig, MediaCache, MediaError, Prepared};

/// A fresh, empty directory for one test.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("media-layer-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cache_in(dir: &Path) -> MediaCache {
    MediaCache::new(CacheConfig::new(dir.join("cache"))).unwrap()
}

/// Runs sox with `args` (output file last) and returns the file's bytes.
fn sox(dir: &Path, file: &str, args: &[&str]) -> Vec<u8> {
    let out = dir.join(file);
    let status = Command::new("sox")
        .arg("-n")
        .args(args)
        .arg(&out)
        .args(["synth", "1", "sine", "1000"])
        .status()
        .expect("sox runs");
    assert!(status.success(), "sox {args:?} {file} failed");
    std::fs::read(out).unwrap()
}

fn linear(ulaw: &[u8]) -> Vec<i16> {
    ulaw.iter().map(|&b| ULAW_DECODE[usize::from(b)]).collect()
}

fn rms(samples: &[i16]) -> f64 {
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len().max(1) as f64)
        .sqrt()
}

/// Frequency estimated from sign changes (two per cycle) at 8 kHz.
fn zero_crossing_hz(samples: &[i16]) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / 8000.0)
}

/// Reads the prepared file and checks it is named by the hash of its bytes and that its
/// duration matches its length.
fn read_prepared(cache: &MediaCache, prepared: &Prepared) -> Vec<u8> {
    let path = cache.path_of(&prepared.id);
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        format!("{}.ulaw", prepared.id.to_hex())
    );
    let bytes = std::fs::read(&path).expect("prepared file exists");
    assert_eq!(
        media_id_of(&bytes),
        prepared.id,
        "file name is the SHA-256 of its bytes"
    );
    assert_eq!(
        prepared.duration,
        Duration::from_secs_f64(bytes.len() as f64 / 8000.0)
    );
    bytes
}

/// No temporary files are left in the cache directory.
fn assert_only_media_files(cache: &MediaCache) {
    for entry in std::fs::read_dir(&cache.config().dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name.ends_with(".ulaw") && name.len() == 64 + 5,
            "unexpected file {name} in the cache dir"
        );
    }
}

/// Checks a 1 s, 1 kHz tone came out as 1 s of 1 kHz μ-law.
fn assert_one_second_tone(ulaw: &[u8], what: &str, tolerance_bytes: usize) {
    assert!(
        ulaw.len().abs_diff(8000) <= tolerance_bytes,
        "{what}: {} bytes, expected 8000 ± {tolerance_bytes}",
        ulaw.len()
    );
    let samples = linear(ulaw);
    // Skip the edges where codecs fade in/out.
    let middle = &samples[800..samples.len() - 800];
    let hz = zero_crossing_hz(middle);
    assert!(
        (hz - 1000.0).abs() < 20.0,
        "{what}: dominant frequency {hz} Hz"
    );
    assert!(rms(middle) > 3000.0, "{what}: rms {}", rms(middle));
}

#[tokio::test]
async fn espeak_says_a_sentence_once_and_caches_it() {
    let dir = test_dir("say");
    // A wrapper that logs each run, then execs the real espeak-ng.
    let runs_log = dir.join("runs.log");
    let wrapper = dir.join("espeak-counting.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho run >> '{}'\nexec espeak-ng \"$@\"\n",
            runs_log.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    let mut cfg = CacheConfig::new(dir.join("cache"));
    cfg.tts_program = wrapper;
    cfg.max_concurrent_tts = 1;
    let cache = MediaCache::new(cfg).unwrap();

    let text = "Hello, and welcome to Switchboard.";
    let (a, b) = tokio::join!(
        cache.say(text, "alice", "en-US"),
        cache.say(text, "alice", "en-US")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let c = cache.say(text, "alice", "en-US").await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(cache.stats().tts_runs, 1);
    let runs = std::fs::read_to_string(&runs_log).unwrap();
    assert_eq!(
        runs.lines().count(),
        1,
        "espeak-ng ran {} times",
        runs.lines().count()
    );

    let secs = a.duration.as_secs_f64();
    assert!((0.5..=5.0).contains(&secs), "duration {secs} s");
    let ulaw = read_prepared(&cache, &a);
    let level = rms(&linear(&ulaw));
    assert!(level > 500.0, "speech is too quiet: rms {level}");

    // Another voice is another synthesis and other audio.
    let man = cache.say(text, "man", "en-US").await.unwrap();
    assert_ne!(man.id, a.id);
    assert_eq!(cache.stats().tts_runs, 2);
    assert_only_media_files(&cache);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn say_maps_languages_to_espeak_voices() {
    let dir = test_dir("say-lang");
    let cache = cache_in(&dir);
    let spanish = cache
        .say("Hola, buenos días.", "Polly.Miguel", "es-MX")
        .await
        .unwrap();
    let english = cache
        .say("Hola, buenos días.", "Polly.Matthew", "en-US")
        .await
        .unwrap();
    assert_ne!(
        spanish.id, english.id,
        "language must change the pronunciation"
    );
    assert!(rms(&linear(&read_prepared(&cache, &spanish))) > 500.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn say_failures_are_13520() {
    let dir = test_dir("say-fail");
    let mut cfg = CacheConfig::new(dir.join("cache"));
    cfg.tts_program = dir.join("no-such-espeak");
    let cache = MediaCache::new(cfg).unwrap();
    let err = cache.say("Hello", "man", "en-US").await.unwrap_err();
    assert!(matches!(err, MediaError::Tts(_)), "{err}");
    assert_eq!(err.twilio_code(), 13520);

    let cache = cache_in(&dir);
    let err = cache.say("   ", "man", "en-US").await.unwrap_err();
    assert!(matches!(err, MediaError::InvalidText(_)), "{err}");
    assert_eq!(err.twilio_code(), 13520);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn wav_16bit_44k_stereo_becomes_one_second_of_8k_ulaw() {
    let dir = test_dir("wav");
    let wav = sox(&dir, "tone.wav", &["-r", "44100", "-c", "2", "-b", "16"]);
    let cache = cache_in(&dir);
    let prepared = cache.from_bytes(&wav, Some("audio/wav")).await.unwrap();
    let ulaw = read_prepared(&cache, &prepared);
    assert_eq!(ulaw.len(), 8000);
    assert_eq!(prepared.duration, Duration::from_secs(1));
    assert_one_second_tone(&ulaw, "wav 16-bit 44.1k stereo", 0);
    assert_only_media_files(&cache);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wav_sample_formats_decode() {
    let dir = test_dir("wav-formats");
    let cases: &[(&str, &[&str])] = &[
        (
            "u8.wav",
            &["-r", "8000", "-c", "1", "-b", "8", "-e", "unsigned-integer"],
        ),
        ("s16-8k.wav", &["-r", "8000", "-c", "1", "-b", "16"]),
        ("s24-16k.wav", &["-r", "16000", "-c", "1", "-b", "24"]),
        ("s32-48k.wav", &["-r", "48000", "-c", "2", "-b", "32"]),
        (
            "f32-22k.wav",
            &["-r", "22050", "-c", "1", "-b", "32", "-e", "floating-point"],
        ),
        (
            "alaw-8k.wav",
            &["-r", "8000", "-c", "1", "-b", "8", "-e", "a-law"],
        ),
        (
            "ulaw-16k.wav",
            &["-r", "16000", "-c", "1", "-b", "8", "-e", "u-law"],
        ),
        ("flac-44k.flac", &["-r", "44100", "-c", "1", "-b", "16"]),
        (
            "au-ulaw.au",
            &["-r", "8000", "-c", "1", "-b", "8", "-e", "u-law"],
        ),
        ("au-s16-16k.au", &["-r", "16000", "-c", "2", "-b", "16"]),
    ];
    for (file, args) in cases {
        let bytes = sox(&dir, file, args);
        let ulaw = decode_to_ulaw(&bytes, None).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_one_second_tone(&ulaw, file, 1);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ulaw_8k_mono_wav_is_copied_verbatim() {
    let dir = test_dir("ulaw-fast");
    let wav = sox(
        &dir,
        "ulaw.wav",
        &["-r", "8000", "-c", "1", "-b", "8", "-e", "u-law"],
    );
    let data_at = wav.windows(4).position(|w| w == b"data").unwrap() + 8;
    let samples = &wav[data_at..];
    assert_eq!(samples.len(), 8000);
    let ulaw = decode_to_ulaw(&wav, Some("audio/x-wav")).unwrap();
    assert_eq!(
        ulaw, samples,
        "fast path must copy the samples byte for byte"
    );
    assert_one_second_tone(&ulaw, "ulaw wav", 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn mp3_decodes() {
    let dir = test_dir("mp3");
    let mp3 = sox(&dir, "tone.mp3", &["-r", "44100", "-c", "2"]);
    assert_eq!(&mp3[..2], &[0xFF, 0xFB], "sox wrote an MPEG audio frame");
    let cache = cache_in(&dir);
    let prepared = cache.from_bytes(&mp3, Some("audio/mpeg")).await.unwrap();
    let ulaw = read_prepared(&cache, &prepared);
    // Without a LAME/Xing gapless header the encoder delay and padding remain: < 1 frame
    // (1152 samples at 44.1 kHz = 209 bytes at 8 kHz) plus decoder delay.
    assert_one_second_tone(&ulaw, "mp3", 600);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ogg_vorbis_decodes() {
    let dir = test_dir("ogg");
    let ogg = sox(&dir, "tone.ogg", &["-r", "44100", "-c", "2"]);
    let ulaw = decode_to_ulaw(&ogg, Some("audio/ogg")).unwrap();
    assert_one_second_tone(&ulaw, "ogg vorbis", 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn garbage_is_a_clean_12300() {
    let dir = test_dir("garbage");
    let cache = cache_in(&dir);
    let text = b"<html><body><h1>Hello</h1> this is not audio at all </body></html>\n".repeat(50);
    let err = cache
        .from_bytes(&text, Some("text/html"))
        .await
        .unwrap_err();
    assert_eq!(err.twilio_code(), 12300, "{err}");

    // Pseudo-random bytes (xorshift), with no container magic at the start.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let err = cache.from_bytes(&noise, None).await.unwrap_err();
    assert_eq!(err.twilio_code(), 12300, "{err}");

    // A WAV header cut short.
    let wav = sox(&dir, "tone.wav", &["-r", "8000", "-c", "1", "-b", "16"]);
    let err = cache.from_bytes(&wav[..30], None).await.unwrap_err();
    assert_eq!(err.twilio_code(), 12300, "{err}");
    assert_eq!(
        cache.from_bytes(&[], None).await.unwrap_err().twilio_code(),
        12300
    );
    assert_only_media_files(&cache);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[derive(Clone)]
struct Served {
    wav: Arc<Vec<u8>>,
    hits: Arc<AtomicUsize>,
}

async fn tone(State(served): State<Served>) -> impl IntoResponse {
    served.hits.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, "audio/wav")],
        served.wav.as_ref().clone(),
    )
}

async fn html() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "<html>no audio here</html>",
    )
}

async fn slow() -> impl IntoResponse {
    tokio::time::sleep(Duration::from_secs(5)).await;
    StatusCode::OK
}

async fn serve(served: Served) -> SocketAddr {
    let app = Router::new()
        .route("/tone.wav", get(tone))
        .route("/page.html", get(html))
        .route("/slow.wav", get(slow))
        .with_state(served);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

#[tokio::test]
async fn play_url_fetches_once_and_maps_failures_to_codes() {
    let dir = test_dir("play-url");
    let wav = sox(&dir, "tone.wav", &["-r", "44100", "-c", "2", "-b", "16"]);
    let served = Served {
        wav: Arc::new(wav.clone()),
        hits: Arc::new(AtomicUsize::new(0)),
    };
    let addr = serve(served.clone()).await;
    let mut cfg = CacheConfig::new(dir.join("cache"));
    cfg.http_timeout = Duration::from_millis(500);
    let cache = MediaCache::new(cfg).unwrap();

    let url = format!("http://{addr}/tone.wav");
    let first = cache.play_url(&url).await.unwrap();
    let second = cache.play_url(&url).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        served.hits.load(Ordering::SeqCst),
        1,
        "second play_url must not fetch"
    );
    assert_eq!(cache.stats().http_fetches, 1);
    assert_one_second_tone(&read_prepared(&cache, &first), "played wav", 0);

    // Same bytes uploaded directly: same content address.
    assert_eq!(cache.from_bytes(&wav, None).await.unwrap().id, first.id);

    // If the file is deleted behind the cache's back, it is fetched again.
    std::fs::remove_file(cache.path_of(&first.id)).unwrap();
    assert_eq!(cache.play_url(&url).await.unwrap(), first);
    assert_eq!(served.hits.load(Ordering::SeqCst), 2);

    let missing = cache
        .play_url(&format!("http://{addr}/missing.wav"))
        .await
        .unwrap_err();
    assert!(matches!(missing, MediaError::Fetch { .. }), "{missing}");
    assert_eq!(missing.twilio_code(), 11200);

    let page = cache
        .play_url(&format!("http://{addr}/page.html"))
        .await
        .unwrap_err();
    assert_eq!(page.twilio_code(), 12300, "{page}");

    let timed_out = cache
        .play_url(&format!("http://{addr}/slow.wav"))
        .await
        .unwrap_err();
    assert_eq!(timed_out.twilio_code(), 11200, "{timed_out}");

    // Nothing listens on a port we bound and released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = cache
        .play_url(&format!("http://{closed}/x.wav"))
        .await
        .unwrap_err();
    assert_eq!(refused.twilio_code(), 11200, "{refused}");

    let bad = cache
        .play_url("ftp://example.invalid/x.wav")
        .await
        .unwrap_err();
    assert_eq!(bad.twilio_code(), 11100, "{bad}");
    assert_only_media_files(&cache);
    std::fs::remove_dir_all(&dir).unwrap();
}
