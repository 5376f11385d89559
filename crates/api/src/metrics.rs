//! Prometheus metrics of a Switchboard node, served as `GET /metrics` on the admin listener.
//!
//! - [`Metrics`]: the control plane's own counters (atomics): calls started by direction and
//!   ended by final status (the store reports them, see [`store::CallObserver`]), and REST API
//!   responses by status class ([`count_api_requests`]).
//! - [`MetricsSources`]: everything a scrape reads: those counters, the media workers'
//!   counters and ring depths in the shared-memory segment, whether a media process is
//!   attached, the webhook client's counters, and unfinished calls counted in the store.
//! - [`MetricsSnapshot`] and [`render`]: the pure core, plain numbers in, exposition text out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use shmq::{RingKind, Segment, WorkerStatsSnapshot};
use store::{ActiveCallCount, CallObserver, CallRecord, CallStatus, Store};

use crate::exposition::{Exposition, MetricType};

/// Call directions with a counter of their own; any other is counted as `other`.
const DIRECTIONS: [&str; 3] = ["inbound", "outbound-api", "outbound-dial"];
const OTHER_DIRECTION: &str = "other";
/// Statuses a call has until it ends.
const UNFINISHED: [CallStatus; 3] = [
    CallStatus::Queued,
    CallStatus::Ringing,
    CallStatus::InProgress,
];
/// Statuses a call ends in.
const FINAL: [CallStatus; 5] = [
    CallStatus::Completed,
    CallStatus::Busy,
    CallStatus::Failed,
    CallStatus::NoAnswer,
    CallStatus::Canceled,
];
/// HTTP status classes, `1xx` to `5xx`.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The control plane's counters. Share it as `Arc<Metrics>`; every method is lock-free.
#[derive(Debug, Default)]
pub struct Metrics {
    /// By [`DIRECTIONS`] index, then `other`.
    calls_started: [AtomicU64; DIRECTIONS.len() + 1],
    /// By [`FINAL`] index.
    calls_ended: [AtomicU64; FINAL.len()],
    /// By [`STATUS_CLASSES`] index.
    api_responses: [AtomicU64; STATUS_CLASSES.len()],
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// A call of `direction` started (was recorded).
    pub fn call_started(&self, direction: &str) {
        let index = DIRECTIONS
            .iter()
            .position(|d| *d == direction)
            .unwrap_or(DIRECTIONS.len());
        add(self.calls_started.get(index), 1);
    }

    /// `calls` calls ended in `status` (not final: nothing counted).
    pub fn calls_ended(&self, status: CallStatus, calls: u64) {
        add(
            FINAL
                .iter()
                .position(|s| *s == status)
                .and_then(|index| self.calls_ended.get(index)),
            calls,
        );
    }

    /// The REST API answered with HTTP status `status`.
    pub fn api_response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, STATUS_CLASSES.len()) - 1;
        add(self.api_responses.get(class), 1);
    }

    fn calls_started_by_direction(&self) -> Vec<(&'static str, u64)> {
        DIRECTIONS
            .iter()
            .chain(std::iter::once(&OTHER_DIRECTION))
            .zip(&self.calls_started)
            .map(|(direction, count)| (*direction, count.load(Ordering::Relaxed)))
            .collect()
    }

    fn calls_ended_by_status(&self) -> Vec<(CallStatus, u64)> {
        FINAL
            .iter()
            .zip(&self.calls_ended)
            .map(|(status, count)| (*status, count.load(Ordering::Relaxed)))
            .collect()
    }

    fn api_responses_by_class(&self) -> Vec<(&'static str, u64)> {
        STATUS_CLASSES
            .iter()
            .zip(&self.api_responses)
            .map(|(class, count)| (*class, count.load(Ordering::Relaxed)))
            .collect()
    }
}

fn add(counter: Option<&AtomicU64>, value: u64) {
    if let Some(counter) = counter {
        counter.fetch_add(value, Ordering::Relaxed);
    }
}

