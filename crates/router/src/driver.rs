//! The async driver: turns SIP events into calls, runs each call's core in its own task,
//! and carries out the core's outputs (HTTP, media preparation, media commands, SIP,
//! timers, records). A `<Dial>`'s legs become child calls with tasks of their own, linked
//! to their parent's task by its input channel. No call logic lives here: every decision
//! is the core's.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use media_layer::MediaCache;
use rand::Rng;
use sip::endpoint::{IncomingCall, LegId, SipEvent};
use sip::transport::SipHandle;
use store::{CallRecord, CallStatus, Notification, Store};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use twiml::HttpMethod;
use webhook::{WebhookClient, WebhookRequest};

use crate::call::OutboundSetup;
use crate::call::{
    AppRequest, AppResult, Call, CallConfig, CallUpdate, DialLegPlan, DialLegTarget, DialPlan,
    Input, LegEvent, MediaSetup, MediaSource, NotificationInfo, Output, SipAction, ToneKind,
};
use crate::channels::{ChannelTicket, TrunkChannels};
use crate::conference::LeaveReason;
use crate::conferences::{Conferences, RoomRecord};
use crate::media_plane::{session_beside, MediaPlane, MediaPlaneError};
use crate::params::CallParams;
use crate::qos::QosKeeper;
use crate::recordings::{RecordRequest, RecordingReporter};

/// How long a finished call waits for its SIP leg to wind down before the task exits.
const LEG_LINGER: Duration = Duration::from_secs(40);

/// Static settings of the router.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// The address put in SDP answers (where the media plane listens).
    pub media_ip: IpAddr,
    /// Base URL of the REST API as apps reach it (`RecordingUrl`s start with it).
    pub api_base_url: String,
}

/// Routes calls; cheap to clone.
#[derive(Clone)]
pub struct CallRouter {
    inner: Arc<Inner>,
}

struct Inner {
    config: RouterConfig,
    store: Store,
    sip: SipHandle,
    media: MediaPlane,
    cache: MediaCache,
    webhook: WebhookClient,
    legs: Mutex<HashMap<LegId, UnboundedSender<Input>>>,
    /// Calls in progress (outbound ones from their acceptance) by CallSid, for live call
    /// control.
    calls: Mutex<HashMap<String, UnboundedSender<Input>>>,
    /// Trunk capacity: outbound calls beyond a trunk's `max_channels` wait here.
    channels: TrunkChannels,
    recordings: RecordingReporter,
    /// The conference rooms of this node.
    conferences: Conferences,
    /// Each call leg's media quality, from its session's RTCP.
    qos: QosKeeper,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Current wall-clock time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds as Twilio writes dates in callbacks: `Tue, 14 Apr 2026 09:26:42 +0000`.
pub(crate) fn rfc2822(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S +0000").to_string())
        .unwrap_or_default()
}

/// A new SID: two-letter prefix + 32 hex digits.
pub fn new_sid(prefix: &str) -> String {
    let bytes: [u8; 16] = rand::rng().random();
    format!("{prefix}{}", hex::encode(bytes))
}

impl CallRouter {
    pub fn new(
        config: RouterConfig,
        store: Store,
        sip: SipHandle,
        media: MediaPlane,
        cache: MediaCache,
        webhook: WebhookClient,
    ) -> CallRouter {
        let recordings =
            RecordingReporter::new(store.clone(), webhook.clone(), config.api_base_url.clone());
        let qos = QosKeeper::new(store.clone());
        CallRouter {
            inner: Arc::new(Inner {
                config,
                store,
                sip,
                media,
                cache,
                webhook,
                recordings,
                qos,
                legs: Mutex::new(HashMap::new()),
                calls: Mutex::new(HashMap::new()),
                channels: TrunkChannels::new(),
                conferences: Conferences::default(),
            }),
        }
    }

    /// Number of calls in progress.
    pub fn active_calls(&self) -> usize {
        lock(&self.inner.legs).len()
    }

    /// Sends a signed status callback that belongs to no call's core (e.g. the outcome of a
    /// caller-ID validation): at least once, retried with backoff, in its own task.
    pub fn send_status_callback(&self, request: WebhookRequest) {
        tokio::spawn(deliver_status_callback(self.inner.webhook.clone(), request));
    }

    /// Live call control: hands `update` to the call if it is still in progress.
    /// Returns false when no such call is running here.
    pub fn update_call(&self, call_sid: &str, update: CallUpdate) -> bool {
        match lock(&self.inner.calls).get(call_sid) {
            Some(call) => call.send(Input::Control(update)).is_ok(),
            None => false,
        }
    }

    /// The live conference rooms (the REST API reads and changes them).
    pub fn conferences(&self) -> &Conferences {
        &self.inner.conferences
    }

    /// The webhook client the router signs requests with.
    pub(crate) fn webhook(&self) -> WebhookClient {
        self.inner.webhook.clone()
    }

    /// Stores a conference room's state (logged, not fatal, when the store fails).
    pub(crate) async fn store_conference(&self, record: &RoomRecord) {
        let conference = store::Conference {
            sid: record.sid.clone(),
            account_sid: record.account_sid.clone(),
            friendly_name: record.friendly_name.clone(),
            status: record.status.to_string(),
            reason_conference_ended: record.reason_ended.clone(),
            call_sid_ending_conference: record.call_sid_ending.clone(),
            date_created: record.date_created,
            date_updated: record.date_updated,
        };
        if let Err(e) = self.inner.store.upsert_conference(&conference).await {
            tracing::error!(conference = %record.sid, error = %e, "cannot store conference");
        }
    }

    /// A trunk was changed (its `max_channels` is `max_channels`) or removed (`None`): calls
    /// waiting for its channels follow at once.
    pub fn trunk_changed(&self, trunk_sid: &str, max_channels: Option<u32>) {
        match max_channels {
            Some(limit) => self.inner.channels.set_limit(trunk_sid, limit),
            None => self.inner.channels.remove_trunk(trunk_sid),
        }
    }

