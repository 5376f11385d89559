//! What the media plane's integration tests share: a temporary directory, the control
//! plane's side of an attached media plane (segment, attach socket, doorbells, rings, with
//! `media::run` on a thread), and small RTP helpers.
#![allow(dead_code)] // each test file uses its own subset

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media::rtp::RtpHeader;
use media::{MediaConfig, MediaError};
use shmq::{Codec, Command, Event, MediaId, Qos, SessionId};

/// The packet I/O backend these tests run on: `MEDIA_TEST_IO_BACKEND` (auto, io_uring,
/// epoll), auto by default; tools/test runs the media tests once per backend.
pub fn io_backend_under_test() -> media::packet_io::IoBackend {
    match std::env::var("MEDIA_TEST_IO_BACKEND") {
        Ok(name) => name.parse().unwrap(),
        Err(_) => media::packet_io::IoBackend::Auto,
    }
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "media-it-{name}-{}-{:?}",
            std::process::id(),
            Instant::now()
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

/// The control plane's side of one attached media plane.
pub struct Control {
    pub segment: Arc<shmq::Segment>,
    pub doorbells: shmq::DoorbellSet,
    attachment: Option<shmq::Attachment>,
    commands: Vec<shmq::Producer>,
    events: Vec<shmq::Consumer>,
    media: Option<JoinHandle<Result<(), MediaError>>>,
    /// `QosReport`s [`Control::next_event`] stepped over, in arrival order.
    pub qos_reports: Vec<(SessionId, Qos)>,
}

impl Control {
    /// Creates the segment and attach socket, starts `media::run` on a thread and attaches it.
    pub fn start(dir: &Path, cache_dir: &Path, workers: usize, port_base: u16) -> Control {
        Control::start_with_rtp_timeout(dir, cache_dir, workers, port_base, Duration::ZERO)
    }

    /// [`Control::start`] with the media plane's RTP timeout set.
    pub fn start_with_rtp_timeout(
        dir: &Path,
        cache_dir: &Path,
        workers: usize,
        port_base: u16,
        rtp_timeout: Duration,
    ) -> Control {
        Control::start_configured(dir, cache_dir, workers, port_base, |cfg| {
            cfg.rtp_timeout = rtp_timeout;
        })
    }

    /// [`Control::start`] with `ports.1` RTP ports from `ports.0` and room for
    /// `max_sessions_per_worker` sessions per worker.
    pub fn start_sized(
        dir: &Path,
        cache_dir: &Path,
        workers: usize,
        ports: (u16, u16),
        max_sessions_per_worker: usize,
        rtp_timeout: Duration,
    ) -> Control {
        let (port_base, port_count) = ports;
        Control::start_configured(dir, cache_dir, workers, port_base, |cfg| {
            cfg.rtp_port_max = port_base + port_count - 1;
            cfg.max_sessions_per_worker = max_sessions_per_worker;
            cfg.rtp_timeout = rtp_timeout;
        })
    }

    /// [`Control::start`] with the media configuration adjusted by `configure` first.
    pub fn start_configured(
        dir: &Path,
        cache_dir: &Path,
        workers: usize,
        port_base: u16,
        configure: impl FnOnce(&mut MediaConfig),
    ) -> Control {
        let segment_path = dir.join("segment");
        let socket_path = dir.join("attach.sock");
        std::fs::create_dir_all(dir.join("recordings")).unwrap();
        let segment = shmq::Segment::create(&segment_path, workers, 256).unwrap();
        let doorbells = shmq::DoorbellSet::new(workers).unwrap();
        let listener = shmq::AttachListener::bind(&socket_path).unwrap();
        let mut cfg = MediaConfig {
            cores: (0..workers).collect(),
            rtp_ip: "127.0.0.1".parse().unwrap(),
            rtp_port_min: port_base,
            rtp_port_max: port_base + 99,
            cache_dir: cache_dir.to_path_buf(),
            recordings_dir: dir.join("recordings"),
            max_sessions_per_worker: 8,
            rtp_timeout: Duration::ZERO,
            io_backend: io_backend_under_test(),
            dpdk: None,
        };
        configure(&mut cfg);
        let media = std::thread::spawn(move || {
            let segment = shmq::Segment::open(&segment_path)?;
            let (doorbells, attachment) = shmq::attach(&socket_path, &segment)?;
            media::run(cfg, segment, doorbells, attachment)
        });
        let attachment = listener
            .accept(&segment, &doorbells, Duration::from_secs(10))
            .unwrap();
        let commands = (0..workers)
            .map(|w| segment.command_producer(w).unwrap())
            .collect();
        let events = (0..workers)
            .map(|w| segment.event_consumer(w).unwrap())
            .collect();
        Control {
            segment,
            doorbells,
            attachment: Some(attachment),
            commands,
            events,
            media: Some(media),
            qos_reports: Vec::with_capacity(256),
        }
    }

    pub fn send(&mut self, worker: usize, command: Command) {
        self.commands[worker].push(&command.encode()).unwrap();
        self.doorbells.commands[worker].ring();
    }

    /// Waits for the next event of `worker` other than a `QosReport` (those, sent every few
    /// seconds by sessions with RTP, are kept in [`Control::qos_reports`]).
    pub fn next_event(&mut self, worker: usize, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_any_event(worker, left)? {
                Event::QosReport { session, qos } => self.qos_reports.push((session, qos)),
                event => return Some(event),
            }
        }
    }

    /// Waits for the next event of `worker`, whatever it is, sleeping on its doorbell
    /// between checks.
    pub fn next_any_event(&mut self, worker: usize, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(record) = self.events[worker].pop() {
                return Some(Event::decode(&record).unwrap());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            let mut pfd = libc::pollfd {
                fd: self.doorbells.events[worker].as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd on a live eventfd.
            unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as i32 + 1) };
            self.doorbells.events[worker].drain();
        }
    }

    pub fn expect_event(&mut self, worker: usize, what: &str) -> Event {
        self.next_event(worker, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("timed out waiting for {what}"))
    }

    pub fn open(
        &mut self,
        worker: usize,
        session: SessionId,
        remote: SocketAddr,
        codec: Codec,
    ) -> u16 {
        self.send(
            worker,
            Command::OpenSession {
                session,
                remote,
                codec,
                dtmf_payload_type: Some(101),
                ptime_ms: 20,
            },
        );
        match self.expect_event(worker, "SessionOpened") {
            Event::SessionOpened {
                session: s,
                local_port,
            } if s == session => local_port,
            other => panic!("expected SessionOpened, got {other:?}"),
        }
    }

    /// What `media::run` returned, if it has already returned (it failed to start, or
    /// stopped on its own).
    pub fn ended(&mut self) -> Option<Result<(), MediaError>> {
        if !self.media.as_ref()?.is_finished() {
            return None;
        }
        Some(self.media.take()?.join().unwrap())
    }

    /// Detaches (as a dying control plane would) and returns what `run` returned.
    pub fn stop(mut self) -> Result<(), MediaError> {
        drop(self.attachment.take());
        let media = self.media.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while !media.is_finished() {
            assert!(
                Instant::now() < deadline,
                "media::run did not stop after detach"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        media.join().unwrap()
    }
}

pub fn media_id(bytes: &[u8]) -> MediaId {
    // Any 32 bytes name a file; the real system uses the sha256 of the content.
    let mut id = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        id[i % 32] = id[i % 32].wrapping_mul(31).wrapping_add(*b);
    }
    MediaId(id)
}

