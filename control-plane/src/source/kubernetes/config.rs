//! Settings of the Kubernetes source: which namespace, how to reach the API
//! server, and how watchers behave.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::is_dns_label;

/// Where Kubernetes mounts the pod's namespace.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The environment variable a pod manifest sets from `metadata.namespace`.
pub const POD_NAMESPACE_ENV: &str = "POD_NAMESPACE";

/// Errors in setting up the Kubernetes source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No namespace from any of the places looked at.
    #[error(
        "no namespace to watch: pass --namespace, run in a pod (which has {SERVICE_ACCOUNT_NAMESPACE_FILE}), or set {POD_NAMESPACE_ENV}"
    )]
    NoNamespace,
    /// The service-account namespace file exists but cannot be read.
    #[error("failed to read the namespace from {path}: {source}")]
    ReadNamespace {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The namespace found is not a valid namespace name.
    #[error("namespace {namespace:?} (from {origin}) is not a valid Kubernetes namespace name")]
    InvalidNamespace {
        /// The value.
        namespace: String,
        /// Where it came from.
        origin: String,
    },
    /// No kubeconfig and not in a cluster, or a kubeconfig that cannot be used.
    #[error(
        "failed to find Kubernetes API credentials (KUBECONFIG, ~/.kube/config or in-cluster service account): {0}"
    )]
    Config(#[source] kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("failed to create the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// Whether this process runs in a Kubernetes pod (the kubelet sets
/// `KUBERNETES_SERVICE_HOST` in every container).
pub fn running_in_pod() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

/// The namespace to serve: `flag` (from `--namespace`), else the
/// service-account namespace file, else `POD_NAMESPACE`.
pub fn resolve_namespace(flag: Option<&str>) -> Result<String, Error> {
    resolve_namespace_from(
        flag,
        Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE),
        std::env::var(POD_NAMESPACE_ENV).ok().as_deref(),
    )
}

/// [`resolve_namespace`] with the file and the environment value given.
pub fn resolve_namespace_from(
    flag: Option<&str>,
    service_account_file: &Path,
    pod_namespace: Option<&str>,
) -> Result<String, Error> {
    let valid = |namespace: &str, origin: &str| {
        let namespace = namespace.trim();
        if is_dns_label(namespace) {
            Ok(namespace.to_owned())
        } else {
            Err(Error::InvalidNamespace {
                namespace: namespace.to_owned(),
                origin: origin.to_owned(),
            })
        }
    };
    if let Some(namespace) = flag {
        return valid(namespace, "--namespace");
    }
    match std::fs::read_to_string(service_account_file) {
        Ok(text) if !text.trim().is_empty() => {
            return valid(&text, &service_account_file.display().to_string());
        }
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::ReadNamespace {
                path: service_account_file.to_owned(),
                source,
            });
        }
    }
    match pod_namespace.filter(|ns| !ns.trim().is_empty()) {
        Some(namespace) => valid(namespace, POD_NAMESPACE_ENV),
        None => Err(Error::NoNamespace),
    }
}

/// A client configured the standard way: `KUBECONFIG` or `~/.kube/config`,
/// else the in-cluster service account. Returns it with the API server URL.
pub async fn client_from_environment() -> Result<(kube::Client, String), Error> {
    let mut config = kube::Config::infer().await.map_err(Error::Config)?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(Error::Client)?;
    Ok((client, url))
}

/// How long to wait for a TCP connection to the API server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the source watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// Server-side timeout of each watch request. kube-runtime treats a
    /// watch that stays silent 5 s longer as dead, so this also bounds how
    /// long a silently broken connection goes unnoticed.
    pub watch_timeout: Duration,
    /// Objects per LIST page.
    pub page_size: u32,
    /// First wait before listing again after an error.
    pub backoff_initial: Duration,
    /// Longest wait between attempts (the wait doubles from the first, with
    /// jitter).
    pub backoff_max: Duration,
    /// While the GRPCRoute API is not installed (or not granted), how often
    /// to look for it again.
    pub route_recheck: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            // A minute: a dead connection is noticed within ~65 s, and a
            // healthy watch costs one cheap request a minute.
            watch_timeout: Duration::from_secs(60),
            // As client-go.
            page_size: 500,
            backoff_initial: Duration::from_millis(500),
            // An API server outage is noticed and healed within ~10 s.
            backoff_max: Duration::from_secs(10),
            // CRDs installed later take effect within half a minute, for
            // one cheap request.
            route_recheck: Duration::from_secs(30),
        }
    }
}

impl WatchConfig {
    /// Sets the watch timeout.
    #[must_use]
    pub fn watch_timeout(mut self, timeout: Duration) -> Self {
        self.watch_timeout = timeout;
        self
    }

    /// Sets the LIST page size.
    #[must_use]
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    /// Sets how often to look again for a missing GRPCRoute API.
    #[must_use]
    pub fn route_recheck(mut self, every: Duration) -> Self {
        self.route_recheck = every;
        self
    }

    /// Sets the retry backoff bounds.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_comes_from_flag_then_file_then_env() {
        let dir = std::env::temp_dir().join(format!("cp-ns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("namespace");
        let missing = dir.join("missing");

        assert_eq!(
            resolve_namespace_from(Some("a"), &missing, Some("c")).unwrap(),
            "a"
        );
        std::fs::write(&file, "team-b\n").unwrap();
        assert_eq!(
            resolve_namespace_from(None, &file, Some("c")).unwrap(),
            "team-b"
        );
        assert_eq!(
            resolve_namespace_from(None, &missing, Some("c")).unwrap(),
            "c"
        );
        std::fs::write(&file, "").unwrap();
        assert_eq!(resolve_namespace_from(None, &file, Some("c")).unwrap(), "c");

        let error = resolve_namespace_from(None, &missing, None).unwrap_err();
        assert!(matches!(error, Error::NoNamespace));
        assert!(error.to_string().contains("--namespace"), "{error}");
        assert!(matches!(
            resolve_namespace_from(Some("Bad_NS"), &missing, None),
            Err(Error::InvalidNamespace { .. })
        ));
        // A directory where the file should be cannot be read.
        assert!(matches!(
            resolve_namespace_from(None, &dir, Some("c")),
            Err(Error::ReadNamespace { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
