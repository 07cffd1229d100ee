//! The `controlplane.v1.ControlPlaneStatus` gRPC service: a read-only view
//! of the store and the connected clients.

use std::sync::Arc;
use std::time::SystemTime;

use proto::controlplane::v1 as pb;
use proto::controlplane::v1::control_plane_status_server::{
    ControlPlaneStatus, ControlPlaneStatusServer,
};
use tonic::{Request, Response, Status};

use super::convert;
use crate::store::Store;
use crate::xds::registry::Registry;

/// The status service.
#[derive(Debug, Clone)]
pub struct StatusService {
    store: Arc<Store>,
    registry: Arc<Registry>,
}

impl StatusService {
    /// Reports on `store` and the clients in `registry`.
    pub fn new(store: Arc<Store>, registry: Arc<Registry>) -> Self {
        Self { store, registry }
    }

    /// The tonic service.
    pub fn into_server(self) -> ControlPlaneStatusServer<Self> {
        ControlPlaneStatusServer::new(self)
    }
}

#[tonic::async_trait]
impl ControlPlaneStatus for StatusService {
    async fn get_info(
        &self,
        _request: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::Info>, Status> {
        let snapshot = self.store.snapshot();
        Ok(Response::new(convert::info(
            &self.store,
            &snapshot,
            self.registry.len(),
            SystemTime::now(),
        )))
    }

    async fn list_services(
        &self,
        _request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let snapshot = self.store.snapshot();
        let services = snapshot
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
        let clients = self.registry.views().iter().map(convert::client).collect();
        Ok(Response::new(pb::ListClientsResponse { clients }))
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
        let snapshot = self.store.snapshot();
        if !snapshot.synced {
            return Err(Status::unavailable(
                "the control plane has not completed its first sync with its source yet",
            ));
        }
        let reason = super::explain::explain(self.store.naming(), &snapshot.services, &name);
        Ok(Response::new(pb::ExplainTargetResponse {
            exists: reason.is_none(),
            reason: reason.unwrap_or_default(),
        }))
    }
}
