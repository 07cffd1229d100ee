//! The Kubernetes source: Services and EndpointSlices of one namespace.
//!
//! # Design
//!
//! Two `kube::runtime` watchers (Services; EndpointSlices carrying the
//! `kubernetes.io/service-name` label) feed one task that owns the
//! [`state::State`] machine and applies what it decides to the
//! [`SourceHandle`]. Objects are watched as `DynamicObject`s and decoded one
//! by one ([`mapping`]), so one object that does not fit the schema is
//! logged and skipped instead of failing every list.
//!
//! Completeness: publication happens only at the end of a list (the
//! watcher's `InitDone`), never during one, so a re-list (after a 410 Gone,
//! say) never shows clients an empty or partial set.
//!
//! Errors: after any watcher error the watcher is dropped and a new one
//! lists again, after a jittered, doubling backoff (none after a 410, which
//! only means "list again"). Re-listing rather than resuming costs one LIST
//! per outage, and buys a clear point at which the source is known to be in
//! sync again: the status goes `disconnected` (since the first error) on an
//! error and back to `connected` when every watcher has listed again.
//! Meanwhile the last state keeps being served. Watches that end normally
//! (timeout, a dropped connection) are resumed by kube-runtime from the
//! last resourceVersion, without a list.
//!
//! Routes: a third watcher follows `GRPCRoute`s (Gateway API) whose
//! parents are Services of the namespace (`route_watch.rs`, `routes.rs`).
//! Where the API is not installed (or not granted), routes are off, the
//! status API says why, and the API is looked for again every
//! `route_recheck`. The source reports itself connected only once routes
//! are listed or known to be off, so clients never see a Service's default
//! route before its routes.
//!
//! Permissions needed: `list` and `watch` on `services` (core),
//! `endpointslices` (`discovery.k8s.io`) and, for routes, `grpcroutes`
//! (`gateway.networking.k8s.io`) in the namespace served.
//!
//! # Layout
//!
//! - [`args`]: the command-line options ([`KubernetesArgs`]).
//! - [`config`]: namespace resolution, client set-up, watch settings.
//! - [`mapping`]: Kubernetes objects → the model (pure).
//! - [`routes`]: GRPCRoutes → the model's routes (pure).
//! - `route_watch`: the GRPCRoute watcher and its table.
//! - `state`: the state machine deciding what to publish (pure).
//! - this module: the watcher task.

pub mod args;
pub mod config;
pub mod mapping;
mod route_watch;
pub mod routes;
mod state;

use std::collections::BTreeSet;
use std::fmt;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service as KubeService;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tracing::Instrument;

pub use args::KubernetesArgs;
pub use config::{Error, WatchConfig, client_from_environment, resolve_namespace, running_in_pod};
pub use mapping::{LB_POLICY_ANNOTATION, SERVICE_NAME_LABEL};

use self::mapping::Skip;
use self::state::{Action, Change, State};
use crate::source::{SourceHandle, SourceState};

/// The watched resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Services,
    EndpointSlices,
    GrpcRoutes,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Services => "Services",
            Kind::EndpointSlices => "EndpointSlices",
            Kind::GrpcRoutes => "GRPCRoutes",
        })
    }
}

/// What the watchers report to the task.
enum Input {
    Event(Kind, Box<Event<DynamicObject>>),
    Failed {
        kind: Kind,
        error: String,
        /// A 410 Gone: list again at once; not an outage.
        expired: bool,
    },
    /// The GRPCRoute API is not available, for this reason.
    RoutesOff(String),
}

