//! Messaging TwiML: the `<Response>` an app returns for an incoming SMS/MMS,
//! holding `<Message>` replies and `<Redirect>`. An empty response means no reply.

use crate::attributes::AttributeReader;
use crate::dom;
use crate::error::{TwimlError, TwimlWarning};
use crate::voice::{
    convert_message, convert_redirect, ensure_response_root, unexpected_child, warn_on_stray_text,
    MessageElement, Redirect, Sms,
};

/// A parsed messaging `<Response>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessagingResponse {
    pub verbs: Vec<MessagingVerb>,
}

/// One messaging verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagingVerb {
    Message(Sms),
    Redirect(Redirect),
}

/// Parses a messaging TwiML document (warnings dropped).
pub fn parse_messaging(xml: &str) -> Result<MessagingResponse, TwimlError> {
    parse_messaging_with_warnings(xml).map(|(response, _)| response)
}

/// Parses a messaging TwiML document and returns Twilio's 12200 warnings too.
pub fn parse_messaging_with_warnings(
    xml: &str,
) -> Result<(MessagingResponse, Vec<TwimlWarning>), TwimlError> {
    let root = dom::parse_document(xml)?;
    ensure_response_root(&root)?;
    let mut warnings = Vec::new();
    AttributeReader::new(&root).finish(&mut warnings);
    warn_on_stray_text(&root, &mut warnings);
    let verbs = root
        .child_elements()
        .map(|element| {
            Ok(match element.name.as_str() {
                "Message" => MessagingVerb::Message(convert_message(
                    element,
                    MessageElement::Message,
                    &mut warnings,
                )?),
                "Redirect" => MessagingVerb::Redirect(convert_redirect(element, &mut warnings)?),
                other => return Err(unexpected_child("Response", other)),
            })
        })
        .collect::<Result<_, TwimlError>>()?;
    Ok((MessagingResponse { verbs }, warnings))
}
