//! A scripted xDS control plane for client tests: a real tonic ADS server
//! (state of the world) on `127.0.0.1:0`, driven by the test.
//!
//! - [`FakeXds::set_endpoints`] publishes the whole chain for a service
//!   (Listener → RouteConfiguration → Cluster → ClusterLoadAssignment, all
//!   named after the service, shaped like the real control plane's) and
//!   pushes it to every subscribed stream.
//! - [`FakeXds::remove_service`] deletes it; [`FakeXds::set_resource`] and
//!   [`FakeXds::send_raw`] publish hand-made (e.g. invalid) resources.
//! - Every request is recorded ([`FakeXds::requests`],
//!   [`FakeXds::wait_for_request`]) so tests can assert ACKs and NACKs.
//! - [`FakeXds::stop`] takes the server away (streams fail, the port
//!   refuses connections); [`FakeXds::restart`] brings it back on the same
//!   port with versions that do not repeat.
//!
//! Like the real control plane, a request for a Listener or Cluster that
//! does not exist is answered at once with a response that leaves it out.

mod resources;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use xds_type_urls::{CLUSTER, CLUSTER_LOAD_ASSIGNMENT, LISTENER, ROUTE_CONFIGURATION};

pub use resources::{
    EndpointSpec, Health, any, cluster, lb_endpoint, listener, load_assignment, route_configuration,
};

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Which stream (counting from 1 across restarts).
    pub stream: u64,
    /// The request.
    pub request: DiscoveryRequest,
}

#[derive(Debug, Default)]
struct Store {
    /// type URL → name → resource.
    resources: HashMap<String, BTreeMap<String, Any>>,
    /// Bumped on every change.
    version: u64,
}

#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    changed: watch::Sender<u64>,
    raw: broadcast::Sender<(String, Vec<Any>)>,
    requests: Mutex<Vec<Recorded>>,
    requested: Notify,
    streams: AtomicU64,
    open_streams: AtomicU64,
    /// Distinguishes incarnations so versions never repeat across restarts.
    epoch: AtomicU64,
}

/// The scripted control plane. Stopped on drop.
#[derive(Debug)]
pub struct FakeXds {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl FakeXds {
    /// Starts serving on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake control plane");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            store: Mutex::default(),
            changed: watch::channel(0).0,
            raw: broadcast::channel(64).0,
            requests: Mutex::default(),
            requested: Notify::new(),
            streams: AtomicU64::new(0),
            open_streams: AtomicU64::new(0),
            epoch: AtomicU64::new(1),
        });
        let mut fake = Self {
            addr,
            shared,
            running: None,
        };
        fake.serve(listener);
        fake
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = watch::channel(false);
        let service = Ads {
            shared: self.shared.clone(),
            stopped: stopped.clone(),
        };
        let mut shutdown = stopped;
        let server = tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .add_service(AggregatedDiscoveryServiceServer::new(service))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(error) = result {
                tracing::warn!(%error, "fake control plane stopped with an error");
            }
        });
        self.running = Some(Running { stop, server });
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its URI, for `--control-plane`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes `service` with these endpoints (all four resources named
    /// `service`).
    pub fn set_endpoints(&self, service: &str, endpoints: &[EndpointSpec<'_>]) {
        self.update(|store| {
            put(store, LISTENER, service, any(listener(service, service)));
            put(
                store,
                ROUTE_CONFIGURATION,
                service,
                any(route_configuration(service, service)),
            );
            put(store, CLUSTER, service, any(cluster(service)));
            put(
                store,
                CLUSTER_LOAD_ASSIGNMENT,
                service,
                any(load_assignment(service, endpoints)),
            );
        });
    }

    /// Deletes all four resources of `service`.
    pub fn remove_service(&self, service: &str) {
        self.update(|store| {
            for type_url in [
                LISTENER,
                ROUTE_CONFIGURATION,
                CLUSTER,
                CLUSTER_LOAD_ASSIGNMENT,
            ] {
                if let Some(by_name) = store.resources.get_mut(type_url) {
                    by_name.remove(service);
                }
            }
        });
    }

    /// Publishes one resource as given (it may be invalid).
    pub fn set_resource(&self, type_url: &str, name: &str, resource: Any) {
        self.update(|store| put(store, type_url, name, resource));
    }

    /// Sends one response of `type_url` holding exactly `resources` on every
    /// open stream, outside the stored state.
    pub fn send_raw(&self, type_url: &str, resources: Vec<Any>) {
        let _ = self.shared.raw.send((type_url.to_owned(), resources));
    }

    fn update(&self, change: impl FnOnce(&mut Store)) {
        let version = {
            let mut store = self.shared.store.lock().expect("store lock");
            change(&mut store);
            store.version += 1;
            store.version
        };
        self.shared.changed.send_replace(version);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// Waits (at most `timeout`) for a request, among all received so far,
    /// that satisfies `matches`, and returns it.
    ///
    /// # Panics
    ///
    /// On timeout, listing the requests received.
    pub async fn wait_for_request(
        &self,
        timeout: Duration,
        matches: impl Fn(&Recorded) -> bool,
    ) -> Recorded {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.requested.notified();
            if let Some(found) = self.requests().into_iter().find(|r| matches(r)) {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no matching xDS request within {timeout:?}; received:\n{:#?}",
                    self.requests()
                );
            }
        }
    }

    /// Streams open right now.
    pub fn open_streams(&self) -> u64 {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    /// Takes the control plane away: open streams fail and the port refuses
    /// connections until [`FakeXds::restart`].
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(true);
            let mut server = running.server;
            if tokio::time::timeout(Duration::from_secs(5), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }

    /// Serves again on the same port, with a new version epoch.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the fake control plane's port");
        self.serve(listener);
    }
}

impl Drop for FakeXds {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(true);
            running.server.abort();
        }
    }
}

