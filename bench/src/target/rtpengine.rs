//! rtpengine (the Debian `rtpengine-daemon` package) as a benchmark target: started by the
//! harness in userspace mode (`--table=-1`) with one worker thread (`--num-threads=1`),
//! every thread pinned to the engine core (it is spawned from a thread pinned there, and
//! children inherit the mask), and driven over its NG protocol: per call an `offer` for
//! leg A and an `answer` for leg B (transcoding asks for `codec: {transcode: [PCMA]}`),
//! `delete` to end it. Engine CPU is the whole process's utime + stime.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sdp::AudioCodec;
use shmq::Codec;
use tracing::warn;

use super::{CallPorts, CallRequest, Target};
use crate::cpu;
use crate::error::{BenchError, IoContext};
use crate::ng::{self, NgClient};
use crate::sys;

/// How long rtpengine may take to answer its first ping.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The telephone-event payload type offered (rtpengine passes it through).
const TELEPHONE_EVENT_PT: u8 = 101;

/// How to start rtpengine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpengineConfig {
    /// The daemon binary (`rtpengine` on PATH by default).
    pub binary: PathBuf,
    pub core: usize,
    pub ip: Ipv4Addr,
    pub port_min: u16,
    pub port_max: u16,
    /// Where its stderr goes.
    pub log: PathBuf,
}

/// Whether an rtpengine binary can be run; the error says how to get one.
pub fn check_installed(binary: &Path) -> Result<String, BenchError> {
    match Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => {
            let text = String::from_utf8_lossy(&output.stdout).to_string()
                + &String::from_utf8_lossy(&output.stderr);
            Ok(text
                .lines()
                .find_map(|line| line.trim().strip_prefix("Version:"))
                .unwrap_or(text.trim())
                .trim()
                .to_string())
        }
        Err(error) => Err(BenchError::Rtpengine(format!(
            "cannot run {}: {error}. Install it with `apt-get install -y rtpengine-daemon` \
             (Debian/Ubuntu) or pass --rtpengine-bin PATH",
            binary.display()
        ))),
    }
}

/// The command line the harness starts rtpengine with.
pub fn arguments(config: &RtpengineConfig, ng_port: u16) -> Vec<String> {
    vec![
        "--config-file=none".into(),
        "--table=-1".into(),
        format!("--interface={}", config.ip),
        format!("--listen-ng={}:{ng_port}", config.ip),
        format!("--port-min={}", config.port_min),
        format!("--port-max={}", config.port_max),
        "--delete-delay=0".into(),
        "--foreground".into(),
        "--log-stderr".into(),
        "--log-level=4".into(),
        "--num-threads=1".into(),
    ]
}

/// A running rtpengine and its NG client.
pub struct RtpengineTarget {
    child: Child,
    ng: NgClient,
    core: usize,
    log: PathBuf,
    /// (call-id) of every open call.
    calls: Vec<String>,
    next_call: u64,
    version: String,
}

impl RtpengineTarget {
    pub fn start(config: &RtpengineConfig) -> Result<RtpengineTarget, BenchError> {
        let version = check_installed(&config.binary)?;
        let ng_port = free_udp_port(config.ip)?;
        let log =
            File::create(&config.log).context(|| format!("creating {}", config.log.display()))?;
        let mut command = Command::new(&config.binary);
        command
            .args(arguments(config, ng_port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = spawn_pinned(command, config.core)?;
        let ng = NgClient::connect(SocketAddr::V4(SocketAddrV4::new(config.ip, ng_port)))
            .context(|| "creating the NG client socket".into())?;
        let mut target = RtpengineTarget {
            child,
            ng,
            core: config.core,
            log: config.log.clone(),
            calls: Vec::new(),
            next_call: 0,
            version,
        };
        target.wait_ready()?;
        Ok(target)
    }

    /// The daemon's version line.
    pub fn version(&self) -> &str {
        &self.version
    }

    fn wait_ready(&mut self) -> Result<(), BenchError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        self.ng.attempt_timeout = Duration::from_millis(200);
        self.ng.attempts = 1;
        let result = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Err(BenchError::Rtpengine(format!(
                    "exited at startup ({status}); its log ({}):\n{}",
                    self.log.display(),
                    log_tail(&self.log)
                )));
            }
            match self.ng.request(&ng::ping()) {
                Ok(_) => break Ok(()),
                Err(error) if Instant::now() > deadline => {
                    break Err(BenchError::Rtpengine(format!(
                        "no answer to ping within {STARTUP_TIMEOUT:?}: {error}"
                    )))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        self.ng.attempt_timeout = Duration::from_secs(2);
        self.ng.attempts = 3;
        result
    }
}

/// Spawns `command` from a thread pinned to `core`, so the process and every thread it
/// creates start with that CPU mask.
fn spawn_pinned(mut command: Command, core: usize) -> Result<Child, BenchError> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                sys::pin_current_thread(&[core]).context(|| format!("pinning to core {core}"))?;
                command
                    .spawn()
                    .context(|| format!("starting {:?}", command.get_program()))
            })
            .join()
            .unwrap_or_else(|_| Err(BenchError::Rtpengine("spawning thread panicked".into())))
    })
}

