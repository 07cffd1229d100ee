//! One endpoint's connection over time, in its own task: connect, report,
//! watch for the connection's end (or its health), re-probe with backoff,
//! and close gracefully when retired.
//!
//! The task reports every state change to the pool's manager, which owns
//! the picker. Taking a connection out of rotation does not wait for the
//! manager: the connection's [`ConnSignals`](super::conn::ConnSignals) are
//! flipped first, and the picker skips unusable connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::conn::{self, ConnHandle, ConnSettings, Driver};
use super::health::{Health, HealthWatch};
use super::tls::Providers;
use crate::backoff::{Backoff, BackoffState};
use crate::model::{UpstreamTls, label};
use crate::view::ConnectionState;

/// A connection that lived at least this long was healthy: the next one is
/// tried at once instead of after a backoff delay.
const HEALTHY_LIFETIME: Duration = Duration::from_secs(1);

/// Settings every subchannel of a pool shares.
#[derive(Debug)]
pub(crate) struct PoolSettings {
    pub(crate) conn: ConnSettings,
    pub(crate) backoff: Backoff,
    /// The service name to health-check, when client-side checks are on.
    pub(crate) health_service: Option<String>,
    /// `:authority` of requests.
    pub(crate) authority: Authority,
    /// Certificate providers, for endpoints of TLS Clusters.
    pub(crate) providers: Arc<Providers>,
}

/// A report from a subchannel task.
#[derive(Debug)]
pub(crate) enum SubEvent {
    /// The connection changed state.
    State {
        id: u64,
        state: ConnectionState,
        /// The connection, while it is established.
        conn: Option<Arc<ConnHandle>>,
        /// Why the last attempt or connection failed.
        error: Option<String>,
    },
    /// The task ended: retired and its connection closed.
    Closed { id: u64 },
}

/// Identity of a subchannel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) hostname: Arc<str>,
    /// TLS to the endpoint, as its Cluster says; `None`: plaintext (h2c).
    pub(crate) tls: Option<Arc<UpstreamTls>>,
}

/// Starts the task for `spec`; cancel `retire` to close it.
pub(crate) fn spawn(
    spec: Spec,
    settings: Arc<PoolSettings>,
    events: mpsc::UnboundedSender<SubEvent>,
    retire: CancellationToken,
) {
    let task = Subchannel {
        spec,
        settings,
        events,
    };
    tokio::spawn(task.run(retire));
}

struct Subchannel {
    spec: Spec,
    settings: Arc<PoolSettings>,
    events: mpsc::UnboundedSender<SubEvent>,
}

/// How an established connection ended.
enum End {
    /// Retired: closed gracefully.
    Retired,
    /// Lost (why).
    Lost(String),
}

impl Subchannel {
    fn report(&self, state: ConnectionState, conn: Option<Arc<ConnHandle>>, error: Option<String>) {
        let _ = self.events.send(SubEvent::State {
            id: self.spec.id,
            state,
            conn,
            error,
        });
    }

    async fn run(self, retire: CancellationToken) {
        let endpoint = label(&self.spec.hostname, self.spec.addr);
        let mut backoff = BackoffState::new(self.settings.backoff);
        loop {
            self.report(ConnectionState::Connecting, None, None);
            let tls = match &self.spec.tls {
                None => Ok(None),
                Some(upstream) => self.settings.providers.client(upstream).map(Some),
            };
            let attempt = match tls {
                Ok(tls) => tokio::select! {
                    biased;
                    () = retire.cancelled() => break,
                    attempt = conn::connect(self.spec.addr, self.spec.hostname.clone(), &self.settings.conn, tls.as_ref()) => attempt,
                },
                Err(reason) => Err(conn::ConnectError::TlsSettings {
                    endpoint: endpoint.clone(),
                    reason,
                }),
            };
            let (handle, driver) = match attempt {
                Ok(established) => established,
                Err(error) => {
                    let message = error.to_string();
                    tracing::info!(%endpoint, error = %message, "endpoint ejected: connect failed");
                    self.report(ConnectionState::Ejected, None, Some(message));
                    tokio::select! {
                        biased;
                        () = retire.cancelled() => break,
                        () = tokio::time::sleep(backoff.next_delay()) => continue,
                    }
                }
            };
            tracing::debug!(%endpoint, "connected");
            let connected_at = Instant::now();
            match self.serve(handle, driver, &retire).await {
                End::Retired => break,
                End::Lost(reason) => {
                    tracing::info!(%endpoint, %reason, "endpoint ejected: connection lost");
                    self.report(ConnectionState::Ejected, None, Some(reason));
                    if connected_at.elapsed() >= HEALTHY_LIFETIME {
                        backoff.reset();
                        continue;
                    }
                    tokio::select! {
                        biased;
                        () = retire.cancelled() => break,
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
        let _ = self.events.send(SubEvent::Closed { id: self.spec.id });
    }

    /// Runs an established connection until it is lost or retired.
    async fn serve(
        &self,
        handle: Arc<ConnHandle>,
        driver: Driver,
        retire: &CancellationToken,
    ) -> End {
        let mut driver = driver;
        let mut health = self.settings.health_service.clone().map(|service| {
            handle.signals.set_serving(false);
            HealthWatch::new(
                handle.clone(),
                self.settings.authority.clone(),
                service,
                self.settings.backoff,
            )
        });
        if health.is_none() {
            self.report(ConnectionState::Ready, Some(handle.clone()), None);
        }
        loop {
            tokio::select! {
                biased;
                () = retire.cancelled() => {
                    // No new calls; in-flight ones finish; then the socket closes.
                    handle.signals.withdraw();
                    tracing::debug!(endpoint = %handle.label(), in_flight = handle.in_flight(), "closing the connection once its calls finish");
                    self.report(ConnectionState::Closing, None, None);
                    drop(health);
                    let signals = handle.signals.clone();
                    drop(handle);
                    // Ends once every other handle (picker, calls) is gone.
                    let _ = driver.await;
                    signals.closed().await;
                    tracing::debug!(endpoint = %label(&self.spec.hostname, self.spec.addr), "connection closed");
                    return End::Retired;
                }
                () = handle.signals.gone() => {
                    handle.signals.withdraw();
                    let reason = if handle.signals.goaway() {
                        "the server sent GOAWAY"
                    } else {
                        "the server closed the connection"
                    };
                    // Calls still in flight on it finish in the background,
                    // driven by the connection's own task.
                    drop(driver);
                    return End::Lost(reason.to_owned());
                }
                result = &mut driver => {
                    handle.signals.withdraw();
                    return End::Lost(match result {
                        Ok(Ok(())) => "the connection closed".to_owned(),
                        Ok(Err(error)) => format!("the connection failed: {error}"),
                        Err(error) => format!("the connection's task failed: {error}"),
                    });
                }
                report = next_health(&mut health) => {
                    let serving = report == Health::Serving;
                    handle.signals.set_serving(serving);
                    let state = if serving {
                        ConnectionState::Ready
                    } else {
                        ConnectionState::NotServing
                    };
                    tracing::info!(endpoint = %label(&self.spec.hostname, self.spec.addr), serving, "health check report");
                    self.report(state, Some(handle.clone()), None);
                }
            }
        }
    }
}

async fn next_health(health: &mut Option<HealthWatch>) -> Health {
    match health {
        Some(watch) => watch.next().await,
        None => std::future::pending().await,
    }
}
