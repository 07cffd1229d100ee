//! Building a channel: the [`Builder`], the composition root that wires
//! the shared xDS client, the channel and its pool together. Its settings
//! are checked and resolved (builder, bootstrap, environment) in `prepare`.

mod prepare;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::bootstrap::{Bootstrap, CertificateProvider, ControlPlaneTls};
use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::options::{Config, RetryPolicy};
use crate::sniff::PrefaceAnswer;
use crate::xds::client::XdsClient;
use crate::xds::task::{ConnectError, TaskSettings};

/// Where the bootstrap comes from, when the builder was given one.
#[derive(Debug, Clone)]
enum BootstrapSource {
    File(PathBuf),
    Parsed(Bootstrap),
}

/// The environment variable naming the control plane (`http://host:port`)
/// when neither the builder nor a gRPC bootstrap does.
pub const CONTROL_PLANE_ENV: &str = "CONTROL_PLANE";

/// Builds a [`Channel`].
///
/// The control plane comes from the first of: [`Builder::control_plane`];
/// [`Builder::bootstrap`] or [`Builder::bootstrap_file`]; the gRPC xDS
/// bootstrap named by `GRPC_XDS_BOOTSTRAP` (a file) or
/// `GRPC_XDS_BOOTSTRAP_CONFIG` (its contents); the address in
/// `CONTROL_PLANE`. Those three variables are all the library reads from
/// the environment (besides `POD_NAME` for the default node id).
///
/// An address is `http://host:port`, or `host:port` for the same, or
/// `https://host:port` with [`Builder::control_plane_tls`] (as
/// `control-plane status --control-plane` takes it).
///
/// ```no_run
/// # async fn example() -> Result<(), xds_balancer::Error> {
/// let channel = xds_balancer::Builder::new("xds:///greeter")
///     .control_plane("http://control-plane:18000")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    target: String,
    control_plane: Option<String>,
    bootstrap: Option<BootstrapSource>,
    node_id: Option<String>,
    zone: Option<String>,
    certificate_providers: BTreeMap<String, CertificateProvider>,
    control_plane_tls: Option<ControlPlaneTls>,
    config: Config,
}

