//! Call recording off the packet path: the messages a worker hands its recording writer,
//! the worker's end of the link ([`RecorderLink`]) and the writer thread that owns the files.
//!
//! Each worker has one writer thread (`media-rec-<worker>`, not pinned) and two SPSC
//! [`frame_ring`]s, so every ring keeps a single producer:
//! - worker → writer: [`RecorderMessage`]s (`Start`, fixed-size `Audio` frames of at most
//!   120 ms of G.711, `Stop`), in order. A full ring drops the audio frame and counts it;
//!   `Start`/`Stop` wait in a small worker-side queue (and audio is dropped while they wait,
//!   so order holds). The worker rings the writer's doorbell only for `Start`/`Stop`; the
//!   writer otherwise wakes every [`WRITER_POLL_INTERVAL`] to drain frames, so the packet
//!   path makes no system call.
//! - writer → worker: [`RecordingFinished`] once a file is complete and renamed; the writer
//!   rings the worker's recorder doorbell, and the worker turns it into
//!   `Event::RecordingDone` on its own event ring (the only producer there).
//!
//! The writer decodes frames, places them with a [`PlacementWindow`] (a few seconds per
//! recording, whatever the recording's length), writes `<hex>.wav.part` through a buffer,
//! fixes the RIFF/data sizes at the end, syncs, and renames it to `<hex>.wav`. A write
//! error ends the recording at once (`WriteFailed`): what was written is kept and renamed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use shmq::{Doorbell, RecordingChannels, RecordingEnd, RecordingId, SessionId};
use tracing::{debug, warn};

use crate::frame_ring::{frame_ring, RingConsumer, RingProducer};
use crate::g711;
use crate::recording::{block_align, wav_header, Direction, PlacementWindow, WAV_HEADER_LEN};
use crate::session::{PayloadCodec, SAMPLES_PER_MS};

/// Payload bytes one audio frame carries: 120 ms of G.711.
pub const MAX_FRAME_BYTES: usize = 120 * SAMPLES_PER_MS as usize;
/// Messages the worker → writer ring holds.
pub const MESSAGE_RING_CAPACITY: usize = 4096;
/// How often the writer drains its ring when nobody rings it.
pub const WRITER_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Buffer between the placement window and the file.
const FILE_BUFFER_BYTES: usize = 64 * 1024;
/// Permissions of recording files.
const FILE_MODE: u32 = 0o640;

/// Which recording a message is about: the worker's session slot and a per-worker serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingKey {
    pub slot: u32,
    pub serial: u32,
}

/// A recording begins.
#[derive(Debug, Clone, Copy)]
pub struct StartMessage {
    pub key: RecordingKey,
    pub session: SessionId,
    pub recording: RecordingId,
    pub channels: RecordingChannels,
    /// Nothing at or past this position (samples) is written.
    pub max_samples: u64,
}

/// Up to 120 ms of one direction's G.711 audio at a position of the recording.
#[derive(Clone, Copy)]
pub struct AudioFrame {
    pub key: RecordingKey,
    pub direction: Direction,
    pub codec: PayloadCodec,
    /// Samples since the recording started (negative: partly before it).
    pub position: i64,
    pub len: u16,
    pub payload: [u8; MAX_FRAME_BYTES],
}

impl AudioFrame {
    pub fn payload(&self) -> &[u8] {
        self.payload
            .get(..usize::from(self.len))
            .unwrap_or(&self.payload)
    }
}

/// A recording ends at `end_position` samples.
#[derive(Debug, Clone, Copy)]
pub struct StopMessage {
    pub key: RecordingKey,
    pub end_position: u64,
    pub end: RecordingEnd,
}

/// What a worker sends its writer. Every ring slot is one fixed-size message: the size of
/// an audio frame is the point (no boxing, no allocation on the packet path).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy)]
pub enum RecorderMessage {
    Start(StartMessage),
    Audio(AudioFrame),
    Stop(StopMessage),
}

/// A recording's file is complete (renamed into place), or could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingFinished {
    pub key: RecordingKey,
    pub session: SessionId,
    pub recording: RecordingId,
    pub duration_ms: u32,
    /// Size of the WAV file, header included (0 if it could not be created).
    pub bytes: u64,
    pub end: RecordingEnd,
}

