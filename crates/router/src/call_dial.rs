//! The `<Dial>` verb in the call core, from both ends.
//!
//! The caller's side: the nouns become legs (child calls the driver places and runs as
//! calls of their own), the caller hears ringback while they ring, the first leg to answer
//! wins and the others are hung up, the two sessions are bridged in the media plane, and
//! when the connected leg ends (or nobody answers) the outcome goes to the `action` URL
//! (`DialCallStatus`, `DialCallSid`, `DialCallDuration`, `DialBridged`) or the document
//! goes on with the next verb.
//!
//! The leg's side: a call placed by a `<Dial>` reports ringing, answer, readiness to be
//! bridged (after its `sendDigits` and whisper `url`) and its end to the call that dialled
//! it, and otherwise waits: it is the caller's verbs that run.

use std::time::Duration;

use shmq::{Command, MediaId, SessionId};
use store::CallStatus;
use twiml::{CallProgressEvent, DialTarget, HttpMethod, LegCallbacks};

use super::{AppRequest, Call, MediaSource, Output, SessionState, Step, TimerKind};

/// Twilio's longest `<Dial timeout>` (seconds).
const MAX_RING_TIMEOUT_S: u32 = 600;
/// Twilio's longest `<Dial timeLimit>` (seconds).
const MAX_TIME_LIMIT_S: u32 = 14_400;
/// Each leg gives up ringing on its own timer (and so ends `no-answer` itself); the
/// `<Dial>` waits this much longer before it stops waiting for legs that never got that
/// far (still waiting for a trunk channel, or a far end that does not answer our CANCEL).
const DIAL_TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// What a leg placed by a `<Dial>` tells the call that dialled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// The far end is ringing (180/183).
    Ringing,
    /// The far end answered (its `sendDigits` and whisper still to come).
    Answered,
    /// Answered, digits sent, whisper done: bridge the caller's session to `session`.
    Ready { session: SessionId },
    /// The leg is over with this final status; `duration` = seconds since its answer.
    Ended { status: CallStatus, duration: u64 },
}

/// Where a `<Dial>` leg goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialLegTarget {
    /// `<Number>` (or the `<Dial>`'s text): routed through a trunk like Create Call.
    Number(String),
    /// `<Sip>`: dialled directly at the URI's host, with Digest credentials if given.
    Sip {
        uri: String,
        username: Option<String>,
        password: Option<String>,
    },
}

/// One leg of a `<Dial>` for the driver to place as a child call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialLegPlan {
    /// Id of the leg within the call ([`Input::DialLeg`](super::Input::DialLeg) and
    /// [`Output::DialLegControl`] name it).
    pub leg: u32,
    pub target: DialLegTarget,
    /// `<Number sendDigits>`: RFC 4733 digits sent right after the answer.
    pub send_digits: Option<String>,
    /// The whisper: a TwiML document (absolute URL) run on the leg before it is bridged.
    pub whisper_url: Option<String>,
    pub whisper_method: HttpMethod,
    pub status_callback: Option<String>,
    pub status_callback_method: HttpMethod,
    /// `initiated`, `ringing`, `answered`, `completed`.
    pub status_callback_events: Vec<String>,
}

/// A `<Dial>`'s legs and what they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPlan {
    /// The From of every leg.
    pub caller_id: String,
    /// The app chose a `callerId` other than the caller's own: the driver places the legs
    /// only if it is one of the account's numbers or validated caller IDs, and answers
    /// [`Input::DialRefused`](super::Input::DialRefused) (13214) otherwise.
    pub check_caller_id: bool,
    /// How long each leg may ring (`timeout`).
    pub ring_timeout: Duration,
    /// Longest a leg may last once answered (`timeLimit`).
    pub time_limit: Duration,
    pub legs: Vec<DialLegPlan>,
}

