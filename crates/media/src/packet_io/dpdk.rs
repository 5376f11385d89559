//! The DPDK backend (cargo feature `dpdk`): the worker owns a DPDK port (one rx/tx queue
//! pair, through the `dpdk-shim` crate) and is its own IP stack for it: Ethernet, ARP and
//! IPv4/UDP, with no kernel socket anywhere.
//!
//! - Receive: [`DpdkIo::wait`] busy-polls the rx queue (bursts of [`dpdk_shim::BURST`]) until frames
//!   arrive, a waker fires (its eventfds are polled without blocking whenever the queue is
//!   empty) or the deadline passes. [`DpdkIo::next_datagram`] parses each frame
//!   ([`super::frame`]): UDP to this host is demultiplexed by destination port to the
//!   session slot bound to it and its payload copied out; ARP requests for this host are
//!   answered; everything else is dropped and counted ([`DpdkCounters`]).
//! - Send: [`DpdkIo::send`] resolves the next hop in the neighbour table
//!   ([`super::neighbours`]), builds the frame with its checksums in a fresh mbuf and
//!   queues it; queued frames go to the device a burst at a time, and at the next `wait`
//!   at the latest. A next hop without a known MAC gets an ARP request and the datagram is
//!   dropped (and counted): RTP repeats every ptime, so holding packets is not worth it.
//! - Sessions bind a local port ([`DpdkIo::bind`]), not a socket.
//!
//! Nothing on this path allocates: mbufs come from the port's pool, the tables are sized at
//! construction. Drops of traffic addressed to us (malformed, fragments, unknown ports) also
//! count as receive errors in the worker's statistics; link chatter (other ethertypes,
//! frames for other hosts, ARP not for us) only in [`DpdkCounters`], which [`counters`]
//! sums over the process.
//!
//! One port, one queue pair, one worker: there is no flow steering (RSS or rte_flow by
//! UDP port) to spread a port's traffic over several workers' queues, so the media plane
//! refuses a DPDK configuration with more than one worker.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dpdk_shim::{Eal, Mbuf, Port, PortSettings, RxBatch, ThreadRegistration, TxBatch};
use tracing::{info, warn};

use super::dpdk_config::DpdkConfig;
use super::frame::{
    parse_frame, udp_frame_len, write_arp_frame, write_udp_frame, ArpOperation, ArpPacket, Discard,
    Frame, Interface, MacAddress, UdpFrameHeader, MAX_UDP_PAYLOAD, MIN_FRAME_LEN,
};
use super::neighbours::{NeighbourTable, NEIGHBOUR_CAPACITY};
use super::{Datagram, IoErrors, Wakes};

/// UDP ports are 16 bits: the port → slot table has one entry each.
const PORTS: usize = 1 << 16;
const NO_SLOT: u32 = u32::MAX;
/// Wakers a backend watches (ids 0..8).
const MAX_WAKERS: usize = 8;

