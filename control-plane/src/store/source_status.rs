//! The source's health as the store keeps and publishes it, and the
//! services it refused.

use std::fmt;
use std::time::SystemTime;

use crate::model::ModelError;

/// Which kind of source feeds the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `--static` flags and/or `--static-file`, with health probing.
    Static,
    /// Services and EndpointSlices from the Kubernetes API.
    Kubernetes,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Static => "static",
            Self::Kubernetes => "kubernetes",
        })
    }
}

/// How the source is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// The first full sync has not finished.
    Starting,
    /// In sync.
    Connected,
    /// Running, but the latest input was rejected; the last good state
    /// stays in force.
    Degraded,
    /// Cannot reach its origin; the last known state keeps being served.
    Disconnected,
}

impl SourceState {
    /// Every state.
    pub const ALL: [Self; 4] = [
        Self::Starting,
        Self::Connected,
        Self::Degraded,
        Self::Disconnected,
    ];

    /// The state as a metrics label (the same word as shown by `status`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Connected => "connected",
            Self::Degraded => "degraded",
            Self::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for SourceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Something that happened, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// What happened.
    pub text: String,
    /// When.
    pub at: SystemTime,
}

impl Stamped {
    /// `text`, now.
    pub fn now(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            at: SystemTime::now(),
        }
    }
}

/// The source's health as shown by the status API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// Which source.
    pub kind: SourceKind,
    /// Where it reads from (a file path, an API server URL), for people.
    pub detail: String,
    /// Its state.
    pub state: SourceState,
    /// When `state` last changed.
    pub state_since: SystemTime,
    /// The latest error since the last success, if any.
    pub last_error: Option<Stamped>,
    /// The latest change applied.
    pub last_event: Option<Stamped>,
    /// When the source last stopped being `Connected` (it was in sync
    /// until then); `None` while it never was. While it is `Connected` it
    /// is in sync now.
    pub in_sync_until: Option<SystemTime>,
}

impl SourceStatus {
    /// A source that has just started.
    pub fn starting(kind: SourceKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            state: SourceState::Starting,
            state_since: SystemTime::now(),
            last_error: None,
            last_event: None,
            in_sync_until: None,
        }
    }
}

/// A service a source reported that the store refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The service's name as reported.
    pub name: String,
    /// Why.
    pub error: ModelError,
}
