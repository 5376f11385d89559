//! Media quality on the control plane: the media plane's `QosReport`s for each call leg's
//! session are kept on the call (the store's `call_qos`, keyed by CallSid). A leg's first
//! report is written at once, later ones at most every [`QOS_WRITE_INTERVAL`] (the newest
//! waits in memory), and the final one (the session closed) always. The final report comes
//! after the call's task has ended, so this runs beside the calls, like the recordings; a
//! leg whose session never reports its end (the media process died) is flushed and
//! forgotten [`QOS_LINGER`] after its call ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shmq::{Event, Qos, SessionId};
use store::{CallQos, RemoteCallQos, Store};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::driver::now_ms;

/// The shortest time between two stores of a running leg's figures.
pub const QOS_WRITE_INTERVAL: Duration = Duration::from_secs(30);
/// How long after its call ended a leg waits for its session's final report.
pub const QOS_LINGER: Duration = Duration::from_secs(30);

/// A call leg whose session reports.
#[derive(Debug, Clone)]
struct Leg {
    call_sid: String,
    account_sid: String,
    last_written: Option<Instant>,
    /// The newest report not yet stored.
    pending: Option<Qos>,
}

/// What to do with a report that just arrived for a leg last stored at `last_written`.
fn should_write(last_written: Option<Instant>, now: Instant, final_report: bool) -> bool {
    final_report
        || last_written.is_none_or(|at| now.saturating_duration_since(at) >= QOS_WRITE_INTERVAL)
}

