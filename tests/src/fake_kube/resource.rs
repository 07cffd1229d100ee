//! The resource types the fake API server serves, and how their URLs look.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A resource type the fake API server stores and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `v1` `Service`, under `/api/v1/.../services`.
    Services,
    /// `discovery.k8s.io/v1` `EndpointSlice`, under
    /// `/apis/discovery.k8s.io/v1/.../endpointslices`.
    EndpointSlices,
    /// `gateway.networking.k8s.io/v1` `GRPCRoute` (a CRD: served only while
    /// [`FakeKube::set_grpc_routes_installed`](super::FakeKube::set_grpc_routes_installed)
    /// says so, else 404 like a cluster without the Gateway API), under
    /// `/apis/gateway.networking.k8s.io/v1/.../grpcroutes`.
    GrpcRoutes,
}

impl Resource {
    /// Every resource type served.
    pub const ALL: [Resource; 3] = [
        Resource::Services,
        Resource::EndpointSlices,
        Resource::GrpcRoutes,
    ];

    /// The URL prefix of the API group version (`/api/v1`, `/apis/<group>/<version>`).
    pub fn group_prefix(self) -> &'static str {
        match self {
            Resource::Services => "/api/v1",
            Resource::EndpointSlices => "/apis/discovery.k8s.io/v1",
            Resource::GrpcRoutes => "/apis/gateway.networking.k8s.io/v1",
        }
    }

    /// The plural name in URLs.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Services => "services",
            Resource::EndpointSlices => "endpointslices",
            Resource::GrpcRoutes => "grpcroutes",
        }
    }

    /// `apiVersion` of the objects.
    pub fn api_version(self) -> &'static str {
        match self {
            Resource::Services => "v1",
            Resource::EndpointSlices => "discovery.k8s.io/v1",
            Resource::GrpcRoutes => "gateway.networking.k8s.io/v1",
        }
    }

    /// `kind` of the objects.
    pub fn kind(self) -> &'static str {
        match self {
            Resource::Services => "Service",
            Resource::EndpointSlices => "EndpointSlice",
            Resource::GrpcRoutes => "GRPCRoute",
        }
    }

    /// `kind` of a list of the objects.
    pub fn list_kind(self) -> &'static str {
        match self {
            Resource::Services => "ServiceList",
            Resource::EndpointSlices => "EndpointSliceList",
            Resource::GrpcRoutes => "GRPCRouteList",
        }
    }

    /// Finds the resource type for a group prefix and plural name.
    pub(crate) fn from_url(prefix: &str, plural: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.group_prefix() == prefix && r.plural() == plural)
    }
}

/// A typed Kubernetes object the fake API server can store.
pub trait Stored: Serialize + DeserializeOwned {
    /// Which resource type it is.
    const RESOURCE: Resource;
}

impl Stored for Service {
    const RESOURCE: Resource = Resource::Services;
}

impl Stored for EndpointSlice {
    const RESOURCE: Resource = Resource::EndpointSlices;
}

/// Anything that turns into a storable object: the objects themselves and
/// their fixtures.
pub trait IntoStored {
    /// The object type.
    type Object: Stored;
    /// Builds the object.
    fn into_stored(self) -> Self::Object;
}

impl IntoStored for Service {
    type Object = Service;
    fn into_stored(self) -> Service {
        self
    }
}

impl IntoStored for EndpointSlice {
    type Object = EndpointSlice;
    fn into_stored(self) -> EndpointSlice {
        self
    }
}
