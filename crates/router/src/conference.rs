//! The sans-IO core of one conference room: who is in it, whether it has started, and what
//! each change means for the participants' calls and the conference's status callback.
//!
//! A [`Room`] never does I/O. The conference registry feeds it joins, leaves, participant
//! updates and speaking changes, and carries out the [`RoomOutput`]s it returns: a
//! [`Notice`] to a participant's call (which then sends its own media commands: join the
//! mix, play wait music, beep), a status callback, a changed record to store.
//!
//! Twilio's rules, as implemented here:
//! - A conference starts when it holds at least two participants and one of them has
//!   `startConferenceOnEnter`; until then everyone hears the wait music.
//! - It ends when its last participant leaves, when a participant with
//!   `endConferenceOnExit` leaves, or when the REST API completes it. The participants
//!   still in it leave and their calls go on with the verb after `<Dial>` (or its `action`).
//! - `beep` (on the joining or leaving participant) decides whether the others hear a beep.
//! - The conference's status callback is the first participant's that names one; the events
//!   it receives are that participant's `statusCallbackEvent` (start and end if it names
//!   none).

use shmq::MixId;
use twiml::{ConferenceBeep, ConferenceEvent, HttpMethod};

/// A conference's status, as the REST API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStatus {
    /// Participants wait for it to start.
    Init,
    InProgress,
    Completed,
}

impl RoomStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Init => "init",
            RoomStatus::InProgress => "in-progress",
            RoomStatus::Completed => "completed",
        }
    }
}

/// Where a conference's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCallback {
    pub url: String,
    pub method: HttpMethod,
    pub events: Vec<ConferenceEvent>,
}

/// A call asking to join (its `<Dial><Conference>` attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub call_sid: String,
    pub muted: bool,
    pub beep: ConferenceBeep,
    pub start_conference_on_enter: bool,
    pub end_conference_on_exit: bool,
    pub max_participants: u32,
    pub label: Option<String>,
    pub status_callback: Option<RoomCallback>,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// Its call ended.
    HungUp,
    /// The REST API removed it (DELETE Participant).
    Kicked,
    /// Its call was redirected to new TwiML (live call control).
    Redirected,
    /// `hangupOnStar`: it pressed `*`.
    HangupOnStar,
}

impl LeaveReason {
    /// Twilio's `ReasonParticipantLeft`.
    fn as_str(self) -> &'static str {
        match self {
            LeaveReason::HungUp => "participant_hung_up",
            LeaveReason::Kicked => "participant_kicked",
            LeaveReason::Redirected => "participant_updated_via_api",
            LeaveReason::HangupOnStar => "participant_hung_up",
        }
    }
}

/// Why a conference ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    LastParticipantLeft {
        call_sid: String,
    },
    EndOnExitLeft {
        call_sid: String,
    },
    /// The REST API set its status to `completed`.
    Api,
}

impl EndReason {
    /// Twilio's `ReasonConferenceEnded`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::LastParticipantLeft { .. } => "last-participant-left",
            EndReason::EndOnExitLeft { .. } => "participant-with-end-conference-on-exit-left",
            EndReason::Api => "conference-ended-via-api",
        }
    }

    /// The participant whose leaving ended it.
    pub fn call_sid(&self) -> Option<&str> {
        match self {
            EndReason::LastParticipantLeft { call_sid } | EndReason::EndOnExitLeft { call_sid } => {
                Some(call_sid)
            }
            EndReason::Api => None,
        }
    }
}

/// Which beep a participant hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beep {
    Enter,
    Exit,
}

/// What the room tells one participant's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// You are in conference `sid`, mixed as `mix` once live.
    Joined {
        conference_sid: String,
        mix: MixId,
    },
    /// The conference has not started: play the wait music.
    Wait,
    /// Be in the mix with these flags (`hold`: not heard, hears the hold music instead).
    Live {
        muted: bool,
        hold: bool,
        hold_url: Option<String>,
        hold_method: HttpMethod,
    },
    Beep(Beep),
    /// You are out of the conference (it ended, or you were removed): go on with the
    /// document.
    Left,
    /// The room did not take the call (16020: full at its `maxParticipants`; 16025: its
    /// `participantLabel` is another participant's): it goes on with the document.
    Refused {
        code: u32,
        message: String,
    },
}

