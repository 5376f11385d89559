//! `switchboard bench`: the command-line arguments (clap) and what the subcommand does with
//! them: build a [`BenchConfig`], run it, write the report files and print the report.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use media::packet_io::IoBackend;

use crate::error::BenchError;
use crate::mode::Mode;
use crate::report;
use crate::run::{self, BenchConfig, TargetKind};

/// A comparison engine run beside ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// rtpengine (Debian package rtpengine-daemon), userspace, one thread.
    Rtpengine,
    /// No engine: the generator's packets go straight back to it (the harness's floor).
    Loopback,
}

impl FromStr for Peer {
    type Err = String;

    fn from_str(text: &str) -> Result<Peer, String> {
        match text.to_ascii_lowercase().as_str() {
            "rtpengine" => Ok(Peer::Rtpengine),
            "loopback" => Ok(Peer::Loopback),
            _ => Err(format!(
                "unknown peer {text:?} (expected rtpengine or loopback)"
            )),
        }
    }
}

/// `start:step:max`: the stream counts start, start + step, … up to max.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pub start: usize,
    pub step: usize,
    pub max: usize,
}

impl Sweep {
    pub fn counts(&self) -> Vec<usize> {
        (self.start..=self.max).step_by(self.step.max(1)).collect()
    }
}

impl FromStr for Sweep {
    type Err = String;

    fn from_str(text: &str) -> Result<Sweep, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let [start, step, max] = parts.as_slice() else {
            return Err(format!("sweep {text:?} is not start:step:max"));
        };
        let number = |part: &str| {
            part.trim()
                .parse::<usize>()
                .map_err(|_| format!("sweep {text:?}: {part:?} is not a number"))
        };
        let sweep = Sweep {
            start: number(start)?,
            step: number(step)?,
            max: number(max)?,
        };
        if sweep.start == 0 || sweep.step == 0 || sweep.max < sweep.start {
            return Err(format!(
                "sweep {text:?}: need start ≥ 1, step ≥ 1 and max ≥ start"
            ));
        }
        Ok(sweep)
    }
}

/// `LOW-HIGH`, an inclusive UDP port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    /// The first 40 % for our engine (one port per leg), the rest for rtpengine (which takes
    /// an RTP/RTCP pair per leg).
    pub fn split(&self) -> ((u16, u16), (u16, u16)) {
        let span = u32::from(self.high - self.low);
        let cut = self.low + u16::try_from(span * 2 / 5).unwrap_or(0);
        (
            (self.low, cut),
            (cut.saturating_add(1).min(self.high), self.high),
        )
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<PortRange, String> {
        let (low, high) = text
            .split_once('-')
            .ok_or_else(|| format!("port range {text:?} is not LOW-HIGH"))?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("port range {text:?}: {p:?} is not a port"))
        };
        let range = PortRange {
            low: port(low)?,
            high: port(high)?,
        };
        if range.low < 1024 || range.high < range.low + 16 {
            return Err(format!(
                "port range {text:?}: need 1024 ≤ LOW and at least 16 ports"
            ));
        }
        Ok(range)
    }
}

/// Arguments of `switchboard bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Workloads, comma-separated: relay (PCMU both legs), transcode (PCMU ↔ PCMA), mix
    /// (conferences of 4, PCMU; ptime 10 or 20).
    #[arg(long, value_delimiter = ',', default_value = "relay")]
    pub mode: Vec<Mode>,
    /// Concurrent streams per point, comma-separated (a call carries two, one each way).
    #[arg(long, value_delimiter = ',', conflicts_with = "sweep")]
    pub streams: Vec<usize>,
    /// Stream counts start:step:max (instead of --streams).
    #[arg(long)]
    pub sweep: Option<Sweep>,
    /// Measured seconds per point.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of traffic before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Packet time in milliseconds (10..=120).
    #[arg(long, default_value_t = 20)]
    pub ptime: u16,
    /// The core the engine under test is pinned to.
    #[arg(long, default_value_t = 0)]
    pub engine_core: usize,
    /// Cores for the load generator, comma-separated (one generator thread each).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub gen_cores: Vec<usize>,
    /// Also run the same load against: rtpengine, loopback (no engine). Repeatable.
    #[arg(long = "peer")]
    pub peers: Vec<Peer>,
    /// Do not run our engine (peers only).
    #[arg(long)]
    pub no_switchboard: bool,
    /// Where report.md, results.csv, chart.svg (and rtpengine.log) go.
    #[arg(long, default_value = "bench-out")]
    pub out: PathBuf,
    /// The rtpengine daemon to start for --peer rtpengine.
    #[arg(long, default_value = "rtpengine")]
    pub rtpengine_bin: PathBuf,
    /// UDP ports on 127.0.0.1 for the engines' RTP (40 % ours, 60 % rtpengine's).
    #[arg(long, default_value = "10000-29999")]
    pub ports: PortRange,
    /// Our engine's packet I/O backend: auto, io_uring or epoll.
    #[arg(long, default_value = "auto")]
    pub io_backend: IoBackend,
    /// UDP sockets per generator thread.
    #[arg(long, default_value_t = 8)]
    pub sockets_per_core: usize,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

