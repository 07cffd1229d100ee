//! The demo's "cluster": one control plane and the greeter-servers, each a
//! child process, and the static file that plays the Kubernetes API.
//!
//! The control plane runs the static source on a watched `--static-file`
//! with grpc.health.v1 probing of every endpoint: adding a backend to the
//! file is "a pod was created", its health answers are "the kubelet's
//! readiness probe", removing it is "the pod object is gone". Everything
//! lives in a temporary directory removed when the cluster is dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ::tests::process::Process;
use ::tests::static_file::{self, StaticFile};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::children::{self, Role, STOP_TIMEOUT};
use crate::tls::{DemoTls, SERVER_SAN};

/// The service the backends serve, as clients name it (`xds:///greeter`).
pub(crate) const SERVICE: &str = "greeter";

/// Errors running the cluster.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A child process could not be started.
    #[error(transparent)]
    Child(#[from] children::Error),
    /// A child process failed.
    #[error(transparent)]
    Process(#[from] ::tests::process::Error),
    /// The temporary directory or the static file could not be written.
    #[error(transparent)]
    Write(#[from] static_file::Error),
    /// No backend of that name is running.
    #[error("no backend named {0}")]
    NoSuchBackend(String),
}

/// Timings the servers run with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    /// greeter-server `--drain-delay`.
    pub(crate) drain_delay: Duration,
    /// greeter-server `--grace`.
    pub(crate) grace: Duration,
    /// control-plane `--probe-interval`.
    pub(crate) probe_interval: Duration,
    /// control-plane `--file-poll-interval`.
    pub(crate) file_poll_interval: Duration,
}

/// A greeter-server child.
#[derive(Debug)]
pub(crate) struct Backend {
    /// Its instance name (`served_by`).
    pub(crate) name: String,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Whether the static file lists it.
    pub(crate) listed: bool,
    child: Process,
}

/// The control plane, the backends and the static file.
#[derive(Debug)]
pub(crate) struct Cluster {
    file: StaticFile,
    timings: Timings,
    control_plane: Option<Process>,
    control_plane_addr: Option<SocketAddr>,
    backends: Vec<Backend>,
    started: usize,
    /// With `--tls`: the certificates of every hop.
    tls: Option<DemoTls>,
}

impl Cluster {
    /// An empty cluster: a temporary directory and an empty static file;
    /// with `tls`, certificates for mutual TLS on every hop.
    pub(crate) fn new(timings: Timings, tls: bool) -> Result<Self, Error> {
        StaticFile::remove_stale(TEMP_LABEL);
        let file = StaticFile::create(TEMP_LABEL, &document(&[], tls))?;
        Ok(Self {
            file,
            timings,
            control_plane: None,
            control_plane_addr: None,
            backends: Vec::new(),
            started: 0,
            tls: tls.then(DemoTls::new),
        })
    }

    /// The static file the control plane watches.
    pub(crate) fn file(&self) -> &Path {
        self.file.path()
    }

    /// The certificates, with `--tls`.
    pub(crate) fn tls(&self) -> Option<&DemoTls> {
        self.tls.as_ref()
    }

    /// Rotates every certificate (with `--tls`); returns the servers' new
    /// serial.
    pub(crate) fn rotate_certificates(&mut self) -> Option<u64> {
        self.tls.as_mut().map(DemoTls::rotate)
    }

    /// The control plane's address, once it has started.
    pub(crate) fn control_plane_addr(&self) -> Option<SocketAddr> {
        self.control_plane_addr
    }

    /// Starts the control plane: on a free port the first time, on the same
    /// port after [`Cluster::stop_control_plane`].
    pub(crate) async fn start_control_plane(&mut self) -> Result<SocketAddr, Error> {
        let listen = self
            .control_plane_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            listen.to_string(),
            "--source".to_owned(),
            "static".to_owned(),
            "--static-file".to_owned(),
            self.file.path().display().to_string(),
            "--file-poll-interval".to_owned(),
            humantime::format_duration(self.timings.file_poll_interval).to_string(),
            "--probe-interval".to_owned(),
            humantime::format_duration(self.timings.probe_interval).to_string(),
        ];
        if let Some(tls) = &self.tls {
            args.extend(tls.control_plane_args());
        }
        let mut child = children::spawn("control-plane", Role::ControlPlane, &args)?;
        let addr = child.try_wait_listening().await?;
        self.control_plane = Some(child);
        self.control_plane_addr = Some(addr);
        Ok(addr)
    }

    /// Stops the control plane (SIGTERM, as Kubernetes would) and waits for
    /// it to exit.
    pub(crate) async fn stop_control_plane(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.control_plane.take() {
            child.try_signal(Signal::SIGTERM)?;
            child.try_wait_exit(Duration::from_secs(15)).await?;
        }
        Ok(())
    }

    /// Starts a new greeter-server (not yet in the static file) and returns
    /// its name.
    pub(crate) async fn start_backend(&mut self) -> Result<String, Error> {
        self.started += 1;
        let name = format!("greeter-{}", self.started);
        let mut args = vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--name".to_owned(),
            name.clone(),
            "--drain-delay".to_owned(),
            humantime::format_duration(self.timings.drain_delay).to_string(),
            "--grace".to_owned(),
            humantime::format_duration(self.timings.grace).to_string(),
        ];
        if let Some(tls) = &self.tls {
            args.extend(tls.server_args());
        }
        let mut child = children::spawn(&name, Role::GreeterServer, &args)?;
        let addr = child.try_wait_listening().await?;
        self.backends.push(Backend {
            name: name.clone(),
            addr,
            listed: false,
            child,
        });
        Ok(name)
    }

    /// The running backends, oldest first.
    pub(crate) fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Names of the running backends, oldest first.
    pub(crate) fn names(&self) -> Vec<String> {
        self.backends.iter().map(|b| b.name.clone()).collect()
    }

    fn backend_mut(&mut self, name: &str) -> Result<&mut Backend, Error> {
        self.backends
            .iter_mut()
            .find(|b| b.name == name)
            .ok_or_else(|| Error::NoSuchBackend(name.to_owned()))
    }

    /// Lists (`true`) or unlists the backend in the static file.
    pub(crate) fn list(&mut self, name: &str, listed: bool) -> Result<(), Error> {
        self.backend_mut(name)?.listed = listed;
        self.write_file()
    }

    /// Sends `signal` to a backend.
    pub(crate) fn signal(&self, name: &str, signal: Signal) -> Result<(), Error> {
        let backend = self
            .backends
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| Error::NoSuchBackend(name.to_owned()))?;
        Ok(backend.child.try_signal(signal)?)
    }

    /// Waits for a backend to exit (after a signal), forgets it, and returns
    /// its exit code.
    pub(crate) async fn wait_backend_exit(&mut self, name: &str) -> Result<Option<i32>, Error> {
        let limit = self.timings.drain_delay + self.timings.grace + Duration::from_secs(10);
        let status = self.backend_mut(name)?.child.try_wait_exit(limit).await?;
        Ok(status.code())
    }

    /// Kills a backend with SIGKILL.
    pub(crate) async fn kill_backend(&mut self, name: &str) -> Result<(), Error> {
        self.backend_mut(name)?.child.kill().await;
        Ok(())
    }

    /// Forgets an exited backend (it must be unlisted first to leave the
    /// file).
    pub(crate) fn forget(&mut self, name: &str) {
        self.backends.retain(|b| b.name != name);
    }

    /// Stops every child: backends first, then the control plane.
    pub(crate) async fn shutdown(&mut self) {
        for backend in &mut self.backends {
            backend.child.stop(STOP_TIMEOUT).await;
        }
        if let Some(child) = &mut self.control_plane {
            child.stop(STOP_TIMEOUT).await;
        }
    }

    /// The last log lines of every child, for an error report.
    pub(crate) fn logs(&self) -> String {
        let mut text = String::new();
        let children = self
            .control_plane
            .iter()
            .chain(self.backends.iter().map(|b| &b.child));
        for child in children {
            text.push_str(&format!(
                "--- {} (last lines) ---\n{}\n",
                child.name(),
                child.log_tail(15)
            ));
        }
        text
    }

    /// Writes the static file: service `greeter` with every listed backend.
    fn write_file(&self) -> Result<(), Error> {
        let doc = document(&self.backends, self.tls.is_some());
        Ok(self.file.try_write(&doc)?)
    }
}