impl Builder {
    /// A builder for `target`: `xds:///<service>[:<port>]` or
    /// `<service>[:<port>]`.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            control_plane: None,
            bootstrap: None,
            node_id: None,
            zone: None,
            certificate_providers: BTreeMap::new(),
            control_plane_tls: None,
            config: Config::default(),
        }
    }

    /// The control plane's address, `http://host:port` (or `host:port`), or
    /// `https://host:port` with [`Builder::control_plane_tls`].
    #[must_use]
    pub fn control_plane(mut self, uri: impl Into<String>) -> Self {
        self.control_plane = Some(uri.into());
        self
    }

    /// Reads the control plane and node from a gRPC xDS bootstrap file
    /// (when the channel is built).
    #[must_use]
    pub fn bootstrap_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.bootstrap = Some(BootstrapSource::File(path.into()));
        self
    }

    /// Takes the control plane and node from a parsed bootstrap
    /// ([`Bootstrap::from_json`], [`Bootstrap::from_file`]).
    #[must_use]
    pub fn bootstrap(mut self, bootstrap: Bootstrap) -> Self {
        self.bootstrap = Some(BootstrapSource::Parsed(bootstrap));
        self
    }

    /// The node id sent to the control plane (default: the bootstrap's,
    /// else `POD_NAME`, else the host name).
    #[must_use]
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(id.into());
        self
    }

    /// The zone this client runs in, sent as its node's `locality.zone`
    /// (default: the bootstrap's `node.locality.zone`, else none). A control
    /// plane that keeps calls in the caller's zone gives this client that
    /// zone's endpoints at priority 0 and the others as failover.
    #[must_use]
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// TLS to the control plane (its address must then be `https://`): the
    /// CA its certificate must chain to, and the client's certificate when
    /// the control plane requires one. The bootstrap's `channel_creds`
    /// `tls` says the same.
    #[must_use]
    pub fn control_plane_tls(mut self, tls: ControlPlaneTls) -> Self {
        self.control_plane_tls = Some(tls);
        self
    }

    /// Defines a certificate provider instance that TLS Clusters may name
    /// (as the bootstrap's `certificate_providers` do; this one wins over a
    /// bootstrap's of the same name). A Cluster's `transport_socket` then
    /// says which instance gives the client's identity, which the roots,
    /// and which SANs a server certificate must have.
    #[must_use]
    pub fn certificate_provider(
        mut self,
        name: impl Into<String>,
        provider: CertificateProvider,
    ) -> Self {
        self.certificate_providers.insert(name.into(), provider);
        self
    }

    /// Replaces all options.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets [`Config::connect_timeout`].
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Sets [`Config::keepalive_interval`] and [`Config::keepalive_timeout`].
    #[must_use]
    pub fn keepalive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.config.keepalive_interval = interval;
        self.config.keepalive_timeout = timeout;
        self
    }

    /// Sets [`Config::wait_for_ready`].
    #[must_use]
    pub fn wait_for_ready(mut self, wait: bool) -> Self {
        self.config.wait_for_ready = wait;
        self
    }

    /// Sets [`Config::default_wait`].
    #[must_use]
    pub fn default_wait(mut self, wait: Duration) -> Self {
        self.config.default_wait = wait;
        self
    }

    /// Sets [`Config::retry`].
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = Some(policy);
        self
    }

    /// Turns on client-side health checking of `service` ([`Config::health_check`]).
    #[must_use]
    pub fn health_check(mut self, service: impl Into<String>) -> Self {
        self.config.health_check = Some(service.into());
        self
    }

    /// Sets both backoff schedules.
    #[must_use]
    pub fn backoff(mut self, control_plane: Backoff, endpoints: Backoff) -> Self {
        self.config.control_plane_backoff = control_plane;
        self.config.endpoint_backoff = endpoints;
        self
    }

    /// Checks the settings, connects to the control plane once (so a wrong
    /// address fails here) and starts discovery. Calls made before the
    /// first endpoints arrive wait for them.
    pub async fn connect(self) -> Result<Channel> {
        let prepared = self.prepare()?;
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let settings = prepared.xds_settings()?;
        let uri = prepared.control_plane.clone();
        let providers = prepared.providers.clone();
        match XdsClient::connect(settings.clone(), prepared.node.clone(), providers.names()).await {
            Ok(client) => Channel::start(prepared.target, prepared.config, client, providers),
            Err(error) if error.not_ads() => Err(Error::NotAds { uri }),
            Err(error) => Err(Error::ControlPlaneUnreachable {
                reason: diagnose(&settings, &error).await,
                uri,
            }),
        }
    }

    /// Checks the settings and starts discovery without waiting for the
    /// control plane. Must run within a Tokio runtime.
    pub fn connect_lazy(self) -> Result<Channel> {
        let prepared = self.prepare()?;
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let providers = prepared.providers.clone();
        let client = XdsClient::lazy(
            prepared.xds_settings()?,
            prepared.node.clone(),
            providers.names(),
        );
        Channel::start(prepared.target, prepared.config, client, providers)
    }
}

/// Why the control plane could not be reached, as precisely as a second
/// look at the address can tell: an HTTP/1.1 server, a TLS port, a server
/// refusing cleartext HTTP/2 say so, where the transport's error would only
/// say that the connection closed.
async fn diagnose(settings: &TaskSettings, error: &ConnectError) -> String {
    let cause = error.cause();
    if settings.tls.is_some() {
        // A TLS handshake names its own failure; a cleartext look would not help.
        return cause;
    }
    let Some(authority) = settings
        .uri
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.authority().map(|a| a.to_string()))
    else {
        return cause;
    };
    match crate::sniff::sniff(&authority, settings.connect_timeout).await {
        answer @ (PrefaceAnswer::Http1
        | PrefaceAnswer::Http11Required
        | PrefaceAnswer::Tls
        | PrefaceAnswer::Closed
        | PrefaceAnswer::Other(_)) => answer.problem().unwrap_or(cause),
        _ => cause,
    }
}
