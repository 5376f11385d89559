//! Trunk channels: a trunk carries at most `max_channels` outbound calls at once, and the
//! calls beyond that wait for one of its channels, first come first served.
//!
//! Pure bookkeeping (no I/O, no clock, no locks): each change returns the calls it lets
//! through, and [`crate::channels`] wakes them. A call holds its channel from the moment it
//! is let through (it is then dialled) until it leaves, whatever the call's outcome.
//!
//! This is the one place where trunk capacity is accounted for: sharing a trunk's channels
//! fairly between accounts (per-account queues served in turn) belongs here too.

use std::collections::{HashMap, VecDeque};

/// Channels in use and calls waiting, per trunk (keyed by trunk SID), calls by CallSid.
#[derive(Debug, Default)]
pub struct ChannelPool {
    trunks: HashMap<String, TrunkChannels>,
}

#[derive(Debug)]
struct TrunkChannels {
    /// The trunk's `max_channels`.
    limit: u32,
    /// Calls holding a channel.
    busy: Vec<String>,
    /// Calls waiting for a channel, oldest first.
    waiting: VecDeque<String>,
}

/// Where a call stands in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// It holds a channel of the trunk.
    Granted,
    /// It waits; `ahead` calls are before it in the trunk's line.
    Waiting { ahead: usize },
    /// It is not in the trunk's pool (it left, or the trunk was removed).
    Absent,
}

impl ChannelPool {
    pub fn new() -> ChannelPool {
        ChannelPool::default()
    }

    /// `call` asks for a channel of `trunk`, whose limit is `limit` (the trunk's current
    /// `max_channels`, which also updates the pool's). It joins the end of the trunk's line.
    /// Returns the calls granted a channel by this change (`call` itself when one is free).
    pub fn join(&mut self, trunk: &str, limit: u32, call: &str) -> Vec<String> {
        let channels = self
            .trunks
            .entry(trunk.to_string())
            .or_insert_with(|| TrunkChannels {
                limit,
                busy: Vec::new(),
                waiting: VecDeque::new(),
            });
        channels.limit = limit;
        if !channels.busy.iter().any(|c| c == call) && !channels.waiting.iter().any(|c| c == call) {
            channels.waiting.push_back(call.to_string());
        }
        self.dispatch(trunk)
    }

    /// `call` leaves `trunk`: it gives its channel back (its call ended) or stops waiting
    /// (canceled). Returns the calls granted a channel by this change.
    pub fn leave(&mut self, trunk: &str, call: &str) -> Vec<String> {
        let Some(channels) = self.trunks.get_mut(trunk) else {
            return Vec::new();
        };
        channels.busy.retain(|c| c != call);
        channels.waiting.retain(|c| c != call);
        self.dispatch(trunk)
    }

    /// The trunk's `max_channels` changed. A higher limit lets waiting calls through at
    /// once; a lower one keeps the calls in progress and grants nothing until fewer than
    /// `limit` channels are in use.
    pub fn set_limit(&mut self, trunk: &str, limit: u32) -> Vec<String> {
        match self.trunks.get_mut(trunk) {
            Some(channels) => {
                channels.limit = limit;
                self.dispatch(trunk)
            }
            // Nothing in use or waiting: the limit comes with the next call.
            None => Vec::new(),
        }
    }