/// The worker's end of its writer link.
pub struct RecorderLink {
    messages: RingProducer<RecorderMessage>,
    finished: RingConsumer<RecordingFinished>,
    /// `Start`/`Stop` waiting for room in the ring.
    pending: VecDeque<RecorderMessage>,
    writer_doorbell: Arc<Doorbell>,
    /// Audio frames dropped because the ring was full.
    pub frames_dropped: u64,
}

/// The writer's end, moved to its thread by [`spawn_writer`].
pub struct WriterEnd {
    messages: RingConsumer<RecorderMessage>,
    finished: RingProducer<RecordingFinished>,
    doorbell: Arc<Doorbell>,
    worker_doorbell: Arc<Doorbell>,
    slots: usize,
}

/// Builds both ends of a worker's link; `worker_doorbell` is rung when recordings finish.
/// `slots` is the worker's session capacity (recording keys use its slot indexes).
pub fn recorder_link(
    slots: usize,
    worker_doorbell: Arc<Doorbell>,
) -> io::Result<(RecorderLink, WriterEnd)> {
    let (messages_tx, messages_rx) = frame_ring(MESSAGE_RING_CAPACITY);
    let (finished_tx, finished_rx) = frame_ring(slots * 2 + 16);
    let writer_doorbell = Arc::new(Doorbell::new()?);
    Ok((
        RecorderLink {
            messages: messages_tx,
            finished: finished_rx,
            pending: VecDeque::with_capacity(slots * 2 + 16),
            writer_doorbell: Arc::clone(&writer_doorbell),
            frames_dropped: 0,
        },
        WriterEnd {
            messages: messages_rx,
            finished: finished_tx,
            doorbell: writer_doorbell,
            worker_doorbell,
            slots,
        },
    ))
}

impl RecorderLink {
    /// Sends a `Start` or `Stop` (queued if the ring is full) and wakes the writer.
    pub fn control(&mut self, message: RecorderMessage) {
        self.pending.push_back(message);
        self.flush();
    }

    /// Moves queued `Start`/`Stop` messages to the ring while it has room.
    pub fn flush(&mut self) {
        let mut pushed = false;
        while let Some(message) = self.pending.pop_front() {
            if let Err(message) = self.messages.push(message) {
                self.pending.push_front(message);
                break;
            }
            pushed = true;
        }
        if pushed {
            self.writer_doorbell.ring();
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands one direction's payload to the writer in frames of at most 120 ms; frames
    /// that don't fit are dropped and counted. No allocation, lock or system call.
    pub fn audio(
        &mut self,
        key: RecordingKey,
        direction: Direction,
        codec: PayloadCodec,
        position: i64,
        payload: &[u8],
    ) {
        let mut position = position;
        for chunk in payload.chunks(MAX_FRAME_BYTES) {
            let mut frame = AudioFrame {
                key,
                direction,
                codec,
                position,
                len: chunk.len() as u16,
                payload: [0; MAX_FRAME_BYTES],
            };
            if let Some(dst) = frame.payload.get_mut(..chunk.len()) {
                dst.copy_from_slice(chunk);
            }
            if !self.pending.is_empty()
                || self.messages.push(RecorderMessage::Audio(frame)).is_err()
            {
                self.frames_dropped += 1;
            }
            position = position.saturating_add(chunk.len() as i64);
        }
    }

    /// The next finished recording reported by the writer.
    pub fn pop_finished(&mut self) -> Option<RecordingFinished> {
        self.finished.pop()
    }

    /// Wakes the writer (after asking it to stop).
    pub fn wake_writer(&self) {
        self.writer_doorbell.ring();
    }
}

/// Starts the writer thread of worker `worker`. It runs until `shutdown` is set (then it
/// drains its ring and completes every open recording as `SessionClosed`).
pub fn spawn_writer(
    worker: usize,
    recordings_dir: PathBuf,
    end: WriterEnd,
    shutdown: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("media-rec-{worker}"))
        .spawn(move || {
            let mut writer = Writer::new(worker, recordings_dir, end);
            writer.run(&shutdown);
        })
}

/// One open recording on the writer thread.
struct OpenRecording {
    key: RecordingKey,
    session: SessionId,
    recording: RecordingId,
    channels: RecordingChannels,
    part_path: PathBuf,
    final_path: PathBuf,
    /// `None` if the file could not be created.
    file: Option<BufWriter<File>>,
    window: PlacementWindow,
}

struct Writer {
    worker: usize,
    dir: PathBuf,
    end: WriterEnd,
    open: Vec<Option<OpenRecording>>,
    finished_pending: VecDeque<RecordingFinished>,
    decoded: Box<[i16; MAX_FRAME_BYTES]>,
}

impl Writer {
    fn new(worker: usize, dir: PathBuf, end: WriterEnd) -> Writer {
        let slots = end.slots;
        Writer {
            worker,
            dir,
            end,
            open: (0..slots).map(|_| None).collect(),
            finished_pending: VecDeque::new(),
            decoded: Box::new([0; MAX_FRAME_BYTES]),
        }
    }

