//! Where services come from, and the handle sources use to report them.
//!
//! A source (static configuration, Kubernetes) runs as its own task and
//! tells the [`Store`](crate::store::Store) about services through a
//! [`SourceHandle`]: a full replacement after a (re-)sync, single-service
//! upserts and removals as things change, its traffic routes, and its own
//! health. The handle
//! applies each call synchronously: when it returns, the new state is
//! published to every xDS stream and to the status API.
//!
//! Rules for sources:
//! - Report a full set with [`SourceHandle::replace_all`] only once it is
//!   complete (never an empty or partial set during a re-list).
//! - Services are in the model's terms ([`crate::model`]): IP addresses,
//!   resolved target ports, endpoint states. Duplicates are fine; the store
//!   normalises.
//! - Say when the source cannot be reached ([`SourceState::Disconnected`])
//!   or its input was rejected ([`SourceState::Degraded`]); the last state
//!   keeps being served either way.
//!
//! The handle and the source's status types belong to the store, which
//! keeps that state; they are named here too, for sources.

pub mod kubernetes;
pub mod static_source;

use std::time::Duration;

pub use crate::store::{Rejected, SourceHandle, SourceKind, SourceState, SourceStatus, Stamped};

/// A duration in humantime syntax (`500ms`, `2s`, `1m`) that is not zero;
/// the value parser of the sources' duration flags.
pub(crate) fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(duration)
}