/// Defines [`DpdkCounters`] and the process-wide atomic totals with the same fields.
macro_rules! counters {
    ($($(#[$doc:meta])* $field:ident,)*) => {
        /// What the DPDK backend did and dropped (process totals from [`counters`]).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct DpdkCounters {
            $($(#[$doc])* pub $field: u64,)*
        }

        /// The process-wide totals every DPDK backend adds to.
        struct SharedCounters {
            $($field: AtomicU64,)*
        }

        static SHARED: SharedCounters = SharedCounters {
            $($field: AtomicU64::new(0),)*
        };

        impl SharedCounters {
            fn add(&self, delta: &DpdkCounters) {
                $(if delta.$field != 0 {
                    self.$field.fetch_add(delta.$field, Ordering::Relaxed);
                })*
            }

            fn snapshot(&self) -> DpdkCounters {
                DpdkCounters {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    frames_received,
    frames_sent,
    /// UDP datagrams handed to sessions.
    datagrams_received,
    arp_requests_answered,
    arp_requests_sent,
    arp_replies_received,
    /// Ethertypes other than IPv4 and ARP.
    dropped_not_ipv4,
    /// Bad lengths or header fields, a bad IPv4 header checksum, a checksum the device
    /// flagged, multi-segment frames.
    dropped_malformed,
    dropped_fragment,
    /// IPv4 for us but not UDP.
    dropped_not_udp,
    /// Frames for another MAC or IPv4 address.
    dropped_other_destination,
    /// UDP for us to a port no session is bound to.
    dropped_unknown_port,
    /// UDP payloads longer than the caller's buffer.
    dropped_oversized,
    /// Sends dropped while the next hop's MAC was unknown (an ARP request went out).
    send_no_neighbour,
    /// Sends to IPv6, broadcast, multicast, or off the link without a gateway.
    send_unroutable,
    /// Sends longer than the MTU allows.
    send_too_large,
    /// Frames not built for want of an mbuf.
    send_no_mbuf,
    /// Frames the device did not take (tx ring full).
    send_ring_full,
}

/// The totals of every DPDK backend in this process (published at each `wait` and on
/// close).
pub fn counters() -> DpdkCounters {
    SHARED.snapshot()
}

/// Whether this build can run DPDK (libdpdk was found when it was compiled).
pub fn available() -> Result<(), String> {
    dpdk_shim::available().map_err(|e| e.to_string())
}

/// Initialises the EAL with the configuration's arguments (once per process; the backend
/// does it when it opens). Lets a caller find out early whether DPDK can run here.
pub fn init_eal(config: &DpdkConfig) -> io::Result<()> {
    Eal::init(&config.eal_args)
        .map(|_| ())
        .map_err(io::Error::other)
}

/// A worker's DPDK port and the state of its own IP stack on it.
pub struct DpdkIo {
    rx: RxBatch,
    tx: TxBatch,
    interface: Interface,
    neighbours: NeighbourTable,
    /// The session slot each local UDP port is bound to.
    slot_of_port: Box<[u32]>,
    /// The local UDP port of each slot (0: none).
    port_of_slot: Box<[u16]>,
    wakers: [libc::pollfd; MAX_WAKERS],
    waker_ids: [u8; MAX_WAKERS],
    wakers_len: usize,
    /// IPv4 identification of the next frame.
    identification: u16,
    /// The time of the last wait's return: neighbour ages are measured against it.
    now: Instant,
    /// Since the last publication to the process totals.
    counters: DpdkCounters,
    eal: &'static Eal,
    registration: Option<ThreadRegistration>,
    registration_tried: bool,
    pub(super) errors: IoErrors,
    /// Declared last: dropped (stopped, closed) after the batches gave their mbufs back.
    port: Port,
}

fn dpdk_error(error: dpdk_shim::DpdkError) -> io::Error {
    match error {
        dpdk_shim::DpdkError::Unavailable(_) => io::Error::new(io::ErrorKind::Unsupported, error),
        other => io::Error::other(other),
    }
}

impl DpdkIo {
    /// Initialises the EAL (first time only) and opens the configured port for up to
    /// `capacity` session slots.
    pub fn new(config: &DpdkConfig, capacity: usize) -> io::Result<DpdkIo> {
        let eal = Eal::init(&config.eal_args).map_err(dpdk_error)?;
        let port = Port::open(
            eal,
            &PortSettings {
                device: config.device.clone(),
                rx_descriptors: config.rx_ring_size,
                tx_descriptors: config.tx_ring_size,
                mbufs: config.mbuf_pool_size,
                mbuf_cache: config.mbuf_cache_size,
            },
        )
        .map_err(dpdk_error)?;
        let interface = Interface {
            mac: MacAddress(port.mac()),
            ipv4: config.ipv4,
            prefix_len: config.prefix_len,
            gateway: config.gateway,
        };
        let (rx_ring, tx_ring) = port.ring_sizes();
        info!(device = %config.device, port = port.id(), mac = %interface.mac,
              ipv4 = %config.ipv4, prefix = config.prefix_len, rx_ring, tx_ring,
              "DPDK port started");
        Ok(DpdkIo {
            rx: RxBatch::new(),
            tx: TxBatch::new(),
            interface,
            neighbours: NeighbourTable::new(NEIGHBOUR_CAPACITY),
            slot_of_port: vec![NO_SLOT; PORTS].into_boxed_slice(),
            port_of_slot: vec![0; capacity].into_boxed_slice(),
            wakers: [libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            }; MAX_WAKERS],
            waker_ids: [0; MAX_WAKERS],
            wakers_len: 0,
            identification: 0,
            now: Instant::now(),
            counters: DpdkCounters::default(),
            eal,
            registration: None,
            registration_tried: false,
            errors: IoErrors::default(),
            port,
        })
    }

    /// This host on the port's link (its MAC is the port's).
    pub fn interface(&self) -> Interface {
        self.interface
    }

    pub fn add_waker(&mut self, fd: RawFd, id: u8) -> io::Result<()> {
        if usize::from(id) >= MAX_WAKERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "waker id must be < 8",
            ));
        }
        let (Some(pollfd), Some(slot_id)) = (
            self.wakers.get_mut(self.wakers_len),
            self.waker_ids.get_mut(self.wakers_len),
        ) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "at most 8 wakers",
            ));
        };
        *pollfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        *slot_id = id;
        self.wakers_len += 1;
        Ok(())
    }

    /// Delivers UDP datagrams to `local`'s port to `slot`. `local` must be this host's
    /// address on the port.
    pub fn bind(&mut self, slot: usize, local: SocketAddr) -> io::Result<()> {
        let SocketAddr::V4(local) = local else {
            return Err(io::ErrorKind::AddrNotAvailable.into());
        };
        if *local.ip() != self.interface.ipv4 {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!(
                    "{} is not the DPDK port's address {}",
                    local.ip(),
                    self.interface.ipv4
                ),
            ));
        }
        let port = local.port();
        let slot_value = u32::try_from(slot).ok().filter(|s| *s != NO_SLOT);
        let (Some(slot_value), Some(entry), true) =
            (slot_value, self.port_of_slot.get(slot).copied(), port != 0)
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "slot out of range or port 0",
            ));
        };
        if entry != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "slot already bound",
            ));
        }
        match self.slot_of_port.get_mut(usize::from(port)) {
            Some(bound) if *bound == NO_SLOT => *bound = slot_value,
            _ => return Err(io::ErrorKind::AddrInUse.into()),
        }
        if let Some(entry) = self.port_of_slot.get_mut(slot) {
            *entry = port;
        }
        Ok(())
    }

    /// Unbinds the slot's port; datagrams for it are dropped from now on.
    pub fn remove_socket(&mut self, slot: usize) {
        let Some(port) = self.port_of_slot.get_mut(slot) else {
            return;
        };
        let old = std::mem::take(port);
        if old != 0 {
            if let Some(bound) = self.slot_of_port.get_mut(usize::from(old)) {
                *bound = NO_SLOT;
            }
        }
    }

    pub fn wait(&mut self, deadline: Instant) -> io::Result<Wakes> {
        self.register_thread();
        self.flush();
        self.publish();
        loop {
            if self.port.rx_burst(&mut self.rx) > 0 || !self.rx.is_empty() {
                self.now = Instant::now();
                return Ok(Wakes::default());
            }
            let wakes = self.poll_wakers();
            let now = Instant::now();
            if wakes != Wakes::default() || now >= deadline {
                self.now = now;
                return Ok(wakes);
            }
            std::hint::spin_loop();
        }
    }

    /// Makes the worker thread an EAL thread on its first wait (the backend is built on
    /// another thread), so the mbuf pool's per-lcore cache serves it.
    fn register_thread(&mut self) {
        if self.registration_tried {
            return;
        }
        self.registration_tried = true;
        match dpdk_shim::register_thread(self.eal) {
            Ok(registration) => self.registration = Some(registration),
            Err(error) => {
                warn!(%error, "DPDK: worker thread not registered; mbufs bypass the pool cache")
            }
        }
    }

    /// The wakers that are readable now (a zero-timeout poll).
    fn poll_wakers(&mut self) -> Wakes {
        let mut wakes = Wakes::default();
        let Some(fds) = self.wakers.get_mut(..self.wakers_len) else {
            return wakes;
        };
        if fds.is_empty() {
            return wakes;
        }
        // SAFETY: `fds` is a valid array of `len` pollfds.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if ready > 0 {
            for (fd, id) in fds.iter().zip(self.waker_ids.iter()) {
                if fd.revents & libc::POLLIN != 0 {
                    wakes.insert(*id);
                }
            }
        }
        wakes
    }

    pub fn next_datagram(&mut self, buf: &mut [u8]) -> Option<Datagram> {
        while let Some(mbuf) = self.rx.pop() {
            self.counters.frames_received += 1;
            let view = mbuf.view();
            if !view.contiguous || view.checksum_bad {
                self.counters.dropped_malformed += 1;
                self.errors.receive += 1;
                continue;
            }
            match parse_frame(view.bytes, &self.interface) {
                Ok(Frame::Udp(datagram)) => {
                    let slot = self
                        .slot_of_port
                        .get(usize::from(datagram.destination.port()))
                        .copied()
                        .unwrap_or(NO_SLOT);
                    if slot == NO_SLOT {
                        self.counters.dropped_unknown_port += 1;
                        self.errors.receive += 1;
                        continue;
                    }
                    let source = *datagram.source.ip();
                    if self.interface.is_on_link(source) && source != self.interface.ipv4 {
                        self.neighbours.learn(source, datagram.source_mac, self.now);
                    }
                    let len = datagram.payload.len();
                    let Some(out) = buf.get_mut(..len) else {
                        self.counters.dropped_oversized += 1;
                        self.errors.oversized += 1;
                        continue;
                    };
                    out.copy_from_slice(datagram.payload);
                    self.counters.datagrams_received += 1;
                    return Some(Datagram {
                        slot: slot as usize,
                        source: SocketAddr::V4(datagram.source),
                        len,
                    });
                }
                Ok(Frame::Arp(arp)) => {
                    drop(mbuf);
                    self.handle_arp(&arp);
                }
                Err(discard) => self.count_discard(discard),
            }
        }
        None
    }

    fn count_discard(&mut self, discard: Discard) {
        let counters = &mut self.counters;
        match discard {
            Discard::NotIpv4 => counters.dropped_not_ipv4 += 1,
            Discard::OtherDestination => counters.dropped_other_destination += 1,
            Discard::NotUdp => counters.dropped_not_udp += 1,
            Discard::Malformed => {
                counters.dropped_malformed += 1;
                self.errors.receive += 1;
            }
            Discard::Fragment => {
                counters.dropped_fragment += 1;
                self.errors.receive += 1;
            }
        }
    }

    /// Learns from an ARP packet (RFC 826: the sender is added when the packet is for us,
    /// updated when already known) and answers requests for our address.
    fn handle_arp(&mut self, arp: &ArpPacket) {
        let ours = self.interface.ipv4;
        let sender = arp.sender_ip;
        if !sender.is_unspecified() && self.interface.is_on_link(sender) {
            if arp.target_ip == ours {
                self.neighbours.learn(sender, arp.sender_mac, self.now);
            } else {
                self.neighbours.update(sender, arp.sender_mac, self.now);
            }
        }
        match arp.operation {
            ArpOperation::Reply => self.counters.arp_replies_received += 1,
            ArpOperation::Request if arp.target_ip == ours => {
                let reply = ArpPacket {
                    operation: ArpOperation::Reply,
                    sender_mac: self.interface.mac,
                    sender_ip: ours,
                    target_mac: arp.sender_mac,
                    target_ip: sender,
                };
                if self.send_arp(arp.sender_mac, &reply) {
                    self.counters.arp_requests_answered += 1;
                }
            }
            ArpOperation::Request => {}
        }
    }

    /// Builds an ARP frame and queues it; false if there was no mbuf.
    fn send_arp(&mut self, destination: MacAddress, arp: &ArpPacket) -> bool {
        let Some(mut mbuf) = self.port.alloc() else {
            self.counters.send_no_mbuf += 1;
            return false;
        };
        let written = mbuf
            .append(MIN_FRAME_LEN)
            .and_then(|out| write_arp_frame(out, destination, arp));
        if written.is_none() {
            self.counters.send_no_mbuf += 1;
            return false;
        }
        self.queue(mbuf)
    }

    fn request_neighbour(&mut self, ip: Ipv4Addr) {
        let request = ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: self.interface.mac,
            sender_ip: self.interface.ipv4,
            target_mac: MacAddress::ZERO,
            target_ip: ip,
        };
        if self.send_arp(MacAddress::BROADCAST, &request) {
            self.counters.arp_requests_sent += 1;
        }
    }

    pub fn send(
        &mut self,
        slot: usize,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> io::Result<()> {
        let local_port = self.port_of_slot.get(slot).copied().unwrap_or(0);
        if local_port == 0 {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let SocketAddr::V4(destination) = destination else {
            self.counters.send_unroutable += 1;
            return Err(io::ErrorKind::AddrNotAvailable.into());
        };
        if datagram.len() > MAX_UDP_PAYLOAD {
            self.counters.send_too_large += 1;
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let Some(next_hop) = self.interface.next_hop(*destination.ip()) else {
            self.counters.send_unroutable += 1;
            return Err(io::ErrorKind::NetworkUnreachable.into());
        };
        let resolution = self.neighbours.resolve(next_hop, self.now);
        if resolution.send_request {
            self.request_neighbour(next_hop);
        }
        let Some(destination_mac) = resolution.mac else {
            self.counters.send_no_neighbour += 1;
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let Some(mut mbuf) = self.port.alloc() else {
            self.counters.send_no_mbuf += 1;
            return Err(io::ErrorKind::OutOfMemory.into());
        };
        let header = UdpFrameHeader {
            source_mac: self.interface.mac,
            destination_mac,
            source: SocketAddrV4::new(self.interface.ipv4, local_port),
            destination,
            identification: self.identification,
        };
        let written = mbuf
            .append(udp_frame_len(datagram.len()))
            .and_then(|out| write_udp_frame(out, &header, datagram));
        if written.is_none() {
            self.counters.send_too_large += 1;
            return Err(io::ErrorKind::InvalidInput.into());
        }
        self.identification = self.identification.wrapping_add(1);
        if self.queue(mbuf) {
            Ok(())
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// Queues a built frame, bursting the queue to the device when it is full; false if the
    /// device would not take it.
    fn queue(&mut self, mbuf: Mbuf) -> bool {
        if self.tx.is_full() {
            self.flush();
        }
        match self.tx.push(mbuf) {
            Ok(()) => {
                if self.tx.is_full() {
                    self.flush();
                }
                true
            }
            Err(_refused) => {
                self.counters.send_ring_full += 1;
                self.errors.send += 1;
                false
            }
        }
    }

    /// Hands queued frames to the device: a second try for what the first burst left, then
    /// what is still left is dropped and counted.
    fn flush(&mut self) {
        for _ in 0..2 {
            if self.tx.is_empty() {
                return;
            }
            let sent = self.port.tx_burst(&mut self.tx);
            self.counters.frames_sent += sent as u64;
        }
        let dropped = self.tx.discard() as u64;
        self.counters.send_ring_full += dropped;
        self.errors.send += dropped;
    }

    /// Adds this backend's counts to the process totals.
    fn publish(&mut self) {
        let delta = std::mem::take(&mut self.counters);
        if delta != DpdkCounters::default() {
            SHARED.add(&delta);
        }
    }
}

impl Drop for DpdkIo {
    fn drop(&mut self) {
        self.flush();
        self.publish();
        let stats = self.port.stats();
        info!(device = %self.port.device(), received = stats.received,
              transmitted = stats.transmitted, missed = stats.missed,
              no_mbuf = stats.no_mbuf, "DPDK port closing");
        // The registration is dropped here, on the worker thread that made it.
        self.registration = None;
    }
}
