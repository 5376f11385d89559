//! Voice TwiML: the typed verbs of a `<Response>` and the validation Twilio
//! applies to them (which verbs exist, where each may be nested, attribute
//! defaults and accepted values). Input is the element tree from `dom`.

use crate::attributes::AttributeReader;
use crate::dom::{self, Element, Node};
use crate::error::{TwimlError, TwimlWarning};

/// HTTP method for an `action`, `Redirect` or callback URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpMethod {
    Get,
    /// Twilio's default everywhere.
    #[default]
    Post,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

/// A parsed voice `<Response>`: the verbs in execution order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub verbs: Vec<Verb>,
}

/// One top-level voice verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Say(Say),
    Play(Play),
    Pause(Pause),
    Gather(Gather),
    Redirect(Redirect),
    Hangup,
    Reject(Reject),
    Dial(Dial),
    Record(Record),
    Enqueue(Enqueue),
    Leave,
    /// `<Sms>` (legacy) and `<Message>` inside a voice response.
    Sms(Sms),
}

impl Verb {
    /// The TwiML element name (for `<Message>` in voice: `Message`).
    pub fn name(&self) -> &'static str {
        match self {
            Verb::Say(_) => "Say",
            Verb::Play(_) => "Play",
            Verb::Pause(_) => "Pause",
            Verb::Gather(_) => "Gather",
            Verb::Redirect(_) => "Redirect",
            Verb::Hangup => "Hangup",
            Verb::Reject(_) => "Reject",
            Verb::Dial(_) => "Dial",
            Verb::Record(_) => "Record",
            Verb::Enqueue(_) => "Enqueue",
            Verb::Leave => "Leave",
            Verb::Sms(sms) => sms.element.name(),
        }
    }
}

/// `<Say>`: text to speak. SSML children (`<break>`, `<prosody>`, …) are
/// accepted and flattened to their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    pub text: String,
    /// Default `man`.
    pub voice: String,
    /// Default `en-US`.
    pub language: String,
    /// Default 1; 0 repeats until the call ends.
    pub loop_count: u32,
}

impl Default for Say {
    fn default() -> Self {
        Say {
            text: String::new(),
            voice: "man".into(),
            language: "en-US".into(),
            loop_count: 1,
        }
    }
}

/// `<Play>`: an audio URL (as written; resolve it against the document URL),
/// and/or DTMF digits to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play {
    /// Empty when only `digits` is given.
    pub url: String,
    /// Default 1; 0 repeats until the call ends.
    pub loop_count: u32,
    /// DTMF to send: `0-9 * # A-D`, `w` = wait 0.5 s.
    pub digits: Option<String>,
}

impl Default for Play {
    fn default() -> Self {
        Play {
            url: String::new(),
            loop_count: 1,
            digits: None,
        }
    }
}

/// `<Pause>`: silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// Seconds, default 1.
    pub length: u32,
}

impl Default for Pause {
    fn default() -> Self {
        Pause { length: 1 }
    }
}

/// What `<Gather>` listens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatherInput {
    Dtmf,
    Speech,
}

/// `<Gather>`: collect digits while playing its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    /// `None`: post to the current document URL.
    pub action: Option<String>,
    pub method: HttpMethod,
    /// Seconds of silence after the last digit (or the prompts), default 5.
    pub timeout: u32,
    /// Default `#`; empty string disables.
    pub finish_on_key: String,
    pub num_digits: Option<u32>,
    /// Default `[Dtmf]`.
    pub input: Vec<GatherInput>,
    /// Default false: without input, continue with the next verb.
    pub action_on_empty_result: bool,
    pub children: Vec<GatherChild>,
}

impl Default for Gather {
    fn default() -> Self {
        Gather {
            action: None,
            method: HttpMethod::Post,
            timeout: 5,
            finish_on_key: "#".into(),
            num_digits: None,
            input: vec![GatherInput::Dtmf],
            action_on_empty_result: false,
            children: Vec::new(),
        }
    }
}

/// The verbs allowed inside `<Gather>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatherChild {
    Say(Say),
    Play(Play),
    Pause(Pause),
}

/// `<Redirect>`: fetch new TwiML from `url` (as written; resolve it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Redirect {
    pub url: String,
    pub method: HttpMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RejectReason {
    #[default]
    Rejected,
    Busy,
}

/// `<Reject>`: refuse the call without answering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reject {
    pub reason: RejectReason,
}

/// Recording mode of `<Dial record>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DialRecord {
    #[default]
    DoNotRecord,
    RecordFromAnswer,
    RecordFromRinging,
    RecordFromAnswerDual,
    RecordFromRingingDual,
}

/// Silence trimming of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    TrimSilence,
    DoNotTrim,
}

