//! Python's grpcio: a virtualenv under `target/interop-venv` with a pinned
//! grpcio (installed from the package registry on first use) running
//! `tests/interop/xds_greeter_client.py`.

use std::path::PathBuf;

use tokio::sync::OnceCell;

use super::sources;

/// The grpcio release the interop tests use.
pub const GRPCIO: &str = "grpcio==1.85.1";

/// The Python client script.
pub fn script() -> PathBuf {
    sources().join("xds_greeter_client.py")
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
    tests::python::venv("interop-venv", &[GRPCIO]).await
}
