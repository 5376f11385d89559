//! The control side of the media plane: pushes commands into the shmq command rings and
//! routes events from the event rings to the calls that own the sessions.
//!
//! A media process attaches (and may die and be replaced); `attached` takes the ring
//! endpoints and starts one event reader per worker, woken by the worker's eventfd doorbell;
//! `lost` ends every session with [`Input::MediaLost`]. Events that outlive a call's task
//! go to sinks beside the calls: `RecordingDone` to the recordings, `QosReport` and
//! `SessionClosed` to the media-quality keeper.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use shmq::{Command, DoorbellSet, Event, Producer, Segment, SessionId};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::call::Input;

/// Why a command could not be delivered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaPlaneError {
    #[error("no media process is attached")]
    NotAttached,
    #[error("the command ring of media worker {0} is full")]
    RingFull(usize),
    #[error("shared memory error: {0}")]
    Shmq(String),
}

/// Handle to the media plane; cheap to clone.
#[derive(Clone)]
pub struct MediaPlane {
    inner: Arc<Inner>,
}

struct Inner {
    segment: Arc<Segment>,
    attachment: Mutex<Option<Attached>>,
    sessions: Mutex<HashMap<SessionId, UnboundedSender<Input>>>,
    /// Whether a media process is attached, for tasks that wait for one.
    attached_state: watch::Sender<bool>,
    /// Where `RecordingDone` events go: a recording outlives its call's session.
    recordings: Mutex<Option<UnboundedSender<Event>>>,
    /// Where `QosReport` and `SessionClosed` events go: a session's final report comes
    /// after its call's task ended.
    qos: Mutex<Option<UnboundedSender<Event>>>,
}

struct Attached {
    producers: Vec<Producer>,
    doorbells: Arc<DoorbellSet>,
    readers: Vec<JoinHandle<()>>,
}

/// One worker's event doorbell, as a pollable fd.
struct EventBell {
    doorbells: Arc<DoorbellSet>,
    worker: usize,
}

