//! The control plane's ADS session state machine fed arbitrary requests,
//! interleaved with source changes.
//!
//! Input: a sequence of steps. A step byte below 0x80 is followed by a
//! 2-byte big-endian length and that many bytes, decoded as a
//! `DiscoveryRequest` (bytes that do not decode are skipped: the server
//! ends such a stream before the session sees anything) and handed to the
//! session. A step byte from 0x80 changes the source (which endpoints
//! exist and their states, from the byte's bits) and hands the session the
//! new snapshot.
//!
//! What must hold, besides no panic: every response has a fresh nonce, is
//! of a served type, carries only resources of its own type, and has a
//! version of this run; requests over the limits are refused, never
//! answered.

#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

use control_plane::model::{Endpoint, EndpointState, Service, ServicePort};
use control_plane::source::{SourceHandle, SourceKind, SourceState, SourceStatus};
use control_plane::store::Store;
use control_plane::xds::names::Naming;
use control_plane::xds::session::{Limits, Outgoing, Session};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// Two services whose endpoints and states follow `bits`.
fn services(bits: u8) -> Vec<Service> {
    ["greeter", "billing"]
        .into_iter()
        .enumerate()
        .map(|(s, name)| {
            let endpoints = (0..3u8)
                .filter(|i| bits & (1 << (i + 3 * s as u8)) != 0)
                .map(|i| Endpoint {
                    address: IpAddr::V4(Ipv4Addr::new(10, 0, s as u8, i + 1)),
                    port: 8080,
                    state: match (bits >> i) & 3 {
                        0 => EndpointState::Ready,
                        1 => EndpointState::Draining,
                        _ => EndpointState::NotReady,
                    },
                    zone: Some("zone-a".to_owned()),
                    instance: None,
                    detail: None,
                })
                .collect();
            Service {
                name: name.to_owned(),
                namespace: "default".to_owned(),
                ports: vec![ServicePort {
                    name: Some("grpc".to_owned()),
                    port: 80,
                    endpoints,
                }],
            }
        })
        .collect()
}

fn check(out: &Outgoing, instance: &str, nonces: &mut HashSet<String>) {
    let response = &out.response;
    assert!(!response.nonce.is_empty(), "a response without a nonce");
    assert!(
        nonces.insert(response.nonce.clone()),
        "nonce {} sent twice",
        response.nonce
    );
    assert_eq!(response.type_url, out.kind.type_url());
    assert!(
        response.version_info.starts_with(instance),
        "version {} is not of this run",
        response.version_info
    );
    for resource in &response.resources {
        assert_eq!(
            resource.type_url, response.type_url,
            "a resource of another type"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let store = Store::new(
        Naming::new("default"),
        SourceStatus::starting(SourceKind::Static, "fuzz"),
    );
    let handle: SourceHandle = store.source_handle();
    handle.replace_all(services(0b0011_1111), "start");
    handle.set_state(SourceState::Connected, None);
    let instance = store.instance_id().to_owned();
    let limits = Limits {
        max_names: 64,
        max_name_bytes: 256,
    };
    let mut session = Session::new(instance.clone(), "fuzz", limits);
    let mut nonces = HashSet::new();
    let mut input = data;
    while let Some((&step, rest)) = input.split_first() {
        input = rest;
        if step >= 0x80 {
            handle.replace_all(services(step), "change");
            for out in session.on_snapshot(&store.snapshot()) {
                check(&out, &instance, &mut nonces);
            }
            continue;
        }
        if input.len() < 2 {
            return;
        }
        let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
        let end = (2 + len).min(input.len());
        let bytes = &input[2..end];
        input = &input[end..];
        let Ok(request) = DiscoveryRequest::decode(bytes) else {
            continue;
        };
        let over_limits = request.resource_names.len() > limits.max_names
            || request
                .resource_names
                .iter()
                .any(|name| name.len() > limits.max_name_bytes);
        match session.on_request(&request, &store.snapshot(), SystemTime::now()) {
            Ok(reply) => {
                assert!(!over_limits, "a request over the limits was answered");
                for out in &reply.responses {
                    check(out, &instance, &mut nonces);
                }
            }
            Err(_) => assert!(over_limits, "a request within the limits was refused"),
        }
    }
});
