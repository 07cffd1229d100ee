//! The middle steps: does the service exist in the control plane's
//! namespace, is the port a Service port, and how many of its endpoints are
//! ready, not ready or draining, and why.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use proto::controlplane::v1 as pb;
use xds_balancer::{
    Channel, ConnectionState, EndpointHealth, EndpointSet, EndpointState, ServiceStatus, Target,
};

use super::cause::Cause;
use super::control_plane::StatusApi;
use super::verdict::{Check, Counts, Diagnosis, Outcome};

/// An endpoint to look at closely.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub(crate) addr: SocketAddr,
    /// `pod (address)`, or the address.
    pub(crate) label: String,
    pub(crate) health: EndpointHealth,
    /// The control plane's word on its state (probe detail, EndpointSlice
    /// conditions), when it gives one.
    pub(crate) detail: String,
    /// The channel's connection to it.
    pub(crate) connection: ConnectionState,
    /// The channel's last connection error.
    pub(crate) last_error: Option<String>,
    pub(crate) zone: String,
}

/// A resolved service: whether its Cluster asks for TLS, and its endpoints
/// (ready first, then draining, then not ready).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) tls: bool,
    pub(crate) endpoints: Vec<Subject>,
}

/// Waits (up to `timeout`) for the channel to resolve the target and try
/// every ready endpoint once; adds the service, port and endpoint count
/// rows. `None` when one of them failed.
pub(crate) async fn resolve(
    channel: &Channel,
    api: Option<&StatusApi>,
    target: &Target,
    timeout: Duration,
    diagnosis: &mut Diagnosis,
) -> Option<Resolved> {
    let mut view = channel.endpoints();
    let done = |set: &EndpointSet| match &set.service {
        ServiceStatus::Resolved { .. } => !set
            .endpoints
            .iter()
            .any(|e| e.connection == ConnectionState::Connecting),
        ServiceStatus::Waiting(_) => false,
        _ => true,
    };
    let waited = tokio::time::timeout(timeout, view.wait_for(done))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|set| set.clone());
    let set = waited.unwrap_or_else(|| view.borrow().clone());
    let service_name = target.host().split('.').next().unwrap_or_default();
    let tls = match &set.service {
        ServiceStatus::Resolved { tls, .. } => *tls,
        ServiceStatus::Waiting(what) => {
            diagnosis.push(Check::fail(
                "service",
                target.name(),
                Cause::ControlPlaneNoAnswer,
                format!("the control plane sent no {what} within {timeout:?}"),
            ));
            return None;
        }
        ServiceStatus::DoesNotExist(what) => {
            diagnosis.push(not_found(api, target, what).await);
            return None;
        }
        ServiceStatus::Unusable(why) => {
            diagnosis.push(Check::fail(
                "service",
                target.name(),
                Cause::ServiceUnusable,
                why.clone(),
            ));
            return None;
        }
        other => {
            diagnosis.push(Check::fail(
                "service",
                target.name(),
                Cause::ServiceUnusable,
                format!("{other:?}"),
            ));
            return None;
        }
    };
    let services = match api {
        Some(api) => api.services().await.unwrap_or_default(),
        None => Vec::new(),
    };
    let service = services.iter().find(|s| s.name == service_name);
    let port = service.and_then(|s| port_of(s, target.name()));
    diagnosis.push(Check::new(
        "service",
        target.host(),
        Outcome::Ok,
        match service {
            Some(s) => format!(
                "exists in namespace {}; ports: {}{}",
                s.namespace,
                ports_text(s),
                if tls { "; TLS" } else { "" }
            ),
            None => "exists".to_owned(),
        },
    ));
    diagnosis.push(Check::new(
        "port",
        target.name(),
        Outcome::Ok,
        match port {
            Some(p) => {
                let mut targets: Vec<u32> = p.endpoints.iter().map(|e| e.port).collect();
                targets.sort_unstable();
                targets.dedup();
                let targets: Vec<String> = targets.iter().map(u32::to_string).collect();
                match targets.as_slice() {
                    [] => format!("Service port {}", port_text(p)),
                    _ => format!(
                        "Service port {}; the pods listen on {}",
                        port_text(p),
                        targets.join(", ")
                    ),
                }
            }
            None => "a Service port".to_owned(),
        },
    ));
    let details: HashMap<String, &pb::Endpoint> = port
        .map(|p| {
            p.endpoints
                .iter()
                .map(|e| (endpoint_key(&e.address, e.port), e))
                .collect()
        })
        .unwrap_or_default();
    let mut endpoints: Vec<Subject> = set
        .endpoints
        .iter()
        .filter_map(|e| subject(e, &details))
        .collect();
    endpoints.sort_by_key(|e| match e.health {
        EndpointHealth::Healthy => 0,
        EndpointHealth::Draining => 1,
        _ => 2,
    });
    let counts = count(&endpoints);
    diagnosis.counts = Some(counts);
    diagnosis.push(endpoint_counts(target.name(), counts, &endpoints));
    Some(Resolved { tls, endpoints })
}

