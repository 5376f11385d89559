//! Media quality per call leg: the latest RTCP-derived figures of the leg's media session
//! (its receive statistics, what it sent, the far end's reports about it, round-trip times),
//! one row per CallSid, replaced as reports arrive and frozen once the final report (the
//! session closed) is in. Counts are as the media plane reports them; times in microseconds.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::{CallRecord, Store, StoreError};

/// The far end's view of the stream a leg sent (its RTCP report blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteCallQos {
    /// Fraction lost in its last report interval, in 1/256.
    pub fraction_lost: i64,
    pub packets_lost: i64,
    pub jitter_us: i64,
    pub jitter_max_us: i64,
    pub jitter_avg_us: i64,
}

/// The media quality of one call leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallQos {
    pub call_sid: String,
    pub account_sid: String,
    /// RTP payload type of the leg's codec (0 PCMU, 8 PCMA).
    pub codec: i64,
    /// What the leg received: packets, cumulative loss (RFC 3550, may be negative),
    /// fraction lost in the last interval (1/256) and interarrival jitter.
    pub packets_received: i64,
    pub packets_lost: i64,
    pub fraction_lost: i64,
    pub jitter_us: i64,
    pub jitter_max_us: i64,
    pub jitter_avg_us: i64,
    /// Round-trip times; `None` while unknown (no report block echoing one of our SRs).
    pub rtt_us: Option<i64>,
    pub rtt_max_us: Option<i64>,
    pub rtt_avg_us: Option<i64>,
    /// What the leg sent: RTP packets and payload octets.
    pub packets_sent: i64,
    pub octets_sent: i64,
    pub remote: Option<RemoteCallQos>,
    /// The session closed: these are the figures of the whole leg.
    pub final_report: bool,
    pub date_updated: i64,
}

impl Store {
    /// Stores the leg's latest figures, unless its final ones are already in (returns
    /// whether anything was written).
    pub async fn upsert_call_qos(&self, q: &CallQos) -> Result<bool, StoreError> {
        let remote = q.remote;
        let result = sqlx::query(
            "INSERT INTO call_qos (call_sid, account_sid, codec, packets_received, packets_lost,
                fraction_lost, jitter_us, jitter_max_us, jitter_avg_us, rtt_us, rtt_max_us,
                rtt_avg_us, packets_sent, octets_sent, remote_fraction_lost,
                remote_packets_lost, remote_jitter_us, remote_jitter_max_us,
                remote_jitter_avg_us, final_report, date_updated)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(call_sid) DO UPDATE SET codec = excluded.codec,
                packets_received = excluded.packets_received,
                packets_lost = excluded.packets_lost, fraction_lost = excluded.fraction_lost,
                jitter_us = excluded.jitter_us, jitter_max_us = excluded.jitter_max_us,
                jitter_avg_us = excluded.jitter_avg_us, rtt_us = excluded.rtt_us,
                rtt_max_us = excluded.rtt_max_us, rtt_avg_us = excluded.rtt_avg_us,
                packets_sent = excluded.packets_sent, octets_sent = excluded.octets_sent,
                remote_fraction_lost = excluded.remote_fraction_lost,
                remote_packets_lost = excluded.remote_packets_lost,
                remote_jitter_us = excluded.remote_jitter_us,
                remote_jitter_max_us = excluded.remote_jitter_max_us,
                remote_jitter_avg_us = excluded.remote_jitter_avg_us,
                final_report = excluded.final_report, date_updated = excluded.date_updated
             WHERE call_qos.final_report = 0",
        )
        .bind(&q.call_sid)
        .bind(&q.account_sid)
        .bind(q.codec)
        .bind(q.packets_received)
        .bind(q.packets_lost)
        .bind(q.fraction_lost)
        .bind(q.jitter_us)
        .bind(q.jitter_max_us)
        .bind(q.jitter_avg_us)
        .bind(q.rtt_us)
        .bind(q.rtt_max_us)
        .bind(q.rtt_avg_us)
        .bind(q.packets_sent)
        .bind(q.octets_sent)
        .bind(remote.map(|r| r.fraction_lost))
        .bind(remote.map(|r| r.packets_lost))
        .bind(remote.map(|r| r.jitter_us))
        .bind(remote.map(|r| r.jitter_max_us))
        .bind(remote.map(|r| r.jitter_avg_us))
        .bind(q.final_report)
        .bind(q.date_updated)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The leg's figures, if any report arrived.
    pub async fn call_qos(&self, call_sid: &str) -> Result<Option<CallQos>, StoreError> {
        let row = sqlx::query("SELECT * FROM call_qos WHERE call_sid = ?")
            .bind(call_sid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(call_qos_from_row).transpose()
    }

    /// A call by SID alone, whatever its account (callers check the account themselves:
    /// Voice Insights addresses calls without an account in the path).
    pub async fn call_by_sid(&self, sid: &str) -> Result<Option<CallRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM calls WHERE sid = ?")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(crate::call_from_row).transpose()
    }
}

fn call_qos_from_row(r: &SqliteRow) -> Result<CallQos, StoreError> {
    let remote_fraction_lost: Option<i64> = r.try_get("remote_fraction_lost")?;
    let remote = match remote_fraction_lost {
        Some(fraction_lost) => Some(RemoteCallQos {
            fraction_lost,
            packets_lost: r
                .try_get::<Option<i64>, _>("remote_packets_lost")?
                .unwrap_or(0),
            jitter_us: r
                .try_get::<Option<i64>, _>("remote_jitter_us")?
                .unwrap_or(0),
            jitter_max_us: r
                .try_get::<Option<i64>, _>("remote_jitter_max_us")?
                .unwrap_or(0),
            jitter_avg_us: r
                .try_get::<Option<i64>, _>("remote_jitter_avg_us")?
                .unwrap_or(0),
        }),
        None => None,
    };
    Ok(CallQos {
        call_sid: r.try_get("call_sid")?,
        account_sid: r.try_get("account_sid")?,
        codec: r.try_get("codec")?,
        packets_received: r.try_get("packets_received")?,
        packets_lost: r.try_get("packets_lost")?,
        fraction_lost: r.try_get("fraction_lost")?,
        jitter_us: r.try_get("jitter_us")?,
        jitter_max_us: r.try_get("jitter_max_us")?,
        jitter_avg_us: r.try_get("jitter_avg_us")?,
        rtt_us: r.try_get("rtt_us")?,
        rtt_max_us: r.try_get("rtt_max_us")?,
        rtt_avg_us: r.try_get("rtt_avg_us")?,
        packets_sent: r.try_get("packets_sent")?,
        octets_sent: r.try_get("octets_sent")?,
        remote,
        final_report: r.try_get("final_report")?,
        date_updated: r.try_get("date_updated")?,
    })
}
