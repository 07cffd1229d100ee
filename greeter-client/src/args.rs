//! The command line: the call mode's flags (the top level, as before
//! `diagnose` existed), `diagnose`'s, and the control plane flags both take
//! (spelled as for `control-plane status`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use common::logging::LogFormat;
use xds_balancer::{Builder, ControlPlaneTls};

/// Default number of calls when neither --calls nor --duration is given.
pub(crate) const DEFAULT_CALLS: u64 = 100;
/// Default `--concurrency`.
const DEFAULT_CONCURRENCY: usize = 1;
/// Default `--timeout`, as written on the command line.
const DEFAULT_TIMEOUT: &str = "5s";
/// Default `--wait`, as written on the command line.
const DEFAULT_WAIT: &str = "10s";
/// Default `--name`.
const DEFAULT_NAME: &str = "greeter-client";
/// Default `diagnose --max-endpoints`.
const DEFAULT_MAX_ENDPOINTS: usize = 20;

/// Calls greet.Greeter/SayHello on a service's ready endpoints, round robin,
/// with endpoints discovered from the xDS control plane, and reports how the
/// calls were spread: calls per backend (the `served_by` of each reply),
/// failures by status code, latency percentiles. `greeter-client diagnose
/// <TARGET>` instead finds out why calls to any service fail (see
/// `greeter-client diagnose --help`).
///
/// The control plane comes from --control-plane, else from the gRPC xDS
/// bootstrap named by GRPC_XDS_BOOTSTRAP (or GRPC_XDS_BOOTSTRAP_CONFIG).
/// Before the first call it waits (up to --wait) until every ready endpoint
/// has been connected, so calls are spread from the start.
///
/// It makes --calls calls, or calls for --duration, whichever ends first
/// (with --duration alone, no call limit), on --concurrency workers,
/// optionally paced to --rate calls per second in all.
///
/// Output: a summary on standard output; with --json, exactly one JSON
/// object: {"ok":N,"failed":N,"by_backend":{"<served_by>":N,...},
/// "failed_by_code":{"UNAVAILABLE":N,...},"errors":{"<message>":N,...},
/// "latency_ms":{"p50":..,"p99":..,"max":..},...}. Logs go to standard
/// error.
///
/// Exit codes: 0 when every call succeeded, 1 when any call failed, 2 on
/// bad arguments, 3 when the channel could not be set up (malformed target,
/// control plane unreachable, bad bootstrap): one `error: ...` line says
/// why.
#[derive(Debug, Parser)]
#[command(
    name = "greeter-client",
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub(crate) struct Cli {
    /// `diagnose`, or none for the call mode.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// The call mode's flags.
    #[command(flatten)]
    pub(crate) call: CallArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Find out why calls to a service fail (any gRPC service, not only
    /// greet.Greeter), and how to fix it.
    ///
    /// Walks the causes of UNAVAILABLE in order and names the first that
    /// applies, with the fix: the control plane is reachable and speaks xDS
    /// ADS (not some other gRPC or HTTP server); the Service exists in the
    /// control plane's namespace (not unknown, not in another namespace);
    /// the port is a Service port (not the container port); how many
    /// endpoints are ready, not ready or draining, and why (the control
    /// plane's probe detail or EndpointSlice conditions); for each endpoint,
    /// whether it takes TCP connections and speaks cleartext HTTP/2 (not
    /// HTTP/1.1 only, not Kestrel's HTTP_1_1_REQUIRED, not TLS only), and
    /// its grpc.health.v1 status for "" and --health-service; with --call,
    /// one call of a method with an empty message through the balanced
    /// channel (UNIMPLEMENTED: no such method there).
    ///
    /// Prints a table of the checks and the verdict (`healthy`, or the cause
    /// and its fix); with --json, one JSON object: {"target", "control_plane",
    /// "verdict", "healthy", "summary", "fix", "counts", "checks": [...],
    /// "endpoints": [...]}. Read-only, apart from --call.
    ///
    /// Exit codes: 0 when the service is healthy (warnings allowed), 1 when
    /// a check failed (the verdict names the cause), 2 on bad arguments, 3
    /// when the diagnosis could not start (malformed target, no control
    /// plane given, unreadable TLS files or bootstrap): one `error: ...` line
    /// says why.
    Diagnose(DiagnoseArgs),
}

/// Where the control plane is, and how to reach it: the same flags and
/// address forms as `control-plane status`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ControlPlaneArgs {
    /// The control plane: `host:port` or `http://host:port` (plaintext),
    /// `https://host:port` (TLS, with --ca), e.g. http://control-plane:18000.
    /// Default: the gRPC xDS bootstrap named by GRPC_XDS_BOOTSTRAP (or
    /// GRPC_XDS_BOOTSTRAP_CONFIG).
    #[arg(long, env = "CONTROL_PLANE", value_name = "ADDR")]
    pub(crate) control_plane: Option<String>,

    /// CA certificates (PEM) that the control plane's certificate must
    /// chain to, for an `https://` address (required there).
    #[arg(long, env = "CONTROL_PLANE_CA", value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,

    /// Client certificate (PEM) for a control plane that requires one.
    /// Needs --key and --ca.
    #[arg(long, env = "CONTROL_PLANE_CERT", value_name = "FILE", requires_all = ["key", "ca"])]
    pub(crate) cert: Option<PathBuf>,

    /// The private key of --cert (PEM).
    #[arg(
        long,
        env = "CONTROL_PLANE_KEY",
        value_name = "FILE",
        requires = "cert"
    )]
    pub(crate) key: Option<PathBuf>,
}

