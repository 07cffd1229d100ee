//! Saying why a call found nothing to call.
//!
//! Every failure for lack of an endpoint is UNAVAILABLE with a message an
//! operator can act on: the service does not exist, no endpoint is ready
//! (with how many are not ready or draining), none could be connected (with
//! the last connect error), or discovery is still waiting, plus the control
//! plane's state (unreachable since when, last update when, last rejected
//! update).
//!
//! What changes from one failure to the next (how long the call waited, for
//! how long the control plane has been away, how old the last update is)
//! comes last, in one bracketed suffix: `... [waited 2.0s; last update 15s
//! ago]`. The text before it stays the same for failures of the same cause,
//! so tools that group errors by message (the CLI's `--json` does, by the
//! part before the bracket) see one group per cause.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tonic::Status;

use crate::view::{ControlPlaneStatus, ServiceStatus};

/// Endpoint counts by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Connected and taking calls.
    pub(crate) ready: usize,
    /// Ready per the control plane, connection being set up.
    pub(crate) connecting: usize,
    /// Ready per the control plane, connection failed or lost.
    pub(crate) ejected: usize,
    /// Connected, health service says NOT_SERVING.
    pub(crate) not_serving: usize,
    /// DRAINING per the control plane.
    pub(crate) draining: usize,
    /// Not ready per the control plane.
    pub(crate) not_ready: usize,
}

/// Everything needed to explain an empty picker.
#[derive(Debug, Clone)]
pub(crate) struct Unavailable {
    pub(crate) target: Arc<str>,
    /// The cluster, named in messages when the target's routes lead to
    /// several.
    pub(crate) cluster: Option<Arc<str>>,
    pub(crate) service: ServiceStatus,
    pub(crate) counts: Counts,
    /// Read when a message is made, so its times are current.
    pub(crate) control_plane: watch::Receiver<ControlPlaneStatus>,
    pub(crate) last_connect_error: Option<String>,
}

impl Unavailable {
    /// A status to fail with at once, without waiting: the service does not
    /// exist or cannot be used.
    pub(crate) fn fail_fast(&self) -> Option<Status> {
        match self.service {
            ServiceStatus::DoesNotExist(_) | ServiceStatus::Unusable(_) => {
                Some(self.status(Duration::ZERO))
            }
            _ => None,
        }
    }

    /// Whether an endpoint may become callable without news from the
    /// control plane (a connection attempt is under way), or the first
    /// answer from a reachable control plane is still awaited.
    pub(crate) fn pending(&self) -> bool {
        match self.service {
            ServiceStatus::Resolved { .. } => self.counts.connecting > 0,
            ServiceStatus::Waiting(_) => self.control_plane.borrow().unreachable_since.is_none(),
            _ => false,
        }
    }

    /// The UNAVAILABLE status for a call that waited `waited`.
    pub(crate) fn status(&self, waited: Duration) -> Status {
        Status::unavailable(self.message(waited, SystemTime::now()))
    }

    pub(crate) fn message(&self, waited: Duration, now: SystemTime) -> String {
        let cp = self.control_plane.borrow().clone();
        self.compose(&cp, waited, now)
    }

    fn compose(&self, cp: &ControlPlaneStatus, waited: Duration, now: SystemTime) -> String {
        let target = &self.target;
        let subject = match &self.cluster {
            Some(cluster) => format!("{target:?} (cluster {cluster:?})"),
            None => format!("{target:?}"),
        };
        let uri = &cp.uri;
        let c = self.counts;
        let mut message = match &self.service {
            ServiceStatus::DoesNotExist(what) => {
                return format!(
                    "service {target:?} does not exist: the control plane at {uri} has no {what}"
                );
            }
            ServiceStatus::Unusable(reason) => {
                format!("service {target:?} cannot be used: {reason}")
            }
            ServiceStatus::Waiting(what) => {
                format!(
                    "no endpoints for {subject} yet: waiting for {what} from the control plane at {uri}"
                )
            }
            ServiceStatus::Resolved { .. }
                if c.ready + c.connecting + c.ejected + c.not_serving == 0 =>
            {
                format!(
                    "no ready endpoints for {subject}: 0 ready, {} not ready, {} draining",
                    c.not_ready, c.draining
                )
            }
            ServiceStatus::Resolved { .. } => {
                let ready = c.ready + c.connecting + c.ejected + c.not_serving;
                let mut text = format!(
                    "no reachable endpoints for {subject}: {ready} ready per the control plane \
                     but none takes calls ({} connecting, {} failing, {} not serving; {} not \
                     ready, {} draining)",
                    c.connecting, c.ejected, c.not_serving, c.not_ready, c.draining
                );
                if let Some(error) = &self.last_connect_error {
                    let _ = write!(text, "; last connect error: {error}");
                }
                text
            }
        };
        // What changes from one call to the next goes in the suffix.
        let mut times = Vec::new();
        if !waited.is_zero() {
            times.push(format!("waited {}", ago(waited)));
        }
        if !cp.connected {
            match cp.unreachable_since {
                Some(since) => {
                    message.push_str(&format!("; control plane {uri} unreachable"));
                    times.push(format!(
                        "control plane unreachable since {} ({} ago)",
                        humantime::format_rfc3339_seconds(since),
                        ago(now.duration_since(since).unwrap_or_default())
                    ));
                }
                None => {
                    let _ = write!(message, "; not connected to the control plane {uri} yet");
                }
            }
            if let Some(error) = &cp.last_error {
                let _ = write!(message, ": {error}");
            }
        }
        match cp.last_update {
            Some(at) => times.push(format!(
                "last update {} ago",
                ago(now.duration_since(at).unwrap_or_default())
            )),
            None => message.push_str("; no update received yet"),
        }
        if let Some(nack) = &cp.last_nack {
            let _ = write!(message, "; last rejected update: {nack}");
        }
        if !times.is_empty() {
            let _ = write!(message, " [{}]", times.join("; "));
        }
        message
    }
}

