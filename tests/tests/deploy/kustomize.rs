//! The real kustomize, and the CRDs of the custom resources the overlays
//! use, both from pinned Go modules.
//!
//! kustomize is built with `go install sigs.k8s.io/kustomize/kustomize/v5@V`
//! at the version kubectl embeds (k8s.io/kubectl's go.mod requires that
//! module at that version), into
//! `$HOME/.cache/xds-balancer-tests/kube/kustomize-V/`, once per machine,
//! under an exclusive file lock like the API server harness's builds. The
//! CRDs are read from the module cache after `go mod download`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// kubectl releases and the kustomize each embeds (k8s.io/kubectl v0.27.0
/// and v0.33.0 go.mod): the oldest kubectl the documents promise, and the
/// Kubernetes release the manifests are validated for.
pub(crate) const KUBECTL_KUSTOMIZE: [(&str, &str); 2] = [("1.27", "v5.0.1"), ("1.33", "v5.6.0")];

/// A CRD file inside a pinned Go module: module, version, path.
pub(crate) struct Crd {
    pub(crate) module: &'static str,
    pub(crate) version: &'static str,
    pub(crate) path: &'static str,
}

/// The CRDs of the custom resources the overlays create.
pub(crate) const CRDS: [Crd; 3] = [
    Crd {
        module: "github.com/cert-manager/cert-manager",
        version: "v1.19.1",
        path: "deploy/crds/cert-manager.io_issuers.yaml",
    },
    Crd {
        module: "github.com/cert-manager/cert-manager",
        version: "v1.19.1",
        path: "deploy/crds/cert-manager.io_certificates.yaml",
    },
    Crd {
        module: "github.com/prometheus-operator/prometheus-operator",
        version: "v0.85.0",
        path: "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    },
];

/// `$XDG_CACHE_HOME` or `$HOME/.cache`, then `xds-balancer-tests/kube`
/// (where the API server harness keeps its binaries too).
fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME is set");
    base.join("xds-balancer-tests").join("kube")
}

fn go() -> Command {
    let go = std::env::var("KUBE_HARNESS_GO").unwrap_or_else(|_| "go".to_owned());
    let mut command = Command::new(&go);
    command
        .current_dir(std::env::temp_dir())
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-trimpath -buildvcs=false");
    command
}

fn run(mut command: Command, what: &str) -> Result<String, String> {
    let output = command.output().map_err(|e| {
        format!(
            "{what}: cannot run go ({e}); the API server tests need the Go toolchain (1.24 or \
             newer) and the Go module proxy, or SKIP_KUBE_APISERVER=1 to skip them"
        )
    })?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The kustomize binary at `version`, built on first use.
pub(crate) fn kustomize(version: &str) -> Result<PathBuf, String> {
    // One build at a time in this process; the file lock covers others.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = cache_root().join(format!("kustomize-{version}"));
    let binary = dir.join("kustomize");
    if binary.exists() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let lock = std::fs::File::create(dir.join(".lock")).map_err(|e| format!("lock file: {e}"))?;
    let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| format!("lock {}: {errno}", dir.display()))?;
    if binary.exists() {
        return Ok(binary);
    }
    let partial = dir.join(format!("bin.{}.partial", std::process::id()));
    let started = std::time::Instant::now();
    eprintln!(
        "building kustomize {version} from the Go module proxy into {}",
        dir.display()
    );
    let mut command = go();
    command
        .args(["install", "-ldflags", "-s -w"])
        .arg(format!("sigs.k8s.io/kustomize/kustomize/v5@{version}"))
        .env("GOBIN", &partial);
    run(command, &format!("go install kustomize {version}"))?;
    std::fs::rename(partial.join("kustomize"), &binary)
        .map_err(|e| format!("move kustomize into place: {e}"))?;
    let _ = std::fs::remove_dir_all(&partial);
    eprintln!("built kustomize {version} in {:.1?}", started.elapsed());
    drop(lock);
    Ok(binary)
}

/// `kustomize build <dir>` (relative to the repository root).
pub(crate) fn render(binary: &Path, root: &Path, dir: &str) -> Result<String, String> {
    let mut command = Command::new(binary);
    command.arg("build").arg(root.join(dir));
    run(command, &format!("{} build {dir}", binary.display()))
}

/// The directory of `module` at `version` in the module cache, downloaded
/// through the Go module proxy on first use.
pub(crate) fn module_dir(module: &str, version: &str) -> Result<PathBuf, String> {
    let mut command = go();
    command
        .args(["mod", "download", "-json"])
        .arg(format!("{module}@{version}"));
    let json = run(command, &format!("go mod download {module}@{version}"))?;
    let info: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("go mod download output: {e}"))?;
    info["Dir"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| format!("go mod download gave no Dir: {json}"))
}

/// The text of `crd`, from its module.
pub(crate) fn crd(crd: &Crd) -> Result<String, String> {
    let path = module_dir(crd.module, crd.version)?.join(crd.path);
    std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))
}
