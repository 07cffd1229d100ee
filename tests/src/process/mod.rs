//! Child processes: the project's binaries started by the tests, the demo
//! and the benchmarks.
//!
//! A [`Spawn`] says how to start one; the [`Process`] it gives is killed
//! when dropped, keeps its JSON log lines (standard error) so they can be
//! waited for and shown when something fails, and learns its address from
//! its `listening` line.
//!
//! [`Process`] has two sets of methods. Tests use those that panic with
//! the process's whole log (`wait_listening`, `wait_for_log`, `signal`,
//! `wait_exit`), printed again when a test panics while it runs. Programs
//! use those that return an [`Error`] ending with its last log lines
//! (`try_wait_listening`, `try_signal`, `try_wait_exit`, `stop`).

mod logs;
mod spawn;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::{Child, ChildStdin, ChildStdout};

use logs::Logs;
pub use spawn::{Error, Result, Spawn};

/// Upper bound for a spawned process to announce that it is listening.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Log lines an [`Error`] quotes.
const ERROR_LINES: usize = 20;

/// How long, once a process has exited, its last log lines may take to be
/// read (longer only when a child of its own holds standard error open).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running child process. Killed on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    logs: Arc<Logs>,
    /// Position of the next log line a wait looks at.
    cursor: usize,
}

/// Why a wait for a log line ended without it.
enum Missed {
    Exited(ExitStatus),
    TimedOut,
}

impl Process {
    fn new(name: String, child: Child, logs: Arc<Logs>) -> Self {
        Self {
            name,
            child,
            logs,
            cursor: 0,
        }
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    ///
    /// # Panics
    ///
    /// Once the process has been reaped.
    pub fn pid(&self) -> Pid {
        self.try_pid().expect("process still running")
    }

    fn try_pid(&self) -> Option<Pid> {
        let id = self.child.id()?;
        Some(Pid::from_raw(i32::try_from(id).ok()?))
    }

    /// Standard input of a process started with [`Spawn::pipe_stdin`].
    ///
    /// # Panics
    ///
    /// When there is no such pipe, or it was taken already.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin piped, not taken yet")
    }

    /// Standard output of the process, for tests that read it.
    ///
    /// # Panics
    ///
    /// When there is no such pipe, or it was taken already.
    pub fn take_stdout(&mut self) -> ChildStdout {
        self.child
            .stdout
            .take()
            .expect("stdout piped, not taken yet")
    }

