//! The call router: one state machine per call, and the async driver that runs them.
//!
//! A call's path runs one way: SIP leg → router → webhook → TwiML → router → media command.
//! [`call::Call`] is the sans-IO core (inputs → outputs, no I/O); [`driver`] owns the tasks
//! that feed it from SIP, the media plane, HTTP and timers, and carries out its outputs
//! (a `<Dial>` leg is a call of its own, reporting to the call that dialled it);
//! [`media_plane`] is the control side of the shmq rings (each leg's media quality is kept
//! on its call by the private `qos` keeper); [`channel_pool`] accounts for
//! trunk capacity (outbound calls beyond a trunk's `max_channels` wait, in order) and
//! [`channels`] wakes the calls it lets through. [`conference`] is the sans-IO core of a
//! conference room and [`conferences`] the registry of live rooms that calls and the REST
//! API share.

pub mod call;
pub mod channel_pool;
pub mod channels;
pub mod conference;
pub mod conferences;
pub mod driver;
pub mod media_plane;
pub mod params;
mod qos;
mod recordings;

pub use call::{Call, CallConfig, CallUpdate, Input, Output};
pub use conferences::{ConferenceError, Conferences, Effects, RoomRecord};
pub use driver::{CallRouter, OutboundRequest, PlaceError, RouterConfig};
pub use media_plane::MediaPlane;
pub use recordings::RecordRequest;
