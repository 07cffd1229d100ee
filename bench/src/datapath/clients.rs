//! The four ways to call the greeter backends that are compared.
//!
//! - [`ClientKind::Ours`]: an xds-balancer [`Channel`](xds_balancer::Channel)
//!   fed by the real control plane (strict round robin, one connection per
//!   ready endpoint).
//! - [`ClientKind::Direct`]: a plain tonic `Channel` to the first backend,
//!   the floor any balancer adds overhead to.
//! - [`ClientKind::BalanceChannel`]: tonic's `Channel::balance_channel`
//!   over every backend (tower's power-of-two-choices with equal loads: a
//!   random pick among ready endpoints).
//! - [`ClientKind::Ginepro`]: `ginepro` 0.9.3's `LoadBalancedChannel` (tonic
//!   0.13, `balance_channel` inside), fed by a [`SetLookup`] that returns the
//!   current address set each time it is polled, like DNS records kept up
//!   to date as pods change.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use serde::{Deserialize, Serialize};
use tls_reload::client::{ClientTls, ServerVerification};

/// Every call's deadline.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The name ginepro resolves (through [`SetLookup`], never DNS).
const GINEPRO_HOST: &str = "greeter.default.svc.cluster.local";

/// Errors building a client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Our channel could not be built or never saw a ready endpoint.
    #[error("xds-balancer channel: {0}")]
    Ours(String),
    /// A tonic endpoint could not be built or connected.
    #[error("tonic channel to {addr}: {source}")]
    Tonic {
        /// The backend.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// tonic's balancer stopped taking endpoints.
    #[error("balance_channel stopped taking endpoints")]
    Balance,
    /// ginepro failed to build its channel.
    #[error("ginepro channel: {0}")]
    Ginepro(String),
}

/// Which client.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ClientKind {
    /// xds-balancer over the control plane.
    Ours,
    /// One tonic channel to one backend.
    Direct,
    /// tonic's `balance_channel`.
    BalanceChannel,
    /// ginepro's `LoadBalancedChannel`.
    Ginepro,
    /// A tonic channel through a per-connection L4 balancer.
    ClusterIp,
}

impl ClientKind {
    /// How the report names it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Ours => "xds-balancer (ours)",
            Self::Direct => "tonic Channel, direct to one backend",
            Self::BalanceChannel => "tonic balance_channel",
            Self::Ginepro => "ginepro 0.9.3",
            Self::ClusterIp => "tonic Channel via L4 balancer (\"ClusterIP\")",
        }
    }

    /// A shorter name, for charts.
    pub(crate) fn short_label(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Direct => "direct",
            Self::BalanceChannel => "balance_channel",
            Self::Ginepro => "DNS polling (ginepro)",
            Self::ClusterIp => "ClusterIP (L4)",
        }
    }
}

/// The address set a [`SetLookup`] returns; the harness edits it.
pub(crate) type AddressSet = Arc<Mutex<HashSet<SocketAddr>>>;

/// ginepro's lookup, answered from an in-memory set instead of DNS.
#[derive(Debug, Clone)]
pub(crate) struct SetLookup {
    /// The current addresses.
    pub(crate) addresses: AddressSet,
}

#[tonic::async_trait]
impl ginepro::LookupService for SetLookup {
    async fn resolve_service_endpoints(
        &self,
        _definition: &ginepro::ServiceDefinition,
    ) -> Result<HashSet<SocketAddr>, anyhow::Error> {
        Ok(self
            .addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }
}

/// A client of any kind, cheap to clone per worker.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// xds-balancer.
    Ours(GreeterClient<xds_balancer::Channel>),
    /// Any tonic 0.14 channel (direct, balance_channel, through L4).
    Tonic(GreeterClient<tonic::transport::Channel>),
    /// ginepro (tonic 0.13 stubs).
    Ginepro(greet013::greet::greeter_client::GreeterClient<ginepro::LoadBalancedChannel>),
}

impl Caller {
    /// A greeter client over a tonic channel.
    pub(crate) fn tonic(channel: tonic::transport::Channel) -> Self {
        Self::Tonic(GreeterClient::new(channel))
    }

