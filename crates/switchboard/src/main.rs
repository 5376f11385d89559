//! The `switchboard` binary: CLI, configuration, process supervision and wiring.
//!
//! `switchboard run` creates the shared-memory segment, starts the control plane (SIP,
//! HTTP, storage, call router) and spawns `switchboard media` as a child, restarting it if
//! it dies. `switchboard control` and `switchboard media` run one plane each.
//! `switchboard bench` runs the data-plane capacity harness (the `bench` crate).

mod config;
mod demo;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rand::Rng;
use router::{CallRouter, MediaPlane, RouterConfig};
use shmq::{AttachListener, DoorbellSet, Segment};
use store::{Account, PhoneNumber, Store};

use crate::config::Config;

/// Command ring and event ring slots per media worker.
const RING_CAPACITY: usize = 8192;
/// The number the bundled demo app answers.
const DEMO_NUMBER: &str = "+15005550006";

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Programmable voice platform")]
struct Cli {
    #[command(subcommand)]
    command: Option<Mode>,
}

#[derive(Subcommand)]
enum Mode {
    /// Control plane plus a supervised media child process.
    Run(Args),
    /// Control plane only; waits for a media process to attach.
    Control(Args),
    /// Media plane only; attaches to a running control plane.
    Media(Args),
    /// Data-plane benchmark: G.711 streams through the media engine (and peers such as
    /// rtpengine) on loopback; writes report.md, results.csv and chart.svg.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args, Clone)]
struct Args {
    /// TOML configuration; embedded defaults when absent.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mode = cli.command.unwrap_or(Mode::Run(Args { config: None }));
    // The bench prints a report; only warnings interleave with its progress line.
    let default_filter = if matches!(mode, Mode::Bench(_)) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    match mode {
        Mode::Run(args) => control_main(args, true),
        Mode::Control(args) => control_main(args, false),
        Mode::Media(args) => media_main(args),
        Mode::Bench(args) => {
            let command: Vec<String> = std::env::args().collect();
            bench::run_cli(&args, &command.join(" ")).context("benchmark failed")
        }
    }
}

// ----- media plane -------------------------------------------------------------------

fn media_main(args: Args) -> Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let (rtp_port_min, rtp_port_max) = config.rtp_port_range()?;
    let segment_path = config.segment_path();
    let socket_path = config.attach_socket_path();
    let segment = wait_for(Duration::from_secs(30), || {
        Segment::open(&segment_path).ok()
    })
    .with_context(|| format!("no control plane segment at {}", segment_path.display()))?;
    let (doorbells, attachment) = attach_with_retry(&socket_path, &segment)
        .with_context(|| format!("attaching to {}", socket_path.display()))?;
    tracing::info!(workers = segment.workers(), "media plane attached");
    media::run(
        media::MediaConfig {
            cores: config.media.cores.clone(),
            rtp_ip: config.media_ip(),
            rtp_port_min,
            rtp_port_max,
            cache_dir: config.cache_dir(),
            recordings_dir: config.recordings_dir(),
            max_sessions_per_worker: config.media.max_sessions_per_worker,
            rtp_timeout: Duration::from_secs(config.media.rtp_timeout_secs),
            // Checked when the configuration was loaded.
            io_backend: config.media.io_backend.parse().unwrap_or_default(),
            dpdk: config.dpdk_port()?,
        },
        segment,
        doorbells,
        attachment,
    )
    .context("media plane failed")?;
    tracing::info!("control plane gone; media plane exiting");
    Ok(())
}

/// Attaches to the control plane. A media process started while the control plane is
/// still cleaning up after the previous one can race its ring reset (epoch mismatch, or
/// no listener yet): those are retried for a while.
fn attach_with_retry(
    socket: &Path,
    segment: &Segment,
) -> Result<(DoorbellSet, shmq::Attachment), shmq::ShmqError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match shmq::attach(socket, segment) {
            Ok(attached) => return Ok(attached),
            Err(e @ (shmq::ShmqError::EpochMismatch { .. } | shmq::ShmqError::Io(_)))
                if std::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %e, "attach failed; retrying");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ----- control plane -----------------------------------------------------------------