/// `recordingStatusCallbackEvent` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordingEvent {
    InProgress,
    Completed,
    Absent,
}

/// `statusCallbackEvent` values of a dialed Number/Sip/Client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallProgressEvent {
    Initiated,
    Ringing,
    Answered,
    Completed,
}

/// `<Dial>`: connect the caller to one or more targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// `None`: continue with the next verb after the dial ends.
    pub action: Option<String>,
    pub method: HttpMethod,
    /// Ring timeout in seconds, default 30.
    pub timeout: u32,
    pub hangup_on_star: bool,
    /// Maximum call length in seconds, default 14400.
    pub time_limit: u32,
    /// `None`: the caller's number.
    pub caller_id: Option<String>,
    pub record: DialRecord,
    /// Default `DoNotTrim` for Dial.
    pub trim: Trim,
    pub recording_status_callback: Option<String>,
    pub recording_status_callback_method: HttpMethod,
    /// Default `[Completed]`.
    pub recording_status_callback_event: Vec<RecordingEvent>,
    pub answer_on_bridge: bool,
    /// Country code for the ringback tone (e.g. `us`), `None`: platform default.
    pub ring_tone: Option<String>,
    /// Dial several Number/Sip/Client targets one after another instead of simultaneously.
    pub sequential: bool,
    /// At least one. Conference and Queue are always the only target.
    pub targets: Vec<DialTarget>,
}

impl Default for Dial {
    fn default() -> Self {
        Dial {
            action: None,
            method: HttpMethod::Post,
            timeout: 30,
            hangup_on_star: false,
            time_limit: 14400,
            caller_id: None,
            record: DialRecord::DoNotRecord,
            trim: Trim::DoNotTrim,
            recording_status_callback: None,
            recording_status_callback_method: HttpMethod::Post,
            recording_status_callback_event: vec![RecordingEvent::Completed],
            answer_on_bridge: false,
            ring_tone: None,
            sequential: false,
            targets: Vec::new(),
        }
    }
}

/// A noun of `<Dial>`. Plain text inside `<Dial>` is a `Number`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    Number(DialNumber),
    Sip(DialSip),
    Client(DialClient),
    Conference(Conference),
    Queue(DialQueue),
}

/// Per-leg callbacks shared by Number, Sip and Client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegCallbacks {
    /// TwiML URL run on the called party before bridging ("whisper").
    pub url: Option<String>,
    pub method: HttpMethod,
    pub status_callback: Option<String>,
    pub status_callback_method: HttpMethod,
    /// Default `[Completed]`.
    pub status_callback_event: Vec<CallProgressEvent>,
}

impl Default for LegCallbacks {
    fn default() -> Self {
        LegCallbacks {
            url: None,
            method: HttpMethod::Post,
            status_callback: None,
            status_callback_method: HttpMethod::Post,
            status_callback_event: vec![CallProgressEvent::Completed],
        }
    }
}

/// `<Number>`: a phone number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialNumber {
    pub number: String,
    /// DTMF to send after the callee answers (`w` = 0.5 s pause).
    pub send_digits: Option<String>,
    pub callbacks: LegCallbacks,
}

/// `<Sip>`: a SIP URI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialSip {
    pub uri: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub callbacks: LegCallbacks,
}

/// `<Client>`: a registered softphone identity, either as text or as
/// `<Identity>` with `<Parameter name value>` children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialClient {
    pub identity: String,
    pub parameters: Vec<(String, String)>,
    pub callbacks: LegCallbacks,
}

/// `<Conference beep>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConferenceBeep {
    #[default]
    Always,
    Never,
    OnEnter,
    OnExit,
}

/// `<Conference record>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConferenceRecord {
    #[default]
    DoNotRecord,
    RecordFromStart,
}

/// `<Conference statusCallbackEvent>` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConferenceEvent {
    Start,
    End,
    Join,
    Leave,
    Mute,
    Hold,
    Modify,
    Speaker,
    Announcement,
}

/// `<Conference>`: join a named conference room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    pub name: String,
    pub muted: bool,
    pub beep: ConferenceBeep,
    /// Default true.
    pub start_conference_on_enter: bool,
    pub end_conference_on_exit: bool,
    /// `None`: platform hold music; empty: silence.
    pub wait_url: Option<String>,
    pub wait_method: HttpMethod,
    /// Default 250.
    pub max_participants: u32,
    pub record: ConferenceRecord,
    /// Default `TrimSilence`.
    pub trim: Trim,
    /// Call SID of the participant to coach.
    pub coach: Option<String>,
    pub participant_label: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: HttpMethod,
    /// Empty when not given.
    pub status_callback_event: Vec<ConferenceEvent>,
    pub recording_status_callback: Option<String>,
    pub recording_status_callback_method: HttpMethod,
    /// Default `[Completed]`.
    pub recording_status_callback_event: Vec<RecordingEvent>,
}

