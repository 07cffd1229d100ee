//! The six phases. Each says what happens and what to look for, does it to
//! the real processes, and records facts the summary and the tests check.

use std::collections::BTreeMap;

use nix::sys::signal::Signal;
use proto::greet::greeter_client::GreeterClient;
use serde_json::json;

use crate::baseline;
use crate::load::{Client, Load};
use crate::scenario::{Error, Run, connect_client, live_view, takes_calls};

/// One phase, as announced and summarised.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PhaseInfo {
    /// Short name for the JSON summary.
    pub(crate) key: &'static str,
    /// What happens.
    pub(crate) title: &'static str,
    /// What to look for.
    pub(crate) look_for: &'static str,
    /// Whether no call may fail (the demo's exit code depends on it).
    pub(crate) graceful: bool,
}

/// Every phase, in order.
pub(crate) const PHASES: [PhaseInfo; 6] = [
    PhaseInfo {
        key: "clusterip",
        title: "The usual first attempt: one ClusterIP address, balanced per TCP connection",
        look_for: "every call lands on ONE backend. The client opened one HTTP/2 connection; \
                   the balancer (what kube-proxy does) picked a backend for that connection, \
                   and gRPC sends every call over it.",
        graceful: false,
    },
    PhaseInfo {
        key: "control-plane",
        title: "Through the control plane: one connection per backend, strict round robin",
        look_for: "calls/s split evenly over the three backends; nothing fails.",
        graceful: true,
    },
    PhaseInfo {
        key: "not-serving",
        title: "A backend reports NOT_SERVING, later SERVING again (no restart)",
        look_for: "its calls/s drop to 0 while NOT_SERVING and the others take over; \
                   then it gets its share again; nothing fails.",
        graceful: true,
    },
    PhaseInfo {
        key: "rolling-restart",
        title: "Rolling restart of every backend with a graceful drain (maxSurge 1, maxUnavailable 0)",
        look_for: "each new backend takes calls before an old one leaves; a leaving backend \
                   gets no new calls while it drains; nothing fails.",
        graceful: true,
    },
    PhaseInfo {
        key: "sigkill",
        title: "A backend is killed with SIGKILL (no drain, no goodbye)",
        look_for: "the client drops it at once and a replacement joins. At most a handful of \
                   calls fail: those on their way to it when it died (the client cannot know \
                   whether they reached it, so it retries them only under a retry policy: \
                   try --retry); calls not yet sent go to another backend.",
        graceful: false,
    },
    PhaseInfo {
        key: "control-plane-restart",
        title: "The control plane restarts",
        look_for: "calls keep flowing over the last endpoints while it is down; the client \
                   reconnects by itself; nothing fails.",
        graceful: true,
    },
];

/// Runs every phase; `completed` counts those that ran to the end.
pub(crate) async fn run_all(run: &mut Run<'_>, completed: &mut usize) -> Result<(), Error> {
    baseline::clusterip(run).await?;
    *completed += 1;
    let channel = connect_client(run.cluster, run.settings.retry).await?;
    let endpoints = channel.endpoints();
    let view = endpoints.clone();
    run.screen
        .set_live(Some(Box::new(move || live_view(&view.borrow()))));
    let load = through_control_plane(run, channel).await?;
    *completed += 1;
    not_serving(run, &endpoints).await?;
    *completed += 1;
    rolling_restart(run, &endpoints).await?;
    *completed += 1;
    sigkill(run, &endpoints).await?;
    *completed += 1;
    control_plane_restart(run, &endpoints).await?;
    load.stop().await;
    *completed += 1;
    Ok(())
}

pub(crate) fn begin(run: &mut Run<'_>, number: usize) {
    run.phase = number;
    let info = PHASES[number - 1];
    run.screen
        .phase(number, PHASES.len(), info.title, info.look_for);
}

