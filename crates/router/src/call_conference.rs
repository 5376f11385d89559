//! `<Dial><Conference>` in the call core: one participant's side of a conference.
//!
//! The call asks the conference registry to join the named room
//! ([`Output::JoinConference`]) and then follows the room's [`Notice`]s: while the
//! conference waits to start it plays the wait music (`waitUrl`: an audio file, or a TwiML
//! document of `<Play>`, `<Say>`, `<Pause>` and `<Redirect>` run over and over; the
//! platform's hold music when absent; silence when empty); once live it joins the media
//! plane's mix for the room (`muted`, and `deaf` while on hold with the hold music
//! playing); it plays the enter/exit beeps the room sends. When the room says it left (the
//! conference ended, or the REST API removed it) or the caller pressed `*` with
//! `hangupOnStar`, it leaves the mix and goes on with the `<Dial>`'s `action` or the next
//! verb. The call's own end tells the room it hung up.

use std::collections::VecDeque;

use shmq::{Command, MediaId, MixId};
use twiml::{AppContent, HttpMethod, Verb};

use super::{AppRequest, AppResult, Call, MediaSource, Output, Step, ToneKind};
use crate::conference::{Beep, JoinRequest, LeaveReason, Notice, RoomCallback};

/// What a participant's call asks of the conference registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceJoin {
    /// The room's name (`<Conference>`'s text), per account.
    pub name: String,
    pub request: JoinRequest,
}

/// Audio played under the conference: the wait music before it starts, the hold music
/// while the participant is on hold.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Background {
    Off,
    /// The document or file at `url` (fetched again when its items run out).
    Fetching {
        request_id: u64,
    },
    /// Preparing one item.
    Preparing {
        request_id: u64,
        loops: u16,
    },
    Playing {
        play_id: u32,
    },
    /// Nothing more to play (silence, or a document without audio).
    Idle,
}

/// One item of a wait/hold document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BackgroundItem {
    Media { source: MediaSource, loops: u16 },
    Pause { seconds: u32 },
}

/// Where background audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BackgroundSource {
    /// The platform's hold music.
    Platform,
    Silence,
    Url {
        url: String,
        method: HttpMethod,
    },
}

/// A `<Dial><Conference>` in progress on this call.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ConferenceState {
    action: Option<String>,
    method: HttpMethod,
    hangup_on_star: bool,
    wait: BackgroundSource,
    /// Set by the room's `Joined`.
    mix: Option<MixId>,
    conference_sid: Option<String>,
    /// `JoinMix` sent (and no `LeaveMix` since).
    in_mix: bool,
    background: Background,
    /// The source of what `background` plays (wait or hold).
    background_source: Option<BackgroundSource>,
    /// Items of the current wait/hold document still to play.
    items: VecDeque<BackgroundItem>,
    /// The URL the current wait/hold document came from (relative URLs resolve against it).
    background_url: Option<String>,
    /// Beeps being prepared (request ids) and playing (play ids): their results are ours.
    beeps_preparing: Vec<u64>,
    beeps_playing: Vec<u32>,
    /// We asked the room to let us go (`*`): waiting for its `Left`.
    leaving: bool,
}