impl CallObserver for Metrics {
    fn call_created(&self, call: &CallRecord) {
        self.call_started(&call.direction);
    }

    fn call_status_changed(&self, status: CallStatus, calls: u64) {
        self.calls_ended(status, calls);
    }
}

/// Counts every response of `router` (the REST API) in `metrics`, by status class.
pub fn count_api_requests(router: Router, metrics: Arc<Metrics>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        metrics,
        count_response,
    ))
}

async fn count_response(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    metrics.api_response(response.status().as_u16());
    response
}

/// Tells whether a media process is attached right now.
pub type AttachedProbe = Arc<dyn Fn() -> bool + Send + Sync>;

/// Where a scrape reads its numbers from.
#[derive(Clone)]
pub struct MetricsSources {
    pub counters: Arc<Metrics>,
    /// The shared-memory segment (the media workers' counters and rings).
    pub segment: Arc<Segment>,
    pub media_attached: AttachedProbe,
    pub webhooks: Arc<webhook::WebhookStats>,
}

impl MetricsSources {
    /// Reads every source once. A store failure leaves the active-call counts out (and is
    /// logged) rather than failing the scrape.
    pub async fn snapshot(&self, store: &Store) -> MetricsSnapshot {
        let active_calls = match store.active_call_counts().await {
            Ok(counts) => Some(counts),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot count active calls");
                None
            }
        };
        let segment = &self.segment;
        let workers = (0..segment.workers())
            .filter_map(|worker| {
                Some(WorkerSnapshot {
                    stats: segment.try_worker_stats(worker).ok()?.snapshot(),
                    command_ring_depth: segment.ring_depth(worker, RingKind::Commands).ok()?,
                    event_ring_depth: segment.ring_depth(worker, RingKind::Events).ok()?,
                })
            })
            .collect();
        MetricsSnapshot {
            media_attached: (self.media_attached)(),
            ring_capacity: u64::try_from(segment.ring_capacity()).unwrap_or(u64::MAX),
            workers,
            active_calls,
            calls_started: self.counters.calls_started_by_direction(),
            calls_ended: self.counters.calls_ended_by_status(),
            webhook_requests: self.webhooks.requests(),
            webhook_failures: self.webhooks.failures(),
            api_responses: self.counters.api_responses_by_class(),
        }
    }
}

/// One media worker at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerSnapshot {
    pub stats: WorkerStatsSnapshot,
    pub command_ring_depth: u64,
    pub event_ring_depth: u64,
}

