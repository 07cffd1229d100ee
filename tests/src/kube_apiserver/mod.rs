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
//!   kubeconfig per identity).
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
pub mod gateway_api;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use build::{Binaries, binaries};
use tokio::process::{Child, Command};
use tokio::time::Instant;

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

/// A free loopback port (released before use: a race with other tests is
/// possible but unlikely).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("open a log file")
}

impl Cluster {
    /// Builds the binaries if needed, then starts etcd and kube-apiserver
    /// (and kube-controller-manager when asked), and waits until the API
    /// server is ready.
    ///
    /// # Panics
    ///
    /// When a binary cannot be built or a process does not turn ready within
    /// its bound (with the tail of its log).
    pub async fn start(options: Options) -> Self {
        let binaries = binaries().await;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xds-balancer-kube-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("pki")).expect("create the cluster directory");

        let mut identities = vec![Identity::admin()];
        identities.extend(
            options
                .service_accounts
                .iter()
                .map(|(ns, name)| Identity::service_account(ns, name)),
        );
        let tokens: String = identities
            .iter()
            .map(|i| {
                format!(
                    "{},{},{},\"{}\"\n",
                    i.token,
                    i.user,
                    i.user,
                    i.groups.join(",")
                )
            })
            .collect();
        std::fs::write(dir.join("tokens.csv"), tokens).expect("write the token file");
        let key = dir.join("sa.key");
        let output = std::process::Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048")
            .output()
            .expect("the harness needs the openssl command to make the service-account key");
        assert!(output.status.success(), "openssl genrsa: {output:?}");

