//! The machine a run happened on, for the report.

use std::fs;

use serde::{Deserialize, Serialize};

/// What the report says about the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Machine {
    /// CPU model (`/proc/cpuinfo`).
    pub(crate) cpu: String,
    /// Logical CPUs available to the harness.
    pub(crate) cores: usize,
    /// Total memory in MiB (`/proc/meminfo`).
    pub(crate) memory_mib: u64,
    /// Distribution and kernel.
    pub(crate) os: String,
    /// The compiler the harness was built with.
    pub(crate) rustc: String,
    /// One-minute load average when the run started (other work on the
    /// machine skews results).
    #[serde(default)]
    pub(crate) load_at_start: f64,
}

impl Machine {
    /// Describes this machine.
    pub(crate) fn describe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let os_release = fs::read_to_string("/etc/os-release").unwrap_or_default();
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let distro = field(&os_release, "PRETTY_NAME", '=')
            .map(|name| name.trim_matches('"').to_owned())
            .unwrap_or_else(|| "Linux".to_owned());
        Self {
            cpu: field(&cpuinfo, "model name", ':').unwrap_or_else(|| "unknown".to_owned()),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_mib: field(&meminfo, "MemTotal", ':')
                .and_then(|kb| kb.trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb / 1024),
            os: format!("{distro}, kernel {}", kernel.trim()),
            rustc: env!("BENCH_RUSTC_VERSION").to_owned(),
            load_at_start: fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0),
        }
    }
}

/// The value of the first `key<sep>value` line in `text`, trimmed.
fn field(text: &str, key: &str, separator: char) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(separator)?;
        (name.trim() == key).then(|| value.trim().to_owned())
    })
}

/// Resident memory of this process in bytes (`VmRSS` in `/proc/self/status`).
pub(crate) fn rss_bytes() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    field(&status, "VmRSS", ':')
        .and_then(|kb| kb.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// User plus system CPU time this process has used, in nanoseconds.
pub(crate) fn cpu_ns() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |usage| {
        let nanos = |tv: nix::sys::time::TimeVal| {
            u64::try_from(tv.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(tv.tv_usec()).unwrap_or(0) * 1_000
        };
        nanos(usage.user_time()) + nanos(usage.system_time())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_machine() {
        let machine = Machine::describe();
        assert!(machine.cores >= 1);
        assert!(machine.memory_mib > 0);
        assert!(machine.rustc.starts_with("rustc "), "{}", machine.rustc);
    }

    #[test]
    fn measures_this_process() {
        let before = cpu_ns();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(20) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(cpu_ns() > before);
        assert!(rss_bytes() > 1024 * 1024);
    }

    #[test]
    fn reads_key_value_lines() {
        let text = "model name\t: AMD EPYC\nMemTotal:  1024 kB\n";
        assert_eq!(field(text, "model name", ':').as_deref(), Some("AMD EPYC"));
        assert_eq!(field(text, "MemTotal", ':').as_deref(), Some("1024 kB"));
        assert_eq!(field(text, "missing", ':'), None);
    }
}