    /// Consumes SIP events until the SIP transport stops.
    pub async fn run(self, mut events: UnboundedReceiver<SipEvent>) {
        let (recordings_done, done_events) = mpsc::unbounded_channel();
        self.inner.media.set_recording_sink(recordings_done);
        tokio::spawn(self.inner.recordings.clone().run(done_events));
        let (qos_sink, qos_events) = mpsc::unbounded_channel();
        self.inner.media.set_qos_sink(qos_sink);
        tokio::spawn(self.inner.qos.clone().run(qos_events));
        while let Some(event) = events.recv().await {
            let (leg, input) = match event {
                SipEvent::IncomingCall(incoming) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    lock(&self.inner.legs).insert(incoming.leg, tx.clone());
                    let router = self.clone();
                    tokio::spawn(async move { router.run_call(incoming, tx, rx).await });
                    continue;
                }
                SipEvent::Acked { leg } => (leg, Input::Acked),
                SipEvent::Cancelled { leg } => (leg, Input::Cancelled),
                SipEvent::RemoteHangup { leg } => (leg, Input::RemoteHangup),
                SipEvent::Terminated { leg, .. } => (leg, Input::LegTerminated),
                SipEvent::Progress { leg, status, .. } => (leg, Input::Progress { status }),
                SipEvent::Answered { leg, sdp } => (leg, Input::Answered { sdp }),
                SipEvent::Failed { leg, status } => (leg, Input::DialFailed { status }),
            };
            if let Some(call) = lock(&self.inner.legs).get(&leg) {
                let _ = call.send(input);
            }
        }
    }

    /// Sets up one inbound call and runs it to the end.
    async fn run_call(
        self,
        incoming: IncomingCall,
        tx: UnboundedSender<Input>,
        rx: UnboundedReceiver<Input>,
    ) {
        let leg = incoming.leg;
        let setup = self.setup(&incoming).await;
        let (mut call, record) = match setup {
            Ok(call) => call,
            Err(status) => {
                self.inner.sip.reject(leg, status);
                lock(&self.inner.legs).remove(&leg);
                return;
            }
        };
        if let Err(e) = self.inner.store.insert_call(&record).await {
            tracing::error!(error = %e, "cannot store call");
            self.inner.sip.reject(leg, 500);
            lock(&self.inner.legs).remove(&leg);
            return;
        }
        call.start();
        self.drive(call, &record, Some(leg), None, tx, rx).await;
    }

    /// Runs a call's core (started, or ended before dialling) until it finishes, carrying
    /// out its outputs.
    async fn drive(
        &self,
        mut call: Call,
        record: &CallRecord,
        leg: Option<LegId>,
        dialled_by: Option<DialLink>,
        tx: UnboundedSender<Input>,
        mut rx: UnboundedReceiver<Input>,
    ) {
        let session = call.session();
        self.inner.media.register(session, tx.clone());
        self.inner
            .qos
            .track(session, &record.sid, &record.account_sid);
        lock(&self.inner.calls).insert(record.sid.clone(), tx.clone());
        let mut run = CallRun {
            router: self,
            leg,
            tx: &tx,
            call_sid: record.sid.clone(),
            account_sid: record.account_sid.clone(),
            session,
            dialled_by,
            dial_legs: HashMap::new(),
            answered_at: None,
            finished: false,
            ended: false,
            callbacks_sent: 0,
            timers: Vec::new(),
        };
        run.carry_out(&mut call).await;
        while !run.finished {
            let input = if run.ended {
                tokio::time::timeout(LEG_LINGER, rx.recv())
                    .await
                    .unwrap_or_default()
            } else {
                rx.recv().await
            };
            let Some(input) = input else { break };
            call.handle(input);
            run.carry_out(&mut call).await;
        }
        for timer in run.timers.drain(..) {
            timer.abort();
        }
        // A call that vanished without saying so leaves its conference all the same.
        self.inner
            .conferences
            .leave(&run.call_sid, LeaveReason::HungUp)
            .deliver(self)
            .await;
        self.inner.media.unregister(session);
        self.inner.qos.call_ended(session);
        lock(&self.inner.calls).remove(&run.call_sid);
        if let Some(leg) = run.leg {
            lock(&self.inner.legs).remove(&leg);
        }
    }

    /// Places an outbound call (Create Call): checks `from` is one of the account's numbers
    /// or validated caller IDs and that `to`
    /// routes (a trunk by longest prefix, or a `sip:` URI with an IP address), stores the
    /// call as `queued` with its request (durable: a restart before it is dialled loses
    /// nothing), and dials it as soon as the media plane is up. Returns the stored record.
    pub async fn place_call(&self, request: OutboundRequest) -> Result<CallRecord, PlaceError> {
        if !self
            .may_call_from(&request.account_sid, &request.from)
            .await?
        {
            return Err(PlaceError::FromNotOwned(request.from));
        }
        self.place_unchecked(request, Duration::ZERO).await
    }

    /// Whether `caller_id` is one of the account's numbers or validated caller IDs.
    async fn may_call_from(&self, account_sid: &str, caller_id: &str) -> Result<bool, PlaceError> {
        let store = &self.inner.store;
        Ok(store
            .number_by_dialled(caller_id)
            .await?
            .is_some_and(|n| n.account_sid == account_sid)
            || store.is_caller_id_of(account_sid, caller_id).await?)
    }

    /// Places a call Switchboard makes on an account's behalf (the caller-ID validation
    /// call): `from` is the operator's caller ID, not one of the account's numbers, so it
    /// is not checked. Otherwise exactly [`CallRouter::place_call`].
    /// The call is dialled `delay` after it is accepted (a restart meanwhile dials it at once).
    pub async fn place_system_call(
        &self,
        request: OutboundRequest,
        delay: Duration,
    ) -> Result<CallRecord, PlaceError> {
        self.place_unchecked(request, delay).await
    }