fn seconds(value: f64, what: &str) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| BenchError::Config(format!("{what} {value} is not a duration in seconds")))
}

impl BenchArgs {
    /// The run these arguments describe.
    pub fn config(&self) -> Result<BenchConfig, BenchError> {
        let mut targets = Vec::new();
        if !self.no_switchboard {
            targets.push(TargetKind::Switchboard);
        }
        for peer in &self.peers {
            let kind = match peer {
                Peer::Rtpengine => TargetKind::Rtpengine,
                Peer::Loopback => TargetKind::Loopback,
            };
            if !targets.contains(&kind) {
                targets.push(kind);
            }
        }
        let stream_counts = match (&self.sweep, self.streams.is_empty()) {
            (Some(sweep), _) => sweep.counts(),
            (None, false) => self.streams.clone(),
            (None, true) => vec![100],
        };
        let (switchboard_ports, rtpengine_ports) = self.ports.split();
        Ok(BenchConfig {
            modes: self.mode.clone(),
            stream_counts,
            duration: seconds(self.duration, "--duration")?,
            warmup: seconds(self.warmup, "--warmup")?,
            ptime_ms: self.ptime,
            engine_core: self.engine_core,
            generator_cores: self.gen_cores.clone(),
            targets,
            sockets_per_core: self.sockets_per_core,
            ip: Ipv4Addr::LOCALHOST,
            switchboard_ports,
            rtpengine_ports,
            io_backend: self.io_backend,
            rtpengine_binary: self.rtpengine_bin.clone(),
            rtpengine_log: self.out.join("rtpengine.log"),
            progress: !self.quiet,
        })
    }
}

/// Runs `switchboard bench`: the sweep, then the report files; prints the report.
/// `command` is the command line as typed, for the report.
pub fn run_cli(args: &BenchArgs, command: &str) -> Result<(), BenchError> {
    let config = args.config()?;
    config.validate()?;
    std::fs::create_dir_all(&args.out).map_err(|source| BenchError::Io {
        context: format!("creating {}", args.out.display()),
        source,
    })?;
    let results = run::run(&config)?;
    let written = report::write_outputs(&args.out, &results, &config, command)?;
    let report_text = written
        .first()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_default();
    println!("{report_text}");
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn sweeps_ranges_and_peers_parse() {
        assert_eq!(
            "100:100:400".parse::<Sweep>().unwrap().counts(),
            vec![100, 200, 300, 400]
        );
        assert_eq!("5:10:20".parse::<Sweep>().unwrap().counts(), vec![5, 15]);
        for bad in ["1:2", "0:1:5", "1:0:5", "5:1:4", "a:1:2"] {
            assert!(bad.parse::<Sweep>().is_err(), "{bad}");
        }
        let range: PortRange = "10000-29999".parse().unwrap();
        assert_eq!(range.split(), ((10_000, 17_999), (18_000, 29_999)));
        for bad in ["100-200", "20000-10000", "x-1", "10000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
        assert_eq!("RTPengine".parse::<Peer>(), Ok(Peer::Rtpengine));
        assert!("asterisk".parse::<Peer>().is_err());
    }

    #[test]
    fn arguments_become_a_config() {
        let args = parse(&[
            "--mode",
            "relay,transcode",
            "--sweep",
            "50:50:150",
            "--duration",
            "2.5",
            "--ptime",
            "10",
            "--engine-core",
            "0",
            "--gen-cores",
            "1",
            "--peer",
            "rtpengine",
            "--out",
            "/tmp/x",
        ])
        .unwrap();
        let config = args.config().unwrap();
        assert_eq!(config.modes, vec![Mode::Relay, Mode::Transcode]);
        assert_eq!(config.stream_counts, vec![50, 100, 150]);
        assert_eq!(config.duration, Duration::from_millis(2500));
        assert_eq!(config.ptime_ms, 10);
        assert_eq!(
            config.targets,
            vec![TargetKind::Switchboard, TargetKind::Rtpengine]
        );
        assert_eq!(config.rtpengine_log, PathBuf::from("/tmp/x/rtpengine.log"));

        let peers_only =
            parse(&["--no-switchboard", "--peer", "loopback", "--streams", "4,8"]).unwrap();
        let config = peers_only.config().unwrap();
        assert_eq!(config.targets, vec![TargetKind::Loopback]);
        assert_eq!(config.stream_counts, vec![4, 8]);

        assert!(
            parse(&["--streams", "4", "--sweep", "1:1:2"]).is_err(),
            "one or the other"
        );
        assert_eq!(
            parse(&["--mode", "mix"]).unwrap().config().unwrap().modes,
            vec![Mode::Mix]
        );
        assert!(parse(&["--mode", "play"]).is_err());
        assert!(parse(&["--duration=-1"]).unwrap().config().is_err());
    }
}
