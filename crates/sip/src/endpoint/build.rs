//! Building the messages the endpoint sends: responses that copy the
//! request's Via/Record-Route/From/To/Call-ID/CSeq (RFC 3261 §8.2.6), and
//! in-dialog requests (BYE, ACK for 2xx) from a leg's dialog state (§12.2.1.1).

use std::net::SocketAddr;

use super::leg::{Leg, ResponseContext};
use crate::message::{reason_phrase, Headers, NameAddr, Request, Response, Via};

/// Methods we accept, for Allow headers.
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";

impl ResponseContext {
    /// Copies the response headers of a parsed request, stamping the top
    /// Via with `received`/`rport` for `source`.
    pub fn from_request(request: &Request, source: SocketAddr) -> ResponseContext {
        let headers = &request.headers;
        let to = headers.get("To").unwrap_or_default().to_owned();
        let to_has_tag = headers.to().ok().is_some_and(|to| to.tag().is_some());
        ResponseContext {
            vias: stamped_vias(headers, source),
            record_route: headers.get_all("Record-Route").map(str::to_owned).collect(),
            from: headers.get("From").unwrap_or_default().to_owned(),
            to,
            to_has_tag,
            call_id: headers.get("Call-ID").unwrap_or_default().to_owned(),
            cseq: headers.get("CSeq").unwrap_or_default().to_owned(),
        }
    }

    /// The same, from headers salvaged out of a request that failed to parse.
    pub fn from_recovered(headers: &Headers, source: SocketAddr) -> ResponseContext {
        let to = headers.get("To").unwrap_or_default().to_owned();
        let to_has_tag = match NameAddr::parse(&to) {
            Ok(to) => to.tag().is_some(),
            Err(_) => to.to_ascii_lowercase().contains("tag="),
        };
        ResponseContext {
            vias: stamped_vias(headers, source),
            record_route: Vec::new(),
            from: headers.get("From").unwrap_or_default().to_owned(),
            to,
            to_has_tag,
            call_id: headers.get("Call-ID").unwrap_or_default().to_owned(),
            cseq: headers.get("CSeq").unwrap_or_default().to_owned(),
        }
    }

    /// Serializes a response. `to_tag` is added to To unless it has one.
    pub fn build(
        &self,
        status: u16,
        to_tag: Option<&str>,
        server: &str,
        extra_headers: &[(&str, String)],
        body: &[u8],
    ) -> Vec<u8> {
        let mut headers = Headers::new();
        for via in &self.vias {
            headers.push("Via", via.clone());
        }
        for record_route in &self.record_route {
            headers.push("Record-Route", record_route.clone());
        }
        headers.push("From", self.from.clone());
        let to = match to_tag {
            Some(tag) if !self.to_has_tag => format!("{};tag={tag}", self.to),
            _ => self.to.clone(),
        };
        headers.push("To", to);
        headers.push("Call-ID", self.call_id.clone());
        headers.push("CSeq", self.cseq.clone());
        for (name, value) in extra_headers {
            headers.push(*name, value.clone());
        }
        if !server.is_empty() {
            headers.push("Server", server);
        }
        Response {
            status,
            reason: reason_phrase(status).to_owned(),
            headers,
            body: body.to_vec(),
        }
        .to_bytes()
    }
}

/// Via elements of a request with the top one stamped for `source`.
fn stamped_vias(headers: &Headers, source: SocketAddr) -> Vec<String> {
    headers
        .vias()
        .into_iter()
        .enumerate()
        .map(|(index, via)| {
            if index > 0 {
                return via.to_owned();
            }
            match Via::parse(via) {
                Ok(mut parsed) => {
                    parsed.stamp_source(source);
                    parsed.to_string()
                }
                Err(_) => via.to_owned(),
            }
        })
        .collect()
}

/// A BYE inside the leg's dialog; returns the bytes and the next hop.
pub(crate) fn bye_request(leg: &Leg, branch: &str, user_agent: &str) -> (Vec<u8>, SocketAddr) {
    in_dialog_request(leg, "BYE", leg.local_cseq, branch, user_agent)
}

/// A body-less request inside the leg's dialog (BYE, or the ACK for a 2xx
/// to our INVITE); returns the bytes and the next hop.
pub(crate) fn in_dialog_request(
    leg: &Leg,
    method: &str,
    cseq: u32,
    branch: &str,
    user_agent: &str,
) -> (Vec<u8>, SocketAddr) {
    let (request_uri, routes, destination) = leg.in_dialog_target();
    let mut text = format!(
        "{method} {request_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n",
        leg.local_host
    );
    for route in routes {
        text.push_str("Route: ");
        text.push_str(&route);
        text.push_str("\r\n");
    }
    text.push_str(&format!(
        "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n",
        leg.local_party, leg.remote_party, leg.call_id
    ));
    if !user_agent.is_empty() {
        text.push_str(&format!("User-Agent: {user_agent}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    (text.into_bytes(), destination)
}