impl ControlPlaneArgs {
    /// TLS to the control plane, when --ca is given.
    pub(crate) fn tls(&self) -> Option<ControlPlaneTls> {
        let ca = self.ca.clone()?;
        let tls = ControlPlaneTls::new(ca);
        Some(match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => tls.with_identity(cert, key),
            _ => tls,
        })
    }

    /// `builder` with the control plane these flags name (if they name
    /// one; otherwise the builder reads the bootstrap).
    pub(crate) fn apply(&self, mut builder: Builder) -> Builder {
        if let Some(addr) = &self.control_plane {
            builder = builder.control_plane(addr.clone());
        }
        if let Some(tls) = self.tls() {
            builder = builder.control_plane_tls(tls);
        }
        builder
    }
}

/// Flags of the call mode.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// Where the control plane is.
    #[command(flatten)]
    pub(crate) control_plane: ControlPlaneArgs,

    /// The service: xds:///<service>[:<port>] or <service>[:<port>].
    /// Repeat it (or separate targets by commas) to spread the calls over
    /// several services in turn: their channels share one discovery stream.
    #[arg(long, env = "TARGET", required = true, value_delimiter = ',')]
    pub(crate) target: Vec<String>,

    /// Number of calls.
    #[arg(short = 'n', long = "calls", env = "GREETER_CALLS")]
    pub(crate) calls: Option<u64>,

    /// Calls in flight at once.
    #[arg(short = 'c', long, env = "GREETER_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(usize))]
    pub(crate) concurrency: usize,

    /// Call for this long (e.g. 30s, 5m) instead of a number of calls.
    #[arg(long, env = "GREETER_DURATION", value_parser = humantime::parse_duration)]
    pub(crate) duration: Option<Duration>,

    /// Calls per second, in all (default: as fast as the workers go).
    #[arg(long, env = "GREETER_RATE")]
    pub(crate) rate: Option<f64>,

    /// Print one JSON object instead of the text summary.
    #[arg(long, env = "GREETER_JSON")]
    pub(crate) json: bool,

    /// The name to greet (HelloRequest.name).
    #[arg(long, env = "GREETER_NAME", default_value = DEFAULT_NAME)]
    pub(crate) name: String,

    /// Ask each server to wait this long before answering (HelloRequest.delay_ms).
    #[arg(long, env = "GREETER_DELAY_MS", default_value_t = 0)]
    pub(crate) delay_ms: u32,

    /// Deadline of each call (including waiting for an endpoint).
    #[arg(long, env = "GREETER_TIMEOUT", default_value = DEFAULT_TIMEOUT, value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,

    /// How long to wait for the service's endpoints before the first call.
    #[arg(long, env = "GREETER_WAIT", default_value = DEFAULT_WAIT, value_parser = humantime::parse_duration)]
    pub(crate) wait: Duration,

    /// Retry SayHello (it is idempotent) on another endpoint when a call
    /// fails on its connection.
    #[arg(long, env = "GREETER_RETRY")]
    pub(crate) retry: bool,

    /// Watch grpc.health.v1 on every endpoint and skip those NOT_SERVING.
    #[arg(long, env = "GREETER_HEALTH_CHECK")]
    pub(crate) health_check: bool,

    /// Node id sent to the control plane (default: POD_NAME, else the host name).
    #[arg(long, env = "GREETER_NODE_ID")]
    pub(crate) node_id: Option<String>,

    /// For long runs: log a progress line (calls, failures, spread by
    /// backend, latency) this often, e.g. 10s. Off unless set.
    #[arg(long, env = "GREETER_PROGRESS", value_parser = humantime::parse_duration)]
    pub(crate) progress: Option<Duration>,

    /// Log format on standard error. RUST_LOG selects levels (default: info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    pub(crate) log_format: LogFormat,
}

