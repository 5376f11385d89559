//! Voice Insights' Call Summary, the insights.twilio.com surface: `GET
//! /v1/Voice/{CallSid}/Summary` (the official SDKs reach it once their Insights domain's
//! base URL points at Switchboard: `client.insights.base_url = ...`, then
//! `client.insights.v1.calls(sid).summary().fetch()`). Authenticated like the REST API; an
//! account sees its own calls and its subaccounts', any other call is 404.
//!
//! The summary is built from the call record and the media quality its session reported over
//! RTCP (the store's `call_qos`). Every call goes through a SIP trunk or peer to Switchboard's
//! media gateway, so it is `call_type` `carrier` with one `carrier_edge`: `inbound` metrics are
//! the stream Switchboard received (its RTP receive statistics), `outbound` the stream it sent
//! (packets sent; loss and jitter as the far end's RTCP reports gave them; `rtt`, the RTCP
//! round-trip time, where measured). Fields Switchboard has no data for are left out or null:
//! `answered_by`, carrier names, number locations and connection types in `from`/`to`, edge
//! regions and IPs, `latency` (on Twilio the gateway-internal traversal time, which has no
//! counterpart here), MOS, `trust` and `annotation`. Tags: `high_jitter` (mean ≥ 5 ms and max
//! ≥ 30 ms) and `high_packet_loss` (> 5 %) on either stream; the others are not computed.

use axum::extract::{Path, Query, State};
use axum::Extension;
use axum::Json;
use serde_json::{json, Map, Value};
use store::{CallQos, CallRecord, CallStatus};

use crate::auth::Principal;
use crate::{ApiError, ApiState};

/// A call that ended this long ago is summarised as complete even if its session never sent
/// its final report (the media process died with it).
const FINAL_REPORT_GRACE_MS: i64 = 60_000;

/// ISO 8601 in UTC, as Insights writes times: `2021-08-25T03:40:25Z`.
fn iso8601(ms: i64) -> Value {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => Value::String(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None => Value::Null,
    }
}

/// Insights' `call_state` of a call status.
fn call_state(status: CallStatus) -> &'static str {
    match status {
        CallStatus::Queued => "undialed",
        CallStatus::Ringing => "ringing",
        CallStatus::InProgress => "answered",
        CallStatus::Completed => "completed",
        CallStatus::Busy => "busy",
        CallStatus::Failed => "fail",
        CallStatus::NoAnswer => "noanswer",
        CallStatus::Canceled => "canceled",
    }
}

/// Whether the summary is final: the call ended and its media figures are the whole call's.
fn is_complete(call: &CallRecord, qos: Option<&CallQos>, now_ms: i64) -> bool {
    if !call.status.is_final() {
        return false;
    }
    let long_over = call
        .end_time
        .is_some_and(|end| now_ms - end >= FINAL_REPORT_GRACE_MS);
    qos.is_none_or(|q| q.final_report) || long_over
}

fn codec_name(payload_type: i64) -> &'static str {
    match payload_type {
        8 => "pcma",
        _ => "pcmu",
    }
}

fn ms(us: i64) -> Value {
    json!(us as f64 / 1000.0)
}

/// `part` of `whole`, in percent with two decimals.
fn percentage(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        return 0.0;
    }
    (part.max(0) as f64 * 10_000.0 / whole as f64).round() / 100.0
}

/// Twilio's gateway tags for one stream's loss (percent) and jitter (mean, max; µs).
fn stream_tags(
    tags: &mut Vec<&'static str>,
    loss_pct: f64,
    jitter_avg_us: i64,
    jitter_max_us: i64,
) {
    if jitter_avg_us >= 5_000 && jitter_max_us >= 30_000 && !tags.contains(&"high_jitter") {
        tags.push("high_jitter");
    }
    if loss_pct > 5.0 && !tags.contains(&"high_packet_loss") {
        tags.push("high_packet_loss");
    }
}

