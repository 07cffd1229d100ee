//! Support for the interop tests: a Python virtualenv with a pinned grpcio
//! (installed from the package registry on first use), and the Python xDS
//! greeter client (`tests/interop/xds_greeter_client.py`) driven batch by
//! batch over its standard input.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::OnceCell;

/// The grpcio release the interop tests use.
pub const GRPCIO: &str = "grpcio==1.85.1";
/// Upper bound for creating the virtualenv and installing grpcio.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Upper bound for one batch of calls.
const BATCH_TIMEOUT: Duration = Duration::from_secs(60);

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The Python client script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/xds_greeter_client.py")
}

/// The virtualenv's Python, with grpcio installed. Set up once per test
/// process (and kept in `target/interop-venv` across runs).
///
/// # Panics
///
/// With a message saying what is missing when the set-up fails.
pub async fn python() -> PathBuf {
    static PYTHON: OnceCell<PathBuf> = OnceCell::const_new();
    PYTHON.get_or_init(install).await.clone()
}

async fn install() -> PathBuf {
    let venv = target_dir().join("interop-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(format!(".installed-{GRPCIO}"));
    if marker.exists() && python.exists() {
        return python;
    }
    let base = std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    run(
        Command::new(&base).arg("-m").arg("venv").arg(&venv),
        &format!(
            "creating a virtualenv at {} with `{base} -m venv` (install Python 3 with its venv \
             module, or point INTEROP_PYTHON at one)",
            venv.display()
        ),
    )
    .await;
    run(
        Command::new(&python).args(["-m", "pip", "install", "--quiet", GRPCIO]),
        &format!(
            "installing {GRPCIO} into {} with pip (needs the package registry, or a wheel in \
             PIP_FIND_LINKS)",
            venv.display()
        ),
    )
    .await;
    std::fs::write(&marker, b"ok").expect("write the install marker");
    python
}

async fn run(command: &mut Command, what: &str) {
    let output = tokio::time::timeout(INSTALL_TIMEOUT, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("interop set-up: timed out {what}"))
        .unwrap_or_else(|error| panic!("interop set-up: failed {what}: {error}"));
    assert!(
        output.status.success(),
        "interop set-up: failed {what}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A bootstrap file for gRPC's xDS client, pointing at `control_plane`.
/// Removed on drop.
pub struct Bootstrap {
    pub path: PathBuf,
}

/// Files of a bootstrap's `certificate_providers.default` (file_watcher).
pub struct CertificateFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Bootstrap {
    pub fn write(control_plane: SocketAddr, test: &str) -> Self {
        Self::write_with(control_plane, test, None)
    }

    /// With `certificates`, the bootstrap defines the certificate provider
    /// instance `default` (plugin file_watcher) on those files.
    pub fn write_with(
        control_plane: SocketAddr,
        test: &str,
        certificates: Option<&CertificateFiles>,
    ) -> Self {
        let dir = target_dir().join("interop-tmp");
        std::fs::create_dir_all(&dir).expect("create target/interop-tmp");
        let path = dir.join(format!("{test}-{}.json", std::process::id()));
        let bootstrap = serde_json::json!({
            "xds_servers": [{
                "server_uri": control_plane.to_string(),
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }],
            "node": {
                "id": format!("interop-python-{test}"),
                "cluster": "interop",
                "locality": {"zone": "local"},
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
        Self { path }
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One batch's outcome, as the script prints it.
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
}

/// The Python client, running; killed on drop.
pub struct PythonClient {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
}

impl PythonClient {
    /// Starts the script in batch mode for `target` with `bootstrap`.
    pub async fn start(bootstrap: &Bootstrap, target: &str) -> Self {
        Self::start_with(bootstrap, target, &[]).await
    }

    /// [`PythonClient::start`] with extra script arguments (`--xds-creds`,
    /// `--call-timeout 5`).
    pub async fn start_with(bootstrap: &Bootstrap, target: &str, extra: &[&str]) -> Self {
        let python = python().await;
        let mut child = Command::new(python)
            .arg(script())
            .args(["--batches", "--target", target, "--bootstrap"])
            .arg(&bootstrap.path)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Python client");
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
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Makes `count` calls on the client's one channel.
    pub async fn batch(&mut self, count: u32) -> Batch {
        self.stdin
            .write_all(format!("{count}\n").as_bytes())
            .await
            .unwrap_or_else(|error| panic!("Python client gone ({error}): {}", self.stderr()));
        let line = tokio::time::timeout(BATCH_TIMEOUT, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("no batch result in {BATCH_TIMEOUT:?}: {}", self.stderr()))
            .expect("read stdout")
            .unwrap_or_else(|| panic!("Python client exited: {}", self.stderr()));
        let raw: Value = serde_json::from_str(&line).expect("a JSON line");
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

    /// Ends the client: closes its input and waits for it.
    pub async fn finish(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
