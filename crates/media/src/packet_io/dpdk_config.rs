//! The DPDK backend's port configuration: EAL arguments, the device, this host's IPv4
//! address on it, ring and mbuf pool sizes; its validation; and (with the `dpdk` feature)
//! reading it from the TOML files under `firmware-cfg/` (format in firmware-cfg/README.md).
//!
//! The type exists in every build so [`crate::MediaConfig`] has one shape; only a `dpdk`
//! build can read the file or open the port.

use std::net::Ipv4Addr;

/// One DPDK port as the media plane uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    /// Arguments for `rte_eal_init` (without the program name).
    pub eal_args: Vec<String>,
    /// Device arguments: a PCI address (`0000:03:00.0`) or a virtual device with its
    /// parameters (`net_af_packet0,iface=veth0`).
    pub device: String,
    /// This host's address on the port's link.
    pub ipv4: Ipv4Addr,
    pub prefix_len: u8,
    /// Where packets for addresses off the link go.
    pub gateway: Option<Ipv4Addr>,
    pub rx_ring_size: u16,
    pub tx_ring_size: u16,
    /// Mbufs in the port's pool.
    pub mbuf_pool_size: u32,
    /// Per-lcore cache of the pool.
    pub mbuf_cache_size: u32,
}

/// Defaults for the optional fields.
pub const DEFAULT_RING_SIZE: u16 = 1024;
pub const DEFAULT_MBUF_POOL_SIZE: u32 = 8191;
pub const DEFAULT_MBUF_CACHE_SIZE: u32 = 256;
/// DPDK's largest per-lcore mempool cache (RTE_MEMPOOL_CACHE_MAX_SIZE).
const MAX_MBUF_CACHE: u32 = 512;
/// Mbufs beyond the rings a pool needs: two bursts in flight and the caller's cache.
const POOL_MARGIN: u32 = 2 * 32;

#[derive(Debug, thiserror::Error)]
pub enum DpdkConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("DPDK port configuration: {0}")]
    Invalid(String),
}

impl DpdkConfig {
    /// The device's name (the device arguments up to the first comma).
    pub fn device_name(&self) -> &str {
        self.device.split(',').next().unwrap_or_default()
    }

    /// Checks what DPDK would otherwise refuse late or obscurely.
    pub fn validate(&self) -> Result<(), DpdkConfigError> {
        let invalid = |message: String| Err(DpdkConfigError::Invalid(message));
        if self.device_name().is_empty()
            || self
                .device
                .contains(|c: char| c == '\0' || c.is_whitespace())
        {
            return invalid(format!(
                "device {:?} must be a device name with optional ,key=value parameters",
                self.device
            ));
        }
        if let Some(arg) = self.eal_args.iter().find(|a| a.contains('\0')) {
            return invalid(format!("EAL argument {arg:?} contains a NUL byte"));
        }
        if self.prefix_len == 0 || self.prefix_len > 32 {
            return invalid(format!("prefix length /{} is not 1..=32", self.prefix_len));
        }
        let ip = self.ipv4;
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || ip.is_loopback() {
            return invalid(format!("{ip} is not a unicast host address"));
        }
        let mask = u32::MAX << (32 - u32::from(self.prefix_len));
        if self.prefix_len <= 30 {
            let host = u32::from(ip) & !mask;
            if host == 0 || host == !mask {
                return invalid(format!(
                    "{ip}/{} is the subnet's network or broadcast address",
                    self.prefix_len
                ));
            }
        }
        if let Some(gateway) = self.gateway {
            if gateway == ip || u32::from(gateway) & mask != u32::from(ip) & mask {
                return invalid(format!(
                    "gateway {gateway} must be another address in {ip}/{}",
                    self.prefix_len
                ));
            }
        }
        for (name, size) in [
            ("rx_ring_size", self.rx_ring_size),
            ("tx_ring_size", self.tx_ring_size),
        ] {
            if !(64..=32768).contains(&size) {
                return invalid(format!("{name} {size} is not 64..=32768"));
            }
        }
        if self.mbuf_cache_size > MAX_MBUF_CACHE
            || u64::from(self.mbuf_cache_size) * 3 > u64::from(self.mbuf_pool_size) * 2
        {
            return invalid(format!(
                "mbuf cache_size {} must be at most {MAX_MBUF_CACHE} and two thirds of the pool size",
                self.mbuf_cache_size
            ));
        }
        let needed = u32::from(self.rx_ring_size)
            + u32::from(self.tx_ring_size)
            + POOL_MARGIN
            + self.mbuf_cache_size;
        if self.mbuf_pool_size < needed {
            return invalid(format!(
                "mbuf pool size {} is below the rings, bursts and cache it must fill ({needed})",
                self.mbuf_pool_size
            ));
        }
        Ok(())
    }
}