fn control_main(args: Args, supervise_media: bool) -> Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(control(config, args, supervise_media));
    // Don't wait for blocking tasks (an attach in progress) or lingering calls.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn control(config: Config, args: Args, supervise_media: bool) -> Result<()> {
    let data_dir = &config.storage.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    // The media process writes call recordings here; it must exist before it starts.
    let recordings_dir = config.recordings_dir();
    std::fs::create_dir_all(&recordings_dir)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&recordings_dir, std::fs::Permissions::from_mode(0o750))
        })
        .with_context(|| format!("creating {}", recordings_dir.display()))?;
    // Every call the store records or ends is counted for /metrics.
    let metrics = api::Metrics::new();
    let store = Store::open(&data_dir.join("switchboard.sqlite"))
        .await
        .context("opening the database")?
        .observe_calls(metrics.clone());
    let failed = store
        .fail_unfinished_calls(router::driver::now_ms())
        .await?;
    // The media process that was writing them is gone: those files will never complete.
    store
        .fail_unfinished_recordings(router::driver::now_ms())
        .await?;
    // Their participants' calls ended with the previous run.
    store
        .complete_unfinished_conferences(router::driver::now_ms())
        .await?;
    if failed > 0 {
        tracing::warn!(
            calls = failed,
            "calls left unfinished by a previous run marked failed"
        );
    }
    let account = provision(&store, &config).await?;

    let segment_path = config.segment_path();
    let segment = Segment::create(&segment_path, config.media.cores.len(), RING_CAPACITY)
        .with_context(|| format!("creating {}", segment_path.display()))?;
    let socket_path = config.attach_socket_path();
    let _ = std::fs::remove_file(&socket_path);
    let listener = AttachListener::bind(&socket_path)
        .with_context(|| format!("binding {}", socket_path.display()))?;

    let extra_roots = config.extra_root_certificates()?;
    let cache = media_layer::MediaCache::new(media_layer::CacheConfig {
        extra_root_certificates: extra_roots.clone(),
        ..media_layer::CacheConfig::new(config.cache_dir())
    })
    .context("opening the media cache")?;
    let webhook = webhook::WebhookClient::new(webhook::WebhookConfig {
        timeout: Duration::from_millis(config.webhook.timeout_ms),
        extra_root_certificates: extra_roots,
        ..webhook::WebhookConfig::default()
    })
    .context("creating the HTTP client")?;
    let webhook_stats = webhook.stats();
    let media = MediaPlane::new(segment.clone());
    let (sip, sip_events) = sip::transport::spawn_udp(config.sip.listen, "Switchboard".into())
        .await
        .with_context(|| format!("binding SIP on {}", config.sip.listen))?;
    let call_router = CallRouter::new(
        RouterConfig {
            media_ip: config.media_ip(),
            api_base_url: config.http_public_url(),
        },
        store.clone(),
        sip,
        media.clone(),
        cache,
        webhook,
    );
    tokio::spawn(call_router.clone().run(sip_events));
    let pending = call_router.resume_pending_calls().await?;
    if pending > 0 {
        tracing::info!(
            calls = pending,
            "outbound calls accepted before the restart will be dialled"
        );
    }

    let trunk_router = call_router.clone();
    let api = api::router(api::ApiState {
        store: store.clone(),
        calls: Arc::new(RouterCalls(call_router)),
        self_url: config.http_self_url(),
        validation_caller_id: config.http.validation_caller_id.clone(),
        rate_limit: api::RateLimit {
            per_second: config.http.requests_per_second,
            burst: config.http.request_burst,
        },
        recordings_dir: config.recordings_dir(),
    });
    let app = api::count_api_requests(api, metrics.clone()).merge(demo::router());
    let attached_media = media.clone();
    let admin = api::admin_router(api::AdminState {
        store: store.clone(),
        username: config.admin.username.clone(),
        password: admin_password(&config)?,
        on_trunk_change: Some(Arc::new(move |sid: &str, max_channels: Option<u32>| {
            trunk_router.trunk_changed(sid, max_channels)
        })),
        metrics: Some(api::MetricsSources {
            counters: metrics,
            segment: segment.clone(),
            media_attached: Arc::new(move || attached_media.is_attached()),
            webhooks: webhook_stats,
        }),
    });
    let admin_listener = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("binding the admin API on {}", config.admin.listen))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, admin).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http.listen))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(http, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });

    eprintln!(
        "Switchboard ready\n  SIP      udp:{}\n  HTTP     http://{}\n  admin    http://{}/admin/v1 (user {})\n  metrics  http://{}/metrics (same credentials)\n  account  {} (auth token {})\n  numbers  {}",
        config.sip.listen,
        config.http.listen,
        config.admin.listen,
        config.admin.username,
        config.admin.listen,
        account.sid,
        account.auth_token,
        numbers_summary(&config),
    );

    let supervisor = MediaSupervisor {
        config,
        args,
        segment,
        listener: Arc::new(listener),
        media,
        spawn_child: supervise_media,
        store: store.clone(),
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        _ = supervisor.run() => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; shutting down");
            Ok(())
        }
        _ = terminate.recv() => {
            tracing::info!("terminated; shutting down");
            Ok(())
        }
    };
    let _ = std::fs::remove_file(&segment_path);
    let _ = std::fs::remove_file(&socket_path);
    result
}

