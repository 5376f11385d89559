//! Two real processes move a million sequenced records each way through the rings of one
//! segment, concurrently, over two workers; both sides check order, loss, duplication and
//! torn slots.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{child_role, env_path, numbered, spawn_child, TempPath};
use shmq::{Consumer, Producer, Segment};

const RECORDS_EACH_WAY: u64 = 1_000_000;
const WORKERS: usize = 2;
const SEGMENT_ENV: &str = "SHMQ_TEST_SEGMENT";
const TIME_LIMIT: Duration = Duration::from_secs(300);

/// Pushes records `0..RECORDS_EACH_WAY` (record `i` to worker `i % WORKERS`) while popping the
/// same sequence from the other direction; returns when both are complete.
/// `peer_alive` is asked whenever no progress was made, so a dead peer fails the test at once.
fn exchange(
    mut producers: Vec<Producer>,
    mut consumers: Vec<Consumer>,
    side: &str,
    mut peer_alive: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + TIME_LIMIT;
    let mut next_to_send = 0u64;
    // Worker w carries w, w + WORKERS, w + 2 * WORKERS, ...
    let mut next_expected: Vec<u64> = (0..WORKERS as u64).collect();
    let mut received = 0u64;
    let mut full_hits = 0u64;
    while next_to_send < RECORDS_EACH_WAY || received < RECORDS_EACH_WAY {
        let mut progressed = false;
        while next_to_send < RECORDS_EACH_WAY {
            let worker = (next_to_send % WORKERS as u64) as usize;
            if producers[worker].push(&numbered(next_to_send)).is_err() {
                full_hits += 1;
                break;
            }
            next_to_send += 1;
            progressed = true;
        }
        for (worker, consumer) in consumers.iter_mut().enumerate() {
            while let Some(record) = consumer.pop() {
                let expected = next_expected[worker];
                assert!(
                    expected < RECORDS_EACH_WAY,
                    "{side}: extra record on worker {worker}"
                );
                assert_eq!(
                    record,
                    numbered(expected),
                    "{side}: worker {worker} expected record {expected}"
                );
                next_expected[worker] += WORKERS as u64;
                received += 1;
                progressed = true;
            }
        }
        if !progressed {
            assert!(
                peer_alive(),
                "{side}: peer exited after we sent {next_to_send} and received {received}"
            );
            assert!(
                Instant::now() < deadline,
                "{side}: stuck after sending {next_to_send} and receiving {received}"
            );
            std::thread::yield_now();
        }
    }
    for (worker, consumer) in consumers.iter_mut().enumerate() {
        assert_eq!(
            consumer.pop(),
            None,
            "{side}: extra record on worker {worker}"
        );
    }
    // The rings are small, so the producer must have found them full many times.
    assert!(full_hits > 0, "{side}: never filled a ring");
}

#[test]
fn a_million_records_each_way_between_two_processes() {
    if let Some(role) = child_role() {
        assert_eq!(role, "media");
        let segment = Segment::open(&env_path(SEGMENT_ENV)).unwrap();
        assert_eq!(segment.workers(), WORKERS);
        let producers = (0..WORKERS)
            .map(|w| segment.event_producer(w).unwrap())
            .collect();
        let consumers = (0..WORKERS)
            .map(|w| segment.command_consumer(w).unwrap())
            .collect();
        exchange(producers, consumers, "media child", common::parent_watch());
        return;
    }

    let path = TempPath::new("million");
    let segment: Arc<Segment> = Segment::create(&path, WORKERS, 64).unwrap();
    let mut child = spawn_child(
        "a_million_records_each_way_between_two_processes",
        "media",
        &[(SEGMENT_ENV, path.as_os_str())],
    );
    let producers = (0..WORKERS)
        .map(|w| segment.command_producer(w).unwrap())
        .collect();
    let consumers = (0..WORKERS)
        .map(|w| segment.event_consumer(w).unwrap())
        .collect();
    exchange(producers, consumers, "control parent", || {
        child.is_running()
    });
    child.wait_success(TIME_LIMIT);
}
