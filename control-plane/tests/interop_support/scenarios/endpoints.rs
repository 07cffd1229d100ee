//! Which endpoints a foreign xDS client calls: an even spread over three
//! greeters, a greeter leaving and rejoining the rotation (probed health,
//! or readiness set in the store), zones as weighted localities, and a name
//! the control plane does not know.

use control_plane::model::Readiness;
use nix::sys::signal::Signal;
use proto::controlplane::v1::EndpointState;

use super::{
    BACKENDS, assert_acked_without_nack, assert_even, run, start, start_control_plane,
    start_greeters, until, wait_for_state, warm_up,
};
use crate::interop_support::{Bootstrap, ForeignClient, Language};
use crate::support::{self, TestServer};

/// Even spread over three greeters; the client ACKs the whole chain
/// (Listener, RouteConfiguration, Cluster, ClusterLoadAssignment) and NACKs
/// nothing.
pub async fn balances_evenly_over_three_greeters(language: Language) {
    run(language, async {
        let setup = start().await;
        let bootstrap = Bootstrap::write(setup.addr, language, "balance");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///greeter").await;
        warm_up(&mut client).await;

        let batch = client.batch(300).await;
        eprintln!("{}: 300 calls: {}", language.name(), batch.raw);
        assert_even(&batch, &BACKENDS, 300);
        assert_acked_without_nack(setup.addr, &bootstrap, &["LDS", "RDS", "CDS", "EDS"]).await;
        client.finish().await;
        drop(setup.control_plane);
        drop(setup.greeters);
    })
    .await;
}

/// A greeter turns NOT_SERVING (SIGUSR1); the control plane's probe marks it
/// not ready; the client stops calling it with no failed call, and takes it
/// back once it serves again.
pub async fn follows_a_greeter_out_of_and_back_into_rotation(language: Language) {
    run(language, async {
        let setup = start().await;
        let bootstrap = Bootstrap::write(setup.addr, language, "health");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///greeter").await;
        warm_up(&mut client).await;

        let (b, b_addr) = &setup.greeters[1];
        b.signal(Signal::SIGUSR1);
        wait_for_state(setup.addr, *b_addr, EndpointState::NotReady).await;
        until(&mut client, |batch| {
            batch.failed == 0 && batch.served_by("greeter-b") == 0
        })
        .await;
        let batch = client.batch(300).await;
        eprintln!("{}: greeter-b not ready: {}", language.name(), batch.raw);
        assert_eq!(batch.served_by("greeter-b"), 0, "{}", batch.raw);
        assert_even(&batch, &["greeter-a", "greeter-c"], 300);

        b.signal(Signal::SIGUSR1);
        wait_for_state(setup.addr, *b_addr, EndpointState::Ready).await;
        until(&mut client, |batch| batch.served_by("greeter-b") > 0).await;
        let batch = client.batch(300).await;
        eprintln!("{}: greeter-b back: {}", language.name(), batch.raw);
        assert_even(&batch, &BACKENDS, 300);
        client.finish().await;
    })
    .await;
}

/// The control plane's half of the previous scenario, without probing: the
/// endpoint states are set through the store (in-process control plane),
/// and the client must skip NOT_READY (UNHEALTHY) and DRAINING endpoints
/// with no failed call, and take a READY one back.
pub async fn skips_not_ready_and_draining_endpoints(language: Language) {
    run(language, async {
        let greeters = start_greeters().await;
        let addrs: Vec<String> = greeters.iter().map(|(_, a)| a.to_string()).collect();
        let with_b = |state| {
            support::greeter(&[
                support::ready(&addrs[0]),
                (addrs[1].as_str(), state),
                support::ready(&addrs[2]),
            ])
        };
        let server = TestServer::start(vec![with_b(Readiness::Ready)]).await;
        let bootstrap = Bootstrap::write(server.addr, language, "states");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///greeter").await;
        warm_up(&mut client).await;

        for state in [Readiness::NotReady, Readiness::Draining] {
            server
                .source()
                .upsert(with_b(state), "test")
                .expect("valid service");
            until(&mut client, |batch| batch.served_by("greeter-b") == 0).await;
            let batch = client.batch(300).await;
            eprintln!("{}: greeter-b {state:?}: {}", language.name(), batch.raw);
            assert_eq!(batch.served_by("greeter-b"), 0, "{state:?}: {}", batch.raw);
            assert_even(&batch, &["greeter-a", "greeter-c"], 300);
        }

        server
            .source()
            .upsert(with_b(Readiness::Ready), "test")
            .expect("valid service");
        until(&mut client, |batch| batch.served_by("greeter-b") > 0).await;
        assert_even(&client.batch(300).await, &BACKENDS, 300);
        client.finish().await;
    })
    .await;
}

