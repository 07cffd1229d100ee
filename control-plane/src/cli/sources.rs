//! Choosing, configuring and starting the source `serve` runs.
//!
//! Startup is split in two so that every configuration error ends the
//! process before it listens: [`prepare`] resolves the namespace and, for
//! Kubernetes, builds the client from the kubeconfig or the pod's service
//! account (no request is made yet); [`start`] then runs the source
//! against the store. An API server that cannot be reached is not a
//! startup error: the Kubernetes source keeps retrying and reports itself
//! disconnected, and health stays NOT_SERVING until its first sync.

use tokio::task::JoinHandle;

use super::Error;
use super::args::{ServeArgs, SourceChoice};
use crate::model::is_dns_label;
use crate::source::kubernetes::{self, WatchConfig};
use crate::source::static_source::{self, StaticArgs};
use crate::source::{SourceHandle, SourceKind};

/// A source ready to start.
pub(crate) enum Plan {
    /// The static source with its flags.
    Static(StaticArgs),
    /// The Kubernetes source with its client.
    Kubernetes {
        client: kube::Client,
        config: WatchConfig,
    },
}

/// A source ready to start, and what the store needs to know about it.
pub(crate) struct Prepared {
    pub(crate) plan: Plan,
    pub(crate) kind: SourceKind,
    /// The namespace served.
    pub(crate) namespace: String,
    /// Where the source reads from, for the status API.
    pub(crate) detail: String,
}

/// Resolves the namespace and sets up the source `args` ask for (`in_pod`
/// decides the default source).
pub(crate) async fn prepare(args: &ServeArgs, in_pod: bool) -> Result<Prepared, Error> {
    match args.source(in_pod) {
        SourceChoice::Static => {
            let pod_namespace = std::env::var(kubernetes::config::POD_NAMESPACE_ENV).ok();
            let namespace = args.static_namespace(pod_namespace.as_deref());
            if !is_dns_label(&namespace) {
                return Err(Error::Namespace(namespace));
            }
            Ok(Prepared {
                detail: args.static_args.describe(),
                plan: Plan::Static(args.static_args.clone()),
                kind: SourceKind::Static,
                namespace,
            })
        }
        SourceChoice::Kubernetes => {
            let namespace =
                kubernetes::resolve_namespace(args.namespace_flag()).map_err(Error::Kubernetes)?;
            let (client, url) = kubernetes::client_from_environment()
                .await
                .map_err(Error::Kubernetes)?;
            tracing::info!(api_server = %url, namespace, "kubernetes source configured");
            Ok(Prepared {
                plan: Plan::Kubernetes {
                    client,
                    config: args.kube_args.watch_config(),
                },
                kind: SourceKind::Kubernetes,
                namespace,
                detail: url,
            })
        }
    }
}

/// Starts the source, reporting to `handle`. The task ends only if the
/// source fails; a static source whose work is done waits forever.
pub(crate) async fn start(
    plan: Plan,
    handle: SourceHandle,
) -> Result<JoinHandle<Result<(), Error>>, Error> {
    Ok(match plan {
        Plan::Static(args) => {
            let running = static_source::start(args, handle).await?;
            tokio::spawn(async move {
                running.wait().await.map_err(Error::StaticFailed)?;
                tracing::debug!("static source finished; its services stay in force");
                std::future::pending().await
            })
        }
        Plan::Kubernetes { client, config } => tokio::spawn(async move {
            kubernetes::run(client, config, handle).await;
            Err(Error::SourceStopped(SourceKind::Kubernetes))
        }),
    })
}

/// Resolves when the source task fails.
pub(crate) async fn failure(task: JoinHandle<Result<(), Error>>, kind: SourceKind) -> Error {
    match task.await {
        Ok(Ok(())) => Error::SourceStopped(kind),
        Ok(Err(error)) => error,
        Err(join) => Error::SourcePanicked {
            kind,
            message: join.to_string(),
        },
    }
}
