//! A channel's routes and its endpoint pools, one per cluster.
//!
//! The target's routes (gRPC A28) may send calls to several clusters: by
//! method, by header, or split by weight. Each cluster gets its own pool
//! (its connections, its picker); routes naming the same cluster share it.
//! A task follows the target's resolution: it starts a pool for a cluster
//! the routes start naming, hands every pool its cluster's resolution,
//! retires a pool whose cluster they no longer name (its in-flight calls
//! finish), and merges the pools' views into the channel's.
//!
//! Per call, [`Router::route`] loads the published [`Table`] without a
//! lock. When every call goes to one cluster (a single catch-all route, as
//! a control plane without traffic policy sends) that is one branch; only
//! real route tables match paths and headers and draw random numbers.
//!
//! Before any routes arrive, one pool stands in for the target: it carries
//! what discovery waits for (or that the service does not exist), so calls
//! wait and fail as they always did, and it becomes the cluster's pool when
//! the routes name one cluster.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderMap;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::model::{Resolution, TargetResolution};
use crate::pool::subchannel::PoolSettings;
use crate::pool::{self, Core};
use crate::routing::{NoCluster, Routes};
use crate::view::{ControlPlaneStatus, EndpointSet, ServiceStatus};

/// What calls route with, replaced as a whole on every change.
#[derive(Debug)]
struct Table {
    /// `None` until the routes are known: every call goes to `pools[0]`.
    routes: Option<Arc<Routes>>,
    /// The pool of each cluster of `routes`, in its order (or the one
    /// standing in).
    pools: Vec<Arc<Core>>,
}

/// What a channel's calls use to find their pool.
#[derive(Debug)]
pub(crate) struct Router {
    target: Arc<str>,
    table: ArcSwap<Table>,
    /// The application's view: every cluster's endpoints.
    pub(crate) view: watch::Sender<EndpointSet>,
}

impl Router {
    /// The pool for a call to `path` with `headers`: its route's cluster, or UNAVAILABLE saying
    /// that no route matches (or that the matching one forwards nowhere).
    pub(crate) fn route(&self, path: &str, headers: &HeaderMap) -> Result<Arc<Core>, Status> {
        let table = self.table.load();
        let index = match &table.routes {
            None => 0,
            Some(routes) => match routes.single() {
                Some(index) => index,
                None => routes
                    .choose(path, headers, &mut rand::rng())
                    .map_err(|no| self.no_cluster(path, no))?,
            },
        };
        table.pools.get(index).cloned().ok_or_else(|| {
            Status::internal(format!("route table of {:?}: no pool {index}", self.target))
        })
    }

    fn no_cluster(&self, path: &str, no: NoCluster) -> Status {
        let target = &self.target;
        Status::unavailable(match no {
            NoCluster::NoRoute => {
                format!("no route of {target:?} matches the call to {path:?}")
            }
            NoCluster::Unsupported(name, why) => {
                format!("the route {name:?} of {target:?} matches the call to {path:?}, but {why}")
            }
        })
    }

    /// Every current pool.
    pub(crate) fn pools(&self) -> Vec<Arc<Core>> {
        self.table.load().pools.clone()
    }
}

/// Starts routing for `target`; the task and every pool stop with `stop`.
pub(crate) fn start(
    target: Arc<str>,
    settings: Arc<PoolSettings>,
    resolution: watch::Receiver<TargetResolution>,
    control_plane: watch::Receiver<ControlPlaneStatus>,
    stop: CancellationToken,
) -> Arc<Router> {
    let (views_tx, views) = watch::channel(0);
    let mut task = RouterTask {
        router: None,
        target: target.clone(),
        settings,
        resolution,
        control_plane,
        views_tx,
        views,
        stop,
        pools: Vec::new(),
    };
    let stand_in = task.new_pool(
        None,
        None,
        Resolution::Waiting(format!("listener {target:?}")),
    );
    let router = Arc::new(Router {
        target,
        table: ArcSwap::from_pointee(Table {
            routes: None,
            pools: vec![stand_in.core.clone()],
        }),
        view: watch::channel(stand_in.core.view.borrow().clone()).0,
    });
    task.pools.push(stand_in);
    task.router = Some(router.clone());
    tokio::spawn(task.run());
    router
}

/// One cluster's pool, as the router task holds it.
struct Pool {
    /// The cluster; `None` for the pool standing in before routes.
    name: Option<String>,
    core: Arc<Core>,
    resolution: watch::Sender<Resolution>,
    stop: CancellationToken,
}

struct RouterTask {
    router: Option<Arc<Router>>,
    target: Arc<str>,
    settings: Arc<PoolSettings>,
    resolution: watch::Receiver<TargetResolution>,
    control_plane: watch::Receiver<ControlPlaneStatus>,
    /// Bumped by the pools when their views change.
    views_tx: watch::Sender<u64>,
    views: watch::Receiver<u64>,
    stop: CancellationToken,
    /// In the order of the current routes' clusters.
    pools: Vec<Pool>,
}

