//! What each scenario writes: its results with when, where and how they
//! were measured, as JSON files the report is built from.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::machine::Machine;

/// File name of scenario 1's results.
pub(crate) const PROPAGATION: &str = "propagation.json";
/// File name of scenario 2's results.
pub(crate) const DATA_PATH: &str = "data-path.json";
/// File name of scenario 2's results over mutual TLS.
pub(crate) const DATA_PATH_TLS: &str = "data-path-tls.json";
/// File name of scenario 3's results.
pub(crate) const ROLLOUT: &str = "rollout.json";

/// Errors reading or writing results.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// Reading or writing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A results file is not what this harness writes.
    #[error("{path} is not a results file of this harness: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// One scenario's results and their circumstances.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Recorded<T> {
    /// The command that produced them.
    pub(crate) command: String,
    /// When the run started (UTC, RFC 3339).
    pub(crate) started: String,
    /// How long it took, in seconds.
    pub(crate) duration_s: f64,
    /// Whether it ran at the smoke test's tiny sizes.
    pub(crate) quick: bool,
    /// The machine.
    pub(crate) machine: Machine,
    /// The results.
    pub(crate) results: T,
}

/// Writes `recorded` to `dir/name`, creating `dir`.
pub(crate) fn save<T: Serialize>(
    dir: &Path,
    name: &str,
    recorded: &Recorded<T>,
) -> Result<(), Error> {
    let path = dir.join(name);
    let io = |source| Error::Io {
        what: "failed to write",
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let text = serde_json::to_string_pretty(recorded).map_err(|source| Error::Format {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, text + "\n").map_err(io)
}

/// Reads `dir/name`; `None` when it does not exist.
pub(crate) fn load<T: DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> Result<Option<Recorded<T>>, Error> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                what: "failed to read",
                path,
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| Error::Format { path, source })
}
