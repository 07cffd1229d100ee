//! The Kubernetes source's command-line options.
//!
//! The namespace (`--namespace`) and the API server's address and
//! credentials are not here: the namespace is shared with the static source
//! and resolved by [`resolve_namespace`](super::resolve_namespace); the
//! client is configured the standard way (`KUBECONFIG`, `~/.kube/config`,
//! or the pod's service account) by
//! [`client_from_environment`](super::client_from_environment).

use std::time::Duration;

use super::config::WatchConfig;
use crate::source::positive_duration;

/// Command-line options of the Kubernetes source. Their defaults are
/// [`WatchConfig::default`]'s.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Kubernetes source")]
pub struct KubernetesArgs {
    /// How long each watch request may stay open before the API server
    /// ends it and it is renewed (whole seconds). It also bounds how long a
    /// silently broken connection to the API server goes unnoticed (this
    /// plus 5 s). Examples: 60s, 5m.
    #[arg(
        long = "kube-watch-timeout",
        env = "CONTROL_PLANE_KUBE_WATCH_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = watch_timeout
    )]
    pub watch_timeout: Duration,

    /// Longest wait between attempts to list and watch again after the API
    /// server failed or could not be reached. Waits start at 0.5 s and
    /// double up to this, with jitter; the last state keeps being served
    /// meanwhile. Shorter recovers sooner after an outage; longer spares a
    /// struggling API server. Examples: 10s, 1m.
    #[arg(
        long = "kube-backoff-max",
        env = "CONTROL_PLANE_KUBE_BACKOFF_MAX",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = positive_duration
    )]
    pub backoff_max: Duration,

    /// While the cluster has no GRPCRoute API (the Gateway API CRDs are not
    /// installed, or the Role does not grant them), how often to look for
    /// it again. Routes are off meanwhile and `status` says why; CRDs
    /// installed later take effect within this. Examples: 30s, 5m.
    #[arg(
        long = "kube-route-recheck",
        env = "CONTROL_PLANE_KUBE_ROUTE_RECHECK",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = positive_duration
    )]
    pub route_recheck: Duration,
}

impl Default for KubernetesArgs {
    /// As [`WatchConfig::default`].
    fn default() -> Self {
        let config = WatchConfig::default();
        Self {
            watch_timeout: config.watch_timeout,
            backoff_max: config.backoff_max,
            route_recheck: config.route_recheck,
        }
    }
}

impl KubernetesArgs {
    /// The watch settings these options ask for.
    pub fn watch_config(&self) -> WatchConfig {
        let defaults = WatchConfig::default();
        let initial = defaults.backoff_initial.min(self.backoff_max);
        defaults
            .watch_timeout(self.watch_timeout)
            .backoff(initial, self.backoff_max)
            .route_recheck(self.route_recheck)
    }
}

/// A watch timeout: whole seconds, at least one.
fn watch_timeout(text: &str) -> Result<Duration, String> {
    let duration = positive_duration(text)?;
    if duration.subsec_nanos() != 0 || duration < Duration::from_secs(1) {
        return Err("must be a whole number of seconds (at least 1s)".to_owned());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: KubernetesArgs,
    }

    fn parse(args: &[&str]) -> Result<KubernetesArgs, clap::Error> {
        let mut all = vec!["test"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|cli| cli.args)
    }

    #[test]
    fn defaults_are_the_watch_config_defaults() {
        let parsed = parse(&[]).expect("no flags parse");
        assert_eq!(parsed, KubernetesArgs::default());
        assert_eq!(parsed.watch_config(), WatchConfig::default());
    }

    #[test]
    fn flags_set_the_watch_config() {
        let parsed = parse(&["--kube-watch-timeout", "5m", "--kube-backoff-max", "200ms"])
            .expect("valid flags");
        let config = parsed.watch_config();
        assert_eq!(config.watch_timeout, Duration::from_secs(300));
        assert_eq!(config.backoff_max, Duration::from_millis(200));
        assert_eq!(
            config.backoff_initial,
            Duration::from_millis(200),
            "the first wait is never longer than the longest"
        );
    }

    #[test]
    fn bad_durations_are_refused() {
        for args in [
            ["--kube-watch-timeout", "1500ms"],
            ["--kube-watch-timeout", "0s"],
            ["--kube-backoff-max", "0s"],
            ["--kube-backoff-max", "soon"],
        ] {
            assert!(parse(&args).is_err(), "{args:?} accepted");
        }
    }
}
