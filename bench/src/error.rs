//! The harness's error type.

use std::io;

use crate::ng::NgError;

/// Why a benchmark could not run (a point that merely lost packets is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("shared memory: {0}")]
    Shmq(#[from] shmq::ShmqError),
    #[error("switchboard media engine: {0}")]
    Engine(String),
    #[error("rtpengine: {0}")]
    Rtpengine(String),
    #[error("rtpengine NG protocol: {0}")]
    Ng(#[from] NgError),
}

/// Adds what was being done to an I/O error.
pub trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, BenchError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, BenchError> {
        self.map_err(|source| BenchError::Io {
            context: what(),
            source,
        })
    }
}
