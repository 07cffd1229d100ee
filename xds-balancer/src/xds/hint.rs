//! Asking the control plane why a target does not exist.
//!
//! xDS only says that a Listener is absent. Our control plane also answers
//! `controlplane.v1.ControlPlaneStatus/ExplainTarget` on the same port,
//! naming the usual mistakes (the container port instead of the Service
//! port, a multi-port Service without a port, another namespace). The
//! messages are declared here, two fields each, so that the library does not
//! link the control plane's generated stubs (`proto/proto/status.proto` is
//! the source; `tests/tests/target_mistakes.rs` calls the real control
//! plane through them).

use std::time::Duration;

use tonic::transport::Channel;

/// The method's path.
pub(crate) const EXPLAIN_TARGET: &str = "/controlplane.v1.ControlPlaneStatus/ExplainTarget";

/// `controlplane.v1.ExplainTargetRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ExplainTargetRequest {
    /// The Listener name.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
}

/// `controlplane.v1.ExplainTargetResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ExplainTargetResponse {
    /// Whether the Listener exists.
    #[prost(bool, tag = "1")]
    pub(crate) exists: bool,
    /// Why not, when it does not.
    #[prost(string, tag = "2")]
    pub(crate) reason: String,
}

/// The control plane's explanation of why `name` does not exist, if it
/// gives one (a control plane without the call gives none).
pub(crate) async fn explain(channel: Channel, name: String, limit: Duration) -> Option<String> {
    let mut grpc = tonic::client::Grpc::new(channel);
    let call = async {
        grpc.ready().await.ok()?;
        let mut request = tonic::Request::new(ExplainTargetRequest { name });
        request.set_timeout(limit);
        let response = grpc
            .unary::<_, ExplainTargetResponse, _>(
                request,
                http::uri::PathAndQuery::from_static(EXPLAIN_TARGET),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .ok()?
            .into_inner();
        (!response.exists && !response.reason.is_empty()).then_some(response.reason)
    };
    tokio::time::timeout(limit, call).await.ok().flatten()
}
