//! What subscribers see as pods and Services change: readiness, many
//! endpoints over several slices, a deleted Service, other namespaces.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use std::time::Duration;

use prost::Name;
use proto::controlplane::v1 as pb;
use serde_json::Value;
use tests::ads::{AdsStream, decode};
use tests::fake_kube::{
    EndpointFixture, EndpointSliceFixture, EndpointState, FakeKube, ServiceFixture, Verb,
};
use tests::{bounded, channel};

use crate::harness::{
    ControlPlane, GREETER_CLUSTER, LIMIT, SYNCED, Subscriber, WAIT, apply_greeter_150, greeter_150,
    healthy, in_rotation,
};

fn greeter_slice(name: &str) -> EndpointSliceFixture {
    EndpointSliceFixture::for_service("greeter")
        .name(name)
        .port("grpc", 8080)
}

#[tokio::test]
async fn an_endpoint_follows_its_pod_ready_unready_and_terminating() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(
            greeter_slice("greeter-a").endpoint_with(
                EndpointFixture::new("10.0.0.1")
                    .pod("greeter-1")
                    .zone("zone-a"),
            ),
        );
        let control_plane = ControlPlane::synced(&kube, "default").await;
        let mut sub = Subscriber::eds(control_plane.addr, "readiness", GREETER_CLUSTER).await;
        sub.until("the first pod", |e| *e == healthy(["10.0.0.1:8080"]))
            .await;

        // A new pod that is not ready yet: known to the control plane, not served.
        kube.add_endpoint(
            "default",
            "greeter-a",
            EndpointFixture::new("10.0.0.2")
                .state(EndpointState::NotReady)
                .pod("greeter-2"),
        );
        let pending =
            wait_for_endpoint(&control_plane, "10.0.0.2", pb::EndpointState::NotReady).await;
        assert_eq!(pending.instance, "greeter-2", "{pending:?}");

        kube.set_endpoint_state("default", "greeter-a", "10.0.0.2", EndpointState::Ready);
        sub.until("the pod ready", |e| {
            *e == healthy(["10.0.0.1:8080", "10.0.0.2:8080"])
        })
        .await;
        let before_ready = sub.seen.len() - 1;
        for seen in &sub.seen[..before_ready] {
            assert_eq!(in_rotation(seen), ["10.0.0.1:8080"], "before it was ready");
            assert!(
                !seen
                    .iter()
                    .any(|(a, h)| a == "10.0.0.2:8080" && *h != HealthStatus::Unhealthy),
                "{seen:?}"
            );
        }

        kube.set_endpoint_state("default", "greeter-a", "10.0.0.2", EndpointState::NotReady);
        let unready = sub
            .until("the pod unready", |e| in_rotation(e) == ["10.0.0.1:8080"])
            .await;
        assert!(
            !unready
                .iter()
                .any(|(a, h)| a == "10.0.0.2:8080" && *h != HealthStatus::Unhealthy),
            "{unready:?}"
        );

        kube.set_endpoint_state("default", "greeter-a", "10.0.0.2", EndpointState::Ready);
        sub.until("the pod ready again", |e| in_rotation(e).len() == 2)
            .await;
        kube.set_endpoint_state(
            "default",
            "greeter-a",
            "10.0.0.1",
            EndpointState::Terminating,
        );
        let draining = sub
            .until("the other pod terminating", |e| {
                e.contains(&("10.0.0.1:8080".to_owned(), HealthStatus::Draining))
            })
            .await;
        assert_eq!(
            draining,
            [
                ("10.0.0.1:8080".to_owned(), HealthStatus::Draining),
                ("10.0.0.2:8080".to_owned(), HealthStatus::Healthy),
            ]
        );
        kube.set_endpoint_state(
            "default",
            "greeter-a",
            "10.0.0.1",
            EndpointState::TerminatingNotServing,
        );
        let stopped = sub
            .until("the terminating pod stopped serving", |e| {
                !e.contains(&("10.0.0.1:8080".to_owned(), HealthStatus::Draining))
            })
            .await;
        assert_eq!(in_rotation(&stopped), ["10.0.0.2:8080"], "{stopped:?}");
    })
    .await;
}