/// Prefix of the demo's temporary directories: `<prefix>-<pid>-<unique>`.
const TEMP_LABEL: &str = "grpc-lb-demo";

/// The static file's content: service `greeter` with every listed backend
/// of `backends`, with `tls` expecting the servers' certificate name.
fn document(backends: &[Backend], tls: bool) -> Value {
    let endpoints: Vec<_> = backends
        .iter()
        .filter(|b| b.listed)
        .map(|b| json!({"address": b.addr.to_string(), "instance": b.name}))
        .collect();
    let mut service = json!({"name": SERVICE, "port": 80, "endpoints": endpoints});
    if tls {
        service["tls"] = json!({"subject_alt_names": [SERVER_SAN]});
    }
    json!({ "services": [service] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_file_lists_only_listed_backends() {
        let cluster = Cluster::new(
            Timings {
                drain_delay: Duration::from_secs(1),
                grace: Duration::from_secs(1),
                probe_interval: Duration::from_secs(1),
                file_poll_interval: Duration::from_secs(1),
            },
            false,
        )
        .expect("cluster");
        let text = std::fs::read_to_string(cluster.file()).expect("file");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(doc["services"][0]["name"], SERVICE);
        assert_eq!(doc["services"][0]["endpoints"], json!([]));
        let dir = cluster.file().parent().expect("dir").to_owned();
        drop(cluster);
        assert!(!dir.exists(), "the temporary directory is removed on drop");
    }
}
