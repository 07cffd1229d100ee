//! The project's binaries as child processes of a benchmark.
//!
//! Each [`Proc`] is started with JSON logs, waited for until it logs
//! `listening` (its address is taken from that line), and killed when
//! dropped, so nothing outlives the harness. Its last log lines are kept
//! for error messages.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// How long a process may take to start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines kept per process.
const KEPT_LINES: usize = 40;

/// Errors starting or driving a child process.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The binary is not where it was looked for.
    #[error(
        "binary {0} not found: build the workspace binaries first (`cargo build --release --bins`) \
         or point --bin-dir at them"
    )]
    Missing(PathBuf),
    /// The process could not be started.
    #[error("failed to start {name}: {source}")]
    Spawn {
        /// The process's label.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It did not log its address in time, or exited first.
    #[error("{name} did not start listening within {timeout:?}; its last log lines:\n{log}")]
    NotListening {
        /// The process's label.
        name: String,
        /// The limit.
        timeout: Duration,
        /// Its last log lines.
        log: String,
    },
    /// A signal could not be sent.
    #[error("failed to send {signal} to {name}: {source}")]
    Signal {
        /// The process's label.
        name: String,
        /// The signal.
        signal: Signal,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// The result type of this module.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the workspace binaries are.
#[derive(Debug, Clone)]
pub(crate) struct Bins {
    dir: PathBuf,
}

impl Bins {
    /// Binaries in `dir`, or next to the running executable.
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        let dir = dir.unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from("."))
        });
        Self { dir }
    }

    /// The path of binary `name`, which must exist.
    pub(crate) fn path(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if path.exists() {
            Ok(path)
        } else {
            Err(Error::Missing(path))
        }
    }
}

/// A running child process, killed on drop.
#[derive(Debug)]
pub(crate) struct Proc {
    name: String,
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Proc {
    /// Starts `program` with `args` plus `--log-format json` and waits until
    /// it logs `listening`. `name` labels it in errors.
    pub(crate) async fn start(name: &str, program: &Path, args: &[String]) -> Result<Self> {
        let mut child = Command::new(program)
            .args(args)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn {
                name: name.to_owned(),
                source,
            })?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (addr_tx, mut addr_rx) = watch::channel(None);
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(addr) = common::logging::listening_addr(&line) {
                        addr_tx.send_replace(Some(addr));
                    }
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    if log.len() == KEPT_LINES {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
        }
        let waited = tokio::time::timeout(STARTUP_TIMEOUT, addr_rx.wait_for(Option::is_some)).await;
        let addr = match waited {
            Ok(Ok(addr)) => *addr,
            _ => None,
        };
        let Some(addr) = addr else {
            let _ = child.start_kill();
            return Err(Error::NotListening {
                name: name.to_owned(),
                timeout: STARTUP_TIMEOUT,
                log: log_text(&log),
            });
        };
        Ok(Self {
            name: name.to_owned(),
            child,
            addr,
            log,
        })
    }

    /// The address it listens on, as it logged it.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its label.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Sends `signal`.
    pub(crate) fn signal(&self, signal: Signal) -> Result<()> {
        let pid = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw)
            .ok_or(Error::Signal {
                name: self.name.clone(),
                signal,
                source: nix::Error::ESRCH,
            })?;
        nix::sys::signal::kill(pid, signal).map_err(|source| Error::Signal {
            name: self.name.clone(),
            signal,
            source,
        })
    }

    /// Waits up to `timeout` for it to exit.
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// User plus system CPU time it has used, in nanoseconds (from
    /// `/proc/<pid>/stat`, in clock ticks of 10 ms); 0 once it has exited.
    pub(crate) fn cpu_ns(&self) -> u64 {
        let Some(pid) = self.child.id() else {
            return 0;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The command name (field 2) may hold spaces; fields after it are
        // plain numbers. utime and stime are fields 14 and 15.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return 0;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        ticks * 10_000_000
    }

    /// Its last log lines.
    pub(crate) fn log(&self) -> String {
        log_text(&self.log)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn log_text(log: &Mutex<VecDeque<String>>) -> String {
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.iter().cloned().collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_how_to_build_them() {
        let bins = Bins::new(Some(PathBuf::from("/nonexistent")));
        let error = bins.path("greeter-server").unwrap_err().to_string();
        assert!(error.contains("cargo build --release --bins"), "{error}");
    }
}