    /// One SayHello; the `served_by` of the reply, or the error's text.
    pub(crate) async fn say_hello(&mut self) -> Result<String, String> {
        let call = async {
            match self {
                Self::Ours(client) => client
                    .say_hello(request())
                    .await
                    .map(|r| r.into_inner().served_by)
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
                Self::Tonic(client) => client
                    .say_hello(request())
                    .await
                    .map(|r| r.into_inner().served_by)
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
                Self::Ginepro(client) => {
                    let mut request = tonic013::Request::new(greet013::greet::HelloRequest {
                        name: "bench".to_owned(),
                        delay_ms: 0,
                    });
                    request.set_timeout(CALL_TIMEOUT);
                    client
                        .say_hello(request)
                        .await
                        .map(|r| r.into_inner().served_by)
                        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
                }
            }
        };
        tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(1), call)
            .await
            .unwrap_or_else(|_| Err("no answer within the call's deadline".to_owned()))
    }
}

fn request() -> tonic::Request<HelloRequest> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "bench".to_owned(),
        delay_ms: 0,
    });
    request.set_timeout(CALL_TIMEOUT);
    request
}

fn endpoint(addr: SocketAddr) -> Result<tonic::transport::Endpoint, Error> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map(|e| e.connect_timeout(Duration::from_secs(5)))
        .map_err(|source| Error::Tonic { addr, source })
}

/// xds-balancer through the control plane at `control_plane`, once every
/// ready endpoint is connected.
pub(crate) async fn ours(control_plane: SocketAddr) -> Result<Caller, Error> {
    ours_for(control_plane, "greeter", None).await
}

/// xds-balancer for `service`, with certificate provider instance
/// `default` when `provider` is given (TLS itself is the Cluster's word).
pub(crate) async fn ours_for(
    control_plane: SocketAddr,
    service: &str,
    provider: Option<xds_balancer::CertificateProvider>,
) -> Result<Caller, Error> {
    let mut builder = xds_balancer::Builder::new(format!("xds:///{service}"))
        .control_plane(format!("http://{control_plane}"))
        .node_id("bench-datapath");
    if let Some(provider) = provider {
        builder = builder.certificate_provider("default", provider);
    }
    let channel = builder
        .connect()
        .await
        .map_err(|e| Error::Ours(e.to_string()))?;
    channel
        .settled(Duration::from_secs(20))
        .await
        .map_err(|s| Error::Ours(s.message().to_owned()))?;
    Ok(Caller::Ours(GreeterClient::new(channel)))
}

/// A plain tonic channel to `addr`, connected.
pub(crate) async fn direct(addr: SocketAddr) -> Result<Caller, Error> {
    let channel = endpoint(addr)?
        .connect()
        .await
        .map_err(|source| Error::Tonic { addr, source })?;
    Ok(Caller::Tonic(GreeterClient::new(channel)))
}

/// A plain tonic channel to `addr` through the TLS connector our channel
/// uses too (`tls_reload`): TCP with `TCP_NODELAY`, then, with `tls`, the
/// TLS handshake. Connected.
pub(crate) async fn through_connector(
    addr: SocketAddr,
    tls: Option<(ClientTls, ServerVerification)>,
) -> Result<tonic::transport::Channel, Error> {
    endpoint(addr)?
        .connect_with_connector(tls_reload::client::Connector::new(tls))
        .await
        .map_err(|source| Error::Tonic { addr, source })
}

/// tonic's `balance_channel` over `addrs`.
pub(crate) async fn balance_channel(addrs: &[SocketAddr]) -> Result<Caller, Error> {
    let (channel, changes) = tonic::transport::Channel::balance_channel::<SocketAddr>(64);
    for &addr in addrs {
        changes
            .send(tonic::transport::channel::Change::Insert(
                addr,
                endpoint(addr)?,
            ))
            .await
            .map_err(|_| Error::Balance)?;
    }
    Ok(Caller::Tonic(GreeterClient::new(channel)))
}

/// ginepro over whatever `addresses` holds when it polls (every
/// `probe_interval`; ginepro's default is 10 s).
pub(crate) async fn ginepro(
    addresses: AddressSet,
    probe_interval: Option<Duration>,
) -> Result<Caller, Error> {
    let mut builder = ginepro::LoadBalancedChannel::builder((GINEPRO_HOST, 80u16))
        .lookup_service(SetLookup { addresses })
        .timeout(CALL_TIMEOUT)
        .resolution_strategy(ginepro::ResolutionStrategy::Eager {
            timeout: Duration::from_secs(5),
        });
    if let Some(interval) = probe_interval {
        builder = builder.dns_probe_interval(interval);
    }
    let channel = builder
        .channel()
        .await
        .map_err(|e| Error::Ginepro(format!("{e:#}")))?;
    Ok(Caller::Ginepro(
        greet013::greet::greeter_client::GreeterClient::new(channel),
    ))
}
