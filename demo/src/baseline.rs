//! Phase 1, the usual first attempt: the client dials one address of a
//! per-connection TCP balancer ([`demo::balancer`], what kube-proxy does
//! for a ClusterIP Service) and every call lands on one backend. The phase
//! shows why: one TCP connection, given to one backend, carrying every
//! call.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::greet::greeter_client::GreeterClient;
use serde_json::json;

use crate::load::{Client, Load};
use crate::phases::begin;
use crate::scenario::{Error, Run};
use crate::screen::Live;
use demo::balancer::{self, TcpBalancer};

/// Runs phase 1.
pub(crate) async fn clusterip(run: &mut Run<'_>) -> Result<(), Error> {
    begin(run, 1);
    let backends = run
        .cluster
        .backends()
        .iter()
        .map(|b| balancer::Backend {
            name: b.name.clone(),
            addr: b.addr,
        })
        .collect();
    let balancer = TcpBalancer::start(backends).await?;
    let addr = balancer.addr();
    run.screen.say(&format!(
        "TCP balancer on {addr} forwards each new connection to the next backend (round robin)"
    ));
    let tls = match run.cluster.tls() {
        Some(tls) => Some(tls.plain_client().map_err(Error::Client)?),
        None => None,
    };
    // With --tls the connector runs the TLS handshake; tonic sees http://.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|error| Error::Client(error.to_string()))?
        .connect_with_connector(tls_reload::client::Connector::new(tls))
        .await
        .map_err(|error| Error::Client(format!("cannot connect to the balancer: {error}")))?;
    balancer.wait_forwarded(1, Duration::from_secs(5)).await;
    let forwarded = balancer.forwarded();
    let first = forwarded
        .first()
        .map_or("?", |f| f.backend.as_str())
        .to_owned();
    run.screen.say(&format!(
        "client (a plain tonic Channel to {addr}) connected: the balancer gave its connection to {first}"
    ));
    let shown = std::sync::Arc::new(balancer);
    let view = shown.clone();
    run.screen.set_live(Some(Box::new(move || {
        let mut states = BTreeMap::new();
        for f in view.forwarded() {
            *states.entry(f.backend).or_insert(0usize) += 1;
        }
        Live {
            states: states
                .into_iter()
                .map(|(b, n)| (b, format!("{n} TCP connection(s)")))
                .collect(),
            note: format!("client → {addr}, one address (a ClusterIP)"),
        }
    })));
    run.segment("one HTTP/2 connection through the TCP balancer");
    let load = Load::start(
        Client::Plain(GreeterClient::new(channel)),
        run.settings.load,
        run.recorder.clone(),
    );
    run.steady().await;
    run.steady().await;
    load.stop().await;
    run.screen.set_live(None);

    let tally = run.recorder.current();
    let connections: BTreeMap<String, usize> =
        shown
            .forwarded()
            .into_iter()
            .fold(BTreeMap::new(), |mut map, f| {
                *map.entry(f.backend).or_default() += 1;
                map
            });
    let split: Vec<String> = run
        .cluster
        .names()
        .iter()
        .map(|b| format!("{b} {}", tally.by_backend.get(b).copied().unwrap_or(0)))
        .collect();
    run.screen.say(&format!(
        "Why: the balancer saw {} TCP connection(s) ({}); HTTP/2 multiplexed all {} calls over it.\n\
         Calls per backend: {}. Balancing per connection does not balance gRPC.",
        connections.values().sum::<usize>(),
        connections
            .iter()
            .map(|(b, n)| format!("{n} → {b}"))
            .collect::<Vec<_>>()
            .join(", "),
        tally.calls(),
        split.join(", ")
    ));
    run.fact("tcp_connections", json!(connections));
    Ok(())
}