/// How far one leg got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegProgress {
    Placing,
    Ringing,
    Answered,
    Ended { status: CallStatus, duration: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Leg {
    id: u32,
    call_sid: Option<String>,
    progress: LegProgress,
    /// We told it to hang up (or cancel).
    hung_up: bool,
}

/// The caller's ringback while the legs ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ringback {
    Off,
    Preparing { request_id: u64 },
    Playing,
}

/// The media relay between the caller and the connected leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bridge {
    None,
    /// `Bridge` sent, `Bridged` not seen yet.
    Requested,
    Up,
    /// The media plane refused it.
    Refused,
}

/// A `<Dial>` in progress on the caller's call.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DialState {
    action: Option<String>,
    method: HttpMethod,
    hangup_on_star: bool,
    legs: Vec<Leg>,
    /// The leg that answered first: the one connected to the caller.
    winner: Option<u32>,
    ringback: Ringback,
    bridge: Bridge,
    /// Nobody answered within `timeout`.
    timed_out: bool,
    /// The legs were not placed (13214).
    refused: bool,
    /// The caller's call ended during the `<Dial>`.
    caller_gone: bool,
}

/// How a `<Dial>` ended, as its action request reports it.
struct DialOutcome {
    status: &'static str,
    call_sid: Option<String>,
    duration: Option<u64>,
    bridged: bool,
}

fn progress_events(callbacks: &LegCallbacks) -> Vec<String> {
    callbacks
        .status_callback_event
        .iter()
        .map(|event| {
            match event {
                CallProgressEvent::Initiated => "initiated",
                CallProgressEvent::Ringing => "ringing",
                CallProgressEvent::Answered => "answered",
                CallProgressEvent::Completed => "completed",
            }
            .to_string()
        })
        .collect()
}

/// `+1 (415) 555-1212` → `+14155551212`: Twilio accepts the usual punctuation in numbers.
fn normalize_number(text: &str) -> String {
    let trimmed = text.trim();
    let punctuation_only = trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if punctuation_only {
        trimmed
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect()
    } else {
        trimmed.to_string()
    }
}

