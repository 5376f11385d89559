//! What a run leaves behind: `report.md` (the machine, the command, one table per mode
//! and, when two engines ran, a side-by-side comparison with their ratio), `results.csv`
//! (every figure of every point) and `chart.svg` (loss, p99 latency and engine CPU against
//! offered load). Rendering is pure; [`write_outputs`] writes the files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{BenchError, IoContext};
use crate::mode::Mode;
use crate::run::{BenchConfig, PointResult, RunResults};
use crate::svg::{self, Panel, Series};

/// The machine a run happened on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MachineInfo {
    pub cpu_model: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub os: String,
}

impl MachineInfo {
    /// Reads /proc and /etc/os-release (fields it cannot read stay "unknown").
    pub fn detect() -> MachineInfo {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let field = |text: &str, key: &str| -> Option<String> {
            text.lines()
                .find(|line| line.split(':').next().map(str::trim) == Some(key))
                .and_then(|line| line.split_once(':'))
                .map(|(_, value)| value.trim().trim_matches('"').to_string())
        };
        let memory = field(&read("/proc/meminfo"), "MemTotal")
            .and_then(|kb| kb.trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
        let os = read("/etc/os-release")
            .lines()
            .find_map(|line| line.strip_prefix("PRETTY_NAME="))
            .map(|name| name.trim_matches('"').to_string());
        let unknown = || "unknown".to_string();
        MachineInfo {
            cpu_model: field(&cpuinfo, "model name").unwrap_or_else(unknown),
            cores: cpuinfo
                .lines()
                .filter(|line| line.starts_with("processor"))
                .count(),
            memory: memory.unwrap_or_else(unknown),
            kernel: Some(read("/proc/sys/kernel/osrelease").trim().to_string())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(unknown),
            os: os.unwrap_or_else(unknown),
        }
    }
}

/// `12,345` (rounded).
pub fn format_count(value: f64) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if rounded < 0 {
        out.insert(0, '-');
    }
    out
}

/// A fraction as a percentage: `0.12 %`, `35.0 %`; `–` when unknown.
pub fn format_percent(fraction: Option<f64>) -> String {
    match fraction {
        Some(f) if f.is_finite() => {
            let percent = f * 100.0;
            if percent != 0.0 && percent.abs() < 0.01 {
                format!("{percent:.4} %")
            } else if percent.abs() < 10.0 {
                format!("{percent:.2} %")
            } else {
                format!("{percent:.1} %")
            }
        }
        _ => "–".into(),
    }
}

/// Microseconds, three significant figures or so; `–` when unknown.
pub fn format_micros(micros: Option<f64>) -> String {
    match micros {
        Some(us) if us.is_finite() => {
            if us >= 10_000.0 {
                format!("{:.1} ms", us / 1000.0)
            } else if us >= 100.0 {
                format!("{us:.0} µs")
            } else {
                format!("{us:.1} µs")
            }
        }
        _ => "–".into(),
    }
}

fn micros(ns: Option<u64>) -> Option<f64> {
    ns.map(|ns| ns as f64 / 1000.0)
}

/// Year-month-day of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time.
pub fn format_utc(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let seconds = unix_secs % 86_400;
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        seconds / 3600,
        seconds % 3600 / 60
    )
}

fn io_backend_name(backend: media::packet_io::IoBackend) -> &'static str {
    backend.name()
}

/// Notes on anything unusual in a point (empty when clean).
fn notes(point: &PointResult) -> String {
    let s = &point.summary;
    let mut notes = Vec::new();
    if s.late_sends > 0 {
        notes.push(format!(
            "generator late on {} of sends",
            format_percent(Some(s.late_sends as f64 / (s.sent.max(1)) as f64))
        ));
    }
    if let Some(counters) = point.engine_counters.filter(|c| c.dropped > 0) {
        notes.push(format!("engine dropped {}", counters.dropped));
    }
    if point.generator_cpu_fraction() > 0.9 {
        notes.push("generator core saturated".into());
    }
    for (count, what) in [
        (s.send_errors, "send errors"),
        (s.wrong_codec, "in the wrong codec"),
        (s.unreadable, "unreadable"),
        (s.duplicates, "duplicates"),
        (s.reordered, "reordered"),
    ] {
        if count > 0 {
            notes.push(format!("{count} {what}"));
        }
    }
    notes.join("; ")
}