/// A UDP port free right now on `ip` (the kernel's choice).
fn free_udp_port(ip: Ipv4Addr) -> Result<u16, BenchError> {
    let socket = UdpSocket::bind(SocketAddrV4::new(ip, 0))
        .context(|| "finding a free UDP port for NG".into())?;
    Ok(sys::local_v4(&socket)
        .context(|| "reading the NG port".into())?
        .port())
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines
        .get(lines.len().saturating_sub(15)..)
        .unwrap_or_default();
    tail.join("\n")
}

fn audio_codec(codec: Codec) -> AudioCodec {
    match codec {
        Codec::Pcmu => AudioCodec::Pcmu,
        Codec::Pcma => AudioCodec::Pcma,
    }
}

/// The address an SDP body asks media to be sent to (first audio section).
pub fn media_address(body: &str) -> Result<SocketAddrV4, BenchError> {
    let description = sdp::parse(body)
        .map_err(|error| BenchError::Rtpengine(format!("unreadable SDP: {error}")))?;
    let media = description
        .media
        .iter()
        .find(|media| media.kind == "audio")
        .ok_or_else(|| BenchError::Rtpengine("SDP without an audio section".into()))?;
    match media.connection.or(description.connection) {
        Some(std::net::IpAddr::V4(ip)) => Ok(SocketAddrV4::new(ip, media.port)),
        other => Err(BenchError::Rtpengine(format!(
            "SDP connection address {other:?} is not IPv4"
        ))),
    }
}

fn reply_sdp(reply: &crate::bencode::Value) -> Result<String, BenchError> {
    reply
        .get("sdp")
        .and_then(crate::bencode::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| BenchError::Rtpengine("reply without SDP".into()))
}

impl Target for RtpengineTarget {
    fn name(&self) -> &str {
        "rtpengine"
    }

    fn open_calls(&mut self, calls: &[CallRequest]) -> Result<Vec<CallPorts>, BenchError> {
        let mut ports = Vec::with_capacity(calls.len());
        for call in calls {
            let call_id = format!("bench-{}-{}", std::process::id(), self.next_call);
            self.next_call += 1;
            let a_sdp = sdp::offer(
                &[audio_codec(call.a_codec)],
                TELEPHONE_EVENT_PT,
                call.ptime_ms,
                (*call.a_remote.ip()).into(),
                call.a_remote.port(),
                self.next_call,
            );
            let transcode = (call.a_codec != call.b_codec).then_some(call.b_codec);
            let offered = self
                .ng
                .request(&ng::offer(&call_id, "a", &a_sdp, transcode))?;
            self.calls.push(call_id.clone());
            // Leg B answers with its one codec.
            let b_sdp = sdp::offer(
                &[audio_codec(call.b_codec)],
                TELEPHONE_EVENT_PT,
                call.ptime_ms,
                (*call.b_remote.ip()).into(),
                call.b_remote.port(),
                self.next_call,
            );
            let answered = self.ng.request(&ng::answer(&call_id, "a", "b", &b_sdp))?;
            ports.push(CallPorts {
                // The answer is rewritten for A: where A sends.
                a: media_address(&reply_sdp(&answered)?)?,
                // The offer is rewritten for B: where B sends.
                b: media_address(&reply_sdp(&offered)?)?,
            });
        }
        Ok(ports)
    }

    fn close_calls(&mut self) -> Result<(), BenchError> {
        let mut first_error = None;
        for call_id in std::mem::take(&mut self.calls) {
            if let Err(error) = self.ng.request(&ng::delete(&call_id, "a")) {
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    fn cpu_seconds(&self) -> Result<Option<f64>, BenchError> {
        let ticks = cpu::process_ticks(self.child.id())
            .context(|| "reading rtpengine's CPU time".into())?;
        Ok(Some(cpu::ticks_to_seconds(ticks)))
    }

    fn core(&self) -> Option<usize> {
        Some(self.core)
    }
}

impl Drop for RtpengineTarget {
    fn drop(&mut self) {
        if !self.calls.is_empty() {
            if let Err(error) = self.close_calls() {
                warn!(%error, "deleting rtpengine calls");
            }
        }
        // SIGTERM for a clean exit, SIGKILL if it lingers.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_where_rtpengine_wants_media() {
        let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                    m=audio 30026 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:30027\r\n";
        assert_eq!(
            media_address(body).unwrap(),
            "127.0.0.1:30026".parse().unwrap()
        );
        let media_level = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                           m=audio 4000 RTP/AVP 8\r\nc=IN IP4 127.0.0.2\r\n";
        assert_eq!(
            media_address(media_level).unwrap(),
            "127.0.0.2:4000".parse().unwrap()
        );
        assert!(media_address("v=0\r\ns=-\r\nt=0 0\r\n").is_err());
    }

    #[test]
    fn command_line_is_userspace_one_thread_no_config_file() {
        let config = RtpengineConfig {
            binary: "rtpengine".into(),
            core: 0,
            ip: Ipv4Addr::LOCALHOST,
            port_min: 16000,
            port_max: 19999,
            log: "/dev/null".into(),
        };
        let args = arguments(&config, 2223);
        for expected in [
            "--config-file=none",
            "--table=-1",
            "--interface=127.0.0.1",
            "--listen-ng=127.0.0.1:2223",
            "--port-min=16000",
            "--port-max=19999",
            "--delete-delay=0",
            "--foreground",
            "--num-threads=1",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
    }

    #[test]
    fn a_missing_binary_says_how_to_install() {
        let error = check_installed(Path::new("/nonexistent/rtpengine")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("apt-get install -y rtpengine-daemon"),
            "{error}"
        );
    }
}
