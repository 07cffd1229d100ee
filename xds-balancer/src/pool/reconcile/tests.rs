//! The reconciler, step by step.

use super::*;

/// A connection, as the tests see it: its endpoint's port.
type Conn = u16;

fn endpoint(port: u16, health: EndpointHealth) -> Endpoint {
    Endpoint {
        addr: SocketAddr::from(([10, 0, 0, 1], port)),
        hostname: format!("pod-{port}"),
        zone: String::new(),
        priority: 0,
        health,
    }
}

fn resolved(endpoints: &[(u16, EndpointHealth)]) -> Resolution {
    Resolution::Endpoints {
        cluster: "greeter".into(),
        endpoints: endpoints
            .iter()
            .map(|(port, health)| endpoint(*port, *health))
            .collect::<Vec<_>>()
            .into(),
        tls: None,
        policy: PickPolicy::RoundRobin,
    }
}

fn started(commands: &[Command<Conn>]) -> Vec<(u64, u16)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Start(spec) => Some((spec.id, spec.addr.port())),
            Command::Retire { .. } => None,
        })
        .collect()
}

/// Retirements, by subchannel id (their order does not matter).
fn retired(commands: &[Command<Conn>]) -> Vec<(u64, Option<Conn>)> {
    let mut retired: Vec<_> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Retire { id, conn } => Some((*id, *conn)),
            Command::Start(_) => None,
        })
        .collect();
    retired.sort_unstable();
    retired
}

/// A reconciler with `ports` all HEALTHY and connected (ids 1..).
fn connected(ports: &[u16]) -> Reconciler<Conn> {
    let mut r = Reconciler::new("greeter".into());
    let endpoints: Vec<_> = ports
        .iter()
        .map(|p| (*p, EndpointHealth::Healthy))
        .collect();
    let commands = r.on_resolution(&resolved(&endpoints));
    for (id, port) in started(&commands) {
        r.on_state(id, ConnectionState::Ready, Some(port), None);
    }
    r
}

use EndpointHealth::{Draining, Healthy, NotReady};

#[test]
fn starts_one_subchannel_per_healthy_endpoint() {
    let mut r: Reconciler<Conn> = Reconciler::new("greeter".into());
    let commands = r.on_resolution(&resolved(&[(1, Healthy), (2, NotReady), (3, Healthy)]));
    assert_eq!(started(&commands), [(1, 1), (2, 3)]);
    assert!(retired(&commands).is_empty());
    let published = r.publish(Instant::now());
    assert!(published.ready.is_empty());
    assert_eq!(
        published.counts,
        Counts {
            connecting: 2,
            not_ready: 1,
            ..Counts::default()
        }
    );
}

#[test]
fn an_update_that_keeps_an_endpoint_keeps_its_subchannel() {
    let mut r = connected(&[1, 2]);
    let commands = r.on_resolution(&resolved(&[(1, Healthy), (2, Healthy), (3, Healthy)]));
    assert_eq!(started(&commands), [(3, 3)], "only the new endpoint");
    assert!(retired(&commands).is_empty());
    let commands = r.on_resolution(&resolved(&[(2, Healthy), (1, Healthy), (3, Healthy)]));
    assert!(
        commands.is_empty(),
        "reordered, nothing to do: {commands:?}"
    );
}