impl Default for Conference {
    fn default() -> Self {
        Conference {
            name: String::new(),
            muted: false,
            beep: ConferenceBeep::Always,
            start_conference_on_enter: true,
            end_conference_on_exit: false,
            wait_url: None,
            wait_method: HttpMethod::Post,
            max_participants: 250,
            record: ConferenceRecord::DoNotRecord,
            trim: Trim::TrimSilence,
            coach: None,
            participant_label: None,
            status_callback: None,
            status_callback_method: HttpMethod::Post,
            status_callback_event: Vec::new(),
            recording_status_callback: None,
            recording_status_callback_method: HttpMethod::Post,
            recording_status_callback_event: vec![RecordingEvent::Completed],
        }
    }
}

/// `<Queue>` in `<Dial>`: bridge to the member at the front of a queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialQueue {
    pub name: String,
    /// TwiML run on the dequeued caller before bridging.
    pub url: Option<String>,
    pub method: HttpMethod,
}

/// `<Record>`: record the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `None`: post to the current document URL.
    pub action: Option<String>,
    pub method: HttpMethod,
    /// Seconds of silence that end the recording, default 5 (0 = never).
    pub timeout: u32,
    /// Default `1234567890*#`; empty disables.
    pub finish_on_key: String,
    /// Seconds, default 3600.
    pub max_length: u32,
    /// Default true.
    pub play_beep: bool,
    /// Default `TrimSilence`.
    pub trim: Trim,
    pub transcribe: bool,
    pub transcribe_callback: Option<String>,
    pub recording_status_callback: Option<String>,
    pub recording_status_callback_method: HttpMethod,
    /// Default `[Completed]`.
    pub recording_status_callback_event: Vec<RecordingEvent>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            action: None,
            method: HttpMethod::Post,
            timeout: 5,
            finish_on_key: "1234567890*#".into(),
            max_length: 3600,
            play_beep: true,
            trim: Trim::TrimSilence,
            transcribe: false,
            transcribe_callback: None,
            recording_status_callback: None,
            recording_status_callback_method: HttpMethod::Post,
            recording_status_callback_event: vec![RecordingEvent::Completed],
        }
    }
}

/// `<Enqueue>`: put the caller in a named queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    /// Empty only when `workflow_sid` is set (TaskRouter).
    pub queue_name: String,
    pub action: Option<String>,
    pub method: HttpMethod,
    /// `None`: platform hold music.
    pub wait_url: Option<String>,
    pub wait_url_method: HttpMethod,
    /// Default 100.
    pub max_queue_size: u32,
    pub workflow_sid: Option<String>,
    pub task: Option<EnqueueTask>,
}

impl Default for Enqueue {
    fn default() -> Self {
        Enqueue {
            queue_name: String::new(),
            action: None,
            method: HttpMethod::Post,
            wait_url: None,
            wait_url_method: HttpMethod::Post,
            max_queue_size: 100,
            workflow_sid: None,
            task: None,
        }
    }
}

/// `<Task>` inside `<Enqueue>` (TaskRouter attributes as JSON text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnqueueTask {
    pub attributes: String,
    pub priority: Option<u32>,
    pub timeout: Option<u32>,
}

/// Which element produced an [`Sms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageElement {
    /// Legacy voice `<Sms>`.
    Sms,
    #[default]
    Message,
}

impl MessageElement {
    pub fn name(self) -> &'static str {
        match self {
            MessageElement::Sms => "Sms",
            MessageElement::Message => "Message",
        }
    }
}

/// An outbound message: `<Sms>` / `<Message>` in voice, `<Message>` in messaging TwiML.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sms {
    pub element: MessageElement,
    /// Text, from the element text or its `<Body>`.
    pub body: String,
    /// `<Media>` URLs (at most 10), as written.
    pub media: Vec<String>,
    /// `None`: the caller / sender.
    pub to: Option<String>,
    /// `None`: the called number / recipient.
    pub from: Option<String>,
    pub action: Option<String>,
    pub method: HttpMethod,
    pub status_callback: Option<String>,
}

/// Maximum `<Media>` per message (Twilio's limit).
const MAX_MEDIA_PER_MESSAGE: usize = 10;

/// SSML elements Twilio accepts inside `<Say>`.
const SSML_ELEMENTS: &[&str] = &[
    "break",
    "emphasis",
    "lang",
    "p",
    "phoneme",
    "prosody",
    "s",
    "say-as",
    "sub",
    "w",
    "amazon:domain",
    "amazon:effect",
];

