//! Fluent fixtures for the objects the control plane watches.
//!
//! ```
//! use tests::fake_kube::{EndpointSliceFixture, EndpointState, ServiceFixture};
//!
//! let service = ServiceFixture::new("greeter").port("grpc", 80, "grpc").build();
//! let slice = EndpointSliceFixture::for_service("greeter")
//!     .port("grpc", 8080)
//!     .endpoint("10.0.0.1", EndpointState::Ready)
//!     .endpoint("10.0.0.2", EndpointState::Terminating)
//!     .build();
//! # let _ = (service, slice);
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::{ObjectReference, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::resource::IntoStored;

/// The namespace fixtures use unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service port's `targetPort`: a number, or a container port name that
/// each EndpointSlice resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    /// A port number.
    Number(i32),
    /// A named container port.
    Name(String),
}

impl From<i32> for TargetPort {
    fn from(port: i32) -> Self {
        TargetPort::Number(port)
    }
}

impl From<&str> for TargetPort {
    fn from(name: &str) -> Self {
        TargetPort::Name(name.to_owned())
    }
}

/// Builds a `v1` Service; by default ClusterIP, selecting `app=<name>`, in
/// [`DEFAULT_NAMESPACE`], with no ports.
#[derive(Debug, Clone)]
pub struct ServiceFixture {
    service: Service,
}

impl ServiceFixture {
    /// A Service named `name`.
    pub fn new(name: &str) -> Self {
        let service = Service {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(DEFAULT_NAMESPACE.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                cluster_ip: Some("10.96.0.10".into()),
                selector: Some(BTreeMap::from([("app".to_owned(), name.to_owned())])),
                ports: Some(Vec::new()),
                ..ServiceSpec::default()
            }),
            status: None,
        };
        Self { service }
    }

    fn spec(&mut self) -> &mut ServiceSpec {
        self.service.spec.get_or_insert_with(ServiceSpec::default)
    }

    /// In namespace `namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.service.metadata.namespace = Some(namespace.to_owned());
        self
    }

    /// Adds a named TCP port `port` forwarding to `target`.
    #[must_use]
    pub fn port(mut self, name: &str, port: i32, target: impl Into<TargetPort>) -> Self {
        self.push_port(Some(name), port, target.into());
        self
    }

    /// Adds an unnamed TCP port (valid only as a Service's single port).
    #[must_use]
    pub fn unnamed_port(mut self, port: i32, target: impl Into<TargetPort>) -> Self {
        self.push_port(None, port, target.into());
        self
    }

    fn push_port(&mut self, name: Option<&str>, port: i32, target: TargetPort) {
        let target_port = match target {
            TargetPort::Number(n) => IntOrString::Int(n),
            TargetPort::Name(s) => IntOrString::String(s),
        };
        self.spec()
            .ports
            .get_or_insert_with(Vec::new)
            .push(ServicePort {
                name: name.map(str::to_owned),
                port,
                protocol: Some("TCP".into()),
                target_port: Some(target_port),
                ..ServicePort::default()
            });
    }

    /// Replaces the selector with `key=value`.
    #[must_use]
    pub fn selector(mut self, key: &str, value: &str) -> Self {
        self.spec().selector = Some(BTreeMap::from([(key.to_owned(), value.to_owned())]));
        self
    }

    /// No selector: its EndpointSlices are made by hand.
    #[must_use]
    pub fn without_selector(mut self) -> Self {
        self.spec().selector = None;
        self
    }

    /// Headless (`clusterIP: None`).
    #[must_use]
    pub fn headless(mut self) -> Self {
        self.spec().cluster_ip = Some("None".into());
        self
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.service
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds an annotation.
    #[must_use]
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.service
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// The Service.
    pub fn build(self) -> Service {
        self.service
    }
}

impl IntoStored for ServiceFixture {
    type Object = Service;
    fn into_stored(self) -> Service {
        self.build()
    }
}

/// The conditions of an endpoint, as the EndpointSlice controller sets them
/// from pod readiness and deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointState {
    /// `ready`, `serving`, not `terminating`.
    Ready,
    /// Running but failing its readiness probe: not `ready`, not `serving`.
    NotReady,
    /// Being deleted but still passing readiness: `serving` and
    /// `terminating`, not `ready`.
    Terminating,
    /// Being deleted and no longer serving.
    TerminatingNotServing,
}

impl EndpointState {
    /// The `conditions` field for this state.
    pub fn conditions(self) -> EndpointConditions {
        let (ready, serving, terminating) = match self {
            EndpointState::Ready => (true, true, false),
            EndpointState::NotReady => (false, false, false),
            EndpointState::Terminating => (false, true, true),
            EndpointState::TerminatingNotServing => (false, false, true),
        };
        EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }
    }
}

/// One endpoint of a slice: a pod address, its state, zone and pod name.
#[derive(Debug, Clone)]
pub struct EndpointFixture {
    endpoint: Endpoint,
}

impl EndpointFixture {
    /// A ready endpoint at `address`.
    pub fn new(address: &str) -> Self {
        Self {
            endpoint: Endpoint {
                addresses: vec![address.to_owned()],
                conditions: Some(EndpointState::Ready.conditions()),
                ..Endpoint::default()
            },
        }
    }

