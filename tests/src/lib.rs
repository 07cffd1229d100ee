//! Support for tests that run the project's real binaries on loopback,
//! shared with the demo and the benchmarks (the test kit).
//!
//! # Layout
//!
//! - [`bin_path`]: where the workspace's binaries are.
//! - [`process`]: child processes ([`Process`]) killed when dropped, whose
//!   JSON log lines are kept and can be awaited, and which can be
//!   signalled; the demo and the benchmarks start theirs with it too.
//! - [`channel`]: a plaintext gRPC channel to a loopback address.
//! - [`greeters`]: greeter-server processes and a scripted control plane
//!   serving them; [`control_plane`]: the real one on the static source.
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
pub mod control_plane;
pub mod fake_xds;
pub mod greeters;
pub mod module_graph;
pub mod process;
pub mod python;
pub mod static_file;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use process::{Process, STARTUP_TIMEOUT};

pub mod fake_kube;
pub mod kube_apiserver;
pub mod netns;

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
