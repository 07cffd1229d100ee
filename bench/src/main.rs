//! `bench`: the benchmark harness. It measures, on one machine, what issue
//! 8 asks for, and writes the results into `docs/benchmarks.md` with SVG
//! charts in `docs/benchmarks/`:
//!
//! 1. `bench propagation`: how fast a readiness change reaches 1 to 10 000
//!    subscribers, and the control plane's CPU and memory for it, ours and
//!    go-control-plane's side by side;
//! 2. `bench data-path`: unary call throughput and latency through our
//!    channel, a direct tonic channel, tonic's `balance_channel` and
//!    ginepro, over 1, 3 and 10 backends; `bench data-path --tls`: ours and
//!    the direct channel over mutual TLS against plaintext, over 1 and 3
//!    backends, and the cost of one handshake;
//! 3. `bench rollout`: failed calls during a rolling restart, for ours, DNS
//!    polling (ginepro) and a per-connection L4 balancer ("ClusterIP");
//!
//! and `bench all` runs them all. Every command ends by regenerating the
//! report from the results present (`bench report` does only that). Run it
//! in release mode, with the workspace binaries built next to it:
//! `cargo build --release --bins && target/release/bench all`.
//!
//! # Layout
//!
//! - [`propagation`] (scenario 1) with [`cphost`], the control plane under
//!   test in its own process (`bench cp-host`, not for people), and
//!   [`peers`], the other control planes measured the same way;
//! - [`datapath`] (scenario 2): the compared [`datapath::clients`] and the
//!   closed-loop [`datapath::load`] generator, shared with scenario 3; its
//!   mTLS runs in [`datapath::tls`] and [`datapath::handshake`];
//! - [`rollout`] (scenario 3), its "ClusterIP" being the demo's TCP
//!   balancer (`demo::balancer`);
//! - [`report`]: Markdown tables, goal verdicts and SVG charts from the
//!   [`results`] files;
//! - support: [`procs`] (child processes), [`clock`] (one clock across
//!   processes), [`machine`] (the machine, CPU time, memory), [`stats`].

mod clock;
mod cphost;
mod datapath;
mod machine;
mod peers;
mod procs;
mod propagation;
mod report;
mod results;
mod rollout;
mod stats;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::procs::Bins;
use crate::results::Recorded;

/// Benchmarks of the control plane and the client, side by side with the
/// alternatives. Results go to --out-dir (JSON and SVG) and --doc
/// (Markdown, regenerated from every result present).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scenario 1: readiness change → every subscriber, and its cost.
    Propagation(PropagationArgs),
    /// Scenario 2: unary throughput and latency per client (with --tls:
    /// over mutual TLS against plaintext, and the cost of one handshake).
    DataPath(DataPathArgs),
    /// Scenario 3: failed calls during a rolling restart.
    Rollout(RunArgs),
    /// Every scenario (the data path also with --tls), then the report.
    All(RunArgs),
    /// Only regenerate the report from the results present.
    Report(Paths),
    /// The control plane under test (started by `propagation`).
    #[command(hide = true)]
    CpHost(cphost::HostArgs),
}

#[derive(Debug, Clone, Args)]
struct Paths {
    /// Where results (JSON) and charts (SVG) go.
    #[arg(long, default_value = "docs/benchmarks")]
    out_dir: PathBuf,
    /// The Markdown report to update.
    #[arg(long, default_value = "docs/benchmarks.md")]
    doc: PathBuf,
    /// Where the greeter-server and control-plane binaries are (default:
    /// next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// Tiny sizes, to check that the harness works (what CI runs); the
    /// numbers mean nothing.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    paths: Paths,
}

#[derive(Debug, Clone, Args)]
struct PropagationArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Subscriber counts (default 1,100,1000,10000).
    #[arg(long, value_delimiter = ',')]
    subscribers: Vec<usize>,
    /// Endpoints per service (default 10,1000).
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<usize>,
    /// Single-change trials per size (default: 40 up to 1000 subscribers,
    /// 12 above); bursts get a quarter as many.
    #[arg(long)]
    trials: Option<usize>,
    /// Skip the xds-balancer channel rows (raw ADS only), e.g. for
    /// profiling the control plane.
    #[arg(long)]
    raw_only: bool,
    /// Peer control planes measured beside ours with the same raw ADS
    /// subscribers (default: all; `none` for ours alone). A peer whose
    /// toolchain is missing is skipped with a warning.
    #[arg(long, value_delimiter = ',', value_enum)]
    peers: Vec<peers::PeerChoice>,
}

#[derive(Debug, Clone, Args)]
struct DataPathArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Backend counts (default 1,3,10; with --tls 1,3).
    #[arg(long, value_delimiter = ',')]
    backends: Vec<usize>,
    /// Concurrent callers (default 16,64).
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Only these clients (default: ours, direct, balance-channel, ginepro;
    /// with --tls: ours, direct), e.g. for profiling one.
    #[arg(long, value_delimiter = ',', value_enum)]
    clients: Vec<datapath::clients::ClientKind>,
    /// Instead: ours and the direct channel each over plaintext and over
    /// mutual TLS (backends that require a client certificate, TLS settings
    /// from the control plane), then the cost of one handshake; results in
    /// data-path-tls.json.
    #[arg(long)]
    tls: bool,
    /// With --tls: fresh connections per transport in the handshake
    /// measurement (default 2000).
    #[arg(long, requires = "tls")]
    handshakes: Option<usize>,
}