impl AsRawFd for EventBell {
    fn as_raw_fd(&self) -> RawFd {
        self.doorbells.events[self.worker].as_raw_fd()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MediaPlane {
    pub fn new(segment: Arc<Segment>) -> MediaPlane {
        MediaPlane {
            inner: Arc::new(Inner {
                segment,
                attachment: Mutex::new(None),
                sessions: Mutex::new(HashMap::new()),
                attached_state: watch::Sender::new(false),
                recordings: Mutex::new(None),
                qos: Mutex::new(None),
            }),
        }
    }

    /// Sends every `RecordingDone` to `sink` (whoever stores and reports recordings).
    pub fn set_recording_sink(&self, sink: UnboundedSender<Event>) {
        *lock(&self.inner.recordings) = Some(sink);
    }

    /// Sends every `QosReport` and `SessionClosed` to `sink` (whoever keeps media quality).
    pub fn set_qos_sink(&self, sink: UnboundedSender<Event>) {
        *lock(&self.inner.qos) = Some(sink);
    }

    pub fn segment(&self) -> &Arc<Segment> {
        &self.inner.segment
    }

    /// A media process attached with these doorbells: take the ring endpoints and start
    /// reading events. Must run inside a tokio runtime.
    pub fn attached(&self, doorbells: DoorbellSet) -> Result<(), MediaPlaneError> {
        let segment = &self.inner.segment;
        let doorbells = Arc::new(doorbells);
        let mut producers = Vec::with_capacity(segment.workers());
        let mut readers = Vec::with_capacity(segment.workers());
        for worker in 0..segment.workers() {
            producers.push(
                segment
                    .command_producer(worker)
                    .map_err(|e| MediaPlaneError::Shmq(e.to_string()))?,
            );
            let consumer = segment
                .event_consumer(worker)
                .map_err(|e| MediaPlaneError::Shmq(e.to_string()))?;
            let bell = EventBell {
                doorbells: doorbells.clone(),
                worker,
            };
            // SAFETY: the eventfd is owned by `doorbells`, which the EventBell keeps alive
            // (Arc) for as long as the AsyncFd exists; nothing closes or replaces it meanwhile.
            let bell = unsafe { AsyncFd::register(bell) }
                .map_err(|e| MediaPlaneError::Shmq(e.to_string()))?;
            let plane = self.clone();
            readers.push(tokio::spawn(async move {
                plane.read_events(bell, consumer).await;
            }));
        }
        *lock(&self.inner.attachment) = Some(Attached {
            producers,
            doorbells,
            readers,
        });
        self.inner.attached_state.send_replace(true);
        Ok(())
    }

    /// The media process is gone: stop the readers (and wait until they have stopped, so
    /// none can touch the rings again), end every session's call. The caller resets the
    /// segment before the next process attaches.
    pub async fn lost(&self) {
        let attached = lock(&self.inner.attachment).take();
        self.inner.attached_state.send_replace(false);
        if let Some(attached) = attached {
            for reader in &attached.readers {
                reader.abort();
            }
            for reader in attached.readers {
                let _ = reader.await;
            }
        }
        let sessions: Vec<_> = lock(&self.inner.sessions).drain().collect();
        for (_, call) in sessions {
            let _ = call.send(Input::MediaLost);
        }
    }

    pub fn is_attached(&self) -> bool {
        lock(&self.inner.attachment).is_some()
    }

    /// Returns once a media process is attached (at once if one is).
    pub async fn wait_attached(&self) {
        let mut state = self.inner.attached_state.subscribe();
        // The sender lives as long as `self`: this cannot fail while we wait.
        let _ = state.wait_for(|attached| *attached).await;
    }

    /// Routes the session's events to `call`.
    pub fn register(&self, session: SessionId, call: UnboundedSender<Input>) {
        lock(&self.inner.sessions).insert(session, call);
    }

    pub fn unregister(&self, session: SessionId) {
        lock(&self.inner.sessions).remove(&session);
    }

    /// Pushes a command to the worker that owns its session and rings its doorbell.
    pub fn send(&self, command: &Command) -> Result<(), MediaPlaneError> {
        let mut guard = lock(&self.inner.attachment);
        let attached = guard.as_mut().ok_or(MediaPlaneError::NotAttached)?;
        let worker = worker_of(command.session(), attached.producers.len());
        let producer = attached
            .producers
            .get_mut(worker)
            .ok_or(MediaPlaneError::NotAttached)?;
        producer
            .push(&command.encode())
            .map_err(|_| MediaPlaneError::RingFull(worker))?;
        attached.doorbells.commands[worker].ring();
        Ok(())
    }

    async fn read_events(&self, bell: AsyncFd<EventBell>, mut consumer: shmq::Consumer) {
        loop {
            // Drain first: events may have arrived before we started waiting.
            while let Some(record) = consumer.pop() {
                match Event::decode(&record) {
                    Ok(event) => self.dispatch(event),
                    Err(e) => tracing::warn!(error = %e, "undecodable media event"),
                }
            }
            let mut guard = match bell.readable().await {
                Ok(guard) => guard,
                Err(e) => {
                    tracing::error!(error = %e, "media event doorbell failed");
                    return;
                }
            };
            bell.get_ref().doorbells.events[bell.get_ref().worker].drain();
            guard.clear_ready();
        }
    }

    fn dispatch(&self, event: Event) {
        let session = event.session();
        let input = match event {
            Event::SessionOpened { local_port, .. } => Input::SessionOpened { local_port },
            Event::SessionFailed { .. } => Input::SessionFailed,
            Event::PlayDone { play_id, .. } => Input::PlayDone { play_id },
            Event::PlayFailed { play_id, .. } => Input::PlayFailed { play_id },
            Event::Dtmf { digit, .. } => Input::Dtmf {
                digit: char::from(digit),
            },
            Event::Bridged { .. } => Input::Bridged,
            Event::Unbridged { .. } => Input::Unbridged,
            Event::SessionUpdated { .. } => return,
            Event::MixJoined { .. } | Event::MixLeft { .. } => return,
            Event::Speaking { speaking, .. } => Input::Speaking { speaking },
            Event::QosReport { .. } | Event::SessionClosed { .. } => {
                if let Some(sink) = lock(&self.inner.qos).as_ref() {
                    let _ = sink.send(event);
                }
                return;
            }
            Event::RtpTimeout { idle_ms, .. } => {
                tracing::warn!(session = session.0, idle_ms, "no RTP received: RTP timeout");
                Input::RtpTimeout { idle_ms }
            }
            Event::RecordingDone { .. } => {
                match lock(&self.inner.recordings).as_ref() {
                    Some(sink) => {
                        let _ = sink.send(event);
                    }
                    None => tracing::warn!(?event, "recording finished with nobody to report to"),
                }
                return;
            }
        };
        if let Some(call) = lock(&self.inner.sessions).get(&session) {
            let _ = call.send(input);
        }
    }
}

/// The worker that owns a session: sessions are spread by id.
pub fn worker_of(session: SessionId, workers: usize) -> usize {
    if workers == 0 {
        0
    } else {
        (session.0 % workers as u64) as usize
    }
}

/// A session id owned by the same worker as `peer` (the two legs of a bridge must be):
/// `random` halved (session ids stay below 2^63), then moved to the nearest such id.
pub fn session_beside(peer: SessionId, workers: usize, random: u64) -> SessionId {
    let workers = workers.max(1) as u64;
    let random = random >> 1;
    let base = random - random % workers;
    let mut id = base + peer.0 % workers;
    if id >= 1 << 63 {
        id -= workers;
    }
    SessionId(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_beside_a_peer_lands_on_its_worker() {
        for workers in [1usize, 2, 3, 4, 7] {
            for peer in [0u64, 1, 5, 12345, (1 << 63) - 1] {
                for random in [0u64, 1, 99, u64::MAX, u64::MAX - 3] {
                    let id = session_beside(SessionId(peer), workers, random);
                    assert_eq!(
                        worker_of(id, workers),
                        worker_of(SessionId(peer), workers),
                        "{workers} {peer} {random}"
                    );
                    assert!(id.0 < 1 << 63);
                }
            }
        }
        assert_ne!(
            session_beside(SessionId(4), 2, 1000),
            session_beside(SessionId(4), 2, 2000)
        );
    }
}