    async fn place_unchecked(
        &self,
        request: OutboundRequest,
        delay: Duration,
    ) -> Result<CallRecord, PlaceError> {
        let store = &self.inner.store;
        let account = store
            .account(&request.account_sid)
            .await?
            .ok_or_else(|| PlaceError::NoAccount(request.account_sid.clone()))?;
        let route = self.route(&request).await?;
        let now = now_ms();
        let record = CallRecord {
            sid: new_sid("CA"),
            account_sid: account.sid.clone(),
            parent_call_sid: None,
            from: request.from.clone(),
            to: request.to.clone(),
            from_formatted: request.from.clone(),
            to_formatted: request.to.clone(),
            direction: "outbound-api".into(),
            status: CallStatus::Queued,
            caller_name: None,
            forwarded_from: None,
            date_created: now,
            date_updated: now,
            start_time: None,
            end_time: None,
            duration: None,
        };
        store
            .insert_call_request(&record, &request.to_json())
            .await?;
        if delay.is_zero() {
            self.dial_when_ready(record.clone(), request, route);
        } else {
            let router = self.clone();
            let queued = record.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                router.dial_when_ready(queued, request, route);
            });
        }
        Ok(record)
    }

    /// Dials the calls accepted before a restart and not dialled yet, in the order they
    /// were accepted (they take their places in their trunks' lines in that order).
    pub async fn resume_pending_calls(&self) -> Result<usize, PlaceError> {
        let pending = self.inner.store.pending_call_requests().await?;
        let count = pending.len();
        for (record, json) in pending {
            let Some(request) = OutboundRequest::from_json(&json) else {
                tracing::error!(call = %record.sid, "unreadable stored call request");
                self.fail_unplaced(&record).await?;
                continue;
            };
            match self.route(&request).await {
                Ok(route) => self.dial_when_ready(record, request, route),
                Err(e) => {
                    tracing::warn!(call = %record.sid, error = %e, "call cannot be dialled");
                    self.fail_unplaced(&record).await?;
                }
            }
        }
        Ok(count)
    }

    /// A stored request that cannot even be read or routed: the call fails as it is.
    async fn fail_unplaced(&self, record: &CallRecord) -> Result<(), PlaceError> {
        self.inner.store.delete_call_request(&record.sid).await?;
        self.inner
            .store
            .update_call_status(&record.sid, CallStatus::Failed, now_ms(), false)
            .await?;
        Ok(())
    }

    /// Takes the accepted call's place in its trunk's line and makes it reachable by live
    /// call control at once (before this returns: a cancel right after the 201 finds it),
    /// then dials it in its own task when it may be.
    fn dial_when_ready(&self, record: CallRecord, request: OutboundRequest, route: Route) {
        let ticket = self.join_channel(&route, &record.sid);
        let inbox = Inbox::new();
        lock(&self.inner.calls).insert(record.sid.clone(), inbox.tx.clone());
        let router = self.clone();
        tokio::spawn(async move {
            router
                .dial_queued(record, request, route, ticket, None, inbox)
                .await;
        });
    }

    fn join_channel(&self, route: &Route, call_sid: &str) -> Option<ChannelTicket> {
        route.trunk.as_ref().map(|trunk| {
            self.inner
                .channels
                .join(&trunk.sid, trunk.max_channels, call_sid)
        })
    }

    /// A `queued` call: waits for a channel of its trunk and for the media plane, unless it
    /// is canceled meanwhile (`Status=canceled` or `completed`), then runs it to its end.
    async fn dial_queued(
        &self,
        record: CallRecord,
        mut request: OutboundRequest,
        accepted_route: Route,
        ticket: Option<ChannelTicket>,
        dialled_by: Option<DialLink>,
        inbox: Inbox,
    ) {
        let Inbox { tx, mut rx } = inbox;
        // Routing depends on To/From only, which no update changes.
        let routing = request.clone();
        let ready = {
            let wait = self.wait_to_dial(&record, &routing, ticket);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    ready = &mut wait => break Some(ready),
                    input = rx.recv() => match input {
                        Some(Input::Control(CallUpdate::Cancel | CallUpdate::Complete)) | None => {
                            break None;
                        }
                        Some(Input::Control(update)) => {
                            self.update_queued(&record, &mut request, update).await;
                        }
                        // Nothing else reaches a call before it is dialled.
                        Some(_) => {}
                    },
                }
            }
        };
        let store = &self.inner.store;
        match ready {
            Some(Ok((route, ticket))) => {
                let config = self.outbound_config(&record, &request, route, dialled_by.as_ref());
                let mut call = Call::new(config);
                call.start();
                self.drive(call, &record, None, dialled_by, tx, rx).await;
                // The call is over: its channel goes to the next call in line.
                drop(ticket);
            }
            Some(Err(DialBlocked::NotQueued)) => {
                lock(&self.inner.calls).remove(&record.sid);
                if let Some(link) = dialled_by {
                    link.report(
                        &record.sid,
                        LegEvent::Ended {
                            status: CallStatus::Canceled,
                            duration: 0,
                        },
                    );
                }
            }
            Some(Err(DialBlocked::Unroutable(e))) => {
                tracing::warn!(call = %record.sid, error = %e, "call cannot be dialled");
                self.end_undialled(
                    &record,
                    &request,
                    accepted_route,
                    CallStatus::Failed,
                    dialled_by,
                    Inbox { tx, rx },
                )
                .await;
            }
            None => {
                tracing::info!(call = %record.sid, "queued call canceled before it was dialled");
                self.end_undialled(
                    &record,
                    &request,
                    accepted_route,
                    CallStatus::Canceled,
                    dialled_by,
                    Inbox { tx, rx },
                )
                .await;
            }
        }
        let _ = store.delete_call_request(&record.sid).await;
    }

    /// New instructions (`Url` or `Twiml`) for a call not dialled yet: they run when it is
    /// answered, also after a restart in between.
    async fn update_queued(
        &self,
        record: &CallRecord,
        request: &mut OutboundRequest,
        update: CallUpdate,
    ) {
        match update {
            CallUpdate::Redirect { url, method } => {
                request.url = Some(url);
                request.method = method;
                request.twiml = None;
            }
            CallUpdate::Twiml(xml) => request.twiml = Some(xml),
            CallUpdate::Cancel | CallUpdate::Complete => return,
        }
        if let Err(e) = self
            .inner
            .store
            .update_call_request(&record.sid, &request.to_json())
            .await
        {
            tracing::error!(call = %record.sid, error = %e, "cannot store the updated request");
        }
    }

    /// Waits until the call may be dialled: a channel of its trunk is its (none is needed
    /// for a `sip:` address), the media plane is up, and it is still `queued`. Routes it
    /// again then (the trunk may have changed meanwhile); a different trunk means waiting
    /// in that trunk's line.
    async fn wait_to_dial(
        &self,
        record: &CallRecord,
        request: &OutboundRequest,
        mut ticket: Option<ChannelTicket>,
    ) -> Result<(Route, Option<ChannelTicket>), DialBlocked> {
        loop {
            if let Some(waiting) = &ticket {
                if waiting.granted().await.is_err() {
                    // Its trunk was removed: route it again.
                    drop(ticket.take());
                    let route = self.route(request).await.map_err(DialBlocked::Unroutable)?;
                    ticket = self.join_channel(&route, &record.sid);
                    continue;
                }
            }
            self.inner.media.wait_attached().await;
            match self
                .inner
                .store
                .call(&record.account_sid, &record.sid)
                .await
            {
                Ok(Some(current)) if current.status == CallStatus::Queued => {}
                // Ended (or gone) while it waited.
                _ => return Err(DialBlocked::NotQueued),
            }
            let route = self.route(request).await.map_err(DialBlocked::Unroutable)?;
            let trunk_sid = route.trunk.as_ref().map(|t| t.sid.as_str());
            if trunk_sid == ticket.as_ref().map(ChannelTicket::trunk) {
                return Ok((route, ticket));
            }
            drop(ticket.take());
            ticket = self.join_channel(&route, &record.sid);
        }
    }

    /// Ends a call that was never dialled with `status`, its status callback included.
    async fn end_undialled(
        &self,
        record: &CallRecord,
        request: &OutboundRequest,
        route: Route,
        status: CallStatus,
        dialled_by: Option<DialLink>,
        inbox: Inbox,
    ) {
        let config = self.outbound_config(record, request, route, dialled_by.as_ref());
        let mut call = Call::new(config);
        call.end_before_dialing(status);
        self.drive(call, record, None, dialled_by, inbox.tx, inbox.rx)
            .await;
    }

    // ----- <Dial> legs --------------------------------------------------------------------

    /// Places the legs of a `<Dial>` of the call `parent`: each becomes a child call
    /// (`outbound-dial`, `ParentCallSid`) stored as `queued`, dialled like Create Call
    /// (trunk line, media plane) in its own task, reporting to `parent.tx`. Returns each
    /// placed leg's input sender (for the parent's hang-ups); a leg that cannot even be
    /// stored is reported ended (`failed`) at once.
    async fn place_dial_legs(
        &self,
        parent: &ParentCall,
        mut plan: DialPlan,
    ) -> Vec<(u32, UnboundedSender<Input>)> {
        if plan.check_caller_id {
            let allowed = match self
                .may_call_from(&parent.account_sid, &plan.caller_id)
                .await
            {
                Ok(allowed) => allowed,
                Err(e) => {
                    tracing::error!(error = %e, "caller ID lookup failed");
                    false
                }
            };
            if !allowed {
                let _ = parent.tx.send(Input::DialRefused {
                    code: 13214,
                    message: format!(
                        "Dial: Invalid callerId value {:?}: it is neither one of the \
                         account's numbers nor a validated caller ID",
                        plan.caller_id
                    ),
                });
                return Vec::new();
            }
        }
        let mut placed = Vec::new();
        let legs = std::mem::take(&mut plan.legs);
        for leg in legs {
            let id = leg.leg;
            match self.place_dial_leg(parent, &plan, leg).await {
                Ok(tx) => placed.push((id, tx)),
                Err(e) => {
                    tracing::error!(call = %parent.call_sid, error = %e, "cannot place a Dial leg");
                    let _ = parent.tx.send(Input::DialLeg {
                        leg: id,
                        call_sid: String::new(),
                        event: LegEvent::Ended {
                            status: CallStatus::Failed,
                            duration: 0,
                        },
                    });
                }
            }
        }
        placed
    }

    async fn place_dial_leg(
        &self,
        parent: &ParentCall,
        plan: &DialPlan,
        leg: DialLegPlan,
    ) -> Result<UnboundedSender<Input>, PlaceError> {
        let (to, credentials) = match leg.target {
            DialLegTarget::Number(number) => (number, None),
            DialLegTarget::Sip {
                uri,
                username,
                password,
            } => (
                uri,
                username.map(|username| sip::endpoint::DigestCredentials {
                    username,
                    password: password.unwrap_or_default(),
                }),
            ),
        };
        let request = OutboundRequest {
            account_sid: parent.account_sid.clone(),
            to,
            from: plan.caller_id.clone(),
            url: leg.whisper_url,
            method: leg.whisper_method,
            twiml: None,
            fallback_url: None,
            fallback_method: HttpMethod::Post,
            status_callback: leg.status_callback,
            status_callback_method: leg.status_callback_method,
            status_callback_events: leg.status_callback_events,
            timeout: plan.ring_timeout,
            send_digits: leg.send_digits,
            time_limit: plan.time_limit,
            record: None,
        };
        let now = now_ms();
        let record = CallRecord {
            sid: new_sid("CA"),
            account_sid: parent.account_sid.clone(),
            parent_call_sid: Some(parent.call_sid.clone()),
            from: request.from.clone(),
            to: request.to.clone(),
            from_formatted: request.from.clone(),
            to_formatted: request.to.clone(),
            direction: "outbound-dial".into(),
            status: CallStatus::Queued,
            caller_name: None,
            forwarded_from: None,
            date_created: now,
            date_updated: now,
            start_time: None,
            end_time: None,
            duration: None,
        };
        self.inner.store.insert_call(&record).await?;
        let link = DialLink {
            parent_call_sid: parent.call_sid.clone(),
            parent: parent.tx.clone(),
            leg: leg.leg,
            parent_session: parent.session,
            credentials,
        };
        let inbox = Inbox::new();
        let tx = inbox.tx.clone();
        lock(&self.inner.calls).insert(record.sid.clone(), tx.clone());
        tokio::spawn(self.dial_leg_task(record, request, link, inbox));
        Ok(tx)
    }

    /// Where and how to dial `request.to`.
    async fn route(&self, request: &OutboundRequest) -> Result<Route, PlaceError> {
        if let Some(uri) = request.to.strip_prefix("sip:") {
            let host = uri.split('@').nth(1).unwrap_or(uri);
            let host = host.split([';', '?']).next().unwrap_or(host);
            let destination = host
                .parse::<std::net::SocketAddr>()
                .or_else(|_| format!("{host}:5060").parse())
                .map_err(|_| PlaceError::NoRoute(request.to.clone()))?;
            return Ok(Route {
                request_uri: request.to.clone(),
                destination,
                credentials: None,
                caller_id: request.from.clone(),
                trunk: None,
            });
        }
        let trunk = self
            .inner
            .store
            .trunk_for_number(&request.to)
            .await?
            .ok_or_else(|| PlaceError::NoRoute(request.to.clone()))?;
        let destination = trunk
            .gateway
            .parse()
            .map_err(|_| PlaceError::NoRoute(request.to.clone()))?;
        Ok(Route {
            request_uri: format!("sip:{}@{}", trunk.dial_user(&request.to), trunk.gateway),
            destination,
            credentials: trunk.username.clone().zip(trunk.password.clone()).map(
                |(username, password)| sip::endpoint::DigestCredentials { username, password },
            ),
            caller_id: trunk.caller_id.clone().unwrap_or(request.from.clone()),
            trunk: Some(RouteTrunk {
                sid: trunk.sid.clone(),
                max_channels: trunk.max_channels,
            }),
        })
    }

    /// Routes and dials a `<Dial>` leg, then runs it to its end. A boxed future: the leg's
    /// call may itself `<Dial>` (from its whisper), and the type must not contain itself.
    fn dial_leg_task(
        &self,
        record: CallRecord,
        request: OutboundRequest,
        link: DialLink,
        inbox: Inbox,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let router = self.clone();
        Box::pin(async move {
            match router.route(&request).await {
                Ok(route) => {
                    let ticket = router.join_channel(&route, &record.sid);
                    router
                        .dial_queued(record, request, route, ticket, Some(link), inbox)
                        .await;
                }
                Err(e) => {
                    tracing::warn!(call = %record.sid, error = %e, "Dial leg cannot be dialled");
                    let route = Route::unroutable(&request);
                    router
                        .end_undialled(
                            &record,
                            &request,
                            route,
                            CallStatus::Failed,
                            Some(link),
                            inbox,
                        )
                        .await;
                }
            }
        })
    }

    fn outbound_config(
        &self,
        record: &CallRecord,
        request: &OutboundRequest,
        route: Route,
        dialled_by: Option<&DialLink>,
    ) -> CallConfig {
        let media_ip = self.inner.config.media_ip;
        let local = self.inner.sip.local_addr();
        let random = rand::rng().random::<u64>();
        let session = match dialled_by {
            // A bridge's legs must share a media worker.
            Some(link) => session_beside(
                link.parent_session,
                self.inner.media.segment().workers(),
                random,
            ),
            None => shmq::SessionId(random >> 1),
        };
        CallConfig {
            params: CallParams {
                call_sid: record.sid.clone(),
                account_sid: record.account_sid.clone(),
                from: request.from.clone(),
                to: request.to.clone(),
                direction: record.direction.clone(),
                caller_name: None,
                forwarded_from: None,
                parent_call_sid: dialled_by.map(|link| link.parent_call_sid.clone()),
            },
            voice_url: request.url.clone(),
            voice_method: request.method,
            fallback_url: request.fallback_url.clone(),
            fallback_method: request.fallback_method,
            status_callback: request.status_callback.clone(),
            status_callback_method: request.status_callback_method,
            status_callback_events: request.status_callback_events.clone(),
            media: MediaSetup {
                session,
                // Our offer's defaults until the answer says otherwise; the placeholder
                // remote (discard port) never gets RTP: nothing is sent before the answer.
                negotiated: sdp::Negotiated {
                    codec: sdp::AudioCodec::Pcmu,
                    payload_type: 0,
                    remote_rtp: std::net::SocketAddr::new(media_ip, 9),
                    telephone_event_pt: Some(101),
                    ptime_ms: 20,
                },
                local_ip: media_ip,
            },
            outbound: Some(Box::new(OutboundSetup {
                to_uri: route.request_uri.clone(),
                request_uri: route.request_uri,
                destination: route.destination,
                from_uri: format!("sip:{}@{local}", route.caller_id),
                credentials: dialled_by
                    .and_then(|link| link.credentials.clone())
                    .or(route.credentials),
                ring_timeout: request.timeout,
                send_digits: request.send_digits.clone(),
                twiml: request.twiml.clone(),
                record: request.record.as_ref().map(|r| crate::call::RecordSetup {
                    recording_sid: new_sid("RE"),
                    channels: r.channels,
                    status_callback: r.status_callback.clone(),
                    status_callback_method: r.status_callback_method,
                    status_callback_events: r.status_callback_events.clone(),
                }),
                dial_leg: dialled_by.is_some(),
            })),
            time_limit: request.time_limit,
        }
    }

    /// Number lookup and media negotiation; an Err is the SIP status to reject with.
    async fn setup(&self, incoming: &IncomingCall) -> Result<(Call, CallRecord), u16> {
        let store = &self.inner.store;
        let number = match store.number_by_dialled(&incoming.request_user).await {
            Ok(Some(number)) => number,
            Ok(None) => return Err(404),
            Err(e) => {
                tracing::error!(error = %e, "number lookup failed");
                return Err(500);
            }
        };
        let account = match store.account(&number.account_sid).await {
            Ok(Some(account)) if account.status == "active" => account,
            Ok(_) => return Err(403),
            Err(e) => {
                tracing::error!(error = %e, "account lookup failed");
                return Err(500);
            }
        };
        let offer = incoming
            .sdp
            .as_deref()
            .map(String::from_utf8_lossy)
            .ok_or(488u16)?;
        let offer = sdp::parse(&offer).map_err(|_| 400u16)?;
        let negotiated = sdp::negotiate(&offer, &[sdp::AudioCodec::Pcmu, sdp::AudioCodec::Pcma])
            .map_err(|_| 488u16)?;
        let from = caller_id(&incoming.from_user, &incoming.from_uri);
        let now = now_ms();
        let call_sid = new_sid("CA");
        let record = CallRecord {
            sid: call_sid.clone(),
            account_sid: account.sid.clone(),
            parent_call_sid: None,
            from: from.clone(),
            to: number.phone_number.clone(),
            from_formatted: from.clone(),
            to_formatted: number.phone_number.clone(),
            direction: "inbound".into(),
            status: CallStatus::Ringing,
            caller_name: incoming.from_display.clone(),
            forwarded_from: None,
            date_created: now,
            date_updated: now,
            start_time: None,
            end_time: None,
            duration: None,
        };
        let session = shmq::SessionId(rand::rng().random::<u64>() >> 1);
        let config = CallConfig {
            params: CallParams {
                call_sid,
                account_sid: account.sid.clone(),
                from,
                to: number.phone_number.clone(),
                direction: "inbound".into(),
                caller_name: incoming.from_display.clone(),
                forwarded_from: None,
                parent_call_sid: None,
            },
            voice_url: number.voice_url.clone(),
            voice_method: parse_method(&number.voice_method),
            fallback_url: number.voice_fallback_url.clone(),
            fallback_method: parse_method(&number.voice_fallback_method),
            status_callback: number.status_callback.clone(),
            status_callback_method: parse_method(&number.status_callback_method),
            status_callback_events: vec!["completed".into()],
            outbound: None,
            time_limit: crate::call::DEFAULT_TIME_LIMIT,
            media: MediaSetup {
                session,
                negotiated,
                local_ip: self.inner.config.media_ip,
            },
        };
        Ok((Call::new(config), record))
    }

    pub(crate) async fn auth_token(&self, account_sid: &str) -> String {
        match self.inner.store.account(account_sid).await {
            Ok(Some(account)) => account.auth_token,
            _ => String::new(),
        }
    }
}

