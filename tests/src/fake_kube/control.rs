//! [`FakeKube`]: start the fake API server, change its objects, and play
//! the failures a real API server has.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::fixtures::{DEFAULT_NAMESPACE, EndpointFixture, EndpointState};
use super::resource::{IntoStored, Resource, Stored};
use super::server::{Shared, accept_loop};
use super::store::{Key, Signal};
use super::{RequestRecord, Verb};

/// How the server behaves while it is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The port is closed: connections are refused.
    Refuse,
    /// The port stays open, but every connection is reset at once.
    Reset,
}

#[derive(Debug)]
struct AcceptState {
    stop: CancellationToken,
    task: Option<JoinHandle<TcpListener>>,
    down: Option<Outage>,
}

/// A running fake API server on `127.0.0.1`, plus a kubeconfig file that
/// points at it. Stops (and removes the file) when dropped.
#[derive(Debug)]
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: tokio::sync::Mutex<AcceptState>,
    shutdown: CancellationToken,
    dir: PathBuf,
    kubeconfig: PathBuf,
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

impl FakeKube {
    /// Starts a server on `127.0.0.1:0` and writes its kubeconfig.
    ///
    /// # Panics
    ///
    /// When it cannot bind or write the file.
    pub async fn start() -> Self {
        let listener =
            bind("127.0.0.1:0".parse().expect("address")).expect("bind the fake API server");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let shutdown = CancellationToken::new();
        let stop = shutdown.child_token();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop.clone(), false));
        let dir = std::env::temp_dir().join(format!(
            "fake-kube-{}-{}-{}",
            std::process::id(),
            addr.port(),
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the kubeconfig directory");
        let kubeconfig = dir.join("kubeconfig");
        let fake = Self {
            shared,
            addr,
            accept: tokio::sync::Mutex::new(AcceptState {
                stop,
                task: Some(task),
                down: None,
            }),
            shutdown,
            dir,
            kubeconfig,
        };
        fake.write_kubeconfig(&fake.kubeconfig, None);
        fake
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file whose current context points at this server (no
    /// namespace set), for `KUBECONFIG=<path>`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Writes a kubeconfig for this server to `path`, with `namespace` as
    /// the current context's namespace when given.
    ///
    /// # Panics
    ///
    /// When the file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path, namespace: Option<&str>) {
        let namespace = namespace
            .map(|ns| format!("\n    namespace: {ns}"))
            .unwrap_or_default();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake{namespace}\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            url = self.url()
        );
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A real `kube::Client`, built from the kubeconfig file as a user's
    /// program would.
    ///
    /// # Panics
    ///
    /// When the kubeconfig is not accepted.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let options = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .expect("kubeconfig accepted");
        kube::Client::try_from(config).expect("kube client")
    }

    // ----- objects -----

    /// Creates or replaces an object (a fixture or a typed object); its
    /// namespace defaults to [`DEFAULT_NAMESPACE`]. Returns it as stored,
    /// with its new resourceVersion.
    ///
    /// # Panics
    ///
    /// When the object has no name.
    pub fn apply<T: IntoStored>(&self, object: T) -> T::Object {
        let value = serde_json::to_value(object.into_stored()).expect("serialize object");
        let stored = self.apply_raw(T::Object::RESOURCE, value);
        serde_json::from_value(stored).expect("stored object reads back")
    }

    /// Creates or replaces an object given as JSON, which need not match the
    /// schema (to test how clients treat malformed objects). Returns it as
    /// stored.
    ///
    /// # Panics
    ///
    /// When the object has no `metadata.name`.
    pub fn apply_raw(&self, resource: Resource, mut object: Value) -> Value {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .expect("object has metadata.name")
            .to_owned();
        let namespace = match object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
        {
            Some(ns) => ns.to_owned(),
            None => {
                object["metadata"]["namespace"] = DEFAULT_NAMESPACE.into();
                DEFAULT_NAMESPACE.to_owned()
            }
        };
        let key = Key {
            resource,
            namespace,
            name,
        };
        self.shared
            .store
            .lock()
            .expect("store lock")
            .put(key, object)
    }

    /// The object `namespace/name` of type `K`, if present.
    pub fn get<K: Stored>(&self, namespace: &str, name: &str) -> Option<K> {
        let store = self.shared.store.lock().expect("store lock");
        let object = store.get(&key::<K>(namespace, name))?.clone();
        Some(serde_json::from_value(object).expect("stored object is well-formed"))
    }

    /// Changes the object `namespace/name` of type `K` with `change` and
    /// stores it (under one lock, so nothing interleaves). Returns it.
    ///
    /// # Panics
    ///
    /// When it does not exist.
    pub fn modify<K: Stored>(&self, namespace: &str, name: &str, change: impl FnOnce(&mut K)) -> K {
        let key = key::<K>(namespace, name);
        let mut store = self.shared.store.lock().expect("store lock");
        let current = store
            .get(&key)
            .unwrap_or_else(|| panic!("no {} {namespace}/{name} to modify", K::RESOURCE.kind()))
            .clone();
        let mut object: K = serde_json::from_value(current).expect("stored object is well-formed");
        change(&mut object);
        let value = serde_json::to_value(object).expect("serialize object");
        serde_json::from_value(store.put(key, value)).expect("stored object reads back")
    }

    /// Deletes the object `namespace/name` of type `K`; returns whether it existed.
    pub fn delete<K: Stored>(&self, namespace: &str, name: &str) -> bool {
        let mut store = self.shared.store.lock().expect("store lock");
        store.delete(&key::<K>(namespace, name)).is_some()
    }

    /// Deletes Service `namespace/name`; returns whether it existed.
    pub fn delete_service(&self, namespace: &str, name: &str) -> bool {
        self.delete::<Service>(namespace, name)
    }

    /// Deletes EndpointSlice `namespace/name`; returns whether it existed.
    pub fn delete_endpoint_slice(&self, namespace: &str, name: &str) -> bool {
        self.delete::<EndpointSlice>(namespace, name)
    }

    /// Sets the conditions of the endpoint with `address` in slice
    /// `namespace/slice`, as the EndpointSlice controller does when a pod's
    /// readiness changes.
    ///
    /// # Panics
    ///
    /// When the slice or the address does not exist.
    pub fn set_endpoint_state(
        &self,
        namespace: &str,
        slice: &str,
        address: &str,
        state: EndpointState,
    ) {
        self.modify::<EndpointSlice>(namespace, slice, |s| {
            let endpoint = s
                .endpoints
                .iter_mut()
                .find(|e| e.addresses.iter().any(|a| a == address))
                .unwrap_or_else(|| panic!("no endpoint {address} in slice {namespace}/{slice}"));
            endpoint.conditions = Some(state.conditions());
        });
    }

    /// Adds an endpoint (a pod) to slice `namespace/slice`.
    pub fn add_endpoint(&self, namespace: &str, slice: &str, endpoint: EndpointFixture) {
        self.modify::<EndpointSlice>(namespace, slice, |s| s.endpoints.push(endpoint.build()));
    }

    /// Removes the endpoint with `address` from slice `namespace/slice`;
    /// returns whether it was there.
    pub fn remove_endpoint(&self, namespace: &str, slice: &str, address: &str) -> bool {
        let mut removed = false;
        self.modify::<EndpointSlice>(namespace, slice, |s| {
            let before = s.endpoints.len();
            s.endpoints
                .retain(|e| !e.addresses.iter().any(|a| a == address));
            removed = s.endpoints.len() != before;
        });
        removed
    }

    /// Creates or replaces a GRPCRoute given as JSON (its namespace
    /// defaults to [`DEFAULT_NAMESPACE`]); `apiVersion` and `kind` are
    /// filled in. Returns it as stored.
    pub fn apply_grpc_route(&self, mut route: Value) -> Value {
        route["apiVersion"] = Resource::GrpcRoutes.api_version().into();
        route["kind"] = Resource::GrpcRoutes.kind().into();
        self.apply_raw(Resource::GrpcRoutes, route)
    }

    /// Deletes GRPCRoute `namespace/name`; returns whether it existed.
    pub fn delete_grpc_route(&self, namespace: &str, name: &str) -> bool {
        let mut store = self.shared.store.lock().expect("store lock");
        store
            .delete(&Key {
                resource: Resource::GrpcRoutes,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
            .is_some()
    }

    /// Installs or uninstalls the GRPCRoute CRD: while it is not installed
    /// (the default), every GRPCRoute URL answers 404, as in a cluster
    /// without the Gateway API; objects stored meanwhile stay and show up
    /// once it is installed.
    pub fn set_grpc_routes_installed(&self, installed: bool) {
        self.shared.grpc_routes.store(installed, Ordering::SeqCst);
        if !installed {
            // Open watches end, as when a CRD is deleted.
            self.drop_watches();
        }
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared
            .store
            .lock()
            .expect("store lock")
            .resource_version()
    }

    // ----- watch control -----

    /// Sends a BOOKMARK at the current resourceVersion to every open watch
    /// that allows bookmarks.
    pub fn send_bookmark(&self) {
        let store = self.shared.store.lock().expect("store lock");
        store.signal(Signal::Bookmark(store.resource_version()));
    }

    /// Forgets the change history: a watch resuming from an older
    /// resourceVersion (and a continued list) gets 410 Gone. Open watches
    /// go on.
    pub fn compact(&self) {
        self.shared.store.lock().expect("store lock").compact();
    }

    /// Compacts, then ends every open watch with an ERROR event carrying
    /// 410 Expired: watchers must re-list.
    pub fn expire_watches(&self) {
        let mut store = self.shared.store.lock().expect("store lock");
        store.compact();
        store.signal(Signal::Expire);
    }

    /// Cuts every open watch connection in the middle of its response;
    /// watchers resume from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.shared
            .store
            .lock()
            .expect("store lock")
            .signal(Signal::Drop);
    }

    /// How many watches are open now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    // ----- outages -----

    /// Takes the server down: open connections are closed and new ones are
    /// refused or reset, per `outage`, until [`FakeKube::come_up`].
    pub async fn go_down(&self, outage: Outage) {
        let mut state = self.accept.lock().await;
        let listener = stop_loop(&mut state).await;
        self.shared.cut_connections();
        state.down = Some(outage);
        if let (Outage::Reset, Some(listener)) = (outage, listener) {
            state.stop = self.shutdown.child_token();
            let stop = state.stop.clone();
            state.task = Some(tokio::spawn(accept_loop(
                listener,
                self.shared.clone(),
                stop,
                true,
            )));
        }
    }

    /// Brings the server back on the same port, with the same objects.
    ///
    /// # Panics
    ///
    /// When the port cannot be bound again within 5 s.
    pub async fn come_up(&self) {
        let mut state = self.accept.lock().await;
        let listener = match stop_loop(&mut state).await {
            Some(listener) => listener,
            None => rebind(self.addr).await,
        };
        state.down = None;
        state.stop = self.shutdown.child_token();
        let stop = state.stop.clone();
        state.task = Some(tokio::spawn(accept_loop(
            listener,
            self.shared.clone(),
            stop,
            false,
        )));
    }

    /// Whether the server is down, and how.
    pub async fn outage(&self) -> Option<Outage> {
        self.accept.lock().await.down
    }

    // ----- request accounting -----

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// How many `verb` requests for `resource` were received.
    pub fn count(&self, resource: Resource, verb: Verb) -> usize {
        let requests = self.shared.requests.lock().expect("requests lock");
        requests
            .iter()
            .filter(|r| r.resource == Some(resource) && r.verb == verb)
            .count()
    }

    /// Waits until `condition` holds, re-checking on every request and
    /// watch change (and every 50 ms).
    ///
    /// # Panics
    ///
    /// When it does not hold within `timeout`, naming `what`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&FakeKube) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let activity = self.shared.activity.notified();
            if condition(self) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("fake API server: {what} did not happen within {timeout:?}");
            }
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
                activity,
            )
            .await;
        }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.shared.cut_connections();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn key<K: Stored>(namespace: &str, name: &str) -> Key {
    Key {
        resource: K::RESOURCE,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

/// Stops the current accept loop and returns its listener, if any.
async fn stop_loop(state: &mut AcceptState) -> Option<TcpListener> {
    state.stop.cancel();
    let task = state.task.take()?;
    task.await.ok()
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // Connections closed by the outage linger in TIME_WAIT on this port.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match bind(addr) {
            Ok(listener) => return listener,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%addr, %error, "fake API server: port still busy, retrying");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("fake API server: cannot bind {addr} again: {error}"),
        }
    }
}