/// What the room asks the registry to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomOutput {
    Notify {
        call_sid: String,
        notice: Notice,
    },
    /// POST these parameters to the room's status callback.
    Callback(Vec<(String, String)>),
}

/// One participant, as the Participants resource shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub call_sid: String,
    pub label: Option<String>,
    pub muted: bool,
    pub hold: bool,
    pub hold_url: Option<String>,
    pub hold_method: HttpMethod,
    pub beep: ConferenceBeep,
    pub start_conference_on_enter: bool,
    pub end_conference_on_exit: bool,
    pub date_created: i64,
    pub date_updated: i64,
}

/// A change to a participant (REST `POST Participants/{CallSid}`); `None` leaves it as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParticipantChange {
    pub muted: Option<bool>,
    pub hold: Option<bool>,
    pub hold_url: Option<String>,
    pub hold_method: Option<HttpMethod>,
    pub end_conference_on_exit: Option<bool>,
}

/// One conference room.
#[derive(Debug, Clone)]
pub struct Room {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub mix: MixId,
    pub status: RoomStatus,
    pub date_created: i64,
    pub date_updated: i64,
    /// Set once it ended.
    pub end_reason: Option<EndReason>,
    participants: Vec<Participant>,
    max_participants: u32,
    callback: Option<RoomCallback>,
    /// Output queue.
    outputs: Vec<RoomOutput>,
}

impl Room {
    pub fn new(sid: String, account_sid: String, friendly_name: String, now_ms: i64) -> Room {
        let mix = mix_of(&sid);
        Room {
            sid,
            account_sid,
            friendly_name,
            mix,
            status: RoomStatus::Init,
            date_created: now_ms,
            date_updated: now_ms,
            end_reason: None,
            participants: Vec::new(),
            max_participants: shmq::MAX_MIX_MEMBERS as u32,
            callback: None,
            outputs: Vec::new(),
        }
    }

    pub fn participants(&self) -> &[Participant] {
        &self.participants
    }

