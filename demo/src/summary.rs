//! The end of the demo: a table per phase (calls, failures, the split over
//! backends), the verdict, and the same as JSON for scripts and tests.
//!
//! The verdict: the demo passes when every phase ran and the graceful
//! phases (2, 3, 4 and 6) failed no call. Phase 1 shows a problem, and phase
//! 5 a crash, whose failures are reported but expected.

use serde_json::{Map, Value, json};

use crate::phases::PHASES;
use crate::scenario::Outcome;
use crate::stats::{Segment, Tally};

/// One phase's numbers.
#[derive(Debug)]
pub(crate) struct PhaseReport {
    /// 1-based.
    pub(crate) number: usize,
    /// All its segments' calls.
    pub(crate) tally: Tally,
    /// Its segments.
    pub(crate) segments: Vec<Segment>,
    /// What it recorded.
    pub(crate) facts: Map<String, Value>,
}

/// The whole run.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Phases that ran (completely or not).
    pub(crate) phases: Vec<PhaseReport>,
    /// Phases that ran to the end.
    pub(crate) completed: usize,
    /// Why the run stopped early, if it did.
    pub(crate) error: Option<String>,
}

impl Summary {
    /// Groups the outcome's segments by phase.
    pub(crate) fn new(mut outcome: Outcome, error: Option<String>) -> Self {
        let mut phases: Vec<PhaseReport> = Vec::new();
        for segment in outcome.segments {
            if phases.last().is_none_or(|p| p.number != segment.phase) {
                phases.push(PhaseReport {
                    number: segment.phase,
                    tally: Tally::default(),
                    segments: Vec::new(),
                    facts: outcome.facts.remove(&segment.phase).unwrap_or_default(),
                });
            }
            if let Some(phase) = phases.last_mut() {
                phase.tally.merge(&segment.tally);
                phase.segments.push(segment);
            }
        }
        Self {
            phases,
            completed: outcome.completed,
            error,
        }
    }

    /// Whether every phase ran and no graceful phase failed a call.
    pub(crate) fn passed(&self) -> bool {
        self.error.is_none()
            && self.completed == PHASES.len()
            && self
                .phases
                .iter()
                .filter(|p| is_graceful(p.number))
                .all(|p| p.tally.failed == 0)
    }

    /// The table and the verdict.
    pub(crate) fn text(&self) -> String {
        let mut text = String::from("\n━━ Summary\n");
        text.push_str(&format!(
            "   {:<3} {:<24} {:>7} {:>7}  {}\n",
            "#", "phase", "calls", "failed", "calls per backend"
        ));
        for phase in &self.phases {
            let key = PHASES.get(phase.number - 1).map_or("", |p| p.key);
            let split: Vec<String> = phase
                .tally
                .by_backend
                .iter()
                .map(|(b, n)| format!("{b} {n}"))
                .collect();
            let mark = if is_graceful(phase.number) && phase.tally.failed > 0 {
                " ✗"
            } else {
                ""
            };
            text.push_str(&format!(
                "   {:<3} {:<24} {:>7} {:>7}{mark}  {}\n",
                phase.number,
                key,
                phase.tally.calls(),
                phase.tally.failed,
                split.join(" · ")
            ));
            for (code, n) in &phase.tally.failed_by_code {
                text.push_str(&format!("         {n} failed with {code}\n"));
            }
            for (message, n) in &phase.tally.errors {
                text.push_str(&format!("         {n} × \"{message}\"\n"));
            }
        }
        text.push('\n');
        if let Some(phase) = self.phases.iter().find(|p| p.number == 1) {
            let busy = phase.tally.by_backend.len();
            text.push_str(&format!(
                "   Phase 1 put its calls on {busy} backend(s): one connection, one backend.\n"
            ));
        }
        if let Some(phase) = self.phases.iter().find(|p| p.number == 5) {
            let in_flight = phase.facts.get("in_flight_at_kill").and_then(Value::as_u64);
            text.push_str(&format!(
                "   Phase 5 failed {} call(s): {} in flight (across all backends) when the backend was killed,\n   \
                 plus any written to its connection before the client saw it close.\n",
                phase.tally.failed,
                in_flight.map_or_else(|| "?".to_owned(), |n| n.to_string())
            ));
        }
        if let Some(error) = &self.error {
            text.push_str(&format!("   The demo stopped early: {error}\n"));
        }
        if self.passed() {
            text.push_str("   PASS: the graceful phases (2, 3, 4, 6) failed no call.\n");
        } else {
            text.push_str(
                "   FAIL: a graceful phase (2, 3, 4, 6) failed calls, or the demo did not finish.\n",
            );
        }
        text
    }

