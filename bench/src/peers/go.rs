//! The go-control-plane peer: `bench/go-xds-peer`, a small Go program
//! (go.mod and go.sum pin every module) around go-control-plane's snapshot
//! cache and ADS server.
//!
//! Its sources are compiled into this harness, so a harness binary needs no
//! source tree: on first use they are written to
//! `$HOME/.cache/xds-balancer-tests/bench-go/<key>/` (or under
//! `$XDG_CACHE_HOME`), where the key hashes them, and built there with the
//! `go` command (`BENCH_GO` names another); later runs reuse the binary.
//! Go's own caches keep the modules and compiled packages.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;

/// What the peer is, for the report.
pub(crate) const DESCRIPTION: &str = "go-control-plane v0.14.0 (pkg/cache/v3 snapshot cache, \
     pkg/server/v3 ADS server; envoy API module v1.40.0, grpc-go v1.85.0), built with the \
     local Go toolchain";

/// The module's files, as in `bench/go-xds-peer`.
const FILES: [(&str, &str); 4] = [
    ("go.mod", include_str!("../../go-xds-peer/go.mod")),
    ("go.sum", include_str!("../../go-xds-peer/go.sum")),
    ("main.go", include_str!("../../go-xds-peer/main.go")),
    (
        "resources.go",
        include_str!("../../go-xds-peer/resources.go"),
    ),
];
/// The binary's name.
const BINARY: &str = "go-xds-peer";
/// Upper bound for downloading the modules and building the program.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Why the peer cannot run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// There is no Go toolchain: the peer is skipped.
    #[error("{0}")]
    NoGo(String),
    /// Go is there but building failed.
    #[error("building the go-control-plane peer in {dir} failed: {why}")]
    Build {
        /// Where it was built.
        dir: PathBuf,
        /// What went wrong.
        why: String,
    },
}

/// `$XDG_CACHE_HOME` or `$HOME/.cache`, then `xds-balancer-tests/bench-go`.
fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("xds-balancer-tests").join("bench-go")
}

/// FNV-1a over the files' names and contents (stable across Rust
/// releases, unlike the standard library's hasher).
fn content_key() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, text) in FILES {
        for byte in name.bytes().chain([0]).chain(text.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The built program, building it first if needed.
pub(crate) async fn program() -> Result<PathBuf, Error> {
    let dir = cache_root().join(content_key());
    let binary = dir.join(BINARY);
    if binary.exists() {
        return Ok(binary);
    }
    let go = std::env::var("BENCH_GO").unwrap_or_else(|_| "go".to_owned());
    let found = Command::new(&go)
        .arg("version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !found {
        return Err(Error::NoGo(format!(
            "the Go toolchain (1.26 or newer) is needed to build it, and `{go}` is not on PATH \
             (install Go, or point BENCH_GO at it)"
        )));
    }
    let build_error = |why: String| Error::Build {
        dir: dir.clone(),
        why,
    };
    let source = dir.join("src");
    write_sources(&source).map_err(|e| build_error(format!("writing the sources: {e}")))?;
    // Built beside its final name and renamed, so a half-written binary is
    // never taken for a cached one.
    let partial = dir.join(format!("{BINARY}.{}.partial", std::process::id()));
    tracing::info!(dir = %dir.display(), "building the go-control-plane peer (the first build downloads modules and takes minutes)");
    let started = Instant::now();
    let mut command = Command::new(&go);
    command
        .args(["build", "-o"])
        .arg(&partial)
        .arg(".")
        .current_dir(&source)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=readonly -trimpath -buildvcs=false")
        .env("GOTOOLCHAIN", "local")
        .kill_on_drop(true);
    let output = tokio::time::timeout(BUILD_TIMEOUT, command.output())
        .await
        .map_err(|_| build_error(format!("`{go} build` took more than {BUILD_TIMEOUT:?}")))?
        .map_err(|e| build_error(format!("running {go}: {e}")))?;
    if !output.status.success() {
        return Err(build_error(format!(
            "`{go} build` {} (it needs the Go module proxy, or the modules in GOMODCACHE):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    std::fs::rename(&partial, &binary)
        .map_err(|e| build_error(format!("moving the binary into place: {e}")))?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "built the go-control-plane peer"
    );
    Ok(binary)
}

fn write_sources(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in FILES {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_sources() {
        let key = content_key();
        assert_eq!(key.len(), 16);
        assert_eq!(key, content_key());
        assert!(FILES.iter().all(|(_, text)| !text.is_empty()));
        // DESCRIPTION names the pinned versions.
        for pinned in [
            "github.com/envoyproxy/go-control-plane v0.14.0",
            "github.com/envoyproxy/go-control-plane/envoy v1.40.0",
            "google.golang.org/grpc v1.85.0",
        ] {
            assert!(FILES[0].1.contains(pinned), "{pinned}");
        }
    }
}
