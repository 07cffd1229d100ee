//! What one type's subscription holds, and what of a snapshot it sees.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{TypeState, WILDCARD};
use crate::kinds::ResourceType;
use crate::xds::resources::Resource;
use crate::xds::snapshot::ResourceSnapshot;

/// A subscription's names, sorted and without duplicates. (A sorted
/// `Vec`, not a `BTreeSet`: most streams hold one or two names per type,
/// and a B-tree node costs about 300 bytes however few it holds.)
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Names(pub(super) Vec<String>);

impl Names {
    /// `names` without `*`.
    pub(super) fn listed(names: &[String]) -> Self {
        let mut names: Vec<String> = names
            .iter()
            .filter(|name| *name != WILDCARD)
            .cloned()
            .collect();
        names.sort_unstable();
        names.dedup();
        Self(names)
    }

    /// How many of these names `other` does not hold.
    pub(super) fn count_missing_from(&self, other: &Self) -> usize {
        self.0
            .iter()
            .filter(|name| other.0.binary_search(name).is_err())
            .count()
    }
}

/// The subscription a request asks for: its names without `*`, and
/// whether it subscribes to everything.
pub(super) fn subscription(kind: ResourceType, names: &[String], explicit: bool) -> (Names, bool) {
    let star = names.iter().any(|name| name == WILDCARD);
    let legacy_wildcard = names.is_empty() && kind.is_full_state() && !explicit;
    (Names::listed(names), star || legacy_wildcard)
}

/// Every subscribed resource that exists in `snapshot`, by name, as a
/// client in `zone` gets it.
pub(super) fn current_view<'s>(
    state: &TypeState,
    kind: ResourceType,
    snapshot: &'s ResourceSnapshot,
    zone: &str,
) -> BTreeMap<&'s str, &'s Arc<Resource>> {
    let mut view = BTreeMap::new();
    if state.wildcard {
        for resource in snapshot.wildcard(kind) {
            view.insert(resource.name.as_str(), resource);
        }
    }
    for name in &state.names.0 {
        if let Some(resource) = snapshot.get_in_zone(kind, name, zone) {
            view.insert(resource.name.as_str(), resource);
        }
    }
    view
}

/// Whether the client already holds exactly what it subscribes to in
/// `snapshot` (so an update has nothing to send), checked without building
/// the view: most snapshots change one service, and every stream checks
/// every type against each. `false` means "not sure": build the view.
pub(super) fn holds_current(
    state: &TypeState,
    kind: ResourceType,
    snapshot: &ResourceSnapshot,
    zone: &str,
) -> bool {
    if state.wildcard {
        return false;
    }
    let mut present = 0;
    for name in &state.names.0 {
        if let Some(resource) = snapshot.get_in_zone(kind, name, zone) {
            if resource.name != *name || state.sent.get(name) != Some(&resource.revision) {
                return false;
            }
            present += 1;
        }
    }
    // Every existing subscribed resource was sent at its revision; the
    // client holds nothing else (nothing to delete).
    present == state.sent.len()
}