/// The report as Markdown.
pub fn render_markdown(
    results: &RunResults,
    config: &BenchConfig,
    machine: &MachineInfo,
    command: &str,
    unix_time: u64,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Data-plane benchmark\n");
    let _ = writeln!(md, "- Date: {}", format_utc(unix_time));
    let _ = writeln!(
        md,
        "- Machine: {}, {} cores, {} RAM; {} (kernel {})",
        machine.cpu_model, machine.cores, machine.memory, machine.os, machine.kernel
    );
    let build = if cfg!(debug_assertions) {
        "debug (not representative: build with --release)"
    } else {
        "release"
    };
    let _ = writeln!(md, "- Build: {build}");
    let _ = writeln!(md, "- Command: `{command}`");
    let generator_cores = if config.generator_cores.is_empty() {
        "auto".to_string()
    } else {
        format!("{:?}", config.generator_cores)
    };
    if config
        .targets
        .contains(&crate::run::TargetKind::Switchboard)
    {
        let _ = writeln!(
            md,
            "- switchboard: the media engine in process, one worker, packet I/O backend `{}`",
            io_backend_name(config.io_backend)
        );
    }
    let _ = writeln!(
        md,
        "- Engine core {}; generator cores {generator_cores}; ptime {} ms; each point: {:.1} s warm-up, \
         {:.1} s measured; each call carries two streams (one each way)",
        config.engine_core,
        config.ptime_ms,
        config.warmup.as_secs_f64(),
        config.duration.as_secs_f64()
    );
    if let Some(version) = &results.rtpengine_version {
        let _ = writeln!(
            md,
            "- rtpengine {version}: userspace (`--table=-1`), `--num-threads=1`, pinned to core {}",
            config.engine_core
        );
    }
    let _ = writeln!(
        md,
        "\nLatency is one-way through the engine (kernel receive timestamp minus the send stamp \
         in the payload); jitter is the RFC 3550 interarrival jitter of the transit time, mean \
         over streams. *Engine CPU* is the engine's own user + system time as a share of one \
         core; *pps per core* is forwarded packets per engine CPU-second. results.csv also has the \
         engine core's load from /proc/stat (`engine_core_busy`: tick-sampled, so it misses \
         short bursts; the per-thread times above are the scheduler's exact run time).\n"
    );
    if config.modes.iter().any(|mode| mode.mixes()) {
        let _ = writeln!(
            md,
            "In the *mix* mode each stream is one conference member (conferences of {}, PCMU):              every member sends, the engine sends each member the mix of the others, and a              member's packets are counted as the next member of its conference hears them, so              offered and forwarded pps are the engine's packets in and out. Its latency              includes the mixer's jitter buffer (about 60 ms by design) and 20 ms tick; the              loss concealment after each member's last packet shows as one duplicate per              member.\n",
            crate::mode::MIX_MEMBERS
        );
    }
    let modes: Vec<Mode> = config
        .modes
        .iter()
        .copied()
        .filter(|mode| results.points.iter().any(|p| p.mode == *mode))
        .collect();
    for mode in modes {
        let points: Vec<&PointResult> = results.points.iter().filter(|p| p.mode == mode).collect();
        let _ = writeln!(md, "## {mode}\n");
        let _ = writeln!(
            md,
            "| streams | engine | offered pps | forwarded pps | loss | p50 | p99 | p99.9 | jitter | engine CPU | pps per core | notes |"
        );
        let _ = writeln!(
            md,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for point in &points {
            let latency = |q| micros(point.summary.latency.quantile(q));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                point.streams,
                point.target,
                format_count(point.offered_pps()),
                format_count(point.forwarded_pps()),
                format_percent(Some(point.summary.loss_ratio())),
                format_micros(latency(0.5)),
                format_micros(latency(0.99)),
                format_micros(latency(0.999)),
                format_micros(Some(point.summary.jitter_mean_ns / 1000.0)),
                format_percent(point.engine_cpu_fraction()),
                point
                    .packets_per_core_second()
                    .map_or("–".into(), format_count),
                notes(point),
            );
        }
        md.push('\n');
        render_comparison(&mut md, mode, &points);
    }
    if !results.skipped.is_empty() {
        let _ = writeln!(md, "Skipped: {}\n", results.skipped.join("; "));
    }
    let _ = writeln!(
        md,
        "![loss, p99 latency and engine CPU against offered load](chart.svg)"
    );
    md
}