#[test]
fn draining_and_removed_endpoints_are_retired_with_their_connections() {
    let mut r = connected(&[1, 2, 3, 4]);
    let commands = r.on_resolution(&resolved(&[(1, Healthy), (2, Draining), (3, NotReady)]));
    assert_eq!(retired(&commands), [(2, Some(2)), (4, Some(4))]);
    assert!(started(&commands).is_empty());
    let published = r.publish(Instant::now());
    assert_eq!(
        published.ready,
        [1],
        "only the HEALTHY endpoint takes calls"
    );
    let states: Vec<(u16, ConnectionState)> = published
        .endpoints
        .iter()
        .map(|e| (e.addr.port(), e.connection))
        .collect();
    assert_eq!(
        states,
        [
            (1, ConnectionState::Ready),
            (2, ConnectionState::Closing),
            (3, ConnectionState::Standby),
            (4, ConnectionState::Closing),
        ],
        "closing until their sockets close; the not-ready one kept"
    );
    // A retired subchannel's late report changes nothing.
    assert_eq!(r.on_state(4, ConnectionState::Ready, Some(4), None), None);
    assert_eq!(r.publish(Instant::now()).ready, [1]);
    for id in [2, 4] {
        r.on_closed(id);
    }
    let published = r.publish(Instant::now());
    let states: Vec<(u16, ConnectionState)> = published
        .endpoints
        .iter()
        .map(|e| (e.addr.port(), e.connection))
        .collect();
    assert_eq!(
        states,
        [
            (1, ConnectionState::Ready),
            (2, ConnectionState::Idle),
            (3, ConnectionState::Standby)
        ]
    );
}

#[test]
fn a_not_ready_endpoint_keeps_its_connection_until_it_is_lost() {
    let mut r = connected(&[1, 2]);
    let commands = r.on_resolution(&resolved(&[(1, Healthy), (2, NotReady)]));
    assert!(commands.is_empty(), "kept, not retired: {commands:?}");
    let published = r.publish(Instant::now());
    assert_eq!(published.ready, [1]);
    assert_eq!(published.counts.not_ready, 1);
    // Ready again: in the rotation at once, with no new connection.
    let commands = r.on_resolution(&resolved(&[(1, Healthy), (2, Healthy)]));
    assert!(commands.is_empty(), "no new subchannel: {commands:?}");
    assert_eq!(r.publish(Instant::now()).ready, [1, 2]);

    // Not ready, and then its connection is lost: retired, not reconnected.
    r.on_resolution(&resolved(&[(1, Healthy), (2, NotReady)]));
    let command = r.on_state(2, ConnectionState::Ejected, None, Some("reset".into()));
    assert_eq!(command, Some(Command::Retire { id: 2, conn: None }));
    r.on_closed(2);
    let published = r.publish(Instant::now());
    assert_eq!(published.ready, [1]);
    assert_eq!(published.endpoints[1].connection, ConnectionState::Idle);
    // The same list again changes nothing; ready again, it connects anew.
    assert!(
        r.on_resolution(&resolved(&[(1, Healthy), (2, NotReady)]))
            .is_empty()
    );
    let commands = r.on_resolution(&resolved(&[(1, Healthy), (2, Healthy)]));
    assert_eq!(started(&commands), [(3, 2)]);

    // Not ready while still connecting: nothing to keep, so retired.
    let commands = r.on_resolution(&resolved(&[(1, Healthy), (2, NotReady)]));
    assert_eq!(retired(&commands), [(3, None)]);
    // A HEALTHY endpoint's lost connection is the subchannel's to retry.
    assert_eq!(
        r.on_state(1, ConnectionState::Ejected, None, Some("reset".into())),
        None
    );
}

#[test]
fn another_instance_at_the_same_address_gets_a_new_connection() {
    let mut r = connected(&[1]);
    let mut moved = endpoint(1, Healthy);
    moved.hostname = "pod-1-replacement".into();
    let commands = r.on_resolution(&Resolution::Endpoints {
        cluster: "greeter".into(),
        endpoints: vec![moved].into(),
        tls: None,
        policy: PickPolicy::RoundRobin,
    });
    assert_eq!(retired(&commands), [(1, Some(1))]);
    assert_eq!(started(&commands), [(2, 1)]);
}

#[test]
fn waiting_keeps_the_endpoints_and_deletion_retires_them() {
    let mut r = connected(&[1, 2]);
    assert!(
        r.on_resolution(&Resolution::Waiting("cluster \"c2\"".into()))
            .is_empty()
    );
    let published = r.publish(Instant::now());
    assert_eq!(published.ready, [1, 2], "static stability");
    assert_eq!(
        published.service,
        ServiceStatus::Waiting("cluster \"c2\"".into())
    );
    let commands = r.on_resolution(&Resolution::DoesNotExist("listener \"greeter\"".into()));
    assert_eq!(retired(&commands), [(1, Some(1)), (2, Some(2))]);
    assert!(r.publish(Instant::now()).ready.is_empty());
}

