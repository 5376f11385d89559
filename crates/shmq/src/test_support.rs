//! Helpers for this crate's unit tests: unique segment/socket paths that clean up after
//! themselves.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A unique path under /dev/shm (or the temp dir), removed when dropped.
pub(crate) struct TempSegmentPath(PathBuf);

impl TempSegmentPath {
    pub(crate) fn new(label: &str) -> TempSegmentPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let name = format!(
            "shmq-unit-{}-{label}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        TempSegmentPath(dir.join(name))
    }
}

impl Deref for TempSegmentPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempSegmentPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempSegmentPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
