//! A small safe binding to DPDK 22.11 (Debian's libdpdk-dev), just what Switchboard's DPDK
//! packet I/O backend needs: the EAL initialised once per process, a port opened by its
//! device arguments with one rx/tx queue pair and an mbuf pool, receive and transmit
//! bursts, mbuf allocation and data access, the port's MAC address and statistics; the
//! port is stopped, closed and its device removed on drop.
//!
//! DPDK's fast-path functions are `static inline`, so a C shim (`shim/dpdk_shim.c`, built by
//! `build.rs` against `pkg-config libdpdk`) gives them symbols; the Rust side never touches
//! DPDK's struct layouts. Built without libdpdk the crate compiles but [`Eal::init`] returns
//! [`DpdkError::Unavailable`] (see [`available`]).
//!
//! Lifetimes DPDK imposes: the EAL cannot be initialised twice (nor retried after a
//! failure) in one process, so [`Eal::init`] remembers its outcome and its arguments; mbuf
//! pools are never freed (an mbuf may outlive the port it came from), one pool per opened
//! device configuration, reused when the device is opened again.

mod ffi;

use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::NonNull;
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;

/// Mbufs one receive or transmit burst moves at most.
pub const BURST: usize = 32;

/// Why a DPDK operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    #[error("DPDK is not available in this build ({0})")]
    Unavailable(&'static str),
    #[error("invalid DPDK argument {0:?}: contains a NUL byte")]
    BadArgument(String),
    #[error("the EAL was already initialised in this process with other arguments: {0:?}")]
    EalArgumentsDiffer(Vec<String>),
    #[error("rte_eal_init failed: {message} (rte_errno {code})")]
    EalInit { code: i32, message: String },
    #[error("DPDK device {device:?}: {step} failed: {message} ({code})")]
    Device {
        device: String,
        step: &'static str,
        code: i32,
        message: String,
    },
    #[error("DPDK device {0:?} is already open in this process")]
    PortInUse(String),
    #[error("registering this thread with the EAL failed: {message} (rte_errno {code})")]
    ThreadRegister { code: i32, message: String },
}

/// Whether this build can use DPDK at all; the error says why not.
pub fn available() -> Result<(), DpdkError> {
    #[cfg(dpdk_unavailable)]
    return Err(DpdkError::Unavailable(env!("DPDK_SHIM_UNAVAILABLE")));
    #[cfg(not(dpdk_unavailable))]
    Ok(())
}

/// The version of libdpdk this crate was built against (`None` without libdpdk).
pub fn dpdk_version() -> Option<&'static str> {
    option_env!("DPDK_SHIM_VERSION")
}

fn strerror(code: c_int) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string.
    unsafe {
        let text = ffi::sb_dpdk_strerror(code);
        if text.is_null() {
            return format!("error {code}");
        }
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}

/// The initialised Environment Abstraction Layer; proof that DPDK calls may be made.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

static EAL: OnceLock<(Vec<String>, Result<Eal, DpdkError>)> = OnceLock::new();

impl Eal {
    /// Initialises the EAL with `args` (argv without the program name) the first time it is
    /// called in this process; later calls with the same arguments return the same result,
    /// with other arguments [`DpdkError::EalArgumentsDiffer`]. The calling thread's CPU
    /// affinity is restored afterwards (the EAL pins its caller to the main lcore; the
    /// media workers pin themselves).
    pub fn init(args: &[String]) -> Result<&'static Eal, DpdkError> {
        available()?;
        let (first_args, outcome) = EAL.get_or_init(|| (args.to_vec(), init_once(args)));
        if first_args.as_slice() != args {
            return Err(DpdkError::EalArgumentsDiffer(first_args.clone()));
        }
        outcome.as_ref().map_err(Clone::clone)
    }

    /// The arguments the EAL was initialised with.
    pub fn args(&self) -> &[String] {
        &self.args
    }
}

