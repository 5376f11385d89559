//! The outbound part of the call core: placing a call we were asked to make (Create Call,
//! or a leg of a `<Dial>`) through a trunk or to a SIP address, following it through
//! ringing to its answer or failure, then running the application exactly like an answered
//! inbound call (a `<Dial>` leg instead reports to the call that dialled it, see
//! `call_dial.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use shmq::Command;
use store::CallStatus;

use super::{Call, LegEvent, Output, SipAction, Step, TimerKind};

/// How to dial the far end of an outbound call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSetup {
    /// `sip:…@gateway` (a trunk's rules applied) or the `sip:` URI the API was given.
    pub request_uri: String,
    /// Where the INVITE goes.
    pub destination: SocketAddr,
    pub from_uri: String,
    pub to_uri: String,
    pub credentials: Option<sip::endpoint::DigestCredentials>,
    /// Twilio's `Timeout`: how long it may ring before it is `no-answer`.
    pub ring_timeout: Duration,
    /// Twilio's `SendDigits`, sent as RFC 4733 right after the answer.
    pub send_digits: Option<String>,
    /// Twilio's `Twiml`: run this instead of requesting the voice URL.
    pub twiml: Option<String>,
    /// Twilio's `Record`: record the call from the answer on.
    pub record: Option<RecordSetup>,
    /// The call is a leg of another call's `<Dial>`: it reports its progress to that call
    /// and, once answered (digits sent, whisper — the voice URL — run), waits to be
    /// bridged instead of running an application.
    pub dial_leg: bool,
}

/// A recording to start when the call is answered (`Record=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSetup {
    /// `RE` + 32 hex digits, chosen before the call is dialled.
    pub recording_sid: String,
    pub channels: shmq::RecordingChannels,
    pub status_callback: Option<String>,
    pub status_callback_method: twiml::HttpMethod,
    /// Which of `in-progress`, `completed`, `absent` reach the callback.
    pub status_callback_events: Vec<String>,
}

/// RFC 4733 payload type we offer for telephone-events.
const OFFERED_TELEPHONE_EVENT_PT: u8 = 101;

impl Call {
    fn outbound_setup(&self) -> Option<&OutboundSetup> {
        self.config.outbound.as_deref()
    }

    /// `Record=true`: the media plane records the session from now on; the driver stores
    /// the recording (in progress) and reports it.
    fn start_recording_on_answer(&mut self) {
        let Some(record) = self.outbound_setup().and_then(|o| o.record.clone()) else {
            return;
        };
        let Some(recording) = record
            .recording_sid
            .get(2..)
            .and_then(shmq::RecordingId::from_hex)
        else {
            return;
        };
        self.outputs
            .push_back(Output::Media(Command::StartRecording {
                session: self.config.media.session,
                recording,
                channels: record.channels,
                max_duration_ms: 0,
            }));
        self.outputs
            .push_back(Output::RecordingStarted(Box::new(record)));
    }

    /// Opens the media session first: its port goes into our offer.
    pub(super) fn start_outbound(&mut self) {
        // Created by the API as `queued`; it rings once the far end says so.
        self.status = CallStatus::Queued;
        self.step = Step::Dialing;
        self.open_media();
    }

    /// Ends a call that was never dialled (canceled while it waited for a trunk channel
    /// or the media plane, or no longer routable): no media, no SIP, only the final status
    /// and its `completed` status callback. Instead of [`Call::start`], never after it.
    pub fn end_before_dialing(&mut self, status: CallStatus) {
        if self.invited || matches!(self.step, Step::Ending | Step::Done) {
            return;
        }
        // Nothing was opened: nothing to close.
        self.closed_media = true;
        self.finish(status);
        self.step = Step::Done;
        self.outputs.push_back(Output::Finished);
    }

    /// Sends the INVITE with our offer, and starts the no-answer timer.
    pub(super) fn invite(&mut self, local_port: u16) {
        let Some(setup) = self.outbound_setup().cloned() else {
            return;
        };
        let media = &self.config.media;
        let sdp = sdp::offer(
            &[sdp::AudioCodec::Pcmu, sdp::AudioCodec::Pcma],
            OFFERED_TELEPHONE_EVENT_PT,
            media.negotiated.ptime_ms,
            media.local_ip,
            local_port,
            media.session.0,
        );
        self.invited = true;
        self.outputs
            .push_back(Output::Sip(SipAction::Invite(Box::new(
                sip::endpoint::OutgoingCall {
                    request_uri: setup.request_uri,
                    destination: setup.destination,
                    from_uri: setup.from_uri,
                    from_display: None,
                    to_uri: setup.to_uri,
                    sdp: sdp.into_bytes(),
                    credentials: setup.credentials,
                    headers: Vec::new(),
                },
            ))));
        let id = self.timer(TimerKind::NoAnswer);
        self.outputs.push_back(Output::SetTimer {
            id,
            after: setup.ring_timeout,
        });
        self.status_event("initiated", "initiated");
    }

