//! The demo's command line.

use std::time::Duration;

/// Default `--rate`.
pub(crate) const DEFAULT_RATE: f64 = 200.0;

/// The whole system on this machine, in one command: a control plane, three
/// greeter-servers and a client sending calls at a steady rate, walked
/// through six phases:
///
///   1. the usual first attempt (one ClusterIP address, balanced per TCP
///      connection): every call lands on one backend;
///   2. through the control plane: calls split evenly;
///   3. a backend turns NOT_SERVING, then SERVING: it leaves, then rejoins;
///   4. rolling restart of every backend with a graceful drain;
///   5. a backend killed with SIGKILL;
///   6. the control plane restarted.
///
/// Every part is a real process on 127.0.0.1 (copies of this executable
/// running the real servers' code). Shows calls per second per backend
/// while it runs and a summary per phase at the end.
///
/// Exit codes: 0 when every phase ran and phases 2, 3, 4 and 6 failed no
/// call; 1 otherwise; 2 on bad arguments; 130 when interrupted (Ctrl-C or
/// SIGTERM). Every process it started is stopped either way.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "demo", version, verbatim_doc_comment)]
pub(crate) struct Args {
    /// Run every phase in short form (well under a minute).
    #[arg(long)]
    pub(crate) quick: bool,

    /// Calls per second the client starts.
    #[arg(long, default_value_t = DEFAULT_RATE, value_parser = positive_rate)]
    pub(crate) rate: f64,

    /// Print one JSON summary on standard output at the end; everything
    /// else goes to standard error.
    #[arg(long)]
    pub(crate) json: bool,

    /// Deadline of each call.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) call_timeout: Duration,

    /// Give the client a retry policy for SayHello (it is idempotent): a
    /// call that may have reached a backend killed under it (phase 5) is
    /// sent again to another one instead of failing.
    #[arg(long)]
    pub(crate) retry: bool,

    /// Mutual TLS on every hop: client to control plane, client to
    /// greeter-servers, the control plane's probes to greeter-servers.
    /// Certificates are generated at start (one CA) and all rotated once
    /// during phase 2, the way cert-manager renews them.
    #[arg(long)]
    pub(crate) tls: bool,
}

fn positive_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !(1.0..=5000.0).contains(&rate) {
        return Err("must be between 1 and 5000 calls per second".to_owned());
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_and_limits() {
        let args = Args::try_parse_from(["demo"]).expect("defaults");
        assert_eq!(args.rate, DEFAULT_RATE);
        assert!(!args.quick && !args.json);
        assert!(Args::try_parse_from(["demo", "--rate", "0"]).is_err());
        assert!(Args::try_parse_from(["demo", "--rate", "lots"]).is_err());
    }
}