impl Call {
    /// Runs `<Dial><Conference>`: answers, asks to join the room.
    pub(super) fn start_conference(&mut self, dial: &twiml::Dial, spec: &twiml::Conference) {
        if spec.record != twiml::ConferenceRecord::DoNotRecord {
            self.notify(
                13201,
                true,
                "<Conference record> is not supported yet; the conference is not recorded".into(),
                None,
                None,
            );
        }
        if spec.coach.is_some() {
            self.notify(
                13201,
                true,
                "<Conference coach> is not supported yet; the participant joins normally".into(),
                None,
                None,
            );
        }
        let wait = match spec.wait_url.as_deref().map(str::trim) {
            None => BackgroundSource::Platform,
            Some("") => BackgroundSource::Silence,
            Some(url) => match self.resolve(url, &[]) {
                Some(url) => BackgroundSource::Url {
                    url,
                    method: spec.wait_method,
                },
                None => {
                    self.skip_bad_url("Conference", url);
                    BackgroundSource::Platform
                }
            },
        };
        let status_callback = spec
            .status_callback
            .as_deref()
            .and_then(|url| self.resolve(url, &[]))
            .map(|url| RoomCallback {
                url,
                method: spec.status_callback_method,
                events: spec.status_callback_event.clone(),
            });
        self.conference = Some(ConferenceState {
            action: dial.action.clone(),
            method: dial.method,
            hangup_on_star: dial.hangup_on_star,
            wait,
            mix: None,
            conference_sid: None,
            in_mix: false,
            background: Background::Off,
            background_source: None,
            items: VecDeque::new(),
            background_url: None,
            beeps_preparing: Vec::new(),
            beeps_playing: Vec::new(),
            leaving: false,
        });
        self.step = Step::Conference;
        self.outputs
            .push_back(Output::JoinConference(Box::new(ConferenceJoin {
                name: spec.name.trim().to_string(),
                request: JoinRequest {
                    call_sid: self.config.params.call_sid.clone(),
                    muted: spec.muted,
                    beep: spec.beep,
                    start_conference_on_enter: spec.start_conference_on_enter,
                    end_conference_on_exit: spec.end_conference_on_exit,
                    max_participants: spec.max_participants,
                    label: spec.participant_label.clone(),
                    status_callback,
                },
            })));
    }

    /// The conference SID while this call is in one.
    pub fn conference_sid(&self) -> Option<&str> {
        self.conference
            .as_ref()
            .and_then(|c| c.conference_sid.as_deref())
    }

    pub(super) fn on_conference_notice(&mut self, notice: Notice) {
        let session = self.config.media.session;
        let Some(conference) = &mut self.conference else {
            return;
        };
        match notice {
            Notice::Joined {
                conference_sid,
                mix,
            } => {
                conference.conference_sid = Some(conference_sid);
                conference.mix = Some(mix);
            }
            Notice::Wait => {
                let source = conference.wait.clone();
                self.start_background(source);
            }
            Notice::Live {
                muted,
                hold,
                hold_url,
                hold_method,
            } => {
                let Some(mix) = conference.mix else { return };
                conference.in_mix = true;
                self.outputs.push_back(Output::Media(Command::JoinMix {
                    session,
                    mix,
                    muted: muted || hold,
                    deaf: hold,
                }));
                if hold {
                    let source = match hold_url {
                        Some(url) => match self.resolve(&url, &[]) {
                            Some(url) => BackgroundSource::Url {
                                url,
                                method: hold_method,
                            },
                            None => BackgroundSource::Platform,
                        },
                        None => BackgroundSource::Platform,
                    };
                    self.start_background(source);
                } else {
                    self.stop_background();
                }
            }
            Notice::Beep(beep) => {
                let request_id = self.request_id();
                if let Some(conference) = &mut self.conference {
                    conference.beeps_preparing.push(request_id);
                }
                let tone = match beep {
                    Beep::Enter => ToneKind::BeepEnter,
                    Beep::Exit => ToneKind::BeepExit,
                };
                self.outputs.push_back(Output::PrepareMedia {
                    request_id,
                    source: MediaSource::Tone(tone),
                });
            }
            Notice::Left => self.left_conference(),
            Notice::Refused { code, message } => {
                self.notify(code, true, message, None, None);
                self.left_conference();
            }
        }
    }

    /// `*` with `hangupOnStar`: ask the room to let us go. Returns whether the digit was
    /// taken.
    pub(super) fn on_conference_digit(&mut self, digit: char) -> bool {
        let Some(conference) = &mut self.conference else {
            return false;
        };
        if digit != '*' || !conference.hangup_on_star || conference.leaving {
            return false;
        }
        conference.leaving = true;
        self.outputs.push_back(Output::LeaveConference {
            reason: LeaveReason::HangupOnStar,
        });
        true
    }