/// The carrier edge's properties and metrics, and the tags they earn.
fn carrier_edge(call: &CallRecord, q: &CallQos, tags: &mut Vec<&'static str>) -> Value {
    let lost_in = q.packets_lost.max(0);
    let loss_in = percentage(lost_in, q.packets_received + lost_in);
    stream_tags(tags, loss_in, q.jitter_avg_us, q.jitter_max_us);
    let inbound = json!({
        "codec": q.codec,
        "codec_name": codec_name(q.codec),
        "packets_received": q.packets_received,
        "packets_lost": lost_in,
        "packets_loss_percentage": loss_in,
        "jitter": {"avg": ms(q.jitter_avg_us), "max": ms(q.jitter_max_us)},
    });
    let mut outbound = Map::new();
    outbound.insert("codec".into(), json!(q.codec));
    outbound.insert("codec_name".into(), json!(codec_name(q.codec)));
    outbound.insert("packets_sent".into(), json!(q.packets_sent));
    if let Some(remote) = q.remote {
        let lost_out = remote.packets_lost.max(0);
        let loss_out = percentage(lost_out, q.packets_sent);
        stream_tags(tags, loss_out, remote.jitter_avg_us, remote.jitter_max_us);
        outbound.insert("packets_lost".into(), json!(lost_out));
        outbound.insert("packets_loss_percentage".into(), json!(loss_out));
        outbound.insert(
            "jitter".into(),
            json!({"avg": ms(remote.jitter_avg_us), "max": ms(remote.jitter_max_us)}),
        );
    }
    if let (Some(avg), Some(max)) = (q.rtt_avg_us, q.rtt_max_us) {
        outbound.insert("rtt".into(), json!({"avg": ms(avg), "max": ms(max)}));
    }
    json!({
        "properties": {
            "direction": if call.direction == "inbound" { "inbound" } else { "outbound" },
        },
        "metrics": {"inbound": inbound, "outbound": Value::Object(outbound)},
    })
}

/// The Call Summary of `call` (with its media quality, if any was reported) at `now_ms`.
pub fn call_summary(
    call: &CallRecord,
    qos: Option<&CallQos>,
    base_url: &str,
    now_ms: i64,
) -> Value {
    let mut tags = Vec::new();
    let edge = qos.map_or(Value::Null, |q| carrier_edge(call, q, &mut tags));
    let duration = call
        .end_time
        .map(|end| (end - call.date_created).max(0) / 1000);
    let connect_duration = call.start_time.and(call.duration);
    json!({
        "account_sid": call.account_sid,
        "call_sid": call.sid,
        "call_type": "carrier",
        "call_state": call_state(call.status),
        "answered_by": Value::Null,
        "processing_state": if is_complete(call, qos, now_ms) { "complete" } else { "partial" },
        "created_time": iso8601(call.date_created),
        "start_time": iso8601(call.date_created),
        "end_time": call.end_time.map_or(Value::Null, iso8601),
        "duration": duration,
        "connect_duration": connect_duration,
        "from": {"caller": call.from},
        "to": {"callee": call.to},
        "carrier_edge": edge,
        "client_edge": Value::Null,
        "sdk_edge": Value::Null,
        "sip_edge": Value::Null,
        "tags": if tags.is_empty() { Value::Null } else { json!(tags) },
        "url": format!("{}/v1/Voice/{}/Summary", base_url.trim_end_matches('/'), call.sid),
        "attributes": {"conference_participant": false},
        "properties": {"direction": call.direction.replace('-', "_")},
        "trust": Value::Null,
        "annotation": Value::Null,
    })
}

