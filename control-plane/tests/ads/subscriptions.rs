//! Subscriptions over one stream: an ACK causes no resend and a NACK is
//! kept for the status API; names are added and dropped; a name that does
//! not exist is answered at once without it, and sent once it exists.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use proto::controlplane::v1::ListClientsRequest;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use tests::ads::{AdsStream, endpoints, type_url};
use tests::{bounded, channel};

use crate::LIMIT;
use crate::support::{GREETER_CLUSTER, TestServer, greeter, ready, service};

const OTHER_CLUSTER: &str = "other.default.svc.cluster.local:80";

#[tokio::test]
async fn ack_causes_no_resend_and_nack_is_kept_for_the_status_api() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![greeter(&[ready("10.0.0.1:8080")])]).await;
        let channel = channel(server.addr).await;
        let mut ads = AdsStream::open(channel.clone(), "nack-test").await;

        ads.subscribe::<Listener>(&["greeter"]).await;
        let (lds, _) = ads.recv_typed::<Listener>().await;
        ads.ack(&lds, &["greeter"]).await;
        // Always answered; had the ACK caused a resend, it would come first.
        ads.subscribe::<Cluster>(&["barrier"]).await;
        let (barrier, clusters) = ads.recv_typed::<Cluster>().await;
        assert!(clusters.is_empty());
        ads.ack(&barrier, &["barrier"]).await;

        ads.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
            .await;
        let (eds, _) = ads.recv_typed::<ClusterLoadAssignment>().await;
        ads.nack(&eds, &[GREETER_CLUSTER], "duplicate address 10.0.0.1:8080")
            .await;
        ads.subscribe::<RouteConfiguration>(&["barrier"]).await;
        let (_, routes) = ads.recv_typed::<RouteConfiguration>().await;
        assert!(routes.is_empty(), "the NACKed version is not resent");

        let clients = ControlPlaneStatusClient::new(channel.clone())
            .list_clients(ListClientsRequest {})
            .await
            .expect("ListClients")
            .into_inner()
            .clients;
        assert_eq!(clients.len(), 1);
        let client = &clients[0];
        assert_eq!(client.node_id, "nack-test");
        assert_eq!(client.user_agent, "ads-test-client");
        assert!(client.peer.starts_with("127.0.0.1:"), "{}", client.peer);
        let of = |url: String| {
            client
                .types
                .iter()
                .find(|t| t.type_url == url)
                .unwrap_or_else(|| panic!("no state for {url}"))
        };
        let eds_state = of(type_url::<ClusterLoadAssignment>());
        assert_eq!(eds_state.nack_error, "duplicate address 10.0.0.1:8080");
        assert_eq!(eds_state.nack_version, eds.version_info);
        assert_eq!(eds_state.nacks, 1);
        assert!(eds_state.nack_at_unix_ms > 0);
        assert_eq!(eds_state.acked_version, "");
        let lds_state = of(type_url::<Listener>());
        assert_eq!(lds_state.acked_version, lds.version_info);
        assert_eq!(lds_state.names, vec!["greeter"]);
        assert_eq!((lds_state.nacks, lds_state.responses_sent), (0, 1));
        assert!(
            server
                .metrics
                .encode()
                .contains(r#"control_plane_xds_nacks_total{type="EDS"} 1"#)
        );

        // A real change is sent again, with a new version.
        server
            .source()
            .upsert(greeter(&[ready("10.0.0.2:8080")]), "test")
            .unwrap();
        let (update, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        assert_ne!(update.version_info, eds.version_info);
        assert_eq!(
            endpoints(&assignments[0]),
            vec![("10.0.0.2:8080".to_owned(), HealthStatus::Healthy)]
        );
    })
    .await;
}

#[tokio::test]
async fn subscribed_names_can_be_added_and_dropped() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![
            greeter(&[ready("10.0.0.1:8080")]),
            service("other", &[ready("10.0.1.1:8080")]),
        ])
        .await;
        let mut ads = AdsStream::open(channel(server.addr).await, "names").await;
        let names = |listeners: Vec<Listener>| -> Vec<String> {
            listeners.into_iter().map(|l| l.name).collect()
        };

        ads.subscribe::<Listener>(&["greeter"]).await;
        let (first, listeners) = ads.recv_typed::<Listener>().await;
        assert_eq!(names(listeners), vec!["greeter"]);
        ads.ack(&first, &["greeter", "other.default"]).await;
        let (added, listeners) = ads.recv_typed::<Listener>().await;
        assert_eq!(names(listeners), vec!["greeter", "other.default"]);
        ads.ack(&added, &["other.default"]).await;
        let (dropped, listeners) = ads.recv_typed::<Listener>().await;
        assert_eq!(
            names(listeners),
            vec!["other.default"],
            "full set, greeter gone"
        );
        ads.ack(&dropped, &["other.default"]).await;

        // Assignments: a new name brings just that one; a dropped one's
        // changes are no longer sent.
        ads.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
            .await;
        let (eds, _) = ads.recv_typed::<ClusterLoadAssignment>().await;
        ads.ack(&eds, &[GREETER_CLUSTER, OTHER_CLUSTER]).await;
        let (eds, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        let carried: Vec<_> = assignments
            .iter()
            .map(|a| a.cluster_name.as_str())
            .collect();
        assert_eq!(carried, vec![OTHER_CLUSTER]);
        ads.ack(&eds, &[OTHER_CLUSTER]).await;
        let (eds, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        assert!(assignments.is_empty(), "a drop is answered at once");
        ads.ack(&eds, &[OTHER_CLUSTER]).await;

        server
            .source()
            .upsert(greeter(&[ready("10.0.0.9:8080")]), "test")
            .unwrap();
        ads.subscribe::<RouteConfiguration>(&["barrier"]).await;
        let (barrier, _) = ads.recv_typed::<RouteConfiguration>().await;
        assert!(barrier.resources.is_empty(), "nothing for the dropped name");
    })
    .await;
}

#[tokio::test]
async fn an_unknown_listener_is_answered_within_a_second_without_it() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![greeter(&[ready("10.0.0.1:8080")])]).await;
        let mut ads = AdsStream::open(channel(server.addr).await, "unknown").await;
        ads.subscribe::<Listener>(&["nope"]).await;
        let response = tokio::time::timeout(Duration::from_secs(1), ads.next())
            .await
            .expect("answered within 1 s")
            .expect("stream healthy")
            .expect("a response");
        assert_eq!(response.type_url, type_url::<Listener>());
        assert!(response.resources.is_empty());

        // Once it exists, the subscription delivers it.
        server
            .source()
            .upsert(service("nope", &[ready("10.0.2.1:8080")]), "test")
            .unwrap();
        let (_, listeners) = ads.recv_typed::<Listener>().await;
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].name, "nope");
    })
    .await;
}