#[test]
fn a_first_batch_is_published_together() {
    let mut r: Reconciler<Conn> = Reconciler::new("greeter".into());
    let start = Instant::now();
    r.on_resolution(&resolved(&[(1, Healthy), (2, Healthy), (3, Healthy)]));
    r.on_state(1, ConnectionState::Ready, Some(1), None);
    assert!(
        r.publish(start).ready.is_empty(),
        "held: 2 and 3 still connecting"
    );
    assert_eq!(r.hold_until(), Some(start + FIRST_BATCH_WAIT));
    r.on_state(2, ConnectionState::Ready, Some(2), None);
    assert!(
        r.publish(start + Duration::from_millis(10))
            .ready
            .is_empty()
    );
    r.on_state(3, ConnectionState::Ready, Some(3), None);
    assert_eq!(
        r.publish(start + Duration::from_millis(20)).ready,
        [1, 2, 3],
        "every first attempt done"
    );
    assert_eq!(r.hold_until(), None);
}

#[test]
fn a_slow_member_holds_a_first_batch_only_so_long() {
    let mut r: Reconciler<Conn> = Reconciler::new("greeter".into());
    let start = Instant::now();
    r.on_resolution(&resolved(&[(1, Healthy), (2, Healthy)]));
    r.on_state(1, ConnectionState::Ready, Some(1), None);
    assert!(r.publish(start).ready.is_empty());
    assert_eq!(r.publish(start + FIRST_BATCH_WAIT).ready, [1], "hold over");
    // Once calls flow, a newcomer joins as soon as it is connected.
    r.on_resolution(&resolved(&[(1, Healthy), (2, Healthy), (3, Healthy)]));
    r.on_state(3, ConnectionState::Ready, Some(3), None);
    assert_eq!(r.publish(start + FIRST_BATCH_WAIT).ready, [1, 3]);
}

#[test]
fn failures_are_counted_and_the_last_error_kept() {
    let mut r = connected(&[1, 2, 3]);
    r.on_state(
        1,
        ConnectionState::Ejected,
        None,
        Some("connect to pod-1 failed: refused".into()),
    );
    r.on_state(2, ConnectionState::NotServing, Some(2), None);
    let published = r.publish(Instant::now());
    assert_eq!(published.ready, [3]);
    assert_eq!(
        published.counts,
        Counts {
            ready: 1,
            ejected: 1,
            not_serving: 1,
            ..Counts::default()
        }
    );
    assert_eq!(
        published.last_connect_error.as_deref(),
        Some("connect to pod-1 failed: refused")
    );
    assert_eq!(
        published.endpoints[0].last_error.as_deref(),
        Some("connect to pod-1 failed: refused")
    );
    r.on_state(1, ConnectionState::Ready, Some(1), None);
    let published = r.publish(Instant::now());
    assert_eq!(published.ready, [1, 3]);
    assert_eq!(
        published.endpoints[0].last_error, None,
        "cleared once connected"
    );
}

#[test]
fn other_tls_settings_make_every_connection_anew() {
    let mut r = connected(&[1, 2]);
    let with_tls = |tls| match resolved(&[(1, Healthy), (2, Healthy)]) {
        Resolution::Endpoints {
            cluster,
            endpoints,
            policy,
            ..
        } => Resolution::Endpoints {
            cluster,
            endpoints,
            tls,
            policy,
        },
        other => other,
    };
    let tls = Arc::new(UpstreamTls {
        identity: Some("default".into()),
        roots: "default".into(),
        san_matchers: Vec::new(),
        sni: None,
    });
    let commands = r.on_resolution(&with_tls(Some(tls.clone())));
    assert_eq!(retired(&commands), [(1, Some(1)), (2, Some(2))]);
    let specs: Vec<_> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Start(spec) => Some((spec.addr.port(), spec.tls.clone())),
            Command::Retire { .. } => None,
        })
        .collect();
    assert_eq!(specs, [(1, Some(tls.clone())), (2, Some(tls.clone()))]);
    assert!(
        r.on_resolution(&with_tls(Some(tls))).is_empty(),
        "the same settings keep the connections"
    );
}

