//! The flags of the `control-plane` command line (README.md and
//! docs/deploy.md document them; tests/tests/deploy checks the documents
//! against `--help`). Every `serve` flag can also come from the
//! environment, so a Kubernetes manifest can set it.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use common::logging::LogFormat;

use crate::names::{DEFAULT_CLUSTER_DOMAIN, DEFAULT_TLS_PROVIDER_INSTANCE};
use crate::source::kubernetes::KubernetesArgs;
use crate::source::static_source::StaticArgs;

mod status;

pub(crate) use status::StatusArgs;

/// Where `serve` listens by default.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:18000";
/// Where `status` looks by default.
pub(crate) const DEFAULT_ADDR: &str = "http://127.0.0.1:18000";
/// The control plane's address for `status`, as for greeter-client and the
/// client library.
const CONTROL_PLANE_ENV: &str = "CONTROL_PLANE";
/// `status`'s former variable for its address, still read.
const FORMER_ADDR_ENV: &str = "CONTROL_PLANE_ADDR";
/// `--grace` default as written on the command line; matches `DEFAULT_GRACE`.
const DEFAULT_GRACE_ARG: &str = "5s";
/// `--max-connection-age` default; matches `DEFAULT_MAX_CONNECTION_AGE`.
const DEFAULT_MAX_CONNECTION_AGE_ARG: &str = "30m";
/// `--max-connection-age-grace` default; matches
/// `DEFAULT_MAX_CONNECTION_AGE_GRACE`.
const DEFAULT_MAX_CONNECTION_AGE_GRACE_ARG: &str = "10s";
/// `--timeout` default of `status`; matches `status::report::DEFAULT_TIMEOUT`.
const DEFAULT_TIMEOUT_ARG: &str = "5s";
/// `--max-streams` default. Each subscriber costs about 32 KiB
/// (docs/benchmarks.md); deploy/base sizes memory as 64 MiB + 32 KiB per
/// subscriber (docs/deploy.md), 192 MiB for these 4096 streams.
pub(crate) const DEFAULT_MAX_STREAMS: usize = 4096;
/// `--max-streams-per-peer` default: one peer may take an eighth of
/// `--max-streams` (about 16 MiB). A process needs one stream (one xDS
/// client per process), a node's worth of pods behind one NAT address a
/// few hundred.
pub(crate) const DEFAULT_MAX_STREAMS_PER_PEER: usize = 512;

/// The static source's namespace when neither --namespace nor POD_NAMESPACE
/// says.
pub(crate) const STATIC_DEFAULT_NAMESPACE: &str = "default";

/// xDS control plane for client-side round-robin load balancing of gRPC.
///
/// `serve` streams each service's ready endpoints to every subscribed
/// client over Envoy xDS v3 (ADS, state of the world), so gRPC's own xDS
/// clients (target `xds:///<service>`) and this project's client balance
/// over them. `status` shows what a running control plane knows.
#[derive(Debug, Parser)]
#[command(name = "control-plane", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,

    /// Log format on standard error. RUST_LOG selects levels (default: info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t, global = true)]
    pub(crate) log_format: LogFormat,

    /// Whether this runs in a Kubernetes pod (decides the default source).
    #[arg(skip)]
    pub(crate) in_pod: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve xDS (ADS), the status API, grpc.health.v1 and reflection on one port.
    ///
    /// Health is NOT_SERVING until the source's first full sync (Kubernetes:
    /// the first complete list of Services and EndpointSlices). The
    /// Kubernetes source needs `list` and `watch` on services and
    /// endpointslices (discovery.k8s.io) in its namespace. A missing or
    /// unusable kubeconfig, or no namespace, fails the start; an API server
    /// that cannot be reached does not: serve keeps retrying, serves the last
    /// state it had (none before the first sync) and `status` shows the source
    /// disconnected with the error.
    ///
    /// SIGTERM or SIGINT stops: health NOT_SERVING, ADS streams end with
    /// UNAVAILABLE (clients keep their endpoints and reconnect), open calls
    /// get --grace; exit 0. A second signal stops at once (exit 130); exit 3
    /// when --grace ran out.
    ///
    /// Exit codes: 0 after a clean stop, 1 when it cannot start (the error
    /// is printed as one `error: ...` line, or a JSON record with
    /// --log-format json) or its source fails, 2 on bad arguments, 3 when
    /// --grace cut calls, 130 after a second stop signal.
    Serve(Box<ServeArgs>),
    /// Show a running control plane's services, endpoint states and clients.
    ///
    /// Prints an overview, a table of services (one row per endpoint, with its
    /// state) and a table of xDS clients (one row per resource type, with the
    /// names subscribed, the version sent, the version ACKed and the latest
    /// NACK). --json prints the same as one JSON object.
    ///
    /// Exit codes: 0 when the report was printed, 1 when it could not be
    /// fetched (one `error: ...` line says why), 2 on bad arguments.
    Status(StatusArgs),
}

