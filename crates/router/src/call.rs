//! The sans-IO core of one call: TwiML verbs in order, driven by inputs, producing outputs.
//!
//! A `Call` never does I/O. The driver feeds it [`Input`]s (app responses, prepared media,
//! media-plane events, SIP events, timers) and carries out the [`Output`]s it queues
//! (webhook fetches, media preparation, media commands, SIP actions, timers, records).
//! Everything about *what a call does* lives here and is unit-tested without sockets.

use std::collections::VecDeque;
use std::time::Duration;

use shmq::{Command, MediaId, SessionId};
use store::CallStatus;
use twiml::{AppContent, GatherChild, HttpMethod, RejectReason, Verb};

use crate::params::CallParams;

/// Digits a `<Gather>` keeps (a flood of DTMF events cannot grow a call without bound).
const MAX_GATHER_DIGITS: usize = 128;

/// What Twilio says when an application fails and there is no fallback.
pub const APPLICATION_ERROR_TEXT: &str = "An application error has occurred. Goodbye.";

/// A request the call wants made to the customer's application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRequest {
    pub url: String,
    pub method: HttpMethod,
    pub params: Vec<(String, String)>,
}

/// The application's answer to an [`AppRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppResult {
    Response {
        /// Final URL after redirects: relative URLs in the document resolve against it.
        url: String,
        content_type: String,
        body: Vec<u8>,
    },
    Failed {
        /// Twilio error code (11200, 11205, …).
        code: u32,
        url: String,
        message: String,
    },
}

/// Audio the call needs turned into a telephony-ready file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    Say {
        text: String,
        voice: String,
        language: String,
    },
    Url(String),
    Bytes {
        body: Vec<u8>,
        content_type: String,
    },
    /// The ringback tone a `<Dial>` plays to the caller (Twilio's `ringTone` country).
    Ringback {
        country: Option<String>,
    },
    /// A platform tone (conference beeps, hold music).
    Tone(ToneKind),
}

/// The platform's own sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToneKind {
    /// A participant entered the conference.
    BeepEnter,
    /// A participant left it.
    BeepExit,
    /// The wait and hold music when the application names none.
    HoldMusic,
}

/// A SIP action on the call's inbound leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipAction {
    Ringing,
    /// 200 OK with this SDP answer.
    Answer {
        sdp: Vec<u8>,
    },
    Reject {
        status: u16,
    },
    Hangup,
    /// Place the outbound leg.
    Invite(Box<sip::endpoint::OutgoingCall>),
    /// Give up an outbound leg that has not answered.
    Cancel,
}

/// An error or warning to record as a Notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationInfo {
    pub code: u32,
    pub warning: bool,
    pub message: String,
    pub request_url: Option<String>,
    pub request_method: Option<String>,
    pub response_body: Option<String>,
}

/// Timer identities; each arming carries a generation so stale firings are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// `<Pause>` before the call is answered.
    PauseUnanswered,
    /// `<Gather>` waiting for (more) digits.
    GatherTimeout,
    /// An outbound call ringing longer than its `Timeout`.
    NoAnswer,
    /// The call's `TimeLimit` since it was answered (armed once; never invalidated).
    TimeLimit,
    /// A `<Dial>` whose legs are all still unanswered after its `timeout`.
    DialTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerId {
    pub kind: TimerKind,
    pub generation: u64,
}

/// Inputs to the call core.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    AppResult {
        request_id: u64,
        result: AppResult,
    },
    MediaPrepared {
        request_id: u64,
        result: Result<MediaId, (u32, String)>,
    },
    SessionOpened {
        local_port: u16,
    },
    SessionFailed,
    PlayDone {
        play_id: u32,
    },
    PlayFailed {
        play_id: u32,
    },
    Dtmf {
        digit: char,
    },
    Timer(TimerId),
    /// The caller acknowledged our 200 OK.
    Acked,
    /// The caller hung up (BYE) after answer.
    RemoteHangup,
    /// The caller cancelled before answer.
    Cancelled,
    /// The SIP leg is gone (our BYE done, ACK never came, …).
    LegTerminated,
    /// The media process died: the call cannot continue.
    MediaLost,
    /// No RTP arrived from the caller's side for the media plane's RTP timeout.
    RtpTimeout {
        idle_ms: u32,
    },
    /// Live call control (the REST API's call update).
    Control(CallUpdate),
    /// Outbound leg: a provisional response (180/183).
    Progress {
        status: u16,
    },
    /// Outbound leg: the far end answered, with its SDP answer.
    Answered {
        sdp: Option<Vec<u8>>,
    },
    /// Outbound leg: a final failure response (486, 408, 487 after our CANCEL, …).
    DialFailed {
        status: u16,
    },
    /// News from a leg this call's `<Dial>` placed (`leg` as in [`DialLegPlan::leg`]).
    DialLeg {
        leg: u32,
        call_sid: String,
        event: LegEvent,
    },
    /// The `<Dial>`'s legs were not placed (e.g. 13214: a callerId the account may not use).
    DialRefused {
        code: u32,
        message: String,
    },
    /// The media plane relays this call's session to its `<Dial>` leg's.
    Bridged,
    /// The relay of this call's session ended (`Unbridge`, or the other leg closed).
    Unbridged,
    /// News from the conference room this call is in.
    Conference(crate::conference::Notice),
    /// The media plane's voice activity on this call's audio in a conference mix.
    Speaking {
        speaking: bool,
    },
}

