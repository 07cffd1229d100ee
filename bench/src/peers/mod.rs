//! Other control planes measured beside ours in scenario 1.
//!
//! # Design notes
//!
//! A peer is a program that speaks the control-plane host's protocol
//! ([`crate::cphost`]: `create`, `flip`, `stats` on standard input, JSON
//! lines on standard output) around its own xDS server, so the harness
//! drives it, stamps its changes and reads its CPU time and memory exactly
//! as it does ours, with the same raw ADS subscribers. Only what a peer
//! cannot report is missing from its rows (the control plane's own
//! response histogram is ours alone).
//!
//! - [`go`]: go-control-plane's snapshot cache and ADS server
//!   (`bench/go-xds-peer`), built with the Go toolchain on first use.
//!
//! ezbake (a Rust xDS control plane for Kubernetes) is not among them:
//! docs/benchmarks.md says why.

pub(crate) mod go;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The control plane a row measured.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ControlPlane {
    /// This project's, in the `cp-host` process.
    #[default]
    Ours,
    /// go-control-plane's snapshot cache and ADS server.
    GoControlPlane,
}

impl ControlPlane {
    /// Its name in tables and legends.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::GoControlPlane => "go-control-plane",
        }
    }
}

/// A peer to measure, as chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PeerChoice {
    /// go-control-plane (snapshot cache and ADS server), from Go.
    GoControlPlane,
    /// No peer: only our control plane.
    None,
}

/// A peer ready to run.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// Which one.
    pub(crate) control_plane: ControlPlane,
    /// Its program.
    pub(crate) program: PathBuf,
    /// What it is, with versions, for the report.
    pub(crate) description: String,
}

/// The peers `choices` name (all of them when empty), built; and, for each
/// one that cannot run here, why (the run goes on without it).
pub(crate) async fn prepare(choices: &[PeerChoice]) -> Result<(Vec<Peer>, Vec<String>), go::Error> {
    let wanted = |choice| choices.is_empty() || choices.contains(&choice);
    let mut peers = Vec::new();
    let mut skipped = Vec::new();
    if wanted(PeerChoice::GoControlPlane) && !choices.contains(&PeerChoice::None) {
        match go::program().await {
            Ok(program) => peers.push(Peer {
                control_plane: ControlPlane::GoControlPlane,
                program,
                description: go::DESCRIPTION.to_owned(),
            }),
            Err(go::Error::NoGo(why)) => {
                tracing::warn!("go-control-plane not measured: {why}");
                skipped.push(format!("go-control-plane: {why}"));
            }
            Err(error) => return Err(error),
        }
    }
    Ok((peers, skipped))
}