fn init_once(args: &[String]) -> Result<Eal, DpdkError> {
    let mut owned = Vec::with_capacity(args.len() + 1);
    owned.push(c"switchboard".to_owned());
    for arg in args {
        owned.push(CString::new(arg.as_str()).map_err(|_| DpdkError::BadArgument(arg.clone()))?);
    }
    // The EAL may keep pointers into argv (and getopt permutes it): both live for the process.
    let strings: &'static mut [CString] = Vec::leak(owned);
    let argv: &'static mut [*mut c_char] = Vec::leak(
        strings
            .iter_mut()
            .map(|s| s.as_ptr().cast_mut())
            .chain(std::iter::once(std::ptr::null_mut()))
            .collect(),
    );
    let affinity = current_affinity();
    let argc = c_int::try_from(strings.len()).unwrap_or(c_int::MAX);
    // SAFETY: argv holds argc valid NUL-terminated strings and a terminating null, all leaked.
    let rc = unsafe { ffi::sb_dpdk_eal_init(argc, argv.as_mut_ptr()) };
    // SAFETY: reading the calling thread's rte_errno.
    let code = unsafe { ffi::sb_dpdk_errno() };
    if let Some(set) = affinity {
        restore_affinity(&set);
    }
    if rc < 0 {
        return Err(DpdkError::EalInit {
            code,
            message: strerror(code),
        });
    }
    Ok(Eal {
        args: args.to_vec(),
    })
}

fn current_affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let rc = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (rc == 0).then_some(set)
    }
}

fn restore_affinity(set: &libc::cpu_set_t) {
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    unsafe {
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
    }
}

/// Makes the calling thread an EAL thread (it gets an lcore id, so mempool caches work for
/// it). Undone when the returned guard drops on the same thread.
pub fn register_thread(_eal: &Eal) -> Result<ThreadRegistration, DpdkError> {
    // SAFETY: plain EAL call on an initialised EAL.
    let rc = unsafe { ffi::sb_dpdk_thread_register() };
    if rc != 0 {
        // SAFETY: reading this thread's rte_errno.
        let code = unsafe { ffi::sb_dpdk_errno() };
        return Err(DpdkError::ThreadRegister {
            code,
            message: strerror(code),
        });
    }
    Ok(ThreadRegistration {
        thread: std::thread::current().id(),
    })
}

/// A thread's registration with the EAL; dropping it on that thread unregisters it
/// (dropped elsewhere it does nothing: the lcore stays taken until the process ends).
#[derive(Debug)]
pub struct ThreadRegistration {
    thread: ThreadId,
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        if std::thread::current().id() == self.thread {
            // SAFETY: this thread registered itself.
            unsafe { ffi::sb_dpdk_thread_unregister() };
        }
    }
}

/// An mbuf pool. Never freed: see the crate documentation.
#[derive(Debug)]
struct Pool(NonNull<ffi::rte_mempool>);

// SAFETY: DPDK mempools (default ring ops) are multi-producer/multi-consumer safe.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

/// What a pool was made for: (device arguments, mbufs, cache).
type PoolKey = (String, u32, u32);

/// Pools by what they were made for, so reopening a device reuses its pool.
static POOLS: Mutex<Vec<(PoolKey, &'static Pool)>> = Mutex::new(Vec::new());
/// Port ids currently open through [`Port::open`].
static OPEN_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

fn pool_for(
    device: &str,
    size: u32,
    cache: u32,
    socket: c_int,
) -> Result<&'static Pool, DpdkError> {
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let key = (device.to_owned(), size, cache);
    if let Some((_, pool)) = pools.iter().find(|(k, _)| *k == key) {
        return Ok(pool);
    }
    let name = CString::new(format!("sb_pool_{}", pools.len()))
        .map_err(|_| DpdkError::BadArgument(device.to_owned()))?;
    // SAFETY: a valid name; DPDK copies it.
    let pool = unsafe { ffi::sb_dpdk_pool_create(name.as_ptr(), size, cache, socket) };
    let Some(pool) = NonNull::new(pool) else {
        // SAFETY: reading this thread's rte_errno.
        let code = unsafe { ffi::sb_dpdk_errno() };
        return Err(DpdkError::Device {
            device: device.to_owned(),
            step: "rte_pktmbuf_pool_create",
            code,
            message: strerror(code),
        });
    };
    let pool: &'static Pool = Box::leak(Box::new(Pool(pool)));
    pools.push((key, pool));
    Ok(pool)
}

/// How to open a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSettings {
    /// Device arguments: the device's name, then optional `,key=value` pairs, e.g.
    /// `0000:03:00.0` (a PCI NIC bound to vfio-pci) or `net_af_packet0,iface=veth0` (a
    /// virtual device, probed on open when the EAL has not created it already).
    pub device: String,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// Mbufs in the port's pool (2^n - 1 is the most memory-efficient).
    pub mbufs: u32,
    /// Per-lcore mbuf cache of the pool.
    pub mbuf_cache: u32,
}

