//! The data plane: RTP sessions on pinned worker threads fed by shmq rings.
pub mod g711;