/// A live update of a call, as `POST /Calls/{Sid}` asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallUpdate {
    /// Leave the current verb and run the document at this URL.
    Redirect { url: String, method: HttpMethod },
    /// Leave the current verb and run this TwiML.
    Twiml(String),
    /// `Status=completed`: hang up (an unanswered call ends as canceled).
    Complete,
    /// `Status=canceled`: end the call only if it is not answered yet.
    Cancel,
}

/// Outputs of the call core, in the order they must be carried out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Fetch {
        request_id: u64,
        request: AppRequest,
    },
    PrepareMedia {
        request_id: u64,
        source: MediaSource,
    },
    Media(Command),
    Sip(SipAction),
    SetTimer {
        id: TimerId,
        after: Duration,
    },
    Notify(NotificationInfo),
    /// The call's status changed; `answered` when this is the answer.
    Status {
        status: CallStatus,
        answered: bool,
    },
    /// POST the status callback with these parameters.
    StatusCallback(AppRequest),
    /// The media plane was asked to record the call: store the recording as in progress.
    RecordingStarted(Box<RecordSetup>),
    /// Place the legs of a `<Dial>` (child calls); each reports back as [`Input::DialLeg`].
    Dial(Box<DialPlan>),
    /// Pass a live update to a leg of this call's `<Dial>` (to hang it up or cancel it).
    DialLegControl {
        leg: u32,
        update: CallUpdate,
    },
    /// This call is a `<Dial>` leg: tell the call that dialled it (the driver fills in
    /// `Ended`'s duration).
    LegEvent(LegEvent),
    /// Join a conference room (`<Dial><Conference>`); the room answers with
    /// [`Input::Conference`] notices.
    JoinConference(Box<ConferenceJoin>),
    /// Leave the conference room this call is in.
    LeaveConference {
        reason: crate::conference::LeaveReason,
    },
    /// Voice activity of this participant, for the room's `speaker` events.
    ConferenceSpeaking {
        speaking: bool,
    },
    /// Nothing more will happen; the driver may drop the call.
    Finished,
}

/// Media facts negotiated at INVITE time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSetup {
    pub session: SessionId,
    pub negotiated: sdp::Negotiated,
    /// The address we put in our SDP answer.
    pub local_ip: std::net::IpAddr,
}

/// Static facts about the call and its application.
#[derive(Debug, Clone)]
pub struct CallConfig {
    pub params: CallParams,
    pub voice_url: Option<String>,
    pub voice_method: HttpMethod,
    pub fallback_url: Option<String>,
    pub fallback_method: HttpMethod,
    pub status_callback: Option<String>,
    pub status_callback_method: HttpMethod,
    /// Which progress events reach the status callback (`initiated`, `ringing`,
    /// `answered`, `completed`); Twilio's default is `completed` only.
    pub status_callback_events: Vec<String>,
    pub media: MediaSetup,
    /// Set for calls we place (Create Call): how to dial the far end.
    pub outbound: Option<Box<OutboundSetup>>,
    /// Longest the call may last once answered (Twilio's `TimeLimit`); then it is hung up
    /// as `completed`.
    pub time_limit: std::time::Duration,
}

/// Twilio's default and maximum `TimeLimit`: four hours.
pub const DEFAULT_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(4 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    Opening,
    Open(u16),
    Failed,
}

/// One prompt item (Say/Play/Pause) inside a Gather or on its own.
#[derive(Debug, Clone, PartialEq)]
enum Prompt {
    Say(twiml::Say),
    Play(twiml::Play),
    Pause(u32),
    /// Audio the application returned as the response body.
    Body(MediaSource),
}

/// An item of the call's work queue: a TwiML verb, or audio the app returned directly.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Verb(Verb),
    PlayBody(MediaSource),
}

impl From<GatherChild> for Prompt {
    fn from(c: GatherChild) -> Prompt {
        match c {
            GatherChild::Say(s) => Prompt::Say(s),
            GatherChild::Play(p) => Prompt::Play(p),
            GatherChild::Pause(p) => Prompt::Pause(p.length),
        }
    }
}

/// What the call is doing right now.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Waiting for the application's document.
    Fetching {
        request_id: u64,
        purpose: FetchPurpose,
    },
    /// Ready to run the next verb.
    Idle,
    /// Waiting for the media session before answering, then running `verb` again.
    AwaitingSession(Box<Action>),
    /// Waiting for media to be prepared for a prompt.
    Preparing {
        request_id: u64,
        prompt: Prompt,
    },
    /// Playing a prompt (or silence) with this play id.
    Playing {
        play_id: u32,
    },
    /// Pausing before answer.
    PausingUnanswered,
    /// A `<Gather>` whose prompts are over, waiting for (more) digits.
    WaitingDigits,
    /// An outbound call being placed (until it answers or fails).
    Dialing,
    /// Sending `SendDigits` right after an outbound answer; the app runs afterwards.
    SendingDigits {
        play_id: u32,
    },
    /// Running a `<Dial>`: its legs ring, or one of them is connected to the caller.
    Dial,
    /// A `<Dial>` leg, answered and ready: the call that dialled it bridges (or has bridged)
    /// the media; waiting for either side to hang up.
    Connected,
    /// In a `<Dial><Conference>`: waiting for it to start, or in its mix.
    Conference,
    /// Hanging up; waiting for the leg to go.
    Ending,
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FetchPurpose {
    /// A document whose failure may go to the fallback URL.
    Document { fallback_allowed: bool },
}

