//! Support for the interop tests: gRPC's own xDS clients in other languages
//! (Python's grpcio, grpc-go, grpc-java), set up from their package
//! registries on first use, each driving greet.Greeter/SayHello through the
//! control plane batch by batch over its standard input.
//!
//! # Layout
//!
//! - `mod.rs`: [`Language`], the [`Bootstrap`] file, and [`ForeignClient`],
//!   the running client whatever its language (every one speaks the same
//!   line protocol: a call count in, one JSON [`Batch`] out).
//! - `python.rs`, `go.rs`, `java.rs`: install or build each client once per
//!   test process, cached under `target/` across runs.
//! - `scenarios/`: the scenarios every language runs.
//! - `traffic.rs`: traffic policy scenarios (routes, weights, zones,
//!   least request).

#![allow(dead_code, unreachable_pub)]

pub mod go;
pub mod java;
pub mod python;
pub mod scenarios;
pub mod traffic;

use std::hash::{DefaultHasher, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Upper bound for one batch of calls.
const BATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A gRPC implementation whose xDS client the interop tests drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// grpcio (gRPC's C core), from PyPI.
    Python,
    /// grpc-go, from the Go module proxy.
    Go,
    /// grpc-java, from Maven Central.
    Java,
}

impl Language {
    /// Short name, used in node ids and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Go => "go",
            Self::Java => "java",
        }
    }

    /// The documented opt-out: when this variable is set to `1`, the
    /// language's tests pass without running (CI never sets it).
    pub fn skip_variable(self) -> Option<&'static str> {
        match self {
            Self::Python => None,
            Self::Go => Some("SKIP_GO_INTEROP"),
            Self::Java => Some("SKIP_JAVA_INTEROP"),
        }
    }

    /// True (with a note on standard error) when the opt-out is set.
    pub fn skipped(self) -> bool {
        let Some(variable) = self.skip_variable() else {
            return false;
        };
        let skip = std::env::var(variable).is_ok_and(|v| v == "1");
        if skip {
            eprintln!(
                "{variable}=1: skipping the {} interop test (CI never sets it)",
                self.name()
            );
        }
        skip
    }

    /// How the client words a name the control plane does not have, each
    /// with whether the text names the resource. grpc-go has two: after its
    /// does-not-exist timer it reports the resource removed, or, when its
    /// resolver speaks first, that it produced zero addresses.
    pub fn not_found_texts(self) -> &'static [(&'static str, bool)] {
        match self {
            Self::Python => &[("does not exist", true)],
            Self::Go => &[
                ("has been removed", true),
                ("name resolver error: produced zero addresses", false),
            ],
            Self::Java => &[("NOT_FOUND: Timed out waiting for resource", true)],
        }
    }

    /// Installs or builds the client (once per test process; cached under
    /// `target/` across runs).
    pub async fn prepare(self) {
        match self {
            Self::Python => drop(python::python().await),
            Self::Go => drop(go::client().await),
            Self::Java => drop(java::client().await),
        }
    }

    /// The client's command line up to its own flags, with the client
    /// installed or built first (once per test process).
    async fn command(self, bootstrap: &Bootstrap) -> Command {
        let mut command = match self {
            Self::Python => {
                let mut command = Command::new(python::python().await);
                command
                    .arg(python::script())
                    .arg("--bootstrap")
                    .arg(&bootstrap.path);
                command
            }
            Self::Go => Command::new(go::client().await),
            Self::Java => {
                let mut command = Command::new("java");
                command.arg("-jar").arg(java::client().await);
                command
            }
        };
        command.env("GRPC_XDS_BOOTSTRAP", &bootstrap.path);
        command
    }
}

/// Where cargo puts build output (and the interop tests their caches).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The clients' sources: `tests/interop/` at the workspace root.
pub fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop")
}

/// A cache key for `files` (relative to `dir`): a change to any of them
/// builds anew.
pub fn content_key(dir: &Path, files: &[&str]) -> String {
    let mut hasher = DefaultHasher::new();
    for file in files {
        let path = dir.join(file);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
        hasher.write(file.as_bytes());
        hasher.write(&bytes);
    }
    format!("{:016x}", hasher.finish())
}