/// A Create Call request, validated by the API.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundRequest {
    pub account_sid: String,
    /// E.164 number (routed through a trunk) or a `sip:` URI.
    pub to: String,
    /// One of the account's numbers.
    pub from: String,
    pub url: Option<String>,
    pub method: HttpMethod,
    pub twiml: Option<String>,
    pub fallback_url: Option<String>,
    pub fallback_method: HttpMethod,
    pub status_callback: Option<String>,
    pub status_callback_method: HttpMethod,
    pub status_callback_events: Vec<String>,
    pub timeout: Duration,
    pub send_digits: Option<String>,
    /// Longest the call may last once answered (`TimeLimit`).
    pub time_limit: Duration,
    /// `Record=true`: record the call from the answer on.
    pub record: Option<RecordRequest>,
}

/// Where and how an outbound call is dialled.
struct Route {
    request_uri: String,
    destination: std::net::SocketAddr,
    credentials: Option<sip::endpoint::DigestCredentials>,
    caller_id: String,
    /// The trunk whose channel the call takes (none for a `sip:` address).
    trunk: Option<RouteTrunk>,
}

/// A call's input channel: the sender others reach it by (kept in the router's maps) and
/// the receiving end its task reads.
struct Inbox {
    tx: UnboundedSender<Input>,
    rx: UnboundedReceiver<Input>,
}

