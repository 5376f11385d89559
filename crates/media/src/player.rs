//! The per-session play queue: media items, timed silences and RFC 4733 digit strings,
//! played in order into outgoing frames.
//!
//! Media and silence items are concatenated at sample granularity: when one ends in the
//! middle of a frame the next one starts in the same frame, so a silence of `duration_ms`
//! lasts exactly `8 * duration_ms` samples. A digit string works in whole packets
//! ([`Player::next_digit_packet`]): it starts on the frame after the item before it ends
//! (the rest of that frame is silence). When the queue is empty the frame is padded with the idle
//! silence byte so the RTP stream stays alive. The queue has a fixed capacity chosen at
//! creation; filling a frame never allocates.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use crate::digits::{ActiveEvent, DigitPacket, DigitSender};

/// The bytes of a telephony-ready μ-law file (8 kHz, mono, no header).
pub enum MediaData {
    /// A cache file mapped read-only (the normal case).
    Mapped(memmap2::Mmap),
    /// Bytes owned in memory (tests, benchmarks, generated prompts).
    Shared(Arc<[u8]>),
}

impl MediaData {
    /// Maps a cache file, pre-faulting its pages so playback never waits on the disk.
    pub fn map_file(path: &Path) -> std::io::Result<MediaData> {
        let file = std::fs::File::open(path)?;
        // SAFETY: cache files are written once under their content hash and never
        // modified in place; a concurrent truncation would be an operator error.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
        Ok(MediaData::Mapped(map))
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            MediaData::Mapped(map) => map,
            MediaData::Shared(bytes) => bytes,
        }
    }
}

impl std::fmt::Debug for MediaData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaData({} bytes)", self.as_bytes().len())
    }
}

/// How queued μ-law is turned into the session's payload bytes.
#[derive(Debug, Clone, Copy)]
pub struct PayloadEncoding {
    /// μ-law → payload byte table (`None`: μ-law is sent as is).
    pub transcode: Option<&'static [u8; 256]>,
    /// The payload byte for digital silence.
    pub silence: u8,
}

/// The play queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("play queue full")]
pub struct QueueFull;

/// A play item's end, as reported by [`Player::fill`] and [`Player::stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemEnded {
    pub play_id: u32,
    pub interrupted: bool,
}

#[derive(Debug)]
enum ItemSource {
    Media {
        data: MediaData,
        position: usize,
        /// Passes left including the current one; `None` plays until stopped.
        passes_left: Option<u16>,
    },
    Silence {
        samples_left: u64,
    },
    Digits(DigitSender),
}

#[derive(Debug)]
struct PlayItem {
    play_id: u32,
    started: bool,
    source: ItemSource,
}

/// A fixed-capacity queue of media and silence items.
#[derive(Debug)]
pub struct Player {
    queue: VecDeque<PlayItem>,
    capacity: usize,
}

