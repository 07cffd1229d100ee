//! Counting calls and summarizing them, as text or as one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

use crate::run::Plan;

/// Distinct error messages kept for the summary.
const MAX_ERROR_MESSAGES: usize = 10;

/// Significant decimal digits kept of each latency (0.1 % precision).
const LATENCY_DIGITS: u8 = 3;

/// Outcomes of calls. Its size does not grow with the number of calls (a
/// run may last days), except for one entry per backend.
#[derive(Debug)]
pub(crate) struct Tally {
    ok: u64,
    failed: u64,
    by_backend: BTreeMap<String, u64>,
    failed_by_code: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    /// Latencies in microseconds.
    latency_us: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            ok: 0,
            failed: 0,
            by_backend: BTreeMap::new(),
            failed_by_code: BTreeMap::new(),
            errors: BTreeMap::new(),
            latency_us: Histogram::new(LATENCY_DIGITS).expect("valid precision"),
        }
    }
}

impl Tally {
    pub(crate) fn record(&mut self, latency: Duration, result: Result<String, tonic::Status>) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // Auto-resizing: recording fails only for values beyond u64 range.
        let _ = self.latency_us.record(us.max(1));
        match result {
            Ok(served_by) => {
                self.ok += 1;
                *self.by_backend.entry(served_by).or_default() += 1;
            }
            Err(status) => {
                self.failed += 1;
                *self
                    .failed_by_code
                    .entry(common::error::code_name(status.code()))
                    .or_default() += 1;
                // The channel puts what changes from call to call (waits,
                // ages) in a trailing "[...]": group by the cause before it.
                let cause = match status.message().rsplit_once(" [") {
                    Some((cause, times)) if times.ends_with(']') => cause,
                    _ => status.message(),
                };
                let message = format!("{}: {cause}", common::error::code_name(status.code()));
                if let Some(count) = self.errors.get_mut(&message) {
                    *count += 1;
                } else if self.errors.len() < MAX_ERROR_MESSAGES {
                    self.errors.insert(message, 1);
                }
            }
        }
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        for (backend, n) in other.by_backend {
            *self.by_backend.entry(backend).or_default() += n;
        }
        for (code, n) in other.failed_by_code {
            *self.failed_by_code.entry(code).or_default() += n;
        }
        for (message, n) in other.errors {
            if let Some(count) = self.errors.get_mut(&message) {
                *count += n;
            } else if self.errors.len() < MAX_ERROR_MESSAGES {
                self.errors.insert(message, n);
            }
        }
        // Both are auto-resizing with the same precision, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }

    /// Calls counted.
    pub(crate) fn calls(&self) -> u64 {
        self.ok + self.failed
    }

    /// One log line's worth: calls, failures and the spread.
    pub(crate) fn log_progress(&self, window: Duration) {
        let rate = if window.is_zero() {
            0.0
        } else {
            self.calls() as f64 / window.as_secs_f64()
        };
        let (p50, p99, _) = latency_figures(&self.latency_us).unwrap_or_default();
        tracing::info!(
            calls = self.calls(),
            ok = self.ok,
            failed = self.failed,
            calls_per_second = round(rate),
            by_backend = ?self.by_backend,
            failed_by_code = ?self.failed_by_code,
            p50_ms = round(p50),
            p99_ms = round(p99),
            "progress"
        );
    }
}

/// The summary of a run.
#[derive(Debug)]
pub(crate) struct Report {
    tally: Tally,
    elapsed: Duration,
    /// p50, p99, max, in milliseconds.
    latency_ms: Option<(f64, f64, f64)>,
}

impl Report {
    pub(crate) fn new(tally: Tally, elapsed: Duration) -> Self {
        let latency_ms = latency_figures(&tally.latency_us);
        Self {
            tally,
            elapsed,
            latency_ms,
        }
    }

    pub(crate) fn failed(&self) -> u64 {
        self.tally.failed
    }

    fn calls(&self) -> u64 {
        self.tally.calls()
    }

    fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.calls() as f64 / secs
        } else {
            0.0
        }
    }

    /// One JSON object.
    pub(crate) fn json(&self, target: &str, plan: &Plan) -> String {
        let latency = self.latency_ms.map(
            |(p50, p99, max)| json!({ "p50": round(p50), "p99": round(p99), "max": round(max) }),
        );
        json!({
            "target": target,
            "calls": self.calls(),
            "ok": self.tally.ok,
            "failed": self.tally.failed,
            "by_backend": self.tally.by_backend,
            "failed_by_code": self.tally.failed_by_code,
            "errors": self.tally.errors,
            "latency_ms": latency,
            "duration_ms": round(self.elapsed.as_secs_f64() * 1000.0),
            "calls_per_second": round(self.rate()),
            "concurrency": plan.concurrency,
        })
        .to_string()
    }

    /// The human summary.
    pub(crate) fn text(&self, target: &str, plan: &Plan) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} calls to {target} in {:.2}s ({:.0} calls/s, concurrency {}): {} ok, {} failed",
            self.calls(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            plan.concurrency,
            self.tally.ok,
            self.tally.failed
        );
        if !self.tally.by_backend.is_empty() {
            out.push_str("by backend:\n");
            let width = self
                .tally
                .by_backend
                .keys()
                .map(String::len)
                .max()
                .unwrap_or(0);
            for (backend, n) in &self.tally.by_backend {
                let share = 100.0 * *n as f64 / self.tally.ok.max(1) as f64;
                let _ = writeln!(out, "  {backend:<width$}  {n:>8}  {share:5.1}%");
            }
        }
        if !self.tally.failed_by_code.is_empty() {
            out.push_str("failures by code:\n");
            for (code, n) in &self.tally.failed_by_code {
                let _ = writeln!(out, "  {code:<20}  {n:>8}");
            }
            out.push_str("errors:\n");
            for (message, n) in &self.tally.errors {
                let _ = writeln!(out, "  {n:>8} x {message}");
            }
        }
        if let Some((p50, p99, max)) = self.latency_ms {
            let _ = writeln!(
                out,
                "latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
            );
        }
        out
    }
}

/// p50, p99 and max in milliseconds, or `None` without calls.
fn latency_figures(us: &Histogram<u64>) -> Option<(f64, f64, f64)> {
    if us.is_empty() {
        return None;
    }
    // Each recorded value stands for a range of equivalent values; report
    // the range's low end, so a value recorded exactly reads back exactly.
    let ms = |value: u64| us.lowest_equivalent(value) as f64 / 1000.0;
    Some((
        ms(us.value_at_quantile(0.50)),
        ms(us.value_at_quantile(0.99)),
        ms(us.max()),
    ))
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_the_histogram() {
        let mut tally = Tally::default();
        for ms in 1..=100 {
            tally.record(Duration::from_millis(ms), Ok("x".into()));
        }
        let (p50, p99, max) = latency_figures(&tally.latency_us).expect("calls");
        // Within the histogram's 0.1 % precision.
        assert!((p50 - 50.0).abs() <= 0.05, "{p50}");
        assert!((p99 - 99.0).abs() <= 0.1, "{p99}");
        assert!((max - 100.0).abs() <= 0.1, "{max}");
        assert!(latency_figures(&Tally::default().latency_us).is_none());
    }

    #[test]
    fn a_tally_does_not_grow_with_calls() {
        let mut tally = Tally::default();
        tally.record(Duration::from_millis(5), Ok("x".into()));
        let size = tally.latency_us.distinct_values();
        for _ in 0..100_000 {
            tally.record(Duration::from_millis(5), Ok("x".into()));
        }
        assert_eq!(tally.latency_us.distinct_values(), size);
        assert_eq!(tally.calls(), 100_001);
    }

    #[test]
    fn counts_backends_codes_and_messages() {
        let mut a = Tally::default();
        a.record(Duration::from_millis(1), Ok("x".into()));
        a.record(
            Duration::from_millis(3),
            Err(tonic::Status::unavailable("gone")),
        );
        let mut b = Tally::default();
        b.record(Duration::from_millis(2), Ok("y".into()));
        // The same cause with other times in its suffix: one group.
        b.record(
            Duration::from_millis(2),
            Err(tonic::Status::unavailable("gone [waited 2.0s]")),
        );
        a.merge(b);
        let report = Report::new(a, Duration::from_secs(1));
        let plan = Plan {
            calls: Some(4),
            duration: None,
            concurrency: 2,
            rate: None,
            name: "n".into(),
            delay_ms: 0,
            timeout: Duration::from_secs(1),
            progress: None,
        };
        let value: serde_json::Value =
            serde_json::from_str(&report.json("greeter", &plan)).expect("json");
        assert_eq!(value["ok"], 2);
        assert_eq!(value["failed"], 2);
        assert_eq!(value["by_backend"], json!({"x": 1, "y": 1}));
        assert_eq!(value["failed_by_code"], json!({"UNAVAILABLE": 2}));
        assert_eq!(value["errors"], json!({"UNAVAILABLE: gone": 2}));
        assert_eq!(value["latency_ms"]["p50"], 2.0);
        assert_eq!(value["latency_ms"]["max"], 3.0);
        let text = report.text("greeter", &plan);
        assert!(text.contains("4 calls to greeter"), "{text}");
        assert!(text.contains("UNAVAILABLE"), "{text}");
    }
}
