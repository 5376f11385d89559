//! The trunk channel pool shared by the driver's tasks: a [`ChannelTicket`] per outbound
//! call through a trunk, awaited with a notification (no polling), given back when dropped.
//!
//! The accounting itself is [`ChannelPool`]'s; this module only wakes the calls a change
//! lets through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::channel_pool::{ChannelPool, Place};

/// Handle to the pool; cheap to clone.
#[derive(Clone, Default)]
pub struct TrunkChannels {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Shared {
    pool: ChannelPool,
    /// The wake-up of each call holding a ticket, by CallSid.
    wakers: HashMap<String, Arc<Notify>>,
}

impl Shared {
    fn wake(&self, calls: &[String]) {
        for call in calls {
            if let Some(waker) = self.wakers.get(call) {
                waker.notify_one();
            }
        }
    }
}

/// The trunk a ticket's call waited for is gone: route the call again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the trunk was removed while the call waited for one of its channels")]
pub struct TrunkRemoved;

/// A call's place on a trunk: waiting, then holding a channel. Dropping it gives the channel
/// back (or leaves the line) and lets the next call through.
pub struct ChannelTicket {
    channels: TrunkChannels,
    trunk: String,
    call: String,
    waker: Arc<Notify>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TrunkChannels {
    pub fn new() -> TrunkChannels {
        TrunkChannels::default()
    }

    /// `call` joins the line for a channel of `trunk` (SID), whose `max_channels` is `limit`.
    pub fn join(&self, trunk: &str, limit: u32, call: &str) -> ChannelTicket {
        let waker = Arc::new(Notify::new());
        let mut shared = lock(&self.shared);
        shared.wakers.insert(call.to_string(), waker.clone());
        let granted = shared.pool.join(trunk, limit, call);
        shared.wake(&granted);
        ChannelTicket {
            channels: self.clone(),
            trunk: trunk.to_string(),
            call: call.to_string(),
            waker,
        }
    }

    /// The trunk's `max_channels` changed (admin API).
    pub fn set_limit(&self, trunk: &str, limit: u32) {
        let mut shared = lock(&self.shared);
        let granted = shared.pool.set_limit(trunk, limit);
        shared.wake(&granted);
    }

    /// The trunk was removed (admin API): its waiting calls are told to route again.
    pub fn remove_trunk(&self, trunk: &str) {
        let mut shared = lock(&self.shared);
        let evicted = shared.pool.remove_trunk(trunk);
        shared.wake(&evicted);
    }

    /// Channels of `trunk` in use and calls waiting for one.
    pub fn usage(&self, trunk: &str) -> (usize, usize) {
        let shared = lock(&self.shared);
        (shared.pool.in_use(trunk), shared.pool.waiting(trunk))
    }

    fn place(&self, trunk: &str, call: &str) -> Place {
        lock(&self.shared).pool.place(trunk, call)
    }
}

impl ChannelTicket {
    /// SID of the trunk the ticket is for.
    pub fn trunk(&self) -> &str {
        &self.trunk
    }

    /// Waits until the call holds a channel. Cancel-safe: dropping the future keeps the
    /// call's place; dropping the ticket gives it up.
    pub async fn granted(&self) -> Result<(), TrunkRemoved> {
        loop {
            match self.channels.place(&self.trunk, &self.call) {
                Place::Granted => return Ok(()),
                Place::Absent => return Err(TrunkRemoved),
                // A grant between the check and the wait leaves a permit: no lost wake-up.
                Place::Waiting { .. } => self.waker.notified().await,
            }
        }
    }
}

impl Drop for ChannelTicket {
    fn drop(&mut self) {
        let mut shared = lock(&self.channels.shared);
        if shared
            .wakers
            .get(&self.call)
            .is_some_and(|w| Arc::ptr_eq(w, &self.waker))
        {
            shared.wakers.remove(&self.call);
        }
        let granted = shared.pool.leave(&self.trunk, &self.call);
        shared.wake(&granted);
    }
}

impl std::fmt::Debug for ChannelTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelTicket")
            .field("trunk", &self.trunk)
            .field("call", &self.call)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn still_waiting(ticket: &ChannelTicket) -> bool {
        tokio::time::timeout(Duration::from_millis(50), ticket.granted())
            .await
            .is_err()
    }

    #[tokio::test]
    async fn the_next_call_is_woken_when_a_channel_is_given_back() {
        let channels = TrunkChannels::new();
        let first = channels.join("TK1", 1, "CA1");
        assert_eq!(first.granted().await, Ok(()));
        let second = channels.join("TK1", 1, "CA2");
        let third = channels.join("TK1", 1, "CA3");
        assert!(still_waiting(&second).await);
        let waiter = tokio::spawn(async move {
            second.granted().await.unwrap();
            second
        });
        tokio::task::yield_now().await;
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(
            still_waiting(&third).await,
            "one channel: CA3 waits for CA2"
        );
        assert_eq!(channels.usage("TK1"), (1, 1));
        drop(second);
        assert_eq!(third.granted().await, Ok(()));
    }

    #[tokio::test]
    async fn a_dropped_waiting_ticket_frees_its_place_and_a_limit_raise_wakes() {
        let channels = TrunkChannels::new();
        let first = channels.join("TK1", 1, "CA1");
        let second = channels.join("TK1", 1, "CA2");
        let third = channels.join("TK1", 1, "CA3");
        drop(second);
        assert_eq!(channels.usage("TK1"), (1, 1));
        channels.set_limit("TK1", 2);
        assert_eq!(third.granted().await, Ok(()));
        drop(first);
        drop(third);
        assert_eq!(channels.usage("TK1"), (0, 0));
    }

    #[tokio::test]
    async fn removing_the_trunk_tells_waiting_calls() {
        let channels = TrunkChannels::new();
        let _first = channels.join("TK1", 1, "CA1");
        let second = channels.join("TK1", 1, "CA2");
        channels.remove_trunk("TK1");
        assert_eq!(second.granted().await, Err(TrunkRemoved));
    }
}
