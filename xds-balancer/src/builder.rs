//! Building a channel: the [`Builder`], the composition root that wires
//! the shared xDS client, the channel and its pool together.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};

use crate::backoff::Backoff;
use crate::bootstrap::{Bootstrap, CertificateProvider, ControlPlaneTls};
use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::options::{Config, RetryPolicy};
use crate::pool::tls::Providers;
use crate::sniff::PrefaceAnswer;
use crate::target::Target;
use crate::xds::client::XdsClient;
use crate::xds::task::{ConnectError, TaskSettings};
use tls_reload::client::{ClientTls, ClientTlsFiles, ServerVerification};

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

    fn prepare(self) -> Result<Prepared> {
        let target = Target::parse(&self.target)?;
        let bootstrap = match (&self.control_plane, self.bootstrap) {
            (_, Some(BootstrapSource::File(path))) => Some(Bootstrap::from_file(&path)?),
            (_, Some(BootstrapSource::Parsed(bootstrap))) => Some(bootstrap),
            (Some(_), None) => None,
            (None, None) => Bootstrap::from_env()?,
        };
        let mut providers = bootstrap
            .as_ref()
            .map(|b| b.certificate_providers.clone())
            .unwrap_or_default();
        providers.extend(self.certificate_providers);
        let control_plane_tls = match (&self.control_plane, self.control_plane_tls) {
            (_, Some(tls)) => Some(tls),
            // The bootstrap's credentials go with the bootstrap's address.
            (Some(_), None) => None,
            (None, None) => bootstrap.as_ref().and_then(|b| b.control_plane_tls.clone()),
        };
        let control_plane = match (self.control_plane, &bootstrap) {
            (Some(uri), _) => uri,
            (None, Some(bootstrap)) => bootstrap.control_plane.clone(),
            (None, None) => std::env::var(CONTROL_PLANE_ENV)
                .ok()
                .filter(|uri| !uri.is_empty())
                .ok_or(Error::NoControlPlane)?,
        };
        let control_plane = control_plane_uri(&control_plane, control_plane_tls.is_some())?;
        let node_id = self
            .node_id
            .or_else(|| bootstrap.as_ref().and_then(|b| b.node_id.clone()))
            .or_else(|| std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(hostname);
        let node = Node {
            id: node_id,
            cluster: bootstrap
                .as_ref()
                .and_then(|b| b.node_cluster.clone())
                .unwrap_or_default(),
            locality: self
                .zone
                .or_else(|| bootstrap.as_ref().and_then(|b| b.zone.clone()))
                .filter(|zone| !zone.is_empty())
                .map(|zone| Locality {
                    zone,
                    ..Default::default()
                }),
            user_agent_name: crate::USER_AGENT_NAME.into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion(
                crate::VERSION.into(),
            )),
            ..Default::default()
        };
        Ok(Prepared {
            target,
            control_plane,
            node,
            providers: Arc::new(Providers::new(providers)),
            control_plane_tls,
            config: self.config,
        })
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

/// The machine's host name (in a pod: the pod name), or `"unknown"`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Checks a control plane address and returns it as a URI: `host:port`
/// means `http://host:port`. The scheme must match the credentials: never
/// plaintext where TLS was asked for, nor the reverse.
fn control_plane_uri(address: &str, tls: bool) -> Result<String> {
    let invalid = |reason: &str| Error::ControlPlaneUri {
        uri: address.to_owned(),
        reason: reason.to_owned(),
    };
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match (parsed.scheme_str(), tls) {
        (Some("http"), false) | (Some("https"), true) => {}
        (Some("http"), true) => {
            return Err(invalid(
                "TLS settings for the control plane are given, but the address is http://; \
                 use https://",
            ));
        }
        (Some("https"), false) => {
            return Err(invalid(
                "https:// needs TLS settings: Builder::control_plane_tls, or the bootstrap's \
                 channel_creds tls",
            ));
        }
        _ => return Err(invalid("the scheme must be http:// or https://")),
    }
    match parsed.authority() {
        Some(authority) if !authority.host().is_empty() => match authority.port_u16() {
            Some(_) => Ok(uri),
            None => Err(invalid(
                "no port (or not a number): the control plane listens on 18000 unless told otherwise",
            )),
        },
        _ => Err(invalid("no host")),
    }
}

/// Checked settings, ready to start a channel.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) target: Target,
    pub(crate) control_plane: String,
    pub(crate) node: Node,
    pub(crate) providers: Arc<Providers>,
    pub(crate) control_plane_tls: Option<ControlPlaneTls>,
    pub(crate) config: Config,
}

