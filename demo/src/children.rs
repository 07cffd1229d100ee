//! The demo's child processes: copies of this executable running one role
//! each (see [`crate::roles`]).
//!
//! Every child:
//! - runs in its own process group, so a Ctrl-C in the terminal reaches only
//!   the demo, which then stops the children in order;
//! - is killed when its [`Child`] is dropped (and by the kernel if the demo
//!   dies, see [`crate::roles`]);
//! - logs JSON to standard error, which is kept (the last lines) to explain
//!   a failure, and watched for the `listening` line that carries the
//!   address it bound.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

use crate::roles;

/// Log lines kept per child.
const KEPT_LINES: usize = 200;
/// How long a child may take to announce its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Child::stop`] waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Errors managing a child.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// This executable's path is unknown.
    #[error("cannot find the demo's own executable to start {name}: {source}")]
    CurrentExe {
        /// The child.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process could not be started.
    #[error("failed to start {name}: {source}")]
    Spawn {
        /// The child.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited before it was expected to.
    #[error("{name} exited ({status}) {doing}; its last log lines:\n{log}")]
    Exited {
        /// The child.
        name: String,
        /// How it ended.
        status: ExitStatus,
        /// What the demo was waiting for.
        doing: &'static str,
        /// Its last log lines.
        log: String,
    },
    /// It did not do something in time.
    #[error("{name} did not {what} within {timeout:?}; its last log lines:\n{log}")]
    Timeout {
        /// The child.
        name: String,
        /// What it did not do.
        what: &'static str,
        /// How long the demo waited.
        timeout: Duration,
        /// Its last log lines.
        log: String,
    },
    /// A signal could not be sent.
    #[error("failed to send {signal} to {name}: {source}")]
    Signal {
        /// The child.
        name: String,
        /// The signal.
        signal: Signal,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// Waiting for it failed.
    #[error("failed to wait for {name}: {source}")]
    Wait {
        /// The child.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A role a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `greeter-server`.
    GreeterServer,
    /// `control-plane`.
    ControlPlane,
}

impl Role {
    fn subcommand(self) -> &'static str {
        match self {
            Self::GreeterServer => roles::GREETER_SERVER,
            Self::ControlPlane => roles::CONTROL_PLANE,
        }
    }
}

/// A running child process.
#[derive(Debug)]
pub(crate) struct Child {
    name: String,
    pid: Pid,
    child: tokio::process::Child,
    logs: Arc<Mutex<VecDeque<String>>>,
    listening: watch::Receiver<Option<SocketAddr>>,
    exited: Option<ExitStatus>,
}

impl Child {
    /// Starts `role` with `args` (JSON logs added), named `name` in messages.
    pub(crate) fn spawn(name: &str, role: Role, args: &[String]) -> Result<Self, Error> {
        let exe = std::env::current_exe().map_err(|source| Error::CurrentExe {
            name: name.to_owned(),
            source,
        })?;
        let mut command = Command::new(exe);
        command
            .arg(role.subcommand())
            .args(args)
            .args(["--log-format", "json"])
            .env(roles::PARENT_PID_ENV, std::process::id().to_string())
            .env(
                "RUST_LOG",
                std::env::var("DEMO_CHILD_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            name: name.to_owned(),
            source,
        })?;
        let pid = child.id().map_or(0, |id| id as i32);
        let logs = Arc::new(Mutex::new(VecDeque::with_capacity(KEPT_LINES)));
        let (listening_tx, listening) = watch::channel(None);
        if let Some(stderr) = child.stderr.take() {
            let sink = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(addr) = common::logging::listening_addr(&line) {
                        listening_tx.send_replace(Some(addr));
                    }
                    let mut kept = sink.lock().unwrap_or_else(|p| p.into_inner());
                    if kept.len() == KEPT_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            });
        }
        tracing::debug!(name, pid, ?role, "started");
        Ok(Self {
            name: name.to_owned(),
            pid: Pid::from_raw(pid),
            child,
            logs,
            listening,
            exited: None,
        })
    }

    /// The name given at start.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the child's `listening` log line and returns its address.
    pub(crate) async fn wait_listening(&mut self) -> Result<SocketAddr, Error> {
        let mut listening = self.listening.clone();
        let waited = tokio::time::timeout(STARTUP_TIMEOUT, async {
            tokio::select! {
                found = listening.wait_for(Option::is_some) => found.ok().and_then(|addr| *addr),
                status = self.child.wait() => {
                    self.exited = status.ok();
                    None
                }
            }
        })
        .await;
        match waited {
            Ok(Some(addr)) => Ok(addr),
            Ok(None) => Err(self.exited_error("before it was listening")),
            Err(_) => Err(Error::Timeout {
                name: self.name.clone(),
                what: "start listening",
                timeout: STARTUP_TIMEOUT,
                log: self.log_tail(20),
            }),
        }
    }

    /// Sends `signal`.
    pub(crate) fn signal(&self, signal: Signal) -> Result<(), Error> {
        nix::sys::signal::kill(self.pid, signal).map_err(|source| Error::Signal {
            name: self.name.clone(),
            signal,
            source,
        })
    }

    /// Waits at most `timeout` for the child to exit.
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.exited = Some(status);
                Ok(status)
            }
            Ok(Err(source)) => Err(Error::Wait {
                name: self.name.clone(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                name: self.name.clone(),
                what: "exit",
                timeout,
                log: self.log_tail(20),
            }),
        }
    }

    /// Stops the child for good: SIGTERM twice (the servers' "stop now"),
    /// then SIGKILL if it is still there after a few seconds.
    pub(crate) async fn stop(&mut self) {
        if self.exited.is_some() || matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = self.signal(Signal::SIGTERM);
        let _ = self.signal(Signal::SIGTERM);
        if self.wait_exit(STOP_TIMEOUT).await.is_err() {
            let _ = self.child.kill().await;
        }
    }

    /// Kills the child at once (SIGKILL) and reaps it.
    pub(crate) async fn kill(&mut self) {
        let _ = self.child.kill().await;
        self.exited = self.child.try_wait().ok().flatten();
    }

    /// The last `n` log lines, one per line.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let kept = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let skip = kept.len().saturating_sub(n);
        kept.iter()
            .skip(skip)
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn exited_error(&self, doing: &'static str) -> Error {
        match self.exited {
            Some(status) => Error::Exited {
                name: self.name.clone(),
                status,
                doing,
                log: self.log_tail(20),
            },
            None => Error::Timeout {
                name: self.name.clone(),
                what: "start listening",
                timeout: STARTUP_TIMEOUT,
                log: self.log_tail(20),
            },
        }
    }
}
