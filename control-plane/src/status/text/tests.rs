use std::time::{Duration, UNIX_EPOCH};

use proto::controlplane::v1 as pb;

use super::*;
use crate::kinds::ResourceType;

const NOW_MS: i64 = 1_800_000_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(NOW_MS as u64)
}

fn report() -> Report {
    Report {
        info: pb::Info {
            version: "0.1.0".into(),
            instance_id: "abc123".into(),
            started_at_unix_ms: NOW_MS - 90_000,
            uptime_ms: 90_000,
            namespace: "default".into(),
            cluster_domain: "cluster.local".into(),
            source: Some(pb::SourceStatus {
                kind: "static".into(),
                state: pb::SourceState::Degraded as i32,
                state_since_unix_ms: NOW_MS - 12_000,
                last_error: "services.yaml: line 3: bad port".into(),
                last_error_unix_ms: NOW_MS - 12_000,
                last_event: "loaded 1 service".into(),
                last_event_unix_ms: NOW_MS - 60_000,
                detail: "services.yaml".into(),
            }),
            connected_clients: 1,
            services: 1,
            replica: "control-plane-0".into(),
            transport: "mtls".into(),
            refusals: Some(pb::Refusals {
                client_san_not_allowed: 2,
                ..pb::Refusals::default()
            }),
        },
        services: vec![pb::Service {
            name: "greeter".into(),
            namespace: "default".into(),
            version: "abc123-7".into(),
            updated_at_unix_ms: NOW_MS - 5_000,
            ports: vec![pb::ServicePort {
                name: "grpc".into(),
                port: 80,
                cluster: "greeter.default.svc.cluster.local:80".into(),
                endpoints: vec![
                    pb::Endpoint {
                        address: "10.0.0.1".into(),
                        port: 8080,
                        state: pb::EndpointState::Ready as i32,
                        instance: "greeter-a".into(),
                        ..Default::default()
                    },
                    pb::Endpoint {
                        address: "fd00::2".into(),
                        port: 8080,
                        state: pb::EndpointState::NotReady as i32,
                        detail: "health probe: NOT_SERVING".into(),
                        ..Default::default()
                    },
                ],
                routes: vec!["greeter-canary".into()],
            }],
            lb_policy: "least_request".into(),
            zone_aware: true,
        }],
        routes: Some(pb::ListRoutesResponse {
            support: Some(pb::RouteSupport {
                enabled: true,
                detail: "GRPCRoutes of namespace default".into(),
            }),
            routes: vec![
                pb::Route {
                    name: "greeter-canary".into(),
                    state: pb::RouteState::Accepted as i32,
                    attached: vec!["greeter:80".into()],
                    rules: 2,
                    ..Default::default()
                },
                pb::Route {
                    name: "broken".into(),
                    state: pb::RouteState::Refused as i32,
                    reason: "rule 0: backend Service v9 does not exist".into(),
                    rules: 1,
                    ..Default::default()
                },
            ],
        }),
        clients: vec![pb::Client {
            node_id: "client-1".into(),
            peer: "127.0.0.1:50000".into(),
            connected_at_unix_ms: NOW_MS - 30_000,
            user_agent: "gRPC Python 1.85.1".into(),
            stream_id: 4,
            types: vec![pb::TypeState {
                type_url: ResourceType::ClusterLoadAssignment.type_url(),
                names: vec!["greeter.default.svc.cluster.local:80".into()],
                sent_version: "abc123-7".into(),
                sent_nonce: "9".into(),
                acked_version: "abc123-6".into(),
                nack_error: "duplicate address".into(),
                nack_version: "abc123-7".into(),
                nack_at_unix_ms: NOW_MS - 2_000,
                responses_sent: 3,
                nacks: 1,
                acks: 2,
                ..Default::default()
            }],
            unknown_types: vec![pb::UnknownType {
                type_url: "type.googleapis.com/x.Y".into(),
                requests: 2,
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn text_shows_services_states_and_client_acks() {
    let text = report().to_text(now());
    for expected in [
        "replica control-plane-0  instance abc123  up 1m 30s",
        "transport mtls  refused: client SAN not allowed 2, over --max-streams 0",
        "source static (services.yaml): degraded since 12s ago",
        "last error: services.yaml: line 3: bad port (12s ago)",
        "80 (grpc)",
        "10.0.0.1:8080",
        "[fd00::2]:8080",
        "not_ready",
        "health probe: NOT_SERVING",
        "client-1",
        "EDS",
        "abc123-7 (nonce 9)",
        "abc123-6",
        "abc123-7: duplicate address (2s ago, 1 total)",
        "type.googleapis.com/x.Y",
        "least_request,zone,routes:greeter-canary",
        "routes from GRPCRoutes of namespace default",
        "greeter-canary  accepted  2      greeter:80    -",
        "broken          refused   1      -             rule 0: backend Service v9 does not exist",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // Columns line up: every row of the services table starts its
    // ENDPOINT column at the same offset.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("greeter") || l.starts_with("SERVICE"))
        .collect();
    let column = |line: &str, word: &str| line.find(word).expect(word);
    let header = column(lines[0], "ENDPOINT");
    assert_eq!(column(lines[1], "10.0.0.1"), header);
    assert_eq!(column(lines[2], "[fd00::2]"), header);
}

#[test]
fn empty_lists_say_so() {
    let mut report = report();
    report.services.clear();
    report.clients.clear();
    let text = report.to_text(now());
    assert!(text.contains("SERVICES: none"), "{text}");
    assert!(text.contains("CLIENTS: none"), "{text}");
    report.routes = Some(pb::ListRoutesResponse {
        support: Some(pb::RouteSupport {
            enabled: false,
            detail: "the GRPCRoute API is not installed".into(),
        }),
        routes: vec![],
    });
    let text = report.to_text(now());
    assert!(
        text.contains("ROUTES: off (the GRPCRoute API is not installed)"),
        "{text}"
    );
}

#[test]
fn json_uses_words_for_states() {
    let json = report().to_json();
    assert_eq!(json["info"]["source"]["state"], "degraded");
    assert_eq!(json["info"]["transport"], "mtls");
    assert_eq!(json["info"]["refusals"]["client_san_not_allowed"], 2);
    let endpoints = &json["services"][0]["ports"][0]["endpoints"];
    assert_eq!(endpoints[0]["state"], "ready");
    assert_eq!(endpoints[1]["state"], "not_ready");
    let eds = &json["clients"][0]["types"][0];
    assert_eq!(eds["type"], "EDS");
    assert_eq!(eds["acked_version"], "abc123-6");
    assert_eq!(eds["nack"]["error"], "duplicate address");
    assert_eq!(eds["nack"]["version"], "abc123-7");
    assert_eq!(json["clients"][0]["unknown_types"][0]["requests"], 2);
    assert_eq!(json["services"][0]["lb_policy"], "least_request");
    assert_eq!(json["services"][0]["zone_aware"], true);
    assert_eq!(
        json["services"][0]["ports"][0]["routes"][0],
        "greeter-canary"
    );
    assert_eq!(json["routes"]["enabled"], true);
    assert_eq!(json["routes"]["routes"][1]["state"], "refused");
    assert_eq!(
        json["routes"]["routes"][1]["reason"],
        "rule 0: backend Service v9 does not exist"
    );
}
