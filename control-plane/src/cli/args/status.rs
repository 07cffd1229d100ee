//! The flags of `control-plane status`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{CONTROL_PLANE_ENV, DEFAULT_ADDR, DEFAULT_TIMEOUT_ARG, FORMER_ADDR_ENV};

/// Flags of `status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The control plane's address (its `serve --listen` port), written as
    /// for greeter-client: `host:port` or `http://host:port` for plaintext,
    /// `https://host:port` for TLS (with --ca). Default: CONTROL_PLANE, else
    /// CONTROL_PLANE_ADDR (this flag's former variable), else
    /// http://127.0.0.1:18000. `--addr` is its former name.
    #[arg(
        long = "control-plane",
        visible_alias = "addr",
        env = CONTROL_PLANE_ENV,
        value_name = "ADDR"
    )]
    pub(crate) control_plane: Option<String>,

    /// Print one JSON object instead of tables (field names as in
    /// status.proto, states as words).
    #[arg(long)]
    pub(crate) json: bool,

    /// Time limit for connecting and for each call.
    #[arg(long, default_value = DEFAULT_TIMEOUT_ARG, value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,

    /// CA certificates (PEM) that the control plane's certificate must
    /// chain to, for an `https://` address (required there). The
    /// certificate must be valid for the address's host.
    #[arg(long, env = "CONTROL_PLANE_CA", value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,

    /// Client certificate (PEM) for a control plane that requires one
    /// (--tls-client-ca). Needs --key and --ca.
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

impl StatusArgs {
    /// The address to ask: --control-plane (or CONTROL_PLANE), else
    /// CONTROL_PLANE_ADDR as read through `env`, else the default.
    pub(crate) fn address(&self, env: impl Fn(&str) -> Option<String>) -> String {
        self.control_plane
            .clone()
            .filter(|addr| !addr.trim().is_empty())
            .or_else(|| env(FORMER_ADDR_ENV).filter(|addr| !addr.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_ADDR.to_owned())
    }
}