/// State of an active `<Gather>`.
#[derive(Debug, Clone, PartialEq)]
struct GatherState {
    spec: twiml::Gather,
    prompts: VecDeque<Prompt>,
    digits: String,
    /// Prompts finished (or interrupted): the digit timeout runs.
    prompts_done: bool,
    /// Set when the gather has been decided (submitted or fell through).
    finished: bool,
}

/// The call core.
#[derive(Debug)]
pub struct Call {
    config: CallConfig,
    session: SessionState,
    answered: bool,
    status: CallStatus,
    step: Step,
    verbs: VecDeque<Action>,
    /// URL of the document being executed (base for relative URLs).
    document_url: String,
    /// The request currently outstanding, for fallback and notifications.
    current_request: Option<AppRequest>,
    gather: Option<GatherState>,
    /// Speaking the application error message; hang up afterwards.
    in_error_message: bool,
    next_request_id: u64,
    next_play_id: u32,
    timer_generation: u64,
    /// Digits pressed outside a gather are dropped (Twilio does not buffer them).
    outputs: VecDeque<Output>,
    closed_media: bool,
    /// Outbound: the INVITE has been sent.
    invited: bool,
    /// The `<Dial>` in progress (this call is the caller).
    dial: Option<dial::DialState>,
    /// Next id for a `<Dial>` leg; never reused within the call, so late news from the legs
    /// of an earlier `<Dial>` cannot be mistaken for the current one's.
    next_leg_id: u32,
    /// The SIP leg is gone while a `<Dial>` still waits for its connected leg to end.
    leg_gone: bool,
    /// A `<Dial>` leg: it told its caller it is ready to be bridged.
    leg_ready_sent: bool,
    /// The `<Dial><Conference>` this call is in.
    conference: Option<conference::ConferenceState>,
}

impl Call {
    /// A new inbound call; call [`Call::start`] to begin.
    pub fn new(config: CallConfig) -> Call {
        Call {
            document_url: config.voice_url.clone().unwrap_or_default(),
            config,
            session: SessionState::Opening,
            answered: false,
            status: CallStatus::Ringing,
            step: Step::Idle,
            verbs: VecDeque::new(),
            current_request: None,
            gather: None,
            in_error_message: false,
            next_request_id: 1,
            next_play_id: 1,
            timer_generation: 0,
            outputs: VecDeque::new(),
            closed_media: false,
            invited: false,
            dial: None,
            next_leg_id: 0,
            leg_gone: false,
            leg_ready_sent: false,
            conference: None,
        }
    }

    pub fn status(&self) -> CallStatus {
        self.status
    }

    pub fn session(&self) -> SessionId {
        self.config.media.session
    }

    pub fn is_finished(&self) -> bool {
        self.step == Step::Done
    }

    /// Next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Starts the call: ring, open the media session, request the voice URL.
    pub fn start(&mut self) {
        if self.config.outbound.is_some() {
            self.start_outbound();
            return;
        }
        self.outputs.push_back(Output::Sip(SipAction::Ringing));
        self.open_media();
        self.start_app();
    }

    /// Opens the call's media session with the negotiated (or, outbound, offered) codec.
    fn open_media(&mut self) {
        let neg = &self.config.media.negotiated;
        let codec = match neg.codec {
            sdp::AudioCodec::Pcmu => shmq::Codec::Pcmu,
            sdp::AudioCodec::Pcma => shmq::Codec::Pcma,
        };
        self.outputs.push_back(Output::Media(Command::OpenSession {
            session: self.config.media.session,
            remote: neg.remote_rtp,
            codec,
            dtmf_payload_type: neg.telephone_event_pt,
            ptime_ms: neg.ptime_ms,
        }));
    }