    /// Voice activity on this participant's audio (the media plane's `Speaking`).
    pub(super) fn on_speaking(&mut self, speaking: bool) {
        if self.conference.as_ref().is_some_and(|c| c.in_mix) {
            self.outputs
                .push_back(Output::ConferenceSpeaking { speaking });
        }
    }

    /// Whether a `JoinMix` is outstanding (a `SessionFailed` is its refusal).
    pub(super) fn mix_requested(&self) -> bool {
        self.conference.as_ref().is_some_and(|c| c.in_mix)
    }

    /// The media plane refused the mix: out of the conference, on with the document.
    pub(super) fn on_mix_refused(&mut self) {
        if let Some(conference) = &mut self.conference {
            conference.in_mix = false;
        }
        self.notify(
            13227,
            false,
            "The media plane could not connect the call to the conference".into(),
            None,
            None,
        );
        self.outputs.push_back(Output::LeaveConference {
            reason: LeaveReason::Redirected,
        });
        self.left_conference();
    }

    /// The call itself is ending (hung up, failed): the room hears it left.
    pub(super) fn conference_call_gone(&mut self) {
        if self.conference.take().is_some() {
            self.outputs.push_back(Output::LeaveConference {
                reason: LeaveReason::HungUp,
            });
        }
    }

    /// A new document takes over (live redirect): out of the room without an action request.
    pub(super) fn abandon_conference(&mut self) {
        let Some(conference) = self.conference.take() else {
            return;
        };
        self.leave_mix(conference.in_mix);
        self.outputs.push_back(Output::LeaveConference {
            reason: LeaveReason::Redirected,
        });
    }

    /// Out of the conference: leave the mix, stop background audio, then the `<Dial>`'s
    /// action or the next verb.
    fn left_conference(&mut self) {
        let Some(conference) = self.conference.take() else {
            return;
        };
        self.leave_mix(conference.in_mix);
        if self.step != Step::Conference {
            return;
        }
        self.step = Step::Idle;
        let action = match &conference.action {
            Some(template) => match self.resolve(template, &[]) {
                Some(url) => Some(url),
                None => {
                    self.skip_bad_url("Dial", template);
                    None
                }
            },
            None => None,
        };
        match action {
            Some(url) => self.fetch(url, conference.method, Vec::new(), true),
            None => self.run(),
        }
    }

    fn leave_mix(&mut self, in_mix: bool) {
        let session = self.config.media.session;
        if in_mix {
            self.outputs
                .push_back(Output::Media(Command::LeaveMix { session }));
        }
        self.outputs
            .push_back(Output::Media(Command::StopPlayback { session }));
    }

    // ----- background audio (wait and hold music) ----------------------------------------

    fn start_background(&mut self, source: BackgroundSource) {
        let session = self.config.media.session;
        let Some(conference) = &mut self.conference else {
            return;
        };
        if conference.background_source.as_ref() == Some(&source)
            && conference.background != Background::Off
        {
            return;
        }
        if matches!(conference.background, Background::Playing { .. }) {
            self.outputs
                .push_back(Output::Media(Command::StopPlayback { session }));
        }
        let Some(conference) = &mut self.conference else {
            return;
        };
        conference.background_source = Some(source.clone());
        conference.items.clear();
        conference.background_url = None;
        match source {
            BackgroundSource::Silence => conference.background = Background::Idle,
            BackgroundSource::Platform => {
                conference.items.push_back(BackgroundItem::Media {
                    source: MediaSource::Tone(ToneKind::HoldMusic),
                    loops: 0,
                });
                conference.background = Background::Idle;
                self.next_background_item();
            }
            BackgroundSource::Url { url, method } => self.fetch_background(url, method),
        }
    }

