//! The `controlplane.v1.ControlPlaneStatus` gRPC service: a read-only view
//! of the store and the connected clients.

use std::sync::Arc;
use std::time::SystemTime;

use common::incoming::ConnInfo;
use proto::controlplane::v1 as pb;
use proto::controlplane::v1::control_plane_status_server::{
    ControlPlaneStatus, ControlPlaneStatusServer,
};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use super::convert;
use crate::store::Store;
use crate::xds::admission::Admission;
use crate::xds::registry::Registry;

/// The status service.
#[derive(Debug, Clone)]
pub struct StatusService {
    store: Arc<Store>,
    registry: Arc<Registry>,
    admission: Arc<Admission>,
    transport: &'static str,
}

impl StatusService {
    /// Reports on `store`, the clients in `registry` and the refusals of
    /// `admission`; `transport` says how the port is secured ("plaintext",
    /// "tls", "mtls").
    pub fn new(
        store: Arc<Store>,
        registry: Arc<Registry>,
        admission: Arc<Admission>,
        transport: &'static str,
    ) -> Self {
        Self {
            store,
            registry,
            admission,
            transport,
        }
    }

    /// The tonic service; callers whose certificate is not allowed are
    /// refused like ADS clients.
    pub fn into_server(self) -> InterceptedService<ControlPlaneStatusServer<Self>, IdentityCheck> {
        let check = IdentityCheck(self.admission.clone());
        ControlPlaneStatusServer::with_interceptor(self, check)
    }
}

/// Refuses calls whose client certificate the allow-list rejects.
#[derive(Debug, Clone)]
pub struct IdentityCheck(Arc<Admission>);

impl Interceptor for IdentityCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.0
            .check_identity(request.extensions().get::<ConnInfo>())
            .map(|()| request)
    }
}

#[tonic::async_trait]
impl ControlPlaneStatus for StatusService {
    async fn get_info(
        &self,
        _request: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::Info>, Status> {
        let catalog = self.store.catalog();
        let mut info = convert::info(
            &self.store,
            &catalog,
            self.registry.len(),
            SystemTime::now(),
        );
        info.transport = self.transport.to_owned();
        info.refusals = Some(convert::refusals(&self.admission.counts()));
        Ok(Response::new(info))
    }

    async fn list_services(
        &self,
        _request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let catalog = self.store.catalog();
        let services = catalog
            .services
            .values()
            .map(|entry| convert::service(&self.store, entry))
            .collect();
        Ok(Response::new(pb::ListServicesResponse { services }))
    }

    async fn list_clients(
        &self,
        _request: Request<pb::ListClientsRequest>,
    ) -> Result<Response<pb::ListClientsResponse>, Status> {
        let clients = self
            .registry
            .views()
            .await
            .iter()
            .map(convert::client)
            .collect();
        Ok(Response::new(pb::ListClientsResponse { clients }))
    }

    async fn list_routes(
        &self,
        _request: Request<pb::ListRoutesRequest>,
    ) -> Result<Response<pb::ListRoutesResponse>, Status> {
        let catalog = self.store.catalog();
        Ok(Response::new(convert::routes(&catalog.routes)))
    }

    async fn explain_target(
        &self,
        request: Request<pb::ExplainTargetRequest>,
    ) -> Result<Response<pb::ExplainTargetResponse>, Status> {
        let name = request.into_inner().name;
        if name.len() > 1024 {
            return Err(Status::invalid_argument(
                "the name is longer than 1024 bytes",
            ));
        }
        let catalog = self.store.catalog();
        if !catalog.synced {
            return Err(Status::unavailable(
                "the control plane has not completed its first sync with its source yet",
            ));
        }
        let explanation = super::explain::explain(self.store.naming(), &catalog.services, &name);
        Ok(Response::new(match explanation {
            None => pb::ExplainTargetResponse {
                exists: true,
                ..Default::default()
            },
            Some(explanation) => pb::ExplainTargetResponse {
                exists: false,
                reason: explanation.reason,
                problem: explanation.problem.into(),
            },
        }))
    }
}
