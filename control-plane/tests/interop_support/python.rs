//! Python's grpcio: a virtualenv under `target/interop-venv` with a pinned
//! grpcio (installed from the package registry on first use) running
//! `tests/interop/xds_greeter_client.py`.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::OnceCell;

use super::{run_step, sources, target_dir};

/// The grpcio release the interop tests use.
pub const GRPCIO: &str = "grpcio==1.85.1";
/// Upper bound for creating the virtualenv, and for installing grpcio.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

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
    let venv = target_dir().join("interop-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(format!(".installed-{GRPCIO}"));
    if marker.exists() && python.exists() {
        return python;
    }
    let base = std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    run_step(
        Command::new(&base).arg("-m").arg("venv").arg(&venv),
        INSTALL_TIMEOUT,
        &format!(
            "creating a virtualenv at {} with `{base} -m venv` (install Python 3 with its venv \
             module, or point INTEROP_PYTHON at one)",
            venv.display()
        ),
    )
    .await;
    run_step(
        Command::new(&python).args(["-m", "pip", "install", "--quiet", GRPCIO]),
        INSTALL_TIMEOUT,
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