/// A duration for humans: whole seconds above 10 s, milliseconds below 1 s.
fn ago(elapsed: Duration) -> String {
    if elapsed >= Duration::from_secs(10) {
        humantime::format_duration(Duration::from_secs(elapsed.as_secs())).to_string()
    } else if elapsed >= Duration::from_secs(1) {
        format!("{:.1}s", elapsed.as_secs_f64())
    } else {
        format!("{}ms", elapsed.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected() -> ControlPlaneStatus {
        ControlPlaneStatus {
            connected: true,
            last_update: Some(SystemTime::UNIX_EPOCH),
            ..ControlPlaneStatus::new("http://cp:18000")
        }
    }

    fn why_with(service: ServiceStatus, counts: Counts, cp: ControlPlaneStatus) -> Unavailable {
        Unavailable {
            target: "greeter".into(),
            cluster: None,
            service,
            counts,
            control_plane: watch::channel(cp).1,
            last_connect_error: None,
        }
    }

    fn why(service: ServiceStatus, counts: Counts) -> Unavailable {
        why_with(service, counts, connected())
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn names_a_missing_service() {
        let w = why(
            ServiceStatus::DoesNotExist("listener \"greeter\"".into()),
            Counts::default(),
        );
        let message = w.message(Duration::ZERO, at(5));
        assert_eq!(
            message,
            "service \"greeter\" does not exist: the control plane at http://cp:18000 has no listener \"greeter\""
        );
        assert!(w.fail_fast().is_some());
    }

    #[test]
    fn counts_endpoints_that_are_not_ready() {
        let w = why(
            ServiceStatus::Resolved {
                cluster: "greeter".into(),
                tls: false,
            },
            Counts {
                not_ready: 2,
                draining: 1,
                ..Counts::default()
            },
        );
        let message = w.message(Duration::from_millis(300), at(3));
        assert_eq!(
            message,
            "no ready endpoints for \"greeter\": 0 ready, 2 not ready, 1 draining \
             [waited 300ms; last update 3.0s ago]"
        );
        assert!(w.fail_fast().is_none());
        assert!(!w.pending());
    }

    #[test]
    fn tells_when_the_control_plane_went_away() {
        let w = why_with(
            ServiceStatus::Waiting("listener \"greeter\"".into()),
            Counts::default(),
            ControlPlaneStatus {
                unreachable_since: Some(at(100)),
                last_error: Some("connection refused".into()),
                ..ControlPlaneStatus::new("http://cp:18000")
            },
        );
        let message = w.message(Duration::from_secs(2), at(142));
        assert_eq!(
            message,
            "no endpoints for \"greeter\" yet: waiting for listener \"greeter\" from the control \
             plane at http://cp:18000; control plane http://cp:18000 unreachable: connection \
             refused; no update received yet [waited 2.0s; control plane unreachable since \
             1970-01-01T00:01:40Z (42s ago)]"
        );
        // The same failure a minute later: the same text before the bracket.
        let later = w.message(Duration::from_secs(5), at(200));
        let stable = |m: &str| m[..m.rfind(" [").expect("suffix")].to_owned();
        assert_eq!(stable(&message), stable(&later));
        assert!(
            !w.pending(),
            "nothing will change while the control plane is away"
        );
    }

    #[test]
    fn gives_the_last_connect_error() {
        let mut w = why(
            ServiceStatus::Resolved {
                cluster: "greeter".into(),
                tls: false,
            },
            Counts {
                ejected: 2,
                ..Counts::default()
            },
        );
        w.last_connect_error = Some("connect to a (127.0.0.1:1) failed: refused".into());
        let message = w.message(Duration::ZERO, at(1));
        assert!(message.starts_with("no reachable endpoints for \"greeter\": 2 ready per the control plane but none takes calls (0 connecting, 2 failing"), "{message}");
        assert!(
            message.contains("last connect error: connect to a (127.0.0.1:1) failed: refused"),
            "{message}"
        );
    }

    #[test]
    fn names_the_cluster_when_routes_lead_to_several() {
        let mut w = why(
            ServiceStatus::Resolved {
                cluster: "v2".into(),
                tls: false,
            },
            Counts {
                not_ready: 1,
                ..Counts::default()
            },
        );
        w.cluster = Some("v2".into());
        let message = w.message(Duration::ZERO, at(1));
        assert!(
            message.starts_with(
                "no ready endpoints for \"greeter\" (cluster \"v2\"): 0 ready, 1 not ready"
            ),
            "{message}"
        );
    }
}