fn propagation_config(args: &PropagationArgs) -> propagation::Config {
    let mut config = if args.run.quick {
        propagation::Config::quick()
    } else {
        propagation::Config::full()
    };
    if !args.subscribers.is_empty() {
        config.subscribers.clone_from(&args.subscribers);
    }
    if !args.endpoints.is_empty() {
        config.endpoints.clone_from(&args.endpoints);
    }
    if let Some(trials) = args.trials {
        config.single_trials = vec![(usize::MAX, trials.max(1))];
        config.burst_trials = vec![(usize::MAX, (trials / 4).max(1))];
    }
    if args.raw_only {
        config.channel_budget = 0;
        config.e2e_subscribers.clear();
    }
    config
}

fn data_path_config(args: &DataPathArgs) -> datapath::Config {
    let mut config = if args.run.quick {
        datapath::Config::quick()
    } else {
        datapath::Config::full()
    };
    if !args.backends.is_empty() {
        config.backends.clone_from(&args.backends);
    }
    if !args.concurrency.is_empty() {
        config.concurrency.clone_from(&args.concurrency);
    }
    config.clients.clone_from(&args.clients);
    config
}

fn data_path_tls_config(args: &DataPathArgs) -> anyhow::Result<datapath::tls::Config> {
    use datapath::clients::ClientKind;
    let mut config = if args.run.quick {
        datapath::tls::Config::quick()
    } else {
        datapath::tls::Config::full()
    };
    if !args.backends.is_empty() {
        config.data.backends.clone_from(&args.backends);
    }
    if !args.concurrency.is_empty() {
        config.data.concurrency.clone_from(&args.concurrency);
    }
    if let Some(other) = args
        .clients
        .iter()
        .find(|c| !matches!(c, ClientKind::Ours | ClientKind::Direct))
    {
        anyhow::bail!(
            "--tls measures only ours and direct, not {}",
            other.short_label()
        );
    }
    config.data.clients.clone_from(&args.clients);
    if let Some(connections) = args.handshakes {
        config.handshake.connections = connections.max(1);
    }
    Ok(config)
}

fn rollout_config(args: &RunArgs) -> rollout::Config {
    if args.quick {
        rollout::Config::quick()
    } else {
        rollout::Config::full()
    }
}

/// The command line as typed, with the program's path shortened to `bench`.
fn command_line() -> String {
    let rest: Vec<String> = std::env::args().skip(1).collect();
    format!("bench {}", rest.join(" "))
}

/// Runs one scenario, saves its results as `file` and rewrites the report.
async fn scenario<T, F, E>(run: &RunArgs, file: &str, work: F) -> anyhow::Result<()>
where
    T: Serialize,
    F: Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let started = SystemTime::now();
    let machine = machine::Machine::describe();
    let clock = Instant::now();
    let results = work
        .await
        .with_context(|| format!("{file}: the benchmark failed"))?;
    let recorded = Recorded {
        command: command_line(),
        started: humantime::format_rfc3339_seconds(started).to_string(),
        duration_s: clock.elapsed().as_secs_f64(),
        quick: run.quick,
        machine,
        results,
    };
    results::save(&run.paths.out_dir, file, &recorded)?;
    report::write(&run.paths.out_dir, &run.paths.doc)?;
    tracing::info!(
        file,
        seconds = recorded.duration_s,
        "results saved, report updated"
    );
    Ok(())
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("bench=info,xds_balancer=error,ginepro=off,warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logs();
    match cli.command {
        Command::CpHost(args) => cphost::run(args).await?,
        Command::Report(paths) => report::write(&paths.out_dir, &paths.doc)?,
        Command::Propagation(args) => {
            let bins = Bins::new(args.run.paths.bin_dir.clone());
            let config = propagation_config(&args);
            let (peers, skipped) = peers::prepare(&args.peers).await?;
            scenario(
                &args.run,
                results::PROPAGATION,
                propagation::run(&config, &bins, &peers, skipped),
            )
            .await?;
        }
        Command::DataPath(args) if args.tls => {
            let bins = Bins::new(args.run.paths.bin_dir.clone());
            let config = data_path_tls_config(&args)?;
            scenario(
                &args.run,
                results::DATA_PATH_TLS,
                datapath::tls::run(&config, &bins),
            )
            .await?;
        }
        Command::DataPath(args) => {
            let bins = Bins::new(args.run.paths.bin_dir.clone());
            let config = data_path_config(&args);
            scenario(&args.run, results::DATA_PATH, datapath::run(&config, &bins)).await?;
        }
        Command::Rollout(args) => {
            let bins = Bins::new(args.paths.bin_dir.clone());
            scenario(
                &args,
                results::ROLLOUT,
                rollout::run(&rollout_config(&args), &bins),
            )
            .await?;
        }
        Command::All(args) => {
            let bins = Bins::new(args.paths.bin_dir.clone());
            let prop = PropagationArgs {
                run: args.clone(),
                subscribers: Vec::new(),
                endpoints: Vec::new(),
                trials: None,
                raw_only: false,
                peers: Vec::new(),
            };
            let data = DataPathArgs {
                run: args.clone(),
                backends: Vec::new(),
                concurrency: Vec::new(),
                clients: Vec::new(),
                tls: false,
                handshakes: None,
            };
            let (peers, skipped) = peers::prepare(&prop.peers).await?;
            scenario(
                &args,
                results::PROPAGATION,
                propagation::run(&propagation_config(&prop), &bins, &peers, skipped),
            )
            .await?;
            scenario(
                &args,
                results::DATA_PATH,
                datapath::run(&data_path_config(&data), &bins),
            )
            .await?;
            scenario(
                &args,
                results::DATA_PATH_TLS,
                datapath::tls::run(&data_path_tls_config(&data)?, &bins),
            )
            .await?;
            scenario(
                &args,
                results::ROLLOUT,
                rollout::run(&rollout_config(&args), &bins),
            )
            .await?;
        }
    }
    Ok(())
}