fn numbers_summary(config: &Config) -> String {
    if config.numbers.is_empty() {
        format!("{DEMO_NUMBER} → demo app")
    } else {
        config
            .numbers
            .iter()
            .map(|n| n.number.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Writes the configured accounts and numbers to the store. With none configured, keeps
/// (or creates once) a default account and the demo number. Returns the first account.
async fn provision(store: &Store, config: &Config) -> Result<Account> {
    let now = router::driver::now_ms();
    for entry in &config.accounts {
        store
            .upsert_account(&Account {
                sid: entry.sid.clone(),
                auth_token: entry.auth_token.clone(),
                friendly_name: entry
                    .friendly_name
                    .clone()
                    .unwrap_or_else(|| entry.sid.clone()),
                status: "active".into(),
                date_created: now,
            })
            .await?;
    }
    let account = match config.accounts.first() {
        Some(entry) => store
            .account(&entry.sid)
            .await?
            .context("configured account missing after insert")?,
        None => match store.accounts().await?.into_iter().next() {
            Some(account) => account,
            None => {
                let token: [u8; 16] = rand::rng().random();
                let account = Account {
                    sid: router::driver::new_sid("AC"),
                    auth_token: hex::encode(token),
                    friendly_name: "Default account".into(),
                    status: "active".into(),
                    date_created: now,
                };
                store.upsert_account(&account).await?;
                account
            }
        },
    };
    if config.numbers.is_empty() {
        store
            .upsert_number(&PhoneNumber {
                sid: router::driver::new_sid("PN"),
                account_sid: account.sid.clone(),
                phone_number: DEMO_NUMBER.into(),
                voice_url: Some(format!("http://{}/demo/voice", config.http.listen)),
                voice_method: "POST".into(),
                voice_fallback_url: None,
                voice_fallback_method: "POST".into(),
                status_callback: None,
                status_callback_method: "POST".into(),
                date_created: now,
            })
            .await?;
    }
    for spec in &config.trunks {
        let name = spec.name.clone().unwrap_or_default();
        let trunk = spec
            .clone()
            .into_trunk(&name, router::driver::new_sid("TK"), now)
            .map_err(|e| anyhow::anyhow!("[[trunks]] {name:?}: {e}"))?;
        store.upsert_trunk(&trunk).await?;
    }
    for entry in &config.numbers {
        store
            .upsert_number(&PhoneNumber {
                sid: router::driver::new_sid("PN"),
                account_sid: entry.account.clone(),
                phone_number: entry.number.clone(),
                voice_url: entry.voice_url.clone(),
                voice_method: entry.voice_method.to_ascii_uppercase(),
                voice_fallback_url: entry.voice_fallback_url.clone(),
                voice_fallback_method: entry.voice_fallback_method.to_ascii_uppercase(),
                status_callback: entry.status_callback.clone(),
                status_callback_method: entry.status_callback_method.to_ascii_uppercase(),
                date_created: now,
            })
            .await?;
    }
    Ok(account)
}

/// The operators' password: from the configuration, else generated once and kept in
/// `data_dir/admin-password` (mode 0600).
fn admin_password(config: &Config) -> Result<String> {
    if let Some(password) = &config.admin.password {
        return Ok(password.clone());
    }
    let path = config.storage.data_dir.join("admin-password");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    let bytes: [u8; 16] = rand::rng().random();
    let password = hex::encode(bytes);
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{password}\n").as_bytes())?;
    eprintln!("admin password generated in {}", path.display());
    Ok(password)
}

/// The REST API's live call control, carried out by the call router.
struct RouterCalls(CallRouter);

impl api::CallControl for RouterCalls {
    fn update(&self, call_sid: &str, update: api::LiveUpdate) -> bool {
        let update = match update {
            api::LiveUpdate::Redirect { url, method } => router::CallUpdate::Redirect {
                url,
                method: if method.eq_ignore_ascii_case("GET") {
                    twiml::HttpMethod::Get
                } else {
                    twiml::HttpMethod::Post
                },
            },
            api::LiveUpdate::Twiml(xml) => router::CallUpdate::Twiml(xml),
            api::LiveUpdate::Complete => router::CallUpdate::Complete,
            api::LiveUpdate::Cancel => router::CallUpdate::Cancel,
        };
        self.0.update_call(call_sid, update)
    }

    fn place(
        &self,
        request: api::PlaceCall,
    ) -> api::BoxFuture<'_, Result<store::CallRecord, api::PlaceCallError>> {
        let method = |m: &str| {
            if m.eq_ignore_ascii_case("GET") {
                twiml::HttpMethod::Get
            } else {
                twiml::HttpMethod::Post
            }
        };
        let purpose = request.purpose;
        let request = router::OutboundRequest {
            account_sid: request.account_sid,
            to: request.to,
            from: request.from,
            url: request.url,
            method: method(&request.method),
            twiml: request.twiml,
            fallback_url: request.fallback_url,
            fallback_method: method(&request.fallback_method),
            status_callback: request.status_callback,
            status_callback_method: method(&request.status_callback_method),
            status_callback_events: request.status_callback_events,
            timeout: Duration::from_secs(u64::from(request.timeout_seconds)),
            send_digits: request.send_digits,
            time_limit: Duration::from_secs(u64::from(request.time_limit_seconds)),
            record: request.record.map(|r| router::RecordRequest {
                channels: if r.dual_channel {
                    shmq::RecordingChannels::Dual
                } else {
                    shmq::RecordingChannels::Mono
                },
                status_callback: r.status_callback,
                status_callback_method: method(&r.status_callback_method),
                status_callback_events: r.status_callback_events,
            }),
        };
        Box::pin(async move {
            let placed = match purpose {
                api::CallPurpose::Api => self.0.place_call(request).await,
                api::CallPurpose::CallerIdValidation { delay_seconds } => {
                    self.0
                        .place_system_call(request, Duration::from_secs(u64::from(delay_seconds)))
                        .await
                }
            };
            placed.map_err(|e| match e {
                router::PlaceError::FromNotOwned(_) => api::PlaceCallError::FromNotOwned,
                router::PlaceError::NoRoute(_) => api::PlaceCallError::NoRoute,
                other => api::PlaceCallError::Internal(other.to_string()),
            })
        })
    }

    fn send_status_callback(&self, request: webhook::WebhookRequest) {
        self.0.send_status_callback(request);
    }

    fn participants(
        &self,
        account_sid: &str,
        conference_sid: &str,
    ) -> Option<Vec<api::ParticipantView>> {
        let participants = self
            .0
            .conferences()
            .participants(account_sid, conference_sid)?;
        Some(participants.iter().map(participant_view).collect())
    }

    fn participant(
        &self,
        account_sid: &str,
        conference_sid: &str,
        participant: &str,
    ) -> Option<api::ParticipantView> {
        self.0
            .conferences()
            .participant(account_sid, conference_sid, participant)
            .as_ref()
            .map(participant_view)
    }

    fn update_participant<'a>(
        &'a self,
        account_sid: &'a str,
        conference_sid: &'a str,
        participant: &'a str,
        update: api::ParticipantUpdate,
    ) -> api::BoxFuture<'a, Option<api::ParticipantView>> {
        let change = router::conference::ParticipantChange {
            muted: update.muted,
            hold: update.hold,
            hold_url: update.hold_url,
            hold_method: update.hold_method.as_deref().map(|m| {
                if m.eq_ignore_ascii_case("POST") {
                    twiml::HttpMethod::Post
                } else {
                    twiml::HttpMethod::Get
                }
            }),
            end_conference_on_exit: update.end_conference_on_exit,
        };
        Box::pin(async move {
            let (updated, effects) = self
                .0
                .conferences()
                .update_participant(account_sid, conference_sid, participant, &change)
                .ok()?;
            effects.deliver(&self.0).await;
            Some(participant_view(&updated))
        })
    }

    fn kick_participant<'a>(
        &'a self,
        account_sid: &'a str,
        conference_sid: &'a str,
        participant: &'a str,
    ) -> api::BoxFuture<'a, bool> {
        Box::pin(async move {
            match self
                .0
                .conferences()
                .kick(account_sid, conference_sid, participant)
            {
                Ok(effects) => {
                    effects.deliver(&self.0).await;
                    true
                }
                Err(_) => false,
            }
        })
    }

    fn end_conference<'a>(
        &'a self,
        account_sid: &'a str,
        conference_sid: &'a str,
    ) -> api::BoxFuture<'a, bool> {
        Box::pin(async move {
            match self.0.conferences().end(account_sid, conference_sid) {
                Ok(effects) => {
                    effects.deliver(&self.0).await;
                    true
                }
                Err(_) => false,
            }
        })
    }
}