/// Parses a voice TwiML document. Warnings (unknown attributes, ignored
/// text) are dropped; use [`parse_voice_with_warnings`] to report them.
pub fn parse_voice(xml: &str) -> Result<Response, TwimlError> {
    parse_voice_with_warnings(xml).map(|(response, _)| response)
}

/// Parses a voice TwiML document and returns what Twilio would warn about
/// (code 12200) alongside the verbs.
pub fn parse_voice_with_warnings(xml: &str) -> Result<(Response, Vec<TwimlWarning>), TwimlError> {
    let root = dom::parse_document(xml)?;
    let mut warnings = Vec::new();
    let response = Response {
        verbs: convert_response(&root, &mut warnings)?,
    };
    Ok((response, warnings))
}

/// Checks the root and converts its children to verbs.
fn convert_response(
    root: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<Vec<Verb>, TwimlError> {
    ensure_response_root(root)?;
    AttributeReader::new(root).finish(warnings);
    warn_on_stray_text(root, warnings);
    root.child_elements()
        .map(|element| convert_verb(element, warnings))
        .collect()
}

/// The root must be `<Response>` (12100 otherwise, as in Twilio).
pub(crate) fn ensure_response_root(root: &Element) -> Result<(), TwimlError> {
    if root.name == "Response" {
        Ok(())
    } else {
        Err(TwimlError::parse(format!(
            "root element must be <Response>, found <{}>",
            root.name
        )))
    }
}

fn convert_verb(element: &Element, warnings: &mut Vec<TwimlWarning>) -> Result<Verb, TwimlError> {
    Ok(match element.name.as_str() {
        "Say" => Verb::Say(convert_say(element, warnings)?),
        "Play" => Verb::Play(convert_play(element, warnings)?),
        "Pause" => Verb::Pause(convert_pause(element, warnings)?),
        "Gather" => Verb::Gather(convert_gather(element, warnings)?),
        "Redirect" => Verb::Redirect(convert_redirect(element, warnings)?),
        "Hangup" => {
            leaf_without_text(element, warnings)?;
            AttributeReader::new(element).finish(warnings);
            Verb::Hangup
        }
        "Reject" => Verb::Reject(convert_reject(element, warnings)?),
        "Dial" => Verb::Dial(convert_dial(element, warnings)?),
        "Record" => Verb::Record(convert_record(element, warnings)?),
        "Enqueue" => Verb::Enqueue(convert_enqueue(element, warnings)?),
        "Leave" => {
            leaf_without_text(element, warnings)?;
            AttributeReader::new(element).finish(warnings);
            Verb::Leave
        }
        "Sms" => Verb::Sms(convert_message(element, MessageElement::Sms, warnings)?),
        "Message" => Verb::Sms(convert_message(element, MessageElement::Message, warnings)?),
        other => return Err(unexpected_child("Response", other)),
    })
}

/// The 12200 error for an element that is unknown or not allowed in `parent`.
pub(crate) fn unexpected_child(parent: &str, child: &str) -> TwimlError {
    TwimlError::schema(child, format!("<{child}> is not allowed inside <{parent}>"))
}

/// Rejects child elements and warns about non-blank text.
fn leaf_without_text(
    element: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<(), TwimlError> {
    if let Some(child) = element.child_elements().next() {
        return Err(unexpected_child(&element.name, &child.name));
    }
    warn_on_stray_text(element, warnings);
    Ok(())
}

/// Text content of an element that only holds text (child elements → 12200).
pub(crate) fn leaf_text(element: &Element) -> Result<String, TwimlError> {
    if let Some(child) = element.child_elements().next() {
        return Err(unexpected_child(&element.name, &child.name));
    }
    Ok(element.direct_text().trim().to_owned())
}

/// Warns when an element whose content is child elements also has text.
pub(crate) fn warn_on_stray_text(element: &Element, warnings: &mut Vec<TwimlWarning>) {
    if !element.direct_text().trim().is_empty() {
        warnings.push(TwimlWarning {
            element: element.name.clone(),
            detail: "text content ignored".into(),
        });
    }
}

fn convert_say(element: &Element, warnings: &mut Vec<TwimlWarning>) -> Result<Say, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let defaults = Say::default();
    let say = Say {
        voice: attributes.string_or("voice", &defaults.voice),
        language: attributes.string_or("language", &defaults.language),
        loop_count: attributes.u32_or("loop", defaults.loop_count)?,
        text: say_text(element)?,
    };
    attributes.finish(warnings);
    Ok(say)
}

/// Plain text is trimmed; text with SSML markup is flattened and its
/// whitespace collapsed.
fn say_text(element: &Element) -> Result<String, TwimlError> {
    if element.child_elements().next().is_none() {
        return Ok(element.direct_text().trim().to_owned());
    }
    let mut flattened = String::new();
    flatten_ssml(element, &mut flattened)?;
    Ok(flattened.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn flatten_ssml(element: &Element, out: &mut String) -> Result<(), TwimlError> {
    for node in &element.children {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Element(child) => {
                if !SSML_ELEMENTS.contains(&child.name.as_str()) {
                    return Err(unexpected_child(&element.name, &child.name));
                }
                out.push(' ');
                flatten_ssml(child, out)?;
                out.push(' ');
            }
        }
    }
    Ok(())
}

fn convert_play(element: &Element, warnings: &mut Vec<TwimlWarning>) -> Result<Play, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let loop_count = attributes.u32_or("loop", 1)?;
    let digits = match attributes.string("digits") {
        Some(digits) if !is_dtmf_sequence(&digits) => {
            return Err(attributes.invalid("digits", &digits, "DTMF (0-9, *, #, A-D, w)"))
        }
        digits => digits,
    };
    attributes.finish(warnings);
    let url = leaf_text(element)?;
    if url.is_empty() && digits.is_none() {
        return Err(TwimlError::schema("Play", "<Play> needs a URL or digits"));
    }
    Ok(Play {
        url,
        loop_count,
        digits,
    })
}

/// `0-9 * # A-D` and `w`/`W` (half-second wait).
fn is_dtmf_sequence(digits: &str) -> bool {
    digits
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'w' | 'W' | 'A'..='D' | 'a'..='d'))
}

