//! Counting calls and summarizing them, as text or as one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;
use tonic::Code;

use crate::run::Plan;

/// Distinct error messages kept for the summary.
const MAX_ERROR_MESSAGES: usize = 10;

/// Outcomes of calls.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    ok: u64,
    failed: u64,
    by_backend: BTreeMap<String, u64>,
    failed_by_code: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    /// Latency of every call, in microseconds.
    latencies_us: Vec<u32>,
}

impl Tally {
    pub(crate) fn record(&mut self, latency: Duration, result: Result<String, tonic::Status>) {
        self.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        match result {
            Ok(served_by) => {
                self.ok += 1;
                *self.by_backend.entry(served_by).or_default() += 1;
            }
            Err(status) => {
                self.failed += 1;
                *self
                    .failed_by_code
                    .entry(code_name(status.code()))
                    .or_default() += 1;
                let message = format!("{}: {}", code_name(status.code()), status.message());
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
        self.latencies_us.extend(other.latencies_us);
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
    pub(crate) fn new(mut tally: Tally, elapsed: Duration) -> Self {
        tally.latencies_us.sort_unstable();
        let latency_ms = latency_figures(&tally.latencies_us);
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
        self.tally.ok + self.tally.failed
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

fn latency_figures(sorted_us: &[u32]) -> Option<(f64, f64, f64)> {
    let max = *sorted_us.last()?;
    let ms = |us: u32| f64::from(us) / 1000.0;
    Some((
        ms(percentile(sorted_us, 50.0)),
        ms(percentile(sorted_us, 99.0)),
        ms(max),
    ))
}

/// Nearest-rank percentile of sorted values (not empty).
fn percentile(sorted: &[u32], p: f64) -> u32 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// gRPC's canonical name of a status code.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
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
        b.record(
            Duration::from_millis(2),
            Err(tonic::Status::unavailable("gone")),
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
