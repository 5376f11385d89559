//! Twilio's JSON representations of the store's records.

use serde_json::{json, Value};
use store::{AccountDetails, ApiKey, CallRecord, IncomingNumber, Notification};

const API_VERSION: &str = "2010-04-01";

/// RFC 2822, as Twilio formats every date: `Tue, 14 Apr 2026 09:26:42 +0000`.
pub fn rfc2822(ms: i64) -> Value {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => Value::String(t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()),
        None => Value::Null,
    }
}

fn opt_date(ms: Option<i64>) -> Value {
    ms.map(rfc2822).unwrap_or(Value::Null)
}

pub fn account(details: &AccountDetails) -> Value {
    let a = &details.account;
    let base = format!("/{API_VERSION}/Accounts/{}", a.sid);
    json!({
        "sid": a.sid,
        "owner_account_sid": details.owner_sid(),
        "friendly_name": a.friendly_name,
        "status": a.status,
        "type": "Full",
        "auth_token": a.auth_token,
        "date_created": rfc2822(a.date_created),
        "date_updated": rfc2822(details.date_updated),
        "uri": format!("{base}.json"),
        "subresource_uris": {
            "calls": format!("{base}/Calls.json"),
            "notifications": format!("{base}/Notifications.json"),
            "incoming_phone_numbers": format!("{base}/IncomingPhoneNumbers.json"),
            "keys": format!("{base}/Keys.json"),
            "outgoing_caller_ids": format!("{base}/OutgoingCallerIds.json"),
            "recordings": format!("{base}/Recordings.json"),
        },
    })
}

pub fn incoming_number(n: &IncomingNumber) -> Value {
    json!({
        "sid": n.sid,
        "account_sid": n.account_sid,
        "api_version": API_VERSION,
        "phone_number": n.phone_number,
        "friendly_name": n.friendly_name.clone()
            .unwrap_or_else(|| crate::params::formatted_number(&n.phone_number)),
        "capabilities": {"voice": true, "sms": true, "mms": false, "fax": false},
        "voice_url": n.voice_url,
        "voice_method": n.voice_method,
        "voice_fallback_url": n.voice_fallback_url,
        "voice_fallback_method": n.voice_fallback_method,
        "voice_caller_id_lookup": false,
        "voice_application_sid": null,
        "voice_receive_mode": "voice",
        "status_callback": n.status_callback,
        "status_callback_method": n.status_callback_method,
        "sms_url": n.sms_url,
        "sms_method": n.sms_method,
        "sms_fallback_url": n.sms_fallback_url,
        "sms_fallback_method": n.sms_fallback_method,
        "sms_application_sid": null,
        "address_sid": null,
        "address_requirements": "none",
        "beta": false,
        "identity_sid": null,
        "origin": "switchboard",
        "trunk_sid": null,
        "emergency_status": "Inactive",
        "emergency_address_sid": null,
        "emergency_address_status": "unregistered",
        "bundle_sid": null,
        "status": "in-use",
        "type": null,
        "date_created": rfc2822(n.date_created),
        "date_updated": rfc2822(n.date_updated),
        "uri": format!("/{API_VERSION}/Accounts/{}/IncomingPhoneNumbers/{}.json", n.account_sid, n.sid),
        "subresource_uris": {
            "assigned_add_ons": format!(
                "/{API_VERSION}/Accounts/{}/IncomingPhoneNumbers/{}/AssignedAddOns.json",
                n.account_sid, n.sid
            ),
        },
    })
}

/// An API key as fetched or listed (never with its secret).
pub fn api_key(k: &ApiKey) -> Value {
    json!({
        "sid": k.sid,
        "friendly_name": k.friendly_name,
        "date_created": rfc2822(k.date_created),
        "date_updated": rfc2822(k.date_updated),
    })
}

/// A just-created API key: the only time its secret is shown.
pub fn new_api_key(k: &ApiKey, secret: &str) -> Value {
    let mut value = api_key(k);
    if let Value::Object(map) = &mut value {
        map.insert("secret".into(), Value::String(secret.to_string()));
    }
    value
}

pub fn call(c: &CallRecord) -> Value {
    let base = format!("/{API_VERSION}/Accounts/{}/Calls/{}", c.account_sid, c.sid);
    json!({
        "sid": c.sid,
        "account_sid": c.account_sid,
        "parent_call_sid": c.parent_call_sid,
        "api_version": API_VERSION,
        "from": c.from,
        "from_formatted": c.from_formatted,
        "to": c.to,
        "to_formatted": c.to_formatted,
        "direction": c.direction,
        "status": c.status.as_str(),
        "caller_name": c.caller_name,
        "forwarded_from": c.forwarded_from,
        "answered_by": null,
        "annotation": null,
        "group_sid": null,
        "phone_number_sid": null,
        "trunk_sid": null,
        "price": null,
        "price_unit": "USD",
        "queue_time": "0",
        "date_created": rfc2822(c.date_created),
        "date_updated": rfc2822(c.date_updated),
        "start_time": opt_date(c.start_time),
        "end_time": opt_date(c.end_time),
        "duration": c.duration.map(|d| d.to_string()),
        "uri": format!("{base}.json"),
        "subresource_uris": {
            "notifications": format!("{base}/Notifications.json"),
            "recordings": format!("{base}/Recordings.json"),
        },
    })
}

pub fn notification(n: &Notification) -> Value {
    json!({
        "sid": n.sid,
        "account_sid": n.account_sid,
        "call_sid": n.call_sid,
        "api_version": API_VERSION,
        "error_code": n.error_code,
        "log": n.log_level.to_string(),
        "message_text": n.message_text,
        "message_date": rfc2822(n.date_created),
        "more_info": n.more_info,
        "request_method": n.request_method,
        "request_url": n.request_url,
        "request_variables": n.request_variables,
        "response_body": n.response_body,
        "response_headers": n.response_headers,
        "date_created": rfc2822(n.date_created),
        "date_updated": rfc2822(n.date_created),
        "uri": format!("/{API_VERSION}/Accounts/{}/Notifications/{}.json", n.account_sid, n.sid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc2822_utc() {
        // 2026-04-14T09:26:42Z
        assert_eq!(
            rfc2822(1_776_158_802_000),
            "Tue, 14 Apr 2026 09:26:42 +0000"
        );
    }
}
