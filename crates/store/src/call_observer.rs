//! What the store tells an observer about calls as it records them: a call created, calls
//! moved out of an unfinished status. The control plane counts calls for its metrics this
//! way, so no other layer (the call router in particular) has to know about metrics.

use std::sync::Arc;

use crate::{CallRecord, CallStatus, Store};

/// Told about every call the store records and every status change out of an unfinished
/// status (`queued`, `ringing`, `in-progress`), after the change is stored. Called on the
/// storing task: implementations must be quick and must not block (count and return).
pub trait CallObserver: Send + Sync {
    /// A call was stored: it started (inbound, dialled, or accepted by the API as `queued`).
    fn call_created(&self, call: &CallRecord);
    /// `calls` calls (usually one) moved from an unfinished status to `status`. A call
    /// reaches a final status through here exactly once; a final status overwritten by
    /// another is not reported.
    fn call_status_changed(&self, status: CallStatus, calls: u64);
}

impl Store {
    /// This store handle (and the clones made from it afterwards) reports calls to `observer`.
    pub fn observe_calls(mut self, observer: Arc<dyn CallObserver>) -> Store {
        self.observer = Some(observer);
        self
    }

    pub(crate) fn notify_created(&self, call: &CallRecord) {
        if let Some(observer) = &self.observer {
            observer.call_created(call);
        }
    }

    pub(crate) fn notify_status(&self, status: CallStatus, calls: u64) {
        if let (Some(observer), 1..) = (&self.observer, calls) {
            observer.call_status_changed(status, calls);
        }
    }
}