impl Inbox {
    fn new() -> Inbox {
        let (tx, rx) = mpsc::unbounded_channel();
        Inbox { tx, rx }
    }
}

impl Route {
    /// Stands in for the route of a call that will never be dialled (it ends at once).
    fn unroutable(request: &OutboundRequest) -> Route {
        Route {
            request_uri: request.to.clone(),
            destination: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            credentials: None,
            caller_id: request.from.clone(),
            trunk: None,
        }
    }
}

/// How a `<Dial>` leg reaches the call that dialled it.
#[derive(Clone)]
struct DialLink {
    parent_call_sid: String,
    parent: UnboundedSender<Input>,
    /// The leg's id in the parent's `<Dial>`.
    leg: u32,
    /// The parent's media session (the leg's must be on the same worker).
    parent_session: shmq::SessionId,
    /// `<Sip username password>`.
    credentials: Option<sip::endpoint::DigestCredentials>,
}

impl DialLink {
    fn report(&self, call_sid: &str, event: LegEvent) {
        let _ = self.parent.send(Input::DialLeg {
            leg: self.leg,
            call_sid: call_sid.to_string(),
            event,
        });
    }
}

/// The call whose `<Dial>` places legs.
struct ParentCall {
    call_sid: String,
    account_sid: String,
    session: shmq::SessionId,
    tx: UnboundedSender<Input>,
}

