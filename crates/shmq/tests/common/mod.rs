//! Helpers shared by the integration tests: temporary paths, and re-executing the test binary
//! as a child process that plays one role of a cross-process test.
//!
//! A test that needs a peer process calls [`spawn_child`] with its own name; the child runs the
//! same test binary with `--exact <name>` and [`ROLE_ENV`] set, and the test function starts by
//! checking [`child_role`] to play the child's part instead of the parent's.

#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shmq::Record;

/// Set in a child process to the role it should play.
pub const ROLE_ENV: &str = "SHMQ_TEST_CHILD_ROLE";

/// The role this process was started to play, if it is a child.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// A unique path under /dev/shm (or the temp dir), removed when dropped.
pub struct TempPath(PathBuf);

impl TempPath {
    pub fn new(label: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        TempPath(dir.join(format!(
            "shmq-it-{}-{label}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )))
    }
}

impl Deref for TempPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A child process running one role of a test; killed if dropped before it finished.
pub struct ChildProcess {
    child: Option<Child>,
    role: String,
}

/// Re-executes this test binary to run only `test_name`, in role `role`, with extra `envs`.
pub fn spawn_child(test_name: &str, role: &str, envs: &[(&str, &OsStr)]) -> ChildProcess {
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args([test_name, "--exact", "--test-threads=1", "--nocapture"])
        .env(ROLE_ENV, role)
        .envs(envs.iter().map(|(key, value)| (*key, *value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    ChildProcess {
        child: Some(child),
        role: role.to_string(),
    }
}

impl ChildProcess {
    /// Whether the child has not exited yet.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Waits up to `timeout` for the child to exit, and asserts that it ran exactly one test
    /// and that the test passed.
    pub fn wait_success(mut self, timeout: Duration) {
        let mut child = self.child.take().expect("child already waited");
        let deadline = Instant::now() + timeout;
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let output = child.wait_with_output().expect("wait for killed child");
                panic!(
                    "child {} timed out\nstdout:\n{}\nstderr:\n{}",
                    self.role,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let output = child.wait_with_output().expect("child output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "child {} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
            self.role,
            output.status
        );
        assert!(
            stdout.contains("1 passed"),
            "child {} did not run its test (wrong name?)\nstdout:\n{stdout}",
            self.role
        );
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// For a child: a check that the parent that spawned it is still alive.
pub fn parent_watch() -> impl FnMut() -> bool {
    let parent = std::os::unix::process::parent_id();
    move || std::os::unix::process::parent_id() == parent
}

/// The value of an environment variable the parent passed, as a path.
pub fn env_path(key: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(key).unwrap_or_else(|| panic!("{key} not set")))
}

/// A record whose every byte is derived from `seq`, so lost, duplicated, reordered or torn
/// records are all detected by comparing whole records.
pub fn numbered(seq: u64) -> Record {
    let mut body = [0u8; 80];
    for (i, chunk) in body.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seq.rotate_left(i as u32 * 7) ^ 0x5a5a_0000_0000_0000).to_ne_bytes(),
        );
    }
    Record {
        kind: seq as u32,
        flags: (seq >> 32) as u32 ^ 0xffff,
        session: !seq,
        body,
    }
}
