//! One clock for every process of a run.
//!
//! A change is stamped in the control-plane host process and its arrival in
//! the subscriber process, so both read `CLOCK_MONOTONIC`, which is the
//! same clock system-wide on Linux (`std::time::Instant` reads it too, but
//! cannot be sent to another process).

use nix::time::{ClockId, clock_gettime};

/// Nanoseconds on the system-wide monotonic clock.
pub(crate) fn now_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|ts| {
            let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
            secs * 1_000_000_000 + nanos
        })
        .unwrap_or(0)
}

/// Milliseconds from `from_ns` to `to_ns` (0 when `to_ns` is earlier).
pub(crate) fn ms_between(from_ns: u64, to_ns: u64) -> f64 {
    to_ns.saturating_sub(from_ns) as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_and_agrees_with_instant() {
        let a = now_ns();
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(2) {}
        let b = now_ns();
        assert!(b > a);
        assert!(ms_between(a, b) >= 2.0, "{}", ms_between(a, b));
        assert_eq!(ms_between(b, a), 0.0);
    }
}
