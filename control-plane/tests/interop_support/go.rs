//! grpc-go: `tests/interop/go` (go.mod and go.sum pin every module) built
//! once with the `go` command into `target/interop-go/<key>/`, where the
//! key hashes the module's files, so later runs reuse the binary. Go's own
//! caches (GOCACHE, GOMODCACHE) keep the modules and compiled packages.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::OnceCell;

use super::{content_key, found, run_step, sources, target_dir};

/// The grpc-go release the interop tests use (pinned in go.mod).
pub const GRPC_GO: &str = "google.golang.org/grpc v1.85.0";
/// Upper bound for downloading the modules and building the client.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
const FILES: [&str; 3] = ["go.mod", "go.sum", "main.go"];

/// The grpc-go client binary, built on first use.
///
/// # Panics
///
/// When `go` is missing or the build fails, saying what to install.
pub async fn client() -> PathBuf {
    static CLIENT: OnceCell<PathBuf> = OnceCell::const_new();
    CLIENT.get_or_init(build).await.clone()
}

async fn build() -> PathBuf {
    let module = sources().join("go");
    let dir = target_dir()
        .join("interop-go")
        .join(content_key(&module, &FILES));
    let binary = dir.join("xds-greeter-client");
    if binary.exists() {
        return binary;
    }
    let go = std::env::var("INTEROP_GO").unwrap_or_else(|_| "go".to_owned());
    assert!(
        found(&go, &["version"]).await,
        "the grpc-go interop test needs the Go toolchain (1.26 or newer, for {GRPC_GO}), and \
         `{go}` is not on PATH: install Go (or point INTEROP_GO at it), or set SKIP_GO_INTEROP=1 \
         to skip this test"
    );
    std::fs::create_dir_all(&dir).expect("create target/interop-go");
    // Built beside its final name and renamed, so a half-written binary is
    // never taken for a cached one.
    let partial = dir.join(format!("xds-greeter-client.{}.partial", std::process::id()));
    let started = Instant::now();
    run_step(
        Command::new(&go)
            .args(["build", "-mod=readonly", "-buildvcs=false", "-o"])
            .arg(&partial)
            .arg(".")
            .current_dir(&module),
        BUILD_TIMEOUT,
        &format!(
            "building the grpc-go client in {} with `{go} build` (needs the Go module proxy, or \
             the modules in GOMODCACHE)",
            module.display()
        ),
    )
    .await;
    std::fs::rename(&partial, &binary).expect("move the built client into place");
    eprintln!(
        "built the grpc-go interop client ({GRPC_GO}) in {:.1?}",
        started.elapsed()
    );
    binary
}