/// Where services come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SourceChoice {
    /// Services and EndpointSlices of one namespace, from the Kubernetes API.
    Kubernetes,
    /// Services from --static flags (and --static-file), health-probed.
    Static,
}

impl SourceChoice {
    /// The value as written on the command line.
    fn flag_value(self) -> &'static str {
        match self {
            SourceChoice::Kubernetes => "kubernetes",
            SourceChoice::Static => "static",
        }
    }
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address for ADS, the status API, grpc.health.v1 and reflection
    /// (plaintext HTTP/2 unless --tls-cert is set).
    #[arg(long, env = "CONTROL_PLANE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub(crate) listen: SocketAddr,

    /// Serve TLS (ALPN h2) on --listen with this certificate chain (PEM,
    /// leaf first). Needs --tls-key. The TLS files are re-read every second:
    /// new connections get a changed certificate, open ones are kept; a
    /// broken new file is logged and the last good one kept.
    #[arg(
        long,
        env = "CONTROL_PLANE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "CONTROL_PLANE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Option<PathBuf>,

    /// Require client certificates that chain to these CAs (PEM): mutual
    /// TLS. A client without one does not complete the handshake.
    #[arg(
        long,
        env = "CONTROL_PLANE_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub(crate) tls_client_ca: Option<PathBuf>,

    /// Only clients whose certificate has a URI or DNS SAN matching one of
    /// these may subscribe or call the status API: exact, or a prefix with
    /// a trailing `*` (e.g. `spiffe://cluster.local/ns/team-a/*`).
    /// Repeatable (comma-separated in the environment variable). Others get
    /// PERMISSION_DENIED naming the SANs they presented. Needs
    /// --tls-client-ca.
    #[arg(
        long = "allow-client-san",
        env = "CONTROL_PLANE_ALLOW_CLIENT_SAN",
        value_name = "PATTERN",
        value_delimiter = ',',
        requires = "tls_client_ca"
    )]
    pub(crate) allow_client_san: Vec<String>,

    /// At most this many ADS streams at once (0: no limit); more are refused
    /// with RESOURCE_EXHAUSTED, open ones are unaffected. Each costs about
    /// 32 KiB: size the memory limit as 64 MiB + 32 KiB × this number
    /// (deploy/ sets 192 MiB for the default, 4096).
    #[arg(long, env = "CONTROL_PLANE_MAX_STREAMS", default_value_t = DEFAULT_MAX_STREAMS)]
    pub(crate) max_streams: usize,

    /// At most this many ADS streams per client (0: no limit): per
    /// certificate identity (first URI SAN, else first DNS SAN) with
    /// --tls-client-ca, else per IP address. Default 512, an eighth of
    /// --max-streams' default.
    #[arg(
        long,
        env = "CONTROL_PLANE_MAX_STREAMS_PER_PEER",
        default_value_t = DEFAULT_MAX_STREAMS_PER_PEER
    )]
    pub(crate) max_streams_per_peer: usize,

    /// The certificate provider instance named in the Clusters of TLS
    /// services, for both the client identity and the CA (gRPC A29): the
    /// clients' bootstrap must define it under `certificate_providers`.
    #[arg(
        long,
        env = "CONTROL_PLANE_TLS_PROVIDER_INSTANCE",
        value_name = "NAME",
        default_value = DEFAULT_TLS_PROVIDER_INSTANCE
    )]
    pub(crate) tls_provider_instance: String,

    /// Namespace whose services are served. Kubernetes source: else the
    /// pod's own namespace (its service-account namespace file), else
    /// POD_NAMESPACE; without any of them, serve fails at startup. Static
    /// source: else POD_NAMESPACE, else `default`.
    #[arg(long, env = "CONTROL_PLANE_NAMESPACE")]
    pub(crate) namespace: Option<String>,

    /// Where services come from: `kubernetes` (Services and EndpointSlices,
    /// through KUBECONFIG, ~/.kube/config or the pod's service account) or
    /// `static` (--static, --static-file). Default: kubernetes inside a pod
    /// (KUBERNETES_SERVICE_HOST is set), static elsewhere. Flags of the
    /// other source are refused.
    #[arg(long, env = "CONTROL_PLANE_SOURCE", value_enum)]
    pub(crate) source: Option<SourceChoice>,

    /// This replica's name, shown by `status` and sent to xDS clients as the
    /// control plane's identifier. Default: POD_NAME, else the host name.
    #[arg(long, env = "POD_NAME")]
    pub(crate) name: Option<String>,

    /// Cluster DNS domain, as in `<svc>.<ns>.svc.<domain>` names.
    #[arg(long, env = "CLUSTER_DOMAIN", default_value = DEFAULT_CLUSTER_DOMAIN)]
    pub(crate) cluster_domain: String,

    /// Also serve grpc.health.v1, and nothing else, in plaintext on this
    /// address: for kubelet gRPC probes, which cannot speak TLS (off unless
    /// set).
    #[arg(long, env = "CONTROL_PLANE_HEALTH_LISTEN", value_name = "ADDR")]
    pub(crate) health_listen: Option<SocketAddr>,

    /// Serve Prometheus metrics at http://ADDR/metrics (off unless set).
    #[arg(long, env = "CONTROL_PLANE_METRICS_LISTEN", value_name = "ADDR")]
    pub(crate) metrics_listen: Option<SocketAddr>,

    /// After a stop signal, how long open calls get to finish. Examples: 5s, 500ms.
    #[arg(long, env = "CONTROL_PLANE_GRACE", default_value = DEFAULT_GRACE_ARG, value_parser = humantime::parse_duration)]
    pub(crate) grace: Duration,

    /// Close each client connection after about this long (±10 % jitter),
    /// so that clients spread over the replicas again after a rollout: the
    /// connection gets GOAWAY, its ADS streams end with UNAVAILABLE and the
    /// clients reconnect, through the Service, to any replica, keeping
    /// their endpoints meanwhile. 0 turns it off.
    #[arg(
        long,
        env = "CONTROL_PLANE_MAX_CONNECTION_AGE",
        value_name = "DURATION",
        default_value = DEFAULT_MAX_CONNECTION_AGE_ARG,
        value_parser = humantime::parse_duration
    )]
    pub(crate) max_connection_age: Duration,

    /// After --max-connection-age, how long other calls in flight on the
    /// connection (status, health) get to finish before it is closed.
    #[arg(
        long,
        env = "CONTROL_PLANE_MAX_CONNECTION_AGE_GRACE",
        value_name = "DURATION",
        default_value = DEFAULT_MAX_CONNECTION_AGE_GRACE_ARG,
        value_parser = humantime::parse_duration
    )]
    pub(crate) max_connection_age_grace: Duration,

    /// The Kubernetes source's flags.
    #[command(flatten)]
    pub(crate) kube_args: KubernetesArgs,

    /// The static source's flags.
    #[command(flatten)]
    pub(crate) static_args: StaticArgs,
}

