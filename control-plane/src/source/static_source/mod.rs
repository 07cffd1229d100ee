//! The static source: services from the command line and from a watched
//! file, each endpoint's readiness found by grpc.health.v1 probing. It plays
//! the part of the Kubernetes API and the kubelet on a machine with no
//! cluster.
//!
//! # Inputs
//!
//! `--static <service>[:<port>]=<host:port>[,<host:port>...]` (repeatable)
//! defines a one-port service; the Service port defaults to 80 and each
//! endpoint is dialled at its own host:port (like a targetPort).
//!
//! `--static-file <file>` lists services in YAML or JSON. The long form
//! gives every port (with an optional name, which clients may target as
//! `svc:name`) and every endpoint (with an optional zone, used as the xDS
//! locality, and an instance name for people); the short form is for a
//! service with one unnamed port (`port` defaults to 80); an endpoint may be
//! written as just `"host:port"`:
//!
//! ```yaml
//! services:
//!   - name: greeter
//!     ports:
//!       - name: grpc
//!         port: 80
//!         endpoints:
//!           - address: 10.0.0.1:8080
//!             zone: zone-a
//!             instance: pod-a
//!           - 10.0.0.2:8080
//!   - name: billing
//!     port: 9000
//!     endpoints: ["localhost:9001", "[::1]:9002"]
//! ```
//!
//! A service may also say `lb_policy: least_request` (default
//! `round_robin`) and `traffic_distribution: PreferClose` (clients prefer
//! endpoints in their own zone), and the file may have a `routes:` section:
//! GRPCRoute-like method and header routing and weighted splits between
//! services (see `routes.rs`).
//!
//! The same in JSON: `{"services": [{"name": "billing", "port": 9000,
//! "endpoints": ["localhost:9001"]}]}`. Unknown fields, a service defined
//! twice, a port listing one address twice, and the model's rules
//! ([`Service::validate`](crate::model::Service::validate)) are errors. An
//! empty file is an error (write `services: []` to serve none), so a file
//! caught mid-write never empties the control plane.
//!
//! Host names are resolved to one IP address each (IPv4 preferred) when the
//! flags are read and whenever the file's content is loaded; errors say
//! which name failed. Flags and file combine; a service may be defined in
//! only one of them.
//!
//! # Behaviour
//!
//! - At startup, a malformed flag or an unreadable or invalid file is an
//!   error ([`start`] / [`run`] return it).
//! - Later, the file's content is polled every `--file-poll-interval`
//!   (which also sees files replaced by rename or by a ConfigMap's symlink
//!   swap; see `watch.rs`). A valid edit applies. A broken one is logged,
//!   the source turns [`Degraded`](crate::source::SourceState::Degraded)
//!   with the error (the status API shows it), and the last good
//!   configuration stays in force; the next valid edit makes it `Connected`
//!   again.
//! - Every distinct endpoint address has one prober (see `probe.rs`): not
//!   ready until it answers SERVING; not ready at once on NOT_SERVING, a
//!   broken stream or no answer, with a detail saying why. `--no-probe`
//!   serves every endpoint as ready instead.
//! - At startup the source waits for every prober's first answer (at most
//!   about twice `--probe-timeout`) before it reports itself synced, so the
//!   first state served, after a restart too, already says which endpoints
//!   are ready.
//!
//! # Layout
//!
//! - `args.rs`: [`StaticArgs`] (the flags) and the `--static` syntax.
//! - `config.rs`: the file format.
//! - `routes.rs`: the file's `routes:` section.
//! - `resolve.rs`: host names to IP addresses, and the model's checks.
//! - `watch.rs`: loading the file and polling it for changes.
//! - `probe.rs`: one endpoint's grpc.health.v1 prober.
//! - `task.rs`: the task that owns the configuration and the probers and
//!   writes to the store.

mod args;
mod config;
mod probe;
mod resolve;
mod routes;
mod task;
mod watch;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use common::tls::{ClientTls, ClientTlsFiles};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tracing::Instrument as _;

pub use self::args::{
    DEFAULT_FILE_POLL_INTERVAL, DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_TIMEOUT,
    DEFAULT_SERVICE_PORT, StaticArgs,
};
pub use self::config::{AddressError, ConfigError};
use self::probe::ProbeConfig;
pub use self::resolve::{RESOLVE_TIMEOUT, ResolveError};
pub use self::routes::RouteDocError;
use self::task::{REPORT_QUEUE, Task};
use self::watch::FileWatcher;
use self::watch::Loaded;
pub use self::watch::{LoadError, MAX_FILE_SIZE};
use crate::source::{SourceHandle, SourceState};

