//! Loading `--static-file`, and watching it for changes.
//!
//! The watcher polls: every `--file-poll-interval` it reads the file through
//! its path and compares the bytes with the last content it handled. Polling
//! the content (rather than following inotify events or modification times)
//! sees every way a file gets replaced: editors that write a new file and
//! rename it over the old one, and Kubernetes ConfigMap volumes, which swap a
//! `..data` symlink to a new directory. A changed content is handled once it
//! reads the same twice in a row a moment apart, so a file caught half
//! written (which may still be valid YAML, with services missing) is not
//! applied.
//!
//! Each content is parsed and resolved once; the outcome goes to the source's
//! task. The exception is a host name that did not resolve: that content is
//! tried again on every poll, and a new outcome is reported when it differs.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::config::{self, ConfigError};
use super::resolve::{self, ResolveError};
use crate::model::Service;
use crate::routes::TrafficRoute;

/// Largest static file accepted.
pub const MAX_FILE_SIZE: u64 = 4 << 20;
/// Longest wait before re-reading a changed file to see that it settled.
const MAX_SETTLE: Duration = Duration::from_millis(100);

/// Errors while loading a static file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("failed to read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is too large to be a service list.
    #[error("{} is larger than {MAX_FILE_SIZE} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not text.
    #[error("{} is not UTF-8 text", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The content is malformed.
    #[error("invalid static file {}: {source}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ConfigError,
    },
    /// A service could not be resolved or breaks the model's rules.
    #[error("invalid static file {}: {source}", path.display())]
    Resolve {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ResolveError,
    },
}

/// A file's content, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loaded {
    /// Its services, host names resolved.
    pub(crate) services: Vec<Service>,
    /// Its routes.
    pub(crate) routes: Vec<TrafficRoute>,
}

/// Reads, parses and resolves the file at `path`; returns its bytes and its
/// content.
pub(crate) async fn load(path: &Path, namespace: &str) -> Result<(Vec<u8>, Loaded), LoadError> {
    let bytes = read(path).await?;
    let loaded = interpret(path, &bytes, namespace).await?;
    Ok((bytes, loaded))
}

async fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    let read_error = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

async fn interpret(path: &Path, bytes: &[u8], namespace: &str) -> Result<Loaded, LoadError> {
    let text = std::str::from_utf8(bytes).map_err(|_| LoadError::NotText {
        path: path.to_owned(),
    })?;
    let content = config::parse_file(text).map_err(|source| LoadError::Config {
        path: path.to_owned(),
        source,
    })?;
    let services = resolve::resolve(content.services, namespace)
        .await
        .map_err(|source| LoadError::Resolve {
            path: path.to_owned(),
            source,
        })?;
    Ok(Loaded {
        services,
        routes: content.routes,
    })
}

/// What the watcher saw last.
enum Seen {
    /// This content, handled; `retry` when it failed for a reason that may
    /// pass (a host name that did not resolve).
    Content { bytes: Vec<u8>, retry: bool },
    /// The file could not be read, with this error.
    Unreadable(String),
}

/// Polls a static file and reports each new content's outcome.
pub(crate) struct FileWatcher {
    path: PathBuf,
    namespace: String,
    poll: Duration,
    seen: Seen,
    last_error: Option<String>,
}

impl FileWatcher {
    /// A watcher of `path` whose content `bytes` has already been applied.
    pub(crate) fn new(path: PathBuf, namespace: String, poll: Duration, bytes: Vec<u8>) -> Self {
        Self {
            path,
            namespace,
            poll,
            seen: Seen::Content {
                bytes,
                retry: false,
            },
            last_error: None,
        }
    }

    /// Polls until `changes` is closed, sending the outcome of every new
    /// content (or read error).
    pub(crate) async fn run(mut self, changes: mpsc::Sender<Result<Loaded, LoadError>>) {
        let settle = self.poll.min(MAX_SETTLE);
        loop {
            tokio::time::sleep(self.poll).await;
            let bytes = match read(&self.path).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    let text = error.to_string();
                    if matches!(&self.seen, Seen::Unreadable(seen) if *seen == text) {
                        continue;
                    }
                    self.seen = Seen::Unreadable(text.clone());
                    self.last_error = Some(text);
                    if changes.send(Err(error)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let retrying = match &self.seen {
                Seen::Content { bytes: seen, retry } if *seen == bytes => {
                    if !retry {
                        continue;
                    }
                    true
                }
                _ => false,
            };
            if !retrying {
                tokio::time::sleep(settle).await;
                match read(&self.path).await {
                    Ok(again) if again == bytes => {}
                    // Still changing, or gone: look again at the next poll.
                    _ => continue,
                }
            }
            let outcome = interpret(&self.path, &bytes, &self.namespace).await;
            let retry =
                matches!(&outcome, Err(LoadError::Resolve { source, .. }) if source.is_transient());
            self.seen = Seen::Content { bytes, retry };
            let error = outcome.as_ref().err().map(ToString::to_string);
            if retrying && error.is_some() && error == self.last_error {
                continue;
            }
            self.last_error = error;
            if changes.send(outcome).await.is_err() {
                return;
            }
        }
    }
}