impl PortSettings {
    /// The device's name: the device arguments up to the first comma.
    pub fn device_name(&self) -> &str {
        self.device.split(',').next().unwrap_or_default()
    }
}

/// Port counters kept by the device (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub received: u64,
    pub transmitted: u64,
    /// Frames the device dropped because the rx ring was full.
    pub missed: u64,
    pub receive_errors: u64,
    pub transmit_errors: u64,
    /// Receives that failed for want of an mbuf.
    pub no_mbuf: u64,
}

/// An open, started port with one rx/tx queue pair (queue 0) and its mbuf pool.
#[derive(Debug)]
pub struct Port {
    id: u16,
    device: String,
    pool: &'static Pool,
    mac: [u8; 6],
    rx_descriptors: u16,
    tx_descriptors: u16,
}

// SAFETY: a port's queues are used by one thread at a time (`&mut self` for bursts);
// DPDK allows any thread to drive a queue so long as it is not driven concurrently.
unsafe impl Send for Port {}

impl Port {
    /// Finds the device (probing it from its device arguments if the EAL did not create
    /// it), configures one rx and one tx queue, starts it. One `Port` per device at a time.
    pub fn open(_eal: &Eal, settings: &PortSettings) -> Result<Port, DpdkError> {
        let device = settings.device.clone();
        let name = settings.device_name();
        let device_error = |step: &'static str, code: c_int| DpdkError::Device {
            device: device.clone(),
            step,
            code,
            message: strerror(code.abs()),
        };
        let c_name = CString::new(name).map_err(|_| DpdkError::BadArgument(device.clone()))?;
        let c_devargs =
            CString::new(device.as_str()).map_err(|_| DpdkError::BadArgument(device.clone()))?;
        let mut id = 0u16;
        // SAFETY: valid C strings and an out-pointer to a u16.
        if unsafe { ffi::sb_dpdk_port_by_name(c_name.as_ptr(), &mut id) } != 0 {
            // SAFETY: as above.
            let rc = unsafe { ffi::sb_dpdk_dev_probe(c_devargs.as_ptr()) };
            if rc != 0 {
                return Err(device_error("rte_dev_probe", rc));
            }
            // SAFETY: as above.
            let rc = unsafe { ffi::sb_dpdk_port_by_name(c_name.as_ptr(), &mut id) };
            if rc != 0 {
                return Err(device_error("rte_eth_dev_get_port_by_name", rc));
            }
        }
        {
            let mut open = OPEN_PORTS.lock().unwrap_or_else(|e| e.into_inner());
            if open.contains(&id) {
                return Err(DpdkError::PortInUse(device));
            }
            open.push(id);
        }
        // SAFETY: a found port id.
        let socket = unsafe { ffi::sb_dpdk_port_socket(id) };
        // From here on, dropping `port` closes it and releases the id.
        let mut port = Port {
            id,
            device: device.clone(),
            pool: pool_for(&device, settings.mbufs, settings.mbuf_cache, socket)
                .inspect_err(|_| release_port_id(id))?,
            mac: [0; 6],
            rx_descriptors: settings.rx_descriptors,
            tx_descriptors: settings.tx_descriptors,
        };
        let mut failed: *const c_char = std::ptr::null();
        // SAFETY: the pool is live (never freed) and the out-pointers are valid.
        let rc = unsafe {
            ffi::sb_dpdk_port_setup(
                id,
                &mut port.rx_descriptors,
                &mut port.tx_descriptors,
                port.pool.0.as_ptr(),
                &mut failed,
            )
        };
        if rc != 0 {
            let step = if failed.is_null() {
                "port setup"
            } else {
                // SAFETY: the shim stores pointers to string literals.
                match unsafe { CStr::from_ptr(failed) }.to_str() {
                    Ok("rte_eth_dev_info_get") => "rte_eth_dev_info_get",
                    Ok("rte_eth_dev_configure") => "rte_eth_dev_configure",
                    Ok("rte_eth_dev_adjust_nb_rx_tx_desc") => "rte_eth_dev_adjust_nb_rx_tx_desc",
                    Ok("rte_eth_rx_queue_setup") => "rte_eth_rx_queue_setup",
                    Ok("rte_eth_tx_queue_setup") => "rte_eth_tx_queue_setup",
                    Ok("rte_eth_dev_start") => "rte_eth_dev_start",
                    _ => "port setup",
                }
            };
            return Err(device_error(step, rc));
        }
        // SAFETY: a 6-byte buffer for the address.
        let rc = unsafe { ffi::sb_dpdk_port_mac(id, port.mac.as_mut_ptr()) };
        if rc != 0 {
            return Err(device_error("rte_eth_macaddr_get", rc));
        }
        Ok(port)
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    /// The device arguments it was opened with.
    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Descriptor counts as the device adjusted them.
    pub fn ring_sizes(&self) -> (u16, u16) {
        (self.rx_descriptors, self.tx_descriptors)
    }