impl RouterTask {
    async fn run(mut self) {
        self.apply();
        self.publish_view();
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                changed = self.resolution.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    // The pools' views change when they have taken the
                    // news (they bump `views`), unless the set of pools did.
                    if self.apply() {
                        self.publish_view();
                    }
                }
                changed = self.views.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.publish_view();
                }
            }
        }
        for pool in self.pools.drain(..) {
            pool.stop.cancel();
        }
    }

    fn new_pool(&self, name: Option<String>, label: Option<Arc<str>>, first: Resolution) -> Pool {
        let core = Arc::new(Core::new(
            self.target.clone(),
            label,
            self.control_plane.clone(),
        ));
        let (resolution, rx) = watch::channel(first);
        let stop = self.stop.child_token();
        pool::spawn(
            core.clone(),
            self.settings.clone(),
            self.target.clone(),
            rx,
            self.control_plane.clone(),
            self.views_tx.clone(),
            stop.clone(),
        );
        Pool {
            name,
            core,
            resolution,
            stop,
        }
    }

    /// Hands each pool its cluster's resolution; whether the pools
    /// themselves changed (started, retired, or renamed).
    fn apply(&mut self) -> bool {
        let resolution = self.resolution.borrow_and_update().clone();
        let (routes, clusters) = match resolution {
            // The target as a whole: every pool hears it. Waiting keeps
            // their endpoints; the others retire them.
            TargetResolution::Waiting(what) => {
                self.tell_all(&Resolution::Waiting(what));
                return false;
            }
            TargetResolution::DoesNotExist(what) => {
                self.tell_all(&Resolution::DoesNotExist(what));
                return false;
            }
            TargetResolution::Unusable(why) => {
                self.tell_all(&Resolution::Unusable(why));
                return false;
            }
            TargetResolution::Routed { routes, clusters } => (routes, clusters),
        };
        let before: Vec<(Option<String>, *const Core)> = self
            .pools
            .iter()
            .map(|p| (p.name.clone(), Arc::as_ptr(&p.core)))
            .collect();
        let several = routes.clusters.len() > 1;
        let mut old = std::mem::take(&mut self.pools);
        for (name, resolution) in routes.clusters.iter().zip(clusters) {
            let pool = match old.iter().position(|p| p.name.as_ref() == Some(name)) {
                Some(at) => old.remove(at),
                // One cluster for another (or for the stand-in): the pool
                // goes on, keeping connections to endpoints that stay.
                None if old.len() == 1 && routes.clusters.len() == 1 => {
                    let mut pool = old.remove(0);
                    pool.name = Some(name.clone());
                    pool
                }
                None => {
                    let label = several.then(|| Arc::from(name.as_str()));
                    self.new_pool(Some(name.clone()), label, resolution.clone())
                }
            };
            tell(&pool, &resolution);
            self.pools.push(pool);
        }
        if self.pools.is_empty() {
            // Routes that name no cluster: every call fails by its route;
            // a stand-in tells the application.
            let pool = match old.iter().position(|p| p.name.is_none()) {
                Some(at) => old.remove(at),
                None => self.new_pool(None, None, Resolution::Waiting(String::new())),
            };
            let why = format!("the routes of {:?} name no cluster", self.target);
            tell(&pool, &Resolution::Unusable(why));
            self.pools.push(pool);
        }
        for pool in old {
            tracing::info!(target = %self.target, cluster = pool.name.as_deref().unwrap_or(""), "cluster no longer routed to; its connections close once their calls finish");
            pool.core.retire();
            pool.stop.cancel();
        }
        if let Some(router) = &self.router {
            router.table.store(Arc::new(Table {
                routes: Some(routes),
                pools: self.pools.iter().map(|p| p.core.clone()).collect(),
            }));
        }
        let after = self
            .pools
            .iter()
            .map(|p| (p.name.clone(), Arc::as_ptr(&p.core)));
        !before.into_iter().eq(after)
    }

    fn tell_all(&self, resolution: &Resolution) {
        for pool in &self.pools {
            tell(pool, resolution);
        }
    }

    /// The channel's view: the one pool's, or every pool's merged.
    fn publish_view(&self) {
        let Some(router) = &self.router else {
            return;
        };
        if let [pool] = self.pools.as_slice() {
            // Compared in place and copied into the buffers already there.
            let view = pool.core.view.borrow();
            router.view.send_if_modified(|current| {
                let changed = *current != *view;
                if changed {
                    current.clone_from(&view);
                }
                changed
            });
            return;
        }
        let view = merge(&self.target, &self.pools);
        router.view.send_if_modified(|current| {
            let changed = *current != view;
            if changed {
                *current = view;
            }
            changed
        });
    }
}

/// Hands `pool` its resolution, waking it only when that changed.
fn tell(pool: &Pool, resolution: &Resolution) {
    pool.resolution.send_if_modified(|current| {
        let changed = current != resolution;
        if changed {
            *current = resolution.clone();
        }
        changed
    });
}

/// Several pools' views as one: every endpoint (each names its cluster);
/// resolved when every cluster is, else the first one's state that is not.
fn merge(target: &str, pools: &[Pool]) -> EndpointSet {
    let views: Vec<EndpointSet> = pools.iter().map(|p| p.core.view.borrow().clone()).collect();
    let unresolved = views
        .iter()
        .map(|v| &v.service)
        .find(|s| !matches!(s, ServiceStatus::Resolved { .. }));
    let service = match unresolved {
        Some(status) => status.clone(),
        None => ServiceStatus::Resolved {
            cluster: pools
                .iter()
                .filter_map(|p| p.name.as_deref())
                .collect::<Vec<_>>()
                .join(", "),
            // TLS when any cluster asks for it.
            tls: views
                .iter()
                .any(|v| matches!(v.service, ServiceStatus::Resolved { tls: true, .. })),
        },
    };
    let control_plane = views
        .first()
        .map(|v| v.control_plane.clone())
        .unwrap_or_else(|| ControlPlaneStatus::new(""));
    EndpointSet {
        target: target.to_owned(),
        service,
        endpoints: views.into_iter().flat_map(|v| v.endpoints).collect(),
        control_plane,
    }
}