    fn run(&mut self, shutdown: &AtomicBool) {
        debug!(worker = self.worker, dir = %self.dir.display(), "recording writer started");
        loop {
            // Read the flag before draining: everything pushed before it was set is seen.
            let stopping = shutdown.load(Ordering::Acquire);
            while let Some(message) = self.end.messages.pop() {
                self.handle(message);
            }
            if stopping {
                self.close_all();
                self.publish_finished();
                debug!(worker = self.worker, "recording writer stopped");
                return;
            }
            self.publish_finished();
            let _ = self.end.doorbell.wait(Some(WRITER_POLL_INTERVAL));
            self.end.doorbell.drain();
        }
    }

    fn handle(&mut self, message: RecorderMessage) {
        match message {
            RecorderMessage::Start(start) => self.start(start),
            RecorderMessage::Audio(frame) => self.audio(&frame),
            RecorderMessage::Stop(stop) => {
                if let Some(open) = self.take(stop.key) {
                    let finished = finish(open, stop.end_position, stop.end);
                    self.report(finished);
                }
            }
        }
    }

    fn start(&mut self, start: StartMessage) {
        let name = start.recording.file_name();
        let final_path = self.dir.join(&name);
        let part_path = self.dir.join(format!("{name}.part"));
        let file = match create_part(&part_path, start.channels) {
            Ok(file) => Some(BufWriter::with_capacity(FILE_BUFFER_BYTES, file)),
            Err(error) => {
                warn!(worker = self.worker, path = %part_path.display(), %error,
                      "cannot create recording file");
                None
            }
        };
        let open = OpenRecording {
            key: start.key,
            session: start.session,
            recording: start.recording,
            channels: start.channels,
            part_path,
            final_path,
            file,
            window: PlacementWindow::new(start.channels, start.max_samples),
        };
        if open.file.is_none() {
            let finished = finish(open, 0, RecordingEnd::WriteFailed);
            self.report(finished);
            return;
        }
        let Some(entry) = self.open.get_mut(start.key.slot as usize) else {
            warn!(
                worker = self.worker,
                slot = start.key.slot,
                "recording slot out of range"
            );
            let finished = finish(open, 0, RecordingEnd::WriteFailed);
            self.report(finished);
            return;
        };
        if let Some(previous) = entry.take() {
            // The worker stops a recording before starting another on the slot; be safe.
            let high = previous.window.high();
            let finished = finish(previous, high, RecordingEnd::SessionClosed);
            *entry = Some(open);
            self.report(finished);
        } else {
            *entry = Some(open);
        }
        debug!(worker = self.worker, recording = ?start.recording, "recording started");
    }

    fn audio(&mut self, frame: &AudioFrame) {
        let Some(Some(open)) = self.open.get_mut(frame.key.slot as usize) else {
            return;
        };
        if open.key != frame.key {
            return;
        }
        let payload = frame.payload();
        let table = match frame.codec {
            PayloadCodec::Pcmu => &g711::ULAW_DECODE,
            PayloadCodec::Pcma => &g711::ALAW_DECODE,
        };
        for (out, byte) in self.decoded.iter_mut().zip(payload) {
            *out = table[usize::from(*byte)];
        }
        let samples = self.decoded.get(..payload.len()).unwrap_or_default();
        let OpenRecording { file, window, .. } = open;
        let Some(file) = file.as_mut() else {
            return;
        };
        let result = window.place(frame.direction, frame.position, samples, &mut |bytes| {
            file.write_all(bytes)
        });
        if let Err(error) = result {
            warn!(worker = self.worker, recording = ?open.recording, %error,
                  "writing a recording failed");
            if let Some(open) = self.take(frame.key) {
                let written = open.window.written();
                let finished = finish(open, written, RecordingEnd::WriteFailed);
                self.report(finished);
            }
        }
    }

