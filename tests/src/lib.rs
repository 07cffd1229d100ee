//! Support for tests that run the project's real binaries on loopback.
//!
//! # Layout
//!
//! - [`bin_path`]: where the workspace's binaries are.
//! - [`Process`]: a spawned binary that is killed when dropped, whose JSON
//!   log lines can be awaited, and which can be signalled.
//! - [`channel`]: a plaintext gRPC channel to a loopback address.
//! - [`greeters`]: greeter-server processes and a scripted control plane
//!   serving them.
//! - [`module_graph`]: the `use crate::` graph of a crate, for tests that
//!   keep it one-way.
//! - [`static_file`]: a control plane's `--static-file`, rewritten whole.
//! - [`certs`]: a CA and leaf certificates (rcgen), PEM files swapped
//!   atomically.
//! - [`python`]: pinned Python virtualenvs under `target/`.
//! - [`kube_apiserver`]: a real etcd, kube-apiserver and
//!   kube-controller-manager per test; [`fake_kube`]: a protocol-level fake
//!   API server.
//! - [`netns`]: a network namespace joined to the host's by a veth pair, for
//!   backends on addresses other than loopback that exist only on this
//!   machine.
//!
//! # Finding binaries
//!
//! Cargo sets `CARGO_BIN_EXE_<name>` only for a package's own binaries. The
//! end-to-end tests need binaries of other packages, so [`bin_path`] looks
//! next to the running test executable (`target/<profile>/`). `cargo test
//! --workspace` builds every binary there before it runs any test, because
//! each binary's own package has integration tests. Set `E2E_BIN_DIR` to
//! point elsewhere.

pub mod ads;
pub mod certs;
pub mod fake_xds;
pub mod greeters;
pub mod module_graph;
pub mod python;
pub mod static_file;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

pub mod fake_kube;
pub mod kube_apiserver;
pub mod netns;

/// Upper bound for a spawned process to announce that it is listening.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the workspace binary `name`.
///
/// # Panics
///
/// When the binary does not exist, with a message saying how to build it.
pub fn bin_path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("E2E_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current test executable");
            // target/<profile>/deps/<test>-<hash> -> target/<profile>
            exe.parent()
                .and_then(|deps| deps.parent())
                .expect("test executable under target/<profile>/deps")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "binary {} not found; run the tests with `cargo test --workspace` (which builds every \
         binary first) or build it with `cargo build --bin {name}`",
        path.display()
    );
    path
}

#[derive(Debug, Default)]
struct Logs {
    lines: Mutex<Vec<String>>,
    changed: Notify,
    /// Set once standard error reached its end (the process closed it).
    closed: std::sync::atomic::AtomicBool,
}

/// A running binary. Killed on drop; its standard error is kept so tests can
/// wait for log lines, and printed when the test fails.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    logs: Arc<Logs>,
    /// Index of the next log line [`Process::wait_for_log`] looks at.
    cursor: usize,
}

impl Process {
    /// Starts workspace binary `bin` with `args` and `--log-format json`.
    /// `name` labels its log lines in failure output.
    pub fn spawn(name: &str, bin: &str, args: &[&str]) -> Self {
        Self::spawn_with_env(name, bin, args, &[])
    }

    /// Like [`Process::spawn`], with extra environment variables.
    pub fn spawn_with_env(name: &str, bin: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let program = bin_path(bin);
        let program = program.to_str().expect("UTF-8 binary path");
        Self::spawn_via(name, &[], program, args, env)
    }

    /// Starts `program` (a path) with `args`, `--log-format json` and `env`
    /// through `wrapper`, a command line that execs the program it is given
    /// (such as `ip netns exec <namespace>`), so the process is the program
    /// itself; no wrapper when it is empty.
    pub fn spawn_via(
        name: &str,
        wrapper: &[&str],
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(program);
                command
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .args(["--log-format", "json"])
            .env(
                "RUST_LOG",
                std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {program}: {error}"));
        let logs = Arc::new(Logs::default());
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lines.lock().expect("log lock").push(line);
                sink.changed.notify_waiters();
            }
            sink.closed
                .store(true, std::sync::atomic::Ordering::Release);
            sink.changed.notify_waiters();
        });
        Self {
            name: name.to_owned(),
            child,
            logs,
            cursor: 0,
        }
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().expect("process still running") as i32)
    }

    /// Standard output of the process, for tests that read it.
    pub fn take_stdout(&mut self) -> tokio::process::ChildStdout {
        self.child.stdout.take().expect("stdout not taken yet")
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(self.pid(), signal)
            .unwrap_or_else(|error| panic!("failed to send {signal} to {}: {error}", self.name));
    }

    /// Waits (at most `timeout`) for a JSON log line whose `message` is
    /// `message`, looking only at lines after the last one matched, and
    /// returns it.
    ///
    /// # Panics
    ///
    /// On timeout, or when the process exits first.
    pub async fn wait_for_log(&mut self, message: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before the scan, so a line pushed meanwhile still wakes us.
            let changed = self.logs.changed.notified();
            {
                let lines = self.logs.lines.lock().expect("log lock");
                while self.cursor < lines.len() {
                    let line = &lines[self.cursor];
                    self.cursor += 1;
                    if let Ok(value) = serde_json::from_str::<Value>(line)
                        && value.get("message").and_then(Value::as_str) == Some(message)
                    {
                        return value;
                    }
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before logging {message:?}; its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                panic!(
                    "{} did not log {message:?} within {timeout:?}; its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            // Wake up now and then to notice an exit that printed nothing.
            let nap = (deadline - now).min(Duration::from_millis(200));
            let _ = tokio::time::timeout(nap, changed).await;
        }
    }

    /// Waits for the `listening` log line and returns its `addr` field.
    pub async fn wait_listening(&mut self) -> SocketAddr {
        let line = self.wait_for_log("listening", STARTUP_TIMEOUT).await;
        line.get("addr")
            .and_then(Value::as_str)
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("{}: `listening` line without an addr: {line}", self.name))
    }

    /// Waits (at most `timeout`) for the process to exit.
    ///
    /// # Panics
    ///
    /// When it is still running after `timeout`.
    /// Once it has exited, every line it wrote to standard error has been
    /// read (unless a child of its own still holds standard error open).
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for child"),
            Err(_) => panic!(
                "{} still running after {timeout:?}; its log:\n{}",
                self.name,
                self.log_text()
            ),
        };
        let drained = async {
            loop {
                let changed = self.logs.changed.notified();
                if self.logs.closed.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), drained).await;
        status
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Every log line so far, one per line.
    pub fn log_text(&self) -> String {
        self.logs.lines.lock().expect("log lock").join("\n")
    }

    /// The last `n` log lines parsed as JSON (lines that are not JSON are skipped).
    pub fn recent_logs(&self, n: usize) -> VecDeque<Value> {
        let lines = self.logs.lines.lock().expect("log lock");
        lines
            .iter()
            .rev()
            .take(n)
            .rev()
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

/// A plaintext (h2c) gRPC channel to `addr`, connected eagerly.
pub async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid URI")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_or_else(|error| panic!("failed to connect to {addr}: {error}"))
}

/// Runs `test` with an overall time limit, so a hung test fails instead of
/// blocking the suite.
pub async fn bounded<F: std::future::Future>(limit: Duration, test: F) -> F::Output {
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {limit:?}"))
}