        let mut cluster = Self {
            binaries,
            dir,
            etcd_port: free_port(),
            apiserver_port: free_port(),
            apiserver_args: options.apiserver_args.clone(),
            identities,
            etcd: None,
            apiserver: None,
            controller_manager: None,
        };
        cluster.start_etcd();
        cluster.start_apiserver().await;
        for identity in cluster.identities.clone() {
            cluster.write_kubeconfig(&identity);
        }
        cluster.wait_ready().await;
        if options.endpointslice_controller {
            cluster.start_controller_manager();
        }
        cluster
    }

    fn start_etcd(&mut self) {
        let peer = free_port();
        let url = format!("http://127.0.0.1:{}", self.etcd_port);
        let child = Command::new(&self.binaries.etcd)
            .arg(format!("--data-dir={}", self.dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
            .arg("--unsafe-no-fsync=true")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log_file(&self.dir, "etcd"))
            .stderr(log_file(&self.dir, "etcd"))
            .kill_on_drop(true)
            .spawn()
            .expect("start etcd");
        self.etcd = Some(child);
    }

    /// Starts kube-apiserver (again, after [`Cluster::stop_apiserver`]) on
    /// its port; does not wait for it to be ready.
    pub async fn start_apiserver(&mut self) {
        let dir = &self.dir;
        let port = self.apiserver_port;
        let mut command = Command::new(&self.binaries.kube_apiserver);
        command
            .arg(format!(
                "--etcd-servers=http://127.0.0.1:{}",
                self.etcd_port
            ))
            .args([
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                "--v=1",
            ])
            .arg(format!("--secure-port={port}"))
            .arg(format!("--cert-dir={}", dir.join("pki").display()))
            .arg(format!(
                "--token-auth-file={}",
                dir.join("tokens.csv").display()
            ))
            .arg(format!(
                "--service-account-issuer=https://127.0.0.1:{port}/"
            ))
            .arg(format!(
                "--service-account-key-file={}",
                dir.join("sa.key").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                dir.join("sa.key").display()
            ))
            .args(&self.apiserver_args)
            .stdin(Stdio::null())
            .stdout(log_file(dir, "kube-apiserver"))
            .stderr(log_file(dir, "kube-apiserver"))
            .kill_on_drop(true);
        self.apiserver = Some(command.spawn().expect("start kube-apiserver"));
        // It writes its self-signed serving certificate (and its CA) first.
        let cert = dir.join("pki").join("apiserver.crt");
        let deadline = Instant::now() + START_TIMEOUT;
        while !cert.exists() {
            assert!(
                Instant::now() < deadline,
                "kube-apiserver wrote no serving certificate within {START_TIMEOUT:?}: {}",
                self.log_tail("kube-apiserver")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills kube-apiserver (etcd keeps running).
    pub async fn stop_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill().await;
        }
    }

    /// Waits until kube-apiserver's `/readyz` answers 200 to the admin.
    ///
    /// # Panics
    ///
    /// When it does not within the start bound.
    pub async fn wait_ready(&self) {
        let client = self.admin_client().await;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request");
            if client.request_text(request).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready within {START_TIMEOUT:?}: {}\netcd: {}",
                self.log_tail("kube-apiserver"),
                self.log_tail("etcd")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn start_controller_manager(&mut self) {
        let child = Command::new(&self.binaries.kube_controller_manager)
            .arg(format!(
                "--kubeconfig={}",
                self.kubeconfig(&Identity::admin()).display()
            ))
            .args([
                "--controllers=endpointslice-controller",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--bind-address=127.0.0.1",
                "--v=1",
            ])
            .arg(format!("--secure-port={}", free_port()))
            .stdin(Stdio::null())
            .stdout(log_file(&self.dir, "kube-controller-manager"))
            .stderr(log_file(&self.dir, "kube-controller-manager"))
            .kill_on_drop(true)
            .spawn()
            .expect("start kube-controller-manager");
        self.controller_manager = Some(child);
    }

    /// The API server's URL.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    /// The last lines of a process's log (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`).
    pub fn log_tail(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The admin identity (`system:masters`).
    pub fn admin(&self) -> Identity {
        Identity::admin()
    }

    /// Path of the kubeconfig of `identity` (one of the token file's; the
    /// CA is the API server's self-signed one, auth is its bearer token, no
    /// namespace in the context).
    pub fn kubeconfig(&self, identity: &Identity) -> PathBuf {
        self.dir
            .join(format!("{}.kubeconfig", identity.file_name()))
    }

    fn write_kubeconfig(&self, identity: &Identity) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    server: {url}\n\
             \x20   certificate-authority: {ca}\ncontexts:\n- name: real\n  context:\n    cluster: real\n\
             \x20   user: user\ncurrent-context: real\nusers:\n- name: user\n  user:\n    token: {token}\n",
            url = self.url(),
            ca = self.dir.join("pki").join("apiserver.crt").display(),
            token = identity.token,
        );
        std::fs::write(self.kubeconfig(identity), text).expect("write a kubeconfig");
    }

    /// A `kube::Client` as `identity`, from its kubeconfig.
    pub async fn client(&self, identity: &Identity) -> kube::Client {
        let path = self.kubeconfig(identity);
        if !path.exists() {
            self.write_kubeconfig(identity);
        }
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("kubeconfig accepted");
        kube::Client::try_from(config).expect("kube client")
    }

    /// A client as the admin.
    pub async fn admin_client(&self) -> kube::Client {
        self.client(&Identity::admin()).await
    }

    /// Compacts etcd's history up to its current revision, so that any
    /// watch resumed from an older resourceVersion gets 410 Gone (with
    /// kube-apiserver's watch cache off).
    pub async fn compact_etcd(&self) -> i64 {
        let endpoint = format!("--endpoints=http://127.0.0.1:{}", self.etcd_port);
        let output = Command::new(&self.binaries.etcdctl)
            .args([endpoint.as_str(), "endpoint", "status", "-w", "json"])
            .output()
            .await
            .expect("run etcdctl");
        assert!(
            output.status.success(),
            "etcdctl endpoint status: {output:?}"
        );
        let status: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("etcdctl JSON");
        let revision = status[0]["Status"]["header"]["revision"]
            .as_i64()
            .unwrap_or_else(|| panic!("no revision in {status}"));
        let output = Command::new(&self.binaries.etcdctl)
            .args([endpoint.as_str(), "compaction", &revision.to_string()])
            .output()
            .await
            .expect("run etcdctl");
        assert!(output.status.success(), "etcdctl compaction: {output:?}");
        revision
    }
}

impl Cluster {
    /// Creates namespace `namespace` as the admin.
    pub async fn create_namespace(&self, namespace: &str) {
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(self.admin_client().await);
        let object = serde_json::from_value(serde_json::json!({
            "metadata": { "name": namespace }
        }))
        .expect("a Namespace");
        api.create(&kube::api::PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("create namespace {namespace}: {e}"));
    }

    /// Creates, as the admin, every object of the multi-document YAML file
    /// `path` in `namespace`, as `kubectl apply -f <path> -n <namespace>`
    /// would the first time. Returns the kinds and names created.
    ///
    /// # Panics
    ///
    /// When the file cannot be read or the API server refuses an object.
    pub async fn apply_file(&self, namespace: &str, path: &Path) -> Vec<String> {
        use serde::Deserialize;
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let client = self.admin_client().await;
        let mut created = Vec::new();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document).expect("YAML");
            if value.is_null() {
                continue;
            }
            let object: kube::api::DynamicObject =
                serde_yaml::from_value(value).expect("a Kubernetes object");
            let types = object.types.clone().expect("apiVersion and kind");
            let gvk = kube::api::GroupVersionKind::try_from(&types).expect("apiVersion");
            let plural = format!("{}s", types.kind.to_lowercase());
            let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, &plural);
            let api: kube::Api<kube::api::DynamicObject> =
                kube::Api::namespaced_with(client.clone(), namespace, &resource);
            let name = object.metadata.name.clone().unwrap_or_default();
            api.create(&kube::api::PostParams::default(), &object)
                .await
                .unwrap_or_else(|e| panic!("create {} {name}: {e}", types.kind));
            created.push(format!("{}/{name}", types.kind));
        }
        created
    }
}