/// Errors of the static source; all but [`Error::TaskFailed`] happen at
/// startup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--static` value is malformed.
    #[error("invalid --static {value:?}: {reason}")]
    InvalidFlag {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--static` service could not be resolved or breaks the model's rules.
    #[error("invalid --static services: {0}")]
    Flags(#[source] ResolveError),
    /// The static file could not be loaded.
    #[error(transparent)]
    File(Box<LoadError>),
    /// A service is defined both by `--static` and in the file.
    #[error("service {service} is defined both by --static and in {}", path.display())]
    Conflict {
        /// The service.
        service: String,
        /// The file.
        path: PathBuf,
    },
    /// The probes' TLS files could not be loaded.
    #[error("cannot use the probe TLS files (--probe-tls-*)")]
    ProbeTls(#[source] common::tls::Error),
    /// The source's task ended unexpectedly (a bug).
    #[error("the static source stopped unexpectedly: {0}")]
    TaskFailed(String),
}

impl From<LoadError> for Error {
    fn from(error: LoadError) -> Self {
        Self::File(Box::new(error))
    }
}

/// The running static source. Dropping it stops the source: its probers
/// and its file watcher end.
#[derive(Debug)]
pub struct StaticSource {
    task: Option<JoinHandle<()>>,
}

impl StaticSource {
    /// Runs until the source is dropped; returns only if its task failed.
    pub async fn wait(mut self) -> Result<(), Error> {
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|error| Error::TaskFailed(error.to_string())),
            None => Ok(()),
        }
    }
}

impl Drop for StaticSource {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Loads the flags and the file, publishes their services, waits (at most
/// about twice the probe timeout) for every endpoint's first health answer,
/// marks the source connected, and leaves a task running that probes the
/// endpoints and watches the file.
pub async fn start(args: StaticArgs, handle: SourceHandle) -> Result<StaticSource, Error> {
    let namespace = handle.namespace().to_owned();
    let defs = args
        .services
        .iter()
        .map(|value| args::parse_flag(value))
        .collect::<Result<Vec<_>, _>>()?;
    let flag_services = resolve::resolve(defs, &namespace)
        .await
        .map_err(Error::Flags)?;
    let flag_count = flag_services.len();
    let probing = (!args.no_probe).then_some(ProbeConfig {
        interval: args.probe_interval,
        timeout: args.probe_timeout,
    });
    let probe_tls = match &args.probe_tls_ca {
        Some(ca) => Some(
            ClientTls::load(&ClientTlsFiles {
                ca: ca.clone(),
                cert: args.probe_tls_cert.clone(),
                key: args.probe_tls_key.clone(),
            })
            .map_err(Error::ProbeTls)?,
        ),
        None => None,
    };
    let (reports_tx, mut reports_rx) = mpsc::channel(REPORT_QUEUE);
    let mut task = Task::new(
        handle.clone(),
        probing,
        probe_tls,
        args.static_file.clone(),
        flag_services,
        reports_tx,
    );

    let mut file = Loaded {
        services: Vec::new(),
        routes: Vec::new(),
    };
    let mut watcher = None;
    if let Some(path) = &args.static_file {
        let (bytes, loaded) = watch::load(path, &namespace).await?;
        if let Some(service) = task.conflict(&loaded.services) {
            return Err(Error::Conflict {
                service,
                path: path.clone(),
            });
        }
        file = loaded;
        watcher = Some(FileWatcher::new(
            path.clone(),
            namespace,
            args.file_poll_interval,
            bytes,
        ));
    }
    let event = match &args.static_file {
        Some(path) => format!(
            "loaded {flag_count} services from --static and {} services, {} routes from {}",
            file.services.len(),
            file.routes.len(),
            path.display()
        ),
        None => format!("loaded {flag_count} services from --static"),
    };
    tracing::info!(
        flag_services = flag_count,
        file_services = file.services.len(),
        file_routes = file.routes.len(),
        probing = !args.no_probe,
        "static source loaded"
    );
    task.apply(file, event);
    if let Some(config) = probing {
        // Like EndpointSlices that already carry readiness, the first state
        // clients see should say which endpoints answer: a restarted control
        // plane must not tell every client "nothing is ready" for the
        // moment it takes to ask.
        task.first_answers(&mut reports_rx, config.first_answer_limit())
            .await;
    }
    handle.set_state(SourceState::Connected, None);

    let (watcher, files) = match watcher {
        Some(watcher) => {
            let (tx, rx) = mpsc::channel(1);
            let guard = AbortOnDrop::new(tokio::spawn(
                watcher
                    .run(tx)
                    .instrument(tracing::info_span!("static_file")),
            ));
            (Some(guard), Some(rx))
        }
        None => (None, None),
    };
    let run = async move {
        let _watcher = watcher;
        task.run(reports_rx, files).await;
    };
    let task = tokio::spawn(run.instrument(tracing::info_span!("static_source")));
    Ok(StaticSource { task: Some(task) })
}

/// [`start`]s the source and runs it until this future is dropped. Returns
/// an error only at startup (or if the source's task fails, a bug).
pub async fn run(args: StaticArgs, handle: SourceHandle) -> Result<(), Error> {
    start(args, handle).await?.wait().await
}

/// Aborts a spawned task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(AbortHandle);

impl AbortOnDrop {
    pub(crate) fn new<T>(task: JoinHandle<T>) -> Self {
        Self(task.abort_handle())
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
