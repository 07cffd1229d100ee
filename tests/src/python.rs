//! Python virtualenvs for tests that run a Python tool (gRPC's Python xDS
//! client, the Prometheus text parser): created under `target/<name>` on
//! first use, with pinned packages from the package registry, and kept
//! across runs (a marker file names what was installed). Tests running at
//! once, in one test binary or in several, take turns through a lock file
//! beside the virtualenv, so only the first creates it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

/// Upper bound for creating a virtualenv, and for installing into it.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The workspace's target directory (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The Python of the virtualenv `target/<name>` with `requirements`
/// (pinned, as `package==version`) installed; creates it when missing or
/// when it was made for other requirements. The base Python is `python3`,
/// or `INTEROP_PYTHON`.
///
/// # Panics
///
/// With a message saying what is missing when the set-up fails.
pub async fn venv(name: &str, requirements: &[&str]) -> PathBuf {
    let venv = target_dir().join(name);
    let python = venv.join("bin/python");
    let marker = venv.join(format!(".installed-{}", requirements.join("+")));
    if marker.exists() && python.exists() {
        return python;
    }
    let _turn = take_turn(&target_dir().join(format!("{name}.lock"))).await;
    if marker.exists() && python.exists() {
        // Another test made it while this one waited.
        return python;
    }
    let base = std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    run_step(
        // `--clear`: a run killed half-way leaves a partial virtualenv.
        Command::new(&base)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        &format!(
            "creating a virtualenv at {} with `{base} -m venv` (install Python 3 with its venv \
             module, or point INTEROP_PYTHON at one)",
            venv.display()
        ),
    )
    .await;
    run_step(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(requirements),
        &format!(
            "installing {} into {} with pip (needs the package registry, or wheels in \
             PIP_FIND_LINKS)",
            requirements.join(" "),
            venv.display()
        ),
    )
    .await;
    std::fs::write(&marker, b"ok").expect("write the install marker");
    python
}

/// Waits for the exclusive lock on `path` (created when missing), polling
/// so the runtime is never blocked; the lock is held until the returned file drops.
async fn take_turn(path: &Path) -> std::fs::File {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|error| panic!("set-up: creating {}: {error}", parent.display()));
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|error| panic!("set-up: opening the lock {}: {error}", path.display()));
    let deadline = tokio::time::Instant::now() + INSTALL_TIMEOUT;
    loop {
        match file.try_lock() {
            Ok(()) => return file,
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => panic!(
                "set-up: waited {INSTALL_TIMEOUT:?} for the lock {}",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(error)) => {
                panic!("set-up: locking {}: {error}", path.display())
            }
        }
    }
}

/// Runs a set-up step, at most [`INSTALL_TIMEOUT`]; panics saying `what`
/// failed, with the step's output.
async fn run_step(command: &mut Command, what: &str) {
    let output = tokio::time::timeout(INSTALL_TIMEOUT, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("set-up: timed out after {INSTALL_TIMEOUT:?} {what}"))
        .unwrap_or_else(|error| panic!("set-up: failed {what}: {error}"));
    assert!(
        output.status.success(),
        "set-up: failed {what}: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