/// Polls the status API until endpoint `address` of greeter is in `state`;
/// returns it.
async fn wait_for_endpoint(
    control_plane: &ControlPlane,
    address: &str,
    state: pb::EndpointState,
) -> pb::Endpoint {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let services = control_plane.services().await;
        let found = services
            .iter()
            .filter(|s| s.name == "greeter")
            .flat_map(|s| &s.ports)
            .flat_map(|p| &p.endpoints)
            .find(|e| e.address == address && e.state == state as i32);
        if let Some(endpoint) = found {
            return endpoint.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{address} never {state:?} in: {services:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_hundred_and_fifty_endpoints_over_two_slices_are_served_once_each() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        apply_greeter_150(&kube);
        let control_plane = ControlPlane::synced(&kube, "default").await;
        let mut sub = Subscriber::eds(control_plane.addr, "many", GREETER_CLUSTER).await;
        let served = sub.until("the assignment", |e| !e.is_empty()).await;

        assert_eq!(served.len(), 150);
        assert_eq!(served, greeter_150(), "every pod, each once, all healthy");
        let shared = served.iter().filter(|(a, _)| a.starts_with("10.0.0.1:"));
        assert_eq!(shared.count(), 1, "10.0.0.1 is in two slices");
        // The named targetPort resolved per slice: 8080 in one, 9090 in the other.
        assert!(served.iter().any(|(a, _)| a == "10.0.0.75:8080"));
        assert!(served.iter().any(|(a, _)| a == "10.0.1.75:9090"));
        assert!(
            !served
                .iter()
                .any(|(a, _)| a.starts_with("10.0.1.") && a.ends_with(":8080"))
        );
    })
    .await;
}

#[tokio::test]
async fn a_deleted_service_loses_its_listener_and_cluster() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(greeter_slice("greeter-a").endpoint("10.0.0.1", EndpointState::Ready));
        kube.apply(ServiceFixture::new("billing").port("grpc", 80, 9000));
        let control_plane = ControlPlane::synced(&kube, "default").await;
        let mut ads = AdsStream::open(channel(control_plane.addr).await, "deletion").await;
        let listeners = ["greeter", "billing"];
        let clusters = [GREETER_CLUSTER, "billing.default.svc.cluster.local:80"];
        ads.subscribe::<Listener>(&listeners).await;
        let (lds, found) = ads.recv_typed::<Listener>().await;
        assert_eq!(names(&found, |l| &l.name), ["billing", "greeter"]);
        ads.ack(&lds, &listeners).await;
        ads.subscribe::<Cluster>(&clusters).await;
        let (cds, found) = ads.recv_typed::<Cluster>().await;
        assert_eq!(found.len(), 2);
        ads.ack(&cds, &clusters).await;

        assert!(kube.delete_service("default", "greeter"));
        let (mut listeners_left, mut clusters_left) = (None, None);
        while listeners_left.is_none() || clusters_left.is_none() {
            let response = ads.recv().await;
            if response.type_url == Listener::type_url() {
                let found = decode::<Listener>(&response);
                listeners_left = Some(names(&found, |l| &l.name));
                ads.ack(&response, &listeners).await;
            } else if response.type_url == Cluster::type_url() {
                let found = decode::<Cluster>(&response);
                clusters_left = Some(names(&found, |c| &c.name));
                ads.ack(&response, &clusters).await;
            } else {
                panic!("unexpected response: {response:?}");
            }
        }
        assert_eq!(listeners_left.unwrap(), ["billing"]);
        assert_eq!(
            clusters_left.unwrap(),
            ["billing.default.svc.cluster.local:80"]
        );
    })
    .await;
}

fn names<T>(resources: &[T], name: impl Fn(&T) -> &String) -> Vec<String> {
    let mut names: Vec<String> = resources.iter().map(|r| name(r).clone()).collect();
    names.sort();
    names
}