    /// In state `state`.
    #[must_use]
    pub fn state(mut self, state: EndpointState) -> Self {
        self.endpoint.conditions = Some(state.conditions());
        self
    }

    /// In zone `zone`.
    #[must_use]
    pub fn zone(mut self, zone: &str) -> Self {
        self.endpoint.zone = Some(zone.to_owned());
        self
    }

    /// Backed by pod `name` (sets `targetRef`).
    #[must_use]
    pub fn pod(mut self, name: &str) -> Self {
        self.endpoint.target_ref = Some(ObjectReference {
            kind: Some("Pod".into()),
            name: Some(name.to_owned()),
            ..ObjectReference::default()
        });
        self
    }

    /// On node `name`.
    #[must_use]
    pub fn node(mut self, name: &str) -> Self {
        self.endpoint.node_name = Some(name.to_owned());
        self
    }

    /// The endpoint.
    pub fn build(self) -> Endpoint {
        self.endpoint
    }
}

static SLICE_COUNTER: AtomicU64 = AtomicU64::new(1);

/// Builds a `discovery.k8s.io/v1` EndpointSlice labelled for its Service.
#[derive(Debug, Clone)]
pub struct EndpointSliceFixture {
    slice: EndpointSlice,
    address_type: Option<String>,
}

impl EndpointSliceFixture {
    /// A slice of Service `service`, with a unique name `<service>-<n>`, in
    /// [`DEFAULT_NAMESPACE`], with no ports and no endpoints.
    pub fn for_service(service: &str) -> Self {
        let n = SLICE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let labels = BTreeMap::from([
            (SERVICE_NAME_LABEL.to_owned(), service.to_owned()),
            (
                "endpointslice.kubernetes.io/managed-by".to_owned(),
                "endpointslice-controller.k8s.io".to_owned(),
            ),
        ]);
        let slice = EndpointSlice {
            address_type: String::new(),
            endpoints: Vec::new(),
            metadata: ObjectMeta {
                name: Some(format!("{service}-{n}")),
                namespace: Some(DEFAULT_NAMESPACE.to_owned()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            ports: Some(Vec::new()),
        };
        Self {
            slice,
            address_type: None,
        }
    }

    /// Named `name` instead.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.slice.metadata.name = Some(name.to_owned());
        self
    }

    /// In namespace `namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.slice.metadata.namespace = Some(namespace.to_owned());
        self
    }

    /// Adds a named TCP port.
    #[must_use]
    pub fn port(mut self, name: &str, port: i32) -> Self {
        self.push_port(Some(name), port);
        self
    }

    /// Adds an unnamed TCP port (what a Service port without a name gets).
    #[must_use]
    pub fn unnamed_port(mut self, port: i32) -> Self {
        self.push_port(None, port);
        self
    }

    fn push_port(&mut self, name: Option<&str>, port: i32) {
        self.slice
            .ports
            .get_or_insert_with(Vec::new)
            .push(EndpointPort {
                name: name.map(str::to_owned),
                port: Some(port),
                protocol: Some("TCP".into()),
                app_protocol: None,
            });
    }

    /// Adds an endpoint at `address` in state `state`.
    #[must_use]
    pub fn endpoint(self, address: &str, state: EndpointState) -> Self {
        self.endpoint_with(EndpointFixture::new(address).state(state))
    }

    /// Adds an endpoint built with [`EndpointFixture`].
    #[must_use]
    pub fn endpoint_with(mut self, endpoint: EndpointFixture) -> Self {
        self.slice.endpoints.push(endpoint.build());
        self
    }

    /// Adds `count` endpoints in state `state` at consecutive IPv4
    /// addresses from `first`.
    #[must_use]
    pub fn endpoints_from(mut self, first: Ipv4Addr, count: u32, state: EndpointState) -> Self {
        let start = u32::from(first);
        for i in 0..count {
            let address = Ipv4Addr::from(start + i).to_string();
            self = self.endpoint(&address, state);
        }
        self
    }

    /// Sets `addressType` (default: IPv6 when the first endpoint's address
    /// has a colon, else IPv4).
    #[must_use]
    pub fn address_type(mut self, address_type: &str) -> Self {
        self.address_type = Some(address_type.to_owned());
        self
    }

    /// Adds or replaces a label.
    #[must_use]
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.slice
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Without the `kubernetes.io/service-name` label (belongs to no Service).
    #[must_use]
    pub fn without_service_label(mut self) -> Self {
        if let Some(labels) = &mut self.slice.metadata.labels {
            labels.remove(SERVICE_NAME_LABEL);
        }
        self
    }

    /// The EndpointSlice.
    pub fn build(mut self) -> EndpointSlice {
        self.slice.address_type = self.address_type.unwrap_or_else(|| {
            let first = self
                .slice
                .endpoints
                .first()
                .and_then(|e| e.addresses.first());
            if first.is_some_and(|a| a.contains(':')) {
                "IPv6".into()
            } else {
                "IPv4".into()
            }
        });
        self.slice
    }
}

impl IntoStored for EndpointSliceFixture {
    type Object = EndpointSlice;
    fn into_stored(self) -> EndpointSlice {
        self.build()
    }
}
