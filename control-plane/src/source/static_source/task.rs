//! The static source's task: holds the configured services and one prober
//! per distinct endpoint, and tells the store what changed.
//!
//! A configuration change (a file edit) goes to the store as one full
//! replacement, in which services that did not change keep their version.
//! A probe result goes out as an upsert of just the services that list that
//! endpoint. Probers are keyed by address and TLS settings (a TLS service's
//! endpoints are probed over TLS, with that service's SAN matchers): a
//! reload that keeps both keeps its prober and its last known health; a
//! prober whose target left the configuration is stopped, and a late report
//! from it is ignored.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use super::AbortOnDrop;
use common::tls::ClientTls;

use super::probe::{self, Health, ProbeConfig, Report, Target};
use super::watch::{LoadError, Loaded};
use crate::model::{Readiness, Service};
use crate::routes::{RouteSet, RouteSupport, TrafficRoute};
use crate::source::{SourceHandle, SourceState};

/// How many probe reports may wait for the task.
pub(crate) const REPORT_QUEUE: usize = 256;

struct Prober {
    id: u64,
    health: Health,
    _task: AbortOnDrop,
}

/// The source's state, changed only by the task.
pub(crate) struct Task {
    handle: SourceHandle,
    /// `None` when probing is off: every endpoint is ready.
    probing: Option<ProbeConfig>,
    /// Roots and identity for probing TLS services, if configured.
    probe_tls: Option<ClientTls>,
    file: Option<PathBuf>,
    flag_services: Vec<Service>,
    file_services: Vec<Service>,
    probers: HashMap<Target, Prober>,
    next_id: u64,
    reports: mpsc::Sender<Report>,
}

impl Task {
    /// A task with the `--static` services `flag_services` and no file
    /// services yet; probe reports are sent on `reports`.
    pub(crate) fn new(
        handle: SourceHandle,
        probing: Option<ProbeConfig>,
        probe_tls: Option<ClientTls>,
        file: Option<PathBuf>,
        flag_services: Vec<Service>,
        reports: mpsc::Sender<Report>,
    ) -> Self {
        Self {
            handle,
            probing,
            probe_tls,
            file,
            flag_services,
            file_services: Vec::new(),
            probers: HashMap::new(),
            next_id: 0,
            reports,
        }
    }

    /// The name of a service defined both by a flag and in `file_services`.
    pub(crate) fn conflict(&self, file_services: &[Service]) -> Option<String> {
        file_services
            .iter()
            .find(|f| self.flag_services.iter().any(|s| s.name == f.name))
            .map(|f| f.name.clone())
    }

    /// Makes `loaded` (its services checked with [`Task::conflict`]) the
    /// file's content, starts and stops probers to match, and publishes
    /// every service and the file's routes.
    pub(crate) fn apply(&mut self, loaded: Loaded, event: String) {
        self.file_services = loaded.services;
        let routes = loaded.routes;
        let wanted: HashSet<Target> = self
            .services()
            .flat_map(|s| {
                s.ports
                    .iter()
                    .flat_map(|p| &p.endpoints)
                    .map(|e| Target::of(s, e))
            })
            .collect();
        self.probers.retain(|target, _| {
            let keep = wanted.contains(target);
            if !keep {
                tracing::debug!(addr = %target.addr, "endpoint left the configuration: probe stopped");
            }
            keep
        });
        if let Some(config) = self.probing {
            for target in wanted {
                if !self.probers.contains_key(&target) {
                    self.next_id += 1;
                    let id = self.next_id;
                    let task = probe::spawn(
                        target.clone(),
                        id,
                        config,
                        self.probe_tls.clone(),
                        self.reports.clone(),
                    );
                    let prober = Prober {
                        id,
                        health: Health::starting(),
                        _task: task,
                    };
                    self.probers.insert(target, prober);
                }
            }
        }
        let services: Vec<Service> = self.services().map(|s| self.build(s)).collect();
        for rejected in self.handle.replace_all(services, event.clone()) {
            // Services are checked before they get here; this is a bug.
            tracing::error!(service = rejected.name, error = %rejected.error, "static service refused by the store");
        }
        self.handle.set_routes(self.route_set(routes), event);
    }

    /// The routes of the file, or why there are none.
    fn route_set(&self, routes: Vec<TrafficRoute>) -> RouteSet {
        let support = match &self.file {
            Some(path) => {
                RouteSupport::enabled(format!("the routes: section of {}", path.display()))
            }
            None => RouteSupport::disabled(
                "no --static-file: routes are read from a static file's routes: section",
            ),
        };
        RouteSet { support, routes }
    }