    /// Requests the voice URL (the call is ringing inbound, or answered outbound).
    fn start_app(&mut self) {
        match self.config.voice_url.clone() {
            Some(url) => {
                let method = self.config.voice_method;
                self.fetch(url, method, Vec::new(), true);
            }
            None => {
                self.notify(
                    11200,
                    false,
                    "The number has no voice URL".into(),
                    None,
                    None,
                );
                self.application_error();
            }
        }
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input) {
        if self.step == Step::Done {
            return;
        }
        match input {
            Input::AppResult { request_id, result } => {
                if !self.on_conference_app_result(request_id, &result) {
                    self.on_app_result(request_id, result)
                }
            }
            Input::MediaPrepared { request_id, result } => {
                if !self.on_ringback_prepared(request_id, &result)
                    && !self.on_conference_media_prepared(request_id, &result)
                {
                    self.on_media_prepared(request_id, result)
                }
            }
            Input::SessionOpened { local_port } => {
                self.session = SessionState::Open(local_port);
                if self.step == Step::Dialing && !self.invited {
                    self.invite(local_port);
                    return;
                }
                if let Step::AwaitingSession(action) = &self.step {
                    let action = (**action).clone();
                    self.step = Step::Idle;
                    self.verbs.push_front(action);
                    self.run();
                }
            }
            Input::SessionFailed if self.bridge_requested() => self.on_bridge_refused(),
            Input::SessionFailed if self.mix_requested() => self.on_mix_refused(),
            Input::SessionFailed => {
                // No media for the call: refuse it now rather than after the app answers.
                self.session = SessionState::Failed;
                self.closed_media = true;
                self.no_media_resources();
            }
            Input::PlayDone { play_id } | Input::PlayFailed { play_id }
                if self.step == (Step::SendingDigits { play_id }) =>
            {
                self.step = Step::Idle;
                self.start_outbound_app();
            }
            Input::PlayDone { play_id } | Input::PlayFailed { play_id }
                if self.on_conference_play_done(play_id) => {}
            Input::PlayDone { play_id } | Input::PlayFailed { play_id } => {
                if self.step == (Step::Playing { play_id }) {
                    self.step = Step::Idle;
                    self.prompt_finished();
                }
            }
            Input::Dtmf { digit } => self.on_digit(digit),
            Input::Timer(id) => self.on_timer(id),
            Input::Acked => {}
            Input::RemoteHangup => {
                // A BYE on the early dialog is the caller giving up before the answer.
                let status = if self.answered {
                    CallStatus::Completed
                } else {
                    CallStatus::Canceled
                };
                self.on_leg_gone(status);
            }
            Input::Cancelled => self.on_leg_gone(CallStatus::Canceled),
            Input::LegTerminated => {
                let status = if self.step == Step::Ending {
                    self.status
                } else if self.answered {
                    CallStatus::Completed
                } else {
                    CallStatus::Failed
                };
                self.on_leg_gone(status);
            }
            Input::MediaLost => {
                self.closed_media = true;
                self.session = SessionState::Failed;
                self.end(CallStatus::Failed, Some(503));
            }
            // A dead peer (crashed phone, lost network): an answered call is hung up as
            // completed; a call still ringing has no RTP to expect yet.
            Input::RtpTimeout { .. }
                if self.answered && !matches!(self.step, Step::Ending | Step::Done) =>
            {
                self.end(CallStatus::Completed, None);
            }
            Input::RtpTimeout { .. } => {}
            Input::Control(update) => self.on_update(update),
            Input::Progress { status } => self.on_progress(status),
            Input::Answered { sdp } => self.on_answered(sdp),
            Input::DialFailed { status } => self.on_dial_failed(status),
            Input::DialLeg {
                leg,
                call_sid,
                event,
            } => self.on_dial_leg(leg, call_sid, event),
            Input::DialRefused { code, message } => self.on_dial_refused(code, message),
            Input::Bridged => self.on_bridged(),
            Input::Unbridged => {}
            Input::Conference(notice) => self.on_conference_notice(notice),
            Input::Speaking { speaking } => self.on_speaking(speaking),
        }
    }

    /// Whether a live update of this kind applies now (the API answers 21220 otherwise).
    pub fn accepts(&self, update: &CallUpdate) -> bool {
        if matches!(self.step, Step::Ending | Step::Done) {
            return false;
        }
        match update {
            CallUpdate::Cancel => !self.answered,
            _ => true,
        }
    }

    fn on_update(&mut self, update: CallUpdate) {
        if !self.accepts(&update) {
            return;
        }
        match update {
            CallUpdate::Complete | CallUpdate::Cancel if !self.answered => {
                self.end(CallStatus::Canceled, Some(487));
            }
            CallUpdate::Complete | CallUpdate::Cancel => self.end(CallStatus::Completed, None),
            CallUpdate::Redirect { url, method } => {
                self.leave_current_verb();
                match twiml::resolve_url(&self.document_url, &url) {
                    Ok(url) => self.fetch(url, method, Vec::new(), true),
                    Err(_) => {
                        self.skip_bad_url("Redirect", &url);
                        self.run();
                    }
                }
            }
            CallUpdate::Twiml(xml) => {
                self.leave_current_verb();
                let url = self.document_url.clone();
                self.on_document(url, "text/xml".into(), xml.into_bytes(), false);
            }
        }
    }

    /// Abandons whatever the call is doing (a prompt, a gather, a fetch, a pause) so a new
    /// document can take over; late results of the old step are ignored by their ids.
    fn leave_current_verb(&mut self) {
        self.abandon_dial();
        self.abandon_conference();
        if matches!(self.step, Step::Playing { .. } | Step::Preparing { .. })
            || self.gather.is_some()
        {
            self.outputs.push_back(Output::Media(Command::StopPlayback {
                session: self.config.media.session,
            }));
        }
        self.gather = None;
        self.verbs.clear();
        self.in_error_message = false;
        // Invalidate pending timers (Gather timeout, unanswered Pause).
        self.timer_generation += 1;
        self.step = Step::Idle;
    }

