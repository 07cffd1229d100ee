//! A small system for the phase tests: greeter-server processes, a
//! control-plane process on a watched static file, and clients built on the
//! greeter-client library in the test process.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use serde_json::json;
use tests::Process;
use tests::static_file::StaticFile;
use tokio::sync::watch;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use xds_balancer::{Backoff, Channel, EndpointSet, RetryPolicy};

/// Upper bound for the client to see a change the test made.
pub(crate) const SEE_WITHIN: Duration = Duration::from_secs(10);

/// A greeter-server process.
pub(crate) struct Backend {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    pub(crate) process: Process,
}

/// Starts a greeter-server named `name` with `extra` flags.
pub(crate) async fn backend(name: &str, extra: &[&str]) -> Backend {
    let mut args = vec!["--listen", "127.0.0.1:0", "--name", name];
    args.extend_from_slice(extra);
    let mut process = Process::spawn(name, "greeter-server", &args);
    let addr = process.wait_listening().await;
    Backend {
        name: name.to_owned(),
        addr,
        process,
    }
}

/// The control plane and the static file it watches.
pub(crate) struct ControlPlane {
    pub(crate) addr: SocketAddr,
    pub(crate) process: Process,
    file: StaticFile,
}

impl ControlPlane {
    /// Serves service `greeter` with `backends`, probing them.
    pub(crate) async fn start(backends: &[&Backend]) -> Self {
        let endpoints: Vec<(&str, SocketAddr)> =
            backends.iter().map(|b| (b.name.as_str(), b.addr)).collect();
        Self::start_with(&endpoints).await
    }

    /// Serves service `greeter` with `endpoints` (instance name, address),
    /// probing them.
    pub(crate) async fn start_with(endpoints: &[(&str, SocketAddr)]) -> Self {
        let file = StaticFile::new("phase-test", &services(endpoints));
        let mut process = spawn(file.path(), "127.0.0.1:0");
        let addr = process.wait_listening().await;
        Self {
            addr,
            process,
            file,
        }
    }

    /// Stops the control plane (SIGTERM) and waits for it to exit.
    pub(crate) async fn stop(&mut self) {
        self.process.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.process.wait_exit(Duration::from_secs(15)).await;
        assert!(status.success(), "control plane stopped with {status}");
    }

    /// Starts the stopped control plane again on the same port.
    pub(crate) async fn start_again(&mut self) {
        self.process = spawn(self.file.path(), &self.addr.to_string());
        let addr = self.process.wait_listening().await;
        assert_eq!(addr, self.addr, "restarted on the same port");
    }

    /// A client of `xds:///greeter` through this control plane, settled on
    /// its first endpoints.
    pub(crate) async fn client(&self, retry: bool) -> Channel {
        let mut builder = xds_balancer::Builder::new("xds:///greeter")
            .control_plane(format!("http://{}", self.addr))
            .node_id("phase-test")
            .backoff(Backoff::fast(), Backoff::fast());
        if retry {
            builder = builder.retry_policy(RetryPolicy::for_methods(["/greet.Greeter/SayHello"]));
        }
        let channel = builder.connect().await.expect("client connects");
        channel.settled(SEE_WITHIN).await.expect("endpoints ready");
        channel
    }
}

fn spawn(file: &std::path::Path, listen: &str) -> Process {
    Process::spawn(
        "control-plane",
        "control-plane",
        &[
            "serve",
            "--listen",
            listen,
            "--source",
            "static",
            "--static-file",
            &file.display().to_string(),
            "--file-poll-interval",
            "100ms",
            "--probe-interval",
            "500ms",
        ],
    )
}

/// Service `greeter` with `endpoints` (instance name, address).
fn services(endpoints: &[(&str, SocketAddr)]) -> serde_json::Value {
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|(name, addr)| json!({"address": addr.to_string(), "instance": name}))
        .collect();
    json!({"services": [{"name": "greeter", "port": 80, "endpoints": endpoints}]})
}

/// Waits until the client's endpoints meet `done`.
pub(crate) async fn wait_view(
    endpoints: &watch::Receiver<EndpointSet>,
    what: &str,
    done: impl Fn(&EndpointSet) -> bool,
) {
    let mut endpoints = endpoints.clone();
    let seen = tokio::time::timeout(SEE_WITHIN, endpoints.wait_for(|set| done(set)))
        .await
        .is_ok_and(|seen| seen.is_ok());
    assert!(
        seen,
        "the client did not see {what}: {:?}",
        endpoints.borrow()
    );
}

/// Whether the client sends new calls to `name`.
pub(crate) fn takes_calls(set: &EndpointSet, name: &str) -> bool {
    set.ready().any(|e| e.hostname == name)
}

/// One SayHello asking the server to wait `delay_ms`; returns who served it.
pub(crate) async fn hello(channel: &Channel, delay_ms: u32) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "phase".to_owned(),
        delay_ms,
    });
    request.set_timeout(Duration::from_secs(20));
    GreeterClient::new(channel.clone())
        .say_hello(request)
        .await
        .map(|reply| reply.into_inner().served_by)
}

/// A backend from outside the project: a grpc.health.v1 server that, like a
/// pod still starting, gives its first health answer (SERVING) only after
/// `delay`. Stops when the handle is dropped.
pub(crate) async fn slow_to_answer(delay: Duration) -> (SocketAddr, AbortOnDrop) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tonic::transport::Server::builder()
        .add_service(HealthServer::new(SlowHealth { delay }))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let task = tokio::spawn(async move {
        let _ = server.await;
    });
    (addr, AbortOnDrop(task))
}

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct SlowHealth {
    delay: Duration,
}

fn serving() -> HealthCheckResponse {
    HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    }
}

#[tonic::async_trait]
impl Health for SlowHealth {
    async fn check(
        &self,
        _request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        tokio::time::sleep(self.delay).await;
        Ok(tonic::Response::new(serving()))
    }

    type WatchStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<HealthCheckResponse, tonic::Status>> + Send>,
    >;

    async fn watch(
        &self,
        _request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        tokio::time::sleep(self.delay).await;
        let answers =
            futures::stream::once(async { Ok(serving()) }).chain(futures::stream::pending());
        Ok(tonic::Response::new(Box::pin(answers)))
    }
}
