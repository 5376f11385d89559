//! The TOML configuration and its embedded defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipSection,
    pub http: HttpSection,
    pub media: MediaSection,
    pub storage: StorageSection,
    pub webhook: WebhookSection,
    pub admin: AdminSection,
    pub accounts: Vec<AccountEntry>,
    pub numbers: Vec<NumberEntry>,
    /// `[[trunks]]`: SIP gateways for outbound calls (the admin API's trunk fields + name).
    pub trunks: Vec<api::TrunkSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// The operators' API (trunks, …); keep it on a private address.
    pub listen: SocketAddr,
    pub username: String,
    /// When absent, one is generated once and kept in `data_dir/admin-password`.
    pub password: Option<String>,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: ([127, 0, 0, 1], 8081).into(),
            username: "admin".into(),
            password: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipSection {
    pub listen: SocketAddr,
}

impl Default for SipSection {
    fn default() -> Self {
        SipSection {
            listen: ([127, 0, 0, 1], 5060).into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub listen: SocketAddr,
    /// `From` of the calls that validate caller IDs (OutgoingCallerIds): the operator's
    /// number. A trunk's fixed `caller_id` rule still wins.
    pub validation_caller_id: String,
    /// REST API requests per second an account may make (sustained); beyond it and its
    /// burst, requests get 429 with Twilio's code 20429. 0 turns limiting off.
    pub requests_per_second: u32,
    /// Requests an account may make at once before the per-second rate applies.
    pub request_burst: u32,
    /// The REST API's address as apps reach it (`https://voice.example.com`), used in
    /// `RecordingUrl`s and `media_url`s; default: the listen address.
    pub public_url: Option<String>,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: ([127, 0, 0, 1], 8080).into(),
            validation_caller_id: "anonymous".into(),
            requests_per_second: 200,
            request_burst: 400,
            public_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// `"20000-29999"`.
    pub rtp_ports: String,
    /// Cores the media workers are pinned to, one worker per entry.
    pub cores: Vec<usize>,
    /// Address RTP is sent from and advertised in SDP; defaults to the SIP listen address.
    pub rtp_ip: Option<IpAddr>,
    /// Sessions each worker can hold.
    pub max_sessions_per_worker: usize,
    /// Seconds without RTP after which an answered call is hung up (0: never).
    pub rtp_timeout_secs: u64,
    /// Packet I/O backend of the media workers: "auto" (io_uring where the kernel allows
    /// it, else epoll), "io_uring", "epoll", or "dpdk" (a build with the `dpdk` feature,
    /// `dpdk_config`, one core, and `rtp_ip` = the port's address).
    pub io_backend: String,
    /// The DPDK port's configuration file (format: firmware-cfg/README.md), for
    /// `io_backend = "dpdk"`.
    pub dpdk_config: Option<PathBuf>,
}

impl Default for MediaSection {
    fn default() -> Self {
        MediaSection {
            rtp_ports: "20000-29999".into(),
            cores: vec![1],
            rtp_ip: None,
            max_sessions_per_worker: 4096,
            rtp_timeout_secs: 60,
            io_backend: "auto".into(),
            dpdk_config: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    pub data_dir: PathBuf,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            data_dir: PathBuf::from("var"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSection {
    pub timeout_ms: u64,
    /// PEM bundle of certificate authorities trusted for https:// apps and media, besides
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for WebhookSection {
    fn default() -> Self {
        WebhookSection {
            timeout_ms: 15_000,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    pub sid: String,
    pub auth_token: String,
    #[serde(default)]
    pub friendly_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberEntry {
    pub account: String,
    pub number: String,
    pub voice_url: Option<String>,
    #[serde(default = "post")]
    pub voice_method: String,
    pub voice_fallback_url: Option<String>,
    #[serde(default = "post")]
    pub voice_fallback_method: String,
    pub status_callback: Option<String>,
    #[serde(default = "post")]
    pub status_callback_method: String,
}

fn post() -> String {
    "POST".into()
}

impl Config {
    /// Reads `path`, or the embedded defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<Config>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => Config::default(),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        self.rtp_port_range()?;
        if self.sip.listen.ip().is_unspecified() && self.media.rtp_ip.is_none() {
            bail!(
                "[sip] listen is {}: set [media] rtp_ip to the address callers reach for RTP",
                self.sip.listen
            );
        }
        if self.media.cores.is_empty() {
            bail!("[media] cores must name at least one core");
        }
        let backend = match self.media.io_backend.parse::<media::packet_io::IoBackend>() {
            Ok(backend) => backend,
            Err(e) => bail!("[media] io_backend: {e}"),
        };
        self.validate_dpdk(backend)?;
        for account in &self.accounts {
            if !is_sid(&account.sid, "AC") {
                bail!(
                    "account sid {:?} is not AC followed by 32 hex digits",
                    account.sid
                );
            }
            if account.auth_token.is_empty() {
                bail!("account {} has an empty auth_token", account.sid);
            }
        }
        for trunk in &self.trunks {
            let name = trunk.name.clone().unwrap_or_default();
            trunk
                .clone()
                .into_trunk(&name, String::new(), 0)
                .map_err(|e| anyhow::anyhow!("[[trunks]] {name:?}: {e}"))?;
        }
        for number in &self.numbers {
            if store::number_digits(&number.number).is_empty() {
                bail!("number {:?} has no digits", number.number);
            }
            for method in [
                &number.voice_method,
                &number.voice_fallback_method,
                &number.status_callback_method,
            ] {
                if !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("POST") {
                    bail!(
                        "number {}: method {method:?} is not GET or POST",
                        number.number
                    );
                }
            }
        }
        Ok(())
    }

    /// With `io_backend = "dpdk"`: a readable, valid port file, one media core, and the RTP
    /// address set to the port's (it is what SDP advertises); without it, no port file.
    fn validate_dpdk(&self, backend: media::packet_io::IoBackend) -> Result<()> {
        if backend != media::packet_io::IoBackend::Dpdk {
            if self.media.dpdk_config.is_some() {
                bail!(
                    "[media] dpdk_config is set but io_backend is {:?}: set io_backend = \"dpdk\" \
                     or remove dpdk_config",
                    self.media.io_backend
                );
            }
            return Ok(());
        }
        let Some(port) = self.dpdk_port()? else {
            bail!(
                "[media] io_backend = \"dpdk\" needs dpdk_config, the DPDK port's configuration \
                 file (see firmware-cfg/README.md)"
            );
        };
        if self.media.cores.len() != 1 {
            bail!(
                "[media] io_backend = \"dpdk\" runs one media worker (the port has one rx/tx \
                 queue pair; RSS/flow steering is not supported): set cores to one core, not {:?}",
                self.media.cores
            );
        }
        if self.media.rtp_ip != Some(IpAddr::V4(port.ipv4)) {
            bail!(
                "[media] io_backend = \"dpdk\": set rtp_ip = \"{}\", the DPDK port's address \
                 (RTP is sent from and advertised at it)",
                port.ipv4
            );
        }
        Ok(())
    }

    /// The DPDK port configuration named by `[media] dpdk_config`, read and validated.
    #[cfg(feature = "dpdk")]
    pub fn dpdk_port(&self) -> Result<Option<media::packet_io::DpdkConfig>> {
        let Some(path) = &self.media.dpdk_config else {
            return Ok(None);
        };
        Ok(Some(
            media::packet_io::DpdkConfig::load(path).context("[media] dpdk_config")?,
        ))
    }

    /// The DPDK port configuration: a build without the `dpdk` feature cannot have one.
    #[cfg(not(feature = "dpdk"))]
    pub fn dpdk_port(&self) -> Result<Option<media::packet_io::DpdkConfig>> {
        if self.media.dpdk_config.is_some() {
            bail!(
                "[media] dpdk_config: this switchboard was built without DPDK support \
                 (cargo build -p switchboard --features dpdk)"
            );
        }
        Ok(None)
    }

    /// `(min, max)` of the RTP port range.
    pub fn rtp_port_range(&self) -> Result<(u16, u16)> {
        let (lo, hi) = self
            .media
            .rtp_ports
            .split_once('-')
            .context("[media] rtp_ports must look like \"20000-29999\"")?;
        let lo: u16 = lo.trim().parse().context("rtp_ports: bad lower bound")?;
        let hi: u16 = hi.trim().parse().context("rtp_ports: bad upper bound")?;
        if lo == 0 || hi <= lo {
            bail!("rtp_ports: empty or invalid range {lo}-{hi}");
        }
        Ok((lo, hi))
    }

    /// The address media is sent from and advertised in SDP.
    pub fn media_ip(&self) -> IpAddr {
        self.media.rtp_ip.unwrap_or_else(|| {
            let ip = self.sip.listen.ip();
            if ip.is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                ip
            }
        })
    }

    /// How this node reaches its own REST API (the unspecified address becomes loopback).
    pub fn http_self_url(&self) -> String {
        let listen = self.http.listen;
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, listen.port()))
    }

    /// The REST API's base URL as apps reach it.
    pub fn http_public_url(&self) -> String {
        self.http
            .public_url
            .clone()
            .unwrap_or_else(|| self.http_self_url())
            .trim_end_matches('/')
            .to_string()
    }

    /// Where the media process writes finished recordings.
    pub fn recordings_dir(&self) -> PathBuf {
        self.storage.data_dir.join("recordings")
    }

    /// The extra certificate authorities of `[webhook] ca_file`.
    pub fn extra_root_certificates(&self) -> Result<Vec<reqwest::Certificate>> {
        let Some(path) = &self.webhook.ca_file else {
            return Ok(Vec::new());
        };
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{}: not a PEM certificate bundle", path.display()))?;
        if certs.is_empty() {
            bail!("{}: no certificates in the file", path.display());
        }
        Ok(certs)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.storage.data_dir.join("cache")
    }

    /// The shared-memory segment both planes map; named after the data directory so a
    /// separately started media process finds it.
    pub fn segment_path(&self) -> PathBuf {
        let absolute = std::fs::canonicalize(&self.storage.data_dir)
            .unwrap_or_else(|_| self.storage.data_dir.clone());
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in absolute.to_string_lossy().bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm
        } else {
            self.storage.data_dir.as_path()
        };
        dir.join(format!("switchboard-{hash:016x}.shm"))
    }

    pub fn attach_socket_path(&self) -> PathBuf {
        self.storage.data_dir.join("media.sock")
    }

    pub fn media_pid_path(&self) -> PathBuf {
        self.storage.data_dir.join("media.pid")
    }
}

fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.rtp_port_range().unwrap(), (20000, 29999));
        assert_eq!(c.sip.listen.port(), 5060);
        assert_eq!(c.webhook.timeout_ms, 15_000);
    }

    #[test]
    fn full_config_parses() {
        let text = r#"
            [sip]
            listen = "127.0.0.1:5070"
            [http]
            listen = "127.0.0.1:8081"
            [media]
            rtp_ports = "30000-30999"
            cores = [0, 1]
            [storage]
            data_dir = "/tmp/x"
            [[accounts]]
            sid = "AC0123456789abcdef0123456789abcdef"
            auth_token = "secret"
            [[numbers]]
            account = "AC0123456789abcdef0123456789abcdef"
            number = "+15005550006"
            voice_url = "http://127.0.0.1:9000/voice"
        "#;
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.media.cores, vec![0, 1]);
        assert_eq!(c.numbers[0].voice_method, "POST");
    }

    #[test]
    fn trunks_and_admin_parse() {
        let text = r#"
            [admin]
            listen = "127.0.0.1:9091"
            password = "pw"
            [[trunks]]
            name = "carrier-a"
            gateway = "127.0.0.1:5090"
            username = "u"
            password = "p"
            prefixes = ["1", "44"]
        "#;
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.admin.username, "admin");
        assert_eq!(c.trunks[0].max_channels, 30);
        assert_eq!(c.trunks[0].prefixes, vec!["1", "44"]);
        let bad: Config =
            toml::from_str("[[trunks]]\nname = \"x\"\ngateway = \"nowhere\"").unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("gateway"));
        assert!(toml::from_str::<Config>(
            "[[trunks]]\nname = \"x\"\ngateway = \"127.0.0.1:1\"\nbogus = 1"
        )
        .is_err());
    }

    #[test]
    fn bad_values_are_rejected_clearly() {
        let c: Config = toml::from_str("[media]\nrtp_ports = \"5-1\"").unwrap();
        assert!(c.validate().is_err());
        let c: Config = toml::from_str("[[accounts]]\nsid = \"AC1\"\nauth_token = \"x\"").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("32 hex"));
        assert!(toml::from_str::<Config>("[sip]\nlisten = \"nope\"").is_err());
        assert!(toml::from_str::<Config>("[sipp]\nx = 1").is_err());
        let c: Config = toml::from_str("[sip]\nlisten = \"0.0.0.0:5060\"").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("rtp_ip"));
    }

    fn media_error(media_section: &str) -> String {
        let c: Config = toml::from_str(&format!("[media]\n{media_section}")).unwrap();
        c.validate().unwrap_err().to_string()
    }

    /// The example port file in firmware-cfg/.
    fn example_port_file() -> String {
        format!(
            "{}/../../firmware-cfg/dpdk-veth.toml",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    #[test]
    fn dpdk_settings_must_go_together() {
        assert!(media_error("io_backend = \"dpdk\"").contains("needs dpdk_config"));
        let stray = format!("dpdk_config = \"{}\"", example_port_file());
        assert!(media_error(&stray).contains("io_backend"));
        assert!(media_error("io_backend = \"netmap\"").contains("expected auto"));
    }

    #[cfg(not(feature = "dpdk"))]
    #[test]
    fn a_build_without_dpdk_refuses_a_dpdk_configuration() {
        let section = format!(
            "io_backend = \"dpdk\"\ndpdk_config = \"{}\"",
            example_port_file()
        );
        assert!(media_error(&section).contains("--features dpdk"));
    }

    #[cfg(feature = "dpdk")]
    #[test]
    fn a_dpdk_configuration_needs_one_core_and_the_ports_address() {
        let base = format!(
            "io_backend = \"dpdk\"\ndpdk_config = \"{}\"",
            example_port_file()
        );
        let good = format!("{base}\ncores = [0]\nrtp_ip = \"10.211.0.1\"");
        let c: Config = toml::from_str(&format!("[media]\n{good}")).unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.dpdk_port().unwrap().unwrap().ipv4.to_string(),
            "10.211.0.1"
        );
        let two = format!("{base}\ncores = [0, 1]\nrtp_ip = \"10.211.0.1\"");
        assert!(media_error(&two).contains("one media worker"));
        let other_ip = format!("{base}\ncores = [0]\nrtp_ip = \"10.211.0.9\"");
        assert!(media_error(&other_ip).contains("rtp_ip = \"10.211.0.1\""));
        let missing = "io_backend = \"dpdk\"\ndpdk_config = \"/nonexistent/dpdk.toml\"";
        assert!(media_error(missing).contains("dpdk_config"));
    }
}
