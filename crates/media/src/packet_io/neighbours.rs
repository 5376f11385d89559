//! The DPDK backend's neighbour (ARP) table: IPv4 address → MAC for the hosts on its link,
//! fixed capacity, no allocation after construction. Pure: the caller passes the time and
//! sends the ARP requests it is told to.
//!
//! Entries are learned from ARP packets addressed to us and from IPv4 packets of on-link
//! senders, and updated from any ARP packet whose sender is already known (RFC 826's
//! merge). A destination with no entry gets an incomplete one and an ARP request; requests
//! for one address go out at most once per [`REQUEST_INTERVAL`]. An entry not confirmed
//! for [`REFRESH_AFTER`] is still used while a request re-confirms it; after
//! [`EXPIRE_AFTER`] unconfirmed it is no longer used. When the table is full the entry
//! confirmed longest ago makes room.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::frame::MacAddress;

/// Entries the DPDK backend keeps: hosts on its link it talks to (peers on the same
/// subnet, the gateway).
pub const NEIGHBOUR_CAPACITY: usize = 64;
/// The least time between two ARP requests for one address.
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// An entry this old is re-confirmed with an ARP request while still in use.
pub const REFRESH_AFTER: Duration = Duration::from_secs(60);
/// An entry this old, unconfirmed, is no longer used.
pub const EXPIRE_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Entry {
    ip: Ipv4Addr,
    /// `None` while incomplete (asked for, not answered).
    mac: Option<MacAddress>,
    /// When the MAC was last confirmed (or the entry created, if incomplete).
    confirmed: Instant,
    /// When an ARP request for it last went out.
    requested: Option<Instant>,
}

/// What to do to send to a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// Its MAC, if known and not expired.
    pub mac: Option<MacAddress>,
    /// Send an ARP request for it now.
    pub send_request: bool,
}

/// The table.
#[derive(Debug)]
pub struct NeighbourTable {
    entries: Box<[Option<Entry>]>,
    /// The entry last found: traffic tends to go to the same few neighbours.
    last_hit: usize,
}

impl NeighbourTable {
    pub fn new(capacity: usize) -> NeighbourTable {
        NeighbourTable {
            entries: vec![None; capacity.max(1)].into_boxed_slice(),
            last_hit: 0,
        }
    }

    fn find(&mut self, ip: Ipv4Addr) -> Option<usize> {
        if self
            .entries
            .get(self.last_hit)
            .and_then(Option::as_ref)
            .is_some_and(|e| e.ip == ip)
        {
            return Some(self.last_hit);
        }
        let index = self
            .entries
            .iter()
            .position(|e| e.as_ref().is_some_and(|e| e.ip == ip))?;
        self.last_hit = index;
        Some(index)
    }

