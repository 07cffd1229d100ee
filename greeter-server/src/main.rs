//! `greeter-server`: the example backend. See `--help`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use common::logging::{self, LogFormat};
use common::signal::StopSignals;
use greeter_server::{Config, DrainOutcome, HealthControl};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// Where a .NET 8 container (and this server) listens by default.
const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// Example gRPC backend: greet.Greeter/SayHello with grpc.health.v1,
/// server reflection and a graceful drain.
///
/// Serves plaintext HTTP/2 (h2c). Every reply names the instance that served
/// it (`served_by`).
///
/// Signals: SIGTERM or SIGINT starts the drain (health NOT_SERVING at once,
/// keep answering for --drain-delay, then refuse new connections, send
/// GOAWAY and let in-flight calls finish within --grace); a second one stops
/// at once. SIGUSR1 toggles health between SERVING and NOT_SERVING without a
/// restart (ignored while draining).
///
/// Exit codes: 0 after a clean drain, 1 on a startup or serving error, 2 on
/// bad arguments, 3 when the grace period cut calls, 130 when a second stop
/// signal cut the drain short.
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Address to listen on (plaintext HTTP/2).
    #[arg(long, env = "GREETER_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Instance name returned in `served_by`. Defaults to POD_NAME, else the host name.
    #[arg(long, env = "POD_NAME")]
    name: Option<String>,

    /// After a stop signal, keep answering this long (health NOT_SERVING)
    /// so discovery can move clients away. Examples: 5s, 500ms.
    #[arg(long, env = "GREETER_DRAIN_DELAY", default_value = DEFAULT_DRAIN_DELAY_ARG, value_parser = humantime::parse_duration)]
    drain_delay: Duration,

    /// Once new connections are refused, how long in-flight calls may take to finish.
    #[arg(long, env = "GREETER_GRACE", default_value = DEFAULT_GRACE_ARG, value_parser = humantime::parse_duration)]
    grace: Duration,

    /// Log format on standard error. RUST_LOG selects levels (default: info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
}

/// `--drain-delay` default as written on the command line; matches
/// `greeter_server::server::DEFAULT_DRAIN_DELAY`.
const DEFAULT_DRAIN_DELAY_ARG: &str = "5s";
/// `--grace` default as written on the command line; matches
/// `greeter_server::server::DEFAULT_GRACE`.
const DEFAULT_GRACE_ARG: &str = "20s";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.log_format);
    match serve(args).await {
        Ok(DrainOutcome::Clean) => ExitCode::SUCCESS,
        Ok(DrainOutcome::GraceExpired { .. }) => ExitCode::from(3),
        Ok(DrainOutcome::Forced) => ExitCode::from(130),
        Err(error) => {
            tracing::error!("{}", common::error::chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<DrainOutcome> {
    let name = args.name.unwrap_or_else(common::hostname);
    // Handlers first: until they exist these signals would kill the process.
    let signals = StopSignals::install().context("failed to install SIGTERM/SIGINT handlers")?;
    let mut usr1 =
        signal(SignalKind::user_defined1()).context("failed to install the SIGUSR1 handler")?;

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("failed to read the bound address")?;

    let health = HealthControl::new().await;
    let toggler = health.clone();
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            match toggler.toggle().await {
                Some(true) => tracing::info!("SIGUSR1: health is now SERVING"),
                Some(false) => tracing::info!("SIGUSR1: health is now NOT_SERVING"),
                None => tracing::warn!("SIGUSR1 ignored: the server is draining"),
            }
        }
    });

    tracing::info!(%addr, name, "listening");
    let config = Config {
        name,
        drain_delay: args.drain_delay,
        grace: args.grace,
    };
    let stop = Box::pin(futures::stream::unfold(signals, |mut signals| async move {
        let cause = signals.next().await;
        Some((cause, signals))
    }));
    let outcome = greeter_server::run(listener, config, health, stop).await?;
    tracing::info!(?outcome, "stopped");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use greeter_server::server::{DEFAULT_DRAIN_DELAY, DEFAULT_GRACE};

    #[test]
    fn defaults_match_the_library() {
        let args = Args::try_parse_from(["greeter-server"]).expect("defaults parse");
        assert_eq!(args.drain_delay, DEFAULT_DRAIN_DELAY);
        assert_eq!(args.grace, DEFAULT_GRACE);
        assert_eq!(args.listen.port(), 8080);
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