    fn stop_background(&mut self) {
        let session = self.config.media.session;
        let Some(conference) = &mut self.conference else {
            return;
        };
        let playing = matches!(conference.background, Background::Playing { .. });
        conference.background = Background::Off;
        conference.background_source = None;
        conference.items.clear();
        if playing {
            self.outputs
                .push_back(Output::Media(Command::StopPlayback { session }));
        }
    }

    fn fetch_background(&mut self, url: String, method: HttpMethod) {
        let request_id = self.request_id();
        let mut params = self.config.params.voice(self.status);
        if let Some(sid) = self.conference_sid() {
            params.push(("ConferenceSid".into(), sid.to_string()));
        }
        if let Some(conference) = &mut self.conference {
            conference.background = Background::Fetching { request_id };
            conference.background_url = Some(url.clone());
        }
        self.outputs.push_back(Output::Fetch {
            request_id,
            request: AppRequest {
                url,
                method,
                params,
            },
        });
    }

    /// The wait/hold document arrived. Returns false when `request_id` is not ours.
    pub(super) fn on_conference_app_result(&mut self, request_id: u64, result: &AppResult) -> bool {
        let Some(conference) = &mut self.conference else {
            return false;
        };
        if conference.background != (Background::Fetching { request_id }) {
            return false;
        }
        conference.background = Background::Idle;
        match result {
            AppResult::Failed { code, url, message } => {
                let message = format!("The conference wait/hold URL failed: {message}");
                self.notify(*code, true, message, Some(url.clone()), None);
            }
            AppResult::Response {
                url,
                content_type,
                body,
            } => {
                let items = match twiml::classify_content_type(content_type) {
                    AppContent::Audio => vec![BackgroundItem::Media {
                        source: MediaSource::Bytes {
                            body: body.clone(),
                            content_type: content_type.clone(),
                        },
                        loops: 0,
                    }],
                    AppContent::Twiml => self.background_items(url, body),
                    AppContent::PlainText | AppContent::Unsupported => {
                        let message =
                            format!("Invalid Content-Type for wait music: {content_type}");
                        self.notify(12300, true, message, Some(url.clone()), None);
                        Vec::new()
                    }
                };
                if let Some(conference) = &mut self.conference {
                    conference.background_url = Some(url.clone());
                    conference.items = items.into();
                }
                self.next_background_item();
            }
        }
        true
    }

    /// The playable items of a wait/hold TwiML document (`<Redirect>` fetches another).
    fn background_items(&mut self, url: &str, body: &[u8]) -> Vec<BackgroundItem> {
        let text = String::from_utf8_lossy(body);
        let response = match twiml::parse_voice(&text) {
            Ok(response) => response,
            Err(e) => {
                let message = format!("Invalid wait/hold TwiML: {e}");
                self.notify(e.code(), true, message, Some(url.to_string()), None);
                return Vec::new();
            }
        };
        let mut items = Vec::new();
        for verb in response.verbs {
            match verb {
                Verb::Play(play) => {
                    let expanded = twiml::expand_template(&play.url, &[]);
                    if let Ok(resolved) = twiml::resolve_url(url, &expanded) {
                        items.push(BackgroundItem::Media {
                            source: MediaSource::Url(resolved),
                            loops: play_loops(play.loop_count),
                        });
                    }
                }
                Verb::Say(say) => items.push(BackgroundItem::Media {
                    source: MediaSource::Say {
                        text: say.text,
                        voice: say.voice,
                        language: say.language,
                    },
                    loops: play_loops(say.loop_count),
                }),
                Verb::Pause(pause) => items.push(BackgroundItem::Pause {
                    seconds: pause.length,
                }),
                Verb::Redirect(redirect) => {
                    if let Ok(next) = twiml::resolve_url(url, &redirect.url) {
                        if let Some(conference) = &mut self.conference {
                            conference.background_source = Some(BackgroundSource::Url {
                                url: next,
                                method: redirect.method,
                            });
                        }
                    }
                    break;
                }
                other => {
                    let message = format!(
                        "<{}> is not allowed in a conference wait/hold document; skipped",
                        other.name()
                    );
                    self.notify(13201, true, message, Some(url.to_string()), None);
                }
            }
        }
        items
    }