    /// Receives up to [`BURST`] frames into `batch`, which must have been drained (if it
    /// still holds frames, nothing is received and 0 returned).
    pub fn rx_burst(&mut self, batch: &mut RxBatch) -> usize {
        if !batch.is_empty() {
            return 0;
        }
        // SAFETY: the array has room for BURST pointers; the port is started.
        let n =
            unsafe { ffi::sb_dpdk_rx_burst(self.id, 0, batch.mbufs.as_mut_ptr(), BURST as u16) };
        batch.len = usize::from(n).min(BURST);
        batch.next = 0;
        batch.len
    }

    /// Hands the batch's frames to the device, in order; returns how many it took. Frames
    /// it did not take stay in the batch, first in line.
    pub fn tx_burst(&mut self, batch: &mut TxBatch) -> usize {
        if batch.len == 0 {
            return 0;
        }
        // SAFETY: the first `len` entries are owned mbufs; the device takes ownership of
        // those it accepts.
        let sent = unsafe {
            ffi::sb_dpdk_tx_burst(self.id, 0, batch.mbufs.as_mut_ptr(), batch.len as u16)
        };
        let sent = usize::from(sent).min(batch.len);
        batch.mbufs.copy_within(sent..batch.len, 0);
        batch.len -= sent;
        sent
    }

    /// A new, empty mbuf from the port's pool; `None` when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is live.
        NonNull::new(unsafe { ffi::sb_dpdk_mbuf_alloc(self.pool.0.as_ptr()) }).map(Mbuf)
    }

    /// The device's counters.
    pub fn stats(&self) -> PortStats {
        let mut raw = ffi::sb_dpdk_port_stats::default();
        // SAFETY: a valid out-pointer.
        if unsafe { ffi::sb_dpdk_port_stats(self.id, &mut raw) } != 0 {
            return PortStats::default();
        }
        PortStats {
            received: raw.ipackets,
            transmitted: raw.opackets,
            missed: raw.imissed,
            receive_errors: raw.ierrors,
            transmit_errors: raw.oerrors,
            no_mbuf: raw.rx_nombuf,
        }
    }
}

fn release_port_id(id: u16) {
    OPEN_PORTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|open| *open != id);
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: the port was found (and possibly started) by `open`; no burst is running
        // (we hold it exclusively).
        unsafe { ffi::sb_dpdk_port_close(self.id) };
        release_port_id(self.id);
    }
}

/// One received or to-be-sent packet buffer, owned; freed on drop.
#[derive(Debug)]
pub struct Mbuf(NonNull<ffi::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one `Mbuf`; DPDK lets any thread free it.
unsafe impl Send for Mbuf {}

/// What a received mbuf holds.
#[derive(Debug, Clone, Copy)]
pub struct MbufView<'a> {
    /// The first segment's bytes (the whole frame when `contiguous`).
    pub bytes: &'a [u8],
    /// The frame is entirely in the first segment.
    pub contiguous: bool,
    /// The device checked a checksum (IP or L4) and found it wrong.
    pub checksum_bad: bool,
}

impl Mbuf {
    /// The frame's bytes and flags.
    pub fn view(&self) -> MbufView<'_> {
        let mut len = 0u16;
        let mut contiguous: c_int = 0;
        let mut checksum_bad: c_int = 0;
        // SAFETY: a live mbuf we own; the data pointer addresses `len` initialised bytes
        // (pool memory is zero-filled at creation and only ever written since), valid while
        // the mbuf is, which the borrow of `self` guarantees.
        let bytes = unsafe {
            let data = ffi::sb_dpdk_mbuf_data(
                self.0.as_ptr(),
                &mut len,
                &mut contiguous,
                &mut checksum_bad,
            );
            if data.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(data, usize::from(len))
            }
        };
        MbufView {
            bytes,
            contiguous: contiguous != 0,
            checksum_bad: checksum_bad != 0,
        }
    }

    /// Extends the packet by `len` bytes and returns them to write; `None` if the buffer has
    /// no room.
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        let len16 = u16::try_from(len).ok()?;
        // SAFETY: a live mbuf we own; on success the pointer addresses `len` bytes of its
        // data room (initialised: see `view`), exclusively ours while `self` is borrowed.
        unsafe {
            let data = ffi::sb_dpdk_mbuf_append(self.0.as_ptr(), len16);
            if data.is_null() {
                None
            } else {
                Some(std::slice::from_raw_parts_mut(data, len))
            }
        }
    }

    fn into_raw(self) -> *mut ffi::rte_mbuf {
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        raw
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf.
        unsafe { ffi::sb_dpdk_mbuf_free(self.0.as_ptr()) };
    }
}

