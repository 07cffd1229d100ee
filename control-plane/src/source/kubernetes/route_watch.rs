//! Watching GRPCRoutes, in a cluster that may not have them.
//!
//! The GRPCRoute API is a CRD (Gateway API). When listing answers 404 (not
//! installed) or 403 (the Role lacks it), routes are off: the source says
//! so in the status API, serves Services exactly as without routes, and
//! looks again every `route_recheck`, so CRDs installed later are picked up
//! without a restart. Any other error is an outage like the other
//! watchers'.
//!
//! Routes are collected like the other types: a (re-)list is swapped in
//! whole when it completes, and every change after that publishes the
//! complete set.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::DynamicObject;
use kube::runtime::watcher::{self, Event};

use super::routes::{GATEWAY_GROUP, GATEWAY_VERSION, GRPC_ROUTE_PLURAL, route_info};
use crate::routes::{RouteSet, RouteSupport, TrafficRoute};

/// Why routes are off, for an error that means "not available here"; `None`
/// for other errors (the source's watcher then treats them as an outage).
pub(super) fn unavailable(error: &watcher::Error, recheck: Duration) -> Option<String> {
    let (watcher::Error::InitialListFailed(kube::Error::Api(status))
    | watcher::Error::WatchStartFailed(kube::Error::Api(status))) = error
    else {
        return None;
    };
    let again = humantime::format_duration(recheck);
    match status.code {
        404 => Some(format!(
            "the GRPCRoute API ({GRPC_ROUTE_PLURAL}.{GATEWAY_GROUP}/{GATEWAY_VERSION}) is not \
             installed in this cluster (listing answered 404); install the Gateway API CRDs to \
             use routes (looking again every {again})"
        )),
        403 => Some(format!(
            "not allowed to list {GRPC_ROUTE_PLURAL}.{GATEWAY_GROUP} (403): the Role needs \
             get, list and watch on them (looking again every {again})"
        )),
        _ => None,
    }
}

/// The routes known, and whether they are ready to publish.
#[derive(Debug)]
pub(super) struct Routes {
    namespace: String,
    live: BTreeMap<String, TrafficRoute>,
    listing: Option<BTreeMap<String, TrafficRoute>>,
    /// A list completed, or the API is known to be absent.
    pub(super) ready: bool,
    /// Why routes are off, while they are.
    off: Option<String>,
}

impl Routes {
    pub(super) fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            live: BTreeMap::new(),
            listing: None,
            ready: false,
            off: None,
        }
    }

    /// The complete set to publish.
    pub(super) fn set(&self) -> RouteSet {
        match &self.off {
            Some(reason) => RouteSet {
                support: RouteSupport::disabled(reason.clone()),
                routes: Vec::new(),
            },
            None => RouteSet {
                support: RouteSupport::enabled(format!(
                    "GRPCRoutes of namespace {} (parentRefs of kind Service)",
                    self.namespace
                )),
                routes: self.live.values().cloned().collect(),
            },
        }
    }

    /// The API is not available: routes are off. Returns whether that is
    /// news (publish).
    pub(super) fn off(&mut self, reason: String) -> bool {
        self.listing = None;
        self.live.clear();
        let news = self.off.as_ref() != Some(&reason) || !self.ready;
        self.off = Some(reason);
        self.ready = true;
        news
    }

    /// The watcher failed; it lists again.
    pub(super) fn failed(&mut self) {
        self.listing = None;
    }

    /// Applies one event; returns a reason to publish when the set changed
    /// in a way clients should see.
    pub(super) fn on_event(&mut self, event: Event<DynamicObject>) -> Option<String> {
        match event {
            Event::Init => {
                self.listing = Some(BTreeMap::new());
                None
            }
            Event::InitApply(object) => {
                let namespace = self.namespace.clone();
                if let (Some(listing), Some(route)) =
                    (&mut self.listing, decode(&object, &namespace))
                {
                    listing.insert(route.name.clone(), route);
                }
                None
            }
            Event::InitDone => {
                let listing = self.listing.take()?;
                self.live = listing;
                self.ready = true;
                if self.off.take().is_some() {
                    tracing::info!("the GRPCRoute API is available: routes are on");
                }
                Some(format!("listed GRPCRoutes: {}", self.live.len()))
            }
            Event::Apply(object) => {
                let name = object.metadata.name.clone().unwrap_or_default();
                match decode(&object, &self.namespace) {
                    Some(route) => {
                        self.live.insert(name.clone(), route);
                    }
                    None => {
                        self.live.remove(&name);
                    }
                }
                self.ready.then(|| format!("GRPCRoute {name} changed"))
            }
            Event::Delete(object) => {
                let name = object.metadata.name.unwrap_or_default();
                let removed = self.live.remove(&name).is_some();
                (removed && self.ready).then(|| format!("GRPCRoute {name} deleted"))
            }
        }
    }
}

/// The route, or `None` when it is not this control plane's. One that
/// cannot be read at all is kept as a route with that problem, so the
/// status API shows it refused.
fn decode(object: &DynamicObject, namespace: &str) -> Option<TrafficRoute> {
    match route_info(object, namespace) {
        Ok(route) => route,
        Err(reason) => {
            tracing::warn!(%reason, "GRPCRoute cannot be read");
            Some(TrafficRoute {
                name: object.metadata.name.clone().unwrap_or_default(),
                order: 0,
                parents: Vec::new(),
                rules: Vec::new(),
                problems: vec![reason],
            })
        }
    }
}