    // ----- application documents ------------------------------------------------------

    fn fetch(
        &mut self,
        url: String,
        method: HttpMethod,
        extra: Vec<(String, String)>,
        fallback_allowed: bool,
    ) {
        let mut params = self.config.params.voice(self.status);
        params.extend(extra);
        let request = AppRequest {
            url,
            method,
            params,
        };
        let request_id = self.request_id();
        self.current_request = Some(request.clone());
        self.step = Step::Fetching {
            request_id,
            purpose: FetchPurpose::Document { fallback_allowed },
        };
        self.outputs.push_back(Output::Fetch {
            request_id,
            request,
        });
    }

    fn on_app_result(&mut self, request_id: u64, result: AppResult) {
        let fallback_allowed = match &self.step {
            Step::Fetching {
                request_id: id,
                purpose: FetchPurpose::Document { fallback_allowed },
            } if *id == request_id => *fallback_allowed,
            _ => return,
        };
        self.step = Step::Idle;
        match result {
            AppResult::Failed { code, url, message } => {
                self.notify(code, false, message, Some(url.clone()), None);
                self.document_failed(code, url, fallback_allowed);
            }
            AppResult::Response {
                url,
                content_type,
                body,
            } => self.on_document(url, content_type, body, fallback_allowed),
        }
    }

    fn on_document(
        &mut self,
        url: String,
        content_type: String,
        body: Vec<u8>,
        fallback_allowed: bool,
    ) {
        self.document_url = url.clone();
        match twiml::classify_content_type(&content_type) {
            AppContent::Twiml => {
                let text = String::from_utf8_lossy(&body);
                match twiml::parse_voice(&text) {
                    Ok(response) => {
                        self.verbs = response.verbs.into_iter().map(Action::Verb).collect();
                        self.run();
                    }
                    Err(e) => {
                        let code = e.code();
                        self.notify(
                            code,
                            false,
                            format!("Invalid TwiML: {e}"),
                            Some(url.clone()),
                            Some(text.chars().take(4096).collect()),
                        );
                        self.document_failed(code, url, fallback_allowed);
                    }
                }
            }
            AppContent::Audio => {
                self.verbs = VecDeque::from([
                    Action::PlayBody(MediaSource::Bytes { body, content_type }),
                    Action::Verb(Verb::Hangup),
                ]);
                self.run();
            }
            AppContent::PlainText => {
                let text = String::from_utf8_lossy(&body).trim().to_string();
                self.verbs = VecDeque::from([
                    Action::Verb(Verb::Say(twiml::Say {
                        text,
                        voice: "man".into(),
                        language: "en-US".into(),
                        loop_count: 1,
                    })),
                    Action::Verb(Verb::Hangup),
                ]);
                self.run();
            }
            AppContent::Unsupported => {
                self.notify(
                    12300,
                    false,
                    format!("Invalid Content-Type: {content_type}"),
                    Some(url.clone()),
                    None,
                );
                self.document_failed(12300, url, fallback_allowed);
            }
        }
    }

    /// The document could not be fetched or run: fallback URL, else the error message.
    fn document_failed(&mut self, code: u32, url: String, fallback_allowed: bool) {
        if fallback_allowed {
            if let Some(fallback) = self.config.fallback_url.clone() {
                if fallback != url {
                    let method = self.config.fallback_method;
                    let extra = vec![
                        ("ErrorCode".to_string(), code.to_string()),
                        ("ErrorUrl".to_string(), url),
                    ];
                    self.fetch(fallback, method, extra, false);
                    return;
                }
            }
        }
        self.application_error();
    }

    /// Speak the application error message, then hang up.
    fn application_error(&mut self) {
        if self.in_error_message {
            self.hangup();
            return;
        }
        self.in_error_message = true;
        self.gather = None;
        self.verbs = VecDeque::from([
            Action::Verb(Verb::Say(twiml::Say {
                text: APPLICATION_ERROR_TEXT.into(),
                voice: "woman".into(),
                language: "en-US".into(),
                loop_count: 1,
            })),
            Action::Verb(Verb::Hangup),
        ]);
        self.run();
    }

    // ----- verb execution -------------------------------------------------------------

    /// Runs verbs until one has to wait for something.
    fn run(&mut self) {
        while self.step == Step::Idle {
            let Some(action) = self.verbs.pop_front() else {
                if self.is_dial_leg() && !self.leg_ready_sent {
                    // The end of a `<Dial>` leg's whisper: it is connected to the caller.
                    self.ready_to_bridge();
                } else {
                    // End of the document: Twilio hangs up.
                    self.hangup();
                }
                return;
            };
            match action {
                Action::Verb(verb) => self.execute(verb),
                Action::PlayBody(source) => {
                    if self.ensure_answered(Action::PlayBody(source.clone())) {
                        self.prompt(Prompt::Body(source));
                    }
                }
            }
        }
    }

