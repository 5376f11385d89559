//! CPU accounting from /proc: a thread's or process's utime + stime (clock ticks) from its
//! `stat` file, the threads of this process selected by name, and one core's busy and total
//! time from /proc/stat. Parsing is pure; the readers are thin.

use std::fs;
use std::io;

/// utime + stime, in clock ticks, of a `/proc/…/stat` line. The command name (field 2)
/// is in parentheses and may itself contain spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace();
    // After the name: state (3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt (13), then utime (14) and stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// One core's cumulative time, in clock ticks, from its `cpuN` line of /proc/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoreTimes {
    /// user + nice + system + irq + softirq + steal.
    pub busy: u64,
    /// busy + idle + iowait.
    pub total: u64,
}

impl CoreTimes {
    /// The busy fraction between two readings (0 if no time passed).
    pub fn busy_fraction_since(&self, earlier: &CoreTimes) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            0.0
        } else {
            self.busy.saturating_sub(earlier.busy) as f64 / total as f64
        }
    }
}

/// The times of core `core` in the text of /proc/stat.
pub fn parse_core_times(proc_stat: &str, core: usize) -> Option<CoreTimes> {
    let label = format!("cpu{core}");
    let line = proc_stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some(label.as_str()))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let field = |i: usize| values.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let idle = field(3) + field(4);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    (values.len() >= 4).then_some(CoreTimes {
        busy,
        total: busy + idle,
    })
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, nearly always 100).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// Seconds in `ticks` clock ticks.
pub fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / ticks_per_second() as f64
}

/// utime + stime of process `pid` (all its threads), in clock ticks.
pub fn process_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_ticks(&stat).ok_or_else(|| bad_data(format!("/proc/{pid}/stat")))
}

/// utime + stime, summed over the threads of this process whose name starts with
/// `prefix`, in clock ticks; and how many threads matched.
pub fn own_threads_ticks(prefix: &str) -> io::Result<(u64, usize)> {
    let mut ticks = 0;
    let mut threads = 0;
    for entry in fs::read_dir("/proc/self/task")? {
        let path = entry?.path();
        // A thread may exit between listing and reading: skip it.
        let Ok(name) = fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        let Ok(stat) = fs::read_to_string(path.join("stat")) else {
            continue;
        };
        ticks += parse_stat_ticks(&stat).ok_or_else(|| bad_data(path.display().to_string()))?;
        threads += 1;
    }
    Ok((ticks, threads))
}

/// The current times of core `core`.
pub fn core_times(core: usize) -> io::Result<CoreTimes> {
    let stat = fs::read_to_string("/proc/stat")?;
    parse_core_times(&stat, core).ok_or_else(|| bad_data(format!("cpu{core} in /proc/stat")))
}

fn bad_data(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_even_with_odd_names() {
        let stat = "4242 (media-worker-0) S 1 4242 4242 0 -1 4194368 120 0 0 0 \
                    731 269 0 0 20 0 3 0 12345 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(1000));
        let odd = "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(odd), Some(11));
        assert_eq!(parse_stat_ticks("7 (x) R 1 2"), None);
        assert_eq!(parse_stat_ticks("no parenthesis"), None);
        assert_eq!(parse_stat_ticks("1 (x) R 1 1 1 0 -1 0 0 0 0 0 x 6"), None);
    }

    #[test]
    fn parses_one_core_of_proc_stat() {
        let stat = "cpu  10 0 10 100 0 0 0 0 0 0\n\
                    cpu0 1 2 3 4 5 6 7 8 9 10\n\
                    cpu1 100 0 50 800 50 0 0 0 0 0\n\
                    intr 1 2 3\n";
        assert_eq!(
            parse_core_times(stat, 0),
            Some(CoreTimes {
                busy: 1 + 2 + 3 + 6 + 7 + 8,
                total: 1 + 2 + 3 + 6 + 7 + 8 + 4 + 5
            })
        );
        let later = CoreTimes {
            busy: 250,
            total: 1100,
        };
        let earlier = parse_core_times(stat, 1).unwrap();
        assert_eq!(
            earlier,
            CoreTimes {
                busy: 150,
                total: 1000
            }
        );
        assert!((later.busy_fraction_since(&earlier) - 1.0).abs() < 1e-12);
        assert_eq!(earlier.busy_fraction_since(&earlier), 0.0);
        assert_eq!(parse_core_times(stat, 2), None);
        assert_eq!(parse_core_times("cpu0 1 x 3 4", 0), None);
    }

    #[test]
    fn reads_this_process() {
        // Burn a little CPU on a named thread, then find it by name.
        let handle = std::thread::Builder::new()
            .name("cpu-test-burn".into())
            .spawn(|| {
                let (ticks, threads) = own_threads_ticks("cpu-test-bu").unwrap();
                assert_eq!(threads, 1);
                ticks
            })
            .unwrap();
        let _ = handle.join().unwrap();
        assert!(process_ticks(std::process::id()).is_ok());
        assert!(core_times(0).unwrap().total > 0);
        assert!(ticks_per_second() > 0);
        assert_eq!(own_threads_ticks("no-such-thread-name").unwrap(), (0, 0));
    }
}
