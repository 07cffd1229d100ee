//! Building the pinned binaries from the Go module proxy, once per machine.
//!
//! The wrapper modules under `tests/kube/` (`etcd/` and `apiserver/`) pin
//! every module in their go.mod and go.sum. Each binary is built with the
//! `go` command into `$HOME/.cache/xds-balancer-tests/kube/<key>/`, where the
//! key names the pinned version and hashes the wrapper's go.mod and go.sum,
//! so every later run (and every fresh clone on the same machine) reuses it.
//! Test binaries run in parallel, so a build holds an exclusive file lock on
//! the cache directory; whoever waits finds the binary there afterwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::OnceCell;

use super::{ETCD, KUBERNETES};

/// Upper bound for building one module's binaries (a cold kube-apiserver
/// build on two busy cores takes tens of minutes).
const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

/// The binaries the harness runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `etcd` (go.etcd.io/etcd/server/v3).
    pub etcd: PathBuf,
    /// `etcdctl`, for compaction.
    pub etcdctl: PathBuf,
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub kube_controller_manager: PathBuf,
}

/// The binaries, built on first use (at most once per machine and key).
///
/// # Panics
///
/// When `go` is missing or a build fails, saying what to install or what
/// failed.
pub async fn binaries() -> Binaries {
    static BINARIES: OnceCell<Binaries> = OnceCell::const_new();
    BINARIES
        .get_or_init(|| async {
            let etcd = build_module(
                "etcd",
                ETCD,
                &[
                    ("etcd", "go.etcd.io/etcd/server/v3"),
                    ("etcdctl", "go.etcd.io/etcd/etcdctl/v3"),
                ],
                &[],
            )
            .await;
            let kube = build_module(
                "apiserver",
                KUBERNETES,
                &[
                    ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
                    (
                        "kube-controller-manager",
                        "k8s.io/kubernetes/cmd/kube-controller-manager",
                    ),
                ],
                &["-tags", "selinux,notest,grpcnotrace"],
            )
            .await;
            Binaries {
                etcd: etcd.join("etcd"),
                etcdctl: etcd.join("etcdctl"),
                kube_apiserver: kube.join("kube-apiserver"),
                kube_controller_manager: kube.join("kube-controller-manager"),
            }
        })
        .await
        .clone()
}

/// `tests/kube/`, where the wrapper modules are.
fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kube")
}

/// `$XDG_CACHE_HOME` or `$HOME/.cache`, then `xds-balancer-tests/kube`.
fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME is set");
    base.join("xds-balancer-tests").join("kube")
}

/// FNV-1a over the files' contents: stable across Rust releases, unlike
/// the standard library's hasher.
fn content_hash(dir: &Path, files: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in files {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        for byte in file.bytes().chain(bytes) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Builds `programs` (output name, package) of wrapper module `module` into
/// its cache directory unless they are there; returns the directory.
async fn build_module(
    module: &str,
    version: &str,
    programs: &[(&str, &str)],
    extra: &[&str],
) -> PathBuf {
    let source = sources().join(module);
    let dir = cache_root().join(format!(
        "{module}-{version}-{}",
        content_hash(&source, &["go.mod", "go.sum"])
    ));
    let done = |dir: &Path| programs.iter().all(|(name, _)| dir.join(name).exists());
    if done(&dir) {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    // Parallel test binaries: one builds, the others wait here and then
    // find the binaries.
    let lock_path = dir.join(".lock");
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", lock_path.display()));
    let lock = tokio::task::spawn_blocking(move || {
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| errno)
            .expect("lock the build directory")
    })
    .await
    .expect("lock task");
    if done(&dir) {
        drop(lock);
        return dir;
    }
    let go = std::env::var("KUBE_HARNESS_GO").unwrap_or_else(|_| "go".to_owned());
    let found = Command::new(&go)
        .arg("version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the real-API-server tests build kube-apiserver {KUBERNETES} and etcd {ETCD} from the Go \
         module proxy, and the Go toolchain (1.24 or newer) is missing: `{go}` is not on PATH. \
         Install Go (or point KUBE_HARNESS_GO at it), or set SKIP_KUBE_APISERVER=1 to skip these \
         tests"
    );
    for (name, package) in programs {
        if dir.join(name).exists() {
            continue;
        }
        let partial = dir.join(format!("{name}.{}.partial", std::process::id()));
        let ldflags = if module == "apiserver" {
            kube_ldflags()
        } else {
            "-s -w".to_owned()
        };
        let started = Instant::now();
        eprintln!(
            "building {name} ({version}) from the Go module proxy into {}; the first build takes \
             tens of minutes",
            dir.display()
        );
        let mut command = Command::new(&go);
        command
            .args(["build", "-mod=readonly", "-p", "2"])
            .args(extra)
            .args(["-ldflags", &ldflags, "-o"])
            .arg(&partial)
            .arg(package)
            .current_dir(&source)
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-trimpath -buildvcs=false")
            .env("GOTOOLCHAIN", "local")
            .kill_on_drop(true);
        let output = tokio::time::timeout(BUILD_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("building {name} took more than {BUILD_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("run {go}: {e}"));
        assert!(
            output.status.success(),
            "building {name} in {} with `{go} build` failed (needs the Go module proxy, or the \
             modules in GOMODCACHE): {}\n{}",
            source.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::rename(&partial, dir.join(name)).expect("move the built binary into place");
        eprintln!("built {name} ({version}) in {:.1?}", started.elapsed());
    }
    drop(lock);
    dir
}

/// Version stamps, as Kubernetes' own build sets them (without them
/// `/version` reads v0.0.0-master).
fn kube_ldflags() -> String {
    let minor = KUBERNETES.split('.').nth(1).expect("vMAJOR.MINOR.PATCH");
    let mut flags = "-s -w".to_owned();
    for package in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        flags.push_str(&format!(
            " -X {package}.gitVersion={KUBERNETES} -X {package}.gitMajor=1 \
             -X {package}.gitMinor={minor} -X {package}.gitTreeState=clean"
        ));
    }
    flags
}