    fn execute(&mut self, verb: Verb) {
        match verb {
            Verb::Say(say) => {
                if self.ensure_answered(Action::Verb(Verb::Say(say.clone()))) {
                    self.prompt(Prompt::Say(say));
                }
            }
            Verb::Play(play) => {
                if self.ensure_answered(Action::Verb(Verb::Play(play.clone()))) {
                    self.prompt(Prompt::Play(play));
                }
            }
            Verb::Pause(pause) => {
                if self.answered {
                    self.prompt(Prompt::Pause(pause.length));
                } else {
                    // Twilio: a Pause before answer delays answering.
                    self.step = Step::PausingUnanswered;
                    let id = self.timer(TimerKind::PauseUnanswered);
                    self.outputs.push_back(Output::SetTimer {
                        id,
                        after: Duration::from_secs(u64::from(pause.length)),
                    });
                }
            }
            Verb::Gather(gather) => {
                if self.ensure_answered(Action::Verb(Verb::Gather(gather.clone()))) {
                    self.start_gather(gather);
                }
            }
            Verb::Redirect(redirect) => {
                let url = self.resolve(&redirect.url, &[]);
                match url {
                    Some(url) => self.fetch(url, redirect.method, Vec::new(), true),
                    None => self.skip_bad_url("Redirect", &redirect.url),
                }
            }
            Verb::Dial(dial) => self.start_dial(dial),
            Verb::Hangup => self.hangup(),
            Verb::Reject(reject) => {
                if self.answered {
                    self.hangup();
                } else {
                    let (code, status) = match reject.reason {
                        RejectReason::Busy => (486, CallStatus::Busy),
                        RejectReason::Rejected => (603, CallStatus::NoAnswer),
                    };
                    self.end(status, Some(code));
                }
            }
            other => {
                let name = other.name();
                self.notify(
                    13201,
                    true,
                    format!("<{name}> is not supported yet; skipped"),
                    None,
                    None,
                );
            }
        }
    }

    /// Returns true when answered; otherwise answers (or waits for the media session) and
    /// arranges for `verb` to run again.
    fn ensure_answered(&mut self, action: Action) -> bool {
        if self.answered {
            return true;
        }
        match self.session {
            SessionState::Open(port) => {
                self.answer(port);
                true
            }
            SessionState::Opening => {
                self.step = Step::AwaitingSession(Box::new(action));
                false
            }
            SessionState::Failed => {
                self.no_media_resources();
                false
            }
        }
    }

    fn answer(&mut self, local_port: u16) {
        let media = &self.config.media;
        let sdp = sdp::answer(
            &media.negotiated,
            media.local_ip,
            local_port,
            media.session.0,
        );
        self.outputs.push_back(Output::Sip(SipAction::Answer {
            sdp: sdp.into_bytes(),
        }));
        self.answered = true;
        self.set_status(CallStatus::InProgress, true);
        self.arm_time_limit();
    }

    fn prompt(&mut self, prompt: Prompt) {
        match &prompt {
            Prompt::Pause(seconds) => {
                let play_id = self.play_id();
                self.outputs.push_back(Output::Media(Command::Silence {
                    session: self.config.media.session,
                    play_id,
                    duration_ms: seconds.saturating_mul(1000),
                }));
                self.step = Step::Playing { play_id };
            }
            Prompt::Say(say) => {
                let source = MediaSource::Say {
                    text: say.text.clone(),
                    voice: say.voice.clone(),
                    language: say.language.clone(),
                };
                self.prepare(source, prompt);
            }
            Prompt::Play(play) if play.url.trim().is_empty() => {
                // <Play digits="…"/>: sending DTMF is not supported yet.
                self.notify(
                    13201,
                    true,
                    "<Play digits> is not supported yet; skipped".into(),
                    None,
                    None,
                );
                self.prompt_finished();
            }
            Prompt::Play(play) => match self.resolve(&play.url, &[]) {
                Some(url) => self.prepare(MediaSource::Url(url), prompt),
                None => {
                    self.skip_bad_url("Play", &play.url);
                    self.prompt_finished();
                }
            },
            Prompt::Body(source) => {
                let source = source.clone();
                self.prepare(source, prompt);
            }
        }
    }

    fn prepare(&mut self, source: MediaSource, prompt: Prompt) {
        let request_id = self.request_id();
        self.step = Step::Preparing { request_id, prompt };
        self.outputs
            .push_back(Output::PrepareMedia { request_id, source });
    }

    fn on_media_prepared(&mut self, request_id: u64, result: Result<MediaId, (u32, String)>) {
        let prompt = match &self.step {
            Step::Preparing {
                request_id: id,
                prompt,
            } if *id == request_id => prompt.clone(),
            _ => return,
        };
        match result {
            Ok(media) => {
                let loops = match &prompt {
                    Prompt::Say(s) => s.loop_count,
                    Prompt::Play(p) => p.loop_count,
                    Prompt::Pause(_) | Prompt::Body(_) => 1,
                };
                let play_id = self.play_id();
                self.outputs.push_back(Output::Media(Command::Play {
                    session: self.config.media.session,
                    play_id,
                    media,
                    loops: u16::try_from(loops).unwrap_or(u16::MAX),
                }));
                self.step = Step::Playing { play_id };
            }
            Err((code, message)) => {
                self.notify(code, false, message, None, None);
                self.step = Step::Idle;
                if self.in_error_message {
                    self.hangup();
                    return;
                }
                self.prompt_finished();
            }
        }
    }

