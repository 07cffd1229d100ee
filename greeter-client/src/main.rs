//! `greeter-client`: calls `greet.Greeter/SayHello` through the round-robin
//! channel and reports how the calls were spread. See `--help`.
//!
//! - `main.rs`: the command line and exit codes.
//! - `run.rs`: the call loop (concurrency, rate, duration).
//! - `report.rs`: counting, percentiles, the text and JSON summaries.

mod report;
mod run;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::logging::{self, LogFormat};
use xds_balancer::{Builder, Channel, RetryPolicy};

/// Default number of calls when neither --calls nor --duration is given.
const DEFAULT_CALLS: u64 = 100;
/// Default `--concurrency`.
const DEFAULT_CONCURRENCY: usize = 1;
/// Default `--timeout`, as written on the command line.
const DEFAULT_TIMEOUT: &str = "5s";
/// Default `--wait`, as written on the command line.
const DEFAULT_WAIT: &str = "10s";
/// Default `--name`.
const DEFAULT_NAME: &str = "greeter-client";

/// Calls greet.Greeter/SayHello on a service's ready endpoints, round robin,
/// with endpoints discovered from the xDS control plane, and reports how the
/// calls were spread: calls per backend (the `served_by` of each reply),
/// failures by status code, latency percentiles.
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
/// control plane unreachable, bad bootstrap).
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// The control plane, e.g. http://control-plane:18000.
    #[arg(long, env = "CONTROL_PLANE")]
    control_plane: Option<String>,

    /// The service: xds:///<service>[:<port>] or <service>[:<port>].
    /// Repeat it (or separate targets by commas) to spread the calls over
    /// several services in turn: their channels share one discovery stream.
    #[arg(long, env = "TARGET", required = true, value_delimiter = ',')]
    target: Vec<String>,

    /// Number of calls.
    #[arg(short = 'n', long = "calls", env = "GREETER_CALLS")]
    calls: Option<u64>,

    /// Calls in flight at once.
    #[arg(short = 'c', long, env = "GREETER_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(usize))]
    concurrency: usize,

    /// Call for this long (e.g. 30s, 5m) instead of a number of calls.
    #[arg(long, env = "GREETER_DURATION", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,

    /// Calls per second, in all (default: as fast as the workers go).
    #[arg(long, env = "GREETER_RATE")]
    rate: Option<f64>,

    /// Print one JSON object instead of the text summary.
    #[arg(long, env = "GREETER_JSON")]
    json: bool,

    /// The name to greet (HelloRequest.name).
    #[arg(long, env = "GREETER_NAME", default_value = DEFAULT_NAME)]
    name: String,

    /// Ask each server to wait this long before answering (HelloRequest.delay_ms).
    #[arg(long, env = "GREETER_DELAY_MS", default_value_t = 0)]
    delay_ms: u32,

    /// Deadline of each call (including waiting for an endpoint).
    #[arg(long, env = "GREETER_TIMEOUT", default_value = DEFAULT_TIMEOUT, value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// How long to wait for the service's endpoints before the first call.
    #[arg(long, env = "GREETER_WAIT", default_value = DEFAULT_WAIT, value_parser = humantime::parse_duration)]
    wait: Duration,

    /// Retry SayHello (it is idempotent) on another endpoint when a call
    /// fails on its connection.
    #[arg(long, env = "GREETER_RETRY")]
    retry: bool,

    /// Watch grpc.health.v1 on every endpoint and skip those NOT_SERVING.
    #[arg(long, env = "GREETER_HEALTH_CHECK")]
    health_check: bool,

    /// Node id sent to the control plane (default: POD_NAME, else the host name).
    #[arg(long, env = "GREETER_NODE_ID")]
    node_id: Option<String>,

    /// For long runs: log a progress line (calls, failures, spread by
    /// backend, latency) this often, e.g. 10s. Off unless set.
    #[arg(long, env = "GREETER_PROGRESS", value_parser = humantime::parse_duration)]
    progress: Option<Duration>,

    /// Log format on standard error. RUST_LOG selects levels (default: info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.log_format);
    let mut channels = Vec::with_capacity(args.target.len());
    for target in &args.target {
        match connect(&args, target).await {
            Ok(channel) => channels.push(channel),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(3);
            }
        }
    }
    let plan = run::Plan {
        calls: match (args.calls, args.duration) {
            (Some(calls), _) => Some(calls),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_CALLS),
        },
        duration: args.duration,
        concurrency: args.concurrency.max(1),
        rate: args.rate.filter(|r| *r > 0.0),
        name: args.name,
        delay_ms: args.delay_ms,
        timeout: args.timeout,
        progress: args.progress.filter(|every| !every.is_zero()),
    };
    let report = run::run(channels, &plan).await;
    let target = args.target.join(",");
    if args.json {
        println!("{}", report.json(&target, &plan));
    } else {
        print!("{}", report.text(&target, &plan));
    }
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Builds the channel for `target` and waits (up to `--wait`) for its
/// endpoints; a set-up failure is returned as one line.
async fn connect(args: &Args, target: &str) -> Result<Channel, String> {
    let mut builder = Builder::new(target);
    if let Some(uri) = &args.control_plane {
        builder = builder.control_plane(uri.clone());
    }
    if let Some(id) = &args.node_id {
        builder = builder.node_id(id.clone());
    }
    if args.retry {
        builder = builder.retry_policy(RetryPolicy::for_methods(["/greet.Greeter/SayHello"]));
    }
    if args.health_check {
        builder = builder.health_check("greet.Greeter");
    }
    let channel = builder
        .default_wait(args.timeout)
        .connect()
        .await
        .map_err(|error| common::error::chain(&error))?;
    match channel.settled(args.wait).await {
        Ok(set) => {
            let ready: Vec<_> = set
                .ready()
                .map(|e| match e.hostname.as_str() {
                    "" => e.addr.to_string(),
                    name => format!("{name} ({})", e.addr),
                })
                .collect();
            tracing::info!(target = %set.target, ?ready, "endpoints ready");
        }
        Err(status) => tracing::warn!(
            message = status.message(),
            "starting without ready endpoints"
        ),
    }
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let args = Args::try_parse_from(["greeter-client", "--target", "greeter"]).expect("parse");
        assert_eq!(args.calls, None);
        assert_eq!(args.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(args.timeout, Duration::from_secs(5));
        assert!(!args.json);
        assert_eq!(args.target, ["greeter"]);
    }

    #[test]
    fn targets_repeat_or_come_comma_separated() {
        let repeated =
            Args::try_parse_from(["greeter-client", "--target", "a", "--target", "b:80"])
                .expect("parse");
        assert_eq!(repeated.target, ["a", "b:80"]);
        let listed = Args::try_parse_from(["greeter-client", "--target", "a,b:80"]).expect("parse");
        assert_eq!(listed.target, ["a", "b:80"]);
        assert!(
            Args::try_parse_from(["greeter-client"]).is_err(),
            "a target is required"
        );
    }
}