/// Every number a scrape exposes, read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub media_attached: bool,
    pub ring_capacity: u64,
    /// Indexed by worker number.
    pub workers: Vec<WorkerSnapshot>,
    /// `None` when the store could not be read.
    pub active_calls: Option<Vec<ActiveCallCount>>,
    pub calls_started: Vec<(&'static str, u64)>,
    pub calls_ended: Vec<(CallStatus, u64)>,
    pub webhook_requests: u64,
    pub webhook_failures: u64,
    pub api_responses: Vec<(&'static str, u64)>,
}

/// Reads one counter from a worker's stats.
type ReadStat = fn(&WorkerStatsSnapshot) -> u64;

/// A per-worker counter: its name, help and how to read it.
type WorkerCounter = (&'static str, &'static str, ReadStat);

const WORKER_COUNTERS: [WorkerCounter; 7] = [
    (
        "switchboard_media_packets_received_total",
        "Datagrams received on RTP session sockets.",
        |s| s.packets_in,
    ),
    (
        "switchboard_media_packets_sent_total",
        "RTP packets sent (paced and relayed).",
        |s| s.packets_out,
    ),
    (
        "switchboard_media_received_bytes_total",
        "Bytes received on RTP session sockets.",
        |s| s.bytes_in,
    ),
    (
        "switchboard_media_sent_bytes_total",
        "Bytes of RTP sent.",
        |s| s.bytes_out,
    ),
    (
        "switchboard_media_dtmf_digits_total",
        "DTMF digits received (RFC 4733).",
        |s| s.dtmf_events,
    ),
    (
        "switchboard_media_late_ticks_total",
        "Media ticks the worker started later than scheduled.",
        |s| s.late_ticks,
    ),
    (
        "switchboard_media_packets_relayed_total",
        "RTP packets forwarded from one bridged leg out of the other (also counted as sent).",
        |s| s.packets_relayed,
    ),
];

/// The `reason` label of `switchboard_media_drops_total` and how to read each.
const DROP_REASONS: [(&str, ReadStat); 7] = [
    ("not_rtp", |s| s.drops_not_rtp),
    ("unforwardable", |s| s.drops_unforwardable),
    ("send_error", |s| s.drops_send_error),
    ("receive_error", |s| s.drops_receive_error),
    ("event_ring_full", |s| s.events_dropped),
    ("recording_ring_full", |s| s.recording_frames_dropped),
    ("bad_rtcp", |s| s.drops_bad_rtcp),
];

/// The exposition of `snapshot`, in the Prometheus text format 0.0.4.
pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut out = Exposition::new();
    render_media(&mut out, snapshot);
    render_calls(&mut out, snapshot);
    out.family(
        "switchboard_webhook_requests_total",
        MetricType::Counter,
        "Requests to customer apps (voice URLs, fallbacks, status callbacks); one that follows \
         redirects counts once.",
    )
    .sample(&[], snapshot.webhook_requests);
    out.family(
        "switchboard_webhook_failures_total",
        MetricType::Counter,
        "Requests to customer apps that failed (no answer, timeout, non-2xx, unreadable body).",
    )
    .sample(&[], snapshot.webhook_failures);
    let mut api = out.family(
        "switchboard_api_requests_total",
        MetricType::Counter,
        "REST API requests answered, by HTTP status class.",
    );
    for (class, count) in &snapshot.api_responses {
        api.sample(&[("code", class)], *count);
    }
    out.finish()
}

fn render_media(out: &mut Exposition, snapshot: &MetricsSnapshot) {
    out.family(
        "switchboard_media_attached",
        MetricType::Gauge,
        "1 while a media process is attached to the control plane, else 0.",
    )
    .sample(&[], u64::from(snapshot.media_attached));
    out.family(
        "switchboard_media_workers",
        MetricType::Gauge,
        "Media workers (one per pinned core).",
    )
    .sample(&[], u64::try_from(snapshot.workers.len()).unwrap_or(0));
    out.family(
        "switchboard_media_ring_capacity",
        MetricType::Gauge,
        "Records each command ring and event ring holds.",
    )
    .sample(&[], snapshot.ring_capacity);
    let names: Vec<String> = (0..snapshot.workers.len()).map(|w| w.to_string()).collect();
    let workers = || names.iter().map(String::as_str).zip(&snapshot.workers);

    let mut sessions = out.family(
        "switchboard_media_sessions",
        MetricType::Gauge,
        "RTP sessions open on the worker.",
    );
    for (worker, w) in workers() {
        sessions.sample(&[("worker", worker)], w.stats.sessions_active);
    }
    for (name, help, read) in WORKER_COUNTERS {
        let mut family = out.family(name, MetricType::Counter, help);
        for (worker, w) in workers() {
            family.sample(&[("worker", worker)], read(&w.stats));
        }
    }
    let mut drops = out.family(
        "switchboard_media_drops_total",
        MetricType::Counter,
        "Things a worker dropped, by reason: datagrams not RTP or not from the latched peer, \
         RTP the bridged leg cannot carry, send and receive errors, events lost to a full event \
         ring, audio frames lost to a full recording ring.",
    );
    for (worker, w) in workers() {
        for (reason, read) in DROP_REASONS {
            drops.sample(&[("worker", worker), ("reason", reason)], read(&w.stats));
        }
    }
    let mut timeouts = out.family(
        "switchboard_media_rtp_timeouts_total",
        MetricType::Counter,
        "Sessions reported silent (no RTP received for the configured timeout).",
    );
    for (worker, w) in workers() {
        timeouts.sample(&[("worker", worker)], w.stats.rtp_timeouts);
    }
    let mut busy = out.family(
        "switchboard_media_busy_seconds_total",
        MetricType::Counter,
        "Seconds the worker loop spent working rather than waiting; its rate is the core's load.",
    );
    for (worker, w) in workers() {
        // Seconds as a float: exact to the nanosecond up to about 104 days of busy time.
        busy.sample(&[("worker", worker)], w.stats.busy_ns as f64 / 1e9);
    }
    let mut depth = out.family(
        "switchboard_media_ring_depth",
        MetricType::Gauge,
        "Records waiting in the worker's shared-memory rings (commands to it, events from it).",
    );
    for (worker, w) in workers() {
        depth.sample(
            &[("worker", worker), ("ring", "commands")],
            w.command_ring_depth,
        );
        depth.sample(
            &[("worker", worker), ("ring", "events")],
            w.event_ring_depth,
        );
    }
}