    fn take(&mut self, key: RecordingKey) -> Option<OpenRecording> {
        let entry = self.open.get_mut(key.slot as usize)?;
        if entry.as_ref().is_some_and(|open| open.key == key) {
            entry.take()
        } else {
            None
        }
    }

    /// Completes every open recording at its newest frame (the worker is going away).
    fn close_all(&mut self) {
        for index in 0..self.open.len() {
            if let Some(open) = self.open.get_mut(index).and_then(Option::take) {
                let high = open.window.high();
                let finished = finish(open, high, RecordingEnd::SessionClosed);
                self.report(finished);
            }
        }
    }

    fn report(&mut self, finished: RecordingFinished) {
        debug!(worker = self.worker, ?finished, "recording finished");
        self.finished_pending.push_back(finished);
    }

    /// Pushes finished recordings to the worker and rings it if any went.
    fn publish_finished(&mut self) {
        let mut pushed = false;
        while let Some(finished) = self.finished_pending.pop_front() {
            if let Err(finished) = self.end.finished.push(finished) {
                self.finished_pending.push_front(finished);
                break;
            }
            pushed = true;
        }
        if pushed {
            self.end.worker_doorbell.ring();
        }
    }
}

/// Creates `<hex>.wav.part` with a placeholder header.
fn create_part(path: &Path, channels: RecordingChannels) -> io::Result<File> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.write_all(&wav_header(channels, 0))?;
    Ok(file)
}