/// Flags of `diagnose`.
#[derive(Debug, Args)]
pub(crate) struct DiagnoseArgs {
    /// The service, as in the call mode's --target: <service>[:<port>] or
    /// xds:///<service>[:<port>] (default: TARGET).
    #[arg(env = "TARGET", value_name = "TARGET")]
    pub(crate) target: String,

    /// Where the control plane is.
    #[command(flatten)]
    pub(crate) control_plane: ControlPlaneArgs,

    /// Also ask each endpoint's grpc.health.v1 about this service name
    /// (the server's overall health, "", is always asked), e.g.
    /// greet.Greeter.
    #[arg(long, value_name = "SERVICE")]
    pub(crate) health_service: Option<String>,

    /// Make one call of this method (/package.Service/Method) with an empty
    /// message through the balanced channel, as an application would: an
    /// answer of any kind but UNIMPLEMENTED shows that the method exists.
    /// The method runs: name one without side effects.
    #[arg(long, value_name = "/PACKAGE.SERVICE/METHOD")]
    pub(crate) call: Option<String>,

    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub(crate) json: bool,

    /// Time limit of each step: reaching the control plane, its answers,
    /// each endpoint's checks, the call.
    #[arg(long, default_value = DEFAULT_TIMEOUT, value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,

    /// Check at most this many endpoints one by one (ready ones first).
    #[arg(long, default_value_t = DEFAULT_MAX_ENDPOINTS)]
    pub(crate) max_endpoints: usize,

    /// Log format on standard error. RUST_LOG selects levels (default:
    /// error; the table says what was found).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    pub(crate) log_format: LogFormat,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("greeter-client").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = parse(&["--target", "greeter"]).expect("parse");
        assert!(cli.command.is_none());
        let args = cli.call;
        assert_eq!(args.calls, None);
        assert_eq!(args.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(args.timeout, Duration::from_secs(5));
        assert!(!args.json);
        assert_eq!(args.target, ["greeter"]);
    }

    #[test]
    fn targets_repeat_or_come_comma_separated() {
        let repeated = parse(&["--target", "a", "--target", "b:80"]).expect("parse");
        assert_eq!(repeated.call.target, ["a", "b:80"]);
        let listed = parse(&["--target", "a,b:80"]).expect("parse");
        assert_eq!(listed.call.target, ["a", "b:80"]);
        assert!(parse(&[]).is_err(), "a target is required");
    }

    #[test]
    fn diagnose_is_a_subcommand_that_needs_no_target_flag() {
        let cli = parse(&[
            "diagnose",
            "greeter:80",
            "--control-plane",
            "cp:18000",
            "--call",
            "/greet.Greeter/SayHello",
            "--json",
        ])
        .expect("parse");
        let Some(Command::Diagnose(args)) = cli.command else {
            panic!("not diagnose");
        };
        assert_eq!(args.target, "greeter:80");
        assert_eq!(
            args.control_plane.control_plane.as_deref(),
            Some("cp:18000")
        );
        assert_eq!(args.call.as_deref(), Some("/greet.Greeter/SayHello"));
        assert!(args.json);
        assert_eq!(args.max_endpoints, DEFAULT_MAX_ENDPOINTS);
        // The call mode's flags belong to the call mode.
        assert!(parse(&["--target", "a", "diagnose", "greeter"]).is_err());
        assert!(parse(&["diagnose", "greeter", "-n", "5"]).is_err());
    }

    #[test]
    fn tls_flags_go_together() {
        let cli = parse(&[
            "--target",
            "a",
            "--control-plane",
            "https://cp:18000",
            "--ca",
            "ca.pem",
        ])
        .expect("parse");
        let tls = cli.call.control_plane.tls().expect("tls");
        assert_eq!(tls.ca_certificate_file, PathBuf::from("ca.pem"));
        assert!(parse(&["--target", "a", "--cert", "c.pem", "--key", "k.pem"]).is_err());
    }
}
