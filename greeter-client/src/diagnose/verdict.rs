//! What `diagnose` found: one row per check (naming a [`Cause`] when it
//! failed), and the table and JSON object it prints.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::cause::Cause;

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// As it should be.
    Ok,
    /// Works, but worth knowing (some endpoints not ready, no health
    /// service).
    Warn,
    /// Calls fail, or some do, because of this.
    Fail,
    /// Not checked (an earlier step failed, or nothing to check).
    Skip,
    /// Seen, not judged (endpoints that take no calls anyway).
    Info,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
            Outcome::Info => "info",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    /// Which step: `control plane`, `service`, `port`, `endpoints`,
    /// `endpoint`, `call`, ...
    pub(crate) step: &'static str,
    /// What was checked: an address, a name, an endpoint.
    pub(crate) subject: String,
    pub(crate) outcome: Outcome,
    /// What was found.
    pub(crate) detail: String,
    /// With [`Outcome::Fail`]: the cause.
    pub(crate) cause: Option<Cause>,
}

impl Check {
    /// A row that is not a failure.
    pub(crate) fn new(
        step: &'static str,
        subject: impl Into<String>,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            step,
            subject: subject.into(),
            outcome,
            detail: detail.into(),
            cause: None,
        }
    }

    /// A failed check and its cause.
    pub(crate) fn fail(
        step: &'static str,
        subject: impl Into<String>,
        cause: Cause,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            cause: Some(cause),
            ..Self::new(step, subject, Outcome::Fail, detail)
        }
    }
}

/// Endpoint counts by the control plane's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) ready: usize,
    pub(crate) not_ready: usize,
    pub(crate) draining: usize,
}

/// Everything found.
#[derive(Debug, Clone)]
pub(crate) struct Diagnosis {
    /// The target as given.
    pub(crate) target: String,
    /// The control plane's address, as used.
    pub(crate) control_plane: String,
    pub(crate) checks: Vec<Check>,
    /// Endpoint counts, once the service resolved.
    pub(crate) counts: Option<Counts>,
    /// One JSON object per endpoint looked at.
    pub(crate) endpoints: Vec<Value>,
}

impl Diagnosis {
    pub(crate) fn new(target: &str, control_plane: &str) -> Self {
        Self {
            target: target.to_owned(),
            control_plane: control_plane.to_owned(),
            checks: Vec::new(),
            counts: None,
            endpoints: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Whether a check failed so far.
    pub(crate) fn failed(&self) -> bool {
        self.first_failure().is_some()
    }

    /// The first failed check: the verdict.
    pub(crate) fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.outcome == Outcome::Fail)
    }

    /// `healthy`, or the first cause's code.
    pub(crate) fn verdict(&self) -> &'static str {
        self.first_failure()
            .and_then(|check| check.cause)
            .map_or("healthy", Cause::code)
    }

    fn warnings(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Warn)
            .count()
    }

    /// The one-line summary under the table.
    fn summary(&self) -> String {
        match self.first_failure() {
            Some(check) => format!("{}: {}", check.subject, check.detail),
            None => match self.warnings() {
                0 => format!("{} takes calls", self.target),
                n => format!(
                    "{} takes calls ({n} warning{})",
                    self.target,
                    if n == 1 { "" } else { "s" }
                ),
            },
        }
    }

    /// The table and the verdict.
    pub(crate) fn text(&self) -> String {
        let mut out = format!(
            "diagnose {} through the control plane at {}\n\n",
            self.target, self.control_plane
        );
        let header = ("STEP", "SUBJECT", "RESULT");
        let step_width = self
            .checks
            .iter()
            .map(|c| c.step.len())
            .chain([header.0.len()])
            .max()
            .unwrap_or(0);
        let subject_width = self
            .checks
            .iter()
            .map(|c| c.subject.chars().count())
            .chain([header.1.len()])
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<step_width$}  {:<subject_width$}  {:<6}  DETAIL",
            header.0, header.1, header.2
        );
        for check in &self.checks {
            let _ = writeln!(
                out,
                "{:<step_width$}  {:<subject_width$}  {:<6}  {}",
                check.step,
                check.subject,
                check.outcome.word(),
                check.detail
            );
        }
        out.push('\n');
        match self.first_failure() {
            Some(check) => {
                let cause = check.cause.unwrap_or(Cause::CallFailed);
                let _ = writeln!(out, "verdict: {}: {}", cause.code(), self.summary());
                let _ = writeln!(out, "fix: {}", cause.fix());
            }
            None => {
                let _ = writeln!(out, "verdict: healthy: {}", self.summary());
            }
        }
        out
    }

    /// One JSON object.
    pub(crate) fn json(&self) -> Value {
        let failure = self.first_failure();
        json!({
            "target": self.target,
            "control_plane": self.control_plane,
            "verdict": self.verdict(),
            "healthy": failure.is_none(),
            "summary": self.summary(),
            "fix": failure.and_then(|c| c.cause).map(Cause::fix),
            "warnings": self.warnings(),
            "counts": self.counts.map(|c| json!({
                "ready": c.ready,
                "not_ready": c.not_ready,
                "draining": c.draining,
            })),
            "checks": self.checks.iter().map(|c| json!({
                "step": c.step,
                "subject": c.subject,
                "result": c.outcome.word().to_ascii_lowercase(),
                "detail": c.detail,
                "cause": c.cause.map(Cause::code),
            })).collect::<Vec<_>>(),
            "endpoints": self.endpoints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_the_verdict() {
        let mut d = Diagnosis::new("greeter:80", "http://cp:18000");
        d.push(Check::new(
            "control plane",
            "http://cp:18000",
            Outcome::Ok,
            "ADS",
        ));
        assert_eq!(d.verdict(), "healthy");
        d.push(Check::new(
            "endpoints",
            "greeter:80",
            Outcome::Warn,
            "1 not ready",
        ));
        assert_eq!(d.verdict(), "healthy");
        assert!(
            d.text()
                .contains("verdict: healthy: greeter:80 takes calls (1 warning)")
        );
        d.push(Check::fail(
            "endpoint",
            "a (10.0.0.1:8080)",
            Cause::EndpointHttp1Only,
            "HTTP/1.1",
        ));
        d.push(Check::fail(
            "call",
            "/x.Y/Z",
            Cause::MethodUnimplemented,
            "UNIMPLEMENTED",
        ));
        assert_eq!(d.verdict(), "endpoint_http1_only");
        let text = d.text();
        assert!(
            text.contains("verdict: endpoint_http1_only: a (10.0.0.1:8080): HTTP/1.1\nfix: "),
            "{text}"
        );
        let json = d.json();
        assert_eq!(json["healthy"], false);
        assert_eq!(json["checks"][2]["result"], "fail");
        assert_eq!(json["checks"][3]["cause"], "method_unimplemented");
        assert_eq!(json["warnings"], 1);
    }
}