    /// A prompt (or Pause) finished or was skipped: continue the gather or the document.
    fn prompt_finished(&mut self) {
        if self.step != Step::Idle {
            return;
        }
        if let Some(gather) = &mut self.gather {
            if !gather.finished && !gather.prompts_done {
                if let Some(next) = gather.prompts.pop_front() {
                    self.prompt(next);
                    return;
                }
                gather.prompts_done = true;
                self.arm_gather_timeout();
                return;
            }
        }
        self.run();
    }

    // ----- Gather -----------------------------------------------------------------------

    fn start_gather(&mut self, spec: twiml::Gather) {
        let prompts = spec.children.iter().cloned().map(Prompt::from).collect();
        self.gather = Some(GatherState {
            spec,
            prompts,
            digits: String::new(),
            prompts_done: false,
            finished: false,
        });
        self.prompt_finished();
    }

    fn arm_gather_timeout(&mut self) {
        let Some(gather) = &self.gather else { return };
        let after = Duration::from_secs(u64::from(gather.spec.timeout));
        let id = self.timer(TimerKind::GatherTimeout);
        self.outputs.push_back(Output::SetTimer { id, after });
        self.step = Step::WaitingDigits;
    }

    fn on_digit(&mut self, digit: char) {
        if self.on_dial_digit(digit) || self.on_conference_digit(digit) {
            return;
        }
        let Some(gather) = &mut self.gather else {
            return;
        };
        if gather.finished {
            return;
        }
        let interrupt_prompts = !gather.prompts_done;
        let finish_key =
            !gather.spec.finish_on_key.is_empty() && gather.spec.finish_on_key.contains(digit);
        if !finish_key && gather.digits.len() < MAX_GATHER_DIGITS {
            gather.digits.push(digit);
        }
        let complete = finish_key
            || gather
                .spec
                .num_digits
                .is_some_and(|n| gather.digits.chars().count() as u32 >= n);
        if interrupt_prompts {
            // The first key stops the prompts; the remaining ones are skipped.
            gather.prompts.clear();
            gather.prompts_done = true;
            self.outputs.push_back(Output::Media(Command::StopPlayback {
                session: self.config.media.session,
            }));
        }
        if complete {
            self.finish_gather();
        } else {
            self.arm_gather_timeout();
        }
    }

    fn on_timer(&mut self, id: TimerId) {
        if id.kind == TimerKind::TimeLimit {
            if self.answered {
                self.end(CallStatus::Completed, None);
            }
            return;
        }
        if id.generation != self.timer_generation {
            return;
        }
        match id.kind {
            TimerKind::PauseUnanswered => {
                if self.step == Step::PausingUnanswered {
                    self.step = Step::Idle;
                    self.run();
                }
            }
            TimerKind::NoAnswer => {
                if self.step == Step::Dialing {
                    self.outputs.push_back(Output::Sip(SipAction::Cancel));
                }
            }
            TimerKind::GatherTimeout => {
                if self.gather.as_ref().is_some_and(|g| !g.finished) {
                    self.finish_gather();
                }
            }
            TimerKind::DialTimeout => self.on_dial_timeout(),
            TimerKind::TimeLimit => {}
        }
    }

    /// Starts the clock of the call's `TimeLimit` (when it is answered).
    fn arm_time_limit(&mut self) {
        self.outputs.push_back(Output::SetTimer {
            id: TimerId {
                kind: TimerKind::TimeLimit,
                generation: 0,
            },
            after: self.config.time_limit,
        });
    }

    /// Submits the digits to the action URL, or falls through to the next verb when none
    /// were entered (unless actionOnEmptyResult).
    fn finish_gather(&mut self) {
        let Some(mut gather) = self.gather.take() else {
            return;
        };
        gather.finished = true;
        self.timer_generation += 1;
        self.step = Step::Idle;
        if gather.digits.is_empty() && !gather.spec.action_on_empty_result {
            self.run();
            return;
        }
        let extra = vec![("Digits".to_string(), gather.digits.clone())];
        let target = gather
            .spec
            .action
            .clone()
            .unwrap_or_else(|| self.document_url.clone());
        match self.resolve(&target, &extra) {
            Some(url) => self.fetch(url, gather.spec.method, extra, true),
            None => {
                self.skip_bad_url("Gather", &target);
                self.run();
            }
        }
    }

    // ----- ending -----------------------------------------------------------------------

    /// The media plane could not give the call a session: fail it.
    fn no_media_resources(&mut self) {
        self.notify(
            13227,
            false,
            "No media resources for the call".into(),
            None,
            None,
        );
        self.end(CallStatus::Failed, Some(503));
    }

    /// Ends the call from our side: BYE when answered, a final response otherwise.
    ///
    /// Like Twilio, only a `<Reject>` avoids answering: a `<Hangup/>` (or the end of the
    /// document) on an unanswered call answers it first, then hangs up.
    fn hangup(&mut self) {
        if !self.answered {
            match self.session {
                SessionState::Open(port) => self.answer(port),
                SessionState::Opening => {
                    self.step = Step::AwaitingSession(Box::new(Action::Verb(Verb::Hangup)));
                    return;
                }
                SessionState::Failed => {}
            }
        }
        if self.answered {
            self.end(CallStatus::Completed, None);
        } else {
            self.end(CallStatus::Failed, Some(503));
        }
    }

