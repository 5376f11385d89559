//! The progress display on stderr: on a terminal, one line redrawn in place (a bar for the
//! current point, the point's number, packets sent and received so far); elsewhere (logs,
//! CI) one line per finished point. Disabled entirely for library callers that ask so.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;

use crate::generator::Progress;
use crate::report::{format_count, format_micros, format_percent};
use crate::run::PointResult;
use crate::stats::Window;

const BAR_WIDTH: usize = 24;

/// The progress line's state.
pub struct ProgressLine {
    enabled: bool,
    terminal: bool,
    total: usize,
    finished: usize,
    label: String,
    start_ns: u64,
    end_ns: u64,
    window: Option<Window>,
}

impl ProgressLine {
    pub fn new(enabled: bool, total_points: usize) -> ProgressLine {
        ProgressLine {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            total: total_points,
            finished: 0,
            label: String::new(),
            start_ns: 0,
            end_ns: 0,
            window: None,
        }
    }

    pub fn start_point(&mut self, label: &str, start_ns: u64, end_ns: u64, window: Window) {
        self.label = label.to_string();
        self.start_ns = start_ns;
        self.end_ns = end_ns;
        self.window = Some(window);
    }

    /// Redraws the line (terminals only).
    pub fn update(&mut self, now_ns: u64, live: &Progress) {
        if !self.enabled || !self.terminal {
            return;
        }
        let line = render_line(
            self.finished + 1,
            self.total,
            &self.label,
            now_ns,
            self.start_ns,
            self.end_ns,
            self.window,
            live.sent.load(Ordering::Relaxed),
            live.received.load(Ordering::Relaxed),
        );
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{line}\x1b[K");
        let _ = stderr.flush();
    }

    pub fn finish_point(&mut self, point: &PointResult) {
        self.finished += 1;
        if !self.enabled {
            return;
        }
        let latency = |q| {
            point
                .summary
                .latency
                .quantile(q)
                .map(|ns| ns as f64 / 1000.0)
        };
        let line = format!(
            "[{}/{}] {}: offered {} pps, loss {}, p99 {}, engine CPU {}",
            self.finished,
            self.total,
            self.label,
            format_count(point.offered_pps()),
            format_percent(Some(point.summary.loss_ratio())),
            format_micros(latency(0.99)),
            format_percent(point.engine_cpu_fraction()),
        );
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r\x1b[K");
        }
        let _ = writeln!(stderr, "{line}");
    }

    pub fn skip_point(&mut self) {
        self.finished += 1;
    }

    pub fn done(&mut self) {
        if self.enabled && self.terminal {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// One progress line (pure).
#[allow(clippy::too_many_arguments)]
pub fn render_line(
    point: usize,
    total: usize,
    label: &str,
    now_ns: u64,
    start_ns: u64,
    end_ns: u64,
    window: Option<Window>,
    sent: u64,
    received: u64,
) -> String {
    let span = end_ns.saturating_sub(start_ns).max(1);
    let done = now_ns.saturating_sub(start_ns).min(span);
    let filled = (done as u128 * BAR_WIDTH as u128 / span as u128) as usize;
    let bar: String = (0..BAR_WIDTH)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    let phase = match window {
        Some(w) if now_ns < w.start_ns => "warm-up",
        Some(w) if now_ns < w.end_ns => "measuring",
        Some(_) => "draining",
        None => "",
    };
    format!(
        "[{bar}] {point}/{total} {label}: {phase} {:.1}/{:.1} s, sent {sent}, received {received}",
        done as f64 / 1e9,
        span as f64 / 1e9
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bar_and_phase() {
        let window = Some(Window {
            start_ns: 1_000_000_000,
            end_ns: 3_000_000_000,
        });
        let line = render_line(
            2,
            6,
            "rtpengine relay 100 streams",
            2_000_000_000,
            0,
            4_000_000_000,
            window,
            500,
            498,
        );
        assert_eq!(
            line,
            "[############............] 2/6 rtpengine relay 100 streams: measuring 2.0/4.0 s, sent 500, received 498"
        );
        let early = render_line(1, 1, "x", 0, 0, 4_000_000_000, window, 0, 0);
        assert!(early.starts_with("[........................]") && early.contains("warm-up"));
        let late = render_line(1, 1, "x", 9_000_000_000, 0, 4_000_000_000, window, 0, 0);
        assert!(
            late.starts_with("[########################]") && late.contains("draining 4.0/4.0")
        );
    }
}
