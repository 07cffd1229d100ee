//! The command line of the `control-plane` binary (see DESIGN.md,
//! "Command-line contract"). Every `serve` flag can also come from the
//! environment, so a Kubernetes manifest can set it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use common::logging::LogFormat;
use control_plane::source::static_source::StaticArgs;
use control_plane::xds::names::DEFAULT_CLUSTER_DOMAIN;

/// Where `serve` listens by default.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:18000";
/// Where `status` looks by default.
pub(crate) const DEFAULT_ADDR: &str = "http://127.0.0.1:18000";
/// `--grace` default as written on the command line; matches `DEFAULT_GRACE`.
const DEFAULT_GRACE_ARG: &str = "5s";
/// `--timeout` default of `status`; matches `status::report::DEFAULT_TIMEOUT`.
const DEFAULT_TIMEOUT_ARG: &str = "5s";

/// xDS control plane for client-side round-robin load balancing of gRPC.
///
/// `serve` streams each service's ready endpoints to every subscribed
/// client over Envoy xDS v3 (ADS, state of the world), so gRPC's own xDS
/// clients (target `xds:///<service>`) and this project's client balance
/// over them. `status` shows what a running control plane knows.
#[derive(Debug, Parser)]
#[command(name = "control-plane", version)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,

    /// Log format on standard error. RUST_LOG selects levels (default: info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t, global = true)]
    pub(crate) log_format: LogFormat,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve xDS (ADS), the status API, grpc.health.v1 and reflection on one port.
    ///
    /// Health is NOT_SERVING until the source's first sync. SIGTERM or SIGINT
    /// stops: health NOT_SERVING, ADS streams end with UNAVAILABLE (clients
    /// keep their endpoints and reconnect), open calls get --grace; exit 0. A
    /// second signal stops at once (exit 130); exit 3 when --grace ran out.
    Serve(ServeArgs),
    /// Show a running control plane's services, endpoint states and clients.
    ///
    /// Prints an overview, a table of services (one row per endpoint, with its
    /// state) and a table of xDS clients (one row per resource type, with the
    /// names subscribed, the version sent, the version ACKed and the latest
    /// NACK). --json prints the same as one JSON object.
    Status(StatusArgs),
}

/// Where services come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SourceChoice {
    /// Services from --static flags (and --static-file), health-probed.
    Static,
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address for ADS, the status API, grpc.health.v1 and reflection
    /// (plaintext HTTP/2).
    #[arg(long, env = "CONTROL_PLANE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub(crate) listen: SocketAddr,

    /// Namespace whose services are served. In a pod, set POD_NAMESPACE
    /// from the downward API.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub(crate) namespace: String,

    /// Where services come from. Only `static` is available in this build;
    /// the `kubernetes` source (Services and EndpointSlices, the default
    /// inside a pod) is not part of it yet. Default: static.
    #[arg(long, env = "CONTROL_PLANE_SOURCE", value_enum)]
    pub(crate) source: Option<SourceChoice>,

    /// Cluster DNS domain, as in `<svc>.<ns>.svc.<domain>` names.
    #[arg(long, env = "CLUSTER_DOMAIN", default_value = DEFAULT_CLUSTER_DOMAIN)]
    pub(crate) cluster_domain: String,

    /// Serve Prometheus metrics at http://ADDR/metrics (off unless set).
    #[arg(long, env = "CONTROL_PLANE_METRICS_LISTEN", value_name = "ADDR")]
    pub(crate) metrics_listen: Option<SocketAddr>,

    /// After a stop signal, how long open calls get to finish. Examples: 5s, 500ms.
    #[arg(long, env = "CONTROL_PLANE_GRACE", default_value = DEFAULT_GRACE_ARG, value_parser = humantime::parse_duration)]
    pub(crate) grace: Duration,

    /// The static source's flags.
    #[command(flatten)]
    pub(crate) static_args: StaticArgs,
}

impl ServeArgs {
    /// The source to run: `--source`, else the default.
    pub(crate) fn source(&self) -> SourceChoice {
        // The seam for the Kubernetes source: once it exists, the default
        // becomes `kubernetes` when KUBERNETES_SERVICE_HOST is set (inside a
        // pod) and `static` elsewhere.
        self.source.unwrap_or(SourceChoice::Static)
    }
}

/// Flags of `status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The control plane's address (its `serve --listen` port).
    #[arg(long, env = "CONTROL_PLANE_ADDR", default_value = DEFAULT_ADDR)]
    pub(crate) addr: String,

    /// Print one JSON object instead of tables (field names as in
    /// status.proto, states as words).
    #[arg(long)]
    pub(crate) json: bool,

    /// Time limit for connecting and for each call.
    #[arg(long, default_value = DEFAULT_TIMEOUT_ARG, value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use control_plane::server::DEFAULT_GRACE;
    use control_plane::status::report::DEFAULT_TIMEOUT;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults() {
        let cli = Cli::try_parse_from(["control-plane", "serve"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.listen.port(), 18000);
        assert_eq!(args.cluster_domain, "cluster.local");
        assert_eq!(args.grace, DEFAULT_GRACE);
        assert_eq!(args.source(), SourceChoice::Static);
        assert!(args.metrics_listen.is_none());
    }

    #[test]
    fn status_defaults_and_global_log_format() {
        let cli =
            Cli::try_parse_from(["control-plane", "status", "--json", "--log-format", "json"])
                .expect("parses");
        assert_eq!(cli.log_format, LogFormat::Json);
        let Command::Status(args) = cli.command else {
            panic!("not status");
        };
        assert!(args.json);
        assert_eq!(args.addr, DEFAULT_ADDR);
        assert_eq!(args.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn only_the_static_source_is_accepted() {
        let error = Cli::try_parse_from(["control-plane", "serve", "--source", "kubernetes"])
            .expect_err("kubernetes is not built yet");
        assert!(error.to_string().contains("static"), "{error}");
    }
}