/// The failed check for a target that does not exist, with the control
/// plane's explanation when it gives one.
async fn not_found(api: Option<&StatusApi>, target: &Target, what: &str) -> Check {
    let explained = match api {
        Some(api) => api.explain(target.name()).await.ok(),
        None => None,
    };
    let Some(explained) = explained.filter(|e| !e.exists && !e.reason.is_empty()) else {
        return Check::fail(
            "service",
            target.host(),
            Cause::UnknownService,
            format!("the control plane has no {what}"),
        );
    };
    let problem = pb::TargetProblem::try_from(explained.problem).unwrap_or_default();
    let (step, subject, cause) = match problem {
        pb::TargetProblem::OtherNamespace => ("service", target.host(), Cause::OtherNamespace),
        pb::TargetProblem::NotAServiceName => ("service", target.host(), Cause::NotAServiceName),
        pb::TargetProblem::PortRequired => ("port", target.name(), Cause::PortRequired),
        pb::TargetProblem::ContainerPort | pb::TargetProblem::NoSuchPort => {
            ("port", target.name(), Cause::WrongPort)
        }
        pb::TargetProblem::UnknownService | pb::TargetProblem::Unspecified => {
            ("service", target.host(), Cause::UnknownService)
        }
    };
    Check::fail(step, subject, cause, explained.reason)
}

/// The Service port a Listener name (`svc:80`, `svc:grpc`, `svc`) means.
fn port_of<'a>(service: &'a pb::Service, name: &str) -> Option<&'a pb::ServicePort> {
    match name.rsplit_once(':') {
        Some((_, port)) => service
            .ports
            .iter()
            .find(|p| p.port.to_string() == port || (!p.name.is_empty() && p.name == port)),
        None => match service.ports.as_slice() {
            [only] => Some(only),
            _ => None,
        },
    }
}

fn port_text(port: &pb::ServicePort) -> String {
    if port.name.is_empty() {
        port.port.to_string()
    } else {
        format!("{} ({})", port.port, port.name)
    }
}

fn ports_text(service: &pb::Service) -> String {
    let ports: Vec<String> = service.ports.iter().map(port_text).collect();
    ports.join(", ")
}

/// `ip:port` as a socket address prints it.
fn endpoint_key(address: &str, port: u32) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, u16::try_from(port).unwrap_or_default()).to_string(),
        Err(_) => format!("{address}:{port}"),
    }
}

/// An endpoint the control plane lists (not one whose connection is only
/// closing), with the control plane's detail.
fn subject(state: &EndpointState, details: &HashMap<String, &pb::Endpoint>) -> Option<Subject> {
    let health = state.health?;
    let known = details.get(&state.addr.to_string());
    let instance = match state.hostname.as_str() {
        "" => known.map(|e| e.instance.clone()).unwrap_or_default(),
        name => name.to_owned(),
    };
    Some(Subject {
        addr: state.addr,
        label: if instance.is_empty() {
            state.addr.to_string()
        } else {
            format!("{instance} ({})", state.addr)
        },
        health,
        detail: known.map(|e| e.detail.clone()).unwrap_or_default(),
        connection: state.connection,
        last_error: state.last_error.clone(),
        zone: state.zone.clone(),
    })
}

fn count(endpoints: &[Subject]) -> Counts {
    let mut counts = Counts::default();
    for e in endpoints {
        match e.health {
            EndpointHealth::Healthy => counts.ready += 1,
            EndpointHealth::Draining => counts.draining += 1,
            _ => counts.not_ready += 1,
        }
    }
    counts
}

/// The `endpoints` row: fails with none ready, warns with some not ready.
fn endpoint_counts(name: &str, counts: Counts, endpoints: &[Subject]) -> Check {
    let mut detail = format!(
        "{} ready, {} not ready, {} draining",
        counts.ready, counts.not_ready, counts.draining
    );
    let why: Vec<String> = endpoints
        .iter()
        .filter(|e| e.health != EndpointHealth::Healthy)
        .map(|e| match e.detail.as_str() {
            "" => format!("{}: {}", e.label, state_word(e.health)),
            why => format!("{}: {why}", e.label),
        })
        .collect();
    if !why.is_empty() {
        detail.push_str(&format!(" ({})", why.join("; ")));
    }
    if endpoints.is_empty() {
        Check::fail("endpoints", name, Cause::NoEndpoints, detail)
    } else if counts.ready == 0 {
        Check::fail("endpoints", name, Cause::NoReadyEndpoints, detail)
    } else if counts.not_ready + counts.draining > 0 {
        Check::new("endpoints", name, Outcome::Warn, detail)
    } else {
        Check::new("endpoints", name, Outcome::Ok, detail)
    }
}

/// `ready`, `draining`, `not ready`.
pub(crate) fn state_word(health: EndpointHealth) -> &'static str {
    match health {
        EndpointHealth::Healthy => "ready",
        EndpointHealth::Draining => "draining",
        _ => "not ready",
    }
}
