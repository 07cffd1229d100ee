//! The processes of a [`Cluster`]: etcd, kube-apiserver and
//! kube-controller-manager started on free loopback ports with their logs
//! in the cluster's directory, kube-apiserver stopped and started again,
//! readiness awaited, and etcd's history compacted.

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use super::{Cluster, Identity, Options, START_TIMEOUT, binaries};

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

    /// The last lines of a process's log (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`).
    pub fn log_tail(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
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
