//! The conference registry: the live [`Room`]s of this node, by SID and by (account, name),
//! and the glue between them and the world. Calls join and leave through it, the REST API
//! reads and changes rooms through it; each change runs the room's pure logic under one
//! lock and hands back [`Effects`] (notices already sent to the participants' calls;
//! status callbacks and the room's record still to deliver), which the caller carries
//! out with [`Effects::deliver`] outside the lock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::mpsc::UnboundedSender;

use crate::call::{AppRequest, ConferenceJoin, Input};
use crate::conference::{EndReason, LeaveReason, Participant, ParticipantChange, Room};
use crate::driver::{deliver_status_callback, now_ms, rfc2822, webhook_request, CallRouter};

/// A room and the calls in it.
struct Entry {
    room: Room,
    /// Each participant's call, by call SID.
    members: HashMap<String, UnboundedSender<Input>>,
    /// Status callbacks sent so far (Twilio's `SequenceNumber`).
    callbacks_sent: u32,
}

#[derive(Default)]
struct Registry {
    rooms: HashMap<String, Entry>,
    /// Live rooms by (account SID, friendly name).
    by_name: HashMap<(String, String), String>,
    /// The room each participating call is in.
    by_call: HashMap<String, String>,
}

/// The live conferences of this node.
#[derive(Default)]
pub struct Conferences {
    registry: Mutex<Registry>,
}

/// A snapshot of a room, to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub status: &'static str,
    pub date_created: i64,
    pub date_updated: i64,
    pub reason_ended: Option<String>,
    pub call_sid_ending: Option<String>,
}

/// A status callback to send.
#[derive(Debug, Clone)]
struct Callback {
    account_sid: String,
    url: String,
    method: twiml::HttpMethod,
    params: Vec<(String, String)>,
}

/// What a registry change leaves to do outside its lock.
#[derive(Debug, Default)]
#[must_use = "deliver the effects"]
pub struct Effects {
    callbacks: Vec<Callback>,
    record: Option<RoomRecord>,
}

/// Why a REST change of a conference did not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConferenceError {
    /// No live conference (or participant) by that SID in the account.
    NotFound,
}

