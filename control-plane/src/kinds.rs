//! The words the protocol and the metrics share: the resource types
//! served, why a stream was refused and why a stream ended. A leaf module,
//! so that [`crate::metrics`] counts by them without importing
//! [`crate::xds`], and the other way round.

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

/// Why a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its certificate's SANs are not allowed.
    SanNotAllowed,
    /// The total stream limit is reached.
    MaxStreams,
    /// Its own stream limit is reached.
    MaxStreamsPerPeer,
}

impl Refusal {
    /// Every reason, in declaration order (each one's index).
    pub const ALL: [Self; 3] = [
        Self::SanNotAllowed,
        Self::MaxStreams,
        Self::MaxStreamsPerPeer,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::SanNotAllowed => "client_san_not_allowed",
            Self::MaxStreams => "max_streams",
            Self::MaxStreamsPerPeer => "max_streams_per_peer",
        }
    }
}

/// Why streams end, as the metrics count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client closed or cancelled the stream, or its connection went
    /// away.
    ClientClosed,
    /// The client broke the protocol (a malformed or oversized message, an
    /// HTTP/2 error).
    ClientError,
    /// A request over the limits was refused.
    InvalidRequest,
    /// The connection reached its maximum age.
    MaxConnectionAge,
    /// The server is stopping.
    Shutdown,
}

impl EndReason {
    /// Every reason, in declaration order (each one's index).
    pub const ALL: [Self; 5] = [
        Self::ClientClosed,
        Self::ClientError,
        Self::InvalidRequest,
        Self::MaxConnectionAge,
        Self::Shutdown,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::ClientError => "client_error",
            Self::InvalidRequest => "invalid_request",
            Self::MaxConnectionAge => "max_connection_age",
            Self::Shutdown => "shutdown",
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