/// Writes the rest up to `end_position`, fixes the header, syncs and renames the file.
/// Any failure makes the end `WriteFailed`; what was written is kept and renamed.
fn finish(open: OpenRecording, end_position: u64, end: RecordingEnd) -> RecordingFinished {
    let OpenRecording {
        key,
        session,
        recording,
        channels,
        part_path,
        final_path,
        file,
        mut window,
    } = open;
    let failure = |error: &io::Error, what: &str| {
        warn!(path = %part_path.display(), %error, "{what}");
        RecordingEnd::WriteFailed
    };
    let mut end = end;
    let mut bytes = 0u64;
    let mut data_bytes = 0u64;
    match file {
        Some(mut buffered) => {
            if end != RecordingEnd::WriteFailed {
                let flushed = window
                    .finish(end_position, &mut |b| buffered.write_all(b))
                    .and_then(|()| buffered.flush());
                if let Err(error) = flushed {
                    end = failure(&error, "writing a recording failed");
                }
            }
            let (file, _unwritten) = buffered.into_parts();
            let block = block_align(channels);
            data_bytes = window.written() * block;
            if end == RecordingEnd::WriteFailed {
                // Keep the whole sample frames that reached the file.
                let on_disk = file.metadata().map(|m| m.len()).unwrap_or(0);
                data_bytes = on_disk.saturating_sub(WAV_HEADER_LEN as u64) / block * block;
                if let Err(error) = file.set_len(WAV_HEADER_LEN as u64 + data_bytes) {
                    failure(&error, "truncating a failed recording failed");
                }
            }
            let header = wav_header(channels, u32::try_from(data_bytes).unwrap_or(u32::MAX));
            if let Err(error) = file
                .write_all_at(&header, 0)
                .and_then(|()| file.sync_data())
            {
                end = failure(&error, "completing a recording's header failed");
            }
            drop(file);
            bytes = WAV_HEADER_LEN as u64 + data_bytes;
            if let Err(error) = std::fs::rename(&part_path, &final_path) {
                end = failure(&error, "renaming a recording failed");
            }
        }
        None => end = RecordingEnd::WriteFailed,
    }
    let samples = data_bytes / block_align(channels);
    RecordingFinished {
        key,
        session,
        recording,
        duration_ms: u32::try_from(samples / u64::from(SAMPLES_PER_MS)).unwrap_or(u32::MAX),
        bytes,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path = std::env::temp_dir().join(format!(
                "media-rec-{name}-{}-{:?}",
                std::process::id(),
                std::time::Instant::now()
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn key(serial: u32) -> RecordingKey {
        RecordingKey { slot: 1, serial }
    }

    fn start(serial: u32, channels: RecordingChannels) -> RecorderMessage {
        RecorderMessage::Start(StartMessage {
            key: key(serial),
            session: SessionId(5),
            recording: RecordingId([serial as u8; 16]),
            channels,
            max_samples: u64::MAX,
        })
    }

    /// Runs a writer over `messages` and returns what it reported.
    fn write_all(dir: &Path, messages: Vec<RecorderMessage>) -> Vec<RecordingFinished> {
        let bell = Arc::new(Doorbell::new().unwrap());
        let (mut link, end) = recorder_link(4, Arc::clone(&bell)).unwrap();
        let shutdown = Arc::new(AtomicBool::new(false));
        let thread = spawn_writer(0, dir.to_path_buf(), end, Arc::clone(&shutdown)).unwrap();
        for message in messages {
            match message {
                RecorderMessage::Audio(frame) => link.audio(
                    frame.key,
                    frame.direction,
                    frame.codec,
                    frame.position,
                    frame.payload(),
                ),
                other => link.control(other),
            }
        }
        shutdown.store(true, Ordering::Release);
        link.wake_writer();
        thread.join().unwrap();
        assert_eq!(link.frames_dropped, 0);
        std::iter::from_fn(|| link.pop_finished()).collect()
    }

    fn audio(serial: u32, direction: Direction, position: i64, payload: &[u8]) -> RecorderMessage {
        let mut frame = AudioFrame {
            key: key(serial),
            direction,
            codec: PayloadCodec::Pcmu,
            position,
            len: payload.len() as u16,
            payload: [0; MAX_FRAME_BYTES],
        };
        frame.payload[..payload.len()].copy_from_slice(payload);
        RecorderMessage::Audio(frame)
    }

    #[test]
    fn writes_a_complete_wav_and_renames_it() {
        let dir = TempDir::new("complete");
        let rx: Vec<u8> = (0..160).map(|i| (i % 100) as u8).collect();
        let finished = write_all(
            &dir.0,
            vec![
                start(3, RecordingChannels::Dual),
                audio(3, Direction::Received, 80, &rx),
                audio(9, Direction::Received, 0, &rx), // another serial: ignored
                RecorderMessage::Stop(StopMessage {
                    key: key(3),
                    end_position: 400,
                    end: RecordingEnd::Stopped,
                }),
            ],
        );
        let id = RecordingId([3; 16]);
        assert_eq!(
            finished,
            [RecordingFinished {
                key: key(3),
                session: SessionId(5),
                recording: id,
                duration_ms: 50,
                bytes: 44 + 400 * 4,
                end: RecordingEnd::Stopped,
            }]
        );
        let wav = std::fs::read(dir.0.join(id.file_name())).unwrap();
        assert!(!dir.0.join(format!("{}.part", id.file_name())).exists());
        assert_eq!(&wav[..44], &wav_header(RecordingChannels::Dual, 1600));
        let samples: Vec<i16> = wav[44..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        for (position, pair) in samples.chunks_exact(2).enumerate() {
            let expected = match position.checked_sub(80) {
                Some(i) if i < 160 => g711::ULAW_DECODE[usize::from(rx[i])],
                _ => 0,
            };
            assert_eq!(pair, [expected, 0], "position {position}");
        }
    }

    #[test]
    fn an_uncreatable_file_reports_write_failed_and_shutdown_completes_open_ones() {
        let dir = TempDir::new("failed");
        // A directory where the .part file should go: creating it fails.
        let blocked = RecordingId([1; 16]);
        std::fs::create_dir(dir.0.join(format!("{}.part", blocked.file_name()))).unwrap();
        let mut second = start(2, RecordingChannels::Mono);
        if let RecorderMessage::Start(s) = &mut second {
            s.key.slot = 2;
        }
        let mut frame = audio(2, Direction::Sent, 0, &[0x10; 160]);
        if let RecorderMessage::Audio(f) = &mut frame {
            f.key.slot = 2;
        }
        let finished = write_all(
            &dir.0,
            vec![start(1, RecordingChannels::Mono), second, frame],
        );
        assert_eq!(finished.len(), 2);
        assert_eq!(finished[0].end, RecordingEnd::WriteFailed);
        assert_eq!((finished[0].bytes, finished[0].duration_ms), (0, 0));
        // Shutdown completes the open one at its newest frame.
        assert_eq!(finished[1].end, RecordingEnd::SessionClosed);
        assert_eq!(finished[1].bytes, 44 + 160 * 2);
        assert_eq!(finished[1].duration_ms, 20);
        let wav = std::fs::read(dir.0.join(RecordingId([2; 16]).file_name())).unwrap();
        assert_eq!(wav.len(), 44 + 320);
        let s = i16::from_le_bytes([wav[44], wav[45]]);
        assert_eq!(s, g711::ULAW_DECODE[0x10]);
    }
}
