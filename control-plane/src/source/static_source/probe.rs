//! Active grpc.health.v1 probing of one static endpoint.
//!
//! # Design notes
//!
//! One task per distinct endpoint address, whatever the number of services
//! that list it. The task keeps one HTTP/2 connection and watches the
//! overall health (service `""`): a server pushes every change at once, so
//! a draining server's NOT_SERVING takes the endpoint out before the server
//! refuses connections. Servers without `Watch` (UNIMPLEMENTED) are polled
//! with `Check` every probe interval instead.
//!
//! A watch stream on a healthy but idle connection tells nothing about a
//! peer that vanished without closing it (a host gone, a network
//! partition). HTTP/2 keepalive pings would notice, but servers that enforce
//! gRPC's ping policy (grpc-go, grpc-java: at most one ping per five minutes
//! by default) answer frequent pings with GOAWAY. So the task sends a `Check`
//! on the same connection every probe interval while it watches; a check not
//! answered within the probe timeout ends the session. Only the watch
//! decides the endpoint's state: an answer to a check sent before a change
//! could otherwise undo it.
//!
//! A TLS service's endpoints are probed over TLS with the service's SAN
//! matchers, as gRPC's clients would connect (and with the probe identity
//! for servers that require one); a handshake failure's cause is the
//! detail. Without --probe-tls-ca such an endpoint is not ready: a probe
//! never falls back to plaintext.
//!
//! Whenever a session ends (connect failure, broken stream, timeout) the
//! endpoint is not ready, with a detail saying why, and the task reconnects
//! after a jittered backoff that grows up to the probe interval. An endpoint
//! starts not ready until its first SERVING answer. The task only reports
//! changes; it stops when the source's task drops its handle.
//!
//! `probe/verdict.rs` says what each answer or failure means, and how long
//! to wait before reconnecting.

use std::net::SocketAddr;
use std::time::Duration;

use common::tls::client::Connector;
use common::tls::{ClientTls, ServerVerification};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Streaming};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tracing::Instrument as _;

use super::AbortOnDrop;
use crate::model::{Endpoint as ModelEndpoint, Service, ServiceTls};

mod verdict;

pub(crate) use verdict::{Backoff, describe, health_of, root_cause, watch_ended};

/// Shortest wait before reconnecting.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Probe timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeConfig {
    /// Check polling interval, liveness check interval, and the longest
    /// reconnection backoff.
    pub(crate) interval: Duration,
    /// Time limit for connecting and for each answer.
    pub(crate) timeout: Duration,
}

impl ProbeConfig {
    /// By when a new prober has reported its first answer (or its failure
    /// to get one): a connection attempt and a first health answer, each
    /// within the timeout, plus scheduling slack.
    pub(crate) fn first_answer_limit(&self) -> Duration {
        self.timeout * 2 + Duration::from_millis(200)
    }
}

/// What probing says about an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    /// It answered SERVING.
    Ready,
    /// It is not ready, for this reason.
    NotReady(String),
}

impl Health {
    /// Before the first answer.
    pub(crate) fn starting() -> Self {
        Self::NotReady("health probe: no answer yet".to_owned())
    }
}

/// What one prober probes: an address, and the TLS settings of the
/// service that lists it (`None`: plaintext).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<ServiceTls>,
}

impl Target {
    /// The target of `endpoint` of `service`.
    pub(crate) fn of(service: &Service, endpoint: &ModelEndpoint) -> Self {
        Self {
            addr: endpoint.socket_addr(),
            tls: service.tls.clone(),
        }
    }
}

/// How a prober connects.
#[derive(Debug, Clone)]
enum Transport {
    Plaintext,
    Tls(ClientTls, ServerVerification),
    /// A TLS service, but no --probe-tls-ca.
    TlsWithoutCa,
}

/// A change of an endpoint's health, from prober `id`.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) target: Target,
    pub(crate) id: u64,
    pub(crate) health: Health,
}

/// Starts probing `addr`; reports go to `reports` tagged with `id`. The
/// task stops when the returned guard is dropped or `reports` closes.
pub(crate) fn spawn(
    target: Target,
    id: u64,
    config: ProbeConfig,
    tls: Option<ClientTls>,
    reports: mpsc::Sender<Report>,
) -> AbortOnDrop {
    let addr = target.addr;
    let transport = match (&target.tls, tls) {
        (None, _) => Transport::Plaintext,
        (Some(service), Some(client)) => Transport::Tls(
            client,
            ServerVerification::SanMatchers(service.subject_alt_names.clone()),
        ),
        (Some(_), None) => Transport::TlsWithoutCa,
    };
    let reporter = Reporter {
        target,
        id,
        reports,
        last: Health::starting(),
    };
    let task =
        probe(addr, config, transport, reporter).instrument(tracing::info_span!("probe", %addr));
    AbortOnDrop::new(tokio::spawn(task))
}

/// The source's task has gone away.
struct Closed;

struct Reporter {
    target: Target,
    id: u64,
    reports: mpsc::Sender<Report>,
    last: Health,
}

impl Reporter {
    async fn report(&mut self, health: Health) -> Result<(), Closed> {
        if health == self.last {
            return Ok(());
        }
        match &health {
            Health::Ready => tracing::info!("endpoint ready"),
            Health::NotReady(detail) => tracing::info!(detail, "endpoint not ready"),
        }
        self.last = health.clone();
        let report = Report {
            target: self.target.clone(),
            id: self.id,
            health,
        };
        self.reports.send(report).await.map_err(|_| Closed)
    }
}

/// Why a session ended, and whether the server answered during it.
struct Ended {
    detail: String,
    answered: bool,
}