fn convert_pause(element: &Element, warnings: &mut Vec<TwimlWarning>) -> Result<Pause, TwimlError> {
    leaf_without_text(element, warnings)?;
    let mut attributes = AttributeReader::new(element);
    let pause = Pause {
        length: attributes.u32_or("length", 1)?,
    };
    attributes.finish(warnings);
    Ok(pause)
}

fn convert_gather(
    element: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<Gather, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let finish_on_key = attributes.raw("finishOnKey").unwrap_or("#").to_owned();
    let valid_key = finish_on_key.chars().count() <= 1
        && finish_on_key
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#');
    if !valid_key {
        return Err(attributes.invalid("finishOnKey", &finish_on_key, "one of 0-9, *, # or empty"));
    }
    let num_digits = attributes.optional_u32("numDigits")?;
    if num_digits == Some(0) {
        return Err(attributes.invalid("numDigits", "0", "a positive integer"));
    }
    let gather = Gather {
        action: attributes.string("action"),
        method: attributes.method_or("method", HttpMethod::Post)?,
        timeout: attributes.u32_or("timeout", 5)?,
        finish_on_key,
        num_digits,
        input: attributes.keyword_list_or(
            "input",
            vec![GatherInput::Dtmf],
            |value| match value {
                "dtmf" => Some(GatherInput::Dtmf),
                "speech" => Some(GatherInput::Speech),
                _ => None,
            },
        )?,
        action_on_empty_result: attributes.bool_or("actionOnEmptyResult", false)?,
        children: element
            .child_elements()
            .map(|child| {
                Ok(match child.name.as_str() {
                    "Say" => GatherChild::Say(convert_say(child, warnings)?),
                    "Play" => GatherChild::Play(convert_play(child, warnings)?),
                    "Pause" => GatherChild::Pause(convert_pause(child, warnings)?),
                    other => return Err(unexpected_child("Gather", other)),
                })
            })
            .collect::<Result<_, TwimlError>>()?,
    };
    attributes.finish(warnings);
    warn_on_stray_text(element, warnings);
    Ok(gather)
}

pub(crate) fn convert_redirect(
    element: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<Redirect, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let method = attributes.method_or("method", HttpMethod::Post)?;
    attributes.finish(warnings);
    let url = leaf_text(element)?;
    if url.is_empty() {
        return Err(TwimlError::schema("Redirect", "<Redirect> needs a URL"));
    }
    Ok(Redirect { url, method })
}

