//! Micro-benchmarks of the media packet path: μ-law→A-law transcoding of one 20 ms frame
//! and a session building one RTP packet (μ-law pass-through and A-law transcoding).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use media::g711;
use media::player::MediaData;
use media::session::{PayloadCodec, Session, SessionParams, MAX_PACKET_LEN};

const FRAME: usize = 160;

fn transcode(c: &mut Criterion) {
    let input: Vec<u8> = (0..FRAME).map(|i| (i * 37 % 256) as u8).collect();
    let mut out = [0u8; FRAME];
    let mut group = c.benchmark_group("g711");
    group.throughput(Throughput::Bytes(FRAME as u64));
    group.bench_function("ulaw_to_alaw_160", |b| {
        b.iter(|| {
            g711::transcode_ulaw_to_alaw(black_box(&input), &mut out);
            black_box(&out);
        })
    });
    let linear: Vec<i16> = (0..FRAME)
        .map(|i| ((i as i32 * 411) % 65536 - 32768) as i16)
        .collect();
    group.bench_function("encode_ulaw_160", |b| {
        b.iter(|| {
            g711::encode_ulaw(black_box(&linear), &mut out);
            black_box(&out);
        })
    });
    group.finish();
}

fn build_packet(c: &mut Criterion) {
    let media: Arc<[u8]> = (0..8000 * 60).map(|i| (i % 251) as u8).collect();
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(1));
    for (name, codec) in [
        ("build_packet_pcmu", PayloadCodec::Pcmu),
        ("build_packet_pcma", PayloadCodec::Pcma),
    ] {
        let start = Instant::now();
        let params = SessionParams::with_random_origin(
            "127.0.0.1:40000".parse().expect("literal address"),
            codec,
            Some(101),
            20,
        );
        let mut session = Session::new(params, start).expect("20 ms ptime is valid");
        session
            .play(1, MediaData::Shared(Arc::clone(&media)), 0)
            .expect("empty queue");
        session.start_talkspurt(start);
        let mut buf = [0u8; MAX_PACKET_LEN];
        assert!(
            session.poll_transmit(start, &mut buf, |_| {}).is_some(),
            "the benchmark must build real packets"
        );
        let mut tick = 1u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                // Exactly on each deadline: one packet per call, no skipping.
                let now = start + Duration::from_millis(20) * tick;
                tick = tick.wrapping_add(1);
                let sent = session.poll_transmit(now, &mut buf, |e| {
                    black_box(e);
                });
                black_box(sent);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, transcode, build_packet);
criterion_main!(benches);