/// The trunk a call is routed through, as its channel pool knows it.
struct RouteTrunk {
    sid: String,
    max_channels: u32,
}

/// Why a queued call is not dialled.
enum DialBlocked {
    /// It is no longer `queued` (ended elsewhere).
    NotQueued,
    /// No trunk or address routes it any more.
    Unroutable(PlaceError),
}

impl OutboundRequest {
    /// The request as stored between acceptance and dialling.
    fn to_json(&self) -> String {
        serde_json::json!({
            "account_sid": self.account_sid,
            "to": self.to,
            "from": self.from,
            "url": self.url,
            "method": crate::call::method_name(self.method),
            "twiml": self.twiml,
            "fallback_url": self.fallback_url,
            "fallback_method": crate::call::method_name(self.fallback_method),
            "status_callback": self.status_callback,
            "status_callback_method": crate::call::method_name(self.status_callback_method),
            "status_callback_events": self.status_callback_events,
            "timeout_ms": self.timeout.as_millis() as u64,
            "send_digits": self.send_digits,
            "time_limit_ms": self.time_limit.as_millis() as u64,
            "record": self.record.as_ref().map(|r| serde_json::json!({
                "channels": r.channels as u8,
                "status_callback": r.status_callback,
                "status_callback_method": crate::call::method_name(r.status_callback_method),
                "status_callback_events": r.status_callback_events,
            })),
        })
        .to_string()
    }

