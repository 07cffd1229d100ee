//! How a child process is started (a [`Spawn`], or the tests' constructors
//! of [`Process`]), and what can go wrong driving one.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;

use super::Process;
use super::logs::Logs;

/// Errors starting or driving a child process. Those about a process that
/// misbehaved end with its last log lines.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process could not be started.
    #[error("failed to start {name}: {source}")]
    Spawn {
        /// The process's name.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited before doing what was waited for.
    #[error("{name} exited ({status}) {doing}; its last log lines:\n{log}")]
    Exited {
        /// The process's name.
        name: String,
        /// How it ended.
        status: ExitStatus,
        /// What was being waited for ("before it was listening").
        doing: &'static str,
        /// Its last log lines.
        log: String,
    },
    /// It did not do something in time.
    #[error("{name} did not {what} within {timeout:?}; its last log lines:\n{log}")]
    Timeout {
        /// The process's name.
        name: String,
        /// What it did not do ("start listening", "exit").
        what: &'static str,
        /// How long was waited.
        timeout: Duration,
        /// Its last log lines.
        log: String,
    },
    /// A signal could not be sent.
    #[error("failed to send {signal} to {name}: {source}")]
    Signal {
        /// The process's name.
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
        /// The process's name.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to start a child process: a program, its arguments and
/// environment, and what becomes of its standard streams.
///
/// By default the child gets `--log-format json` after its arguments and
/// `RUST_LOG=info`; its standard error is read line by line and kept (every
/// line, unless [`Spawn::keep_lines`] caps it); standard input and output
/// are closed. The process is killed when the [`Process`] is dropped.
#[derive(Debug, Clone)]
#[must_use]
pub struct Spawn {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    keep_lines: Option<usize>,
    own_process_group: bool,
    pipe_stdin: bool,
    pipe_stdout: bool,
    read_stderr: bool,
}

impl Spawn {
    /// Starts `program`, named `name` in messages.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            keep_lines: None,
            own_process_group: false,
            pipe_stdin: false,
            pipe_stdout: false,
            read_stderr: true,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (`RUST_LOG` too, replacing `info`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Keeps only the last `lines` log lines (a long-running child's log
    /// would otherwise grow without end).
    pub fn keep_lines(mut self, lines: usize) -> Self {
        self.keep_lines = Some(lines);
        self
    }

    /// Runs the child in a process group of its own, so a Ctrl-C in the
    /// terminal reaches only this process, which stops the child itself.
    pub fn own_process_group(mut self) -> Self {
        self.own_process_group = true;
        self
    }

    /// Gives the child a pipe as standard input ([`Process::take_stdin`]).
    pub fn pipe_stdin(mut self) -> Self {
        self.pipe_stdin = true;
        self
    }

    /// Gives the child a pipe as standard output ([`Process::take_stdout`]).
    /// Whoever takes it must keep reading, or the child blocks once the
    /// pipe is full.
    pub fn pipe_stdout(mut self) -> Self {
        self.pipe_stdout = true;
        self
    }

    /// Leaves the child's standard error on this process's, in the child's
    /// default log format: nothing is kept, and log lines cannot be waited
    /// for.
    pub fn inherit_stderr(mut self) -> Self {
        self.read_stderr = false;
        self
    }

    /// Starts the process.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] when it cannot be started.
    pub fn start(self) -> Result<Process> {
        let pipe = |piped: bool| if piped { Stdio::piped() } else { Stdio::null() };
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        if self.read_stderr {
            command
                .args(["--log-format", "json"])
                .stderr(Stdio::piped());
        } else {
            command.stderr(Stdio::inherit());
        }
        command
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(pipe(self.pipe_stdin))
            .stdout(pipe(self.pipe_stdout))
            .kill_on_drop(true);
        if self.own_process_group {
            command.process_group(0);
        }
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            name: self.name.clone(),
            source,
        })?;
        let logs = match child.stderr.take() {
            Some(stderr) => Logs::read(stderr, self.keep_lines),
            None => Logs::none(),
        };
        Ok(Process::new(self.name, child, logs))
    }
}

/// The tests' way to start the workspace's binaries.
impl Process {
    /// Starts workspace binary `bin` (see [`crate::bin_path`]) with `args`,
    /// JSON logs at the level `E2E_RUST_LOG` says (`info` by default), and
    /// a pipe as standard output. `name` labels its log lines in failure
    /// output.
    ///
    /// # Panics
    ///
    /// When the binary is missing or cannot be started.
    pub fn spawn(name: &str, bin: &str, args: &[&str]) -> Self {
        Self::spawn_with_env(name, bin, args, &[])
    }

    /// Like [`Process::spawn`], with extra environment variables.
    pub fn spawn_with_env(name: &str, bin: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_for_test(Spawn::new(name, crate::bin_path(bin)), args, env)
    }

    /// Starts `program` (a path) with `args` and `env` as
    /// [`Process::spawn_with_env`] does, through `wrapper`: a command line
    /// that execs the program it is given (such as `ip netns exec
    /// <namespace>`), so the process is the program itself; no wrapper when
    /// it is empty.
    pub fn spawn_via(
        name: &str,
        wrapper: &[&str],
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let spawn = match wrapper.split_first() {
            Some((first, rest)) => Spawn::new(name, first).args(rest).arg(program),
            None => Spawn::new(name, program),
        };
        Self::start_for_test(spawn, args, env)
    }

    fn start_for_test(spawn: Spawn, args: &[&str], env: &[(&str, &str)]) -> Self {
        let level = std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info".into());
        let mut spawn = spawn.args(args).env("RUST_LOG", level).pipe_stdout();
        for (key, value) in env {
            spawn = spawn.env(key, value);
        }
        spawn.start().unwrap_or_else(|error| panic!("{error}"))
    }
}
