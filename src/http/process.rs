//! The process as the kernel sees it (`/proc/self`): resident memory, open
//! file descriptors and their limit, threads, CPU time. Read when `/status`
//! or `/metrics` is asked (a few small files), never on the event path.
//! Elsewhere than Linux every figure is absent.

use serde::Serialize;

/// Resident memory, bytes.
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "cxrelay_process_resident_memory_bytes";
/// Open file descriptors.
pub const PROCESS_OPEN_FDS: &str = "cxrelay_process_open_fds";
/// The limit on open file descriptors (soft).
pub const PROCESS_MAX_FDS: &str = "cxrelay_process_max_fds";
/// Threads.
pub const PROCESS_THREADS: &str = "cxrelay_process_threads";
/// CPU time used, user and system, in seconds.
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "cxrelay_process_cpu_seconds_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[
    PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_THREADS,
    PROCESS_CPU_SECONDS_TOTAL,
];

/// The process's figures in `/status` (`service.process`); a figure that
/// cannot be read is left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcessStatus {
    /// Resident memory, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// Open file descriptors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fds: Option<u64>,
    /// Threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// CPU seconds used (user + system).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
}

impl ProcessStatus {
    /// Reads `/proc/self` now.
    pub fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        ProcessStatus {
            // The kernel says kB and means KiB.
            rss_bytes: field("VmRSS:").map(|kib| kib * 1024),
            open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|l| max_open_files(&l)),
            threads: field("Threads:"),
            cpu_seconds: std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|s| cpu_ticks(&s))
                .and_then(|ticks| {
                    // SAFETY: sysconf only reads a configuration value.
                    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
                    (hz > 0).then(|| ticks as f64 / hz as f64)
                }),
        }
    }

    /// Sets the gauges (at scrape time).
    pub fn emit(&self) {
        use metrics::{counter, gauge};
        let gauges = [
            (PROCESS_RESIDENT_MEMORY_BYTES, self.rss_bytes),
            (PROCESS_OPEN_FDS, self.open_fds),
            (PROCESS_MAX_FDS, self.max_fds),
            (PROCESS_THREADS, self.threads),
        ];
        for (name, value) in gauges {
            if let Some(v) = value {
                gauge!(name).set(v as f64);
            }
        }
        if let Some(s) = self.cpu_seconds {
            // Whole seconds: a Prometheus counter takes integers here.
            counter!(PROCESS_CPU_SECONDS_TOTAL).absolute(s as u64);
        }
    }
}

/// The soft "Max open files" of `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime of `/proc/self/stat`, in clock ticks. The command name
/// (field 2) may hold spaces and parentheses: fields are counted after its
/// last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime 14 and stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_limit_and_the_cpu_time_as_the_kernel_writes_them() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63541                63541                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(max_open_files("Max open files  unlimited  unlimited files"), None);
        let stat = "4242 (cx relay) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 25 0 0 20 0 9 0 1 2 3";
        assert_eq!(cpu_ticks(stat), Some(175));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_memory_and_descriptors() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let p = ProcessStatus::read();
        assert!(p.rss_bytes.is_some_and(|b| b > 0), "{p:?}");
        assert!(p.open_fds.is_some_and(|n| n >= 3), "{p:?}");
        assert!(p.threads.is_some_and(|n| n >= 1), "{p:?}");
        assert!(p.max_fds.is_some_and(|n| n >= p.open_fds.unwrap_or(0)), "{p:?}");
        assert!(p.cpu_seconds.is_some(), "{p:?}");
    }
}
