//! The `greeter-server` command line and its wiring: flags, logging,
//! signals (SIGTERM / SIGINT stop, SIGUSR1 toggles health), the listener,
//! and the exit code.
//!
//! It lives in the library so that every binary that runs a greeter-server
//! (the `greeter-server` binary itself, and the demo, which runs each role
//! as a child process of itself) goes through this one code path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use common::logging::{self, LogFormat};
use common::signal::StopSignals;
use common::tls::{ServerTls, ServerTlsFiles};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::health::HealthControl;
use crate::server::{self, Config, DrainOutcome};

/// Where a .NET 8 container (and this server) listens by default.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// `--drain-delay` default as written on the command line; matches
/// [`server::DEFAULT_DRAIN_DELAY`].
const DEFAULT_DRAIN_DELAY_ARG: &str = "5s";
/// `--grace` default as written on the command line; matches
/// [`server::DEFAULT_GRACE`].
const DEFAULT_GRACE_ARG: &str = "20s";

/// Exit code when the grace period cut calls.
pub const EXIT_GRACE_EXPIRED: u8 = 3;
/// Exit code when a second stop signal cut the drain short.
pub const EXIT_FORCED: u8 = 130;

/// Example gRPC backend: greet.Greeter/SayHello with grpc.health.v1,
/// server reflection and a graceful drain.
///
/// Serves plaintext HTTP/2 (h2c), or TLS (ALPN h2) with --tls-cert and
/// --tls-key, mutual TLS with --tls-client-ca. The TLS files are re-read
/// every second: connections opened after a change (a cert-manager renewal,
/// a Secret's symlink swap) get the new certificate, open ones are kept; a
/// broken new file is logged and the last good one stays in use. Every
/// reply names the instance that served it (`served_by`).
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
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "greeter-server", version, verbatim_doc_comment)]
pub struct Args {
    /// Address to listen on (plaintext HTTP/2 unless --tls-cert is set).
    #[arg(long, env = "GREETER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Serve TLS with this certificate chain (PEM, leaf first). Needs --tls-key.
    #[arg(
        long,
        env = "GREETER_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "GREETER_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates that chain to these CAs (PEM): mutual TLS.
    /// Needs --tls-cert.
    #[arg(
        long,
        env = "GREETER_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// Also serve grpc.health.v1, and nothing else, in plaintext on this
    /// address: for kubelet gRPC probes, which cannot speak TLS (off unless set).
    #[arg(long, env = "GREETER_HEALTH_LISTEN", value_name = "ADDR")]
    pub health_listen: Option<SocketAddr>,

    /// Instance name returned in `served_by`. Defaults to POD_NAME, else the host name.
    #[arg(long, env = "POD_NAME")]
    pub name: Option<String>,

    /// After a stop signal, keep answering this long (health NOT_SERVING)
    /// so discovery can move clients away. Examples: 5s, 500ms.
    #[arg(long, env = "GREETER_DRAIN_DELAY", default_value = DEFAULT_DRAIN_DELAY_ARG, value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,

    /// Once new connections are refused, how long in-flight calls may take to finish.
    #[arg(long, env = "GREETER_GRACE", default_value = DEFAULT_GRACE_ARG, value_parser = humantime::parse_duration)]
    pub grace: Duration,

    /// Log format on standard error. RUST_LOG selects levels (default: info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// Errors that stop the server before or while serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A signal handler could not be installed.
    #[error("failed to install the {signal} handler: {source}")]
    Signals {
        /// Which signals.
        signal: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bound address could not be read back.
    #[error("failed to read the bound address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// The TLS files could not be loaded.
    #[error("TLS cannot start: {0}")]
    Tls(#[source] common::tls::Error),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] server::Error),
}

/// Runs the server as the command line asks: sets up logging, serves until
/// a stop signal, drains, and returns the process's exit code.
pub async fn run(args: Args) -> ExitCode {
    logging::init(args.log_format);
    let format = args.log_format;
    match serve(args).await {
        Ok(DrainOutcome::Clean) => ExitCode::SUCCESS,
        Ok(DrainOutcome::GraceExpired { .. }) => ExitCode::from(EXIT_GRACE_EXPIRED),
        Ok(DrainOutcome::Forced) => ExitCode::from(EXIT_FORCED),
        Err(error) => {
            logging::fatal(format, "serve failed", &error);
            ExitCode::FAILURE
        }
    }
}

/// Serves until a stop signal and the drain that follows.
pub async fn serve(args: Args) -> Result<DrainOutcome, Error> {
    let name = args.name.unwrap_or_else(common::hostname);
    // Handlers first: until they exist these signals would kill the process.
    let signals = StopSignals::install().map_err(|source| Error::Signals {
        signal: "SIGTERM/SIGINT",
        source,
    })?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(|source| Error::Signals {
        signal: "SIGUSR1",
        source,
    })?;

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            ServerTls::load(&ServerTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            })
            .map_err(Error::Tls)?,
        ),
        _ => None,
    };
    let transport = match &tls {
        None => "plaintext",
        Some(tls) if tls.is_mutual() => "mTLS",
        Some(_) => "TLS",
    };

    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(Error::LocalAddr)?;

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

    if let Some(health_addr) = args.health_listen {
        let health_listener =
            TcpListener::bind(health_addr)
                .await
                .map_err(|source| Error::Listen {
                    addr: health_addr,
                    source,
                })?;
        let bound = health_listener.local_addr().map_err(Error::LocalAddr)?;
        tracing::info!(addr = %bound, "health listening (plaintext, grpc.health.v1 only)");
        let reporter = health.reporter();
        tokio::spawn(async move {
            // Ends with the process; the drain turns it NOT_SERVING first.
            let stopped = tokio_util::sync::CancellationToken::new();
            if let Err(error) =
                common::health::serve_plaintext(health_listener, reporter, stopped).await
            {
                tracing::error!(%error, "the health port failed");
            }
        });
    }
    tracing::info!(%addr, name, transport, "listening");
    let config = Config {
        name,
        drain_delay: args.drain_delay,
        grace: args.grace,
        tls,
    };
    let stop = Box::pin(futures::stream::unfold(signals, |mut signals| async move {
        let cause = signals.next().await;
        Some((cause, signals))
    }));
    let outcome = server::run(listener, config, health, stop).await?;
    tracing::info!(?outcome, "stopped");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{DEFAULT_DRAIN_DELAY, DEFAULT_GRACE};
    use clap::Parser as _;

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

    #[test]
    fn a_listen_error_names_its_cause_once() {
        let error = Error::Listen {
            addr: "127.0.0.1:1".parse().expect("addr"),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        let text = common::error::chain(&error);
        assert_eq!(text.matches("address in use").count(), 1, "{text}");
        assert!(
            text.starts_with("failed to listen on 127.0.0.1:1"),
            "{text}"
        );
    }
}
