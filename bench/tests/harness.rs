//! The harness end to end on this machine: real sockets, real engines, short runs (a few
//! streams for 2 s per point). Asserts correctness only (every packet forwarded, nothing
//! unreadable or in the wrong codec), never speed.

use std::path::Path;
use std::process::Command;

use bench::{run, BenchConfig, Mode, PointResult, TargetKind};

fn assert_clean(point: &PointResult) {
    let s = &point.summary;
    let what = format!(
        "{} {} {} streams: {s:?}",
        point.target, point.mode, point.streams
    );
    assert_eq!(s.streams, point.streams, "{what}");
    assert!(s.sent > 0, "nothing sent: {what}");
    assert_eq!(s.received, s.sent, "loss: {what}");
    assert_eq!(s.unreadable, 0, "unreadable packets: {what}");
    assert_eq!(s.wrong_codec, 0, "packets in the wrong codec: {what}");
    assert_eq!(s.send_errors, 0, "{what}");
    assert_eq!(
        s.latency.count(),
        s.received,
        "one latency per packet: {what}"
    );
    // 4 streams at 20 ms for 2 s: about 400 packets in the window.
    assert!(s.sent >= 300, "too few packets for the window: {what}");
}

#[test]
fn loopback_measures_every_packet() {
    let config = BenchConfig::quick(vec![TargetKind::Loopback]);
    let results = run(&config).unwrap();
    assert_eq!(results.points.len(), 1);
    let point = &results.points[0];
    assert_clean(point);
    assert_eq!(point.engine_cpu_secs, None, "no engine, no engine CPU");
}

#[test]
fn switchboard_relays_and_transcodes_every_packet() {
    let mut config = BenchConfig::quick(vec![TargetKind::Switchboard]);
    config.modes = vec![Mode::Relay, Mode::Transcode];
    config.stream_counts = vec![5]; // odd: one call sends one way only
    let results = run(&config).unwrap();
    assert_eq!(results.points.len(), 2);
    for point in &results.points {
        assert_eq!(point.target, "switchboard");
        assert_clean(point);
        // The engine's own counters agree (they are read at the window's edges, the
        // generator counts by send stamp: close, not equal).
        let counters = point.engine_counters.expect("switchboard counts packets");
        let received = point.summary.received;
        assert!(
            counters.forwarded.abs_diff(received) <= received / 10 + 10,
            "engine forwarded {}, generator received {received}",
            counters.forwarded
        );
        assert_eq!(counters.dropped, 0, "engine drops");
        assert!(point.engine_cpu_secs.is_some());
    }
}

#[test]
fn switchboard_mixes_conferences_and_every_member_hears_the_one_before_it() {
    // 7 members: conferences of 4 and 3. The loopback "engine" cannot mix: skipped.
    let mut config = BenchConfig::quick(vec![TargetKind::Switchboard, TargetKind::Loopback]);
    config.modes = vec![Mode::Mix];
    config.stream_counts = vec![7];
    let results = run(&config).unwrap();
    assert_eq!(results.points.len(), 1, "{:?}", results.skipped);
    assert_eq!(results.skipped.len(), 1, "loopback skipped");
    let point = &results.points[0];
    assert_eq!(
        (point.target.as_str(), point.mode),
        ("switchboard", Mode::Mix)
    );
    assert_clean(point);
    // The engine sent one mixed packet per member per ptime (read at the window's edges).
    let counters = point.engine_counters.expect("switchboard counts packets");
    let received = point.summary.received;
    assert!(
        counters.forwarded.abs_diff(received) <= received / 10 + 10,
        "engine sent {}, generator heard {received}",
        counters.forwarded
    );
    assert_eq!(counters.dropped, 0, "engine drops");
}

fn rtpengine_installed() -> bool {
    Command::new("rtpengine").arg("--version").output().is_ok()
}

#[test]
fn rtpengine_relays_and_transcodes_every_packet() {
    if !rtpengine_installed() {
        eprintln!(
            "SKIPPED rtpengine_relays_and_transcodes_every_packet: no `rtpengine` on PATH \
             (apt-get install -y rtpengine-daemon; tools/test installs it)"
        );
        return;
    }
    let mut config = BenchConfig::quick(vec![TargetKind::Rtpengine]);
    config.modes = vec![Mode::Relay, Mode::Transcode];
    let results = run(&config).unwrap();
    assert!(results.rtpengine_version.is_some());
    assert_eq!(results.points.len(), 2);
    for point in &results.points {
        assert_eq!(point.target, "rtpengine");
        assert_clean(point);
        assert!(point.engine_cpu_secs.is_some());
    }
    assert!(Path::new(&config.rtpengine_log).exists());
    let _ = std::fs::remove_file(&config.rtpengine_log);
}
