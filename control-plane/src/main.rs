//! `control-plane`: `serve` and `status`. See `--help`.

mod cli;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::Parser;
use cli::{Cli, Command, ServeArgs, SourceChoice, StatusArgs};
use common::logging;
use common::signal::StopSignals;
use control_plane::metrics::Metrics;
use control_plane::model::is_dns_label;
use control_plane::server::{self, Outcome};
use control_plane::source::static_source;
use control_plane::source::{SourceKind, SourceStatus};
use control_plane::store::Store;
use control_plane::xds::names::Naming;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let (what, result) = match cli.command {
        Command::Serve(args) => ("serve", serve(args).await),
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

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Handlers first: until they exist these signals would kill the process.
    let signals = StopSignals::install().context("failed to install SIGTERM/SIGINT handlers")?;
    anyhow::ensure!(
        is_dns_label(&args.namespace),
        "--namespace {:?} is not a Kubernetes namespace name (a lowercase DNS label)",
        args.namespace
    );
    let source = args.source();
    let kind = match source {
        SourceChoice::Static => SourceKind::Static,
    };
    let naming = Naming {
        namespace: args.namespace.clone(),
        cluster_domain: args.cluster_domain.clone(),
    };
    let detail = match source {
        SourceChoice::Static => args.static_args.describe(),
    };
    let store = Store::new(naming, SourceStatus::starting(kind, detail));
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
    let source_task = match source {
        SourceChoice::Static => {
            let running = static_source::start(args.static_args, store.source_handle()).await?;
            tokio::spawn(running.wait())
        }
    };
    tracing::info!(
        %addr,
        namespace = args.namespace,
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
        error = source_failure(source_task, kind) => Err(error),
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

/// Resolves only if the source task fails; a source that finishes its work
/// (a one-shot static configuration) leaves the last state in force.
async fn source_failure<E>(task: JoinHandle<Result<(), E>>, kind: SourceKind) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    match task.await {
        Ok(Ok(())) => {
            tracing::debug!(source = %kind, "source task finished; its services stay in force");
            std::future::pending().await
        }
        Ok(Err(error)) => anyhow::Error::new(error).context(format!("the {kind} source failed")),
        Err(join) => anyhow::anyhow!("the {kind} source task panicked: {join}"),
    }
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