#[cfg(feature = "dpdk")]
mod file {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct DpdkFile {
        eal: EalSection,
        port: PortSection,
        #[serde(default)]
        mbuf_pool: PoolSection,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct EalSection {
        args: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PortSection {
        device: String,
        /// `address/prefix`.
        ipv4: String,
        gateway: Option<Ipv4Addr>,
        #[serde(default = "default_ring")]
        rx_ring_size: u16,
        #[serde(default = "default_ring")]
        tx_ring_size: u16,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct PoolSection {
        size: u32,
        cache_size: u32,
    }

    impl Default for PoolSection {
        fn default() -> Self {
            PoolSection {
                size: DEFAULT_MBUF_POOL_SIZE,
                cache_size: DEFAULT_MBUF_CACHE_SIZE,
            }
        }
    }

    fn default_ring() -> u16 {
        DEFAULT_RING_SIZE
    }

    fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
        let (address, prefix) = text.split_once('/')?;
        Some((address.trim().parse().ok()?, prefix.trim().parse().ok()?))
    }

    impl DpdkConfig {
        /// Parses and validates a port configuration; `origin` names it in errors.
        pub fn parse(text: &str, origin: &str) -> Result<DpdkConfig, DpdkConfigError> {
            let file: DpdkFile = toml::from_str(text).map_err(|e| DpdkConfigError::Parse {
                path: origin.to_owned(),
                message: e.to_string(),
            })?;
            let Some((ipv4, prefix_len)) = parse_cidr(&file.port.ipv4) else {
                return Err(DpdkConfigError::Parse {
                    path: origin.to_owned(),
                    message: format!(
                        "[port] ipv4 {:?} is not address/prefix (10.0.0.1/24)",
                        file.port.ipv4
                    ),
                });
            };
            let config = DpdkConfig {
                eal_args: file.eal.args,
                device: file.port.device,
                ipv4,
                prefix_len,
                gateway: file.port.gateway,
                rx_ring_size: file.port.rx_ring_size,
                tx_ring_size: file.port.tx_ring_size,
                mbuf_pool_size: file.mbuf_pool.size,
                mbuf_cache_size: file.mbuf_pool.cache_size,
            };
            config.validate()?;
            Ok(config)
        }

        /// Reads, parses and validates a port configuration file.
        pub fn load(path: &Path) -> Result<DpdkConfig, DpdkConfigError> {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| DpdkConfigError::Read {
                path: origin.clone(),
                source,
            })?;
            DpdkConfig::parse(&text, &origin)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DpdkConfig {
        DpdkConfig {
            eal_args: vec!["--no-huge".into()],
            device: "net_af_packet0,iface=veth0".into(),
            ipv4: Ipv4Addr::new(10, 211, 0, 1),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(10, 211, 0, 254)),
            rx_ring_size: 1024,
            tx_ring_size: 1024,
            mbuf_pool_size: 8191,
            mbuf_cache_size: 256,
        }
    }

    #[test]
    fn a_sane_configuration_is_valid() {
        config().validate().unwrap();
        assert_eq!(config().device_name(), "net_af_packet0");
    }

    #[test]
    fn each_mistake_is_named() {
        let cases: Vec<(DpdkConfig, &str)> = vec![
            (
                DpdkConfig {
                    device: String::new(),
                    ..config()
                },
                "device",
            ),
            (
                DpdkConfig {
                    device: ",iface=x".into(),
                    ..config()
                },
                "device",
            ),
            (
                DpdkConfig {
                    device: "net_tap0, iface=x".into(),
                    ..config()
                },
                "device",
            ),
            (
                DpdkConfig {
                    eal_args: vec!["a\0".into()],
                    ..config()
                },
                "NUL",
            ),
            (
                DpdkConfig {
                    prefix_len: 0,
                    ..config()
                },
                "prefix",
            ),
            (
                DpdkConfig {
                    prefix_len: 33,
                    ..config()
                },
                "prefix",
            ),
            (
                DpdkConfig {
                    ipv4: Ipv4Addr::new(224, 0, 0, 1),
                    ..config()
                },
                "unicast",
            ),
            (
                DpdkConfig {
                    ipv4: Ipv4Addr::new(127, 0, 0, 1),
                    ..config()
                },
                "unicast",
            ),
            (
                DpdkConfig {
                    ipv4: Ipv4Addr::new(10, 211, 0, 0),
                    gateway: None,
                    ..config()
                },
                "network",
            ),
            (
                DpdkConfig {
                    ipv4: Ipv4Addr::new(10, 211, 0, 255),
                    gateway: None,
                    ..config()
                },
                "broadcast",
            ),
            (
                DpdkConfig {
                    gateway: Some(Ipv4Addr::new(10, 212, 0, 1)),
                    ..config()
                },
                "gateway",
            ),
            (
                DpdkConfig {
                    gateway: Some(Ipv4Addr::new(10, 211, 0, 1)),
                    ..config()
                },
                "gateway",
            ),
            (
                DpdkConfig {
                    rx_ring_size: 32,
                    ..config()
                },
                "rx_ring_size",
            ),
            (
                DpdkConfig {
                    tx_ring_size: 65535,
                    ..config()
                },
                "tx_ring_size",
            ),
            (
                DpdkConfig {
                    mbuf_cache_size: 513,
                    ..config()
                },
                "cache",
            ),
            (
                DpdkConfig {
                    mbuf_pool_size: 300,
                    mbuf_cache_size: 256,
                    ..config()
                },
                "cache",
            ),
            (
                DpdkConfig {
                    mbuf_pool_size: 2000,
                    ..config()
                },
                "pool size",
            ),
        ];
        for (bad, word) in cases {
            let error = bad.validate().unwrap_err().to_string();
            assert!(error.contains(word), "{bad:?}: {error}");
        }
        // A /31 or /32 has no network or broadcast address to avoid.
        DpdkConfig {
            prefix_len: 32,
            gateway: None,
            ..config()
        }
        .validate()
        .unwrap();
    }

    #[cfg(feature = "dpdk")]
    #[test]
    fn the_file_format_parses_with_defaults_and_rejects_unknown_fields() {
        let text = r#"
            [eal]
            args = ["-l", "0", "--no-huge"]
            [port]
            device = "net_af_packet0,iface=veth0"
            ipv4 = "10.211.0.1/24"
        "#;
        let parsed = DpdkConfig::parse(text, "test.toml").unwrap();
        assert_eq!(
            parsed,
            DpdkConfig {
                eal_args: vec!["-l".into(), "0".into(), "--no-huge".into()],
                gateway: None,
                ..config()
            }
        );
        let typo = text.replace("ipv4 =", "ip =");
        assert!(DpdkConfig::parse(&typo, "t").is_err());
        let no_prefix = text.replace("10.211.0.1/24", "10.211.0.1");
        let error = DpdkConfig::parse(&no_prefix, "t").unwrap_err().to_string();
        assert!(error.contains("address/prefix"), "{error}");
        let bad_pool = format!("{text}\n[mbuf_pool]\nsize = 100\n");
        assert!(DpdkConfig::parse(&bad_pool, "t").is_err());
    }

    #[cfg(feature = "dpdk")]
    #[test]
    fn the_example_in_firmware_cfg_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../firmware-cfg/dpdk-veth.toml");
        let example = DpdkConfig::load(&path).unwrap();
        assert_eq!(example.device_name(), "net_af_packet0");
        assert_eq!(example.ipv4, Ipv4Addr::new(10, 211, 0, 1));
    }
}