impl Prepared {
    /// How to reach the control plane; loads its TLS files (so a missing
    /// or broken one fails here), within a Tokio runtime.
    pub(crate) fn xds_settings(&self) -> Result<TaskSettings> {
        let tls = match &self.control_plane_tls {
            None => None,
            Some(tls) => {
                let files = ClientTlsFiles {
                    ca: tls.ca_certificate_file.clone(),
                    cert: tls.certificate_file.clone(),
                    key: tls.private_key_file.clone(),
                };
                let client = ClientTls::load(&files).map_err(|error| Error::ControlPlaneUri {
                    uri: self.control_plane.clone(),
                    reason: format!("its TLS files: {}", crate::error::error_chain(&error)),
                })?;
                let host = self
                    .control_plane
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
                    .unwrap_or_default();
                Some((client, ServerVerification::Hostname(host)))
            }
        };
        Ok(TaskSettings {
            uri: self.control_plane.clone(),
            tls,
            tls_files: self.control_plane_tls.clone(),
            connect_timeout: self.config.connect_timeout,
            keepalive_interval: self.config.keepalive_interval,
            keepalive_timeout: self.config.keepalive_timeout,
            backoff: self.config.control_plane_backoff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_settings_before_connecting() {
        let error = Builder::new("http://greeter")
            .control_plane("http://127.0.0.1:1")
            .prepare()
            .unwrap_err();
        assert!(matches!(error, Error::Target(_)), "{error}");
        for bad in [
            "https://cp:443",
            "http://",
            "ftp://cp:21",
            "cp:x",
            "http://cp",
        ] {
            let error = Builder::new("greeter")
                .control_plane(bad)
                .prepare()
                .unwrap_err();
            assert!(
                matches!(error, Error::ControlPlaneUri { .. }),
                "{bad}: {error}"
            );
        }
        let prepared = Builder::new("xds:///greeter:80")
            .control_plane("http://127.0.0.1:18000")
            .node_id("me")
            .prepare()
            .expect("valid");
        assert_eq!(prepared.target.name(), "greeter:80");
        assert_eq!(prepared.node.id, "me");
        // The address syntax of `control-plane status --control-plane`.
        let bare = Builder::new("greeter")
            .control_plane("127.0.0.1:18000")
            .prepare()
            .expect("host:port");
        assert_eq!(bare.control_plane, "http://127.0.0.1:18000");
    }

    #[test]
    fn takes_a_parsed_bootstrap() {
        let bootstrap = Bootstrap::from_json(
            r#"{"xds_servers":[{"server_uri":"cp.team-a:18000"}],"node":{"id":"n1","locality":{"zone":"z"}}}"#,
            "test",
        )
        .expect("bootstrap");
        let prepared = Builder::new("greeter")
            .bootstrap(bootstrap)
            .prepare()
            .expect("valid");
        assert_eq!(prepared.control_plane, "http://cp.team-a:18000");
        assert_eq!(prepared.node.id, "n1");
        assert_eq!(prepared.node.locality.map(|l| l.zone).as_deref(), Some("z"));
        let bootstrap = Bootstrap::from_json(
            r#"{"xds_servers":[{"server_uri":"cp.team-a:18000"}],"node":{"id":"n1","locality":{"zone":"z"}}}"#,
            "test",
        )
        .expect("bootstrap");
        let prepared = Builder::new("greeter")
            .bootstrap(bootstrap)
            .zone("zone-a")
            .prepare()
            .expect("prepared");
        assert_eq!(
            prepared.node.locality.map(|l| l.zone).as_deref(),
            Some("zone-a"),
            "the builder's zone wins"
        );
    }
}