    pub(super) fn on_progress(&mut self, _status: u16) {
        if self.step == Step::Dialing && self.status != CallStatus::Ringing {
            self.set_status(CallStatus::Ringing, false);
            self.status_event("ringing", "ringing");
            if self.is_dial_leg() {
                self.outputs.push_back(Output::LegEvent(LegEvent::Ringing));
            }
        }
    }

    /// The far end answered: adopt its media, then send digits and run the app.
    pub(super) fn on_answered(&mut self, answer: Option<Vec<u8>>) {
        if self.step != Step::Dialing {
            return;
        }
        // The no-answer timer no longer applies.
        self.timer_generation += 1;
        self.answered = true;
        self.step = Step::Idle;
        self.set_status(CallStatus::InProgress, true);
        self.arm_time_limit();
        let negotiated = answer
            .as_deref()
            .map(String::from_utf8_lossy)
            .and_then(|text| sdp::parse(&text).ok())
            .and_then(|sdp| {
                sdp::negotiate(&sdp, &[sdp::AudioCodec::Pcmu, sdp::AudioCodec::Pcma]).ok()
            });
        let Some(negotiated) = negotiated else {
            self.notify(
                13227,
                false,
                "The answer to our offer has no usable audio".into(),
                None,
                None,
            );
            self.end(CallStatus::Failed, None);
            return;
        };
        let codec = match negotiated.codec {
            sdp::AudioCodec::Pcmu => shmq::Codec::Pcmu,
            sdp::AudioCodec::Pcma => shmq::Codec::Pcma,
        };
        self.outputs
            .push_back(Output::Media(Command::UpdateSession {
                session: self.config.media.session,
                remote: negotiated.remote_rtp,
                codec,
                dtmf_payload_type: negotiated.telephone_event_pt,
                ptime_ms: negotiated.ptime_ms,
            }));
        self.config.media.negotiated = negotiated;
        self.start_recording_on_answer();
        self.status_event("answered", "in-progress");
        if self.is_dial_leg() {
            self.outputs.push_back(Output::LegEvent(LegEvent::Answered));
        }
        let digits = self
            .outbound_setup()
            .and_then(|s| s.send_digits.clone())
            .filter(|d| !d.is_empty());
        match digits {
            Some(digits) => self.send_digits(&digits),
            None => self.start_outbound_app(),
        }
    }

    fn send_digits(&mut self, digits: &str) {
        let play_id = self.play_id();
        match Command::send_digits(self.config.media.session, play_id, digits.as_bytes()) {
            Ok(command) => {
                self.outputs.push_back(Output::Media(command));
                self.step = Step::SendingDigits { play_id };
            }
            Err(e) => {
                // The API validates SendDigits; anything else is skipped with a warning.
                self.notify(13221, true, format!("SendDigits not sent: {e}"), None, None);
                self.start_outbound_app();
            }
        }
    }

    /// Runs the call's instructions: inline `Twiml`, else the voice URL. A `<Dial>` leg
    /// runs its whisper (if any), then is ready to be bridged.
    pub(super) fn start_outbound_app(&mut self) {
        if self.is_dial_leg() {
            if self.config.voice_url.is_some() {
                self.start_app();
            } else {
                self.ready_to_bridge();
            }
            return;
        }
        let twiml = self.outbound_setup().and_then(|s| s.twiml.clone());
        match twiml {
            Some(xml) => {
                let url = self.document_url.clone();
                self.on_document(url, "text/xml".into(), xml.into_bytes(), false);
            }
            None => self.start_app(),
        }
    }

    /// A final failure before the answer, in Twilio's statuses.
    pub(super) fn on_dial_failed(&mut self, status: u16) {
        if self.step != Step::Dialing {
            return;
        }
        let call_status = match status {
            486 | 600 | 603 => CallStatus::Busy,
            // 487: our CANCEL after the ring timeout.
            408 | 480 | 487 => CallStatus::NoAnswer,
            _ => CallStatus::Failed,
        };
        self.finish(call_status);
    }
}