    /// Plays the next background item; at the end of a document, fetches it again.
    fn next_background_item(&mut self) {
        let session = self.config.media.session;
        let Some(conference) = &mut self.conference else {
            return;
        };
        match conference.items.pop_front() {
            Some(BackgroundItem::Media { source, loops }) => {
                let request_id = self.request_id();
                if let Some(conference) = &mut self.conference {
                    conference.background = Background::Preparing { request_id, loops };
                }
                self.outputs
                    .push_back(Output::PrepareMedia { request_id, source });
            }
            Some(BackgroundItem::Pause { seconds }) => {
                let play_id = self.play_id();
                if let Some(conference) = &mut self.conference {
                    conference.background = Background::Playing { play_id };
                }
                self.outputs.push_back(Output::Media(Command::Silence {
                    session,
                    play_id,
                    duration_ms: seconds.saturating_mul(1000),
                }));
            }
            None => {
                // A document played to its end runs again (an empty one stays silent).
                let again = match &conference.background_source {
                    Some(BackgroundSource::Url { url, method })
                        if conference.background_url.is_some() =>
                    {
                        Some((url.clone(), *method))
                    }
                    _ => None,
                };
                let had_audio = !matches!(conference.background, Background::Idle);
                conference.background = Background::Idle;
                if let (Some((url, method)), true) = (again, had_audio) {
                    self.fetch_background(url, method);
                }
            }
        }
    }

    /// Media for a beep or a background item is ready. Returns false when it is not ours.
    pub(super) fn on_conference_media_prepared(
        &mut self,
        request_id: u64,
        result: &Result<MediaId, (u32, String)>,
    ) -> bool {
        let session = self.config.media.session;
        let Some(conference) = &mut self.conference else {
            return false;
        };
        if let Some(index) = conference
            .beeps_preparing
            .iter()
            .position(|id| *id == request_id)
        {
            conference.beeps_preparing.swap_remove(index);
            if let Ok(media) = result {
                let play_id = self.play_id();
                if let Some(conference) = &mut self.conference {
                    conference.beeps_playing.push(play_id);
                }
                self.outputs.push_back(Output::Media(Command::Play {
                    session,
                    play_id,
                    media: *media,
                    loops: 1,
                }));
            }
            return true;
        }
        let Background::Preparing {
            request_id: id,
            loops,
        } = conference.background
        else {
            return false;
        };
        if id != request_id {
            return false;
        }
        match result {
            Ok(media) => {
                let play_id = self.play_id();
                if let Some(conference) = &mut self.conference {
                    conference.background = Background::Playing { play_id };
                }
                self.outputs.push_back(Output::Media(Command::Play {
                    session,
                    play_id,
                    media: *media,
                    loops,
                }));
            }
            Err((code, message)) => {
                let message = format!("Conference wait/hold audio failed: {message}");
                self.notify(*code, true, message, None, None);
                if let Some(conference) = &mut self.conference {
                    conference.background = Background::Idle;
                    // Do not refetch a document whose audio fails, over and over.
                    conference.background_url = None;
                }
                self.next_background_item();
            }
        }
        true
    }

    /// A play ended. Returns false when it is not a conference play.
    pub(super) fn on_conference_play_done(&mut self, play_id: u32) -> bool {
        let Some(conference) = &mut self.conference else {
            return false;
        };
        if let Some(index) = conference
            .beeps_playing
            .iter()
            .position(|id| *id == play_id)
        {
            conference.beeps_playing.swap_remove(index);
            return true;
        }
        if conference.background != (Background::Playing { play_id }) {
            return self.step == Step::Conference;
        }
        self.next_background_item();
        true
    }
}

/// A `loop` attribute as the media plane counts plays (0 = forever).
fn play_loops(loop_count: u32) -> u16 {
    u16::try_from(loop_count).unwrap_or(u16::MAX)
}
