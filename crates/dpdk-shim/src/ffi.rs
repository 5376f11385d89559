//! The C shim's functions (`shim/dpdk_shim.c`), and stand-ins with the same signatures for
//! builds without libdpdk (never called there: no `Eal` can be had).

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint};

/// DPDK's packet buffer; only ever handled by pointer.
#[repr(C)]
pub struct rte_mbuf {
    _opaque: [u8; 0],
}

/// DPDK's memory pool; only ever handled by pointer.
#[repr(C)]
pub struct rte_mempool {
    _opaque: [u8; 0],
}

/// `struct sb_dpdk_port_stats` in the shim.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct sb_dpdk_port_stats {
    pub ipackets: u64,
    pub opackets: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

#[cfg(not(dpdk_unavailable))]
extern "C" {
    pub fn sb_dpdk_eal_init(argc: c_int, argv: *mut *mut c_char) -> c_int;
    pub fn sb_dpdk_errno() -> c_int;
    pub fn sb_dpdk_strerror(errnum: c_int) -> *const c_char;
    pub fn sb_dpdk_thread_register() -> c_int;
    pub fn sb_dpdk_thread_unregister();
    pub fn sb_dpdk_port_by_name(name: *const c_char, port: *mut u16) -> c_int;
    pub fn sb_dpdk_dev_probe(devargs: *const c_char) -> c_int;
    pub fn sb_dpdk_pool_create(
        name: *const c_char,
        n: c_uint,
        cache: c_uint,
        socket: c_int,
    ) -> *mut rte_mempool;
    pub fn sb_dpdk_port_socket(port: u16) -> c_int;
    pub fn sb_dpdk_port_setup(
        port: u16,
        rx_desc: *mut u16,
        tx_desc: *mut u16,
        pool: *mut rte_mempool,
        failed: *mut *const c_char,
    ) -> c_int;
    pub fn sb_dpdk_port_mac(port: u16, mac: *mut u8) -> c_int;
    pub fn sb_dpdk_port_close(port: u16);
    pub fn sb_dpdk_port_stats(port: u16, out: *mut sb_dpdk_port_stats) -> c_int;
    pub fn sb_dpdk_rx_burst(port: u16, queue: u16, pkts: *mut *mut rte_mbuf, n: u16) -> u16;
    pub fn sb_dpdk_tx_burst(port: u16, queue: u16, pkts: *mut *mut rte_mbuf, n: u16) -> u16;
    pub fn sb_dpdk_mbuf_alloc(pool: *mut rte_mempool) -> *mut rte_mbuf;
    pub fn sb_dpdk_mbuf_free(m: *mut rte_mbuf);
    pub fn sb_dpdk_mbuf_data(
        m: *const rte_mbuf,
        len: *mut u16,
        contiguous: *mut c_int,
        checksum_bad: *mut c_int,
    ) -> *const u8;
    pub fn sb_dpdk_mbuf_append(m: *mut rte_mbuf, len: u16) -> *mut u8;
}

#[cfg(dpdk_unavailable)]
pub use stand_ins::*;

#[cfg(dpdk_unavailable)]
#[allow(clippy::missing_safety_doc)]
mod stand_ins {
    use super::*;

    pub unsafe fn sb_dpdk_eal_init(_: c_int, _: *mut *mut c_char) -> c_int {
        -1
    }
    pub unsafe fn sb_dpdk_errno() -> c_int {
        libc::ENOTSUP
    }
    pub unsafe fn sb_dpdk_strerror(_: c_int) -> *const c_char {
        c"DPDK is not available in this build".as_ptr()
    }
    pub unsafe fn sb_dpdk_thread_register() -> c_int {
        -1
    }
    pub unsafe fn sb_dpdk_thread_unregister() {}
    pub unsafe fn sb_dpdk_port_by_name(_: *const c_char, _: *mut u16) -> c_int {
        -libc::ENODEV
    }
    pub unsafe fn sb_dpdk_dev_probe(_: *const c_char) -> c_int {
        -libc::ENOTSUP
    }
    pub unsafe fn sb_dpdk_pool_create(
        _: *const c_char,
        _: c_uint,
        _: c_uint,
        _: c_int,
    ) -> *mut rte_mempool {
        std::ptr::null_mut()
    }
    pub unsafe fn sb_dpdk_port_socket(_: u16) -> c_int {
        -1
    }
    pub unsafe fn sb_dpdk_port_setup(
        _: u16,
        _: *mut u16,
        _: *mut u16,
        _: *mut rte_mempool,
        _: *mut *const c_char,
    ) -> c_int {
        -libc::ENOTSUP
    }
    pub unsafe fn sb_dpdk_port_mac(_: u16, _: *mut u8) -> c_int {
        -libc::ENOTSUP
    }
    pub unsafe fn sb_dpdk_port_close(_: u16) {}
    pub unsafe fn sb_dpdk_port_stats(_: u16, _: *mut sb_dpdk_port_stats) -> c_int {
        -libc::ENOTSUP
    }
    pub unsafe fn sb_dpdk_rx_burst(_: u16, _: u16, _: *mut *mut rte_mbuf, _: u16) -> u16 {
        0
    }
    pub unsafe fn sb_dpdk_tx_burst(_: u16, _: u16, _: *mut *mut rte_mbuf, _: u16) -> u16 {
        0
    }
    pub unsafe fn sb_dpdk_mbuf_alloc(_: *mut rte_mempool) -> *mut rte_mbuf {
        std::ptr::null_mut()
    }
    pub unsafe fn sb_dpdk_mbuf_free(_: *mut rte_mbuf) {}
    pub unsafe fn sb_dpdk_mbuf_data(
        _: *const rte_mbuf,
        len: *mut u16,
        _: *mut c_int,
        _: *mut c_int,
    ) -> *const u8 {
        // SAFETY: the caller passes a valid pointer.
        unsafe { *len = 0 };
        std::ptr::NonNull::<u8>::dangling().as_ptr()
    }
    pub unsafe fn sb_dpdk_mbuf_append(_: *mut rte_mbuf, _: u16) -> *mut u8 {
        std::ptr::null_mut()
    }
}
