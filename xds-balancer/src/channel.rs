//! The [`Channel`]: what applications hold and tonic clients call through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::body::ResponseBody;
use crate::call::Shared;
use crate::error::{Error, Result};
use crate::options::Config;
use crate::pool::conn::{ConnSettings, RequestBody};
use crate::pool::subchannel::PoolSettings;
use crate::pool::tls::Providers;
use crate::router;
use crate::target::Target;
use crate::view::{ConnectionState, EndpointSet, ServiceStatus};
use crate::xds::client::XdsClient;

/// A cloneable gRPC channel that spreads calls round-robin over the ready
/// endpoints of one service, as the control plane reports them.
///
/// It is a `tower::Service<http::Request<tonic::body::Body>>`, so any
/// tonic-generated client takes it: `GreeterClient::new(channel)`. Clones
/// share everything (connections, rotation); the background tasks stop
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Channel {
    shared: Arc<Shared>,
}

impl Channel {
    /// Subscribes to the target on `client` and starts the pool.
    pub(crate) fn start(
        target: Target,
        config: Config,
        client: Arc<XdsClient>,
        providers: Arc<Providers>,
    ) -> Result<Self> {
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let name: Arc<str> = target.name().into();
        // A named port ("greeter:grpc") is not a valid authority; the host
        // alone is (the target parser checked its characters).
        let authority = target
            .name()
            .parse::<Authority>()
            .or_else(|_| target.host().parse::<Authority>())
            .unwrap_or_else(|_| Authority::from_static("localhost"));
        let stop = CancellationToken::new();
        let subscription = client.subscribe(&name);
        let settings = Arc::new(PoolSettings {
            conn: ConnSettings {
                connect_timeout: config.connect_timeout,
                keepalive_interval: config.keepalive_interval,
                keepalive_timeout: config.keepalive_timeout,
            },
            backoff: config.endpoint_backoff,
            health_service: config.health_check.clone(),
            authority: authority.clone(),
            providers,
        });
        let router = router::start(
            name.clone(),
            settings,
            subscription.resolution.clone(),
            subscription.control_plane(),
            stop.clone(),
        );
        Ok(Self {
            shared: Arc::new(Shared {
                router,
                config,
                authority,
                target: name,
                _stop: stop.drop_guard(),
                _subscription: subscription,
            }),
        })
    }

    /// The target (the Listener name), e.g. `greeter` or `greeter:80`.
    pub fn target(&self) -> &str {
        &self.shared.target
    }

    /// The endpoints and their connections, updated on every change: for
    /// logs, metrics and readiness checks.
    pub fn endpoints(&self) -> watch::Receiver<EndpointSet> {
        self.shared.router.view.subscribe()
    }

    /// Waits (at most `timeout`) until the service is resolved and every
    /// endpoint the control plane lists as ready has finished its first
    /// connection attempt, and returns the endpoints then. Useful before a
    /// first burst of calls, so every endpoint takes its share from the
    /// start.
    ///
    /// Fails with the UNAVAILABLE status a call would get when the service
    /// does not exist, or nothing is ready when the time is up.
    pub async fn settled(&self, timeout: Duration) -> Result<EndpointSet, Status> {
        let mut view = self.endpoints();
        let settled = |set: &EndpointSet| match set.service {
            ServiceStatus::Resolved { .. } => {
                set.ready().next().is_some()
                    && !set
                        .endpoints
                        .iter()
                        .any(|e| e.connection == ConnectionState::Connecting)
            }
            ServiceStatus::DoesNotExist(_) | ServiceStatus::Unusable(_) => true,
            ServiceStatus::Waiting(_) => false,
        };
        let outcome = tokio::time::timeout(timeout, view.wait_for(settled)).await;
        let pools = self.shared.router.pools();
        let snapshots: Vec<_> = pools.iter().map(|core| core.picker.snapshot()).collect();
        if let Some(status) = snapshots.iter().find_map(|s| s.why.fail_fast()) {
            return Err(status);
        }
        match (outcome, snapshots.first()) {
            (Ok(Ok(set)), _) => Ok(set.clone()),
            (_, Some(snapshot)) => Err(snapshot.why.status(timeout)),
            (_, None) => Err(Status::unavailable("the channel has no endpoint pool")),
        }
    }
}

/// The future of a call through a [`Channel`].
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Status>> + Send>>,
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<ResponseBody>, Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl tower::Service<http::Request<RequestBody>> for Channel {
    type Response = http::Response<ResponseBody>;
    type Error = Status;
    type Future = ResponseFuture;

    /// Always ready: waiting for an endpoint happens inside each call,
    /// bounded by the call's deadline.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        ResponseFuture {
            inner: Box::pin(crate::call::call(self.shared.clone(), request)),
        }
    }
}