    pub fn participant(&self, call_sid: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.call_sid == call_sid)
    }

    /// The participant with this call SID or label (the Participants resource takes either).
    pub fn find(&self, sid_or_label: &str) -> Option<&Participant> {
        self.participant(sid_or_label).or_else(|| {
            self.participants
                .iter()
                .find(|p| p.label.as_deref() == Some(sid_or_label))
        })
    }

    pub fn is_over(&self) -> bool {
        self.status == RoomStatus::Completed
    }

    /// Everything the last calls asked for, in order.
    pub fn take_outputs(&mut self) -> Vec<RoomOutput> {
        std::mem::take(&mut self.outputs)
    }

    /// A call joins (or is refused as `Full`).
    pub fn join(&mut self, request: JoinRequest, now_ms: i64) {
        if self.is_over() || self.participant(&request.call_sid).is_some() {
            return;
        }
        if self.participants.is_empty() {
            self.max_participants = request
                .max_participants
                .clamp(2, shmq::MAX_MIX_MEMBERS as u32);
        }
        if self.participants.len() >= self.max_participants as usize {
            let message = format!(
                "Conference {} is full ({} participants)",
                self.friendly_name, self.max_participants
            );
            self.notify(
                &request.call_sid,
                Notice::Refused {
                    code: 16020,
                    message,
                },
            );
            return;
        }
        if let Some(label) = &request.label {
            if self.find(label).is_some() {
                let message = format!("Participant label {label:?} is in use in the conference");
                self.notify(
                    &request.call_sid,
                    Notice::Refused {
                        code: 16025,
                        message,
                    },
                );
                return;
            }
        }
        if self.callback.is_none() {
            self.callback = request.status_callback.clone().map(|mut callback| {
                if callback.events.is_empty() {
                    callback.events = vec![ConferenceEvent::Start, ConferenceEvent::End];
                }
                callback
            });
        }
        self.date_updated = now_ms;
        let participant = Participant {
            call_sid: request.call_sid.clone(),
            label: request.label.clone(),
            muted: request.muted,
            hold: false,
            hold_url: None,
            hold_method: HttpMethod::Get,
            beep: request.beep,
            start_conference_on_enter: request.start_conference_on_enter,
            end_conference_on_exit: request.end_conference_on_exit,
            date_created: now_ms,
            date_updated: now_ms,
        };
        self.participants.push(participant.clone());
        let joined = Notice::Joined {
            conference_sid: self.sid.clone(),
            mix: self.mix,
        };
        self.notify(&request.call_sid, joined);
        self.participant_event(ConferenceEvent::Join, "participant-join", &participant, &[]);
        match self.status {
            RoomStatus::InProgress => {
                if beeps_on_enter(participant.beep) {
                    self.beep_others(&participant.call_sid, Beep::Enter);
                }
                self.notify(&participant.call_sid, live_notice(&participant));
            }
            _ => {
                let starts = self.participants.len() >= 2
                    && self
                        .participants
                        .iter()
                        .any(|p| p.start_conference_on_enter);
                if starts {
                    self.start(now_ms);
                } else {
                    self.notify(&participant.call_sid, Notice::Wait);
                }
            }
        }
    }

    fn start(&mut self, now_ms: i64) {
        self.status = RoomStatus::InProgress;
        self.date_updated = now_ms;
        self.conference_event(ConferenceEvent::Start, "conference-start", Vec::new());
        let everyone = self.participants.clone();
        for participant in &everyone {
            self.notify(&participant.call_sid, live_notice(participant));
        }
    }

    /// A participant left (its call ended, it was removed, redirected, or pressed `*`).
    pub fn leave(&mut self, call_sid: &str, reason: LeaveReason, now_ms: i64) {
        let Some(index) = self
            .participants
            .iter()
            .position(|p| p.call_sid == call_sid)
        else {
            return;
        };
        let participant = self.participants.remove(index);
        self.date_updated = now_ms;
        if reason != LeaveReason::HungUp {
            self.notify(call_sid, Notice::Left);
        }
        let call_status = if reason == LeaveReason::HungUp {
            "completed"
        } else {
            "in-progress"
        };
        self.participant_event(
            ConferenceEvent::Leave,
            "participant-leave",
            &participant,
            &[
                ("ReasonParticipantLeft", reason.as_str()),
                ("ParticipantCallStatus", call_status),
            ],
        );
        if self.is_over() {
            return;
        }
        if participant.end_conference_on_exit {
            self.end(
                EndReason::EndOnExitLeft {
                    call_sid: call_sid.to_string(),
                },
                now_ms,
            );
        } else if self.participants.is_empty() {
            self.end(
                EndReason::LastParticipantLeft {
                    call_sid: call_sid.to_string(),
                },
                now_ms,
            );
        } else if self.status == RoomStatus::InProgress && beeps_on_exit(participant.beep) {
            self.beep_others(call_sid, Beep::Exit);
        }
    }

    /// Ends the conference: everyone still in it leaves.
    pub fn end(&mut self, reason: EndReason, now_ms: i64) {
        if self.is_over() {
            return;
        }
        self.status = RoomStatus::Completed;
        self.date_updated = now_ms;
        for participant in std::mem::take(&mut self.participants) {
            self.notify(&participant.call_sid, Notice::Left);
            self.participant_event(
                ConferenceEvent::Leave,
                "participant-leave",
                &participant,
                &[
                    ("ReasonParticipantLeft", "conference_ended"),
                    ("ParticipantCallStatus", "in-progress"),
                ],
            );
        }
        let mut extra = vec![(
            "ReasonConferenceEnded".to_string(),
            reason.as_str().to_string(),
        )];
        let why = match &reason {
            EndReason::LastParticipantLeft { .. } => "Last participant left",
            EndReason::EndOnExitLeft { .. } => "Participant with endConferenceOnExit left",
            EndReason::Api => "Conference ended via API",
        };
        extra.push(("Reason".to_string(), why.to_string()));
        if let Some(call_sid) = reason.call_sid() {
            extra.push(("CallSidEndingConference".to_string(), call_sid.to_string()));
        }
        self.end_reason = Some(reason);
        self.conference_event(ConferenceEvent::End, "conference-end", extra);
    }

    /// Applies a REST update to a participant; false when it is not in the room.
    pub fn update(&mut self, call_sid: &str, change: &ParticipantChange, now_ms: i64) -> bool {
        let Some(index) = self
            .participants
            .iter()
            .position(|p| p.call_sid == call_sid)
        else {
            return false;
        };
        let Some(participant) = self.participants.get_mut(index) else {
            return false;
        };
        let was = participant.clone();
        if let Some(muted) = change.muted {
            participant.muted = muted;
        }
        if let Some(hold) = change.hold {
            participant.hold = hold;
        }
        if let Some(url) = &change.hold_url {
            participant.hold_url = Some(url.clone()).filter(|u| !u.is_empty());
        }
        if let Some(method) = change.hold_method {
            participant.hold_method = method;
        }
        if let Some(end) = change.end_conference_on_exit {
            participant.end_conference_on_exit = end;
        }
        participant.date_updated = now_ms;
        let now = participant.clone();
        self.date_updated = now_ms;
        let media_changed = was.muted != now.muted
            || was.hold != now.hold
            || (now.hold && was.hold_url != now.hold_url);
        if media_changed && self.status == RoomStatus::InProgress {
            self.notify(call_sid, live_notice(&now));
        }
        if was.muted != now.muted {
            let name = if now.muted {
                "participant-mute"
            } else {
                "participant-unmute"
            };
            self.participant_event(ConferenceEvent::Mute, name, &now, &[]);
        }
        if was.hold != now.hold {
            let name = if now.hold {
                "participant-hold"
            } else {
                "participant-unhold"
            };
            self.participant_event(ConferenceEvent::Hold, name, &now, &[]);
        }
        true
    }

    /// A participant started or stopped talking (the media plane's voice activity).
    pub fn speaking(&mut self, call_sid: &str, speaking: bool) {
        let Some(participant) = self.participant(call_sid).cloned() else {
            return;
        };
        let name = if speaking {
            "participant-speech-start"
        } else {
            "participant-speech-stop"
        };
        self.participant_event(ConferenceEvent::Speaker, name, &participant, &[]);
    }

    // ----- helpers ----------------------------------------------------------------------

    fn notify(&mut self, call_sid: &str, notice: Notice) {
        self.outputs.push(RoomOutput::Notify {
            call_sid: call_sid.to_string(),
            notice,
        });
    }

    fn beep_others(&mut self, call_sid: &str, beep: Beep) {
        let others: Vec<String> = self
            .participants
            .iter()
            .filter(|p| p.call_sid != call_sid && !p.hold)
            .map(|p| p.call_sid.clone())
            .collect();
        for other in others {
            self.notify(&other, Notice::Beep(beep));
        }
    }

    fn subscribed(&self, event: ConferenceEvent) -> bool {
        self.callback
            .as_ref()
            .is_some_and(|c| c.events.contains(&event))
    }

    fn conference_event(
        &mut self,
        event: ConferenceEvent,
        name: &str,
        extra: Vec<(String, String)>,
    ) {
        if !self.subscribed(event) {
            return;
        }
        let mut params = self.base_params(name);
        params.extend(extra);
        self.outputs.push(RoomOutput::Callback(params));
    }

    fn participant_event(
        &mut self,
        event: ConferenceEvent,
        name: &str,
        participant: &Participant,
        extra: &[(&str, &str)],
    ) {
        if !self.subscribed(event) {
            return;
        }
        let mut params = self.base_params(name);
        params.push(("CallSid".into(), participant.call_sid.clone()));
        params.push(("Muted".into(), participant.muted.to_string()));
        params.push(("Hold".into(), participant.hold.to_string()));
        params.push(("Coaching".into(), "false".into()));
        params.push((
            "EndConferenceOnExit".into(),
            participant.end_conference_on_exit.to_string(),
        ));
        params.push((
            "StartConferenceOnEnter".into(),
            participant.start_conference_on_enter.to_string(),
        ));
        if let Some(label) = &participant.label {
            params.push(("ParticipantLabel".into(), label.clone()));
        }
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.outputs.push(RoomOutput::Callback(params));
    }

    fn base_params(&self, event: &str) -> Vec<(String, String)> {
        vec![
            ("AccountSid".into(), self.account_sid.clone()),
            ("ConferenceSid".into(), self.sid.clone()),
            ("FriendlyName".into(), self.friendly_name.clone()),
            ("StatusCallbackEvent".into(), event.to_string()),
        ]
    }

    /// Where the room's callbacks go.
    pub fn callback(&self) -> Option<&RoomCallback> {
        self.callback.as_ref()
    }
}

