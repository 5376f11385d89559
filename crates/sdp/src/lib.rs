//! SDP for Switchboard: parsing RFC 4566 session descriptions and RFC 3264
//! offer/answer for G.711 audio with RFC 4733 telephone-events.
//!
//! This crate owns the text format and the negotiation rules only; it never
//! touches sockets. [`parse`] turns an offer into a [`SessionDescription`],
//! [`negotiate`] picks the codec, telephone-event payload type, ptime and
//! remote RTP address, and [`answer`] / [`answer_offer`] render our answer.

mod negotiate;
mod session;

pub use negotiate::{
    answer, answer_offer, negotiate, offer, AudioCodec, Negotiated, NegotiationError,
};
pub use session::{
    parse, Direction, MediaDescription, Origin, RtpMap, SdpError, SessionDescription,
};
