//! The conference mixer: the [`MixBus`] the workers of a media process share, and each
//! worker's [`Mixer`] with its members' state (jitter buffer, voice activity, output queue).
//!
//! Time is cut into 20 ms ticks numbered from the bus's epoch, so every worker agrees on
//! what tick `t` is. At tick `t` a worker, for each mix it has members in:
//! 1. takes one frame from each local member's [`JitterBuffer`] (its input for tick `t`),
//!    runs voice-activity detection on it (`Speaking` events), and sums the frames of the
//!    members that are not muted into a **partial sum** (i32);
//! 2. publishes that partial on the bus for (mix, worker, `t`);
//! 3. reads every worker's partial of tick `t - 1` (each had a whole tick to write it; a
//!    partial whose stamp is not `t - 1` counts as silence) and adds them up: the mix of
//!    `t - 1`;
//! 4. gives each local member that is not deaf the mix minus its own frame of `t - 1` (if it
//!    contributed one), saturated to i16, through its output queue.
//!
//! Members therefore hear everyone else one tick after the tick their audio was played out
//! of its jitter buffer, whichever worker owns them; a worker reads `workers` partials per
//! mix and tick, not one frame per member. The bus holds, per mix and worker, a ring of four
//! partials, each behind a seqlock stamp (`2·(t+1)` when complete, odd while written), so a
//! reader never takes a torn partial for a valid one. Joining and leaving take a mutex on
//! the bus's directory (mix id → slot, member counts): command handling only, never the
//! packet path. A slot's partial rings are allocated the first time the slot is used and
//! kept for reuse; the last member leaving frees the slot (its stamps are cleared while
//! nobody can be using it: no worker has members in it).
//!
//! A member's session sends at its own ptime on a grid that starts on a tick (the worker
//! rebases it on join), so each packet finds what it needs in the output queue (prefilled
//! with the silence that ptimes other than 10 and 20 ms need); [`Mixer::mix_into_payload`]
//! adds the queued mix to the G.711 payload the session's play queue produced (beeps,
//! announcements) and re-encodes it in the member's codec, clipping-safe.

use std::collections::HashMap;
use std::sync::atomic::{fence, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use shmq::{MixId, SessionId, MAX_MIX_MEMBERS};

use crate::g711;
use crate::jitter::{JitterBuffer, JitterStats, FRAME_SAMPLES};
use crate::session::{PayloadCodec, SAMPLES_PER_MS};

/// The mixer's tick.
pub const TICK: Duration = Duration::from_millis(20);
const TICK_NANOS: u64 = 20_000_000;
/// Partials kept per mix and worker (ticks `t % PARTIAL_RING`).
const PARTIAL_RING: usize = 4;
/// A worker this many ticks behind skips to the current tick instead of mixing them all.
pub const MAX_CATCH_UP_TICKS: u64 = 5;
/// Samples a member's output queue holds: enough for the longest ptime (120 ms), its
/// prefill and a tick.
pub const OUTPUT_CAPACITY: usize = 2048;
/// The most samples one outgoing packet takes (120 ms).
const MAX_PACKET_SAMPLES: usize = 960;
/// Voice activity: a frame is loud when its mean square reaches this (RMS 500, about
/// −36 dBFS).
pub const SPEECH_ENERGY: i64 = 500 * 500;
/// Loud frames in a row that start speech (40 ms).
pub const SPEECH_ONSET_FRAMES: u8 = 2;
/// Quiet frames after the last loud one that end speech (300 ms).
pub const SPEECH_HANGOVER_FRAMES: u16 = 15;

/// A-law decoding for mixing: like [`g711::ALAW_DECODE`] but the silence byte (0xD5, which
/// G.711 decodes to +8) is 0, so an idle play queue adds nothing to what a member hears.
static ALAW_DECODE_FOR_MIX: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = g711::alaw_to_linear(byte as u8);
        byte += 1;
    }
    table[g711::ALAW_SILENCE as usize] = 0;
    table
};

fn mix_decode_table(codec: PayloadCodec) -> &'static [i16; 256] {
    match codec {
        PayloadCodec::Pcmu => &g711::ULAW_DECODE,
        PayloadCodec::Pcma => &ALAW_DECODE_FOR_MIX,
    }
}

fn receive_decode_table(codec: PayloadCodec) -> &'static [i16; 256] {
    match codec {
        PayloadCodec::Pcmu => &g711::ULAW_DECODE,
        PayloadCodec::Pcma => &g711::ALAW_DECODE,
    }
}

fn encode(codec: PayloadCodec, sample: i16) -> u8 {
    match codec {
        PayloadCodec::Pcmu => g711::linear_to_ulaw(sample),
        PayloadCodec::Pcma => g711::linear_to_alaw(sample),
    }
}

fn saturate(sample: i32) -> i16 {
    sample.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// Why a member could not join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("the mix already has {MAX_MIX_MEMBERS} members")]
    Full,
    #[error("the mix table is full")]
    TableFull,
}

/// One worker's partial sum for one tick, behind a seqlock stamp.
struct PartialFrame {
    /// 0: never written; `2·(t+1)`: complete for tick `t`; odd: being written.
    stamp: AtomicU64,
    samples: [AtomicI32; FRAME_SAMPLES],
}

impl PartialFrame {
    fn new() -> PartialFrame {
        PartialFrame {
            stamp: AtomicU64::new(0),
            samples: std::array::from_fn(|_| AtomicI32::new(0)),
        }
    }
}

fn complete_stamp(tick: u64) -> u64 {
    tick.wrapping_add(1).wrapping_mul(2)
}