/// Watches Services and EndpointSlices in the handle's namespace and
/// publishes them, until dropped. Never fails: errors are retried and shown
/// in the source status.
pub async fn run(client: kube::Client, config: WatchConfig, handle: SourceHandle) {
    let namespace = handle.namespace().to_owned();
    let span = tracing::info_span!("kubernetes", %namespace);
    async move {
        let (tx, rx) = mpsc::channel(256);
        let services = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            &namespace,
            &ApiResource::erase::<KubeService>(&()),
        );
        let slices = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            &namespace,
            &ApiResource::erase::<EndpointSlice>(&()),
        );
        let gvk = GroupVersionKind::gvk(
            routes::GATEWAY_GROUP,
            routes::GATEWAY_VERSION,
            routes::GRPC_ROUTE_KIND,
        );
        let grpc_routes = Api::<DynamicObject>::namespaced_with(
            client,
            &namespace,
            &ApiResource::from_gvk_with_plural(&gvk, routes::GRPC_ROUTE_PLURAL),
        );
        let base = watcher::Config::default()
            .timeout(
                u32::try_from(config.watch_timeout.as_secs())
                    .unwrap_or(u32::MAX)
                    .max(1),
            )
            .page_size(config.page_size);
        let slice_config = base.clone().labels(SERVICE_NAME_LABEL);
        tracing::info!("watching Services, EndpointSlices and GRPCRoutes");
        tokio::join!(
            watch(
                services,
                base.clone(),
                Kind::Services,
                tx.clone(),
                &config,
                None
            ),
            watch(
                slices,
                slice_config,
                Kind::EndpointSlices,
                tx.clone(),
                &config,
                None,
            ),
            watch(
                grpc_routes,
                base,
                Kind::GrpcRoutes,
                tx,
                &config,
                Some(route_watch::unavailable),
            ),
            process(rx, handle),
        );
    }
    .instrument(span)
    .await;
}

/// Why a watcher's type is not available in this cluster (the error means
/// "absent", not an outage), or `None`; given the recheck interval.
type Unavailable = fn(&watcher::Error, std::time::Duration) -> Option<String>;

/// Runs one watcher, starting over after each error; reports everything.
/// With `unavailable`, an error it recognises turns routes off (reported
/// as such) and the watcher looks again after `route_recheck`.
async fn watch(
    api: Api<DynamicObject>,
    watch_config: watcher::Config,
    kind: Kind,
    tx: mpsc::Sender<Input>,
    config: &WatchConfig,
    unavailable: Option<Unavailable>,
) {
    let mut delay = config.backoff_initial;
    loop {
        let mut events = watcher::watcher(api.clone(), watch_config.clone()).boxed();
        let error = loop {
            match events.next().await {
                Some(Ok(event)) => {
                    if matches!(event, Event::InitDone) {
                        delay = config.backoff_initial;
                    }
                    if tx.send(Input::Event(kind, Box::new(event))).await.is_err() {
                        return;
                    }
                }
                Some(Err(error)) => break error,
                None => break watcher::Error::NoResourceVersion,
            }
        };
        if let Some(reason) = unavailable.and_then(|off| off(&error, config.route_recheck)) {
            if tx.send(Input::RoutesOff(reason)).await.is_err() {
                return;
            }
            tokio::time::sleep(config.route_recheck).await;
            continue;
        }
        let expired = matches!(&error, watcher::Error::WatchError(status) if status.code == 410);
        let failed = Input::Failed {
            kind,
            error: error.to_string(),
            expired,
        };
        if tx.send(failed).await.is_err() {
            return;
        }
        if !expired {
            let jittered = delay.mul_f64(rand::random_range(0.8..1.2));
            tokio::time::sleep(jittered).await;
            delay = (delay * 2).min(config.backoff_max);
        }
    }
}

