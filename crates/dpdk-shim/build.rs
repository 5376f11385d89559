//! Compiles `shim/dpdk_shim.c` against `pkg-config libdpdk` (DPDK ≥ 22.11) and links the
//! shared DPDK libraries. The fast-path functions (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`,
//! …) are `static inline` in DPDK's headers, so Rust cannot call them directly: the shim
//! gives each one a real symbol.
//!
//! Without libdpdk (pkg-config cannot find it) the crate still builds, with
//! `cfg(dpdk_unavailable)`: every entry point then returns `DpdkError::Unavailable` carrying
//! pkg-config's message, so a workspace build on a machine without libdpdk-dev works and a
//! `dpdk` feature build says at startup why it cannot run.

use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dpdk_unavailable)");
    println!("cargo::rerun-if-changed=shim/dpdk_shim.c");
    println!("cargo::rerun-if-env-changed=PKG_CONFIG_PATH");
    let library = match pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(library) => library,
        Err(error) => {
            let reason = match pkg_config_output(&["--modversion", "libdpdk"]) {
                Some(version) => format!("libdpdk {} is older than 22.11", version.trim()),
                None => "pkg-config finds no libdpdk (install libdpdk-dev)".to_owned(),
            };
            let details = error.to_string().replace('\n', " ");
            println!(
                "cargo::warning=built without DPDK, the dpdk backend will refuse to start: \
                 {reason}: {details}"
            );
            println!("cargo::rustc-cfg=dpdk_unavailable");
            println!("cargo::rustc-env=DPDK_SHIM_UNAVAILABLE={reason}");
            return;
        }
    };
    // The include paths alone are not enough: DPDK's headers need `-include rte_config.h`
    // and the machine flags the libraries were built with, which only --cflags gives.
    let cflags = pkg_config_output(&["--cflags", "libdpdk"]).unwrap_or_default();
    let mut build = cc::Build::new();
    build.file("shim/dpdk_shim.c").opt_level(2).warnings(true);
    for path in &library.include_paths {
        build.include(path);
    }
    for flag in cflags.split_whitespace() {
        if !flag.starts_with("-I") {
            build.flag(flag);
        }
    }
    build.compile("switchboard_dpdk_shim");
    println!("cargo::rustc-env=DPDK_SHIM_VERSION={}", library.version);
}

/// What `pkg-config <args>` prints, if it succeeds.
fn pkg_config_output(args: &[&str]) -> Option<String> {
    let pkg_config = std::env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    Command::new(pkg_config)
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
}
