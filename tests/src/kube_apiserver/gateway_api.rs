//! Gateway API CRDs for the real API server: the pinned
//! `sigs.k8s.io/gateway-api` module, fetched from the Go module proxy
//! (`go mod download`, kept in Go's module cache), and installed into a
//! [`Cluster`] like `kubectl apply -f` of its standard channel would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use tokio::process::Command;

use super::Cluster;

/// The Gateway API release whose CRDs the tests install.
pub const GATEWAY_API_VERSION: &str = "v1.4.0";
/// Upper bound for fetching the module.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// The GRPCRoute CRD of the pinned release (standard channel), fetched
/// once into Go's module cache.
///
/// # Panics
///
/// When Go is missing or the module cannot be fetched.
pub async fn grpcroute_crd() -> PathBuf {
    let go = std::env::var("KUBE_HARNESS_GO").unwrap_or_else(|_| "go".to_owned());
    let module = format!("sigs.k8s.io/gateway-api@{GATEWAY_API_VERSION}");
    let mut command = Command::new(&go);
    command
        .args(["mod", "download", "-json", &module])
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true);
    let output = tokio::time::timeout(DOWNLOAD_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("`{go} mod download {module}` took over {DOWNLOAD_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("run {go} (install Go, or set SKIP_KUBE_APISERVER=1): {e}"));
    assert!(
        output.status.success(),
        "`{go} mod download {module}` failed (needs the Go module proxy): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let info: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("go mod download -json prints JSON");
    let dir = info["Dir"].as_str().expect("the module's directory");
    Path::new(dir).join("config/crd/standard/gateway.networking.k8s.io_grpcroutes.yaml")
}

impl Cluster {
    /// Creates the CustomResourceDefinition in `path` and waits until the
    /// API server serves it (condition Established).
    ///
    /// # Panics
    ///
    /// When the file is not a CRD, or it is not established within 30 s.
    pub async fn install_crd(&self, path: &Path) {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a CRD: {e}", path.display()));
        let name = crd.metadata.name.clone().unwrap_or_default();
        let api: Api<CustomResourceDefinition> = Api::all(self.admin_client().await);
        api.create(&PostParams::default(), &crd)
            .await
            .unwrap_or_else(|e| panic!("create CRD {name}: {e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let current = api.get(&name).await.expect("get the CRD");
            let established = current
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "CRD {name} not established within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