async fn through_control_plane(
    run: &mut Run<'_>,
    channel: xds_balancer::Channel,
) -> Result<Load, Error> {
    begin(run, 2);
    run.segment("waiting for the client's first endpoints");
    let set = channel
        .settled(crate::scenario::CLIENT_TIMEOUT)
        .await
        .map_err(|status| Error::Client(status.message().to_owned()))?;
    let ready: Vec<String> = set.ready().map(|e| e.hostname.clone()).collect();
    run.screen.say(&format!(
        "client subscribed to xds:///greeter and connected to every ready backend: {}",
        ready.join(", ")
    ));
    run.segment("round robin over every backend");
    let load = Load::start(
        Client::Balanced(GreeterClient::new(channel)),
        run.settings.load,
        run.recorder.clone(),
    );
    run.steady().await;
    if let Some(serial) = run.cluster.rotate_certificates() {
        run.segment("every certificate rotated");
        run.screen.say(&format!(
            "--tls: every certificate renewed from the same CA (servers now serial {serial}), \
             swapped in like a Secret: new connections present the new ones, open ones are kept"
        ));
    }
    run.steady().await;
    let tally = run.recorder.current();
    let connections: BTreeMap<&String, usize> = tally
        .connections
        .iter()
        .map(|(b, ids)| (b, ids.len()))
        .collect();
    run.screen.say(&format!(
        "Calls per backend: {} — each over its own connection ({}).",
        tally
            .by_backend
            .iter()
            .map(|(b, n)| format!("{b} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        connections
            .iter()
            .map(|(b, n)| format!("{b}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(load)
}

async fn not_serving(
    run: &mut Run<'_>,
    endpoints: &tokio::sync::watch::Receiver<xds_balancer::EndpointSet>,
) -> Result<(), Error> {
    begin(run, 3);
    let victim = run.cluster.names()[1].clone();
    run.segment(format!("{victim} NOT_SERVING: leaving the rotation"));
    run.cluster.signal(&victim, Signal::SIGUSR1)?;
    run.screen.say(&format!(
        "SIGUSR1 → {victim}: its grpc.health.v1 status turns NOT_SERVING (it keeps running)"
    ));
    let took = run
        .wait_client(endpoints, &format!("{victim} out of rotation"), |set| {
            !takes_calls(set, &victim)
        })
        .await?;
    run.screen.say(&format!(
        "control plane probe saw it, pushed an update; the client stopped calling {victim} after {} ms",
        took.as_millis()
    ));
    run.fact("backend", victim.clone());
    run.fact("left_after_ms", took.as_millis() as u64);
    run.segment(format!("{victim} out of rotation"));
    run.steady().await;
    let out = run.recorder.current();
    run.fact(
        "calls_to_backend_while_out",
        out.by_backend.get(&victim).copied().unwrap_or(0),
    );

    run.segment(format!("{victim} SERVING again: rejoining"));
    run.cluster.signal(&victim, Signal::SIGUSR1)?;
    run.screen
        .say(&format!("SIGUSR1 → {victim}: SERVING again"));
    let took = run
        .wait_client(endpoints, &format!("{victim} back in rotation"), |set| {
            takes_calls(set, &victim)
        })
        .await?;
    run.screen.say(&format!(
        "the client calls {victim} again, {} ms later",
        took.as_millis()
    ));
    run.fact("returned_after_ms", took.as_millis() as u64);
    run.segment(format!("{victim} back in rotation"));
    run.steady().await;
    Ok(())
}

async fn rolling_restart(
    run: &mut Run<'_>,
    endpoints: &tokio::sync::watch::Receiver<xds_balancer::EndpointSet>,
) -> Result<(), Error> {
    begin(run, 4);
    let drain = run.settings.timings.drain_delay;
    let old = run.cluster.names();
    let mut replaced = Vec::new();
    for old in old {
        run.segment(format!("surge: a new backend replaces {old}"));
        let new = run.cluster.start_backend().await?;
        run.cluster.list(&new, true)?;
        run.show_backends();
        run.screen.say(&format!(
            "{new} started and added to the static file (a new pod); waiting until it is ready"
        ));
        let took = run
            .wait_client(endpoints, &format!("{new} ready"), |set| {
                takes_calls(set, &new)
            })
            .await?;
        run.screen.say(&format!(
            "{new} is ready and takes calls ({} ms after it was listed)",
            took.as_millis()
        ));

        run.segment(format!("{old} draining"));
        run.cluster.signal(&old, Signal::SIGTERM)?;
        run.screen.say(&format!(
            "SIGTERM → {old}: NOT_SERVING at once, still answering for its drain delay ({drain:?})"
        ));
        let took = run
            .wait_client(endpoints, &format!("{old} out of rotation"), |set| {
                !takes_calls(set, &old)
            })
            .await?;
        run.screen.say(&format!(
            "the client stopped sending new calls to {old} after {} ms",
            took.as_millis()
        ));
        let code = run.cluster.wait_backend_exit(&old).await?;
        run.cluster.list(&old, false)?;
        run.cluster.forget(&old);
        run.show_backends();
        run.screen.say(&format!(
            "{old} drained and exited (exit code {}); removed from the static file",
            code.map_or_else(|| "none".to_owned(), |c| c.to_string())
        ));
        replaced.push(json!({"old": old, "new": new, "old_exit_code": code}));
    }
    run.fact("replaced", replaced);
    run.segment("after the rollout");
    run.steady().await;
    Ok(())
}

async fn sigkill(
    run: &mut Run<'_>,
    endpoints: &tokio::sync::watch::Receiver<xds_balancer::EndpointSet>,
) -> Result<(), Error> {
    begin(run, 5);
    run.segment("all backends up");
    run.steady().await;
    let victim = run.cluster.names()[0].clone();
    let in_flight = run.recorder.in_flight();
    run.cluster.kill_backend(&victim).await?;
    run.segment(format!("{victim} killed"));
    run.screen.say(&format!(
        "SIGKILL → {victim} ({in_flight} calls in flight across all backends at that moment)"
    ));
    let took = run
        .wait_client(endpoints, &format!("{victim} out of rotation"), |set| {
            !takes_calls(set, &victim)
        })
        .await?;
    run.screen.say(&format!(
        "the client dropped {victim} after {} ms (its connection broke; the control plane's probe fails too)",
        took.as_millis()
    ));
    run.fact("backend", victim.clone());
    run.fact("in_flight_at_kill", in_flight);
    run.fact("dropped_after_ms", took.as_millis() as u64);
    tokio::time::sleep(run.settings.steady / 2).await;

    run.cluster.list(&victim, false)?;
    run.cluster.forget(&victim);
    let new = run.cluster.start_backend().await?;
    run.cluster.list(&new, true)?;
    run.show_backends();
    run.screen.say(&format!(
        "{victim} removed from the static file; replacement {new} started and listed"
    ));
    run.segment(format!("replacement {new} joining"));
    run.wait_client(endpoints, &format!("{new} ready"), |set| {
        takes_calls(set, &new)
    })
    .await?;
    run.fact("replacement", new.clone());
    run.segment(format!("{new} in rotation"));
    run.steady().await;
    Ok(())
}

async fn control_plane_restart(
    run: &mut Run<'_>,
    endpoints: &tokio::sync::watch::Receiver<xds_balancer::EndpointSet>,
) -> Result<(), Error> {
    begin(run, 6);
    run.segment("control plane up");
    tokio::time::sleep(run.settings.steady / 2).await;
    run.segment("control plane stopping");
    run.screen
        .say("SIGTERM → control plane: it ends every xDS stream and exits");
    run.cluster.stop_control_plane().await?;
    run.wait_client(endpoints, "the control plane gone", |set| {
        !set.control_plane.connected
    })
    .await?;
    run.segment("control plane down");
    run.screen.say(&format!(
        "control plane down; the client keeps balancing over the endpoints it last got ({:?})",
        run.settings.control_plane_down
    ));
    tokio::time::sleep(run.settings.control_plane_down).await;
    run.segment("control plane starting again");
    let addr = run.cluster.start_control_plane().await?;
    run.screen
        .say(&format!("control plane started again on {addr}"));
    let names = run.cluster.names();
    let took = run
        .wait_client(endpoints, "the control plane back", |set| {
            set.control_plane.connected && names.iter().all(|n| takes_calls(set, n))
        })
        .await?;
    run.screen.say(&format!(
        "the client reconnected and resubscribed by itself ({} ms after the restart)",
        took.as_millis()
    ));
    run.fact("reconnected_after_ms", took.as_millis() as u64);
    run.segment("control plane back");
    run.steady().await;
    Ok(())
}