fn convert_reject(
    element: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<Reject, TwimlError> {
    leaf_without_text(element, warnings)?;
    let mut attributes = AttributeReader::new(element);
    let reject = Reject {
        reason: attributes.keyword_or("reason", RejectReason::Rejected, |value| match value {
            "rejected" => Some(RejectReason::Rejected),
            "busy" => Some(RejectReason::Busy),
            _ => None,
        })?,
    };
    attributes.finish(warnings);
    Ok(reject)
}

fn parse_trim(value: &str) -> Option<Trim> {
    match value {
        "trim-silence" => Some(Trim::TrimSilence),
        "do-not-trim" => Some(Trim::DoNotTrim),
        _ => None,
    }
}

fn parse_recording_event(value: &str) -> Option<RecordingEvent> {
    match value {
        "in-progress" => Some(RecordingEvent::InProgress),
        "completed" => Some(RecordingEvent::Completed),
        "absent" => Some(RecordingEvent::Absent),
        _ => None,
    }
}

fn parse_call_progress_event(value: &str) -> Option<CallProgressEvent> {
    match value {
        "initiated" => Some(CallProgressEvent::Initiated),
        "ringing" => Some(CallProgressEvent::Ringing),
        "answered" => Some(CallProgressEvent::Answered),
        "completed" => Some(CallProgressEvent::Completed),
        _ => None,
    }
}

fn convert_dial(element: &Element, warnings: &mut Vec<TwimlWarning>) -> Result<Dial, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let mut dial = Dial {
        action: attributes.string("action"),
        method: attributes.method_or("method", HttpMethod::Post)?,
        timeout: attributes.u32_or("timeout", 30)?,
        hangup_on_star: attributes.bool_or("hangupOnStar", false)?,
        time_limit: attributes.u32_or("timeLimit", 14400)?,
        caller_id: attributes.string("callerId"),
        record: attributes.keyword_or("record", DialRecord::DoNotRecord, |value| match value {
            "do-not-record" | "false" => Some(DialRecord::DoNotRecord),
            "record-from-answer" | "true" => Some(DialRecord::RecordFromAnswer),
            "record-from-ringing" => Some(DialRecord::RecordFromRinging),
            "record-from-answer-dual" => Some(DialRecord::RecordFromAnswerDual),
            "record-from-ringing-dual" => Some(DialRecord::RecordFromRingingDual),
            _ => None,
        })?,
        trim: attributes.keyword_or("trim", Trim::DoNotTrim, parse_trim)?,
        recording_status_callback: attributes.string("recordingStatusCallback"),
        recording_status_callback_method: attributes
            .method_or("recordingStatusCallbackMethod", HttpMethod::Post)?,
        recording_status_callback_event: attributes.keyword_list_or(
            "recordingStatusCallbackEvent",
            vec![RecordingEvent::Completed],
            parse_recording_event,
        )?,
        answer_on_bridge: attributes.bool_or("answerOnBridge", false)?,
        ring_tone: attributes.string("ringTone"),
        sequential: attributes.bool_or("sequential", false)?,
        targets: Vec::new(),
    };
    attributes.finish(warnings);

    let text = element.direct_text().trim().to_owned();
    let has_nouns = element.child_elements().next().is_some();
    if !text.is_empty() && has_nouns {
        return Err(TwimlError::schema(
            "Dial",
            "<Dial> takes either a number as text or nouns, not both",
        ));
    }
    if !text.is_empty() {
        dial.targets.push(DialTarget::Number(DialNumber {
            number: text,
            ..DialNumber::default()
        }));
    }
    for child in element.child_elements() {
        let target = match child.name.as_str() {
            "Number" => DialTarget::Number(convert_number(child, warnings)?),
            "Sip" => DialTarget::Sip(convert_sip(child, warnings)?),
            "Client" => DialTarget::Client(convert_client(child, warnings)?),
            "Conference" => DialTarget::Conference(convert_conference(child, warnings)?),
            "Queue" => DialTarget::Queue(convert_dial_queue(child, warnings)?),
            other => return Err(unexpected_child("Dial", other)),
        };
        dial.targets.push(target);
    }
    if dial.targets.is_empty() {
        return Err(TwimlError::schema("Dial", "<Dial> has nothing to dial"));
    }
    let exclusive = dial
        .targets
        .iter()
        .any(|target| matches!(target, DialTarget::Conference(_) | DialTarget::Queue(_)));
    if exclusive && dial.targets.len() > 1 {
        return Err(TwimlError::schema(
            "Dial",
            "<Conference> and <Queue> must be the only noun in <Dial>",
        ));
    }
    Ok(dial)
}

fn read_leg_callbacks(attributes: &mut AttributeReader<'_>) -> Result<LegCallbacks, TwimlError> {
    Ok(LegCallbacks {
        url: attributes.string("url"),
        method: attributes.method_or("method", HttpMethod::Post)?,
        status_callback: attributes.string("statusCallback"),
        status_callback_method: attributes.method_or("statusCallbackMethod", HttpMethod::Post)?,
        status_callback_event: attributes.keyword_list_or(
            "statusCallbackEvent",
            vec![CallProgressEvent::Completed],
            parse_call_progress_event,
        )?,
    })
}

/// The noun's text, which must be non-empty.
fn required_leaf_text(element: &Element, what: &str) -> Result<String, TwimlError> {
    let text = leaf_text(element)?;
    if text.is_empty() {
        return Err(TwimlError::schema(
            element.name.clone(),
            format!("<{}> needs {what}", element.name),
        ));
    }
    Ok(text)
}