/// `GET /v1/Voice/{CallSid}/Summary[?ProcessingState=complete|partial|all]`.
pub async fn fetch_summary(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(call_sid): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let path = format!("/v1/Voice/{call_sid}/Summary");
    let wanted = query
        .iter()
        .find(|(k, _)| k == "ProcessingState")
        .map(|(_, v)| v.as_str());
    if let Some(value) = wanted {
        if !matches!(value, "complete" | "partial" | "all" | "started") {
            return Err(ApiError::invalid_parameter(
                "ProcessingState",
                "expected complete, partial or all",
            ));
        }
    }
    let call = state
        .store
        .call_by_sid(&call_sid)
        .await?
        .ok_or_else(|| ApiError::not_found_resource(&path))?;
    if call.account_sid != principal.sid() {
        // A parent account reaches its subaccounts' calls; any other call does not exist.
        let owned = state
            .store
            .account_details(&call.account_sid)
            .await?
            .is_some_and(|a| a.parent_sid.as_deref() == Some(principal.sid()));
        if !owned {
            return Err(ApiError::not_found_resource(&path));
        }
    }
    let qos = state.store.call_qos(&call.sid).await?;
    let now = crate::now_ms();
    let summary = call_summary(&call, qos.as_ref(), &state.self_url, now);
    // As on Twilio, a complete summary is not there until the call's figures are final.
    if wanted == Some("complete") && summary["processing_state"] != "complete" {
        return Err(ApiError::not_found_resource(&path));
    }
    Ok(Json(summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::RemoteCallQos;

    fn call(status: CallStatus) -> CallRecord {
        CallRecord {
            sid: "CA1".into(),
            account_sid: "AC1".into(),
            parent_call_sid: None,
            from: "+15551230000".into(),
            to: "+15005550006".into(),
            from_formatted: "+15551230000".into(),
            to_formatted: "+15005550006".into(),
            direction: "outbound-api".into(),
            status,
            caller_name: None,
            forwarded_from: None,
            date_created: 1_629_862_825_000,
            date_updated: 0,
            start_time: Some(1_629_862_826_000),
            end_time: status.is_final().then_some(1_629_862_845_400),
            duration: status.is_final().then_some(19),
        }
    }

    fn qos(final_report: bool) -> CallQos {
        CallQos {
            call_sid: "CA1".into(),
            account_sid: "AC1".into(),
            codec: 8,
            packets_received: 950,
            packets_lost: 50,
            fraction_lost: 3,
            jitter_us: 4_000,
            jitter_max_us: 31_000,
            jitter_avg_us: 6_500,
            rtt_us: Some(40_000),
            rtt_max_us: Some(55_000),
            rtt_avg_us: Some(42_500),
            packets_sent: 1_000,
            octets_sent: 160_000,
            remote: Some(RemoteCallQos {
                fraction_lost: 0,
                packets_lost: -1,
                jitter_us: 250,
                jitter_max_us: 500,
                jitter_avg_us: 300,
            }),
            final_report,
            date_updated: 0,
        }
    }

    #[test]
    fn summary_fields_follow_twilios_names_and_units() {
        let call = call(CallStatus::Completed);
        let now = 1_629_862_846_000;
        let s = call_summary(&call, Some(&qos(true)), "http://sb:8080/", now);
        assert_eq!(s["call_sid"], "CA1");
        assert_eq!(s["account_sid"], "AC1");
        assert_eq!(s["call_type"], "carrier");
        assert_eq!(s["call_state"], "completed");
        assert_eq!(s["processing_state"], "complete");
        assert_eq!(s["start_time"], "2021-08-25T03:40:25Z");
        assert_eq!(s["end_time"], "2021-08-25T03:40:45Z");
        assert_eq!(s["duration"], 20);
        assert_eq!(s["connect_duration"], 19);
        assert_eq!(s["from"]["caller"], "+15551230000");
        assert_eq!(s["to"]["callee"], "+15005550006");
        assert_eq!(s["properties"]["direction"], "outbound_api");
        assert_eq!(s["url"], "http://sb:8080/v1/Voice/CA1/Summary");
        let edge = &s["carrier_edge"];
        assert_eq!(edge["properties"]["direction"], "outbound");
        let inbound = &edge["metrics"]["inbound"];
        assert_eq!(inbound["codec_name"], "pcma");
        assert_eq!(inbound["packets_received"], 950);
        assert_eq!(inbound["packets_lost"], 50);
        assert_eq!(inbound["packets_loss_percentage"], 5.0);
        assert_eq!(inbound["jitter"]["avg"], 6.5);
        assert_eq!(inbound["jitter"]["max"], 31.0);
        let outbound = &edge["metrics"]["outbound"];
        assert_eq!(outbound["packets_sent"], 1_000);
        assert_eq!(
            outbound["packets_lost"], 0,
            "a negative count shows as none lost"
        );
        assert_eq!(outbound["packets_loss_percentage"], 0.0);
        assert_eq!(outbound["jitter"]["max"], 0.5);
        assert_eq!(outbound["rtt"]["avg"], 42.5);
        assert_eq!(outbound["rtt"]["max"], 55.0);
        assert_eq!(s["tags"], json!(["high_jitter"]));
        assert_eq!(s["sip_edge"], Value::Null);
    }

    #[test]
    fn partial_until_the_call_and_its_figures_are_final() {
        let running = call(CallStatus::InProgress);
        let s = call_summary(&running, Some(&qos(false)), "", 0);
        assert_eq!(
            (s["processing_state"].as_str(), s["call_state"].as_str()),
            (Some("partial"), Some("answered"))
        );
        assert_eq!(s["end_time"], Value::Null);
        assert_eq!(s["duration"], Value::Null);
        let ended = call(CallStatus::Completed);
        let end = ended.end_time.unwrap();
        assert_eq!(
            call_summary(&ended, Some(&qos(false)), "", end + 1_000)["processing_state"],
            "partial"
        );
        assert_eq!(
            call_summary(&ended, Some(&qos(false)), "", end + FINAL_REPORT_GRACE_MS)
                ["processing_state"],
            "complete",
            "the final report is not coming"
        );
        // No media at all (a busy call): complete once over, no edge, no tags.
        let busy = CallRecord {
            start_time: None,
            ..call(CallStatus::Busy)
        };
        let s = call_summary(&busy, None, "", 0);
        assert_eq!(s["processing_state"], "complete");
        assert_eq!(s["call_state"], "busy");
        assert_eq!(s["carrier_edge"], Value::Null);
        assert_eq!(s["connect_duration"], Value::Null);
        assert_eq!(s["tags"], Value::Null);
    }

    #[test]
    fn loss_over_five_percent_is_tagged() {
        let mut lossy = qos(true);
        lossy.packets_lost = 60;
        lossy.jitter_max_us = 1_000;
        let s = call_summary(&call(CallStatus::Completed), Some(&lossy), "", 0);
        assert_eq!(s["tags"], json!(["high_packet_loss"]));
        assert_eq!(percentage(1, 3), 33.33);
        assert_eq!(percentage(5, 0), 0.0);
    }
}