/// switchboard vs rtpengine at each stream count both ran.
fn render_comparison(md: &mut String, mode: Mode, points: &[&PointResult]) {
    let find = |target: &str, streams: usize| {
        points
            .iter()
            .find(|p| p.target == target && p.streams == streams)
            .copied()
    };
    let mut streams: Vec<usize> = points.iter().map(|p| p.streams).collect();
    streams.dedup();
    let pairs: Vec<(&PointResult, &PointResult)> = streams
        .iter()
        .filter_map(|n| Some((find("switchboard", *n)?, find("rtpengine", *n)?)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(md, "### switchboard vs rtpengine, {mode}\n");
    let _ = writeln!(
        md,
        "| streams | offered pps | CPU switchboard | CPU rtpengine | pps per core switchboard | pps per core rtpengine | ratio | p99 switchboard | p99 rtpengine | loss switchboard | loss rtpengine |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (ours, theirs) in pairs {
        let ratio = match (
            ours.packets_per_core_second(),
            theirs.packets_per_core_second(),
        ) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "–".into(),
        };
        let p99 = |p: &PointResult| format_micros(micros(p.summary.latency.quantile(0.99)));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {ratio} | {} | {} | {} | {} |",
            ours.streams,
            format_count(ours.offered_pps()),
            format_percent(ours.engine_cpu_fraction()),
            format_percent(theirs.engine_cpu_fraction()),
            ours.packets_per_core_second()
                .map_or("–".into(), format_count),
            theirs
                .packets_per_core_second()
                .map_or("–".into(), format_count),
            p99(ours),
            p99(theirs),
            format_percent(Some(ours.summary.loss_ratio())),
            format_percent(Some(theirs.summary.loss_ratio())),
        );
    }
    let _ = writeln!(
        md,
        "\n*ratio* = switchboard's packets per core-second ÷ rtpengine's (above 1: switchboard \
         moves more packets per unit of CPU).\n"
    );
}

/// Every figure of every point, one row each.
pub fn render_csv(results: &RunResults) -> String {
    let mut csv = String::from(
        "engine,mode,streams,ptime_ms,window_s,sent,received,lost,loss_ratio,duplicates,reordered,\
         unreadable,wrong_codec,late_sends,send_errors,latency_p50_us,latency_p99_us,latency_p999_us,\
         latency_max_us,jitter_mean_us,jitter_max_us,engine_cpu_s,engine_cpu_fraction,\
         packets_per_core_second,engine_core_busy,engine_forwarded,engine_dropped,generator_cpu_fraction\n",
    );
    let optional = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v:.6}"));
    for p in &results.points {
        let s = &p.summary;
        let latency = |q| optional(micros(s.latency.quantile(q)));
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.3},{},{},{},{:.6},{},{},{},{},{},{},{},{},{},{},{:.3},{:.3},{},{},{},{},{},{},{:.4}",
            p.target,
            p.mode,
            p.streams,
            p.ptime_ms,
            p.window_secs,
            s.sent,
            s.received,
            s.lost(),
            s.loss_ratio(),
            s.duplicates,
            s.reordered,
            s.unreadable,
            s.wrong_codec,
            s.late_sends,
            s.send_errors,
            latency(0.5),
            latency(0.99),
            latency(0.999),
            optional(micros(s.latency.max())),
            s.jitter_mean_ns / 1000.0,
            s.jitter_max_ns / 1000.0,
            optional(p.engine_cpu_secs),
            optional(p.engine_cpu_fraction()),
            optional(p.packets_per_core_second()),
            optional(p.engine_core_busy),
            p.engine_counters.map_or(String::new(), |c| c.forwarded.to_string()),
            p.engine_counters.map_or(String::new(), |c| c.dropped.to_string()),
            p.generator_cpu_fraction(),
        );
    }
    csv
}

