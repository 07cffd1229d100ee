//! A real Kubernetes control plane for tests: etcd, kube-apiserver and
//! (optionally) kube-controller-manager running only the EndpointSlice
//! controller, on loopback, per test.
//!
//! # Layout
//!
//! - `build.rs`: the pinned binaries, built once per machine from the Go
//!   module proxy (wrapper modules under `tests/kube/`) and cached under
//!   `$HOME/.cache/xds-balancer-tests/kube/`.
//! - [`gateway_api`]: the Gateway API's GRPCRoute CRD from the pinned
//!   `sigs.k8s.io/gateway-api` module, and installing a CRD.
//! - this file: [`Cluster`], the processes of one test and their files (a
//!   temporary directory: etcd's data, the API server's self-signed serving
//!   certificate, the service-account key, the static token file and one
//!   kubeconfig per identity), and the [`Identity`]s of the token file.
//! - `processes.rs`: starting, stopping and awaiting etcd, kube-apiserver
//!   and kube-controller-manager; their logs; compacting etcd.
//! - `clients.rs`: reaching the API server as an identity (its URL, a
//!   kubeconfig and a `kube::Client` each), and creating namespaces and
//!   objects from manifests as the admin.
//!
//! # Identities
//!
//! The static token file holds an administrator (`system:masters`) and any
//! service accounts a test asks for, as `system:serviceaccount:<ns>:<name>`
//! in groups `system:serviceaccounts` and `system:serviceaccounts:<ns>`,
//! exactly the identity a pod's projected token carries. Authorization is
//! RBAC only, so a service account can do what its Roles allow and nothing
//! more.
//!
//! # Opting out
//!
//! Without Go these tests fail saying what to install, unless
//! `SKIP_KUBE_APISERVER=1` is set (CI never sets it).

mod build;
mod clients;
pub mod gateway_api;
mod processes;

use std::path::PathBuf;
use std::time::Duration;

pub use build::{Binaries, binaries};
use tokio::process::Child;

/// The Kubernetes release the harness builds (k8s.io/kubernetes, with every
/// staging module at the matching v0.x, in tests/kube/apiserver/go.mod).
pub const KUBERNETES: &str = "v1.34.9";
/// The etcd release (tests/kube/etcd/go.mod).
pub const ETCD: &str = "v3.6.4";
/// The documented opt-out.
pub const SKIP_VARIABLE: &str = "SKIP_KUBE_APISERVER";
/// Upper bound for etcd plus kube-apiserver to turn ready.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// True (with a note on standard error) when `SKIP_KUBE_APISERVER=1`.
pub fn skipped() -> bool {
    let skip = std::env::var(SKIP_VARIABLE).is_ok_and(|v| v == "1");
    if skip {
        eprintln!("{SKIP_VARIABLE}=1: skipping a real-API-server test (CI never sets it)");
    }
    skip
}

/// One identity of the static token file.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The user name, e.g. `system:serviceaccount:ns:name`.
    pub user: String,
    /// Its bearer token.
    pub token: String,
    /// Its groups.
    pub groups: Vec<String>,
}

impl Identity {
    /// A service account's identity, as its projected token would give it.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            token: format!("sa-{namespace}-{name}-token"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
            ],
        }
    }

    fn admin() -> Self {
        Self {
            user: "admin".to_owned(),
            token: "admin-token".to_owned(),
            groups: vec!["system:masters".to_owned()],
        }
    }

    fn file_name(&self) -> String {
        self.user.replace(':', "_")
    }
}

/// Options of [`Cluster::start`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Service accounts to put in the token file (namespace, name).
    pub service_accounts: Vec<(String, String)>,
    /// Run kube-controller-manager with only the EndpointSlice controller.
    pub endpointslice_controller: bool,
    /// Extra kube-apiserver flags.
    pub apiserver_args: Vec<String>,
}

/// etcd, kube-apiserver and maybe kube-controller-manager on loopback, and
/// their files; every process is killed and the directory removed on drop.
pub struct Cluster {
    binaries: Binaries,
    dir: PathBuf,
    etcd_port: u16,
    apiserver_port: u16,
    apiserver_args: Vec<String>,
    identities: Vec<Identity>,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    controller_manager: Option<Child>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in [
            self.controller_manager.as_mut(),
            self.apiserver.as_mut(),
            self.etcd.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