fn lock(m: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn record_of(room: &Room) -> RoomRecord {
    RoomRecord {
        sid: room.sid.clone(),
        account_sid: room.account_sid.clone(),
        friendly_name: room.friendly_name.clone(),
        status: room.status.as_str(),
        date_created: room.date_created,
        date_updated: room.date_updated,
        reason_ended: room.end_reason.as_ref().map(|r| r.as_str().to_string()),
        call_sid_ending: room
            .end_reason
            .as_ref()
            .and_then(|r| r.call_sid())
            .map(str::to_string),
    }
}

impl Registry {
    /// Runs a change on the room `sid` and collects its effects: notices go to the calls
    /// now; a finished room leaves the registry.
    fn change(&mut self, sid: &str, f: impl FnOnce(&mut Room)) -> Effects {
        let Some(entry) = self.rooms.get_mut(sid) else {
            return Effects::default();
        };
        let before = (entry.room.status, entry.room.participants().len());
        f(&mut entry.room);
        let mut effects = Effects::default();
        for output in entry.room.take_outputs() {
            match output {
                crate::conference::RoomOutput::Notify { call_sid, notice } => {
                    if let Some(call) = entry.members.get(&call_sid) {
                        let _ = call.send(Input::Conference(notice));
                    }
                }
                crate::conference::RoomOutput::Callback(mut params) => {
                    let Some(callback) = entry.room.callback() else {
                        continue;
                    };
                    params.push(("SequenceNumber".into(), entry.callbacks_sent.to_string()));
                    params.push(("Timestamp".into(), rfc2822(now_ms())));
                    entry.callbacks_sent += 1;
                    effects.callbacks.push(Callback {
                        account_sid: entry.room.account_sid.clone(),
                        url: callback.url.clone(),
                        method: callback.method,
                        params,
                    });
                }
            }
        }
        // Members that are no longer in the room stop hearing from it.
        let present: Vec<String> = entry
            .room
            .participants()
            .iter()
            .map(|p| p.call_sid.clone())
            .collect();
        entry
            .members
            .retain(|call_sid, _| present.contains(call_sid));
        self.by_call
            .retain(|call, room| room != sid || present.contains(call));
        let after = (entry.room.status, entry.room.participants().len());
        if before != after || entry.room.is_over() {
            effects.record = Some(record_of(&entry.room));
        }
        if entry.room.is_over() {
            let key = (
                entry.room.account_sid.clone(),
                entry.room.friendly_name.clone(),
            );
            self.by_name.remove(&key);
            self.rooms.remove(sid);
        }
        effects
    }

    fn room_of(&self, account_sid: &str, sid: &str) -> Option<&Entry> {
        self.rooms
            .get(sid)
            .filter(|entry| entry.room.account_sid == account_sid)
    }
}

impl Conferences {
    /// `call_sid` of `account_sid` joins the room named in `join` (created if needed).
    pub fn join(
        &self,
        account_sid: &str,
        join: ConferenceJoin,
        call: UnboundedSender<Input>,
    ) -> Effects {
        let mut registry = lock(&self.registry);
        let key = (account_sid.to_string(), join.name.clone());
        let mut created = None;
        let sid = match registry.by_name.get(&key) {
            Some(sid) => sid.clone(),
            None => {
                let sid = crate::driver::new_sid("CF");
                let room = Room::new(sid.clone(), account_sid.to_string(), join.name, now_ms());
                created = Some(record_of(&room));
                registry.rooms.insert(
                    sid.clone(),
                    Entry {
                        room,
                        members: HashMap::new(),
                        callbacks_sent: 0,
                    },
                );
                registry.by_name.insert(key, sid.clone());
                sid
            }
        };
        let call_sid = join.request.call_sid.clone();
        if let Some(entry) = registry.rooms.get_mut(&sid) {
            entry.members.insert(call_sid.clone(), call);
        }
        registry.by_call.insert(call_sid, sid.clone());
        let now = now_ms();
        let mut effects = registry.change(&sid, |room| room.join(join.request, now));
        if effects.record.is_none() {
            effects.record = created;
        }
        effects
    }

    /// The call left its room (if it is in one).
    pub fn leave(&self, call_sid: &str, reason: LeaveReason) -> Effects {
        let mut registry = lock(&self.registry);
        let Some(sid) = registry.by_call.get(call_sid).cloned() else {
            return Effects::default();
        };
        let now = now_ms();
        registry.change(&sid, |room| room.leave(call_sid, reason, now))
    }

    /// Voice activity of a participant.
    pub fn speaking(&self, call_sid: &str, speaking: bool) -> Effects {
        let mut registry = lock(&self.registry);
        let Some(sid) = registry.by_call.get(call_sid).cloned() else {
            return Effects::default();
        };
        registry.change(&sid, |room| room.speaking(call_sid, speaking))
    }

    /// The live room `sid` of the account, as stored.
    pub fn record(&self, account_sid: &str, sid: &str) -> Option<RoomRecord> {
        let registry = lock(&self.registry);
        registry
            .room_of(account_sid, sid)
            .map(|entry| record_of(&entry.room))
    }

    /// The participants of a live room, in joining order.
    pub fn participants(&self, account_sid: &str, sid: &str) -> Option<Vec<Participant>> {
        let registry = lock(&self.registry);
        registry
            .room_of(account_sid, sid)
            .map(|entry| entry.room.participants().to_vec())
    }

    /// One participant, by call SID or label.
    pub fn participant(
        &self,
        account_sid: &str,
        sid: &str,
        participant: &str,
    ) -> Option<Participant> {
        let registry = lock(&self.registry);
        registry
            .room_of(account_sid, sid)
            .and_then(|entry| entry.room.find(participant).cloned())
    }

    /// REST update of a participant; returns it as changed.
    pub fn update_participant(
        &self,
        account_sid: &str,
        sid: &str,
        participant: &str,
        change: &ParticipantChange,
    ) -> Result<(Participant, Effects), ConferenceError> {
        let mut registry = lock(&self.registry);
        let call_sid = registry
            .room_of(account_sid, sid)
            .and_then(|entry| entry.room.find(participant))
            .map(|p| p.call_sid.clone())
            .ok_or(ConferenceError::NotFound)?;
        let now = now_ms();
        let effects = registry.change(sid, |room| {
            room.update(&call_sid, change, now);
        });
        let updated = registry
            .rooms
            .get(sid)
            .and_then(|entry| entry.room.participant(&call_sid).cloned())
            .ok_or(ConferenceError::NotFound)?;
        Ok((updated, effects))
    }

    /// REST DELETE of a participant: it leaves the room (its call goes on).
    pub fn kick(
        &self,
        account_sid: &str,
        sid: &str,
        participant: &str,
    ) -> Result<Effects, ConferenceError> {
        let mut registry = lock(&self.registry);
        let call_sid = registry
            .room_of(account_sid, sid)
            .and_then(|entry| entry.room.find(participant))
            .map(|p| p.call_sid.clone())
            .ok_or(ConferenceError::NotFound)?;
        let now = now_ms();
        // The kicked call hears `Left` before it leaves the member list.
        Ok(registry.change(sid, |room| room.leave(&call_sid, LeaveReason::Kicked, now)))
    }

    /// REST `Status=completed`: the room ends for everyone.
    pub fn end(&self, account_sid: &str, sid: &str) -> Result<Effects, ConferenceError> {
        let mut registry = lock(&self.registry);
        if registry.room_of(account_sid, sid).is_none() {
            return Err(ConferenceError::NotFound);
        }
        let now = now_ms();
        Ok(registry.change(sid, |room| room.end(EndReason::Api, now)))
    }
}

impl Effects {
    /// Stores the room's record (if it changed) and sends the status callbacks (signed,
    /// retried, each in its own task).
    pub async fn deliver(self, router: &CallRouter) {
        if let Some(record) = self.record {
            router.store_conference(&record).await;
        }
        for callback in self.callbacks {
            let token = router.auth_token(&callback.account_sid).await;
            let request = AppRequest {
                url: callback.url,
                method: callback.method,
                params: callback.params,
            };
            tokio::spawn(deliver_status_callback(
                router.webhook(),
                webhook_request(&request, token),
            ));
        }
    }
}