fn convert_number(
    element: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<DialNumber, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let send_digits = match attributes.string("sendDigits") {
        Some(digits) if !is_dtmf_sequence(&digits) => {
            return Err(attributes.invalid("sendDigits", &digits, "DTMF (0-9, *, #, A-D, w)"))
        }
        digits => digits,
    };
    let callbacks = read_leg_callbacks(&mut attributes)?;
    attributes.finish(warnings);
    Ok(DialNumber {
        number: required_leaf_text(element, "a phone number")?,
        send_digits,
        callbacks,
    })
}

fn convert_sip(element: &Element, warnings: &mut Vec<TwimlWarning>) -> Result<DialSip, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let sip = DialSip {
        username: attributes.string("username"),
        password: attributes.string("password"),
        callbacks: read_leg_callbacks(&mut attributes)?,
        uri: required_leaf_text(element, "a SIP URI")?,
    };
    attributes.finish(warnings);
    let scheme = sip
        .uri
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if scheme != "sip" && scheme != "sips" {
        return Err(TwimlError::schema(
            "Sip",
            format!("{:?} is not a sip: URI", sip.uri),
        ));
    }
    Ok(sip)
}

fn convert_client(
    element: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<DialClient, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let callbacks = read_leg_callbacks(&mut attributes)?;
    attributes.finish(warnings);
    let mut identity = element.direct_text().trim().to_owned();
    let mut parameters = Vec::new();
    for child in element.child_elements() {
        match child.name.as_str() {
            "Identity" if identity.is_empty() => identity = leaf_text(child)?,
            "Parameter" => {
                let mut parameter = AttributeReader::new(child);
                let name = parameter.string("name");
                let value = parameter.raw("value").unwrap_or_default().to_owned();
                parameter.finish(warnings);
                let Some(name) = name else {
                    return Err(TwimlError::schema("Parameter", "<Parameter> needs a name"));
                };
                parameters.push((name, value));
            }
            other => return Err(unexpected_child("Client", other)),
        }
    }
    if identity.is_empty() {
        return Err(TwimlError::schema("Client", "<Client> needs an identity"));
    }
    Ok(DialClient {
        identity,
        parameters,
        callbacks,
    })
}

fn convert_conference(
    element: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<Conference, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let conference = Conference {
        muted: attributes.bool_or("muted", false)?,
        beep: attributes.keyword_or("beep", ConferenceBeep::Always, |value| match value {
            "true" => Some(ConferenceBeep::Always),
            "false" => Some(ConferenceBeep::Never),
            "onenter" => Some(ConferenceBeep::OnEnter),
            "onexit" => Some(ConferenceBeep::OnExit),
            _ => None,
        })?,
        start_conference_on_enter: attributes.bool_or("startConferenceOnEnter", true)?,
        end_conference_on_exit: attributes.bool_or("endConferenceOnExit", false)?,
        // An empty waitUrl means silence, unlike an absent one.
        wait_url: attributes.raw("waitUrl").map(|url| url.trim().to_owned()),
        wait_method: attributes.method_or("waitMethod", HttpMethod::Post)?,
        max_participants: attributes.u32_or("maxParticipants", 250)?,
        record: attributes.keyword_or(
            "record",
            ConferenceRecord::DoNotRecord,
            |value| match value {
                "do-not-record" => Some(ConferenceRecord::DoNotRecord),
                "record-from-start" => Some(ConferenceRecord::RecordFromStart),
                _ => None,
            },
        )?,
        trim: attributes.keyword_or("trim", Trim::TrimSilence, parse_trim)?,
        coach: attributes.string("coach"),
        participant_label: attributes.string("participantLabel"),
        status_callback: attributes.string("statusCallback"),
        status_callback_method: attributes.method_or("statusCallbackMethod", HttpMethod::Post)?,
        status_callback_event: attributes.keyword_list_or(
            "statusCallbackEvent",
            Vec::new(),
            |value| {
                Some(match value {
                    "start" => ConferenceEvent::Start,
                    "end" => ConferenceEvent::End,
                    "join" => ConferenceEvent::Join,
                    "leave" => ConferenceEvent::Leave,
                    "mute" => ConferenceEvent::Mute,
                    "hold" => ConferenceEvent::Hold,
                    "modify" => ConferenceEvent::Modify,
                    "speaker" => ConferenceEvent::Speaker,
                    "announcement" => ConferenceEvent::Announcement,
                    _ => return None,
                })
            },
        )?,
        recording_status_callback: attributes.string("recordingStatusCallback"),
        recording_status_callback_method: attributes
            .method_or("recordingStatusCallbackMethod", HttpMethod::Post)?,
        recording_status_callback_event: attributes.keyword_list_or(
            "recordingStatusCallbackEvent",
            vec![RecordingEvent::Completed],
            parse_recording_event,
        )?,
        name: required_leaf_text(element, "a conference name")?,
    };
    attributes.finish(warnings);
    Ok(conference)
}