/// Runs a set-up step, at most `timeout`; panics saying `what` failed and
/// with the step's output.
pub async fn run_step(command: &mut Command, timeout: Duration, what: &str) {
    let output = tokio::time::timeout(timeout, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("interop set-up: timed out after {timeout:?} {what}"))
        .unwrap_or_else(|error| panic!("interop set-up: failed {what}: {error}"));
    assert!(
        output.status.success(),
        "interop set-up: failed {what}: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether `program` runs at all (`program args` exits, whatever its code).
pub async fn found(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .is_ok()
}

/// A bootstrap file for gRPC's xDS client, pointing at `control_plane`.
/// Removed on drop.
pub struct Bootstrap {
    pub path: PathBuf,
    /// The client's node id, as `control-plane status` lists it.
    pub node_id: String,
}

/// Files of a bootstrap's `certificate_providers.default` (file_watcher).
pub struct CertificateFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Bootstrap {
    /// Writes the bootstrap of `language`'s client in `test`.
    pub fn write(control_plane: SocketAddr, language: Language, test: &str) -> Self {
        Self::write_with(control_plane, language, test, None)
    }

    /// With `certificates`, the bootstrap defines the certificate provider
    /// instance `default` (plugin file_watcher) on those files.
    pub fn write_with(
        control_plane: SocketAddr,
        language: Language,
        test: &str,
        certificates: Option<&CertificateFiles>,
    ) -> Self {
        Self::write_in_zone(control_plane, language, test, certificates, "local")
    }

    /// Like [`Bootstrap::write_with`], for a client whose node locality is
    /// in `zone`.
    pub fn write_in_zone(
        control_plane: SocketAddr,
        language: Language,
        test: &str,
        certificates: Option<&CertificateFiles>,
        zone: &str,
    ) -> Self {
        let dir = target_dir().join("interop-tmp");
        std::fs::create_dir_all(&dir).expect("create target/interop-tmp");
        let node_id = format!("interop-{}-{test}", language.name());
        let path = dir.join(format!("{node_id}-{}.json", std::process::id()));
        let bootstrap = serde_json::json!({
            "xds_servers": [{
                "server_uri": control_plane.to_string(),
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }],
            "node": {
                "id": node_id,
                "cluster": "interop",
                "locality": {"zone": zone},
            },
        });
        let mut bootstrap = bootstrap;
        if let Some(files) = certificates {
            bootstrap["certificate_providers"] = serde_json::json!({
                "default": {
                    "plugin_name": "file_watcher",
                    "config": {
                        "certificate_file": files.cert,
                        "private_key_file": files.key,
                        "ca_certificate_file": files.ca,
                        "refresh_interval": "1s",
                    },
                },
            });
        }
        std::fs::write(&path, bootstrap.to_string()).expect("write the bootstrap file");
        Self { path, node_id }
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One batch's outcome, as the clients print it.
#[derive(Debug)]
pub struct Batch {
    pub ok: u64,
    pub failed: u64,
    pub by_backend: Value,
    pub raw: Value,
}

impl Batch {
    /// Calls served by `backend`.
    pub fn served_by(&self, backend: &str) -> u64 {
        self.by_backend[backend].as_u64().unwrap_or(0)
    }

    /// The failed calls' `"<CODE>: <message>"` keys.
    pub fn errors(&self) -> Vec<&str> {
        self.raw["errors"]
            .as_object()
            .map(|errors| errors.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// A foreign xDS client, running; killed on drop.
pub struct ForeignClient {
    language: Language,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
}

impl ForeignClient {
    /// Starts `language`'s client in batch mode for `target` with
    /// `bootstrap` (building or installing it first if needed).
    pub async fn start(language: Language, bootstrap: &Bootstrap, target: &str) -> Self {
        Self::start_with(language, bootstrap, target, &[]).await
    }

    /// [`ForeignClient::start`] with extra client arguments (the Python
    /// client's `--xds-creds`, `--call-timeout 5`).
    pub async fn start_with(
        language: Language,
        bootstrap: &Bootstrap,
        target: &str,
        extra: &[&str],
    ) -> Self {
        let mut child = language
            .command(bootstrap)
            .await
            .args(["--batches", "--target", target])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("start the {} client: {error}", language.name()));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().expect("stderr");
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr lock")
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Self {
            language,
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Makes `count` calls, one after another, on the client's one channel.
    pub async fn batch(&mut self, count: u32) -> Batch {
        let name = self.language.name();
        self.stdin
            .write_all(format!("{count}\n").as_bytes())
            .await
            .unwrap_or_else(|error| panic!("{name} client gone ({error}): {}", self.stderr()));
        let line = tokio::time::timeout(BATCH_TIMEOUT, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{name} client: no batch result in {BATCH_TIMEOUT:?}: {}",
                    self.stderr()
                )
            })
            .expect("read stdout")
            .unwrap_or_else(|| panic!("{name} client exited: {}", self.stderr()));
        let raw: Value = serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("{name} client printed {line:?}: {error}"));
        Batch {
            ok: raw["ok"].as_u64().expect("ok"),
            failed: raw["failed"].as_u64().expect("failed"),
            by_backend: raw["by_backend"].clone(),
            raw,
        }
    }

    /// What the client wrote to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Ends the client: closes its input and waits for it (killing it if it
    /// takes too long).
    pub async fn finish(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
