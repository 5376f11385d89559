//! Twilio's JSON representations of the store's records.

use serde_json::{json, Value};
use store::{Account, CallRecord, Notification};

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

pub fn account(a: &Account) -> Value {
    let base = format!("/{API_VERSION}/Accounts/{}", a.sid);
    json!({
        "sid": a.sid,
        "owner_account_sid": a.sid,
        "friendly_name": a.friendly_name,
        "status": a.status,
        "type": "Full",
        "auth_token": a.auth_token,
        "date_created": rfc2822(a.date_created),
        "date_updated": rfc2822(a.date_created),
        "uri": format!("{base}.json"),
        "subresource_uris": {
            "calls": format!("{base}/Calls.json"),
            "notifications": format!("{base}/Notifications.json"),
        },
    })
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