fn render_calls(out: &mut Exposition, snapshot: &MetricsSnapshot) {
    if let Some(active) = &snapshot.active_calls {
        // Every known direction and unfinished status, zero when there are none.
        let mut counts: BTreeMap<(&str, &str), u64> = DIRECTIONS
            .iter()
            .flat_map(|d| UNFINISHED.iter().map(move |s| ((*d, s.as_str()), 0)))
            .collect();
        for count in active {
            *counts
                .entry((count.direction.as_str(), count.status.as_str()))
                .or_default() += count.calls;
        }
        let mut family = out.family(
            "switchboard_calls_active",
            MetricType::Gauge,
            "Calls not yet over, by direction and status (queued, ringing, in-progress).",
        );
        for ((direction, status), calls) in counts {
            family.sample(&[("direction", direction), ("status", status)], calls);
        }
    }
    let mut started = out.family(
        "switchboard_calls_started_total",
        MetricType::Counter,
        "Calls started (inbound, outbound-api, outbound-dial) since the control plane started.",
    );
    for (direction, count) in &snapshot.calls_started {
        started.sample(&[("direction", direction)], *count);
    }
    let mut ended = out.family(
        "switchboard_calls_ended_total",
        MetricType::Counter,
        "Calls ended since the control plane started, by final status.",
    );
    for (status, count) in &snapshot.calls_ended {
        ended.sample(&[("status", status.as_str())], *count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::tests::parse;

    fn sample_snapshot() -> MetricsSnapshot {
        let metrics = Metrics::default();
        metrics.call_started("inbound");
        metrics.call_started("inbound");
        metrics.call_started("outbound-api");
        metrics.call_started("sideways");
        metrics.calls_ended(CallStatus::Completed, 1);
        metrics.calls_ended(CallStatus::Failed, 3);
        metrics.calls_ended(CallStatus::Ringing, 5); // not final: not counted
        metrics.api_response(200);
        metrics.api_response(201);
        metrics.api_response(404);
        metrics.api_response(99); // out of range: lowest class
        metrics.api_response(700); // out of range: highest class
        let worker = |base: u64| WorkerSnapshot {
            stats: WorkerStatsSnapshot {
                packets_in: base + 1,
                packets_out: base + 2,
                bytes_in: base + 3,
                bytes_out: base + 4,
                dtmf_events: base + 5,
                sessions_active: base + 6,
                late_ticks: base + 7,
                packets_relayed: base + 8,
                drops_not_rtp: base + 9,
                drops_unforwardable: base + 10,
                drops_send_error: base + 11,
                drops_receive_error: base + 12,
                events_dropped: base + 13,
                recording_frames_dropped: base + 14,
                rtp_timeouts: base + 15,
                busy_ns: 2_500_000_000 + base,
                drops_bad_rtcp: base + 18,
            },
            command_ring_depth: base + 16,
            event_ring_depth: base + 17,
        };
        MetricsSnapshot {
            media_attached: true,
            ring_capacity: 8192,
            workers: vec![worker(0), worker(100)],
            active_calls: Some(vec![
                ActiveCallCount {
                    direction: "inbound".into(),
                    status: CallStatus::InProgress,
                    calls: 4,
                },
                ActiveCallCount {
                    direction: "weird \"one\"".into(),
                    status: CallStatus::Queued,
                    calls: 1,
                },
            ]),
            calls_started: metrics.calls_started_by_direction(),
            calls_ended: metrics.calls_ended_by_status(),
            webhook_requests: 9,
            webhook_failures: 2,
            api_responses: metrics.api_responses_by_class(),
        }
    }

    #[test]
    fn every_number_is_exposed_once_under_its_name_and_labels() {
        let text = render(&sample_snapshot());
        let parsed = parse(&text);
        let w = |worker| [("worker", worker)];
        assert_eq!(parsed.value("switchboard_media_attached", &[]), 1.0);
        assert_eq!(parsed.value("switchboard_media_workers", &[]), 2.0);
        assert_eq!(parsed.value("switchboard_media_ring_capacity", &[]), 8192.0);
        for (worker, base) in [("0", 0.0), ("1", 100.0)] {
            let value = |name| parsed.value(name, &w(worker)) - base;
            assert_eq!(value("switchboard_media_packets_received_total"), 1.0);
            assert_eq!(value("switchboard_media_packets_sent_total"), 2.0);
            assert_eq!(value("switchboard_media_received_bytes_total"), 3.0);
            assert_eq!(value("switchboard_media_sent_bytes_total"), 4.0);
            assert_eq!(value("switchboard_media_dtmf_digits_total"), 5.0);
            assert_eq!(value("switchboard_media_sessions"), 6.0);
            assert_eq!(value("switchboard_media_late_ticks_total"), 7.0);
            assert_eq!(value("switchboard_media_packets_relayed_total"), 8.0);
            assert_eq!(value("switchboard_media_rtp_timeouts_total"), 15.0);
            for (reason, expected) in [
                ("not_rtp", 9.0),
                ("unforwardable", 10.0),
                ("send_error", 11.0),
                ("receive_error", 12.0),
                ("event_ring_full", 13.0),
                ("recording_ring_full", 14.0),
                ("bad_rtcp", 18.0),
            ] {
                let drops = parsed.value(
                    "switchboard_media_drops_total",
                    &[("worker", worker), ("reason", reason)],
                );
                assert_eq!(drops - base, expected, "{reason}");
            }
            for (ring, expected) in [("commands", 16.0), ("events", 17.0)] {
                let depth = parsed.value(
                    "switchboard_media_ring_depth",
                    &[("worker", worker), ("ring", ring)],
                );
                assert_eq!(depth - base, expected, "{ring}");
            }
            let busy = parsed.value("switchboard_media_busy_seconds_total", &w(worker));
            assert!((busy - 2.5 - base / 1e9).abs() < 1e-12, "{busy}");
        }
        let active = |direction, status| {
            parsed.value(
                "switchboard_calls_active",
                &[("direction", direction), ("status", status)],
            )
        };
        assert_eq!(active("inbound", "in-progress"), 4.0);
        assert_eq!(active("inbound", "ringing"), 0.0);
        assert_eq!(active("outbound-dial", "queued"), 0.0);
        assert_eq!(active("weird \"one\"", "queued"), 1.0);
        let started = |d| parsed.value("switchboard_calls_started_total", &[("direction", d)]);
        assert_eq!(started("inbound"), 2.0);
        assert_eq!(started("outbound-api"), 1.0);
        assert_eq!(started("outbound-dial"), 0.0);
        assert_eq!(started("other"), 1.0);
        let ended = |s| parsed.value("switchboard_calls_ended_total", &[("status", s)]);
        assert_eq!(ended("completed"), 1.0);
        assert_eq!(ended("failed"), 3.0);
        assert_eq!(ended("busy"), 0.0);
        assert_eq!(ended("no-answer"), 0.0);
        assert_eq!(ended("canceled"), 0.0);
        assert_eq!(
            parsed
                .samples
                .iter()
                .filter(|s| s.name == "switchboard_calls_ended_total")
                .count(),
            5,
            "only final statuses"
        );
        assert_eq!(parsed.value("switchboard_webhook_requests_total", &[]), 9.0);
        assert_eq!(parsed.value("switchboard_webhook_failures_total", &[]), 2.0);
        let api = |c| parsed.value("switchboard_api_requests_total", &[("code", c)]);
        assert_eq!(api("1xx"), 1.0);
        assert_eq!(api("2xx"), 2.0);
        assert_eq!(api("3xx"), 0.0);
        assert_eq!(api("4xx"), 1.0);
        assert_eq!(api("5xx"), 1.0);
        for (name, kind) in &parsed.types {
            assert!(name.starts_with("switchboard_"), "{name}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name} {kind}");
        }
    }

    #[test]
    fn a_store_failure_leaves_only_the_active_calls_out() {
        let mut snapshot = sample_snapshot();
        snapshot.active_calls = None;
        let parsed = parse(&render(&snapshot));
        assert!(!parsed.types.contains_key("switchboard_calls_active"));
        assert!(parsed.types.contains_key("switchboard_calls_ended_total"));
        assert!(parsed.types.contains_key("switchboard_media_sessions"));
    }

    #[test]
    fn an_empty_node_still_exposes_every_family() {
        let snapshot = MetricsSnapshot {
            active_calls: Some(Vec::new()),
            ..MetricsSnapshot::default()
        };
        let parsed = parse(&render(&snapshot));
        assert_eq!(parsed.value("switchboard_media_attached", &[]), 0.0);
        assert!(parsed
            .types
            .contains_key("switchboard_media_packets_sent_total"));
        assert_eq!(
            parsed
                .samples
                .iter()
                .filter(|s| s.name == "switchboard_calls_active")
                .count(),
            DIRECTIONS.len() * UNFINISHED.len()
        );
    }

    #[tokio::test]
    async fn api_responses_are_counted_by_status_class() {
        use tower::ServiceExt;
        let metrics = Metrics::new();
        let router = count_api_requests(
            Router::new().route("/ok", axum::routing::get(|| async { "ok" })),
            metrics.clone(),
        );
        for uri in ["/ok", "/ok", "/missing"] {
            let request = axum::http::Request::builder()
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            router.clone().oneshot(request).await.unwrap();
        }
        let classes = metrics.api_responses_by_class();
        assert!(classes.contains(&("2xx", 2)), "{classes:?}");
        assert!(classes.contains(&("4xx", 1)), "{classes:?}");
        assert_eq!(classes.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }

    #[test]
    fn the_store_reports_calls_to_the_counters() {
        let metrics = Metrics::new();
        let observer: &dyn CallObserver = &*metrics;
        let record = |direction: &str| CallRecord {
            sid: "CA1".into(),
            account_sid: "AC1".into(),
            parent_call_sid: None,
            from: "+1".into(),
            to: "+2".into(),
            from_formatted: String::new(),
            to_formatted: String::new(),
            direction: direction.into(),
            status: CallStatus::Ringing,
            caller_name: None,
            forwarded_from: None,
            date_created: 0,
            date_updated: 0,
            start_time: None,
            end_time: None,
            duration: None,
        };
        observer.call_created(&record("outbound-dial"));
        observer.call_status_changed(CallStatus::InProgress, 1);
        observer.call_status_changed(CallStatus::NoAnswer, 2);
        assert!(metrics
            .calls_started_by_direction()
            .contains(&("outbound-dial", 1)));
        assert!(metrics
            .calls_ended_by_status()
            .contains(&(CallStatus::NoAnswer, 2)));
        assert_eq!(
            metrics
                .calls_ended_by_status()
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>(),
            2
        );
    }
}