#[test]
fn the_same_endpoints_again_change_nothing() {
    let mut r = connected(&[1, 2, 3]);
    let endpoints = resolved(&[(1, Healthy), (2, Healthy), (3, NotReady)]);
    r.on_resolution(&endpoints);
    r.publish(Instant::now());
    assert!(r.take_dirty());
    assert!(r.on_resolution(&endpoints).is_empty(), "the very same list");
    assert!(!r.take_dirty(), "nothing to publish");
    let equal = resolved(&[(1, Healthy), (2, Healthy), (3, NotReady)]);
    assert!(r.on_resolution(&equal).is_empty(), "an equal list");
    assert!(!r.take_dirty(), "nothing to publish");
    let mut view = Vec::new();
    r.write_view(Some(0), &mut view);
    assert!(
        !r.write_view(Some(0), &mut view),
        "the view is rewritten as it was"
    );
}

#[test]
fn a_readiness_change_touches_only_that_endpoint() {
    let ports: Vec<u16> = (1..=5).collect();
    let mut r = connected(&ports);
    let mut view = Vec::new();
    r.write_view(Some(0), &mut view);
    r.take_dirty();
    let buffers: Vec<*const u8> = view.iter().map(|e| e.hostname.as_ptr()).collect();

    let mut endpoints: Vec<_> = ports.iter().map(|p| (*p, Healthy)).collect();
    endpoints[2].1 = NotReady;
    let commands = r.on_resolution(&resolved(&endpoints));
    assert!(commands.is_empty(), "its connection is kept: {commands:?}");
    assert!(r.take_dirty());
    assert!(r.write_view(Some(0), &mut view));
    let states: Vec<_> = view
        .iter()
        .map(|e| (e.addr.port(), e.health, e.connection))
        .collect();
    assert_eq!(states[2], (3, Some(NotReady), ConnectionState::Standby));
    assert!(
        states
            .iter()
            .filter(|s| s.0 != 3)
            .all(|s| s.1 == Some(Healthy) && s.2 == ConnectionState::Ready)
    );
    let kept: Vec<*const u8> = view.iter().map(|e| e.hostname.as_ptr()).collect();
    assert_eq!(kept, buffers, "every row rewritten in place");

    // It comes back: on its kept connection, nothing started.
    endpoints[2].1 = Healthy;
    let commands = r.on_resolution(&resolved(&endpoints));
    assert!(commands.is_empty(), "{commands:?}");
    assert_eq!(r.publish(Instant::now()).ready, ports);
}

#[test]
fn the_view_is_written_over_what_it_held() {
    let mut r = connected(&[1, 2, 3]);
    let published = r.publish(Instant::now());
    // A view the application held from before, longer and different.
    let mut view = connected(&[7, 8, 9, 10]).publish(Instant::now()).endpoints;
    assert!(r.write_view(Some(0), &mut view));
    assert_eq!(view, published.endpoints);
    assert!(!r.write_view(Some(0), &mut view));
}

#[test]
fn the_connections_the_picker_holds_are_not_handed_out_again() {
    let mut r = connected(&[1, 2, 3]);
    let now = Instant::now();
    assert_eq!(r.pick_state(now, &[1, 2]).ready, Some(vec![1, 2, 3]));
    assert_eq!(r.pick_state(now, &[1, 2, 3]).ready, None, "unchanged");
    r.on_resolution(&resolved(&[(1, Healthy), (2, NotReady), (3, Healthy)]));
    assert_eq!(r.pick_state(now, &[1, 2, 3]).ready, Some(vec![1, 3]));
}