fn convert_dial_queue(
    element: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<DialQueue, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let queue = DialQueue {
        url: attributes.string("url"),
        method: attributes.method_or("method", HttpMethod::Post)?,
        name: required_leaf_text(element, "a queue name")?,
    };
    attributes.finish(warnings);
    Ok(queue)
}

fn convert_record(
    element: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<Record, TwimlError> {
    leaf_without_text(element, warnings)?;
    let mut attributes = AttributeReader::new(element);
    let defaults = Record::default();
    let finish_on_key = attributes
        .raw("finishOnKey")
        .unwrap_or(&defaults.finish_on_key)
        .to_owned();
    if !finish_on_key
        .chars()
        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        return Err(attributes.invalid("finishOnKey", &finish_on_key, "made of 0-9, * and #"));
    }
    let record = Record {
        action: attributes.string("action"),
        method: attributes.method_or("method", HttpMethod::Post)?,
        timeout: attributes.u32_or("timeout", defaults.timeout)?,
        finish_on_key,
        max_length: attributes.u32_or("maxLength", defaults.max_length)?,
        play_beep: attributes.bool_or("playBeep", true)?,
        trim: attributes.keyword_or("trim", Trim::TrimSilence, parse_trim)?,
        transcribe: attributes.bool_or("transcribe", false)?,
        transcribe_callback: attributes.string("transcribeCallback"),
        recording_status_callback: attributes.string("recordingStatusCallback"),
        recording_status_callback_method: attributes
            .method_or("recordingStatusCallbackMethod", HttpMethod::Post)?,
        recording_status_callback_event: attributes.keyword_list_or(
            "recordingStatusCallbackEvent",
            vec![RecordingEvent::Completed],
            parse_recording_event,
        )?,
    };
    attributes.finish(warnings);
    Ok(record)
}

fn convert_enqueue(
    element: &Element,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<Enqueue, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let mut enqueue = Enqueue {
        action: attributes.string("action"),
        method: attributes.method_or("method", HttpMethod::Post)?,
        wait_url: attributes.string("waitUrl"),
        wait_url_method: attributes.method_or("waitUrlMethod", HttpMethod::Post)?,
        max_queue_size: attributes.u32_or("maxQueueSize", 100)?,
        workflow_sid: attributes.string("workflowSid"),
        queue_name: element.direct_text().trim().to_owned(),
        task: None,
    };
    attributes.finish(warnings);
    for child in element.child_elements() {
        if child.name != "Task" || enqueue.task.is_some() {
            return Err(unexpected_child("Enqueue", &child.name));
        }
        let mut task_attributes = AttributeReader::new(child);
        enqueue.task = Some(EnqueueTask {
            priority: task_attributes.optional_u32("priority")?,
            timeout: task_attributes.optional_u32("timeout")?,
            attributes: leaf_text(child)?,
        });
        task_attributes.finish(warnings);
    }
    if enqueue.queue_name.is_empty() && enqueue.workflow_sid.is_none() {
        return Err(TwimlError::schema(
            "Enqueue",
            "<Enqueue> needs a queue name",
        ));
    }
    Ok(enqueue)
}

/// `<Sms>` / `<Message>`: text body or `<Body>` plus up to ten `<Media>`.
pub(crate) fn convert_message(
    element: &Element,
    kind: MessageElement,
    warnings: &mut Vec<TwimlWarning>,
) -> Result<Sms, TwimlError> {
    let mut attributes = AttributeReader::new(element);
    let mut sms = Sms {
        element: kind,
        body: element.direct_text().trim().to_owned(),
        media: Vec::new(),
        to: attributes.string("to"),
        from: attributes.string("from"),
        action: attributes.string("action"),
        method: attributes.method_or("method", HttpMethod::Post)?,
        status_callback: attributes.string("statusCallback"),
    };
    attributes.finish(warnings);
    let text_body = !sms.body.is_empty();
    let mut seen_body = false;
    for child in element.child_elements() {
        match child.name.as_str() {
            "Body" if kind == MessageElement::Message && !text_body && !seen_body => {
                seen_body = true;
                sms.body = leaf_text(child)?;
            }
            "Media" if kind == MessageElement::Message => {
                if sms.media.len() == MAX_MEDIA_PER_MESSAGE {
                    return Err(TwimlError::schema(
                        "Media",
                        format!("more than {MAX_MEDIA_PER_MESSAGE} <Media> in one <Message>"),
                    ));
                }
                let url = leaf_text(child)?;
                if url.is_empty() {
                    return Err(TwimlError::schema("Media", "<Media> needs a URL"));
                }
                sms.media.push(url);
            }
            other => return Err(unexpected_child(kind.name(), other)),
        }
    }
    Ok(sms)
}