    /// Waits (at most `timeout`) for a log line `find` accepts, looking
    /// only at lines after the last one a wait matched.
    async fn wait_line<T>(
        &mut self,
        timeout: Duration,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, Missed> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.logs.changed();
            if let Some(found) = self.logs.find_from(&mut self.cursor, &mut find) {
                return Ok(found);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // What it wrote last may still be on its way.
                self.drain_logs().await;
                return match self.logs.find_from(&mut self.cursor, &mut find) {
                    Some(found) => Ok(found),
                    None => Err(Missed::Exited(status)),
                };
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Missed::TimedOut);
            }
            // Wake up now and then to notice an exit that printed nothing.
            let nap = (deadline - now).min(Duration::from_millis(200));
            let _ = tokio::time::timeout(nap, changed).await;
        }
    }

    /// Waits until standard error has been read to its end, for at most
    /// [`DRAIN_TIMEOUT`].
    async fn drain_logs(&self) {
        let drained = async {
            loop {
                let changed = self.logs.changed();
                if self.logs.is_closed() {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
    }

    /// Waits (at most `timeout`) for a JSON log line whose `message` is
    /// `message`, looking only at lines after the last one matched, and
    /// returns it.
    ///
    /// # Panics
    ///
    /// On timeout, or when the process exits first.
    pub async fn wait_for_log(&mut self, message: &str, timeout: Duration) -> Value {
        let found = self
            .wait_line(timeout, |line| {
                let value = serde_json::from_str::<Value>(line).ok()?;
                (value.get("message").and_then(Value::as_str) == Some(message)).then_some(value)
            })
            .await;
        found.unwrap_or_else(|missed| self.missed(missed, message, timeout))
    }

    /// Panics saying why the log line `message` never came, with the whole
    /// log.
    fn missed(&self, missed: Missed, message: &str, timeout: Duration) -> ! {
        match missed {
            Missed::Exited(status) => panic!(
                "{} exited ({status}) before logging {message:?}; its log:\n{}",
                self.name,
                self.log_text()
            ),
            Missed::TimedOut => panic!(
                "{} did not log {message:?} within {timeout:?}; its log:\n{}",
                self.name,
                self.log_text()
            ),
        }
    }

    /// Waits for the `listening` log line and returns its `addr` field.
    ///
    /// # Panics
    ///
    /// When the process exits first, or on timeout ([`STARTUP_TIMEOUT`]).
    pub async fn wait_listening(&mut self) -> SocketAddr {
        self.wait_line(STARTUP_TIMEOUT, common::logging::listening_addr)
            .await
            .unwrap_or_else(|missed| self.missed(missed, "listening", STARTUP_TIMEOUT))
    }

    /// Waits (at most [`STARTUP_TIMEOUT`]) for the `listening` log line
    /// the project's servers write once they accept connections, and
    /// returns the address it names.
    ///
    /// # Errors
    ///
    /// [`Error::Exited`] when the process exits first, [`Error::Timeout`]
    /// when the time runs out.
    pub async fn try_wait_listening(&mut self) -> Result<SocketAddr> {
        match self
            .wait_line(STARTUP_TIMEOUT, common::logging::listening_addr)
            .await
        {
            Ok(addr) => Ok(addr),
            Err(Missed::Exited(status)) => Err(Error::Exited {
                name: self.name.clone(),
                status,
                doing: "before it was listening",
                log: self.log_tail(ERROR_LINES),
            }),
            Err(Missed::TimedOut) => Err(self.timeout("start listening", STARTUP_TIMEOUT)),
        }
    }

    fn timeout(&self, what: &'static str, timeout: Duration) -> Error {
        Error::Timeout {
            name: self.name.clone(),
            what,
            timeout,
            log: self.log_tail(ERROR_LINES),
        }
    }

    /// Sends `signal` to the process.
    ///
    /// # Panics
    ///
    /// When it cannot be sent.
    pub fn signal(&self, signal: Signal) {
        self.try_signal(signal)
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Sends `signal` to the process.
    ///
    /// # Errors
    ///
    /// [`Error::Signal`] when it cannot be sent (the process has been
    /// reaped, for one).
    pub fn try_signal(&self, signal: Signal) -> Result<()> {
        let error = |source| Error::Signal {
            name: self.name.clone(),
            signal,
            source,
        };
        let pid = self.try_pid().ok_or_else(|| error(nix::Error::ESRCH))?;
        nix::sys::signal::kill(pid, signal).map_err(error)
    }

    /// Waits (at most `timeout`) for the process to exit. Once it has
    /// exited, every line it wrote to standard error has been read (unless
    /// a child of its own still holds standard error open).
    ///
    /// # Panics
    ///
    /// When it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.try_wait_exit(timeout).await {
            Ok(status) => status,
            Err(Error::Timeout { .. }) => panic!(
                "{} still running after {timeout:?}; its log:\n{}",
                self.name,
                self.log_text()
            ),
            Err(error) => panic!("{error}"),
        }
    }

    /// Waits (at most `timeout`) for the process to exit, and for the last
    /// lines it wrote to standard error to be read.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is still running after `timeout`,
    /// [`Error::Wait`] when waiting fails.
    pub async fn try_wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(source)) => {
                return Err(Error::Wait {
                    name: self.name.clone(),
                    source,
                });
            }
            Err(_) => return Err(self.timeout("exit", timeout)),
        };
        self.drain_logs().await;
        Ok(status)
    }

    /// Stops the process for good: SIGTERM twice (the project's servers'
    /// "stop now"), then SIGKILL if it is still there after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = self.try_signal(Signal::SIGTERM);
        let _ = self.try_signal(Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.kill().await;
        }
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// User plus system CPU time the process has used (from
    /// `/proc/<pid>/stat`, in clock ticks of 10 ms); zero once it has been
    /// reaped.
    pub fn cpu_time(&self) -> Duration {
        let Some(pid) = self.child.id() else {
            return Duration::ZERO;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The command name (field 2) may hold spaces; fields after it are
        // plain numbers. utime and stime are fields 14 and 15.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return Duration::ZERO;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        Duration::from_millis(ticks * 10)
    }

    /// Every log line kept, one per line.
    pub fn log_text(&self) -> String {
        self.logs.tail(usize::MAX).join("\n")
    }

    /// The last `n` log lines kept, one per line, indented by two spaces.
    pub fn log_tail(&self, n: usize) -> String {
        self.logs
            .tail(n)
            .iter()
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last `n` log lines parsed as JSON (lines that are not JSON are
    /// skipped).
    pub fn recent_logs(&self, n: usize) -> VecDeque<Value> {
        self.logs
            .tail(n)
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- log of {} -----\n{}\n-----",
                self.name,
                self.log_text()
            );
        }
        let _ = self.child.start_kill();
    }
}
