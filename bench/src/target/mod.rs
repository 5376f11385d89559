//! The engines a benchmark runs against, behind one [`Target`] interface: set up bridged
//! calls (or conferences) whose legs face given generator sockets, report the engine's CPU
//! time, tear the calls down.
//!
//! - [`switchboard::SwitchboardTarget`]: our media engine, in process (`media::run` on a
//!   thread, driven through a real shmq segment, attach socket and doorbells).
//! - [`rtpengine::RtpengineTarget`]: the rtpengine daemon, started pinned and driven over NG.
//! - [`LoopbackTarget`]: no engine at all: each leg's packets go straight to the other
//!   side's generator socket. It measures the harness's own floor (latency of the kernel
//!   path and the generator) and checks the harness without any engine.

pub mod rtpengine;
pub mod switchboard;

use std::net::SocketAddrV4;

use shmq::Codec;

use crate::error::BenchError;

/// One call to set up: leg A faces `a_remote` and speaks `a_codec`, leg B likewise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRequest {
    pub a_remote: SocketAddrV4,
    pub b_remote: SocketAddrV4,
    pub a_codec: Codec,
    pub b_codec: Codec,
    pub ptime_ms: u16,
}

/// One conference to set up: a member session facing each of `members`, all in `codec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixRequest {
    pub members: Vec<SocketAddrV4>,
    pub codec: Codec,
    pub ptime_ms: u16,
}

/// Where to send a call's media: `a` is the engine's address facing side A (A's packets go
/// there and leave toward `b_remote`), `b` the one facing side B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPorts {
    pub a: SocketAddrV4,
    pub b: SocketAddrV4,
}

/// Packet counters an engine keeps itself (cumulative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineCounters {
    /// Packets received on one leg and sent out of the other (in the mix mode: mixed
    /// packets sent to members).
    pub forwarded: u64,
    /// Packets it dropped, whatever the reason.
    pub dropped: u64,
}

impl EngineCounters {
    /// The counts between an earlier reading and this one.
    pub fn since(&self, earlier: &EngineCounters) -> EngineCounters {
        EngineCounters {
            forwarded: self.forwarded.saturating_sub(earlier.forwarded),
            dropped: self.dropped.saturating_sub(earlier.dropped),
        }
    }
}

/// An engine under test.
pub trait Target {
    /// Short name for tables and charts.
    fn name(&self) -> &str;

    /// Sets up one bridged call per request, in order.
    fn open_calls(&mut self, calls: &[CallRequest]) -> Result<Vec<CallPorts>, BenchError>;

    /// Sets up one conference per request, in order; returns, per conference, the engine's
    /// address facing each member (in the request's order).
    fn open_mixes(&mut self, mixes: &[MixRequest]) -> Result<Vec<Vec<SocketAddrV4>>, BenchError> {
        let _ = mixes;
        Err(BenchError::Config(format!(
            "{} cannot mix conferences",
            self.name()
        )))
    }

    /// Tears down every call (and conference) [`Target::open_calls`] and
    /// [`Target::open_mixes`] set up.
    fn close_calls(&mut self) -> Result<(), BenchError>;

    /// CPU time (user + system, seconds) the engine has used so far; `None` if there is no
    /// engine to account.
    fn cpu_seconds(&self) -> Result<Option<f64>, BenchError>;

    /// The engine's own packet counters so far, if it keeps them.
    fn counters(&self) -> Option<EngineCounters> {
        None
    }

    /// The core the engine is pinned to, if any.
    fn core(&self) -> Option<usize>;

    /// Whether it can change a stream's codec (the transcode mode needs it).
    fn can_transcode(&self) -> bool {
        true
    }

    /// Whether it can mix conferences (the mix mode needs it).
    fn can_mix(&self) -> bool {
        false
    }
}

/// No engine: the generator talks to itself.
#[derive(Debug, Default)]
pub struct LoopbackTarget;

impl Target for LoopbackTarget {
    fn name(&self) -> &str {
        "loopback"
    }

    fn open_calls(&mut self, calls: &[CallRequest]) -> Result<Vec<CallPorts>, BenchError> {
        calls
            .iter()
            .map(|call| {
                if call.a_codec != call.b_codec {
                    return Err(BenchError::Config(
                        "the loopback target cannot transcode".into(),
                    ));
                }
                Ok(CallPorts {
                    a: call.b_remote,
                    b: call.a_remote,
                })
            })
            .collect()
    }

    fn close_calls(&mut self) -> Result<(), BenchError> {
        Ok(())
    }

    fn cpu_seconds(&self) -> Result<Option<f64>, BenchError> {
        Ok(None)
    }

    fn core(&self) -> Option<usize> {
        None
    }

    fn can_transcode(&self) -> bool {
        false
    }
}