/// The store's row for a leg's figures.
fn call_qos(call_sid: &str, account_sid: &str, qos: &Qos, now_ms: i64) -> CallQos {
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let known = |v: u32| (qos.rtt_us != 0).then_some(i64::from(v));
    CallQos {
        call_sid: call_sid.to_string(),
        account_sid: account_sid.to_string(),
        codec: i64::from(qos.codec.payload_type()),
        packets_received: int(qos.packets_received),
        packets_lost: i64::from(qos.packets_lost),
        fraction_lost: i64::from(qos.fraction_lost),
        jitter_us: i64::from(qos.jitter_us),
        jitter_max_us: i64::from(qos.jitter_max_us),
        jitter_avg_us: i64::from(qos.jitter_avg_us),
        rtt_us: known(qos.rtt_us),
        rtt_max_us: known(qos.rtt_max_us),
        rtt_avg_us: known(qos.rtt_avg_us),
        packets_sent: int(qos.packets_sent),
        octets_sent: int(qos.octets_sent),
        remote: qos.remote.map(|r| RemoteCallQos {
            fraction_lost: i64::from(r.fraction_lost),
            packets_lost: i64::from(r.packets_lost),
            jitter_us: i64::from(r.jitter_us),
            jitter_max_us: i64::from(r.jitter_max_us),
            jitter_avg_us: i64::from(r.jitter_avg_us),
        }),
        final_report: qos.final_report,
        date_updated: now_ms,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps the legs' quality figures; cheap to clone.
#[derive(Clone)]
pub(crate) struct QosKeeper {
    store: Store,
    legs: Arc<Mutex<HashMap<SessionId, Leg>>>,
}

impl QosKeeper {
    pub(crate) fn new(store: Store) -> QosKeeper {
        QosKeeper {
            store,
            legs: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// `session` carries the media of call `call_sid`.
    pub(crate) fn track(&self, session: SessionId, call_sid: &str, account_sid: &str) {
        lock(&self.legs).insert(
            session,
            Leg {
                call_sid: call_sid.to_string(),
                account_sid: account_sid.to_string(),
                last_written: None,
                pending: None,
            },
        );
    }

    /// The call of `session` ended: its final report is due soon; if it never comes, what
    /// arrived is stored and the leg forgotten after [`QOS_LINGER`].
    pub(crate) fn call_ended(&self, session: SessionId) {
        if !lock(&self.legs).contains_key(&session) {
            return;
        }
        let keeper = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(QOS_LINGER).await;
            keeper.forget(session).await;
        });
    }

    /// Stops tracking `session`, storing its pending report if there is one.
    async fn forget(&self, session: SessionId) {
        let Some(leg) = lock(&self.legs).remove(&session) else {
            return;
        };
        if let Some(qos) = leg.pending {
            self.write(&leg, &qos).await;
        }
    }

    async fn write(&self, leg: &Leg, qos: &Qos) {
        let row = call_qos(&leg.call_sid, &leg.account_sid, qos, now_ms());
        if let Err(e) = self.store.upsert_call_qos(&row).await {
            tracing::error!(error = %e, call = %leg.call_sid, "cannot store media quality");
        }
    }

    /// One `QosReport` or `SessionClosed` from the media plane.
    async fn on_event(&self, event: Event) {
        match event {
            Event::QosReport { session, qos } => {
                let now = Instant::now();
                let due = {
                    let mut legs = lock(&self.legs);
                    let Some(leg) = legs.get_mut(&session) else {
                        return;
                    };
                    if should_write(leg.last_written, now, qos.final_report) {
                        leg.last_written = Some(now);
                        leg.pending = None;
                        let due = leg.clone();
                        if qos.final_report {
                            legs.remove(&session);
                        }
                        Some(due)
                    } else {
                        leg.pending = Some(qos);
                        None
                    }
                };
                if let Some(leg) = due {
                    self.write(&leg, &qos).await;
                }
            }
            // The final report precedes SessionClosed; anything still pending goes now.
            Event::SessionClosed { session, .. } => self.forget(session).await,
            _ => {}
        }
    }

    /// Consumes the media plane's quality events until the channel closes.
    pub(crate) async fn run(self, mut events: UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            self.on_event(event).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmq::{Codec, RemoteQos};
    use store::{CallRecord, CallStatus};

    fn qos(packets_received: u64, rtt_us: u32, final_report: bool) -> Qos {
        Qos {
            codec: Codec::Pcma,
            packets_received,
            packets_lost: 4,
            fraction_lost: 2,
            jitter_us: 1_000,
            jitter_max_us: 3_000,
            jitter_avg_us: 800,
            rtt_us,
            rtt_max_us: rtt_us * 2,
            rtt_avg_us: rtt_us,
            packets_sent: 400,
            octets_sent: 64_000,
            remote: Some(RemoteQos {
                fraction_lost: 0,
                packets_lost: 1,
                jitter_us: 250,
                jitter_max_us: 500,
                jitter_avg_us: 300,
            }),
            final_report,
        }
    }

    #[test]
    fn writes_are_spaced_except_the_first_and_the_final() {
        let t0 = Instant::now();
        assert!(should_write(None, t0, false));
        let later = t0 + QOS_WRITE_INTERVAL;
        assert!(!should_write(
            Some(t0),
            later - Duration::from_millis(1),
            false
        ));
        assert!(should_write(Some(t0), later, false));
        assert!(should_write(Some(t0), t0, true));
    }

    #[test]
    fn rows_carry_the_report_and_unknown_rtt_is_null() {
        let row = call_qos("CA1", "AC1", &qos(90, 0, false), 5);
        assert_eq!(row.codec, 8);
        assert_eq!((row.packets_received, row.packets_lost), (90, 4));
        assert_eq!(
            (row.rtt_us, row.rtt_max_us, row.rtt_avg_us),
            (None, None, None)
        );
        assert_eq!(row.remote.unwrap().packets_lost, 1);
        let row = call_qos("CA1", "AC1", &qos(90, 20_000, true), 5);
        assert_eq!((row.rtt_us, row.rtt_max_us), (Some(20_000), Some(40_000)));
        assert!(row.final_report);
    }

    #[tokio::test]
    async fn reports_reach_the_store_spaced_and_the_final_one_always() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .insert_call(&CallRecord {
                sid: "CA1".into(),
                account_sid: "AC1".into(),
                parent_call_sid: None,
                from: "+1".into(),
                to: "+2".into(),
                from_formatted: "+1".into(),
                to_formatted: "+2".into(),
                direction: "inbound".into(),
                status: CallStatus::InProgress,
                caller_name: None,
                forwarded_from: None,
                date_created: 0,
                date_updated: 0,
                start_time: None,
                end_time: None,
                duration: None,
            })
            .await
            .unwrap();
        let keeper = QosKeeper::new(store.clone());
        let session = SessionId(7);
        // Untracked sessions are ignored.
        keeper
            .on_event(Event::QosReport {
                session: SessionId(8),
                qos: qos(1, 0, true),
            })
            .await;
        keeper.track(session, "CA1", "AC1");
        let report = |qos| Event::QosReport { session, qos };
        keeper.on_event(report(qos(50, 0, false))).await;
        assert_eq!(
            store
                .call_qos("CA1")
                .await
                .unwrap()
                .unwrap()
                .packets_received,
            50
        );
        // Five seconds later: kept in memory, not written.
        keeper.on_event(report(qos(300, 9_000, false))).await;
        assert_eq!(
            store
                .call_qos("CA1")
                .await
                .unwrap()
                .unwrap()
                .packets_received,
            50
        );
        // The final report is written whatever the interval, and the leg forgotten.
        keeper.on_event(report(qos(500, 9_000, true))).await;
        let row = store.call_qos("CA1").await.unwrap().unwrap();
        assert_eq!((row.packets_received, row.final_report), (500, true));
        assert_eq!(row.rtt_us, Some(9_000));
        assert!(lock(&keeper.legs).is_empty());
        keeper
            .on_event(Event::SessionClosed {
                session,
                packets_sent: 0,
                packets_received: 0,
            })
            .await;

        // A leg whose session closes without a final report: its pending figures are stored.
        let other = SessionId(9);
        keeper.track(other, "CA2", "AC1");
        keeper
            .on_event(Event::QosReport {
                session: other,
                qos: qos(10, 0, false),
            })
            .await;
        keeper
            .on_event(Event::QosReport {
                session: other,
                qos: qos(20, 0, false),
            })
            .await;
        assert_eq!(
            store
                .call_qos("CA2")
                .await
                .unwrap()
                .unwrap()
                .packets_received,
            10
        );
        keeper
            .on_event(Event::SessionClosed {
                session: other,
                packets_sent: 0,
                packets_received: 0,
            })
            .await;
        assert_eq!(
            store
                .call_qos("CA2")
                .await
                .unwrap()
                .unwrap()
                .packets_received,
            20
        );
        assert!(lock(&keeper.legs).is_empty());
    }
}
