//! The `control-plane` command line (`serve`, `status`) and its wiring:
//! logging, signals, the chosen source, the exit code.
//!
//! It lives in the library so that every binary that runs a control plane
//! (the `control-plane` binary itself, and the demo, which runs it as a
//! child process of itself) goes through this one code path. The binary's
//! `main` is [`Cli::parse_args`] followed by [`run`].
//!
//! - `args.rs`: the flags, and the check that `serve` got no flag of the
//!   source it does not run; `args/status.rs`: the flags of `status`.
//! - `sources.rs`: choosing, configuring and starting that source.
//! - `serve.rs`: `serve`: the store, the listeners, the server, the
//!   shutdown.

mod args;
mod serve;
mod sources;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::SystemTime;

pub use self::args::Cli;
use self::args::{Command, StatusArgs};
use crate::source::SourceKind;
use crate::source::kubernetes;
use crate::source::static_source;
use crate::{server, status};

/// Why `serve` or `status` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// SIGTERM / SIGINT handlers could not be installed.
    #[error("failed to install SIGTERM/SIGINT handlers")]
    Signals(#[source] std::io::Error),
    /// The static source's namespace is not a namespace name.
    #[error(
        "namespace {0:?} (from --namespace or POD_NAMESPACE) is not a Kubernetes namespace name \
         (a lowercase DNS label)"
    )]
    Namespace(String),
    /// The Kubernetes source could not be set up. Its text already lists
    /// its causes (kube's configuration errors say every place they
    /// looked), so it is not chained again.
    #[error("the kubernetes source cannot start: {0}")]
    Kubernetes(kubernetes::Error),
    /// A listen address could not be bound.
    #[error("failed to listen on {addr} ({flag})")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The flag that gave it.
        flag: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bound address could not be read back.
    #[error("failed to read the bound address")]
    LocalAddr(#[source] std::io::Error),
    /// The TLS files could not be loaded.
    #[error("TLS cannot start")]
    Tls(#[source] common::tls::Error),
    /// The static source did not start.
    #[error(transparent)]
    StaticStart(#[from] static_source::Error),
    /// The static source failed while running.
    #[error("the static source failed")]
    StaticFailed(#[source] static_source::Error),
    /// A source's task ended, which it never should.
    #[error("the {0} source stopped unexpectedly")]
    SourceStopped(SourceKind),
    /// A source's task panicked.
    #[error("the {kind} source task panicked: {message}")]
    SourcePanicked {
        /// Which source.
        kind: SourceKind,
        /// The panic.
        message: String,
    },
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] server::Error),
    /// `status` could not fetch the report.
    #[error(transparent)]
    Status(#[from] status::report::Error),
    /// `status --json` could not encode the report.
    #[error("failed to encode the report as JSON")]
    Json(#[source] serde_json::Error),
}

impl Cli {
    /// Parses `args` (the program name first) the way the `control-plane`
    /// binary does: the default source depends on whether this runs in a
    /// pod, and a bad command line prints clap's message and exits (code 2).
    pub fn parse_args<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::parse_checked(args, kubernetes::running_in_pod()).unwrap_or_else(|error| error.exit())
    }
}

/// Runs what the command line asks (`serve` or `status`) after setting up
/// logging, and returns the process's exit code.
pub async fn run(cli: Cli) -> ExitCode {
    common::logging::init(cli.log_format);
    let in_pod = cli.in_pod;
    let (what, result) = match cli.command {
        Command::Serve(args) => ("serve", serve::serve(*args, in_pod).await),
        Command::Status(args) => ("status", status_command(args).await),
    };
    result.unwrap_or_else(|error| {
        // In JSON, a fixed message with the cause as a field, so log
        // collectors (and tests) can match it.
        common::logging::fatal(cli.log_format, &format!("{what} failed"), &error);
        ExitCode::FAILURE
    })
}

async fn status_command(args: StatusArgs) -> Result<ExitCode, Error> {
    let tls = args.ca.clone().map(|ca| common::tls::ClientTlsFiles {
        ca,
        cert: args.cert.clone(),
        key: args.key.clone(),
    });
    let addr = args.address(|name| std::env::var(name).ok());
    let report = status::fetch(&addr, args.timeout, tls.as_ref()).await?;
    if args.json {
        let json = serde_json::to_string_pretty(&report.to_json()).map_err(Error::Json)?;
        println!("{json}");
    } else {
        print!("{}", report.to_text(SystemTime::now()));
    }
    Ok(ExitCode::SUCCESS)
}
