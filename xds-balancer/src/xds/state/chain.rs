//! Following the chain Listener → RouteConfiguration → Cluster →
//! ClusterLoadAssignment: the names each type must subscribe to for the
//! targets' chains, and where each target's chain stands in the cache.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;

use super::AdsState;
use crate::model::{Resolution, TargetResolution};
use crate::xds::decode::{Kind, ListenerRoutes};

impl AdsState {
    /// Where the chain for the target `listener` stands: its routes, and
    /// each cluster they name.
    pub(crate) fn resolution(&self, listener: &str) -> TargetResolution {
        if self
            .missing
            .contains(&(Kind::Listener, listener.to_owned()))
        {
            return TargetResolution::DoesNotExist(format!("listener {listener:?}"));
        }
        let Some(routes) = self.listeners.get(listener) else {
            return TargetResolution::Waiting(format!("listener {listener:?}"));
        };
        let table = match routes {
            ListenerRoutes::Inline(table) => table,
            ListenerRoutes::Rds(name) => match self.routes.get(name) {
                Some(table) => table,
                None => return TargetResolution::Waiting(format!("route configuration {name:?}")),
            },
        };
        let routes = match table.routes_for(listener) {
            Ok(routes) => routes.clone(),
            Err(reason) => return TargetResolution::Unusable(reason),
        };
        let clusters = routes
            .clusters
            .iter()
            .map(|cluster| self.cluster_resolution(cluster))
            .collect();
        TargetResolution::Routed { routes, clusters }
    }

    /// Where the Cluster → ClusterLoadAssignment chain of `cluster` stands.
    fn cluster_resolution(&self, cluster: &str) -> Resolution {
        if self.missing.contains(&(Kind::Cluster, cluster.to_owned())) {
            return Resolution::DoesNotExist(format!("cluster {cluster:?}"));
        }
        let Some(info) = self.clusters.get(cluster) else {
            return Resolution::Waiting(format!("cluster {cluster:?}"));
        };
        match self.endpoints.get(&info.eds_name) {
            Some(endpoints) => Resolution::Endpoints {
                cluster: cluster.to_owned(),
                endpoints: endpoints.clone(),
                tls: info.tls.clone(),
                policy: info.policy,
            },
            None => Resolution::Waiting(format!("endpoints of cluster {cluster:?}")),
        }
    }

    /// Recomputes what the chain needs below the Listener and returns a
    /// request for every type whose names changed.
    pub(super) fn update_subscriptions(&mut self) -> Vec<DiscoveryRequest> {
        let mut wanted: [BTreeSet<String>; 4] = Default::default();
        for listener in &self.types[Kind::Listener.index()].names {
            let table = match self.listeners.get(listener) {
                Some(ListenerRoutes::Inline(table)) => Some(table),
                Some(ListenerRoutes::Rds(name)) => {
                    wanted[Kind::Route.index()].insert(name.clone());
                    self.routes.get(name)
                }
                None => None,
            };
            // Every cluster the target's routes name, each with its
            // endpoints.
            let Some(routes) = table.and_then(|t| t.routes_for(listener).ok()) else {
                continue;
            };
            for cluster in &routes.clusters {
                wanted[Kind::Cluster.index()].insert(cluster.clone());
                if let Some(info) = self.clusters.get(cluster) {
                    wanted[Kind::Endpoints.index()].insert(info.eds_name.clone());
                }
            }
        }
        let mut requests = Vec::new();
        for kind in [Kind::Route, Kind::Cluster, Kind::Endpoints] {
            let names = std::mem::take(&mut wanted[kind.index()]);
            if names == self.types[kind.index()].names {
                continue;
            }
            match kind {
                Kind::Route => self.routes.retain(|n, _| names.contains(n)),
                Kind::Cluster => self.clusters.retain(|n, _| names.contains(n)),
                _ => self.endpoints.retain(|n, _| names.contains(n)),
            }
            self.missing
                .retain(|(k, n)| *k != kind || names.contains(n));
            let state = &mut self.types[kind.index()];
            // Nothing asked and nothing to take back: no request needed.
            let silent = names.is_empty() && !state.requested;
            state.names = names;
            if !silent {
                requests.push(self.request(kind, None));
            }
        }
        requests
    }
}