impl ServeArgs {
    /// The source to run: `--source`, else `kubernetes` when `in_pod`
    /// and `static` elsewhere.
    pub(crate) fn source(&self, in_pod: bool) -> SourceChoice {
        self.source.unwrap_or(if in_pod {
            SourceChoice::Kubernetes
        } else {
            SourceChoice::Static
        })
    }

    /// `--namespace`, unless empty (as a manifest templating an empty
    /// CONTROL_PLANE_NAMESPACE would give).
    pub(crate) fn namespace_flag(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|ns| !ns.trim().is_empty())
    }

    /// The static source's namespace: `--namespace`, else `pod_namespace`
    /// (POD_NAMESPACE) when set, else `default`.
    pub(crate) fn static_namespace(&self, pod_namespace: Option<&str>) -> String {
        self.namespace_flag()
            .or(pod_namespace.filter(|ns| !ns.trim().is_empty()))
            .map_or_else(
                || STATIC_DEFAULT_NAMESPACE.to_owned(),
                |ns| ns.trim().to_owned(),
            )
    }
}

impl Cli {
    /// Parses `args` (the program name first) and checks that `serve` got
    /// no flag of the source it does not run; `in_pod` decides the default
    /// source. Errors are clap's, ready to print (`error.exit()`).
    pub(crate) fn parse_checked<I, T>(args: I, in_pod: bool) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut command = Self::command();
        let matches = command.try_get_matches_from_mut(args)?;
        let mut cli =
            Self::from_arg_matches(&matches).map_err(|error| error.format(&mut command))?;
        cli.in_pod = in_pod;
        if let (Command::Serve(serve), Some(("serve", serve_matches))) =
            (&cli.command, matches.subcommand())
        {
            let source = serve.source(in_pod);
            if let Some(problem) = other_source_flag(source, serve.source.is_some(), serve_matches)
            {
                let serve_command = command
                    .find_subcommand_mut("serve")
                    .expect("serve is a subcommand");
                return Err(serve_command.error(ErrorKind::ArgumentConflict, problem));
            }
        }
        Ok(cli)
    }
}