    /// The trunk is gone: its waiting calls are returned (they must be routed again) and
    /// are no longer in its line; calls in progress simply finish.
    pub fn remove_trunk(&mut self, trunk: &str) -> Vec<String> {
        match self.trunks.remove(trunk) {
            Some(channels) => channels.waiting.into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Where `call` stands on `trunk`.
    pub fn place(&self, trunk: &str, call: &str) -> Place {
        let Some(channels) = self.trunks.get(trunk) else {
            return Place::Absent;
        };
        if channels.busy.iter().any(|c| c == call) {
            return Place::Granted;
        }
        match channels.waiting.iter().position(|c| c == call) {
            Some(ahead) => Place::Waiting { ahead },
            None => Place::Absent,
        }
    }

    /// Channels of `trunk` in use.
    pub fn in_use(&self, trunk: &str) -> usize {
        self.trunks.get(trunk).map_or(0, |c| c.busy.len())
    }

    /// Calls waiting for a channel of `trunk`.
    pub fn waiting(&self, trunk: &str) -> usize {
        self.trunks.get(trunk).map_or(0, |c| c.waiting.len())
    }

    /// Grants free channels to the oldest waiting calls; forgets an idle trunk.
    fn dispatch(&mut self, trunk: &str) -> Vec<String> {
        let Some(channels) = self.trunks.get_mut(trunk) else {
            return Vec::new();
        };
        let mut granted = Vec::new();
        while channels.busy.len() < channels.limit as usize {
            let Some(call) = channels.waiting.pop_front() else {
                break;
            };
            channels.busy.push(call.clone());
            granted.push(call);
        }
        if channels.busy.is_empty() && channels.waiting.is_empty() {
            self.trunks.remove(trunk);
        }
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(calls: &[&str]) -> Vec<String> {
        calls.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn calls_within_the_limit_are_granted_at_once() {
        let mut pool = ChannelPool::new();
        assert_eq!(pool.join("TK1", 2, "CA1"), names(&["CA1"]));
        assert_eq!(pool.join("TK1", 2, "CA2"), names(&["CA2"]));
        assert_eq!(pool.join("TK1", 2, "CA3"), names(&[]));
        assert_eq!(pool.in_use("TK1"), 2);
        assert_eq!(pool.waiting("TK1"), 1);
        assert_eq!(pool.place("TK1", "CA1"), Place::Granted);
        assert_eq!(pool.place("TK1", "CA3"), Place::Waiting { ahead: 0 });
    }

    #[test]
    fn released_channels_go_to_waiting_calls_in_arrival_order() {
        let mut pool = ChannelPool::new();
        pool.join("TK1", 1, "CA1");
        for call in ["CA2", "CA3", "CA4"] {
            assert!(pool.join("TK1", 1, call).is_empty());
        }
        assert_eq!(pool.place("TK1", "CA4"), Place::Waiting { ahead: 2 });
        assert_eq!(pool.leave("TK1", "CA1"), names(&["CA2"]));
        assert_eq!(pool.leave("TK1", "CA2"), names(&["CA3"]));
        assert_eq!(pool.leave("TK1", "CA3"), names(&["CA4"]));
        assert_eq!(pool.leave("TK1", "CA4"), names(&[]));
        assert_eq!(pool.in_use("TK1"), 0);
        assert_eq!(pool.place("TK1", "CA4"), Place::Absent);
    }

    #[test]
    fn a_canceled_waiting_call_leaves_the_line_without_taking_a_channel() {
        let mut pool = ChannelPool::new();
        pool.join("TK1", 1, "CA1");
        pool.join("TK1", 1, "CA2");
        pool.join("TK1", 1, "CA3");
        assert!(
            pool.leave("TK1", "CA2").is_empty(),
            "the channel is still in use"
        );
        assert_eq!(pool.place("TK1", "CA2"), Place::Absent);
        assert_eq!(pool.place("TK1", "CA3"), Place::Waiting { ahead: 0 });
        assert_eq!(pool.leave("TK1", "CA1"), names(&["CA3"]));
    }

    #[test]
    fn trunks_are_counted_apart() {
        let mut pool = ChannelPool::new();
        assert_eq!(pool.join("TK1", 1, "CA1"), names(&["CA1"]));
        assert_eq!(pool.join("TK2", 1, "CA2"), names(&["CA2"]));
        assert!(pool.join("TK1", 1, "CA3").is_empty());
        assert!(
            pool.leave("TK2", "CA2").is_empty(),
            "TK2's channel is not TK1's"
        );
        assert_eq!(pool.leave("TK1", "CA1"), names(&["CA3"]));
    }

    #[test]
    fn a_higher_limit_lets_waiting_calls_through_a_lower_one_holds_new_ones() {
        let mut pool = ChannelPool::new();
        pool.join("TK1", 1, "CA1");
        pool.join("TK1", 1, "CA2");
        pool.join("TK1", 1, "CA3");
        pool.join("TK1", 1, "CA4");
        assert_eq!(pool.set_limit("TK1", 3), names(&["CA2", "CA3"]));
        assert!(pool.set_limit("TK1", 1).is_empty());
        assert_eq!(pool.in_use("TK1"), 3, "calls in progress are never cut");
        assert!(pool.leave("TK1", "CA1").is_empty());
        assert!(pool.leave("TK1", "CA2").is_empty());
        assert_eq!(pool.leave("TK1", "CA3"), names(&["CA4"]));
        // The limit a joining call brings is the trunk's current one.
        assert_eq!(pool.join("TK1", 2, "CA5"), names(&["CA5"]));
        assert_eq!(pool.set_limit("TK-unknown", 5), names(&[]));
    }

    #[test]
    fn removing_a_trunk_hands_back_its_waiting_calls() {
        let mut pool = ChannelPool::new();
        pool.join("TK1", 1, "CA1");
        pool.join("TK1", 1, "CA2");
        pool.join("TK1", 1, "CA3");
        assert_eq!(pool.remove_trunk("TK1"), names(&["CA2", "CA3"]));
        assert_eq!(pool.place("TK1", "CA2"), Place::Absent);
        assert!(pool.leave("TK1", "CA1").is_empty());
        assert_eq!(pool.join("TK1", 1, "CA4"), names(&["CA4"]));
    }

    #[test]
    fn joining_twice_keeps_one_place() {
        let mut pool = ChannelPool::new();
        pool.join("TK1", 1, "CA1");
        assert!(pool.join("TK1", 1, "CA1").is_empty());
        pool.join("TK1", 1, "CA2");
        assert!(pool.join("TK1", 1, "CA2").is_empty());
        assert_eq!(pool.in_use("TK1"), 1);
        assert_eq!(pool.waiting("TK1"), 1);
    }
}