/// One mix's place on the bus: `workers × PARTIAL_RING` partial frames, allocated on the
/// slot's first use.
struct MixSlot {
    partials: OnceLock<Box<[PartialFrame]>>,
}

/// Which mix owns which slot, and how many members each has (all workers together).
struct Directory {
    by_id: HashMap<MixId, usize>,
    members: Vec<u32>,
    free: Vec<usize>,
}

/// The mixes of one media process, shared by its workers.
pub struct MixBus {
    epoch: Instant,
    workers: usize,
    directory: Mutex<Directory>,
    slots: Box<[MixSlot]>,
}

impl std::fmt::Debug for MixBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MixBus")
            .field("workers", &self.workers)
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl MixBus {
    /// A bus for `workers` workers with room for `max_mixes` mixes at once (each needs a
    /// member session, so the workers' session capacity is always enough); ticks count from
    /// `epoch`.
    pub fn new(workers: usize, max_mixes: usize, epoch: Instant) -> MixBus {
        let max_mixes = max_mixes.max(1);
        MixBus {
            epoch,
            workers: workers.max(1),
            directory: Mutex::new(Directory {
                by_id: HashMap::with_capacity(max_mixes),
                members: vec![0; max_mixes],
                free: (0..max_mixes).rev().collect(),
            }),
            slots: (0..max_mixes)
                .map(|_| MixSlot {
                    partials: OnceLock::new(),
                })
                .collect(),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// When tick `tick` starts.
    pub fn tick_at(&self, tick: u64) -> Instant {
        self.epoch + Duration::from_nanos(tick.saturating_mul(TICK_NANOS))
    }

    /// The tick running at `now` (the last one that started).
    pub fn tick_index(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos / u128::from(TICK_NANOS)).unwrap_or(u64::MAX)
    }

    /// The first tick that starts at or after `at`.
    pub fn first_tick_from(&self, at: Instant) -> u64 {
        let tick = self.tick_index(at);
        if self.tick_at(tick) >= at {
            tick
        } else {
            tick.saturating_add(1)
        }
    }

    /// Members of `mix` on all workers (0 if it does not exist).
    pub fn members(&self, mix: MixId) -> u32 {
        let directory = self.lock();
        directory
            .by_id
            .get(&mix)
            .and_then(|slot| directory.members.get(*slot))
            .copied()
            .unwrap_or(0)
    }

    /// Mixes that exist.
    pub fn mixes(&self) -> usize {
        self.lock().by_id.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.directory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one more member of `mix` (creating it) and returns its slot.
    fn join(&self, mix: MixId) -> Result<usize, MixError> {
        let mut directory = self.lock();
        let slot = match directory.by_id.get(&mix) {
            Some(slot) => *slot,
            None => {
                let slot = directory.free.pop().ok_or(MixError::TableFull)?;
                directory.by_id.insert(mix, slot);
                slot
            }
        };
        let count = directory.members.get_mut(slot).ok_or(MixError::TableFull)?;
        if *count as usize >= MAX_MIX_MEMBERS {
            return Err(MixError::Full);
        }
        *count += 1;
        drop(directory);
        if let Some(mix_slot) = self.slots.get(slot) {
            mix_slot.partials.get_or_init(|| {
                (0..self.workers * PARTIAL_RING)
                    .map(|_| PartialFrame::new())
                    .collect()
            });
        }
        Ok(slot)
    }

    /// Counts one member of the mix in `slot` gone; the last one frees the slot.
    fn leave(&self, mix: MixId, slot: usize) {
        let mut directory = self.lock();
        let Some(count) = directory.members.get_mut(slot) else {
            return;
        };
        *count = count.saturating_sub(1);
        if *count > 0 {
            return;
        }
        directory.by_id.remove(&mix);
        directory.free.push(slot);
        // No worker has members in the mix any more, so none reads or writes its partials:
        // forget them before the slot serves another mix.
        if let Some(partials) = self.slots.get(slot).and_then(|s| s.partials.get()) {
            for frame in partials.iter() {
                frame.stamp.store(0, Ordering::Relaxed);
            }
        }
    }

    fn partial(&self, slot: usize, worker: usize, tick: u64) -> Option<&PartialFrame> {
        let index = worker * PARTIAL_RING + (tick % PARTIAL_RING as u64) as usize;
        self.slots.get(slot)?.partials.get()?.get(index)
    }

    /// Publishes `worker`'s partial sum of tick `tick` for the mix in `slot`.
    fn publish(&self, slot: usize, worker: usize, tick: u64, partial: &[i32; FRAME_SAMPLES]) {
        let Some(frame) = self.partial(slot, worker, tick) else {
            return;
        };
        let stamp = complete_stamp(tick);
        frame.stamp.store(stamp.wrapping_sub(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (cell, value) in frame.samples.iter().zip(partial) {
            cell.store(*value, Ordering::Relaxed);
        }
        frame.stamp.store(stamp, Ordering::Release);
    }

    /// Adds `worker`'s partial of tick `tick` into `total` if it is there, whole; returns
    /// whether it was. `scratch` holds the copy until it is known not to be torn.
    fn add_partial(
        &self,
        slot: usize,
        worker: usize,
        tick: u64,
        total: &mut [i32; FRAME_SAMPLES],
        scratch: &mut [i32; FRAME_SAMPLES],
    ) -> bool {
        let Some(frame) = self.partial(slot, worker, tick) else {
            return false;
        };
        let stamp = complete_stamp(tick);
        if frame.stamp.load(Ordering::Acquire) != stamp {
            return false;
        }
        for (copy, cell) in scratch.iter_mut().zip(&frame.samples) {
            *copy = cell.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        if frame.stamp.load(Ordering::Relaxed) != stamp {
            return false;
        }
        for (sum, value) in total.iter_mut().zip(scratch.iter()) {
            *sum += *value;
        }
        true
    }
}

/// A member's mixed audio waiting for its session's next packets.
#[derive(Debug, Clone)]
struct OutputQueue {
    samples: [i16; OUTPUT_CAPACITY],
    head: usize,
    len: usize,
    /// Silence queued ahead of the first tick's audio (depends on the ptime).
    prefill: usize,
    /// Above this the oldest samples are dropped.
    limit: usize,
}

/// Samples of silence the output queue needs ahead so a packet of `ptime_ms` sent on a
/// tick-aligned grid always finds its samples (ticks and packets on the same instants are
/// mixed first): the most a packet can need beyond the ticks mixed by its send time.
fn output_prefill(ptime_ms: u16) -> usize {
    let ptime = usize::from(ptime_ms.max(1));
    let tick_ms = 20usize;
    let gcd = {
        let (mut a, mut b) = (ptime, tick_ms);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let per_ms = SAMPLES_PER_MS as usize;
    (per_ms * ptime + per_ms * (tick_ms - gcd)).saturating_sub(FRAME_SAMPLES)
}

impl OutputQueue {
    fn new(ptime_ms: u16) -> OutputQueue {
        let mut queue = OutputQueue {
            samples: [0; OUTPUT_CAPACITY],
            head: 0,
            len: 0,
            prefill: 0,
            limit: 0,
        };
        queue.reset(ptime_ms);
        queue
    }

    /// Empties the queue and primes it with the prefill for `ptime_ms`.
    fn reset(&mut self, ptime_ms: u16) {
        let packet = usize::from(ptime_ms) * SAMPLES_PER_MS as usize;
        self.prefill = output_prefill(ptime_ms).min(OUTPUT_CAPACITY / 2);
        self.limit = (self.prefill + packet + FRAME_SAMPLES).min(OUTPUT_CAPACITY);
        self.head = 0;
        self.len = self.prefill;
        self.samples.fill(0);
    }

    /// Appends one tick's frame; returns the samples dropped to stay within the limit.
    fn push(&mut self, frame: &[i16; FRAME_SAMPLES]) -> usize {
        for sample in frame {
            let index = (self.head + self.len) % OUTPUT_CAPACITY;
            if let Some(cell) = self.samples.get_mut(index) {
                *cell = *sample;
            }
            self.len += 1;
        }
        let excess = self.len.saturating_sub(self.limit);
        self.discard(excess);
        excess
    }

    /// Removes up to `n` of the oldest samples.
    fn discard(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % OUTPUT_CAPACITY;
        self.len -= n;
    }

    /// Moves the oldest `out.len()` samples into `out` (zeros where the queue runs short);
    /// returns how many were missing.
    fn take(&mut self, out: &mut [i16]) -> usize {
        let available = self.len.min(out.len());
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = if i < available {
                self.samples
                    .get((self.head + i) % OUTPUT_CAPACITY)
                    .copied()
                    .unwrap_or(0)
            } else {
                0
            };
        }
        self.discard(available);
        out.len() - available
    }
}

/// Voice-activity detection on a member's input with onset and hang-over.
#[derive(Debug, Clone, Copy, Default)]
struct VoiceActivity {
    speaking: bool,
    loud_frames: u8,
    quiet_left: u16,
}

impl VoiceActivity {
    /// Feeds one frame (`received`: it carried audio that arrived); returns the new state
    /// on a change.
    fn update(&mut self, frame: &[i16; FRAME_SAMPLES], received: bool) -> Option<bool> {
        let energy: i64 = frame
            .iter()
            .map(|s| i64::from(*s) * i64::from(*s))
            .sum::<i64>()
            / FRAME_SAMPLES as i64;
        let loud = received && energy >= SPEECH_ENERGY;
        if loud {
            self.loud_frames = self.loud_frames.saturating_add(1);
            self.quiet_left = SPEECH_HANGOVER_FRAMES;
        } else {
            self.loud_frames = 0;
            self.quiet_left = self.quiet_left.saturating_sub(1);
        }
        if !self.speaking && self.loud_frames >= SPEECH_ONSET_FRAMES {
            self.speaking = true;
            return Some(true);
        }
        if self.speaking && !loud && self.quiet_left == 0 {
            self.speaking = false;
            return Some(false);
        }
        None
    }
}

/// What a member counted (reported when it leaves).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberStats {
    pub jitter: JitterStats,
    /// Samples a packet needed that the output queue did not have.
    pub output_underruns: u64,
    /// Samples dropped because the output queue ran over.
    pub output_overruns: u64,
}

/// One local member of a mix.
#[derive(Debug, Clone)]
pub struct MixMember {
    session: SessionId,
    mix: MixId,
    /// Index of its mix in the worker's [`Mixer`].
    local_mix: usize,
    muted: bool,
    deaf: bool,
    jitter: JitterBuffer,
    /// Its input frames of the last two ticks (`t % 2`), and the tick each was added to
    /// the mix in (`None`: muted then, or not yet a member).
    own: [[i16; FRAME_SAMPLES]; 2],
    own_tick: [Option<u64>; 2],
    output: OutputQueue,
    voice: VoiceActivity,
    output_underruns: u64,
    output_overruns: u64,
}

impl MixMember {
    fn new(
        session: SessionId,
        mix: MixId,
        local_mix: usize,
        flags: MemberFlags,
        ptime_ms: u16,
    ) -> MixMember {
        MixMember {
            session,
            mix,
            local_mix,
            muted: flags.muted,
            deaf: flags.deaf,
            jitter: JitterBuffer::new(),
            own: [[0; FRAME_SAMPLES]; 2],
            own_tick: [None; 2],
            output: OutputQueue::new(ptime_ms),
            voice: VoiceActivity::default(),
            output_underruns: 0,
            output_overruns: 0,
        }
    }

    pub fn stats(&self) -> MemberStats {
        MemberStats {
            jitter: self.jitter.stats(),
            output_underruns: self.output_underruns,
            output_overruns: self.output_overruns,
        }
    }
}

/// A member's `muted`/`deaf` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberFlags {
    /// The others do not hear it.
    pub muted: bool,
    /// It hears no one (only its own play queue).
    pub deaf: bool,
}

/// Identifies a member in its worker's [`Mixer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberId(usize);

/// What the mixer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixEvent {
    Speaking {
        session: SessionId,
        mix: MixId,
        speaking: bool,
    },
}

/// A mix as one worker sees it: its slot on the bus and the worker's members in it.
#[derive(Debug)]
struct LocalMix {
    id: MixId,
    slot: usize,
    members: Vec<usize>,
}

/// What a worker's mixer counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixerStats {
    pub ticks: u64,
    /// Ticks skipped because the worker fell too far behind.
    pub skipped_ticks: u64,
    /// Other workers' partials that were missing or torn when read.
    pub stale_partials: u64,
}

/// One worker's part of the conference mixer.
#[derive(Debug)]
pub struct Mixer {
    worker: usize,
    bus: Arc<MixBus>,
    members: Vec<Option<Box<MixMember>>>,
    free_members: Vec<usize>,
    mixes: Vec<Option<LocalMix>>,
    free_mixes: Vec<usize>,
    mix_index: HashMap<MixId, usize>,
    /// The next tick to mix; `None` while the worker has no members.
    next_tick: Option<u64>,
    partial: [i32; FRAME_SAMPLES],
    total: [i32; FRAME_SAMPLES],
    scratch: [i32; FRAME_SAMPLES],
    frame: [i16; FRAME_SAMPLES],
    stats: MixerStats,
}

impl Mixer {
    /// The mixer of worker `worker` on `bus`.
    pub fn new(worker: usize, bus: Arc<MixBus>) -> Mixer {
        Mixer {
            worker,
            bus,
            members: Vec::new(),
            free_members: Vec::new(),
            mixes: Vec::new(),
            free_mixes: Vec::new(),
            mix_index: HashMap::new(),
            next_tick: None,
            partial: [0; FRAME_SAMPLES],
            total: [0; FRAME_SAMPLES],
            scratch: [0; FRAME_SAMPLES],
            frame: [0; FRAME_SAMPLES],
            stats: MixerStats::default(),
        }
    }

    pub fn bus(&self) -> &Arc<MixBus> {
        &self.bus
    }

    pub fn stats(&self) -> MixerStats {
        self.stats
    }

    /// Members on this worker.
    pub fn member_count(&self) -> usize {
        self.members.len() - self.free_members.len()
    }

    pub fn member(&self, member: MemberId) -> Option<&MixMember> {
        self.members.get(member.0)?.as_deref()
    }

    fn member_mut(&mut self, member: MemberId) -> Option<&mut MixMember> {
        self.members.get_mut(member.0)?.as_deref_mut()
    }

    /// The mix `member` is in.
    pub fn mix_of(&self, member: MemberId) -> Option<MixId> {
        self.member(member).map(|m| m.mix)
    }

    /// Makes `session` (sending at `ptime_ms`) a member of `mix`. Allocates (command path).
    pub fn join(
        &mut self,
        session: SessionId,
        mix: MixId,
        flags: MemberFlags,
        ptime_ms: u16,
        now: Instant,
    ) -> Result<MemberId, MixError> {
        let local_mix = match self.mix_index.get(&mix) {
            Some(index) => *index,
            None => {
                let slot = self.bus.join(mix)?;
                let local = LocalMix {
                    id: mix,
                    slot,
                    members: Vec::new(),
                };
                let index = match self.free_mixes.pop() {
                    Some(index) => {
                        if let Some(entry) = self.mixes.get_mut(index) {
                            *entry = Some(local);
                        }
                        index
                    }
                    None => {
                        self.mixes.push(Some(local));
                        self.mixes.len() - 1
                    }
                };
                self.mix_index.insert(mix, index);
                index
            }
        };
        let Some(Some(local)) = self.mixes.get_mut(local_mix) else {
            return Err(MixError::TableFull);
        };
        if !local.members.is_empty() {
            // The bus counted the first local member when the local mix was made.
            self.bus.join(mix)?;
        }
        let member = Box::new(MixMember::new(session, mix, local_mix, flags, ptime_ms));
        let index = match self.free_members.pop() {
            Some(index) => {
                if let Some(entry) = self.members.get_mut(index) {
                    *entry = Some(member);
                }
                index
            }
            None => {
                self.members.push(Some(member));
                self.members.len() - 1
            }
        };
        local.members.push(index);
        if self.next_tick.is_none() {
            self.next_tick = Some(self.bus.first_tick_from(now));
        }
        Ok(MemberId(index))
    }

    /// Changes a member's flags.
    pub fn set_flags(&mut self, member: MemberId, flags: MemberFlags) {
        if let Some(m) = self.member_mut(member) {
            m.muted = flags.muted;
            m.deaf = flags.deaf;
        }
    }

    /// Takes `member` out of its mix; returns the mix and what the member counted.
    pub fn leave(&mut self, member: MemberId) -> Option<(MixId, MemberStats)> {
        let removed = self.members.get_mut(member.0)?.take()?;
        self.free_members.push(member.0);
        let stats = removed.stats();
        if let Some(Some(local)) = self.mixes.get_mut(removed.local_mix) {
            local.members.retain(|m| *m != member.0);
            let (id, slot, empty) = (local.id, local.slot, local.members.is_empty());
            self.bus.leave(id, slot);
            if empty {
                if let Some(entry) = self.mixes.get_mut(removed.local_mix) {
                    *entry = None;
                }
                self.free_mixes.push(removed.local_mix);
                self.mix_index.remove(&id);
            }
        }
        if self.member_count() == 0 {
            self.next_tick = None;
        }
        Some((removed.mix, stats))
    }

    /// A member's session changed ptime: its output queue starts over for the new one.
    pub fn set_ptime(&mut self, member: MemberId, ptime_ms: u16) {
        if let Some(m) = self.member_mut(member) {
            m.output.reset(ptime_ms);
        }
    }

    /// Where a member's session should put its next packet: the first tick the mixer has not
    /// mixed yet at or after `due` (the packet the session has due now).
    pub fn aligned_send_time(&self, due: Instant, now: Instant) -> Instant {
        let from = self.bus.first_tick_from(due.max(now));
        let tick = self.next_tick.map_or(from, |next| from.max(next));
        self.bus.tick_at(tick)
    }

    /// When the next tick is to be mixed, if any member is here.
    pub fn next_tick_at(&self) -> Option<Instant> {
        self.next_tick.map(|tick| self.bus.tick_at(tick))
    }

    /// Audio a member's session received: `payload` in `codec` at RTP `timestamp` of
    /// stream `ssrc`, into the member's jitter buffer.
    pub fn receive(
        &mut self,
        member: MemberId,
        ssrc: u32,
        timestamp: u32,
        payload: &[u8],
        codec: PayloadCodec,
    ) {
        if let Some(m) = self.member_mut(member) {
            m.jitter
                .push(ssrc, timestamp, payload, receive_decode_table(codec));
        }
    }

    /// Mixes every tick that has started by `now` (skipping ahead if far behind).
    pub fn run_due_ticks(&mut self, now: Instant, mut on_event: impl FnMut(MixEvent)) {
        while let Some(tick) = self.next_tick {
            if self.bus.tick_at(tick) > now {
                return;
            }
            let current = self.bus.tick_index(now);
            let tick = if current.saturating_sub(tick) > MAX_CATCH_UP_TICKS {
                let skipped = current - tick;
                self.stats.skipped_ticks += skipped;
                let frames = u32::try_from(skipped).unwrap_or(u32::MAX);
                for member in self.members.iter_mut().flatten() {
                    member.jitter.skip_frames(frames);
                }
                current
            } else {
                tick
            };
            self.mix_tick(tick, &mut on_event);
            self.next_tick = Some(tick + 1);
        }
    }

    /// Steps 1–4 of the module documentation for every local mix.
    fn mix_tick(&mut self, tick: u64, on_event: &mut impl FnMut(MixEvent)) {
        self.stats.ticks += 1;
        let parity = (tick % 2) as usize;
        let previous = tick.checked_sub(1);
        let Self {
            worker,
            bus,
            members,
            mixes,
            partial,
            total,
            scratch,
            frame,
            stats,
            ..
        } = self;
        for local in mixes.iter().flatten() {
            partial.fill(0);
            for index in &local.members {
                let Some(Some(member)) = members.get_mut(*index) else {
                    continue;
                };
                let mut input = [0i16; FRAME_SAMPLES];
                let received = member.jitter.pop_frame(&mut input);
                if let Some(speaking) = member.voice.update(&input, received) {
                    on_event(MixEvent::Speaking {
                        session: member.session,
                        mix: member.mix,
                        speaking,
                    });
                }
                if member.muted {
                    member.own_tick[parity] = None;
                } else {
                    for (sum, sample) in partial.iter_mut().zip(&input) {
                        *sum += i32::from(*sample);
                    }
                    member.own_tick[parity] = Some(tick);
                }
                if let Some(own) = member.own.get_mut(parity) {
                    *own = input;
                }
            }
            bus.publish(local.slot, *worker, tick, partial);
            total.fill(0);
            if let Some(previous) = previous {
                for w in 0..bus.workers() {
                    if !bus.add_partial(local.slot, w, previous, total, scratch) && w != *worker {
                        stats.stale_partials += 1;
                    }
                }
            }
            for index in &local.members {
                let Some(Some(member)) = members.get_mut(*index) else {
                    continue;
                };
                let own_parity = 1 - parity;
                let own = previous
                    .filter(|p| member.own_tick[own_parity] == Some(*p))
                    .and_then(|_| member.own.get(own_parity));
                if member.deaf {
                    frame.fill(0);
                } else {
                    for (i, (out, sum)) in frame.iter_mut().zip(total.iter()).enumerate() {
                        let mine = own.and_then(|o| o.get(i)).copied().unwrap_or(0);
                        *out = saturate(*sum - i32::from(mine));
                    }
                }
                let dropped = member.output.push(frame);
                member.output_overruns += dropped as u64;
            }
        }
    }

    /// Adds the member's queued mix to `payload`, one outgoing packet of audio in `codec`
    /// (what its play queue produced), re-encoding it: what the member hears. A deaf
    /// member's payload, and any stretch where the mix is silent, is left as it is.
    pub fn mix_into_payload(&mut self, member: MemberId, payload: &mut [u8], codec: PayloadCodec) {
        let Some(m) = self.member_mut(member) else {
            return;
        };
        let mut mixed = [0i16; MAX_PACKET_SAMPLES];
        for chunk in payload.chunks_mut(MAX_PACKET_SAMPLES) {
            let Some(mixed) = mixed.get_mut(..chunk.len()) else {
                continue;
            };
            m.output_underruns += m.output.take(mixed) as u64;
            if m.deaf || mixed.iter().all(|s| *s == 0) {
                continue;
            }
            let decode = mix_decode_table(codec);
            for (byte, add) in chunk.iter_mut().zip(mixed.iter()) {
                let sum = i32::from(decode[usize::from(*byte)]) + i32::from(*add);
                *byte = encode(codec, saturate(sum));
            }
        }
    }

    /// The member's session sent `samples` worth of something that is not audio (an RFC
    /// 4733 event): that much of the mix is not heard.
    pub fn skip_output(&mut self, member: MemberId, samples: usize) {
        if let Some(m) = self.member_mut(member) {
            m.output.discard(samples);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every μ-law byte whose decoded value is `v` or nearest (for building inputs).
    fn ulaw_for(v: i16) -> u8 {
        g711::linear_to_ulaw(v)
    }

    struct Party {
        id: MemberId,
        worker: usize,
        codec: PayloadCodec,
        ssrc: u32,
        timestamp: u32,
    }

    /// Mixers for `workers` workers on one bus, ticking in lock step.
    struct Rig {
        bus: Arc<MixBus>,
        mixers: Vec<Mixer>,
        tick: u64,
        events: Vec<(usize, MixEvent)>,
    }

    impl Rig {
        fn new(workers: usize) -> Rig {
            let bus = Arc::new(MixBus::new(workers, 64, Instant::now()));
            let mixers = (0..workers)
                .map(|w| Mixer::new(w, Arc::clone(&bus)))
                .collect();
            Rig {
                bus,
                mixers,
                tick: 0,
                events: Vec::new(),
            }
        }

        fn now(&self) -> Instant {
            self.bus.tick_at(self.tick)
        }

        fn join(
            &mut self,
            worker: usize,
            n: u64,
            mix: u64,
            flags: MemberFlags,
            codec: PayloadCodec,
        ) -> Party {
            let now = self.now();
            let id = self.mixers[worker]
                .join(SessionId(n), MixId(mix), flags, 20, now)
                .unwrap();
            Party {
                id,
                worker,
                codec,
                ssrc: n as u32,
                timestamp: 0,
            }
        }

        /// One packet from `party`, then one tick on every worker (in a varying order),
        /// then one 20 ms packet out of every listed member: what each heard, decoded.
        fn step(&mut self, inputs: &mut [(&mut Party, Vec<u8>)]) -> Vec<Vec<i16>> {
            for (party, payload) in inputs.iter_mut() {
                self.mixers[party.worker].receive(
                    party.id,
                    party.ssrc,
                    party.timestamp,
                    payload,
                    party.codec,
                );
                party.timestamp = party.timestamp.wrapping_add(payload.len() as u32);
            }
            let now = self.now();
            let order: Vec<usize> = if self.tick.is_multiple_of(2) {
                (0..self.mixers.len()).collect()
            } else {
                (0..self.mixers.len()).rev().collect()
            };
            for w in order {
                let events = &mut self.events;
                self.mixers[w].run_due_ticks(now, |e| events.push((w, e)));
            }
            self.tick += 1;
            inputs
                .iter()
                .map(|(party, _)| {
                    let silence = match party.codec {
                        PayloadCodec::Pcmu => g711::ULAW_SILENCE,
                        PayloadCodec::Pcma => g711::ALAW_SILENCE,
                    };
                    let mut payload = [silence; FRAME_SAMPLES];
                    self.mixers[party.worker].mix_into_payload(party.id, &mut payload, party.codec);
                    payload
                        .iter()
                        .map(|b| mix_decode_table(party.codec)[usize::from(*b)])
                        .collect()
                })
                .collect()
        }
    }

    fn constant(codec: PayloadCodec, value: i16) -> Vec<u8> {
        let byte = match codec {
            PayloadCodec::Pcmu => ulaw_for(value),
            PayloadCodec::Pcma => g711::linear_to_alaw(value),
        };
        vec![byte; FRAME_SAMPLES]
    }

    fn decoded(codec: PayloadCodec, payload: &[u8]) -> i32 {
        i32::from(receive_decode_table(codec)[usize::from(payload[0])])
    }

    fn expect_heard(codec: PayloadCodec, value: i32) -> i16 {
        let byte = encode(codec, saturate(value));
        mix_decode_table(codec)[usize::from(byte)]
    }

    /// Runs ticks until the mix settles; returns the last frame each party heard.
    fn settle(rig: &mut Rig, parties: &mut [Party], signals: &[Vec<u8>]) -> Vec<Vec<i16>> {
        let mut heard = Vec::new();
        for _ in 0..12 {
            let mut inputs: Vec<(&mut Party, Vec<u8>)> = parties
                .iter_mut()
                .zip(signals)
                .map(|(p, s)| (p, s.clone()))
                .collect();
            heard = rig.step(&mut inputs);
        }
        heard
    }

    #[test]
    fn each_member_hears_the_others_not_itself_across_workers() {
        for workers in [1, 2, 3] {
            let mut rig = Rig::new(workers);
            let codecs = [PayloadCodec::Pcmu, PayloadCodec::Pcma, PayloadCodec::Pcmu];
            let mut parties: Vec<Party> = (0..3)
                .map(|i| {
                    rig.join(
                        i % workers,
                        i as u64 + 1,
                        7,
                        MemberFlags::default(),
                        codecs[i],
                    )
                })
                .collect();
            let signals: Vec<Vec<u8>> = [1000i16, 2000, 4000]
                .iter()
                .zip(codecs)
                .map(|(v, c)| constant(c, *v))
                .collect();
            let values: Vec<i32> = signals
                .iter()
                .zip(codecs)
                .map(|(s, c)| decoded(c, s))
                .collect();
            let heard = settle(&mut rig, &mut parties, &signals);
            let sum: i32 = values.iter().sum();
            for (i, frame) in heard.iter().enumerate() {
                let expected = expect_heard(codecs[i], sum - values[i]);
                assert!(
                    frame.iter().all(|s| *s == expected),
                    "{workers} workers: party {i} heard {:?}, expected {expected}",
                    &frame[..4]
                );
            }
            assert_eq!(rig.bus.members(MixId(7)), 3);
            for m in &rig.mixers {
                assert_eq!(m.stats().stale_partials, 0, "{workers} workers");
            }
        }
    }

    #[test]
    fn muted_members_are_not_heard_and_deaf_ones_hear_nobody() {
        let mut rig = Rig::new(2);
        let codec = PayloadCodec::Pcmu;
        let mut parties = vec![
            rig.join(0, 1, 1, MemberFlags::default(), codec),
            rig.join(
                1,
                2,
                1,
                MemberFlags {
                    muted: true,
                    deaf: false,
                },
                codec,
            ),
            rig.join(
                0,
                3,
                1,
                MemberFlags {
                    muted: false,
                    deaf: true,
                },
                codec,
            ),
        ];
        let signals = vec![
            constant(codec, 1000),
            constant(codec, 2000),
            constant(codec, 4000),
        ];
        let v: Vec<i32> = signals.iter().map(|s| decoded(codec, s)).collect();
        let heard = settle(&mut rig, &mut parties, &signals);
        // Party 0 hears 2 (muted: no) and 3: v3. Party 1 (muted) hears 0 and 3. Party 2
        // (deaf) hears nothing.
        assert!(heard[0].iter().all(|s| *s == expect_heard(codec, v[2])));
        assert!(heard[1]
            .iter()
            .all(|s| *s == expect_heard(codec, v[0] + v[2])));
        assert!(heard[2].iter().all(|s| *s == 0));
        // Unmute and undeafen: everyone hears the other two again.
        rig.mixers[1].set_flags(parties[1].id, MemberFlags::default());
        rig.mixers[0].set_flags(parties[2].id, MemberFlags::default());
        let heard = settle(&mut rig, &mut parties, &signals);
        let sum: i32 = v.iter().sum();
        for i in 0..3 {
            assert!(
                heard[i]
                    .iter()
                    .all(|s| *s == expect_heard(codec, sum - v[i])),
                "party {i}"
            );
        }
    }

    #[test]
    fn loud_sums_saturate_instead_of_wrapping() {
        let mut rig = Rig::new(1);
        let codec = PayloadCodec::Pcmu;
        let mut parties: Vec<Party> = (0..4)
            .map(|i| rig.join(0, i + 1, 3, MemberFlags::default(), codec))
            .collect();
        let loud = [
            constant(codec, 30000),
            constant(codec, 30000),
            constant(codec, 30000),
            constant(codec, -30000),
        ];
        let heard = settle(&mut rig, &mut parties, &loud);
        let max = expect_heard(codec, i32::from(i16::MAX));
        // 30000·2 − 30000 = 30000 for the first three; 90000 saturates for the fourth.
        assert!(heard[3].iter().all(|s| *s == max), "{:?}", &heard[3][..4]);
        let v = decoded(codec, &loud[0]);
        assert!(heard[0].iter().all(|s| *s == expect_heard(codec, v)));
        // The same through the payload path: a loud play-queue sample plus a loud mix clips.
        for (party, payload) in parties.iter_mut().zip(&loud) {
            rig.mixers[0].receive(party.id, party.ssrc, party.timestamp, payload, codec);
            party.timestamp += FRAME_SAMPLES as u32;
        }
        let now = rig.now();
        rig.mixers[0].run_due_ticks(now, |_| {});
        let mut payload = [ulaw_for(30000); FRAME_SAMPLES];
        rig.mixers[0].mix_into_payload(parties[3].id, &mut payload, codec);
        assert!(payload.iter().all(|b| *b == g711::linear_to_ulaw(i16::MAX)));
    }

    #[test]
    fn two_hundred_fifty_members_each_hear_the_other_249() {
        let mut rig = Rig::new(2);
        let codec = PayloadCodec::Pcmu;
        let mut parties: Vec<Party> = (0..MAX_MIX_MEMBERS)
            .map(|i| rig.join(i % 2, i as u64 + 1, 250, MemberFlags::default(), codec))
            .collect();
        let now = rig.now();
        assert_eq!(
            rig.mixers[0].join(SessionId(999), MixId(250), MemberFlags::default(), 20, now),
            Err(MixError::Full)
        );
        // Small distinct levels so nothing clips: member i speaks at about 4·i.
        let signals: Vec<Vec<u8>> = (0..MAX_MIX_MEMBERS)
            .map(|i| constant(codec, (i as i16) * 4 - 500))
            .collect();
        let v: Vec<i32> = signals.iter().map(|s| decoded(codec, s)).collect();
        let sum: i32 = v.iter().sum();
        let heard = settle(&mut rig, &mut parties, &signals);
        for (i, frame) in heard.iter().enumerate() {
            let expected = expect_heard(codec, sum - v[i]);
            assert!(
                frame.iter().all(|s| *s == expected),
                "member {i}: {} vs {expected}",
                frame[0]
            );
        }
        // Everybody leaves: the mix is gone from the bus.
        for p in &parties {
            rig.mixers[p.worker].leave(p.id).unwrap();
        }
        assert_eq!(rig.bus.mixes(), 0);
        assert_eq!(rig.mixers[0].next_tick_at(), None);
    }

    #[test]
    fn speaking_starts_after_onset_and_ends_after_the_hangover() {
        let mut rig = Rig::new(1);
        let codec = PayloadCodec::Pcmu;
        let mut talker = rig.join(0, 1, 9, MemberFlags::default(), codec);
        let mut speech = Vec::new();
        for i in 0..FRAME_SAMPLES {
            speech.push(ulaw_for(if i % 2 == 0 { 3000 } else { -3000 }));
        }
        let quiet = constant(codec, 40);
        let mut script = vec![quiet.clone(); 5];
        script.extend(vec![speech.clone(); 10]);
        script.push(quiet.clone()); // a short pause is not the end
        script.extend(vec![speech.clone(); 5]);
        script.extend(vec![quiet.clone(); 40]);
        let mut speaking_at = Vec::new();
        for (n, payload) in script.into_iter().enumerate() {
            rig.step(&mut [(&mut talker, payload)]);
            for (
                _,
                MixEvent::Speaking {
                    speaking,
                    session,
                    mix,
                },
            ) in rig.events.drain(..)
            {
                assert_eq!((session, mix), (SessionId(1), MixId(9)));
                speaking_at.push((n, speaking));
            }
        }
        assert_eq!(speaking_at.len(), 2, "{speaking_at:?}");
        assert!(speaking_at[0].1 && !speaking_at[1].1);
        // Speech played from tick ~7 for 16 frames; the end comes 15 quiet frames later.
        let talk = speaking_at[1].0 - speaking_at[0].0;
        assert!((16 + 13..=16 + 15).contains(&talk), "{speaking_at:?}");
    }

    #[test]
    fn output_prefill_covers_every_ptime() {
        // Simulate a tick-aligned grid: each tick pushes a frame, then packets due at that
        // instant take theirs; no packet may run short.
        for ptime in [10u16, 20, 30, 40, 60, 120] {
            let mut queue = OutputQueue::new(ptime);
            let packet = usize::from(ptime) * 8;
            let mut next_send = 0usize; // in ms since the first tick
            let mut short = 0;
            for tick in 0..300usize {
                let t = tick * 20;
                queue.push(&[1; FRAME_SAMPLES]);
                while next_send <= t {
                    let mut out = vec![0i16; packet];
                    short += queue.take(&mut out);
                    next_send += usize::from(ptime);
                }
                // The sends between this tick and the next.
                while next_send < t + 20 {
                    let mut out = vec![0i16; packet];
                    short += queue.take(&mut out);
                    next_send += usize::from(ptime);
                }
            }
            assert_eq!(short, 0, "ptime {ptime}");
            assert!(queue.len <= queue.limit);
        }
    }

    #[test]
    fn a_freed_slot_does_not_leak_old_partials_into_a_new_mix() {
        let bus = MixBus::new(1, 1, Instant::now());
        let slot = bus.join(MixId(1)).unwrap();
        bus.publish(slot, 0, 10, &[5; FRAME_SAMPLES]);
        bus.leave(MixId(1), slot);
        assert_eq!(bus.join(MixId(2)), Ok(slot));
        let (mut total, mut scratch) = ([0; FRAME_SAMPLES], [0; FRAME_SAMPLES]);
        assert!(!bus.add_partial(slot, 0, 10, &mut total, &mut scratch));
        assert_eq!(bus.join(MixId(3)), Err(MixError::TableFull));
    }

    #[test]
    fn a_rebased_session_sends_on_the_ticks_with_a_true_timestamp() {
        use crate::rtp::parse_rtp;
        use crate::session::{Session, SessionParams, MAX_PACKET_LEN};
        let bus = MixBus::new(1, 1, Instant::now());
        let t0 = bus.tick_at(10);
        let params = SessionParams {
            remote: "192.0.2.1:4000".parse().unwrap(),
            codec: PayloadCodec::Pcmu,
            dtmf_payload_type: None,
            ptime_ms: 20,
            ssrc: 1,
            initial_sequence: 1,
            initial_timestamp: 1000,
        };
        // Not sending yet: the stream starts on the tick.
        let mut idle = Session::new(params, t0).unwrap();
        idle.rebase_grid(bus.tick_at(11));
        assert!(idle.is_sending());
        assert_eq!(idle.next_send_at(), bus.tick_at(11));
        // Sending on its own grid, 7 ms off the ticks: the next packet moves to the tick and
        // its timestamp moves by the same 7 ms.
        let mut s = Session::new(params, t0).unwrap();
        s.start_talkspurt(t0 + Duration::from_millis(13));
        let mut buf = [0u8; MAX_PACKET_LEN];
        let first = s
            .poll_transmit(t0 + Duration::from_millis(13), &mut buf, |_| {})
            .unwrap();
        let ts0 = parse_rtp(&buf[..first.len]).unwrap().timestamp;
        s.rebase_grid(bus.tick_at(12));
        assert_eq!(s.next_send_at(), bus.tick_at(12));
        assert!(s
            .poll_transmit(bus.tick_at(12) - Duration::from_micros(1), &mut buf, |_| {})
            .is_none());
        let next = s.poll_transmit(bus.tick_at(12), &mut buf, |_| {}).unwrap();
        assert_eq!(
            parse_rtp(&buf[..next.len])
                .unwrap()
                .timestamp
                .wrapping_sub(ts0),
            160 + 56
        );
        assert_eq!(s.next_send_at(), bus.tick_at(13));
    }

    #[test]
    fn member_state_stays_small() {
        // Jitter ring (4 KiB), output queue (4 KiB), two input frames and counters.
        let member = std::mem::size_of::<MixMember>();
        assert!(member <= 10 * 1024, "MixMember is {member} bytes");
        assert!(std::mem::size_of::<Option<MemberId>>() <= 16);
    }
}