/// The frames of one receive burst, taken one at a time; any left are freed on drop.
#[derive(Debug)]
pub struct RxBatch {
    mbufs: [*mut ffi::rte_mbuf; BURST],
    len: usize,
    next: usize,
}

// SAFETY: the batch owns the mbufs it holds.
unsafe impl Send for RxBatch {}

impl Default for RxBatch {
    fn default() -> Self {
        RxBatch::new()
    }
}

impl RxBatch {
    pub fn new() -> RxBatch {
        RxBatch {
            mbufs: [std::ptr::null_mut(); BURST],
            len: 0,
            next: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.next >= self.len
    }

    /// Frames not yet taken.
    pub fn remaining(&self) -> usize {
        self.len.saturating_sub(self.next)
    }

    /// The next received frame.
    pub fn pop(&mut self) -> Option<Mbuf> {
        while self.next < self.len {
            let raw = self.mbufs.get(self.next).copied()?;
            self.next += 1;
            if let Some(mbuf) = NonNull::new(raw) {
                return Some(Mbuf(mbuf));
            }
        }
        None
    }
}

impl Drop for RxBatch {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

/// Frames waiting for the next [`Port::tx_burst`]; any left are freed on drop.
#[derive(Debug)]
pub struct TxBatch {
    mbufs: [*mut ffi::rte_mbuf; BURST],
    len: usize,
}

// SAFETY: the batch owns the mbufs it holds.
unsafe impl Send for TxBatch {}

impl Default for TxBatch {
    fn default() -> Self {
        TxBatch::new()
    }
}

impl TxBatch {
    pub fn new() -> TxBatch {
        TxBatch {
            mbufs: [std::ptr::null_mut(); BURST],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    /// Queues `mbuf`; gives it back when the batch is full.
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        let Some(slot) = self.mbufs.get_mut(self.len) else {
            return Err(mbuf);
        };
        *slot = mbuf.into_raw();
        self.len += 1;
        Ok(())
    }

    /// Frees every queued frame; returns how many.
    pub fn discard(&mut self) -> usize {
        let n = self.len;
        for raw in self.mbufs.iter().take(n) {
            if let Some(mbuf) = NonNull::new(*raw) {
                drop(Mbuf(mbuf));
            }
        }
        self.len = 0;
        n
    }
}

impl Drop for TxBatch {
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_name_is_the_device_arguments_up_to_the_first_comma() {
        let mut settings = PortSettings {
            device: "net_af_packet0,iface=veth0,qpairs=1".into(),
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mbufs: 4095,
            mbuf_cache: 128,
        };
        assert_eq!(settings.device_name(), "net_af_packet0");
        settings.device = "0000:03:00.0".into();
        assert_eq!(settings.device_name(), "0000:03:00.0");
    }

    #[test]
    fn empty_batches_yield_nothing_and_free_nothing() {
        let mut rx = RxBatch::new();
        assert!(rx.is_empty());
        assert_eq!(rx.remaining(), 0);
        assert!(rx.pop().is_none());
        let mut tx = TxBatch::new();
        assert!(tx.is_empty() && !tx.is_full());
        assert_eq!(tx.discard(), 0);
    }

    #[test]
    fn arguments_with_nul_bytes_are_refused_before_the_eal_sees_them() {
        if available().is_err() {
            // Without libdpdk every init is refused first, for that reason.
            assert!(matches!(
                Eal::init(&["a\0b".into()]),
                Err(DpdkError::Unavailable(_))
            ));
            return;
        }
        // The refusal is the EAL's one outcome for this test process: nothing is initialised.
        assert_eq!(
            Eal::init(&["--no-huge\0".into()]).unwrap_err(),
            DpdkError::BadArgument("--no-huge\0".into())
        );
    }
}
