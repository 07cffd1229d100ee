//! Reaching a [`Cluster`]'s API server: its URL, one kubeconfig and
//! `kube::Client` per identity of the token file, and the admin creating
//! namespaces and the objects of a manifest file.

use std::path::{Path, PathBuf};

use super::{Cluster, Identity};

impl Cluster {
    /// The API server's URL.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
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

    pub(super) fn write_kubeconfig(&self, identity: &Identity) {
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