/// Feeds watcher events through the state machine into the store, and keeps
/// the source status.
async fn process(mut rx: mpsc::Receiver<Input>, handle: SourceHandle) {
    let mut state = State::new(handle.namespace());
    let mut routes = route_watch::Routes::new(handle.namespace());
    // Watchers that failed and have not completed a list since.
    let mut failing = BTreeSet::new();
    while let Some(input) = rx.recv().await {
        match input {
            Input::Event(kind, event) => {
                let event = *event;
                let listed = matches!(event, Event::InitDone);
                let actions = match kind {
                    Kind::Services => decode(event, mapping::service_info)
                        .map_or_else(Vec::new, |change| state.on_service(change)),
                    Kind::EndpointSlices => decode(event, mapping::slice_info)
                        .map_or_else(Vec::new, |change| state.on_slice(change)),
                    Kind::GrpcRoutes => {
                        if let Some(reason) = routes.on_event(event) {
                            handle.set_routes(routes.set(), reason);
                        }
                        Vec::new()
                    }
                };
                for action in actions {
                    apply(&handle, action);
                }
                if listed {
                    failing.remove(&kind);
                    if failing.is_empty() && state.is_synced() && routes.ready {
                        handle.set_state(SourceState::Connected, None);
                    }
                }
            }
            Input::RoutesOff(reason) => {
                if routes.off(reason.clone()) {
                    tracing::info!(%reason, "routes are off");
                    handle.set_routes(routes.set(), "GRPCRoutes unavailable".to_owned());
                }
                failing.remove(&Kind::GrpcRoutes);
                if failing.is_empty() && state.is_synced() {
                    handle.set_state(SourceState::Connected, None);
                }
            }
            Input::Failed {
                kind,
                error,
                expired,
            } => {
                match kind {
                    Kind::Services => drop(state.on_service(Change::Failed)),
                    Kind::EndpointSlices => drop(state.on_slice(Change::Failed)),
                    Kind::GrpcRoutes => routes.failed(),
                }
                if expired {
                    tracing::info!(%kind, %error, "resourceVersion expired; listing again");
                } else {
                    tracing::warn!(%kind, %error, "watch failed; serving the last known state and retrying");
                    failing.insert(kind);
                    handle.set_state(
                        SourceState::Disconnected,
                        Some(format!("watching {kind}: {error}")),
                    );
                }
            }
        }
    }
}

/// A watcher event as a state machine change; `None` for an object of a
/// list that cannot be read (it is left out).
fn decode<K, T>(event: Event<DynamicObject>, read: fn(&K) -> Result<T, Skip>) -> Option<Change<T>>
where
    K: kube::Resource + serde::de::DeserializeOwned,
    T: HasProblems,
{
    let parse = |object: DynamicObject| -> Result<T, (String, Skip)> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let typed: K = object.try_parse().map_err(|error| {
            (
                name.clone(),
                Skip(format!("{name} does not fit the schema: {error}")),
            )
        })?;
        let info = read(&typed).map_err(|skip| (name.clone(), skip))?;
        for problem in info.problems() {
            tracing::warn!(object = %name, problem, "part of an object left out");
        }
        Ok(info)
    };
    match event {
        Event::Init => Some(Change::Begin),
        Event::InitDone => Some(Change::Complete),
        Event::InitApply(object) => match parse(object) {
            Ok(info) => Some(Change::Listed(info)),
            Err((name, Skip(reason))) => {
                tracing::warn!(object = %name, %reason, "object skipped");
                None
            }
        },
        Event::Apply(object) => match parse(object) {
            Ok(info) => Some(Change::Applied(info)),
            Err((name, Skip(reason))) => {
                tracing::warn!(object = %name, %reason, "object skipped; treated as absent");
                Some(Change::Deleted(name))
            }
        },
        Event::Delete(object) => Some(Change::Deleted(object.metadata.name.unwrap_or_default())),
    }
}

/// Decoded objects that note the parts they left out.
trait HasProblems {
    fn problems(&self) -> &[String];
}

impl HasProblems for mapping::ServiceInfo {
    fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl HasProblems for mapping::SliceInfo {
    fn problems(&self) -> &[String] {
        &self.problems
    }
}

fn apply(handle: &SourceHandle, action: Action) {
    match action {
        Action::ReplaceAll { services, reason } => {
            let count = services.len();
            let rejected = handle.replace_all(services, format!("{reason}: {count} services"));
            for rejected in rejected {
                tracing::warn!(service = rejected.name, error = %rejected.error, "service not served");
            }
        }
        Action::Upsert { service, reason } => {
            let name = service.name.clone();
            if let Err(error) = handle.upsert(service, reason.clone()) {
                tracing::warn!(service = name, %error, "service not served");
                handle.remove(&name, reason);
            }
        }
        Action::Remove { name, reason } => {
            handle.remove(&name, reason);
        }
    }
}
