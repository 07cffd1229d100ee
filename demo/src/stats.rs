//! Counting calls: per segment of the scenario (a phase is one or more
//! segments, such as "greeter-2 out of rotation") and per display window.
//!
//! A call counts in the segment that was current when it started, so a
//! segment's numbers describe what the client did under that segment's
//! conditions even when the call finished a moment later.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Distinct error messages kept per tally.
const MAX_ERROR_MESSAGES: usize = 8;

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered by `backend`, on the server's connection number `connection`.
    Ok {
        /// The reply's `served_by`.
        backend: String,
        /// The reply's `connection_id`.
        connection: u64,
    },
    /// Failed with a status.
    Failed {
        /// The status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
}

/// Counts of calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Calls answered.
    pub(crate) ok: u64,
    /// Calls failed.
    pub(crate) failed: u64,
    /// Calls answered, by backend.
    pub(crate) by_backend: BTreeMap<String, u64>,
    /// Calls failed, by status code name.
    pub(crate) failed_by_code: BTreeMap<String, u64>,
    /// Calls failed, by message (the first few distinct messages).
    pub(crate) errors: BTreeMap<String, u64>,
    /// Server-side connection ids the calls arrived on, by backend.
    pub(crate) connections: BTreeMap<String, BTreeSet<u64>>,
}

impl Tally {
    /// Calls started and finished.
    pub(crate) fn calls(&self) -> u64 {
        self.ok + self.failed
    }

    /// Counts `outcome`.
    pub(crate) fn record(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Ok {
                backend,
                connection,
            } => {
                self.ok += 1;
                *self.by_backend.entry(backend.clone()).or_default() += 1;
                self.connections
                    .entry(backend.clone())
                    .or_default()
                    .insert(*connection);
            }
            Outcome::Failed { code, message } => {
                self.failed += 1;
                *self
                    .failed_by_code
                    .entry(common::error::code_name(*code).to_owned())
                    .or_default() += 1;
                if self.errors.len() < MAX_ERROR_MESSAGES || self.errors.contains_key(message) {
                    *self.errors.entry(message.clone()).or_default() += 1;
                }
            }
        }
    }

    /// Adds `other`'s counts.
    pub(crate) fn merge(&mut self, other: &Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        for (backend, n) in &other.by_backend {
            *self.by_backend.entry(backend.clone()).or_default() += n;
        }
        for (code, n) in &other.failed_by_code {
            *self.failed_by_code.entry(code.clone()).or_default() += n;
        }
        for (message, n) in &other.errors {
            if self.errors.len() < MAX_ERROR_MESSAGES || self.errors.contains_key(message) {
                *self.errors.entry(message.clone()).or_default() += n;
            }
        }
        for (backend, ids) in &other.connections {
            self.connections
                .entry(backend.clone())
                .or_default()
                .extend(ids);
        }
    }
}

/// A stretch of the scenario with its own counts.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// The phase it belongs to (1-based).
    pub(crate) phase: usize,
    /// What was going on.
    pub(crate) label: String,
    /// How long it lasted (so far, for the current one).
    pub(crate) duration: Duration,
    /// Calls started during it.
    pub(crate) tally: Tally,
}

#[derive(Debug, Default)]
struct Inner {
    segments: Vec<Segment>,
    started: Option<Instant>,
    window: Tally,
    in_flight: u64,
}

/// Where the load generator reports calls. Shared as `Arc<Recorder>`.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    inner: Mutex<Inner>,
}

impl Recorder {
    /// An empty recorder.
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the current segment and starts one labelled `label` in `phase`.
    pub(crate) fn segment(&self, phase: usize, label: impl Into<String>) {
        let mut inner = self.lock();
        let now = Instant::now();
        close(&mut inner, now);
        inner.segments.push(Segment {
            phase,
            label: label.into(),
            duration: Duration::ZERO,
            tally: Tally::default(),
        });
        inner.started = Some(now);
    }

    /// A call starts: returns the segment it counts in.
    pub(crate) fn start_call(&self) -> Option<usize> {
        let mut inner = self.lock();
        inner.in_flight += 1;
        inner.segments.len().checked_sub(1)
    }

    /// A call started in `segment` ended with `outcome`.
    pub(crate) fn finish_call(&self, segment: Option<usize>, outcome: &Outcome) {
        let mut inner = self.lock();
        inner.in_flight = inner.in_flight.saturating_sub(1);
        inner.window.record(outcome);
        if let Some(segment) = segment.and_then(|i| inner.segments.get_mut(i)) {
            segment.tally.record(outcome);
        }
    }

    /// Calls started and not finished.
    pub(crate) fn in_flight(&self) -> u64 {
        self.lock().in_flight
    }

    /// Calls finished since the last call of this method.
    pub(crate) fn take_window(&self) -> Tally {
        std::mem::take(&mut self.lock().window)
    }

    /// Every segment so far; the current one's duration is up to now.
    pub(crate) fn segments(&self) -> Vec<Segment> {
        let mut inner = self.lock();
        let now = Instant::now();
        if let (Some(started), Some(last)) = (inner.started, inner.segments.len().checked_sub(1)) {
            inner.segments[last].duration = now - started;
        }
        inner.segments.clone()
    }

    /// Counts of the current segment.
    pub(crate) fn current(&self) -> Tally {
        self.lock()
            .segments
            .last()
            .map(|s| s.tally.clone())
            .unwrap_or_default()
    }
}

fn close(inner: &mut Inner, now: Instant) {
    if let (Some(started), Some(last)) = (inner.started, inner.segments.last_mut()) {
        last.duration = now - started;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(backend: &str, connection: u64) -> Outcome {
        Outcome::Ok {
            backend: backend.into(),
            connection,
        }
    }

    #[test]
    fn calls_count_in_the_segment_they_started_in() {
        let recorder = Recorder::new();
        recorder.segment(1, "first");
        let early = recorder.start_call();
        recorder.segment(1, "second");
        let late = recorder.start_call();
        assert_eq!(recorder.in_flight(), 2);
        recorder.finish_call(late, &ok("b", 1));
        recorder.finish_call(
            early,
            &Outcome::Failed {
                code: tonic::Code::Unavailable,
                message: "gone".into(),
            },
        );
        assert_eq!(recorder.in_flight(), 0);
        let segments = recorder.segments();
        assert_eq!(segments[0].tally.failed, 1);
        assert_eq!(segments[0].tally.failed_by_code["UNAVAILABLE"], 1);
        assert_eq!(segments[1].tally.by_backend["b"], 1);
        let window = recorder.take_window();
        assert_eq!(window.calls(), 2);
        assert_eq!(recorder.take_window().calls(), 0);
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = Tally::default();
        a.record(&ok("x", 1));
        let mut b = Tally::default();
        b.record(&ok("x", 2));
        b.record(&ok("y", 1));
        a.merge(&b);
        assert_eq!(a.calls(), 3);
        assert_eq!(a.by_backend["x"], 2);
        assert_eq!(a.connections["x"].len(), 2);
    }

    #[test]
    fn keeps_only_a_few_distinct_messages() {
        let mut tally = Tally::default();
        for i in 0..20 {
            tally.record(&Outcome::Failed {
                code: tonic::Code::Internal,
                message: format!("error {i}"),
            });
        }
        assert_eq!(tally.failed, 20);
        assert_eq!(tally.errors.len(), MAX_ERROR_MESSAGES);
    }
}
