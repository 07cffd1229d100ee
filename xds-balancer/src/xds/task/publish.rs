//! What the task publishes to the channels: each subscription's
//! resolution, with the control plane's explanation of a missing target
//! (asked for once per disappearance), and a log line for each change.

use std::collections::HashMap;

use super::Task;
use crate::model::{EndpointHealth, Resolution, TargetResolution};
use crate::xds::hint;

/// The control plane's word on a missing target.
#[derive(Debug)]
pub(super) enum Explanation {
    /// Asked; until the answer comes the target counts as still waiting,
    /// so that no call fails with less than the whole story.
    Asking,
    /// Its answer (`None`: it had nothing to say, or did not answer).
    Answered(Option<String>),
}

impl Task {
    /// The resolution of `target`, with the control plane's explanation
    /// when its Listener does not exist.
    pub(super) fn resolution(&self, target: &str) -> TargetResolution {
        let mut resolution = self.state.resolution(target);
        if let TargetResolution::DoesNotExist(what) = &mut resolution {
            match self.explained.get(target) {
                Some(Explanation::Asking) => {
                    return TargetResolution::Waiting(format!("listener {target:?}"));
                }
                Some(Explanation::Answered(Some(hint))) => {
                    what.push_str(": ");
                    what.push_str(hint);
                }
                _ => {}
            }
        }
        resolution
    }

    /// Asks the control plane about every target whose Listener does not
    /// exist (once per disappearance), and forgets the answers of targets
    /// that exist again.
    fn ask_about_missing(&mut self) {
        let targets: Vec<String> = self.state.targets().map(str::to_owned).collect();
        for target in targets {
            let missing = self.state.listener_missing(&target);
            match (missing, self.explained.contains_key(&target)) {
                (true, false) => {
                    let Some((_, channel)) = &self.stream else {
                        continue;
                    };
                    self.explained.insert(target.clone(), Explanation::Asking);
                    let tx = self.hints_tx.clone();
                    let channel = channel.clone();
                    let limit = self.settings.connect_timeout;
                    tokio::spawn(async move {
                        let hint = hint::explain(channel, target.clone(), limit).await;
                        let _ = tx.send((target, hint));
                    });
                }
                (false, true) => drop(self.explained.remove(&target)),
                _ => {}
            }
        }
    }

    /// Sends every subscription whose resolution changed its new value.
    pub(super) fn publish(&mut self) {
        self.ask_about_missing();
        let mut resolved: HashMap<&str, TargetResolution> = HashMap::new();
        for watcher in self.watchers.values() {
            let resolution = resolved
                .entry(watcher.target.as_str())
                .or_insert_with(|| self.resolution(&watcher.target));
            watcher.tx.send_if_modified(|current| {
                if current == resolution {
                    return false;
                }
                log_resolution(&watcher.target, resolution);
                *current = resolution.clone();
                true
            });
        }
    }
}

fn log_resolution(target: &str, resolution: &TargetResolution) {
    match resolution {
        TargetResolution::Routed { routes, clusters } => {
            for cluster in clusters {
                log_cluster(target, cluster);
            }
            if routes.clusters.len() > 1 {
                tracing::info!(
                    target,
                    routes = routes.routes().len(),
                    clusters = ?routes.clusters,
                    "routes updated"
                );
            }
        }
        TargetResolution::Waiting(what) => {
            tracing::info!(target, %what, "waiting for discovery");
        }
        TargetResolution::DoesNotExist(what) => {
            tracing::warn!(target, %what, "the control plane says the service does not exist");
        }
        TargetResolution::Unusable(reason) => {
            tracing::warn!(target, %reason, "the service cannot be used");
        }
    }
}

fn log_cluster(target: &str, resolution: &Resolution) {
    match resolution {
        Resolution::Endpoints {
            cluster,
            endpoints,
            tls,
            policy,
        } => {
            let count = |health| endpoints.iter().filter(|e| e.health == health).count();
            tracing::info!(
                target,
                cluster,
                healthy = count(EndpointHealth::Healthy),
                draining = count(EndpointHealth::Draining),
                not_ready = count(EndpointHealth::NotReady),
                priorities = endpoints
                    .iter()
                    .map(|e| e.priority)
                    .max()
                    .map_or(0, |p| p + 1),
                tls = tls.is_some(),
                ?policy,
                "endpoints updated"
            );
        }
        Resolution::Waiting(what) => tracing::info!(target, %what, "waiting for discovery"),
        Resolution::DoesNotExist(what) => {
            tracing::warn!(target, %what, "the control plane says a cluster does not exist");
        }
        Resolution::Unusable(reason) => {
            tracing::warn!(target, %reason, "a cluster cannot be used");
        }
    }
}