pub fn dtmf_packet(seq: u16, timestamp: u32, event: u8, end: bool, duration: u16) -> Vec<u8> {
    let mut pkt = vec![0u8; 12];
    RtpHeader {
        marker: !end && duration == 160,
        payload_type: 101,
        sequence: seq,
        timestamp,
        ssrc: 0x5150_5150,
    }
    .write(&mut pkt)
    .unwrap();
    pkt.extend_from_slice(&[event, if end { 0x8A } else { 0x0A }]);
    pkt.extend_from_slice(&duration.to_be_bytes());
    pkt
}

/// Receives RTP packets until `until` returns true or `timeout` passes; returns the
/// (arrival time, packet) pairs.
pub fn receive_rtp(
    socket: &UdpSocket,
    timeout: Duration,
    mut until: impl FnMut(&[u8]) -> bool,
) -> Vec<(Instant, Vec<u8>)> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut packets = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                let pkt = buf[..n].to_vec();
                let done = until(&pkt);
                packets.push((Instant::now(), pkt));
                if done {
                    break;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    packets
}

/// Waits for `worker`'s next event that `matches`, skipping PlayDone events on the way.
pub fn wait_event(
    control: &mut Control,
    worker: usize,
    what: &str,
    matches: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(event) = control.next_event(worker, Duration::from_millis(100)) {
            if matches(&event) {
                return event;
            }
            assert!(
                matches!(event, Event::PlayDone { .. }),
                "unexpected {event:?} while waiting for {what}"
            );
        }
    }
    panic!("timed out waiting for {what}");
}