/// Whether a caller ID is a phone number (as opposed to a SIP user or URI).
fn is_phone_number(caller_id: &str) -> bool {
    let digits = caller_id.trim_start_matches('+');
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

impl Call {
    // ----- the caller's side --------------------------------------------------------------

    /// Runs a `<Dial>`: places its legs, plays ringback, waits for an answer.
    pub(super) fn start_dial(&mut self, dial: twiml::Dial) {
        // The caller is answered first (unless answerOnBridge), which needs its session.
        match self.session {
            SessionState::Opening => {
                self.step =
                    Step::AwaitingSession(Box::new(super::Action::Verb(twiml::Verb::Dial(dial))));
                return;
            }
            SessionState::Failed => {
                self.no_media_resources();
                return;
            }
            SessionState::Open(port) => {
                if !self.answered && !dial.answer_on_bridge {
                    self.answer(port);
                }
            }
        }
        if let Some(DialTarget::Conference(spec)) = dial.targets.first() {
            // A conference is always the `<Dial>`'s only noun.
            let spec = spec.clone();
            if !self.answered {
                if let SessionState::Open(port) = self.session {
                    self.answer(port);
                }
            }
            self.start_conference(&dial, &spec);
            return;
        }
        let mut legs = Vec::new();
        for target in &dial.targets {
            let (target, send_digits, callbacks) = match target {
                DialTarget::Number(number) => (
                    DialLegTarget::Number(normalize_number(&number.number)),
                    number.send_digits.clone().filter(|d| !d.is_empty()),
                    &number.callbacks,
                ),
                DialTarget::Sip(sip) => (
                    DialLegTarget::Sip {
                        uri: sip.uri.trim().to_string(),
                        username: sip.username.clone(),
                        password: sip.password.clone(),
                    },
                    None,
                    &sip.callbacks,
                ),
                DialTarget::Client(_) | DialTarget::Conference(_) | DialTarget::Queue(_) => {
                    let noun = match target {
                        DialTarget::Client(_) => "Client",
                        DialTarget::Conference(_) => "Conference",
                        _ => "Queue",
                    };
                    self.notify(
                        13201,
                        true,
                        format!("<Dial><{noun}> is not supported yet; skipped"),
                        None,
                        None,
                    );
                    continue;
                }
            };
            let whisper_url = match &callbacks.url {
                Some(url) => match self.resolve(url, &[]) {
                    Some(resolved) => Some(resolved),
                    None => {
                        self.skip_bad_url("Number", url);
                        None
                    }
                },
                None => None,
            };
            let leg = self.next_leg_id;
            self.next_leg_id = self.next_leg_id.wrapping_add(1);
            legs.push(DialLegPlan {
                leg,
                target,
                send_digits,
                whisper_url,
                whisper_method: callbacks.method,
                status_callback: callbacks
                    .status_callback
                    .as_deref()
                    .and_then(|url| self.resolve(url, &[])),
                status_callback_method: callbacks.status_callback_method,
                status_callback_events: progress_events(callbacks),
            });
        }
        if legs.is_empty() {
            // Nothing this platform can dial: on with the document.
            return;
        }
        if dial.record != twiml::DialRecord::DoNotRecord {
            self.notify(
                13201,
                true,
                "<Dial record> is not supported yet; the call is not recorded".into(),
                None,
                None,
            );
        }
        let params = &self.config.params;
        let own_caller_id = if params.direction == "inbound" {
            params.from.clone()
        } else {
            params.to.clone()
        };
        let all_sip = legs
            .iter()
            .all(|l| matches!(l.target, DialLegTarget::Sip { .. }));
        let (caller_id, check_caller_id) = match dial.caller_id.as_deref().map(str::trim) {
            Some(chosen) if !chosen.is_empty() => {
                let passes_through = chosen == own_caller_id || chosen == params.from;
                // Calls to SIP endpoints may show any SIP user as the caller.
                let sip_user = all_sip && !is_phone_number(chosen);
                (chosen.to_string(), !passes_through && !sip_user)
            }
            _ => (own_caller_id, false),
        };
        let ring_timeout_s = dial.timeout.clamp(1, MAX_RING_TIMEOUT_S);
        let ring_timeout = Duration::from_secs(u64::from(ring_timeout_s));
        let time_limit = Duration::from_secs(u64::from(dial.time_limit.clamp(1, MAX_TIME_LIMIT_S)));
        let state = DialState {
            action: dial.action.clone(),
            method: dial.method,
            hangup_on_star: dial.hangup_on_star,
            legs: legs
                .iter()
                .map(|plan| Leg {
                    id: plan.leg,
                    call_sid: None,
                    progress: LegProgress::Placing,
                    hung_up: false,
                })
                .collect(),
            winner: None,
            ringback: Ringback::Off,
            bridge: Bridge::None,
            timed_out: false,
            refused: false,
            caller_gone: false,
        };
        self.outputs.push_back(Output::Dial(Box::new(DialPlan {
            caller_id,
            check_caller_id,
            ring_timeout,
            time_limit,
            legs,
        })));
        let id = self.timer(TimerKind::DialTimeout);
        self.outputs.push_back(Output::SetTimer {
            id,
            after: ring_timeout + DIAL_TIMEOUT_GRACE,
        });
        self.dial = Some(state);
        self.step = Step::Dial;
        if self.answered {
            // The caller hears ringback while the legs ring (only once answered: before
            // that, its phone makes its own).
            let request_id = self.request_id();
            self.outputs.push_back(Output::PrepareMedia {
                request_id,
                source: MediaSource::Ringback {
                    country: dial.ring_tone.clone(),
                },
            });
            if let Some(dial) = &mut self.dial {
                dial.ringback = Ringback::Preparing { request_id };
            }
        }
    }

    /// The ringback is ready: play it until a leg is connected. Returns false when
    /// `request_id` is not the ringback's.
    pub(super) fn on_ringback_prepared(
        &mut self,
        request_id: u64,
        result: &Result<MediaId, (u32, String)>,
    ) -> bool {
        let Some(dial) = &mut self.dial else {
            return false;
        };
        if dial.ringback != (Ringback::Preparing { request_id }) {
            return false;
        }
        match result {
            Ok(media) => {
                dial.ringback = Ringback::Playing;
                let play_id = self.play_id();
                self.outputs.push_back(Output::Media(Command::Play {
                    session: self.config.media.session,
                    play_id,
                    media: *media,
                    loops: 0,
                }));
            }
            Err((code, message)) => {
                dial.ringback = Ringback::Off;
                let message = format!("No ringback tone: {message}");
                self.notify(*code, true, message, None, None);
            }
        }
        true
    }

    fn stop_ringback(&mut self) {
        let Some(dial) = &mut self.dial else { return };
        let playing = dial.ringback == Ringback::Playing;
        dial.ringback = Ringback::Off;
        if playing {
            self.outputs.push_back(Output::Media(Command::StopPlayback {
                session: self.config.media.session,
            }));
        }
    }

    pub(super) fn on_dial_leg(&mut self, leg: u32, call_sid: String, event: LegEvent) {
        let session = self.config.media.session;
        let Some(dial) = &mut self.dial else { return };
        let Some(index) = dial.legs.iter().position(|l| l.id == leg) else {
            return;
        };
        if let Some(state) = dial.legs.get_mut(index) {
            if !call_sid.is_empty() {
                state.call_sid = Some(call_sid);
            }
        }
        match event {
            LegEvent::Ringing => {
                if let Some(state) = dial.legs.get_mut(index) {
                    if state.progress == LegProgress::Placing {
                        state.progress = LegProgress::Ringing;
                    }
                }
            }
            LegEvent::Answered => {
                if let Some(state) = dial.legs.get_mut(index) {
                    if !matches!(state.progress, LegProgress::Ended { .. }) {
                        state.progress = LegProgress::Answered;
                    }
                }
                let first =
                    dial.winner.is_none() && !dial.caller_gone && !dial.timed_out && !dial.refused;
                if first {
                    // First answer wins: the others are canceled (or hung up).
                    dial.winner = Some(leg);
                    self.hang_up_legs(|l| l.id != leg);
                } else if dial.winner != Some(leg) {
                    self.hang_up_legs(|l| l.id == leg);
                }
            }
            LegEvent::Ready { session: peer } => {
                let connect =
                    dial.winner == Some(leg) && dial.bridge == Bridge::None && !dial.caller_gone;
                if !connect {
                    return;
                }
                self.stop_ringback();
                if !self.answered {
                    // answerOnBridge: the caller is answered only now.
                    if let SessionState::Open(port) = self.session {
                        self.answer(port);
                    }
                }
                self.outputs
                    .push_back(Output::Media(Command::Bridge { session, peer }));
                if let Some(dial) = &mut self.dial {
                    dial.bridge = Bridge::Requested;
                }
            }
            LegEvent::Ended { status, duration } => {
                if let Some(state) = dial.legs.get_mut(index) {
                    state.progress = LegProgress::Ended { status, duration };
                }
                self.check_dial_over();
            }
        }
    }

    /// Tells the legs matching `which` (and not over or told already) to hang up: BYE when
    /// answered, CANCEL while ringing, nothing at all if not dialled yet.
    fn hang_up_legs(&mut self, which: impl Fn(&Leg) -> bool) {
        let Some(dial) = &mut self.dial else { return };
        let mut told = Vec::new();
        for leg in dial.legs.iter_mut() {
            if which(leg) && !leg.hung_up && !matches!(leg.progress, LegProgress::Ended { .. }) {
                leg.hung_up = true;
                told.push(leg.id);
            }
        }
        for leg in told {
            self.outputs.push_back(Output::DialLegControl {
                leg,
                update: super::CallUpdate::Complete,
            });
        }
    }

    pub(super) fn bridge_requested(&self) -> bool {
        self.dial
            .as_ref()
            .is_some_and(|d| d.bridge == Bridge::Requested)
    }

    pub(super) fn on_bridged(&mut self) {
        if let Some(dial) = &mut self.dial {
            if dial.bridge == Bridge::Requested {
                dial.bridge = Bridge::Up;
            }
        }
    }

    /// The media plane would not bridge the legs: the connected leg is hung up and the
    /// `<Dial>` ends `failed`.
    pub(super) fn on_bridge_refused(&mut self) {
        if let Some(dial) = &mut self.dial {
            dial.bridge = Bridge::Refused;
        }
        self.notify(
            13227,
            false,
            "The media plane could not connect the dialled leg to the caller".into(),
            None,
            None,
        );
        self.hang_up_legs(|_| true);
    }

    pub(super) fn on_dial_refused(&mut self, code: u32, message: String) {
        let Some(dial) = &mut self.dial else { return };
        if dial.refused {
            return;
        }
        dial.refused = true;
        self.notify(code, true, message, None, None);
        self.check_dial_over();
    }

    pub(super) fn on_dial_timeout(&mut self) {
        let Some(dial) = &mut self.dial else { return };
        if dial.winner.is_some() {
            return;
        }
        dial.timed_out = true;
        self.hang_up_legs(|_| true);
        self.check_dial_over();
    }

    /// `hangupOnStar`: the caller's `*` hangs up the connected leg. Returns whether the
    /// digit was taken.
    pub(super) fn on_dial_digit(&mut self, digit: char) -> bool {
        let Some(dial) = &self.dial else { return false };
        if digit != '*' || !dial.hangup_on_star || dial.caller_gone {
            return false;
        }
        let Some(winner) = dial.winner else {
            return false;
        };
        if !matches!(dial.bridge, Bridge::Requested | Bridge::Up) {
            return false;
        }
        self.hang_up_legs(|l| l.id == winner);
        true
    }

    /// The caller's call is ending: its legs are hung up; the outcome is reported once the
    /// connected leg (if any) has ended.
    pub(super) fn caller_gone_during_dial(&mut self) {
        let Some(dial) = &mut self.dial else { return };
        if dial.caller_gone {
            return;
        }
        dial.caller_gone = true;
        dial.ringback = Ringback::Off;
        self.hang_up_legs(|_| true);
        self.check_dial_over();
    }

    /// A new document takes over (live redirect): the `<Dial>` is dropped without an
    /// action request and its legs are hung up.
    pub(super) fn abandon_dial(&mut self) {
        if self.dial.is_none() {
            return;
        }
        self.stop_ringback();
        self.hang_up_legs(|_| true);
        self.dial = None;
    }

    /// Reports the `<Dial>`'s outcome once it is known: the connected leg has ended, or
    /// nobody answered (all legs ended, timeout, refused, the caller left).
    fn check_dial_over(&mut self) {
        let Some(dial) = &self.dial else { return };
        let ended = |leg: &Leg| match leg.progress {
            LegProgress::Ended { status, duration } => Some((status, duration)),
            _ => None,
        };
        let outcome = match dial.winner {
            Some(winner) => {
                let Some(leg) = dial.legs.iter().find(|l| l.id == winner) else {
                    return;
                };
                let Some((_, duration)) = ended(leg) else {
                    return;
                };
                DialOutcome {
                    status: if dial.bridge == Bridge::Refused {
                        "failed"
                    } else {
                        "completed"
                    },
                    call_sid: leg.call_sid.clone(),
                    duration: Some(duration),
                    bridged: dial.bridge == Bridge::Up,
                }
            }
            None => {
                let all_ended = dial.legs.iter().all(|l| ended(l).is_some());
                if !(all_ended || dial.timed_out || dial.refused || dial.caller_gone) {
                    return;
                }
                let statuses: Vec<CallStatus> = dial
                    .legs
                    .iter()
                    .filter_map(|l| ended(l).map(|e| e.0))
                    .collect();
                let status = if dial.refused {
                    "failed"
                } else if dial.caller_gone {
                    "canceled"
                } else if dial.timed_out {
                    "no-answer"
                } else if statuses.contains(&CallStatus::Busy) {
                    "busy"
                } else if statuses.contains(&CallStatus::NoAnswer) {
                    "no-answer"
                } else if !statuses.is_empty()
                    && statuses.iter().all(|s| *s == CallStatus::Canceled)
                {
                    "canceled"
                } else {
                    "failed"
                };
                // One leg: its SID; several: the last one to end.
                let call_sid = dial
                    .legs
                    .iter()
                    .rev()
                    .find(|l| ended(l).is_some())
                    .or(dial.legs.first())
                    .and_then(|l| l.call_sid.clone());
                DialOutcome {
                    status,
                    call_sid,
                    duration: None,
                    bridged: false,
                }
            }
        };
        self.finish_dial(outcome);
    }

    fn finish_dial(&mut self, outcome: DialOutcome) {
        // Legs nobody waits for any more (timeout, refusal) are told to go.
        self.hang_up_legs(|_| true);
        self.stop_ringback();
        let Some(dial) = self.dial.take() else { return };
        self.timer_generation += 1;
        let mut extra = vec![
            ("DialCallStatus".to_string(), outcome.status.to_string()),
            ("DialBridged".to_string(), outcome.bridged.to_string()),
        ];
        if let Some(sid) = outcome.call_sid {
            extra.push(("DialCallSid".to_string(), sid));
        }
        if let Some(duration) = outcome.duration {
            extra.push(("DialCallDuration".to_string(), duration.to_string()));
        }
        let action = match &dial.action {
            Some(template) => match self.resolve(template, &extra) {
                Some(url) => Some(url),
                None => {
                    self.skip_bad_url("Dial", template);
                    None
                }
            },
            None => None,
        };
        if dial.caller_gone {
            // Twilio still tells the action URL how the `<Dial>` ended; nothing runs after.
            if let Some(url) = action {
                let mut params = self.config.params.voice(self.status);
                params.extend(extra);
                let request_id = self.request_id();
                self.outputs.push_back(Output::Fetch {
                    request_id,
                    request: AppRequest {
                        url,
                        method: dial.method,
                        params,
                    },
                });
            }
            if self.leg_gone {
                self.step = Step::Done;
                self.outputs.push_back(Output::Finished);
            }
            return;
        }
        self.step = Step::Idle;
        match action {
            // The action's document replaces the rest of this one.
            Some(url) => self.fetch(url, dial.method, extra, true),
            None => self.run(),
        }
    }

    // ----- the leg's side -----------------------------------------------------------------

    /// Whether this call is a leg placed by another call's `<Dial>`.
    pub(super) fn is_dial_leg(&self) -> bool {
        self.config.outbound.as_ref().is_some_and(|o| o.dial_leg)
    }

    /// Digits sent and whisper done: the caller may bridge to this leg.
    pub(super) fn ready_to_bridge(&mut self) {
        self.leg_ready_sent = true;
        self.step = Step::Connected;
        self.outputs.push_back(Output::LegEvent(LegEvent::Ready {
            session: self.config.media.session,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lose_their_punctuation_and_sip_users_are_not_numbers() {
        assert_eq!(normalize_number(" +1 (415) 555-1212 "), "+14155551212");
        assert_eq!(normalize_number("alice"), "alice");
        assert!(is_phone_number("+15551230000"));
        assert!(!is_phone_number("alice"));
        assert!(!is_phone_number("+"));
    }
}
