//! The harness's side of the host protocol: a running `bench cp-host` (or
//! a peer's program speaking the same protocol), driven by commands on its
//! standard input and killed on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ::tests::process::{Process, Spawn};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

use super::{Error, Flipped, Result, Stats};

/// How long one command may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);
/// The host's name in errors.
const HOST: &str = "the control-plane host";

/// The harness's side: a running `bench cp-host`, killed on drop.
#[derive(Debug)]
pub(crate) struct Host {
    process: Process,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    addr: SocketAddr,
}

impl Host {
    /// Starts a host whose endpoints listen on `endpoint_port`: ours
    /// (`program` `None`), or a peer's program that speaks the same
    /// protocol and takes the same `--endpoint-port` option.
    pub(crate) async fn start(program: Option<&Path>, endpoint_port: u16) -> Result<Self> {
        let port = endpoint_port.to_string();
        let spawn = match program {
            Some(program) => Spawn::new(HOST, program).args(["--endpoint-port", &port]),
            None => {
                let exe = std::env::current_exe().map_err(Error::Spawn)?;
                // For profiling: BENCH_HOST_WRAPPER="valgrind --tool=massif"
                // runs our host under that command.
                let wrapper = std::env::var("BENCH_HOST_WRAPPER").unwrap_or_default();
                let mut words = wrapper.split_whitespace();
                match words.next() {
                    Some(program) => Spawn::new(HOST, program).args(words).arg(exe),
                    None => Spawn::new(HOST, exe),
                }
                .args(["cp-host", "--endpoint-port", &port])
            }
        };
        let mut process = spawn
            .env("RUST_LOG", "warn")
            .pipe_stdin()
            .pipe_stdout()
            .inherit_stderr()
            .start()?;
        let stdin = process.take_stdin();
        let stdout = BufReader::new(process.take_stdout()).lines();
        let mut host = Self {
            process,
            stdin,
            stdout,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let first = host.read_line("start").await?;
        host.addr = first
            .get("addr")
            .and_then(serde_json::Value::as_str)
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| Error::Reply {
                command: "start".to_owned(),
                line: first.to_string(),
            })?;
        Ok(host)
    }

    /// The control plane's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates the service with `endpoints` ready endpoints.
    pub(crate) async fn create(&mut self, endpoints: usize) -> Result<()> {
        self.command(&format!("create {endpoints}")).await.map(drop)
    }

    /// Toggles the readiness of `indices`, one upsert each.
    pub(crate) async fn flip(&mut self, indices: &[usize]) -> Result<Flipped> {
        let list: Vec<String> = indices.iter().map(ToString::to_string).collect();
        let command = format!("flip {}", list.join(","));
        let value = self.command(&command).await?;
        serde_json::from_value(value.clone()).map_err(|_| Error::Reply {
            command,
            line: value.to_string(),
        })
    }

    /// The host's CPU time, memory and clients now.
    pub(crate) async fn stats(&mut self) -> Result<Stats> {
        let value = self.command("stats").await?;
        serde_json::from_value(value.clone()).map_err(|_| Error::Reply {
            command: "stats".to_owned(),
            line: value.to_string(),
        })
    }

    /// Ends the host's input and waits (up to 30 s) for it to stop on its
    /// own, so wrappers such as profilers write their output; kills it
    /// otherwise.
    pub(crate) async fn shutdown(self) {
        let Self {
            mut process, stdin, ..
        } = self;
        drop(stdin);
        if process
            .try_wait_exit(Duration::from_secs(30))
            .await
            .is_err()
        {
            process.kill().await;
        }
    }

    async fn command(&mut self, command: &str) -> Result<serde_json::Value> {
        self.stdin.write_all(command.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        let value = self.read_line(command).await?;
        if value.get("error").is_some() {
            return Err(Error::Reply {
                command: command.to_owned(),
                line: value.to_string(),
            });
        }
        Ok(value)
    }

    async fn read_line(&mut self, command: &str) -> Result<serde_json::Value> {
        let line = tokio::time::timeout(REPLY_TIMEOUT, self.stdout.next_line())
            .await
            .map_err(|_| Error::Gone("did not answer in time"))??
            .ok_or(Error::Gone("exited"))?;
        serde_json::from_str(&line).map_err(|_| Error::Reply {
            command: command.to_owned(),
            line,
        })
    }
}
