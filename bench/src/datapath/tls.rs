//! Scenario 2 over mutual TLS (`bench data-path --tls`): what TLS costs
//! on every call, and what one handshake costs.
//!
//! # Design notes
//!
//! For every backend count, two sets of real greeter-servers run side by
//! side: plaintext ones and ones that require a client certificate
//! (`--tls-client-ca`). One real `control-plane serve` serves both from a
//! static file, `greeter` plaintext and `greeter-tls` marked `tls:`, so the
//! second one's Cluster carries the `UpstreamTlsContext` our channel takes
//! its TLS settings from (the channel is only given a certificate provider,
//! as a bootstrap would); the control plane's health probes speak mTLS to
//! the TLS set. Four contenders take turns in the same rounds as the
//! plaintext scenario ([`super::rounds`]): our channel and a direct tonic
//! channel to the first backend, each over plaintext and over mTLS, so the
//! ratios come from the same seconds of the same shared machine. The direct
//! channels connect through `tls_reload`'s connector, the TLS code our
//! channel uses, with TLS off for the plaintext one: the two differ only by
//! TLS. Then [`handshake`] measures fresh connections.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::certs::{BenchTls, SERVER_SAN};
use super::clients::{self, Caller, ClientKind};
use super::{Contender, Row, handshake, rounds, row, start_backends, warm_up};
use crate::procs::{self, Bins, Proc};

/// Errors of this scenario.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Starting a process failed.
    #[error(transparent)]
    Process(#[from] procs::Error),
    /// Building a client failed.
    #[error(transparent)]
    Client(#[from] clients::Error),
    /// The client's TLS files could not be loaded.
    #[error("client TLS: {0}")]
    Tls(#[from] tls_reload::Error),
    /// The control plane's static file could not be written.
    #[error("failed to write the static file {path}: {source}")]
    StaticFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The handshake measurement failed.
    #[error(transparent)]
    Handshake(#[from] handshake::Error),
}

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The data path's settings (backend counts, concurrencies, rounds;
    /// `clients` among ours and direct).
    pub(crate) data: super::Config,
    /// The handshake measurement's.
    pub(crate) handshake: handshake::Config,
}

impl Config {
    /// The published set.
    pub(crate) fn full() -> Self {
        let mut data = super::Config::full();
        data.backends = vec![1, 3];
        Self {
            data,
            handshake: handshake::Config::full(),
        }
    }

    /// Tiny sizes, to check the harness.
    pub(crate) fn quick() -> Self {
        Self {
            data: super::Config::quick(),
            handshake: handshake::Config::quick(),
        }
    }
}

/// How a client reaches the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Transport {
    /// HTTP/2 over TCP (h2c).
    Plaintext,
    /// HTTP/2 over TLS, with a client certificate.
    Mtls,
}

impl Transport {
    /// How the report names it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Mtls => "mTLS",
        }
    }
}

/// One (client, transport, backends, concurrency) result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TlsRow {
    /// Plaintext or mTLS.
    pub(crate) transport: Transport,
    /// The same figures as a plaintext data-path row.
    #[serde(flatten)]
    pub(crate) row: Row,
}

/// Everything this scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Results {
    /// Every data-path row.
    pub(crate) rows: Vec<TlsRow>,
    /// Rounds per (backends, concurrency).
    pub(crate) reps: usize,
    /// Measured seconds per client per round.
    pub(crate) duration_s: f64,
    /// The handshake measurement.
    pub(crate) handshake: handshake::Results,
}

/// The control plane's static file: `greeter` in plaintext on `plain`,
/// `greeter-tls` over TLS on `mtls`, servers checked for [`SERVER_SAN`].
fn static_file(plain: &[Proc], mtls: &[Proc]) -> String {
    let endpoints =
        |procs: &[Proc]| -> Vec<String> { procs.iter().map(|p| p.addr().to_string()).collect() };
    let doc = json!({"services": [
        {"name": "greeter", "endpoints": endpoints(plain)},
        {
            "name": "greeter-tls",
            "endpoints": endpoints(mtls),
            "tls": {"subject_alt_names": [SERVER_SAN]},
        },
    ]});
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Runs the scenario.
pub(crate) async fn run(config: &Config, bins: &Bins) -> Result<Results, Error> {
    let certs = BenchTls::new();
    let client_tls = certs.client()?;
    let wanted = |kind| config.data.clients.is_empty() || config.data.clients.contains(&kind);
    let mut rows = Vec::new();
    for &count in &config.data.backends {
        tracing::info!(backends = count, "data path, plaintext and mTLS");
        let plain = start_backends(bins, "b", count, &[]).await?;
        let mtls = start_backends(bins, "tls-b", count, &certs.server_args()).await?;
        let file = certs.path("services.json");
        std::fs::write(&file, static_file(&plain, &mtls)).map_err(|source| Error::StaticFile {
            path: file.clone(),
            source,
        })?;
        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--source".to_owned(),
            "static".to_owned(),
            "--static-file".to_owned(),
            file.display().to_string(),
        ];
        args.extend(certs.probe_args());
        let control_plane =
            Proc::start("control-plane", &bins.path("control-plane")?, &args).await?;
        let cp = control_plane.addr();
        let mut contenders: Vec<Contender<'_, (ClientKind, Transport)>> = Vec::new();
        if wanted(ClientKind::Ours) {
            let ours = clients::ours_for(cp, "greeter", None).await?;
            contenders.push(((ClientKind::Ours, Transport::Plaintext), ours, &plain));
            let ours = clients::ours_for(cp, "greeter-tls", Some(certs.provider())).await?;
            contenders.push(((ClientKind::Ours, Transport::Mtls), ours, &mtls));
        }
        if wanted(ClientKind::Direct) {
            let direct = clients::through_connector(plain[0].addr(), None).await?;
            contenders.push((
                (ClientKind::Direct, Transport::Plaintext),
                Caller::tonic(direct),
                &plain,
            ));
            let direct =
                clients::through_connector(mtls[0].addr(), Some(client_tls.clone())).await?;
            contenders.push((
                (ClientKind::Direct, Transport::Mtls),
                Caller::tonic(direct),
                &mtls,
            ));
        }
        warm_up(&contenders, &config.data).await;
        for &concurrency in &config.data.concurrency {
            for ((kind, transport), loads) in rounds(&contenders, concurrency, &config.data).await {
                rows.push(TlsRow {
                    transport,
                    row: row(kind, count, concurrency, loads),
                });
            }
        }
        drop(contenders);
        drop(control_plane);
    }
    tracing::info!("handshakes");
    let handshake = handshake::run(&config.handshake, bins, &certs, &client_tls).await?;
    Ok(Results {
        rows,
        reps: config.data.reps,
        duration_s: config.data.duration.as_secs_f64(),
        handshake,
    })
}