/// The control plane serves the namespace it found in POD_NAMESPACE (no
/// --namespace), asks the API server only about that namespace, and only
/// with `list` and `watch` (what a namespaced Role grants).
#[tokio::test]
async fn objects_of_other_namespaces_never_appear() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(
            ServiceFixture::new("greeter")
                .namespace("team-a")
                .port("grpc", 80, "grpc"),
        );
        kube.apply(
            greeter_slice("greeter-a")
                .namespace("team-a")
                .endpoint("10.1.0.1", EndpointState::Ready),
        );
        // Look-alikes elsewhere: the same Service name, slices labelled for
        // it, a Service team-a lacks.
        for namespace in ["default", "team-b"] {
            kube.apply(
                ServiceFixture::new("greeter")
                    .namespace(namespace)
                    .port("grpc", 80, "grpc"),
            );
            kube.apply(
                greeter_slice(&format!("greeter-{namespace}"))
                    .namespace(namespace)
                    .endpoint("10.9.9.9", EndpointState::Ready),
            );
            kube.apply(
                ServiceFixture::new("intruder")
                    .namespace(namespace)
                    .port("grpc", 80, 80),
            );
        }
        let mut control_plane =
            ControlPlane::start(&kube, &[], &[("POD_NAMESPACE", "team-a")]).await;
        control_plane.process.wait_for_log(SYNCED, WAIT).await;

        let cluster = "greeter.team-a.svc.cluster.local:80";
        let mut sub = Subscriber::eds(control_plane.addr, "namespaces", cluster).await;
        sub.until("team-a's greeter", |e| *e == healthy(["10.1.0.1:8080"]))
            .await;
        let mut ads = AdsStream::open(channel(control_plane.addr).await, "names").await;
        let asked = ["greeter", "intruder", "greeter.default", "greeter.team-a"];
        ads.subscribe::<Listener>(&asked).await;
        let (_, listeners) = ads.recv_typed::<Listener>().await;
        assert_eq!(
            names(&listeners, |l| &l.name),
            ["greeter", "greeter.team-a"]
        );

        // Changes elsewhere while it runs, then one in team-a as a marker.
        kube.add_endpoint(
            "default",
            "greeter-default",
            EndpointFixture::new("10.9.9.8"),
        );
        kube.apply(
            ServiceFixture::new("late")
                .namespace("team-b")
                .port("grpc", 80, 80),
        );
        kube.add_endpoint("team-a", "greeter-a", EndpointFixture::new("10.1.0.2"));
        sub.until("the team-a change", |e| e.len() == 2).await;
        for seen in &sub.seen {
            assert!(
                seen.iter().all(|(a, _)| a.starts_with("10.1.0.")),
                "another namespace's endpoint: {seen:?}"
            );
        }

        let report = control_plane.status_json().await;
        assert_eq!(report["info"]["namespace"], "team-a");
        let services: Vec<_> = report["services"]
            .as_array()
            .expect("services")
            .iter()
            .map(|s| (s["name"].clone(), s["namespace"].clone()))
            .collect();
        assert_eq!(services, [(Value::from("greeter"), Value::from("team-a"))]);

        for request in kube.requests() {
            assert_eq!(request.namespace.as_deref(), Some("team-a"), "{request:?}");
            assert!(
                matches!(request.verb, Verb::List | Verb::Watch),
                "only list and watch: {request:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn tls_annotations_turn_into_the_clusters_transport_socket_and_back() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(
            ServiceFixture::new("greeter")
                .port("grpc", 80, "grpc")
                .annotation(
                    "grpc-lb.io/tls-subject-alt-names",
                    "greeter.default.svc.cluster.local",
                ),
        );
        kube.apply(ServiceFixture::new("billing").port("grpc", 80, 9000));
        let control_plane = ControlPlane::synced(&kube, "default").await;
        let mut ads = AdsStream::open(channel(control_plane.addr).await, "tls").await;
        let clusters = [GREETER_CLUSTER, "billing.default.svc.cluster.local:80"];
        ads.subscribe::<Cluster>(&clusters).await;
        let (cds, found) = ads.recv_typed::<Cluster>().await;
        ads.ack(&cds, &clusters).await;
        let socket_of = |found: &[Cluster], name: &str| {
            found
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.transport_socket.as_ref().map(|s| s.name.clone()))
                .expect("cluster listed")
        };
        assert_eq!(
            socket_of(&found, GREETER_CLUSTER).as_deref(),
            Some("envoy.transport_sockets.tls")
        );
        assert_eq!(
            socket_of(&found, clusters[1]),
            None,
            "billing stays plaintext"
        );

        // Removing the annotations turns the Cluster back to plaintext.
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        let (cds, found) = ads.recv_typed::<Cluster>().await;
        ads.ack(&cds, &clusters).await;
        assert_eq!(socket_of(&found, GREETER_CLUSTER), None);
    })
    .await;
}