fn put(store: &mut Store, type_url: &str, name: &str, resource: Any) {
    store
        .resources
        .entry(type_url.to_owned())
        .or_default()
        .insert(name.to_owned(), resource);
}

struct Ads {
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ResponseStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let session = Session {
            id: self.shared.streams.fetch_add(1, Ordering::SeqCst) + 1,
            shared: self.shared.clone(),
            tx,
            subscriptions: HashMap::new(),
            last_sent: HashMap::new(),
            nonce: 0,
        };
        tokio::spawn(session.run(request.into_inner(), self.stopped.clone()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaStream>, Status> {
        Err(Status::unimplemented(
            "the fake control plane speaks state of the world only",
        ))
    }
}

async fn wait_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// One ADS stream.
struct Session {
    id: u64,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    /// type URL → names (empty: wildcard).
    subscriptions: HashMap<String, BTreeSet<String>>,
    /// type URL → resources last sent.
    last_sent: HashMap<String, Vec<Any>>,
    nonce: u64,
}

impl Session {
    async fn run(
        mut self,
        mut inbound: Streaming<DiscoveryRequest>,
        mut stopped: watch::Receiver<bool>,
    ) {
        self.shared.open_streams.fetch_add(1, Ordering::SeqCst);
        let mut changed = self.shared.changed.subscribe();
        let mut raw = self.shared.raw.subscribe();
        loop {
            tokio::select! {
                message = inbound.message() => match message {
                    Ok(Some(request)) => {
                        if !self.on_request(request).await {
                            break;
                        }
                    }
                    Ok(None) | Err(_) => break,
                },
                result = changed.changed() => {
                    if result.is_err() {
                        break;
                    }
                    let types: Vec<String> = self.subscriptions.keys().cloned().collect();
                    for type_url in types {
                        if !self.send_state(&type_url, false).await {
                            break;
                        }
                    }
                }
                message = raw.recv() => {
                    if let Ok((type_url, resources)) = message
                        && !self.send(&type_url, resources).await
                    {
                        break;
                    }
                }
                () = wait_stopped(&mut stopped) => {
                    let _ = self.tx.send(Err(Status::unavailable("the control plane is stopping"))).await;
                    break;
                }
            }
        }
        self.shared.open_streams.fetch_sub(1, Ordering::SeqCst);
    }

    async fn on_request(&mut self, request: DiscoveryRequest) -> bool {
        let type_url = request.type_url.clone();
        let names: BTreeSet<String> = request.resource_names.iter().cloned().collect();
        let first = !self.subscriptions.contains_key(&type_url);
        let changed = self.subscriptions.get(&type_url) != Some(&names);
        self.shared
            .requests
            .lock()
            .expect("requests lock")
            .push(Recorded {
                stream: self.id,
                request,
            });
        self.shared.requested.notify_waiters();
        if !(first || changed) {
            return true;
        }
        self.subscriptions.insert(type_url.clone(), names);
        self.send_state(&type_url, true).await
    }

    /// Sends the stored state of `type_url` for this stream's subscription,
    /// when `always` or when it differs from what was sent last.
    async fn send_state(&mut self, type_url: &str, always: bool) -> bool {
        let Some(names) = self.subscriptions.get(type_url) else {
            return true;
        };
        let resources: Vec<Any> = {
            let store = self.shared.store.lock().expect("store lock");
            store
                .resources
                .get(type_url)
                .map(|by_name| {
                    by_name
                        .iter()
                        .filter(|(name, _)| names.is_empty() || names.contains(*name))
                        .map(|(_, resource)| resource.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        if !always && self.last_sent.get(type_url) == Some(&resources) {
            return true;
        }
        self.send(type_url, resources).await
    }

    async fn send(&mut self, type_url: &str, resources: Vec<Any>) -> bool {
        self.nonce += 1;
        let epoch = self.shared.epoch.load(Ordering::SeqCst);
        let version = self.shared.store.lock().expect("store lock").version;
        self.last_sent
            .insert(type_url.to_owned(), resources.clone());
        let response = DiscoveryResponse {
            version_info: format!("{epoch}.{version}.{}", self.nonce),
            resources,
            type_url: type_url.to_owned(),
            nonce: format!("{}-{}", self.id, self.nonce),
            ..Default::default()
        };
        self.tx.send(Ok(response)).await.is_ok()
    }
}
