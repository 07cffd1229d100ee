//! What the static source's tests share: a store to run the source
//! against, waiting for a snapshot condition, temporary directories, and an
//! in-process grpc.health.v1 server whose answers the test controls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use control_plane::model::{Endpoint, Readiness};
use control_plane::names::Naming;
use control_plane::source::{SourceKind, SourceStatus};
use control_plane::store::{Catalog, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, WatchStream};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{self as health_server, Health};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// Upper bound for any awaited condition.
pub(crate) const WAIT: Duration = Duration::from_secs(15);
/// Upper bound for a whole test.
pub(crate) const TEST_LIMIT: Duration = Duration::from_secs(90);

/// An empty store for namespace `default`.
pub(crate) fn store() -> Arc<Store> {
    Store::new(
        Naming::new("default"),
        SourceStatus::starting(SourceKind::Static, "test"),
    )
}

/// Waits (at most [`WAIT`]) until `ok` holds for the store's snapshot, and
/// returns that snapshot.
pub(crate) async fn wait_for(
    store: &Store,
    what: &str,
    mut ok: impl FnMut(&Catalog) -> bool,
) -> Arc<Catalog> {
    let mut updates = store.subscribe();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let snapshot = updates.borrow_and_update().clone();
        if ok(&snapshot) {
            return snapshot;
        }
        if !matches!(
            tokio::time::timeout_at(deadline, updates.changed()).await,
            Ok(Ok(()))
        ) {
            panic!(
                "timed out waiting for {what}; last snapshot:\n{}",
                describe(&snapshot)
            );
        }
    }
}

/// The endpoint `addr` of `service` in `snapshot`, if listed.
pub(crate) fn endpoint(snapshot: &Catalog, service: &str, addr: SocketAddr) -> Option<Endpoint> {
    snapshot
        .services
        .get(service)?
        .service
        .ports
        .iter()
        .flat_map(|p| &p.endpoints)
        .find(|e| e.socket_addr() == addr)
        .cloned()
}

/// Whether endpoint `addr` of `service` is in `state` with a detail that
/// starts with `detail` (any detail when `None`).
pub(crate) fn is(
    snapshot: &Catalog,
    service: &str,
    addr: SocketAddr,
    state: Readiness,
    detail: Option<&str>,
) -> bool {
    endpoint(snapshot, service, addr).is_some_and(|e| {
        e.state == state
            && detail.is_none_or(|d| e.detail.as_deref().is_some_and(|got| got.starts_with(d)))
    })
}

/// The snapshot, readable in a failure message.
pub(crate) fn describe(snapshot: &Catalog) -> String {
    let mut text = format!(
        "source: {} (last error: {:?})\n",
        snapshot.source.state,
        snapshot.source.last_error.as_ref().map(|e| &e.text)
    );
    for (name, entry) in snapshot.services.iter() {
        text += &format!("service {name} (revision {}):\n", entry.revision);
        for port in &entry.service.ports {
            for e in &port.endpoints {
                text += &format!(
                    "  port {}: {} {} {:?}\n",
                    port.port,
                    e.socket_addr(),
                    e.state,
                    e.detail
                );
            }
        }
    }
    text
}

/// A directory under the target folder, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port on 127.0.0.1 that nothing listens on (just released by the OS).
pub(crate) async fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Counts of what a [`HealthServer`] was asked.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    pub(crate) watches: AtomicUsize,
    pub(crate) open_watches: AtomicUsize,
    pub(crate) checks: AtomicUsize,
}

struct OpenWatch(Arc<Calls>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

struct ScriptedHealth {
    status: watch::Receiver<ServingStatus>,
    watch_implemented: bool,
    hang_checks: Arc<AtomicBool>,
    calls: Arc<Calls>,
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: tonic_health::pb::health_check_response::ServingStatus::from(status) as i32,
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for ScriptedHealth {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.calls.checks.fetch_add(1, Ordering::SeqCst);
        if self.hang_checks.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(Response::new(response(*self.status.borrow())))
    }

    type WatchStream = ResponseStream;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<ResponseStream>, Status> {
        self.calls.watches.fetch_add(1, Ordering::SeqCst);
        if !self.watch_implemented {
            return Err(Status::unimplemented("no Watch here"));
        }
        self.calls.open_watches.fetch_add(1, Ordering::SeqCst);
        let open = OpenWatch(self.calls.clone());
        let stream = WatchStream::new(self.status.clone()).map(move |status| {
            let _open = &open;
            Ok(response(status))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// An in-process gRPC server with only grpc.health.v1, answering what the
/// test sets. Stops with the test's runtime.
pub(crate) struct HealthServer {
    pub(crate) addr: SocketAddr,
    pub(crate) calls: Arc<Calls>,
    status: watch::Sender<ServingStatus>,
    hang_checks: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthServer {
    /// Serves SERVING on 127.0.0.1:0; `watch_implemented: false` answers
    /// Watch with UNIMPLEMENTED.
    pub(crate) async fn start(watch_implemented: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (status, status_rx) = watch::channel(ServingStatus::Serving);
        let calls = Arc::new(Calls::default());
        let hang_checks = Arc::new(AtomicBool::new(false));
        let service = ScriptedHealth {
            status: status_rx,
            watch_implemented,
            hang_checks: hang_checks.clone(),
            calls: calls.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(health_server::HealthServer::new(service))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        Self {
            addr,
            calls,
            status,
            hang_checks,
            task,
        }
    }

    /// Answers `status` from now on (and tells open watches).
    pub(crate) fn set(&self, status: ServingStatus) {
        self.status.send_replace(status);
    }

    /// Checks from now on never answer.
    pub(crate) fn hang_checks(&self) {
        self.hang_checks.store(true, Ordering::SeqCst);
    }

    pub(crate) fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