    fn from_json(text: &str) -> Option<OutboundRequest> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let string = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let method = |k: &str| parse_method(v.get(k).and_then(|x| x.as_str()).unwrap_or("POST"));
        Some(OutboundRequest {
            account_sid: string("account_sid")?,
            to: string("to")?,
            from: string("from")?,
            url: string("url"),
            method: method("method"),
            twiml: string("twiml"),
            fallback_url: string("fallback_url"),
            fallback_method: method("fallback_method"),
            status_callback: string("status_callback"),
            status_callback_method: method("status_callback_method"),
            status_callback_events: v
                .get("status_callback_events")?
                .as_array()?
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect(),
            timeout: Duration::from_millis(v.get("timeout_ms")?.as_u64()?),
            send_digits: string("send_digits"),
            // Requests stored before TimeLimit existed get Twilio's default.
            time_limit: v
                .get("time_limit_ms")
                .and_then(|x| x.as_u64())
                .map(Duration::from_millis)
                .unwrap_or(crate::call::DEFAULT_TIME_LIMIT),
            record: match v.get("record") {
                None | Some(serde_json::Value::Null) => None,
                Some(r) => Some(RecordRequest {
                    channels: r
                        .get("channels")
                        .and_then(|c| c.as_u64())
                        .and_then(|c| u8::try_from(c).ok())
                        .and_then(shmq::RecordingChannels::from_u8)?,
                    status_callback: r
                        .get("status_callback")
                        .and_then(|x| x.as_str())
                        .map(str::to_string),
                    status_callback_method: parse_method(
                        r.get("status_callback_method")
                            .and_then(|x| x.as_str())
                            .unwrap_or("POST"),
                    ),
                    status_callback_events: r
                        .get("status_callback_events")?
                        .as_array()?
                        .iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect(),
                }),
            },
        })
    }
}

/// Why a call could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(
        "the From number {0} is neither one of the account's numbers nor a validated caller ID"
    )]
    FromNotOwned(String),
    #[error("no trunk or address routes {0}")]
    NoRoute(String),
    #[error("no account {0}")]
    NoAccount(String),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
}

/// The driver's per-call bookkeeping while carrying out outputs.
struct CallRun<'a> {
    router: &'a CallRouter,
    /// The call's SIP leg (an outbound call has one once its INVITE is sent).
    leg: Option<LegId>,
    tx: &'a UnboundedSender<Input>,
    call_sid: String,
    account_sid: String,
    session: shmq::SessionId,
    /// Set when this call is a leg of another call's `<Dial>`.
    dialled_by: Option<DialLink>,
    /// The legs this call's `<Dial>`s placed, by leg id.
    dial_legs: HashMap<u32, UnboundedSender<Input>>,
    answered_at: Option<Instant>,
    /// The core said Finished.
    finished: bool,
    /// The call reached a final status (the leg may still be winding down).
    ended: bool,
    /// Status callbacks sent so far (Twilio's `SequenceNumber`).
    callbacks_sent: u32,
    /// Timers armed and maybe pending; aborted when the call is over (a 4-hour TimeLimit
    /// must not outlive its call).
    timers: Vec<tokio::task::AbortHandle>,
}

impl CallRun<'_> {
    async fn carry_out(&mut self, call: &mut Call) {
        while let Some(output) = call.poll_output() {
            self.execute(output).await;
        }
    }

    async fn execute(&mut self, output: Output) {
        let inner = &self.router.inner;
        match output {
            Output::Fetch {
                request_id,
                request,
            } => {
                let token = self.router.auth_token(&self.account_sid).await;
                let client = inner.webhook.clone();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let result = match client.request(&webhook_request(&request, token)).await {
                        Ok(response) => AppResult::Response {
                            url: response.url,
                            content_type: response.content_type,
                            body: response.body,
                        },
                        Err(e) => AppResult::Failed {
                            code: e.twilio_code(),
                            url: e.url().to_string(),
                            message: e.to_string(),
                        },
                    };
                    let _ = tx.send(Input::AppResult { request_id, result });
                });
            }
            Output::PrepareMedia { request_id, source } => {
                let cache = inner.cache.clone();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let prepared = match &source {
                        MediaSource::Say {
                            text,
                            voice,
                            language,
                        } => cache.say(text, voice, language).await,
                        MediaSource::Url(url) => cache.play_url(url).await,
                        MediaSource::Bytes { body, content_type } => {
                            cache.from_bytes(body, Some(content_type)).await
                        }
                        MediaSource::Ringback { country } => {
                            cache.ringback(country.as_deref()).await
                        }
                        MediaSource::Tone(kind) => {
                            let tone = match kind {
                                ToneKind::BeepEnter => media_layer::tones::BEEP_ENTER,
                                ToneKind::BeepExit => media_layer::tones::BEEP_EXIT,
                                ToneKind::HoldMusic => media_layer::tones::HOLD_MUSIC,
                            };
                            cache.melody(&tone).await
                        }
                    };
                    let result = prepared
                        .map(|p| p.id)
                        .map_err(|e| (e.twilio_code(), e.to_string()));
                    let _ = tx.send(Input::MediaPrepared { request_id, result });
                });
            }
            Output::Media(command) => {
                if let Err(e) = send_media(&inner.media, &command).await {
                    tracing::warn!(call = %self.call_sid, error = %e, "media command not delivered");
                    if !matches!(command, shmq::Command::CloseSession { .. }) {
                        let _ = self.tx.send(Input::MediaLost);
                    }
                }
            }
            Output::Sip(SipAction::Invite(call)) => {
                let leg = inner.sip.invite(*call);
                lock(&inner.legs).insert(leg, self.tx.clone());
                self.leg = Some(leg);
            }
            Output::Sip(action) => {
                let Some(leg) = self.leg else {
                    tracing::warn!(call = %self.call_sid, ?action, "no SIP leg for the action");
                    return;
                };
                match action {
                    SipAction::Ringing => inner.sip.ringing(leg),
                    SipAction::Answer { sdp } => inner.sip.answer(leg, sdp),
                    SipAction::Reject { status } => inner.sip.reject(leg, status),
                    SipAction::Hangup => inner.sip.hangup(leg),
                    SipAction::Cancel => inner.sip.cancel(leg),
                    SipAction::Invite(_) => {}
                }
            }
            Output::SetTimer { id, after } => {
                let tx = self.tx.clone();
                let timer = tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send(Input::Timer(id));
                });
                self.timers.retain(|t| !t.is_finished());
                self.timers.push(timer.abort_handle());
            }
            Output::Notify(info) => {
                let notification = notification(&self.account_sid, &self.call_sid, info);
                if let Err(e) = inner.store.insert_notification(&notification).await {
                    tracing::error!(error = %e, "cannot store notification");
                }
            }
            Output::Status { status, answered } => {
                if answered {
                    self.answered_at = Some(Instant::now());
                }
                if status.is_final() {
                    self.ended = true;
                }
                if let Err(e) = inner
                    .store
                    .update_call_status(&self.call_sid, status, now_ms(), answered)
                    .await
                {
                    tracing::error!(error = %e, "cannot update call status");
                }
            }
            Output::StatusCallback(mut request) => {
                let duration = self.answered_at.map(|t| t.elapsed().as_secs()).unwrap_or(0);
                request
                    .params
                    .push(("CallDuration".into(), duration.to_string()));
                request.params.push(("Timestamp".into(), rfc2822(now_ms())));
                request
                    .params
                    .push(("SequenceNumber".into(), self.callbacks_sent.to_string()));
                self.callbacks_sent += 1;
                let token = self.router.auth_token(&self.account_sid).await;
                let client = inner.webhook.clone();
                tokio::spawn(deliver_status_callback(
                    client,
                    webhook_request(&request, token),
                ));
            }
            Output::RecordingStarted(setup) => {
                inner
                    .recordings
                    .started(&self.account_sid, &self.call_sid, &setup)
                    .await;
            }
            Output::Dial(plan) => {
                let parent = ParentCall {
                    call_sid: self.call_sid.clone(),
                    account_sid: self.account_sid.clone(),
                    session: self.session,
                    tx: self.tx.clone(),
                };
                let placed = self.router.place_dial_legs(&parent, *plan).await;
                self.dial_legs.extend(placed);
            }
            Output::DialLegControl { leg, update } => {
                if let Some(leg) = self.dial_legs.get(&leg) {
                    let _ = leg.send(Input::Control(update));
                }
            }
            Output::LegEvent(mut event) => {
                if let Some(link) = &self.dialled_by {
                    if let LegEvent::Ended { duration, .. } = &mut event {
                        *duration = self.answered_at.map(|t| t.elapsed().as_secs()).unwrap_or(0);
                    }
                    link.report(&self.call_sid, event);
                }
            }
            Output::JoinConference(join) => {
                inner
                    .conferences
                    .join(&self.account_sid, *join, self.tx.clone())
                    .deliver(self.router)
                    .await;
            }
            Output::LeaveConference { reason } => {
                inner
                    .conferences
                    .leave(&self.call_sid, reason)
                    .deliver(self.router)
                    .await;
            }
            Output::ConferenceSpeaking { speaking } => {
                inner
                    .conferences
                    .speaking(&self.call_sid, speaking)
                    .deliver(self.router)
                    .await;
            }
            Output::Finished => self.finished = true,
        }
    }
}

