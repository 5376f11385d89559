//! Text-to-speech by running the espeak-ng program (a separate process: libespeak-ng is
//! GPL and is never linked). The text goes in on stdin (`--stdin`, UTF-8 with `-b 1`), so
//! no shell and no argument parsing ever sees it; the WAV comes back on stdout.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::MediaError;

/// Longest Say text accepted, in characters (Twilio's documented `<Say>` limit).
pub const MAX_SAY_CHARS: usize = 4096;

/// How long one synthesis may take before the process is killed.
pub const TTS_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest WAV accepted from the TTS program (about 45 minutes at 22 kHz 16-bit).
const MAX_TTS_OUTPUT: u64 = 128 * 1024 * 1024;

/// Checks Say text: non-empty after trimming and within [`MAX_SAY_CHARS`].
pub fn validate_text(text: &str) -> Result<(), MediaError> {
    if text.trim().is_empty() {
        return Err(MediaError::InvalidText("text is empty".into()));
    }
    let chars = text.chars().count();
    if chars > MAX_SAY_CHARS {
        return Err(MediaError::InvalidText(format!(
            "{chars} characters exceeds the {MAX_SAY_CHARS}-character limit"
        )));
    }
    Ok(())
}

/// Runs `<program> -v <espeak_voice> -b 1 --stdin --stdout` with `text` on stdin and
/// returns the WAV it writes.
pub async fn synthesize_wav(
    program: &Path,
    espeak_voice: &str,
    text: &str,
) -> Result<Vec<u8>, MediaError> {
    let mut child = Command::new(program)
        .arg("-v")
        .arg(espeak_voice)
        .arg("-b")
        .arg("1")
        .arg("--stdin")
        .arg("--stdout")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| MediaError::Tts(format!("cannot start {}: {e}", program.display())))?;

    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| MediaError::Tts("child stdin not captured".into()))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| MediaError::Tts("child stdout not captured".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| MediaError::Tts("child stderr not captured".into()))?;

    let input = text.as_bytes().to_vec();
    let run = async move {
        let write = async {
            // A program that exits early closes the pipe; its exit status tells why.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.write_all(b"\n").await;
            drop(stdin);
        };
        let mut wav = Vec::new();
        let mut errors = Vec::new();
        let mut limited_out = (&mut stdout).take(MAX_TTS_OUTPUT);
        let mut limited_err = (&mut stderr).take(64 * 1024);
        let read_out = limited_out.read_to_end(&mut wav);
        let read_err = limited_err.read_to_end(&mut errors);
        let ((), out, _) = tokio::join!(write, read_out, read_err);
        out.map_err(|e| MediaError::Tts(format!("reading TTS output: {e}")))?;
        if wav.len() as u64 >= MAX_TTS_OUTPUT {
            let _ = child.start_kill();
            return Err(MediaError::Tts(format!(
                "TTS output exceeds {MAX_TTS_OUTPUT} bytes"
            )));
        }
        let status = child
            .wait()
            .await
            .map_err(|e| MediaError::Tts(format!("waiting for TTS program: {e}")))?;
        Ok::<_, MediaError>((status, wav, errors))
    };
    let (status, wav, errors) = tokio::time::timeout(TTS_TIMEOUT, run).await.map_err(|_| {
        MediaError::Tts(format!(
            "TTS program timed out after {} s",
            TTS_TIMEOUT.as_secs()
        ))
    })??;
    if !status.success() {
        let message = String::from_utf8_lossy(&errors);
        return Err(MediaError::Tts(format!(
            "{} exited with {status}: {}",
            program.display(),
            message.trim()
        )));
    }
    if wav.is_empty() {
        return Err(MediaError::Tts("TTS program produced no audio".into()));
    }
    Ok(wav)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_validation() {
        assert!(validate_text("hello").is_ok());
        assert_eq!(validate_text("  \n").unwrap_err().twilio_code(), 13520);
        assert!(validate_text(&"a".repeat(MAX_SAY_CHARS)).is_ok());
        assert!(validate_text(&"a".repeat(MAX_SAY_CHARS + 1)).is_err());
    }
}