/// Endpoints in two zones (two in `zone-a`, one in `zone-b`): one locality
/// per zone, weighted by its ready endpoints, so every pod gets a share.
/// gRPC picks a locality at random by weight, so the spread is checked
/// loosely. Then `zone-b`'s only endpoint turns NOT_READY: its locality
/// keeps weight 1 with nothing healthy in it, and the client must send
/// every call to `zone-a` with none failed. The target names the Service
/// by namespace and port name, as a Kubernetes client would.
pub async fn spreads_over_zones_and_skips_an_empty_one(language: Language) {
    run(language, async {
        let greeters = start_greeters().await;
        let zoned = |c_state| {
            let mut service = support::greeter(&[
                support::ready(&greeters[0].1.to_string()),
                support::ready(&greeters[1].1.to_string()),
                (greeters[2].1.to_string().as_str(), c_state),
            ]);
            for (endpoint, zone) in service.ports[0]
                .endpoints
                .iter_mut()
                .zip(["zone-a", "zone-a", "zone-b"])
            {
                endpoint.zone = Some(zone.to_owned());
            }
            service
        };
        let server = TestServer::start(vec![zoned(Readiness::Ready)]).await;
        let bootstrap = Bootstrap::write(server.addr, language, "zones");
        let target = "xds:///greeter.default:grpc";
        let mut client = ForeignClient::start(language, &bootstrap, target).await;
        warm_up(&mut client).await;

        let batch = client.batch(300).await;
        eprintln!("{}: two zones: {}", language.name(), batch.raw);
        assert_eq!(batch.ok, 300, "every call succeeded: {}", batch.raw);
        for backend in BACKENDS {
            // 100 expected; 50 is six standard deviations below.
            assert!(batch.served_by(backend) >= 50, "{backend}: {}", batch.raw);
        }

        server
            .source()
            .upsert(zoned(Readiness::NotReady), "test")
            .expect("valid service");
        until(&mut client, |batch| batch.served_by("greeter-c") == 0).await;
        let batch = client.batch(300).await;
        eprintln!("{}: zone-b not ready: {}", language.name(), batch.raw);
        assert_eq!(batch.served_by("greeter-c"), 0, "{}", batch.raw);
        assert_even(&batch, &["greeter-a", "greeter-b"], 300);
        assert_acked_without_nack(server.addr, &bootstrap, &["LDS", "RDS", "CDS", "EDS"]).await;
        client.finish().await;
    })
    .await;
}

/// A name the control plane does not know: the Listener is left out of the
/// answer, and the client's does-not-exist timer (15 s in gRPC) ends the
/// call with UNAVAILABLE "... does not exist" (each client words it its
/// own way: [`Language::not_found_texts`]).
pub async fn an_unknown_name_fails_with_does_not_exist(language: Language) {
    run(language, async {
        let mut control_plane = start_control_plane("greeter=127.0.0.1:9");
        let addr = control_plane.wait_listening().await;
        let bootstrap = Bootstrap::write(addr, language, "unknown");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///no-such-service").await;

        let started = tokio::time::Instant::now();
        let batch = client.batch(1).await;
        eprintln!(
            "{}: unknown name, after {:.1?}: {}",
            language.name(),
            started.elapsed(),
            batch.raw
        );
        let expected = language.not_found_texts();
        assert_eq!((batch.ok, batch.failed), (0, 1), "{}", batch.raw);
        let errors = batch.errors();
        assert!(
            errors.iter().all(|e| e.starts_with("UNAVAILABLE: ")
                && expected.iter().any(|(text, named)| {
                    e.contains(text) && (!named || e.contains("no-such-service"))
                })),
            "expected UNAVAILABLE with one of {expected:?}: {}",
            batch.raw
        );
        client.finish().await;
        control_plane.kill().await;
    })
    .await;
}
