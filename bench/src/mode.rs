//! What a benchmark run asks the engine to do with the media: the [`Mode`] named on the
//! command line and the [`Traffic`] shape it implies for the generator.
//!
//! Bridged traffic (relay and transcode) pairs streams into calls; mix puts them into
//! conferences of [`MIX_MEMBERS`]. Modes still to come slot in as new [`Traffic`] shapes:
//! play (engine → generator only) and record (generator → engine only), each with its own
//! call setup in the targets.

use std::fmt;
use std::str::FromStr;

use shmq::Codec;

/// A data-plane workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Two legs in the same codec (PCMU), bridged: packets are forwarded as they are.
    Relay,
    /// Two legs bridged, PCMU on one and PCMA on the other: every packet is transcoded.
    Transcode,
    /// Conferences of [`MIX_MEMBERS`] members (PCMU): each member hears the others mixed.
    Mix,
}

/// Members per conference in the mix mode (fewer in the last conferences when the stream
/// count does not divide; never fewer than two). Four probes fit in a 20 ms payload.
pub const MIX_MEMBERS: usize = 4;

/// How packets flow for a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Each call is two legs bridged to each other; the generator sends into each leg and
    /// receives what leaves the other. Leg A speaks `a`, leg B speaks `b`.
    Bridged { a: Codec, b: Codec },
    /// Each stream is one member of a conference of up to `members`, all in `codec`: the
    /// generator sends into each member's session and receives the mix of the others.
    Mix { members: usize, codec: Codec },
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Relay, Mode::Transcode, Mode::Mix];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Relay => "relay",
            Mode::Transcode => "transcode",
            Mode::Mix => "mix",
        }
    }

    pub fn traffic(self) -> Traffic {
        match self {
            Mode::Relay => Traffic::Bridged {
                a: Codec::Pcmu,
                b: Codec::Pcmu,
            },
            Mode::Transcode => Traffic::Bridged {
                a: Codec::Pcmu,
                b: Codec::Pcma,
            },
            Mode::Mix => Traffic::Mix {
                members: MIX_MEMBERS,
                codec: Codec::Pcmu,
            },
        }
    }

    /// Whether the engine has to mix conferences.
    pub fn mixes(self) -> bool {
        matches!(self.traffic(), Traffic::Mix { .. })
    }

    /// Whether the engine has to change the payload's codec.
    pub fn transcodes(self) -> bool {
        match self.traffic() {
            Traffic::Bridged { a, b } => a != b,
            Traffic::Mix { .. } => false,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown mode {text:?} (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for mode in Mode::ALL {
            assert_eq!(mode.name().parse::<Mode>(), Ok(mode));
            assert_eq!(mode.to_string(), mode.name());
        }
        assert_eq!("RELAY".parse::<Mode>(), Ok(Mode::Relay));
        assert!("play"
            .parse::<Mode>()
            .unwrap_err()
            .contains("relay, transcode, mix"));
    }

    #[test]
    fn transcode_changes_the_codec_and_relay_does_not() {
        assert!(!Mode::Relay.transcodes());
        assert!(Mode::Transcode.transcodes());
        assert!(!Mode::Mix.transcodes());
        assert!(Mode::Mix.mixes() && !Mode::Relay.mixes());
        assert_eq!(
            Mode::Transcode.traffic(),
            Traffic::Bridged {
                a: Codec::Pcmu,
                b: Codec::Pcma
            }
        );
    }
}
