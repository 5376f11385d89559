//! Switchboard's own SIP stack (RFC 3261 over UDP), built sans-IO.
//!
//! - [`message`]: parsing and serializing SIP messages.
//! - [`endpoint`]: the pure protocol core — transactions, dialogs and call
//!   legs, both inbound (a UAS that answers calls) and outbound (a UAC that
//!   places them through trunks, with Digest authentication) — fed
//!   datagrams, times and app actions, producing datagrams to send, events
//!   and its next deadline.
//! - [`transport`]: the thin tokio UDP driver that owns a socket and one
//!   [`endpoint::Endpoint`].

pub mod endpoint;
pub mod message;
pub mod transport;
