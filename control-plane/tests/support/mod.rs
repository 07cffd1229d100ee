//! An in-process control plane on a loopback port, fed by the test through
//! the real store and source handle (the test plays the source).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use control_plane::metrics::Metrics;
use control_plane::model::{Endpoint, Readiness, Service, ServicePort};
use control_plane::names::Naming;
use control_plane::server::{self, Outcome};
use control_plane::source::{SourceHandle, SourceKind, SourceState, SourceStatus};
use control_plane::store::Store;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// Canonical name of greeter's Cluster, route and assignment.
pub const GREETER_CLUSTER: &str = "greeter.default.svc.cluster.local:80";

/// A running control plane. Stopped (abruptly) on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    stop: mpsc::UnboundedSender<&'static str>,
    task: JoinHandle<Result<Outcome, server::Error>>,
}

impl TestServer {
    /// Serves `services`, with the source already synced.
    pub async fn start(services: Vec<Service>) -> Self {
        Self::start_with(services, server::Config::default()).await
    }

    /// Like [`TestServer::start`], with `config`.
    pub async fn start_with(services: Vec<Service>, config: server::Config) -> Self {
        let server = Self::start_unsynced(config).await;
        let handle = server.source();
        let rejected = handle.replace_all(services, "test set-up");
        assert!(rejected.is_empty(), "{rejected:?}");
        handle.set_state(SourceState::Connected, None);
        server
    }

    /// A server whose source has not finished its first sync: the test
    /// reports services and the state through [`TestServer::source`].
    pub async fn start_unsynced(config: server::Config) -> Self {
        let store = Store::new(
            Naming::new("default"),
            SourceStatus::starting(SourceKind::Static, "test"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let metrics = Arc::new(Metrics::new());
        let (stop, stops) = mpsc::unbounded_channel();
        let task = tokio::spawn(server::run(
            listener,
            store.clone(),
            metrics.clone(),
            config,
            UnboundedReceiverStream::new(stops),
        ));
        Self {
            addr,
            store,
            metrics,
            stop,
            task,
        }
    }

    /// The source handle, to change services while serving.
    pub fn source(&self) -> SourceHandle {
        self.store.source_handle()
    }

    /// Asks the server to stop and waits for it.
    pub async fn stop(mut self) -> Outcome {
        let _ = self.stop.send("test");
        (&mut self.task)
            .await
            .expect("server task")
            .expect("server ran")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `greeter` (port 80, named `grpc`) with `endpoints` in their states.
pub fn greeter(endpoints: &[(&str, Readiness)]) -> Service {
    service("greeter", endpoints)
}

/// Service `name` (port 80, named `grpc`) with `endpoints` in their states.
pub fn service(name: &str, endpoints: &[(&str, Readiness)]) -> Service {
    Service {
        name: name.to_owned(),
        namespace: "default".to_owned(),
        ports: vec![ServicePort {
            name: Some("grpc".to_owned()),
            port: 80,
            endpoints: endpoints
                .iter()
                .map(|(addr, state)| Endpoint {
                    state: *state,
                    ..Endpoint::ready(addr.parse().expect("ip:port"))
                })
                .collect(),
        }],
        tls: None,
        policy: Default::default(),
    }
}

/// A ready endpoint at `addr`.
pub fn ready(addr: &str) -> (&str, Readiness) {
    (addr, Readiness::Ready)
}