    /// Handles a newly loaded file (or why it could not be loaded).
    pub(crate) fn on_file(&mut self, loaded: Result<Loaded, LoadError>) {
        let path = self
            .file
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string());
        let error = match loaded {
            Ok(loaded) => match self.conflict(&loaded.services) {
                None => {
                    let count = loaded.services.len();
                    let routes = loaded.routes.len();
                    tracing::info!(path, services = count, routes, "static file applied");
                    self.apply(
                        loaded,
                        format!("static file {path} applied: {count} services, {routes} routes"),
                    );
                    self.handle.set_state(SourceState::Connected, None);
                    return;
                }
                Some(name) => format!(
                    "invalid static file {path}: service {name} is already defined by --static"
                ),
            },
            Err(error) => common::error::chain(&error),
        };
        tracing::warn!(
            error,
            "static file change rejected: the last good configuration stays in force"
        );
        self.handle.set_state(SourceState::Degraded, Some(error));
    }

    /// Handles a prober's report: updates the services that list its
    /// endpoint.
    pub(crate) fn on_report(&mut self, report: Report) {
        let Some(prober) = self.probers.get_mut(&report.target) else {
            return;
        };
        if prober.id != report.id || prober.health == report.health {
            return;
        }
        prober.health = report.health;
        let addr = report.target.addr;
        let event = match &prober.health {
            Health::Ready => format!("endpoint {addr} ready"),
            Health::NotReady(detail) => format!("endpoint {addr} not ready: {detail}"),
        };
        let affected: Vec<Service> = self
            .services()
            .filter(|s| {
                s.ports
                    .iter()
                    .flat_map(|p| &p.endpoints)
                    .any(|e| Target::of(s, e) == report.target)
            })
            .map(|s| self.build(s))
            .collect();
        for service in affected {
            let name = service.name.clone();
            if let Err(error) = self.handle.upsert(service, event.clone()) {
                tracing::error!(service = name, %error, "static service refused by the store");
            }
        }
    }

    fn services(&self) -> impl Iterator<Item = &Service> {
        self.flag_services.iter().chain(&self.file_services)
    }

    /// `service` with each endpoint's state from its prober.
    fn build(&self, service: &Service) -> Service {
        let mut built = service.clone();
        for endpoint in built.ports.iter_mut().flat_map(|p| &mut p.endpoints) {
            let health = match self.probing {
                None => Health::Ready,
                Some(_) => self
                    .probers
                    .get(&Target::of(service, endpoint))
                    .map_or_else(Health::starting, |p| p.health.clone()),
            };
            (endpoint.state, endpoint.detail) = match health {
                Health::Ready => (Readiness::Ready, None),
                Health::NotReady(detail) => (Readiness::NotReady, Some(detail)),
            };
        }
        built
    }

    /// Applies probe reports until every prober has reported once, or for
    /// at most `limit`.
    pub(crate) async fn first_answers(
        &mut self,
        reports: &mut mpsc::Receiver<Report>,
        limit: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut waiting: HashSet<Target> = self.probers.keys().cloned().collect();
        while !waiting.is_empty() {
            match tokio::time::timeout_at(deadline, reports.recv()).await {
                Ok(Some(report)) => {
                    waiting.remove(&report.target);
                    self.on_report(report);
                }
                Ok(None) | Err(_) => break,
            }
        }
        if !waiting.is_empty() {
            tracing::warn!(
                endpoints = waiting.len(),
                ?limit,
                "starting without a first health answer from every endpoint"
            );
        }
    }

    /// Applies reports and file changes until the task is dropped.
    pub(crate) async fn run(
        mut self,
        mut reports: mpsc::Receiver<Report>,
        mut files: Option<mpsc::Receiver<Result<Loaded, LoadError>>>,
    ) {
        loop {
            tokio::select! {
                // Never closes: `self` holds a sender.
                Some(report) = reports.recv() => self.on_report(report),
                loaded = recv(&mut files) => match loaded {
                    Some(loaded) => self.on_file(loaded),
                    // The watcher stopped (it only does so when this task
                    // is dropped): stop listening to it.
                    None => files = None,
                },
            }
        }
    }
}

/// The next item of `files`; never resolves when there is no file.
async fn recv<T>(files: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match files {
        Some(files) => files.recv().await,
        None => std::future::pending().await,
    }
}