/// A flag (or its environment variable) of the source not chosen, as a
/// message saying what to do, if one was given.
fn other_source_flag(source: SourceChoice, explicit: bool, matches: &ArgMatches) -> Option<String> {
    let (other, other_args) = match source {
        SourceChoice::Kubernetes => (
            SourceChoice::Static,
            StaticArgs::augment_args(clap::Command::new("static")),
        ),
        SourceChoice::Static => (
            SourceChoice::Kubernetes,
            KubernetesArgs::augment_args(clap::Command::new("kubernetes")),
        ),
    };
    let given = other_args.get_arguments().find(|arg| {
        matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    })?;
    let flag = format!("--{}", given.get_long().unwrap_or(given.get_id().as_str()));
    let what = match (
        matches.value_source(given.get_id().as_str()),
        given.get_env(),
    ) {
        (Some(ValueSource::EnvVariable), Some(env)) => {
            format!(
                "{} (from the environment, for {flag})",
                env.to_string_lossy()
            )
        }
        _ => flag,
    };
    let chosen = if explicit {
        format!("--source {}", source.flag_value())
    } else {
        format!(
            "the {} source (the default {})",
            source.flag_value(),
            if source == SourceChoice::Kubernetes {
                "inside a pod"
            } else {
                "outside a pod"
            }
        )
    };
    Some(format!(
        "{what} belongs to the {} source and cannot be used with {chosen}; remove it, or pass \
         --source {}",
        other.flag_value(),
        other.flag_value()
    ))
}

#[cfg(test)]
mod tests;