impl Player {
    pub fn with_capacity(capacity: usize) -> Player {
        Player {
            queue: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Queues a media item; `loops == 0` plays it until stopped.
    pub fn enqueue_media(
        &mut self,
        play_id: u32,
        data: MediaData,
        loops: u16,
    ) -> Result<(), QueueFull> {
        self.enqueue(PlayItem {
            play_id,
            started: false,
            source: ItemSource::Media {
                data,
                position: 0,
                passes_left: (loops != 0).then_some(loops),
            },
        })
    }

    /// Queues a silence lasting exactly `samples` samples.
    pub fn enqueue_silence(&mut self, play_id: u32, samples: u64) -> Result<(), QueueFull> {
        self.enqueue(PlayItem {
            play_id,
            started: false,
            source: ItemSource::Silence {
                samples_left: samples,
            },
        })
    }

    /// Queues a digit string (sent packet by packet through [`Player::next_digit_packet`]).
    pub fn enqueue_digits(&mut self, play_id: u32, digits: DigitSender) -> Result<(), QueueFull> {
        self.enqueue(PlayItem {
            play_id,
            started: false,
            source: ItemSource::Digits(digits),
        })
    }

    /// The telephone event the current item has on the wire (started, not fully ended).
    pub fn active_event(&self) -> Option<ActiveEvent> {
        match &self.queue.front()?.source {
            ItemSource::Digits(sender) => sender.active_event(),
            _ => None,
        }
    }

    /// If the current item is a digit string, advances it by one packet and returns what
    /// to send; `None` means the frame is audio (call [`Player::fill`]). Digit strings with
    /// nothing left are removed (and reported) first; an item is reported on the packet
    /// that ends it.
    pub fn next_digit_packet(
        &mut self,
        samples_per_packet: u32,
        timestamp: u32,
        mut on_end: impl FnMut(ItemEnded),
    ) -> Option<DigitPacket> {
        loop {
            let item = self.queue.front_mut()?;
            let ItemSource::Digits(sender) = &mut item.source else {
                return None;
            };
            item.started = true;
            let packet = sender.next_packet(samples_per_packet, timestamp);
            let finished = sender.is_finished();
            let play_id = item.play_id;
            if finished {
                self.queue.pop_front();
                on_end(ItemEnded {
                    play_id,
                    interrupted: false,
                });
            }
            if packet.is_some() {
                return packet;
            }
        }
    }

    fn enqueue(&mut self, item: PlayItem) -> Result<(), QueueFull> {
        if self.queue.len() >= self.capacity {
            return Err(QueueFull);
        }
        self.queue.push_back(item);
        Ok(())
    }

    /// Number of queued items, including the one playing.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Removes every item, current first, reporting each as interrupted.
    pub fn stop(&mut self, mut on_end: impl FnMut(ItemEnded)) {
        while let Some(item) = self.queue.pop_front() {
            on_end(ItemEnded {
                play_id: item.play_id,
                interrupted: true,
            });
        }
    }

    /// Fills `out` with the next samples, reporting items that end in this frame.
    /// Returns true if a media item started in this frame (the RTP marker bit).
    pub fn fill(
        &mut self,
        out: &mut [u8],
        encoding: PayloadEncoding,
        mut on_end: impl FnMut(ItemEnded),
    ) -> bool {
        let mut media_started = false;
        let mut filled = 0;
        while filled < out.len() {
            let Some(item) = self.queue.front_mut() else {
                break;
            };
            if matches!(item.source, ItemSource::Digits(_)) {
                // Digit strings start on a packet boundary: next frame.
                break;
            }
            let rest = &mut out[filled..];
            let mut finished = false;
            match &mut item.source {
                ItemSource::Media {
                    data,
                    position,
                    passes_left,
                } => {
                    let bytes = data.as_bytes();
                    if !item.started && !bytes.is_empty() {
                        media_started = true;
                    }
                    let source = bytes.get(*position..).unwrap_or_default();
                    let n = source.len().min(rest.len());
                    let (src, dst) = (&source[..n], &mut rest[..n]);
                    match encoding.transcode {
                        Some(table) => {
                            for (o, i) in dst.iter_mut().zip(src) {
                                *o = table[usize::from(*i)];
                            }
                        }
                        None => dst.copy_from_slice(src),
                    }
                    filled += n;
                    *position += n;
                    if *position >= bytes.len() {
                        *position = 0;
                        match passes_left {
                            // An empty file can't loop: it ends at once.
                            _ if bytes.is_empty() => finished = true,
                            None => {}
                            Some(left) if *left <= 1 => finished = true,
                            Some(left) => *left -= 1,
                        }
                    }
                }
                ItemSource::Silence { samples_left } => {
                    let n = usize::try_from(*samples_left)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    rest[..n].fill(encoding.silence);
                    filled += n;
                    *samples_left -= n as u64;
                    finished = *samples_left == 0;
                }
                ItemSource::Digits(_) => break,
            }
            item.started = true;
            if finished {
                let play_id = item.play_id;
                self.queue.pop_front();
                on_end(ItemEnded {
                    play_id,
                    interrupted: false,
                });
            }
        }
        out[filled..].fill(encoding.silence);
        media_started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ULAW: PayloadEncoding = PayloadEncoding {
        transcode: None,
        silence: 0xFF,
    };

    fn bytes(v: &[u8]) -> MediaData {
        MediaData::Shared(Arc::from(v))
    }

    fn fill(player: &mut Player, len: usize) -> (Vec<u8>, bool, Vec<ItemEnded>) {
        let mut out = vec![0u8; len];
        let mut ended = Vec::new();
        let marker = player.fill(&mut out, ULAW, |e| ended.push(e));
        (out, marker, ended)
    }

    #[test]
    fn idle_player_sends_silence() {
        let mut p = Player::with_capacity(4);
        let (out, marker, ended) = fill(&mut p, 8);
        assert_eq!(out, vec![0xFF; 8]);
        assert!(!marker);
        assert!(ended.is_empty());
    }

    #[test]
    fn items_are_concatenated_sample_exactly() {
        let mut p = Player::with_capacity(4);
        p.enqueue_media(1, bytes(&[1, 2, 3]), 2).unwrap();
        p.enqueue_silence(2, 3).unwrap();
        p.enqueue_media(3, bytes(&[9]), 1).unwrap();
        let (out, marker, ended) = fill(&mut p, 4);
        assert_eq!(out, vec![1, 2, 3, 1]);
        assert!(marker);
        assert!(ended.is_empty());
        let (out, marker, ended) = fill(&mut p, 4);
        assert_eq!(out, vec![2, 3, 0xFF, 0xFF]);
        assert!(!marker);
        assert_eq!(
            ended,
            vec![ItemEnded {
                play_id: 1,
                interrupted: false
            }]
        );
        let (out, marker, ended) = fill(&mut p, 4);
        assert_eq!(out, vec![0xFF, 9, 0xFF, 0xFF]);
        assert!(marker, "a new media item starts in this frame");
        assert_eq!(ended.iter().map(|e| e.play_id).collect::<Vec<_>>(), [2, 3]);
        assert!(p.is_empty());
    }

    #[test]
    fn zero_loops_plays_until_stopped() {
        let mut p = Player::with_capacity(4);
        p.enqueue_media(7, bytes(&[5, 6]), 0).unwrap();
        p.enqueue_media(8, bytes(&[1]), 1).unwrap();
        for _ in 0..100 {
            let (out, _, ended) = fill(&mut p, 3);
            assert!(out.iter().all(|b| *b == 5 || *b == 6));
            assert!(ended.is_empty());
        }
        let mut ended = Vec::new();
        p.stop(|e| ended.push(e));
        assert_eq!(
            ended,
            vec![
                ItemEnded {
                    play_id: 7,
                    interrupted: true
                },
                ItemEnded {
                    play_id: 8,
                    interrupted: true
                }
            ]
        );
        assert!(p.is_empty());
    }

    #[test]
    fn empty_media_and_zero_silence_end_immediately() {
        let mut p = Player::with_capacity(4);
        p.enqueue_media(1, bytes(&[]), 0).unwrap();
        p.enqueue_silence(2, 0).unwrap();
        let (out, marker, ended) = fill(&mut p, 2);
        assert_eq!(out, vec![0xFF, 0xFF]);
        assert!(!marker);
        assert_eq!(ended.len(), 2);
    }

    #[test]
    fn queue_capacity_is_enforced() {
        let mut p = Player::with_capacity(1);
        p.enqueue_silence(1, 10).unwrap();
        assert_eq!(p.enqueue_silence(2, 10), Err(QueueFull));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn transcodes_through_table() {
        let table = crate::g711::ulaw_to_alaw_table();
        let mut p = Player::with_capacity(1);
        let src: Vec<u8> = (0..=255).collect();
        p.enqueue_media(1, bytes(&src), 1).unwrap();
        let mut out = vec![0u8; 256];
        let alaw = PayloadEncoding {
            transcode: Some(table),
            silence: crate::g711::ALAW_SILENCE,
        };
        p.fill(&mut out, alaw, |_| {});
        for (i, b) in out.iter().enumerate() {
            assert_eq!(*b, table[i]);
        }
    }

    #[test]
    fn maps_real_file() {
        let dir = std::env::temp_dir().join(format!("media-player-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.ulaw");
        std::fs::write(&path, [1u8, 2, 3]).unwrap();
        let data = MediaData::map_file(&path).unwrap();
        assert_eq!(data.as_bytes(), &[1, 2, 3]);
        let empty = dir.join("empty.ulaw");
        std::fs::write(&empty, []).unwrap();
        assert_eq!(
            MediaData::map_file(&empty).unwrap().as_bytes(),
            &[] as &[u8]
        );
        assert!(MediaData::map_file(&dir.join("missing.ulaw")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
