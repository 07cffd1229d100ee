//! What scenario 1 records: which client subscribed, which change was
//! made, one row per (control plane, client, size, change), and the trial
//! outcomes a row summarises.

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::peers::ControlPlane;
use crate::stats::Summary;

/// Which client the subscribers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SubscriberKind {
    /// Raw ADS streams that decode every ClusterLoadAssignment.
    RawAds,
    /// xds-balancer `Channel`s.
    Channel,
}

/// One change, or a burst of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Change {
    /// One endpoint's readiness toggles.
    Single,
    /// Several endpoints toggle, one upsert each, back to back.
    Burst,
}

/// One row of the results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row {
    /// Where the change came from.
    pub(crate) source: String,
    /// The control plane measured (results from before peers were
    /// measured are all ours).
    #[serde(default)]
    pub(crate) control_plane: ControlPlane,
    /// Which client subscribed.
    pub(crate) client: SubscriberKind,
    /// Subscribers.
    pub(crate) subscribers: usize,
    /// Endpoints of the service.
    pub(crate) endpoints: usize,
    /// ADS streams per TCP connection.
    pub(crate) streams_per_connection: usize,
    /// Single change or burst.
    pub(crate) change: Change,
    /// Upserts per trial.
    pub(crate) changes_per_trial: usize,
    /// Trials run.
    pub(crate) trials: usize,
    /// (subscriber, trial) pairs that never saw the new set within the
    /// trial's time limit.
    pub(crate) missed: usize,
    /// From the (last) change to each subscriber holding the new set,
    /// over every subscriber and trial, in ms.
    pub(crate) per_subscriber_ms: Summary,
    /// Bursts: the same from the first change of the burst.
    pub(crate) from_first_ms: Option<Summary>,
    /// Per trial: from the (last) change to the last subscriber, in ms.
    pub(crate) to_last_ms: Summary,
    /// ClusterLoadAssignment updates each subscriber took per trial.
    pub(crate) updates_per_subscriber: Option<f64>,
    /// Control-plane CPU time (user + system) per trial, in ms.
    pub(crate) cp_cpu_ms_per_trial: Option<f64>,
    /// The control plane's own view (its update-latency histogram, change
    /// applied → response handed to HTTP/2): mean over every response, ms.
    pub(crate) cp_written_mean_ms: Option<f64>,
    /// Per trial, the histogram bucket bound under which the last response
    /// was handed to HTTP/2 (p50 and max over trials), in ms.
    pub(crate) cp_written_last_ms: Option<Summary>,
    /// CPU time the subscribers' process spent per subscriber per trial
    /// (receiving, decoding, ACKing; for channels also reconnecting to an
    /// endpoint that came back), in µs.
    pub(crate) subscriber_cpu_us: Option<f64>,
    /// Control-plane resident memory per idle subscriber, in KiB.
    pub(crate) cp_memory_per_subscriber_kib: Option<f64>,
    /// Seconds until every subscriber had the initial set.
    pub(crate) setup_s: f64,
}

/// Everything scenario 1 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Results {
    /// Rows driven by `SourceHandle::upsert` in the control-plane host.
    pub(crate) rows: Vec<Row>,
    /// Rows driven by a backend's health flip, end to end.
    pub(crate) e2e: Vec<Row>,
    /// The open-files limit subscriber connections had to fit in.
    pub(crate) fd_limit: u64,
    /// The peer control planes measured, with versions.
    #[serde(default)]
    pub(crate) peers: Vec<String>,
    /// Peers that could not run here, and why.
    #[serde(default)]
    pub(crate) skipped_peers: Vec<String>,
}

/// One trial's arrivals, relative to its changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    from_last_ms: Vec<f64>,
    from_first_ms: Vec<f64>,
    to_last_ms: Option<f64>,
    missed: usize,
}

impl Outcome {
    pub(super) fn from_arrivals(arrivals: &[Option<u64>], first_ns: u64, last_ns: u64) -> Self {
        let mut outcome = Self::default();
        for arrival in arrivals {
            match arrival {
                Some(at) => {
                    outcome.from_last_ms.push(clock::ms_between(last_ns, *at));
                    outcome.from_first_ms.push(clock::ms_between(first_ns, *at));
                }
                None => outcome.missed += 1,
            }
        }
        if outcome.missed == 0 {
            outcome.to_last_ms = outcome.from_last_ms.iter().copied().reduce(f64::max);
        }
        outcome
    }
}

/// Per-subscriber (from the last change), per-subscriber from the first
/// change, time to the last subscriber, and misses, over `outcomes`.
pub(super) fn trial_summary(outcomes: &[Outcome]) -> (Summary, Summary, Summary, usize) {
    let all = |f: fn(&Outcome) -> &Vec<f64>| -> Vec<f64> {
        outcomes.iter().flat_map(|o| f(o).iter().copied()).collect()
    };
    (
        Summary::of(all(|o| &o.from_last_ms)),
        Summary::of(all(|o| &o.from_first_ms)),
        Summary::of(outcomes.iter().filter_map(|o| o.to_last_ms).collect()),
        outcomes.iter().map(|o| o.missed).sum(),
    )
}
