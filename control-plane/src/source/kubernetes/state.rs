//! The Kubernetes source's state machine: what it knows of Services and
//! EndpointSlices, and what to publish after each watcher event. No I/O.
//!
//! # Design
//!
//! Each resource type has a watcher whose events arrive here as a
//! [`Change`]. A (re-)list arrives as `Begin`, `Listed`..., `Complete`: the
//! listed objects are collected in a side table and swapped in only at
//! `Complete`, so a re-list never shows an empty or partial state; a
//! `Failed` watcher drops its side table and the live state stays.
//!
//! Nothing is published until both types have completed their first list;
//! then one full set goes out ([`Action::ReplaceAll`]). After that, every
//! single change republishes only the services it touches (a slice change
//! touches the service it belongs to, and the one it belonged to before),
//! and every completed re-list republishes the full set (the store keeps the
//! version of each service that did not change, so clients see nothing for
//! those).
//!
//! A service is published when its Service object exists and can be served,
//! with whatever endpoints its slices have (possibly none: clients then learn
//! there are no ready pods rather than that the service does not exist).
//! Slices of a missing Service are kept, unpublished, until it appears.

use std::collections::{BTreeMap, BTreeSet};

use super::mapping::{self, ServiceInfo, SliceInfo};
use crate::model;

/// A watcher event, with objects already decoded. An object that could not
/// be decoded arrives as `Deleted` (from then on it counts as absent) or is
/// left out of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change<T> {
    /// A list starts.
    Begin,
    /// One listed object.
    Listed(T),
    /// The list is complete.
    Complete,
    /// An object was added or changed.
    Applied(T),
    /// The object with this name was deleted (or can no longer be read).
    Deleted(String),
    /// The watcher failed; it will list again.
    Failed,
}

/// What to tell the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// The complete set of services.
    ReplaceAll {
        services: Vec<model::Service>,
        reason: String,
    },
    /// One service was added or changed.
    Upsert {
        service: model::Service,
        reason: String,
    },
    /// One service is gone.
    Remove { name: String, reason: String },
}

trait Named {
    const KIND: &'static str;
    fn name(&self) -> &str;
}

impl Named for ServiceInfo {
    const KIND: &'static str = "Service";
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for SliceInfo {
    const KIND: &'static str = "EndpointSlice";
    fn name(&self) -> &str {
        &self.name
    }
}

/// The objects of one type: live, plus the side table of a list in progress.
#[derive(Debug)]
struct Table<T> {
    live: BTreeMap<String, T>,
    listing: Option<BTreeMap<String, T>>,
    synced: bool,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            live: BTreeMap::new(),
            listing: None,
            synced: false,
        }
    }
}

/// What [`Table::apply`] did.
enum Applied<T> {
    /// Nothing to publish yet.
    Quiet,
    /// A list completed.
    Completed,
    /// One object changed: before and after.
    One(Option<T>, Option<T>),
}

impl<T: Named + Clone> Table<T> {
    fn apply(&mut self, change: Change<T>) -> Applied<T> {
        match change {
            Change::Begin => {
                self.listing = Some(BTreeMap::new());
                Applied::Quiet
            }
            Change::Listed(object) => match &mut self.listing {
                Some(listing) => {
                    listing.insert(object.name().to_owned(), object);
                    Applied::Quiet
                }
                // Not inside a list (cannot happen with kube's watcher):
                // take it as a change.
                None => self.apply(Change::Applied(object)),
            },
            Change::Complete => match self.listing.take() {
                Some(listing) => {
                    self.live = listing;
                    self.synced = true;
                    Applied::Completed
                }
                None => Applied::Quiet,
            },
            Change::Applied(object) => {
                let name = object.name().to_owned();
                let before = self.live.insert(name, object.clone());
                Applied::One(before, Some(object))
            }
            Change::Deleted(name) => match self.live.remove(&name) {
                Some(before) => Applied::One(Some(before), None),
                None => Applied::Quiet,
            },
            Change::Failed => {
                self.listing = None;
                Applied::Quiet
            }
        }
    }
}

/// Everything the source knows, and which services it has published.
#[derive(Debug)]
pub(crate) struct State {
    namespace: String,
    services: Table<ServiceInfo>,
    slices: Table<SliceInfo>,
    published: BTreeSet<String>,
}

impl State {
    /// An empty state for `namespace`.
    pub(crate) fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            services: Table::default(),
            slices: Table::default(),
            published: BTreeSet::new(),
        }
    }

    /// Whether both types have completed a list.
    pub(crate) fn is_synced(&self) -> bool {
        self.services.synced && self.slices.synced
    }

    /// Applies a Service event.
    pub(crate) fn on_service(&mut self, change: Change<ServiceInfo>) -> Vec<Action> {
        let reason = describe(&change);
        match self.services.apply(change) {
            Applied::Quiet => Vec::new(),
            Applied::Completed => self.full(reason),
            Applied::One(before, after) => {
                let name = before.or(after).map(|s| s.name).unwrap_or_default();
                self.touched([name], &reason)
            }
        }
    }

    /// Applies an EndpointSlice event.
    pub(crate) fn on_slice(&mut self, change: Change<SliceInfo>) -> Vec<Action> {
        let reason = describe(&change);
        match self.slices.apply(change) {
            Applied::Quiet => Vec::new(),
            Applied::Completed => self.full(reason),
            Applied::One(before, after) => {
                let owners = before.into_iter().chain(after).map(|s| s.service);
                self.touched(owners.collect::<BTreeSet<_>>(), &reason)
            }
        }
    }

    /// The full set, once both types are synced.
    fn full(&mut self, reason: String) -> Vec<Action> {
        if !self.is_synced() {
            return Vec::new();
        }
        let services: Vec<_> = self
            .services
            .live
            .values()
            .map(|service| self.build(service))
            .collect();
        self.published = services.iter().map(|s| s.name.clone()).collect();
        vec![Action::ReplaceAll { services, reason }]
    }

    /// Republishes (or removes) the named services, once synced.
    fn touched(&mut self, names: impl IntoIterator<Item = String>, reason: &str) -> Vec<Action> {
        if !self.is_synced() {
            return Vec::new();
        }
        let mut actions = Vec::new();
        for name in names {
            match self.services.live.get(&name) {
                Some(service) => {
                    let service = self.build(service);
                    self.published.insert(name);
                    actions.push(Action::Upsert {
                        service,
                        reason: reason.to_owned(),
                    });
                }
                None if self.published.remove(&name) => actions.push(Action::Remove {
                    name,
                    reason: reason.to_owned(),
                }),
                None => {}
            }
        }
        actions
    }

    fn build(&self, service: &ServiceInfo) -> model::Service {
        let slices = self
            .slices
            .live
            .values()
            .filter(|slice| slice.service == service.name);
        mapping::build(&self.namespace, service, slices)
    }
}

fn describe<T: Named>(change: &Change<T>) -> String {
    match change {
        Change::Begin | Change::Listed(_) | Change::Failed => String::new(),
        Change::Complete => format!("listed {}s", T::KIND),
        Change::Applied(object) => format!("{} {} changed", T::KIND, object.name()),
        Change::Deleted(name) => format!("{} {name} deleted", T::KIND),
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
