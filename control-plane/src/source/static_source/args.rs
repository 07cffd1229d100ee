//! The static source's command-line options, and the `--static` value
//! syntax.

use std::path::PathBuf;
use std::time::Duration;

use super::Error;
use super::config::{EndpointDef, HostPort, PortDef, ServiceDef};
use crate::source::positive_duration;

/// Service port of a service given without one (`--static` or the file's
/// short form).
pub const DEFAULT_SERVICE_PORT: u16 = 80;
/// Default `--probe-interval`.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Default `--probe-timeout` (the kubelet's default probe timeout, too).
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `--file-poll-interval`.
pub const DEFAULT_FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Command-line options of the static source.
///
/// `--static` and `--static-file` combine: their services are served
/// together, and a service may be defined in only one place (a name used by
/// both is an error at startup, and a rejected file edit later).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Static source")]
pub struct StaticArgs {
    /// A service and its endpoints: `<service>[:<port>]=<host:port>[,<host:port>...]`.
    /// Repeatable (in the environment: values separated by `;`). The Service
    /// port defaults to 80; endpoints are dialled at their own host:port (like
    /// a targetPort). Host names are resolved to one IP at startup (IPv4
    /// preferred). Example: `greeter=10.0.0.1:8080,localhost:8081`.
    #[arg(
        long = "static",
        env = "CONTROL_PLANE_STATIC",
        value_name = "SERVICE=ENDPOINTS",
        value_delimiter = ';'
    )]
    pub services: Vec<String>,

    /// A YAML or JSON file of services, ports and endpoints (with optional
    /// zone and instance), watched for changes: a valid edit applies live; a
    /// broken edit is logged, marks the source degraded (see `status`) and
    /// leaves the last good configuration in force. Replacing the file
    /// (editors, Kubernetes ConfigMap symlink swaps) is fine. Combines with
    /// --static, but a service may be defined in only one of them. Example:
    /// `services: [{name: greeter, port: 80, endpoints: ["10.0.0.1:8080",
    /// {address: "10.0.0.2:8080", zone: zone-a, instance: pod-b}]}]`; a
    /// service with several ports lists `ports: [{name: grpc, port: 80,
    /// endpoints: [...]}, ...]` instead.
    #[arg(long, env = "CONTROL_PLANE_STATIC_FILE", value_name = "FILE")]
    pub static_file: Option<PathBuf>,

    /// How often to look at --static-file for changes. Examples: 1s, 250ms.
    #[arg(
        long,
        env = "CONTROL_PLANE_FILE_POLL_INTERVAL",
        value_name = "DURATION",
        default_value = "1s",
        value_parser = positive_duration
    )]
    pub file_poll_interval: Duration,

    /// Every static endpoint is probed with grpc.health.v1 (Watch on the
    /// overall service "", or Check at this interval when Watch is not
    /// implemented); it takes calls only while it answers SERVING. This is
    /// also the longest wait between reconnection attempts to an unreachable
    /// endpoint, and the interval of the liveness Checks on a Watch's
    /// connection. Examples: 1s, 500ms.
    #[arg(
        long,
        env = "CONTROL_PLANE_PROBE_INTERVAL",
        value_name = "DURATION",
        default_value = "1s",
        value_parser = positive_duration
    )]
    pub probe_interval: Duration,

    /// Time limit for connecting to an endpoint and for each health answer;
    /// an endpoint that does not answer in time is not ready.
    #[arg(
        long,
        env = "CONTROL_PLANE_PROBE_TIMEOUT",
        value_name = "DURATION",
        default_value = "1s",
        value_parser = positive_duration
    )]
    pub probe_timeout: Duration,

    /// Do not probe: serve every static endpoint as ready.
    #[arg(long, env = "CONTROL_PLANE_NO_PROBE")]
    pub no_probe: bool,

    /// CA certificates (PEM) that the endpoints of TLS services (`tls:` in
    /// --static-file) must present a certificate from; their SANs are
    /// checked against the service's subject_alt_names, as gRPC's clients
    /// do. Without it a TLS service's endpoints are not ready (a probe never
    /// falls back to plaintext). Re-read every second.
    #[arg(long, env = "CONTROL_PLANE_PROBE_TLS_CA", value_name = "FILE")]
    pub probe_tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) probes present to TLS endpoints that require
    /// one (mutual TLS). Needs --probe-tls-key and --probe-tls-ca.
    #[arg(
        long,
        env = "CONTROL_PLANE_PROBE_TLS_CERT",
        value_name = "FILE",
        requires_all = ["probe_tls_key", "probe_tls_ca"]
    )]
    pub probe_tls_cert: Option<PathBuf>,

    /// The private key of --probe-tls-cert (PEM).
    #[arg(
        long,
        env = "CONTROL_PLANE_PROBE_TLS_KEY",
        value_name = "FILE",
        requires = "probe_tls_cert"
    )]
    pub probe_tls_key: Option<PathBuf>,
}

impl Default for StaticArgs {
    /// No services, the default intervals, probing on.
    fn default() -> Self {
        Self {
            services: Vec::new(),
            static_file: None,
            file_poll_interval: DEFAULT_FILE_POLL_INTERVAL,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            no_probe: false,
            probe_tls_ca: None,
            probe_tls_cert: None,
            probe_tls_key: None,
        }
    }
}

impl StaticArgs {
    /// Where the services come from, for the status API's source detail:
    /// for example `2 --static services, file /etc/services.yaml`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.services.len() {
            0 => {}
            1 => parts.push("1 --static service".to_owned()),
            n => parts.push(format!("{n} --static services")),
        }
        if let Some(path) = &self.static_file {
            parts.push(format!("file {}", path.display()));
        }
        if parts.is_empty() {
            parts.push("no services".to_owned());
        }
        if self.no_probe {
            parts.push("not probed".to_owned());
        }
        parts.join(", ")
    }
}

/// Parses one `--static` value, without resolving host names.
pub(crate) fn parse_flag(value: &str) -> Result<ServiceDef, Error> {
    let invalid = |reason: String| Error::InvalidFlag {
        value: value.to_owned(),
        reason,
    };
    let (head, endpoints) = value
        .split_once('=')
        .ok_or_else(|| invalid("expected <service>[:<port>]=<host:port>[,...]".to_owned()))?;
    let (name, port) = match head.split_once(':') {
        Some((name, port)) => (
            name,
            port.parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| {
                    invalid(format!(
                        "the service port {port:?} is not a number from 1 to 65535"
                    ))
                })?,
        ),
        None => (head, DEFAULT_SERVICE_PORT),
    };
    if name.is_empty() {
        return Err(invalid("the service name is empty".to_owned()));
    }
    let endpoints = endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<HostPort>()
                .map(EndpointDef::at)
                .map_err(|error| invalid(error.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err(invalid(
            "no endpoints (expected at least one <host:port>)".to_owned(),
        ));
    }
    Ok(ServiceDef {
        name: name.to_owned(),
        ports: vec![PortDef {
            name: None,
            port,
            endpoints,
        }],
        tls: None,
        policy: Default::default(),
    })
}