/// Loss, p99 latency and engine CPU against offered load, one line per engine and mode.
pub fn render_chart(results: &RunResults, config: &BenchConfig) -> String {
    let mut keys: Vec<(String, Mode)> = Vec::new();
    for point in &results.points {
        let key = (point.target.clone(), point.mode);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let series = |value: &dyn Fn(&PointResult) -> Option<f64>| -> Vec<Series> {
        keys.iter()
            .map(|(target, mode)| {
                let mut points: Vec<(f64, f64)> = results
                    .points
                    .iter()
                    .filter(|p| &p.target == target && p.mode == *mode)
                    .filter_map(|p| Some((p.offered_pps(), value(p)?)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series {
                    label: format!("{target} {mode}"),
                    points,
                    dashed: target != "switchboard",
                }
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let x_label = "offered load (packets/s)".to_string();
    let panels = [
        Panel {
            title: "Loss".into(),
            x_label: x_label.clone(),
            y_label: "lost packets (%)".into(),
            log_y: false,
            series: series(&|p| Some(p.summary.loss_ratio() * 100.0)),
        },
        Panel {
            title: "p99 one-way latency (log scale)".into(),
            x_label: x_label.clone(),
            y_label: "p99 latency (ms)".into(),
            log_y: true,
            series: series(&|p| micros(p.summary.latency.quantile(0.99)).map(|us| us / 1000.0)),
        },
        Panel {
            title: "Engine CPU".into(),
            x_label,
            y_label: "% of one core".into(),
            log_y: false,
            series: series(&|p| p.engine_cpu_fraction().map(|f| f * 100.0)),
        },
    ];
    svg::chart(
        &format!(
            "G.711 streams through one engine core (ptime {} ms)",
            config.ptime_ms
        ),
        &panels,
    )
}

/// Writes report.md, results.csv and chart.svg into `dir` (created if needed).
pub fn write_outputs(
    dir: &Path,
    results: &RunResults,
    config: &BenchConfig,
    command: &str,
) -> Result<Vec<PathBuf>, BenchError> {
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let files = [
        (
            "report.md",
            render_markdown(results, config, &MachineInfo::detect(), command, unix_time),
        ),
        ("results.csv", render_csv(results)),
        ("chart.svg", render_chart(results, config)),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::TargetKind;
    use crate::stats::Summary;

    fn point(target: &str, mode: Mode, streams: usize, cpu: f64, received: u64) -> PointResult {
        let mut summary = Summary {
            streams,
            sent: 10_000,
            received,
            ..Summary::default()
        };
        summary.latency.record_n(80_000, 99);
        summary.latency.record(2_000_000);
        PointResult {
            target: target.into(),
            mode,
            streams,
            ptime_ms: 20,
            window_secs: 2.0,
            summary,
            engine_cpu_secs: Some(cpu),
            engine_core_busy: Some(cpu / 2.0),
            engine_counters: None,
            generator_cpu_secs: 0.5,
            generator_threads: 1,
        }
    }

    fn results() -> RunResults {
        RunResults {
            points: vec![
                point("switchboard", Mode::Relay, 100, 0.2, 10_000),
                point("rtpengine", Mode::Relay, 100, 0.4, 9_990),
                point("switchboard", Mode::Relay, 200, 0.4, 10_000),
                point("rtpengine", Mode::Relay, 200, 0.8, 10_000),
            ],
            skipped: vec!["loopback transcode 100: cannot transcode".into()],
            rtpengine_version: Some("10.5.3.5".into()),
        }
    }

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(format_count(1_234_567.4), "1,234,567");
        assert_eq!(format_count(999.0), "999");
        assert_eq!(format_count(-1_000.0), "-1,000");
        assert_eq!(format_count(f64::NAN), "–");
        assert_eq!(format_percent(Some(0.0)), "0.00 %");
        assert_eq!(format_percent(Some(0.00001)), "0.0010 %");
        assert_eq!(format_percent(Some(0.35)), "35.0 %");
        assert_eq!(format_percent(None), "–");
        assert_eq!(format_micros(Some(12.34)), "12.3 µs");
        assert_eq!(format_micros(Some(123.4)), "123 µs");
        assert_eq!(format_micros(Some(23_456.0)), "23.5 ms");
        assert_eq!(format_micros(None), "–");
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(1_798_761_599), "2026-12-31 23:59 UTC");
    }

    #[test]
    fn markdown_has_a_table_per_mode_and_the_ratio() {
        let mut config = BenchConfig::quick(vec![TargetKind::Switchboard, TargetKind::Rtpengine]);
        config.stream_counts = vec![100, 200];
        let machine = MachineInfo {
            cpu_model: "Test CPU".into(),
            cores: 2,
            memory: "24 GiB".into(),
            kernel: "6.1".into(),
            os: "Debian".into(),
        };
        let md = render_markdown(
            &results(),
            &config,
            &machine,
            "switchboard bench --peer rtpengine",
            0,
        );
        assert!(md.contains("Test CPU, 2 cores, 24 GiB RAM"));
        assert!(md.contains("`switchboard bench --peer rtpengine`"));
        assert!(md.contains("rtpengine 10.5.3.5: userspace"));
        assert!(md.contains("## relay"));
        assert!(!md.contains("## transcode"), "no points, no section");
        // 10,000 sent in 2 s = 5,000 pps; rtpengine lost 10 of them.
        assert!(
            md.contains(
                "| 100 | switchboard | 5,000 | 5,000 | 0.00 % | 80.1 µs | 80.1 µs | 2000 µs |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 100 | rtpengine | 5,000 | 4,995 | 0.10 % |"),
            "{md}"
        );
        // Ratio: 10,000/0.2 vs 9,990/0.4 packets per core-second.
        assert!(
            md.contains("| 100 | 5,000 | 10.0 % | 20.0 % | 50,000 | 24,975 | 2.00× |"),
            "{md}"
        );
        assert!(
            md.contains("| 200 | 5,000 | 20.0 % | 40.0 % | 25,000 | 12,500 | 2.00× |"),
            "{md}"
        );
        assert!(md.contains("Skipped: loopback transcode"));
        assert!(md.contains("](chart.svg)"));
    }

    #[test]
    fn csv_has_one_row_per_point_with_every_column() {
        let csv = render_csv(&results());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 5);
        let columns = lines[0].split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == columns));
        assert!(lines[2].starts_with("rtpengine,relay,100,20,2.000,10000,9990,10,0.001000,"));
    }

    #[test]
    fn chart_has_three_panels_and_a_line_per_engine() {
        let config = BenchConfig::quick(vec![TargetKind::Switchboard, TargetKind::Rtpengine]);
        let chart = render_chart(&results(), &config);
        assert_eq!(
            chart.matches("<polyline").count(),
            6,
            "2 engines × 3 panels"
        );
        assert!(
            chart.contains(">Loss<")
                && chart.contains(">p99 one-way latency (log scale)<")
                && chart.contains(">Engine CPU<")
        );
        assert!(
            chart.contains(">switchboard relay</text>")
                && chart.contains(">rtpengine relay</text>")
        );
    }

    #[test]
    fn writes_the_three_files() {
        let dir = std::env::temp_dir().join(format!("bench-report-test-{}", std::process::id()));
        let config = BenchConfig::quick(vec![TargetKind::Switchboard]);
        let written = write_outputs(&dir, &results(), &config, "cmd").unwrap();
        assert_eq!(written.len(), 3);
        for path in &written {
            assert!(
                std::fs::metadata(path).unwrap().len() > 100,
                "{}",
                path.display()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!MachineInfo::detect().kernel.is_empty());
    }
}