    /// The same as one JSON object.
    pub(crate) fn json(&self, rate: f64, quick: bool, seconds: f64) -> Value {
        let phases: Vec<Value> = self
            .phases
            .iter()
            .map(|phase| {
                let info = PHASES.get(phase.number - 1);
                let segments: Vec<Value> = phase
                    .segments
                    .iter()
                    .map(|s| {
                        json!({
                            "label": s.label,
                            "seconds": s.duration.as_secs_f64(),
                            "calls": s.tally.calls(),
                            "failed": s.tally.failed,
                            "by_backend": s.tally.by_backend,
                        })
                    })
                    .collect();
                let connections: Map<String, Value> = phase
                    .tally
                    .connections
                    .iter()
                    .map(|(b, ids)| (b.clone(), json!(ids.len())))
                    .collect();
                json!({
                    "phase": phase.number,
                    "key": info.map(|i| i.key),
                    "title": info.map(|i| i.title),
                    "graceful": is_graceful(phase.number),
                    "calls": phase.tally.calls(),
                    "ok": phase.tally.ok,
                    "failed": phase.tally.failed,
                    "failed_by_code": phase.tally.failed_by_code,
                    "errors": phase.tally.errors,
                    "by_backend": phase.tally.by_backend,
                    "server_connections": connections,
                    "segments": segments,
                    "facts": phase.facts,
                })
            })
            .collect();
        json!({
            "passed": self.passed(),
            "completed_phases": self.completed,
            "error": self.error,
            "rate": rate,
            "quick": quick,
            "seconds": seconds,
            "phases": phases,
        })
    }
}

fn is_graceful(number: usize) -> bool {
    PHASES
        .get(number.wrapping_sub(1))
        .is_some_and(|p| p.graceful)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::stats::Outcome as Call;

    fn segment(phase: usize, ok: u64, failed: u64) -> Segment {
        let mut tally = Tally::default();
        for i in 0..ok {
            tally.record(&Call::Ok {
                backend: format!("b{}", i % 2),
                connection: 1,
            });
        }
        for _ in 0..failed {
            tally.record(&Call::Failed {
                code: tonic::Code::Unavailable,
                message: "x".into(),
            });
        }
        Segment {
            phase,
            label: format!("p{phase}"),
            duration: Duration::from_secs(1),
            tally,
        }
    }

    fn outcome(failures: [u64; 6]) -> Outcome {
        Outcome {
            segments: (1..=6)
                .flat_map(|p| [segment(p, 10, failures[p - 1]), segment(p, 4, 0)])
                .collect(),
            facts: BTreeMap::new(),
            completed: 6,
        }
    }

    #[test]
    fn passes_with_failures_only_in_phases_1_and_5() {
        let summary = Summary::new(outcome([3, 0, 0, 0, 2, 0]), None);
        assert!(summary.passed());
        assert_eq!(summary.phases.len(), 6);
        assert_eq!(summary.phases[0].tally.calls(), 17);
        assert_eq!(summary.phases[4].segments.len(), 2);
        let json = summary.json(200.0, true, 1.0);
        assert_eq!(json["passed"], true);
        assert_eq!(json["phases"][4]["failed"], 2);
        assert_eq!(json["phases"][1]["graceful"], true);
        assert!(summary.text().contains("PASS"));
    }

    #[test]
    fn fails_when_a_graceful_phase_fails_a_call_or_the_run_stops() {
        for phase in [2, 3, 4, 6] {
            let mut failures = [0; 6];
            failures[phase - 1] = 1;
            let summary = Summary::new(outcome(failures), None);
            assert!(!summary.passed(), "phase {phase}");
            assert!(summary.text().contains("FAIL"));
        }
        let mut stopped = outcome([0; 6]);
        stopped.completed = 4;
        assert!(!Summary::new(stopped, None).passed());
        assert!(!Summary::new(outcome([0; 6]), Some("boom".into())).passed());
    }
}