    /// A free entry, or the one confirmed longest ago.
    fn victim(&self) -> usize {
        if let Some(free) = self.entries.iter().position(Option::is_none) {
            return free;
        }
        self.entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.as_ref().map(|e| e.confirmed))
            .map_or(0, |(index, _)| index)
    }

    /// The MAC to send to `ip` with, and whether to ask for it (again) now.
    pub fn resolve(&mut self, ip: Ipv4Addr, now: Instant) -> Resolution {
        let Some(index) = self.find(ip) else {
            let index = self.victim();
            if let Some(slot) = self.entries.get_mut(index) {
                *slot = Some(Entry {
                    ip,
                    mac: None,
                    confirmed: now,
                    requested: Some(now),
                });
                self.last_hit = index;
            }
            return Resolution {
                mac: None,
                send_request: true,
            };
        };
        let Some(Some(entry)) = self.entries.get_mut(index) else {
            return Resolution {
                mac: None,
                send_request: false,
            };
        };
        let age = now.saturating_duration_since(entry.confirmed);
        let mac = entry.mac.filter(|_| age < EXPIRE_AFTER);
        let wants_request = mac.is_none() || age >= REFRESH_AFTER;
        let may_request = entry
            .requested
            .is_none_or(|at| now.saturating_duration_since(at) >= REQUEST_INTERVAL);
        let send_request = wants_request && may_request;
        if send_request {
            entry.requested = Some(now);
        }
        Resolution { mac, send_request }
    }

    /// Records that `ip` is at `mac` (an ARP packet to us, or an IPv4 packet from an
    /// on-link sender), adding the entry if needed.
    pub fn learn(&mut self, ip: Ipv4Addr, mac: MacAddress, now: Instant) {
        let index = match self.find(ip) {
            Some(index) => index,
            None => self.victim(),
        };
        if let Some(slot) = self.entries.get_mut(index) {
            *slot = Some(Entry {
                ip,
                mac: Some(mac),
                confirmed: now,
                requested: None,
            });
            self.last_hit = index;
        }
    }

    /// Updates `ip`'s entry if there is one (an ARP packet not addressed to us); returns
    /// whether there was.
    pub fn update(&mut self, ip: Ipv4Addr, mac: MacAddress, now: Instant) -> bool {
        let Some(index) = self.find(ip) else {
            return false;
        };
        if let Some(Some(entry)) = self.entries.get_mut(index) {
            entry.mac = Some(mac);
            entry.confirmed = now;
            entry.requested = None;
        }
        true
    }

    /// The MAC known for `ip` (expired or not), for inspection.
    pub fn get(&self, ip: Ipv4Addr) -> Option<MacAddress> {
        self.entries
            .iter()
            .flatten()
            .find(|e| e.ip == ip)
            .and_then(|e| e.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: MacAddress = MacAddress([2, 0, 0, 0, 0, 0xa]);
    const MAC_B: MacAddress = MacAddress([2, 0, 0, 0, 0, 0xb]);

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 211, 0, last)
    }

    #[test]
    fn unknown_neighbours_are_asked_for_once_per_interval_until_they_answer() {
        let t0 = Instant::now();
        let mut table = NeighbourTable::new(4);
        let ask = Resolution {
            mac: None,
            send_request: true,
        };
        let wait = Resolution {
            mac: None,
            send_request: false,
        };
        assert_eq!(table.resolve(ip(2), t0), ask);
        assert_eq!(table.resolve(ip(2), t0 + Duration::from_millis(999)), wait);
        assert_eq!(table.resolve(ip(2), t0 + REQUEST_INTERVAL), ask);
        table.learn(ip(2), MAC_A, t0 + Duration::from_millis(1500));
        assert_eq!(
            table.resolve(ip(2), t0 + Duration::from_secs(2)),
            Resolution {
                mac: Some(MAC_A),
                send_request: false
            }
        );
    }

    #[test]
    fn old_entries_are_refreshed_while_used_then_expire() {
        let t0 = Instant::now();
        let mut table = NeighbourTable::new(4);
        table.learn(ip(2), MAC_A, t0);
        let stale = t0 + REFRESH_AFTER;
        assert_eq!(
            table.resolve(ip(2), stale),
            Resolution {
                mac: Some(MAC_A),
                send_request: true
            }
        );
        assert_eq!(
            table.resolve(ip(2), stale + Duration::from_millis(10)),
            Resolution {
                mac: Some(MAC_A),
                send_request: false
            }
        );
        assert_eq!(
            table.resolve(ip(2), t0 + EXPIRE_AFTER),
            Resolution {
                mac: None,
                send_request: true
            }
        );
        // A reply brings it back.
        assert!(table.update(ip(2), MAC_B, t0 + EXPIRE_AFTER));
        assert_eq!(
            table.resolve(ip(2), t0 + EXPIRE_AFTER).mac,
            Some(MAC_B),
            "the reply's MAC replaces the old one"
        );
    }

    #[test]
    fn update_only_touches_known_addresses() {
        let t0 = Instant::now();
        let mut table = NeighbourTable::new(4);
        assert!(!table.update(ip(9), MAC_A, t0));
        assert_eq!(table.get(ip(9)), None);
        table.learn(ip(9), MAC_A, t0);
        assert!(table.update(ip(9), MAC_B, t0));
        assert_eq!(table.get(ip(9)), Some(MAC_B));
    }

    #[test]
    fn a_full_table_replaces_the_entry_confirmed_longest_ago() {
        let t0 = Instant::now();
        let mut table = NeighbourTable::new(3);
        for (i, last) in [2u8, 3, 4].into_iter().enumerate() {
            table.learn(ip(last), MAC_A, t0 + Duration::from_secs(i as u64));
        }
        // .2 is the oldest, but refreshing it makes .3 the oldest.
        table.learn(ip(2), MAC_B, t0 + Duration::from_secs(10));
        table.learn(ip(5), MAC_A, t0 + Duration::from_secs(11));
        assert_eq!(table.get(ip(3)), None);
        assert_eq!(table.get(ip(2)), Some(MAC_B));
        assert_eq!(table.get(ip(4)), Some(MAC_A));
        assert_eq!(table.get(ip(5)), Some(MAC_A));
        // Asking for a new address also takes a place.
        assert!(
            table
                .resolve(ip(6), t0 + Duration::from_secs(12))
                .send_request
        );
        assert_eq!(table.get(ip(4)), None);
    }
}