    /// Sends the SIP action (BYE or a rejection status) and finishes.
    fn end(&mut self, status: CallStatus, reject_status: Option<u16>) {
        if matches!(self.step, Step::Ending | Step::Done) {
            return;
        }
        self.gather = None;
        self.verbs.clear();
        let action = if self.answered {
            Some(SipAction::Hangup)
        } else if self.config.outbound.is_some() {
            // Not answered: cancel the INVITE if it went out.
            self.invited.then_some(SipAction::Cancel)
        } else {
            Some(SipAction::Reject {
                status: reject_status.unwrap_or(603),
            })
        };
        match action {
            Some(action) => self.outputs.push_back(Output::Sip(action)),
            // Nothing was sent: there is no leg to wait for.
            None => {
                self.finish(status);
                self.step = Step::Done;
                self.outputs.push_back(Output::Finished);
                return;
            }
        }
        self.finish(status);
    }

    /// The leg went away on its own (BYE, CANCEL, ACK timeout).
    fn on_leg_gone(&mut self, status: CallStatus) {
        if self.step == Step::Done {
            return;
        }
        if self.step != Step::Ending {
            self.finish(status);
        }
        if self.dial.is_some() {
            // The `<Dial>`'s outcome (its action request) waits for its connected leg's end.
            self.leg_gone = true;
            return;
        }
        self.step = Step::Done;
        self.outputs.push_back(Output::Finished);
    }

    /// Final status, media closed, status callback; the leg may still be winding down.
    fn finish(&mut self, status: CallStatus) {
        self.gather = None;
        self.verbs.clear();
        if !self.closed_media {
            self.closed_media = true;
            self.outputs.push_back(Output::Media(Command::CloseSession {
                session: self.config.media.session,
            }));
        }
        self.set_status(status, false);
        self.status_event("completed", status.as_str());
        // A `<Dial>` in progress: its legs are hung up, its outcome reported.
        self.caller_gone_during_dial();
        self.conference_call_gone();
        if self.is_dial_leg() {
            self.outputs.push_back(Output::LegEvent(LegEvent::Ended {
                status,
                duration: 0,
            }));
        }
        self.step = Step::Ending;
    }

    /// Posts the status callback for `event` if the call asked for that event.
    fn status_event(&mut self, event: &str, call_status: &str) {
        let Some(url) = self.config.status_callback.clone() else {
            return;
        };
        if !self
            .config
            .status_callback_events
            .iter()
            .any(|e| e == event)
        {
            return;
        }
        let params = self.config.params.status_callback(call_status);
        self.outputs.push_back(Output::StatusCallback(AppRequest {
            url,
            method: self.config.status_callback_method,
            params,
        }));
    }

    // ----- helpers ----------------------------------------------------------------------

    fn set_status(&mut self, status: CallStatus, answered: bool) {
        self.status = status;
        self.outputs.push_back(Output::Status { status, answered });
    }

    /// Resolves a (templated, possibly relative) URL against the current document.
    fn resolve(&self, template: &str, extra: &[(String, String)]) -> Option<String> {
        let mut params = self.config.params.voice(self.status);
        params.extend_from_slice(extra);
        let expanded = twiml::expand_template(template, &params);
        twiml::resolve_url(&self.document_url, &expanded).ok()
    }

    fn skip_bad_url(&mut self, verb: &str, url: &str) {
        self.notify(
            11100,
            true,
            format!("Invalid URL in <{verb}>: {url}"),
            Some(url.to_string()),
            None,
        );
    }

    fn notify(
        &mut self,
        code: u32,
        warning: bool,
        message: String,
        url: Option<String>,
        response_body: Option<String>,
    ) {
        let method = self
            .current_request
            .as_ref()
            .filter(|r| url.as_deref() == Some(r.url.as_str()))
            .map(|r| method_name(r.method).to_string());
        self.outputs.push_back(Output::Notify(NotificationInfo {
            code,
            warning,
            message,
            request_url: url,
            request_method: method,
            response_body,
        }));
    }

    fn request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        id
    }

    fn play_id(&mut self) -> u32 {
        let id = self.next_play_id;
        self.next_play_id = self.next_play_id.wrapping_add(1).max(1);
        id
    }

    fn timer(&mut self, kind: TimerKind) -> TimerId {
        self.timer_generation += 1;
        TimerId {
            kind,
            generation: self.timer_generation,
        }
    }
}

/// `GET` / `POST`.
pub fn method_name(method: HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
    }
}

#[path = "call_outbound.rs"]
mod outbound;
pub use outbound::{OutboundSetup, RecordSetup};

#[path = "call_dial.rs"]
mod dial;
pub use dial::{DialLegPlan, DialLegTarget, DialPlan, LegEvent};

#[path = "call_conference.rs"]
mod conference;
pub use conference::ConferenceJoin;

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
