//! Envoy xDS v3: the resources served and the ADS protocol.
//!
//! - [`names`]: which resource names exist and what they mean.
//! - [`resources`]: the one conversion from the model to Envoy resources,
//!   done once per service change.
//! - [`wire`]: responses in wire form, each resource encoded once and its
//!   bytes shared by every stream.
//! - [`session`]: the protocol state of one ADS stream, a pure state
//!   machine (subscriptions, nonces, ACK/NACK, what to send).
//! - [`stream`]: the task that drives a session for one stream.
//! - [`server`]: the `AggregatedDiscoveryService` gRPC service, and
//!   [`body`], the response body that writes the shared bytes.
//! - [`registry`]: the connected clients, for the status API and metrics.
//! - [`admission`]: the client-certificate SAN allow-list and the stream
//!   limits, with their refusal counts.

pub mod admission;
pub mod body;
pub mod names;
pub mod registry;
pub mod resources;
pub mod server;
pub mod session;
pub mod stream;
pub mod wire;

/// The resource types served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// LDS: `envoy.config.listener.v3.Listener`.
    Listener,
    /// RDS: `envoy.config.route.v3.RouteConfiguration`.
    RouteConfiguration,
    /// CDS: `envoy.config.cluster.v3.Cluster`.
    Cluster,
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    ClusterLoadAssignment,
}

impl ResourceType {
    /// Every type, in the order a client resolves them.
    pub const ALL: [Self; 4] = [
        Self::Listener,
        Self::RouteConfiguration,
        Self::Cluster,
        Self::ClusterLoadAssignment,
    ];

    /// Position in [`ResourceType::ALL`], for per-type arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The type URL used on the wire.
    pub fn type_url(self) -> String {
        self.type_url_str().to_owned()
    }

    /// The type URL used on the wire, without allocating.
    pub fn type_url_str(self) -> &'static str {
        match self {
            Self::Listener => xds_type_urls::LISTENER,
            Self::RouteConfiguration => xds_type_urls::ROUTE_CONFIGURATION,
            Self::Cluster => xds_type_urls::CLUSTER,
            Self::ClusterLoadAssignment => xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        }
    }

    /// The type for a type URL, if it is one we serve.
    pub fn from_type_url(type_url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url_str() == type_url)
    }

    /// Whether a state-of-the-world response of this type must list every
    /// subscribed resource (Listener and Cluster), rather than only those
    /// that changed.
    pub fn is_full_state(self) -> bool {
        matches!(self, Self::Listener | Self::Cluster)
    }

    /// Short name for logs and metrics: LDS, RDS, CDS, EDS.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Listener => "LDS",
            Self::RouteConfiguration => "RDS",
            Self::Cluster => "CDS",
            Self::ClusterLoadAssignment => "EDS",
        }
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use prost::Name;

    use super::*;

    #[test]
    fn type_urls_are_the_messages_own() {
        let expected = [
            Listener::type_url(),
            RouteConfiguration::type_url(),
            Cluster::type_url(),
            ClusterLoadAssignment::type_url(),
        ];
        for (i, (kind, url)) in ResourceType::ALL.into_iter().zip(expected).enumerate() {
            assert_eq!(kind.index(), i);
            assert_eq!(kind.type_url(), url);
            assert_eq!(ResourceType::from_type_url(&url), Some(kind));
        }
        assert_eq!(
            ResourceType::from_type_url("type.googleapis.com/other"),
            None
        );
    }
}