fn beeps_on_enter(beep: ConferenceBeep) -> bool {
    matches!(beep, ConferenceBeep::Always | ConferenceBeep::OnEnter)
}

fn beeps_on_exit(beep: ConferenceBeep) -> bool {
    matches!(beep, ConferenceBeep::Always | ConferenceBeep::OnExit)
}

fn live_notice(participant: &Participant) -> Notice {
    Notice::Live {
        muted: participant.muted,
        hold: participant.hold,
        hold_url: participant.hold_url.clone(),
        hold_method: participant.hold_method,
    }
}

/// The mix id of a conference: the first 16 hex digits of its SID after `CF` (random), top
/// bit cleared; 1 if the SID is not hex (never 0).
pub fn mix_of(sid: &str) -> MixId {
    let hex = sid.get(2..18).unwrap_or("");
    let id = u64::from_str_radix(hex, 16).unwrap_or(1) & (u64::MAX >> 1);
    MixId(id.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(call_sid: &str) -> JoinRequest {
        JoinRequest {
            call_sid: call_sid.into(),
            muted: false,
            beep: ConferenceBeep::Always,
            start_conference_on_enter: true,
            end_conference_on_exit: false,
            max_participants: 250,
            label: None,
            status_callback: None,
        }
    }

    fn room_with_callback(events: Vec<ConferenceEvent>) -> (Room, JoinRequest) {
        let room = Room::new(
            "CF0123456789abcdef0123456789abcdef".into(),
            "AC1".into(),
            "room".into(),
            1000,
        );
        let mut first = join("CA1");
        first.status_callback = Some(RoomCallback {
            url: "http://app/conf".into(),
            method: HttpMethod::Post,
            events,
        });
        (room, first)
    }

    fn notices(outputs: &[RoomOutput], call_sid: &str) -> Vec<Notice> {
        outputs
            .iter()
            .filter_map(|o| match o {
                RoomOutput::Notify {
                    call_sid: c,
                    notice,
                } if c == call_sid => Some(notice.clone()),
                _ => None,
            })
            .collect()
    }

    fn events(outputs: &[RoomOutput]) -> Vec<String> {
        outputs
            .iter()
            .filter_map(|o| match o {
                RoomOutput::Callback(params) => params
                    .iter()
                    .find(|(k, _)| k == "StatusCallbackEvent")
                    .map(|(_, v)| v.clone()),
                _ => None,
            })
            .collect()
    }

    fn live(muted: bool, hold: bool) -> Notice {
        Notice::Live {
            muted,
            hold,
            hold_url: None,
            hold_method: HttpMethod::Get,
        }
    }

    #[test]
    fn a_lone_caller_waits_and_the_second_starts_the_conference() {
        let all = vec![
            ConferenceEvent::Start,
            ConferenceEvent::End,
            ConferenceEvent::Join,
            ConferenceEvent::Leave,
        ];
        let (mut room, first) = room_with_callback(all);
        room.join(first, 1000);
        let out = room.take_outputs();
        assert_eq!(
            notices(&out, "CA1"),
            vec![
                Notice::Joined {
                    conference_sid: room.sid.clone(),
                    mix: room.mix
                },
                Notice::Wait
            ]
        );
        assert_eq!(room.status, RoomStatus::Init);
        assert_eq!(events(&out), vec!["participant-join"]);

        room.join(join("CA2"), 2000);
        let out = room.take_outputs();
        assert_eq!(room.status, RoomStatus::InProgress);
        assert_eq!(notices(&out, "CA1"), vec![live(false, false)]);
        assert_eq!(
            notices(&out, "CA2").last(),
            Some(&live(false, false)),
            "{out:?}"
        );
        assert_eq!(events(&out), vec!["participant-join", "conference-start"]);

        // A third hears no wait music; the two others hear it arrive.
        room.join(join("CA3"), 3000);
        let out = room.take_outputs();
        assert_eq!(notices(&out, "CA1"), vec![Notice::Beep(Beep::Enter)]);
        assert_eq!(notices(&out, "CA2"), vec![Notice::Beep(Beep::Enter)]);
        assert_eq!(notices(&out, "CA3").last(), Some(&live(false, false)));

        // Leaving: a beep for the rest; the last one out ends it.
        room.leave("CA3", LeaveReason::HungUp, 4000);
        let out = room.take_outputs();
        assert_eq!(notices(&out, "CA1"), vec![Notice::Beep(Beep::Exit)]);
        assert!(
            notices(&out, "CA3").is_empty(),
            "a hung-up call needs no notice"
        );
        room.leave("CA2", LeaveReason::HungUp, 5000);
        room.leave("CA1", LeaveReason::HungUp, 6000);
        let out = room.take_outputs();
        assert!(room.is_over());
        assert_eq!(
            room.end_reason,
            Some(EndReason::LastParticipantLeft {
                call_sid: "CA1".into()
            })
        );
        assert_eq!(
            events(&out),
            vec!["participant-leave", "participant-leave", "conference-end"]
        );
    }

    #[test]
    fn nobody_with_start_on_enter_keeps_everyone_waiting() {
        let mut room = Room::new("CFab".into(), "AC1".into(), "r".into(), 0);
        for sid in ["CA1", "CA2", "CA3"] {
            let mut request = join(sid);
            request.start_conference_on_enter = false;
            room.join(request, 0);
        }
        assert_eq!(room.status, RoomStatus::Init);
        room.join(join("CA4"), 0);
        let out = room.take_outputs();
        assert_eq!(room.status, RoomStatus::InProgress);
        for sid in ["CA1", "CA2", "CA3", "CA4"] {
            assert_eq!(
                notices(&out, sid).last(),
                Some(&live(false, false)),
                "{sid}"
            );
        }
    }

    #[test]
    fn end_on_exit_ends_it_for_everyone_and_reports_who() {
        let (mut room, mut first) = room_with_callback(vec![ConferenceEvent::End]);
        first.end_conference_on_exit = true;
        room.join(first, 0);
        room.join(join("CA2"), 0);
        room.join(join("CA3"), 0);
        room.take_outputs();
        room.leave("CA1", LeaveReason::HungUp, 10);
        let out = room.take_outputs();
        assert!(room.is_over());
        assert_eq!(notices(&out, "CA2"), vec![Notice::Left]);
        assert_eq!(notices(&out, "CA3"), vec![Notice::Left]);
        let end = out
            .iter()
            .find_map(|o| match o {
                RoomOutput::Callback(p) => Some(p.clone()),
                _ => None,
            })
            .unwrap();
        assert!(end.contains(&("StatusCallbackEvent".into(), "conference-end".into())));
        assert!(end.contains(&("CallSidEndingConference".into(), "CA1".into())));
        assert!(end.contains(&(
            "ReasonConferenceEnded".into(),
            "participant-with-end-conference-on-exit-left".into()
        )));
        assert!(room.participants().is_empty());
        // Nobody joins a finished room.
        room.join(join("CA9"), 20);
        assert!(room.take_outputs().is_empty());
    }

    #[test]
    fn mute_and_hold_reach_the_participant_and_the_callback() {
        let (mut room, first) =
            room_with_callback(vec![ConferenceEvent::Mute, ConferenceEvent::Hold]);
        room.join(first, 0);
        room.join(join("CA2"), 0);
        room.take_outputs();
        let mute = ParticipantChange {
            muted: Some(true),
            ..ParticipantChange::default()
        };
        assert!(room.update("CA2", &mute, 5));
        let out = room.take_outputs();
        assert_eq!(notices(&out, "CA2"), vec![live(true, false)]);
        assert_eq!(events(&out), vec!["participant-mute"]);
        assert!(room.participant("CA2").unwrap().muted);
        // The same change again changes nothing.
        assert!(room.update("CA2", &mute, 6));
        assert!(room.take_outputs().is_empty());
        let hold = ParticipantChange {
            hold: Some(true),
            hold_url: Some("http://app/hold.mp3".into()),
            ..ParticipantChange::default()
        };
        room.update("CA2", &hold, 7);
        let out = room.take_outputs();
        assert_eq!(
            notices(&out, "CA2"),
            vec![Notice::Live {
                muted: true,
                hold: true,
                hold_url: Some("http://app/hold.mp3".into()),
                hold_method: HttpMethod::Get,
            }]
        );
        assert_eq!(events(&out), vec!["participant-hold"]);
        assert!(!room.update("CA404", &mute, 8));
    }

    #[test]
    fn a_full_room_refuses_and_a_kick_tells_the_call() {
        let mut room = Room::new("CFab".into(), "AC1".into(), "r".into(), 0);
        let mut first = join("CA1");
        first.max_participants = 2;
        room.join(first, 0);
        room.join(join("CA2"), 0);
        room.join(join("CA3"), 0);
        let out = room.take_outputs();
        assert!(matches!(
            notices(&out, "CA3").as_slice(),
            [Notice::Refused { code: 16020, .. }]
        ));
        assert_eq!(room.participants().len(), 2);
        room.leave("CA2", LeaveReason::Kicked, 1);
        let out = room.take_outputs();
        assert_eq!(notices(&out, "CA2"), vec![Notice::Left]);
        assert!(!room.is_over());
    }

    #[test]
    fn without_a_callback_nothing_is_posted_and_labels_find_participants() {
        let mut room = Room::new("CFab".into(), "AC1".into(), "r".into(), 0);
        let mut first = join("CA1");
        first.label = Some("agent".into());
        room.join(first, 0);
        room.join(join("CA2"), 0);
        assert!(events(&room.take_outputs()).is_empty());
        assert_eq!(room.find("agent").map(|p| p.call_sid.as_str()), Some("CA1"));
        let mut same_label = join("CA3");
        same_label.label = Some("agent".into());
        room.join(same_label, 0);
        assert!(matches!(
            notices(&room.take_outputs(), "CA3").as_slice(),
            [Notice::Refused { code: 16025, .. }]
        ));
        assert_eq!(room.participants().len(), 2);
        assert_eq!(room.find("CA2").map(|p| p.call_sid.as_str()), Some("CA2"));
        assert!(room.find("nobody").is_none());
    }

    #[test]
    fn mix_ids_come_from_the_sid_and_are_never_zero() {
        assert_eq!(
            mix_of("CF0123456789abcdef0123456789abcdef"),
            MixId(0x0123_4567_89ab_cdef)
        );
        assert_eq!(
            mix_of("CFffffffffffffffff0123456789abcdef"),
            MixId(u64::MAX >> 1)
        );
        assert_eq!(mix_of("CFzz"), MixId(1));
        assert_eq!(mix_of("CF0000000000000000"), MixId(1));
    }
}