fn participant_view(p: &router::conference::Participant) -> api::ParticipantView {
    api::ParticipantView {
        call_sid: p.call_sid.clone(),
        label: p.label.clone(),
        muted: p.muted,
        hold: p.hold,
        start_conference_on_enter: p.start_conference_on_enter,
        end_conference_on_exit: p.end_conference_on_exit,
        date_created: p.date_created,
        date_updated: p.date_updated,
    }
}

/// Attaches media processes one after another: spawns the child (in `run` mode), waits for
/// it to attach, and when it dies ends its calls, resets the rings and starts another.
struct MediaSupervisor {
    config: Config,
    args: Args,
    segment: Arc<Segment>,
    listener: Arc<AttachListener>,
    media: MediaPlane,
    spawn_child: bool,
    store: Store,
}

impl MediaSupervisor {
    /// Never returns: every failure (spawn, attach, eventfds) is logged and retried with
    /// backoff, so the control plane and its calls outlive any media trouble.
    async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = std::time::Instant::now();
            if let Err(e) = self.one_media_process().await {
                tracing::error!(error = %e, "media plane unavailable");
            }
            self.media.lost().await;
            self.segment.reset();
            // Recordings the lost process was writing will never complete.
            match self
                .store
                .fail_unfinished_recordings(router::driver::now_ms())
                .await
            {
                Ok(0) => {}
                Ok(failed) => tracing::warn!(
                    recordings = failed,
                    "recordings lost with the media process"
                ),
                Err(e) => tracing::error!(error = %e, "cannot fail the lost recordings"),
            }
            if started.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(100);
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// Starts (in `run` mode) and attaches one media process, and waits until it is gone.
    async fn one_media_process(&self) -> Result<()> {
        let mut child = if self.spawn_child {
            Some(self.spawn()?)
        } else {
            None
        };
        let result = self.attach_and_wait(child.as_mut()).await;
        if let Some(mut child) = child {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        result
    }

    async fn attach_and_wait(&self, child: Option<&mut tokio::process::Child>) -> Result<()> {
        let doorbells = DoorbellSet::new(self.segment.workers())?;
        let listener = self.listener.clone();
        let segment = self.segment.clone();
        // Short slices so shutdown never waits long on a blocking accept.
        let timeout = if self.spawn_child {
            Duration::from_secs(20)
        } else {
            Duration::from_secs(2)
        };
        let (attached, doorbells) = tokio::task::spawn_blocking(move || {
            let result = listener.accept(&segment, &doorbells, timeout);
            (result, doorbells)
        })
        .await?;
        let attachment = match attached {
            Ok(attachment) => attachment,
            Err(shmq::ShmqError::Timeout) if !self.spawn_child => return Ok(()),
            Err(e) => return Err(e).context("media process did not attach"),
        };
        self.media.attached(doorbells)?;
        tracing::info!("media plane attached");
        self.wait_until_gone(&attachment, child).await;
        tracing::error!("media plane gone; ending its calls");
        Ok(())
    }

    fn spawn(&self) -> Result<tokio::process::Child> {
        let exe = std::env::current_exe().context("locating the switchboard binary")?;
        let mut command = tokio::process::Command::new(exe);
        command.arg("media");
        if let Some(config) = &self.args.config {
            command.arg("--config").arg(config);
        }
        command.stdin(Stdio::null()).kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child
        // when this process dies, so a crashed control plane never leaves media running.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().context("spawning the media process")?;
        if let Some(pid) = child.id() {
            write_pid(&self.config.media_pid_path(), pid);
            tracing::info!(pid, "media process started");
        }
        Ok(child)
    }

    async fn wait_until_gone(
        &self,
        attachment: &shmq::Attachment,
        child: Option<&mut tokio::process::Child>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        match child {
            Some(child) => loop {
                tokio::select! {
                    status = child.wait() => {
                        tracing::error!(?status, "media process exited");
                        return;
                    }
                    _ = tick.tick() => if attachment.peer_gone() { return },
                }
            },
            None => loop {
                tick.tick().await;
                if attachment.peer_gone() {
                    return;
                }
            },
        }
    }
}

fn write_pid(path: &Path, pid: u32) {
    if let Err(e) = std::fs::write(path, format!("{pid}\n")) {
        tracing::warn!(error = %e, path = %path.display(), "cannot write media pid file");
    }
}
