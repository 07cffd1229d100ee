//! `control-plane`: `serve` and `status`. See `--help`.
//!
//! # Layout
//!
//! - `cli.rs`: the command line, and the check that `serve` got no flag of
//!   the source it does not run.
//! - `sources.rs`: choosing, configuring and starting that source.
//! - this file: logging, signals, and running `serve` and `status`.

mod cli;
mod sources;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use cli::{Cli, Command, ServeArgs, StatusArgs};
use common::logging;
use common::signal::StopSignals;
use control_plane::metrics::Metrics;
use control_plane::server::{self, Outcome};
use control_plane::source::SourceStatus;
use control_plane::source::kubernetes;
use control_plane::store::Store;
use control_plane::xds::names::Naming;
use sources::Prepared;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let in_pod = kubernetes::running_in_pod();
    let cli = Cli::parse_checked(std::env::args_os(), in_pod).unwrap_or_else(|error| error.exit());
    logging::init(cli.log_format);
    let (what, result) = match cli.command {
        Command::Serve(args) => ("serve", serve(*args, in_pod).await),
        Command::Status(args) => ("status", status(args).await),
    };
    result.unwrap_or_else(|error| {
        // A fixed message with the cause as a field, so log collectors (and
        // tests) can match it.
        let error = format!("{error:#}");
        tracing::error!(error, "{what} failed");
        ExitCode::FAILURE
    })
}

async fn serve(args: ServeArgs, in_pod: bool) -> anyhow::Result<ExitCode> {
    // Handlers first: until they exist these signals would kill the process.
    let signals = StopSignals::install().context("failed to install SIGTERM/SIGINT handlers")?;
    let Prepared {
        plan,
        kind,
        namespace,
        detail,
    } = sources::prepare(&args, in_pod).await?;
    let naming = Naming {
        namespace: namespace.clone(),
        cluster_domain: args.cluster_domain.clone(),
    };
    let replica = args
        .name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(common::hostname);
    let store = Store::with_replica(naming, SourceStatus::starting(kind, detail), replica);
    let metrics = Arc::new(Metrics::new());

    let metrics_listener = match args.metrics_listen {
        Some(addr) => {
            let (listener, addr) = bind(addr, "--metrics-listen").await?;
            tracing::info!(%addr, "metrics listening");
            Some(listener)
        }
        None => None,
    };
    let (listener, addr) = bind(args.listen, "--listen").await?;

    // Start the source before announcing the port, so a bad configuration
    // fails the start instead of a running server.
    let source_task = sources::start(plan, store.source_handle()).await?;
    tracing::info!(
        %addr,
        namespace,
        source = %kind,
        instance = store.instance_id(),
        "listening"
    );

    let config = server::Config {
        grace: args.grace,
        metrics_listener,
        ..Default::default()
    };
    let stop = Box::pin(futures::stream::unfold(signals, |mut signals| async move {
        let cause = signals.next().await;
        Some((cause, signals))
    }));
    tokio::select! {
        outcome = server::run(listener, store, metrics, config, stop) => {
            let outcome = outcome?;
            tracing::info!(?outcome, "stopped");
            Ok(match outcome {
                Outcome::Clean => ExitCode::SUCCESS,
                Outcome::GraceExpired => ExitCode::from(3),
                Outcome::Forced => ExitCode::from(130),
            })
        }
        error = sources::failure(source_task, kind) => Err(error),
    }
}

async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr} ({flag})"))?;
    let addr = listener
        .local_addr()
        .context("failed to read the bound address")?;
    Ok((listener, addr))
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let report = control_plane::status::fetch(&args.addr, args.timeout).await?;
    if args.json {
        let json = serde_json::to_string_pretty(&report.to_json())
            .context("failed to encode the report as JSON")?;
        println!("{json}");
    } else {
        print!("{}", report.to_text(SystemTime::now()));
    }
    Ok(ExitCode::SUCCESS)
}
