//! The call router: one state machine per call, and the async driver that runs them.
//!
//! A call's path runs one way: SIP leg → router → webhook → TwiML → router → media command.
//! [`call::Call`] is the sans-IO core (inputs → outputs, no I/O); [`driver`] owns the tasks
//! that feed it from SIP, the media plane, HTTP and timers, and carries out its outputs;
//! [`media_plane`] is the control side of the shmq rings.

pub mod call;
pub mod driver;
pub mod media_plane;
pub mod params;

pub use call::{Call, CallConfig, CallUpdate, Input, Output};
pub use driver::{CallRouter, OutboundRequest, PlaceError, RouterConfig};
pub use media_plane::MediaPlane;