/// Delays before the retries of a status callback that failed.
const STATUS_CALLBACK_RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

/// Sends a status callback at least once: failures (connection, timeout, 5xx, …) are
/// retried with backoff, in its own task, so the call never waits for it.
pub(crate) async fn deliver_status_callback(client: WebhookClient, request: WebhookRequest) {
    let mut retries = STATUS_CALLBACK_RETRIES.iter();
    loop {
        match client.request(&request).await {
            Ok(_) => return,
            Err(e) => match retries.next() {
                Some(delay) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "status callback failed");
                    tokio::time::sleep(*delay).await;
                }
                None => {
                    tracing::error!(error = %e, url = %request.url, "status callback given up");
                    return;
                }
            },
        }
    }
}

/// Pushes a media command; a momentarily full ring is retried for up to ~200 ms (the
/// worker drains it every pass) before the command counts as undeliverable.
async fn send_media(media: &MediaPlane, command: &shmq::Command) -> Result<(), MediaPlaneError> {
    let mut attempts = 0;
    loop {
        match media.send(command) {
            Err(MediaPlaneError::RingFull(_)) if attempts < 200 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            result => return result,
        }
    }
}

pub(crate) fn webhook_request(request: &AppRequest, auth_token: String) -> WebhookRequest {
    WebhookRequest {
        url: request.url.clone(),
        method: match request.method {
            HttpMethod::Get => webhook::Method::Get,
            HttpMethod::Post => webhook::Method::Post,
        },
        params: request.params.clone(),
        auth_token,
    }
}

fn notification(account_sid: &str, call_sid: &str, info: NotificationInfo) -> Notification {
    Notification {
        sid: new_sid("NO"),
        account_sid: account_sid.to_string(),
        call_sid: Some(call_sid.to_string()),
        error_code: info.code.to_string(),
        log_level: i64::from(info.warning),
        message_text: info.message,
        more_info: format!("https://www.twilio.com/docs/errors/{}", info.code),
        request_method: info.request_method,
        request_url: info.request_url,
        request_variables: None,
        response_body: info.response_body,
        response_headers: None,
        date_created: now_ms(),
    }
}

fn parse_method(method: &str) -> HttpMethod {
    if method.eq_ignore_ascii_case("GET") {
        HttpMethod::Get
    } else {
        HttpMethod::Post
    }
}

/// The caller ID Twilio shows: E.164 for numeric users (`15551230000` → `+15551230000`),
/// the user as-is otherwise, the whole URI when there is no user.
fn caller_id(user: &str, uri: &str) -> String {
    if user.is_empty() {
        return uri.to_string();
    }
    let digits = user.trim_start_matches('+');
    if digits.len() >= 7 && digits.chars().all(|c| c.is_ascii_digit()) {
        format!("+{digits}")
    } else {
        user.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_requests_read_back_identically() {
        let request = OutboundRequest {
            account_sid: "AC1".into(),
            to: "+15551230000".into(),
            from: "+15005550006".into(),
            url: Some("http://app.test/voice".into()),
            method: HttpMethod::Get,
            twiml: None,
            fallback_url: None,
            fallback_method: HttpMethod::Post,
            status_callback: Some("http://app.test/status".into()),
            status_callback_method: HttpMethod::Post,
            status_callback_events: vec!["initiated".into(), "completed".into()],
            timeout: Duration::from_secs(25),
            send_digits: Some("1w2".into()),
            time_limit: Duration::from_secs(90),
            record: Some(RecordRequest {
                channels: shmq::RecordingChannels::Dual,
                status_callback: Some("http://app.test/rec".into()),
                status_callback_method: HttpMethod::Get,
                status_callback_events: vec!["in-progress".into(), "completed".into()],
            }),
        };
        assert_eq!(
            OutboundRequest::from_json(&request.to_json()),
            Some(request)
        );
        assert_eq!(OutboundRequest::from_json("{}"), None);
        assert_eq!(OutboundRequest::from_json("not json"), None);
    }
}