impl Ended {
    fn unanswered(detail: String) -> Self {
        Self {
            detail,
            answered: false,
        }
    }
}

async fn probe(
    addr: SocketAddr,
    config: ProbeConfig,
    transport: Transport,
    mut reporter: Reporter,
) {
    let mut backoff = Backoff::new(config.interval);
    loop {
        let Ok(ended) = session(addr, config, &transport, &mut reporter).await else {
            return;
        };
        if reporter
            .report(Health::NotReady(ended.detail))
            .await
            .is_err()
        {
            return;
        }
        if ended.answered {
            backoff.reset();
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One connection: watch (or poll) until something breaks. A TLS failure
/// recognised on the connection (in the handshake, or a plaintext
/// connection answered in TLS) is the detail, whatever broke first above.
async fn session(
    addr: SocketAddr,
    config: ProbeConfig,
    transport: &Transport,
    reporter: &mut Reporter,
) -> Result<Ended, Closed> {
    let connector = match transport {
        Transport::Plaintext => Connector::new(None),
        Transport::Tls(client, verify) => Connector::new(Some((client.clone(), verify.clone()))),
        Transport::TlsWithoutCa => {
            return Ok(Ended::unanswered(
                "health probe: the service is TLS but no --probe-tls-ca was given; probes \
                 never fall back to plaintext"
                    .to_owned(),
            ));
        }
    };
    let note = connector.note();
    let mut ended = match connect(addr, config, connector).await {
        Ok(channel) => watch_or_poll(channel, config, reporter).await?,
        Err(detail) => Ended::unanswered(detail),
    };
    if let Some(failure) = note.get() {
        ended.detail = format!("unreachable: {failure}");
    }
    Ok(ended)
}

/// Watches health on `channel`, or polls it where Watch is unimplemented.
async fn watch_or_poll(
    channel: Channel,
    config: ProbeConfig,
    reporter: &mut Reporter,
) -> Result<Ended, Closed> {
    let mut client = HealthClient::new(channel);
    match timeout(config.timeout, client.watch(overall())).await {
        Err(_) => Ok(Ended::unanswered(format!(
            "unreachable: no answer to a health watch within {}",
            humantime::format_duration(config.timeout)
        ))),
        Ok(Err(status)) if status.code() == Code::Unimplemented => {
            tracing::debug!("health Watch is not implemented: polling Check");
            poll_checks(&mut client, config, reporter).await
        }
        Ok(Err(status)) => Ok(Ended::unanswered(format!(
            "health probe: watch failed: {}",
            describe(&status)
        ))),
        Ok(Ok(response)) => {
            follow_watch(response.into_inner(), &mut client, config, reporter).await
        }
    }
}

async fn follow_watch(
    mut stream: Streaming<HealthCheckResponse>,
    client: &mut HealthClient<Channel>,
    config: ProbeConfig,
    reporter: &mut Reporter,
) -> Result<Ended, Closed> {
    let mut answered = false;
    let mut liveness = tokio::time::interval_at(Instant::now() + config.interval, config.interval);
    liveness.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(response)) => {
                    answered = true;
                    reporter.report(health_of(response.status)).await?;
                }
                Ok(None) => {
                    return Ok(Ended {
                        detail: "health probe: the server ended the watch".to_owned(),
                        answered,
                    });
                }
                Err(status) => {
                    return Ok(Ended {
                        detail: watch_ended(&status),
                        answered,
                    });
                }
            },
            _ = liveness.tick() => {
                match timeout(config.timeout, client.check(overall())).await {
                    Err(_) => return Ok(Ended { detail: no_check_answer(config), answered }),
                    Ok(Err(status)) if status.code() == Code::Unavailable => {
                        return Ok(Ended {
                            detail: format!("unreachable: health check failed: {}", describe(&status)),
                            answered,
                        });
                    }
                    // Any other answer shows the server is there.
                    Ok(_) => {}
                }
            }
        }
    }
}

async fn poll_checks(
    client: &mut HealthClient<Channel>,
    config: ProbeConfig,
    reporter: &mut Reporter,
) -> Result<Ended, Closed> {
    let mut answered = false;
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let health = match timeout(config.timeout, client.check(overall())).await {
            Err(_) => {
                return Ok(Ended {
                    detail: no_check_answer(config),
                    answered,
                });
            }
            Ok(Err(status)) if status.code() == Code::Unavailable => {
                return Ok(Ended {
                    detail: format!("unreachable: health check failed: {}", describe(&status)),
                    answered,
                });
            }
            Ok(Err(status)) => {
                Health::NotReady(format!("health probe: check failed: {}", describe(&status)))
            }
            Ok(Ok(response)) => health_of(response.into_inner().status),
        };
        answered = true;
        reporter.report(health).await?;
    }
}

/// An eagerly connected channel to `addr` through `connector` (TCP, then
/// TLS if configured), or why there is none.
async fn connect(
    addr: SocketAddr,
    config: ProbeConfig,
    connector: Connector,
) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|error| format!("unreachable: {error}"))?
        .connect_timeout(config.timeout);
    match timeout(config.timeout, endpoint.connect_with_connector(connector)).await {
        Err(_) => Err(format!(
            "unreachable: connect timed out after {}",
            humantime::format_duration(config.timeout)
        )),
        Ok(Err(error)) => Err(format!("unreachable: {}", root_cause(&error))),
        Ok(Ok(channel)) => Ok(channel),
    }
}

/// The request for the server's overall health.
fn overall() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

fn no_check_answer(config: ProbeConfig) -> String {
    format!(
        "unreachable: no answer to a health check within {}",
        humantime::format_duration(config.timeout)
    )
}
