//! The server's health as seen through `grpc.health.v1`.
//!
//! Both the overall status (`""`) and `greet.Greeter` move together. Health
//! can be switched at runtime (the binary maps SIGUSR1 to [`HealthControl::toggle`])
//! so demos and tests can take an instance out of rotation without stopping
//! it. Once draining has begun the status stays NOT_SERVING.

use std::sync::Arc;

use tokio::sync::Mutex;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Service names whose status is reported.
const SERVICES: [&str; 2] = ["", proto::greet::greeter_server::SERVICE_NAME];

#[derive(Debug)]
struct State {
    serving: bool,
    draining: bool,
}

/// A cloneable switch for the server's health status.
#[derive(Debug, Clone)]
pub struct HealthControl {
    reporter: HealthReporter,
    state: Arc<Mutex<State>>,
}

impl HealthControl {
    /// Starts SERVING.
    pub async fn new() -> Self {
        let control = Self {
            reporter: HealthReporter::new(),
            state: Arc::new(Mutex::new(State {
                serving: true,
                draining: false,
            })),
        };
        control.publish(true).await;
        control
    }

    /// The reporter the health service reads from.
    pub fn reporter(&self) -> HealthReporter {
        self.reporter.clone()
    }

    /// Whether the server currently reports SERVING.
    pub async fn is_serving(&self) -> bool {
        self.state.lock().await.serving
    }

    /// Sets SERVING (`true`) or NOT_SERVING. Returns `false`, changing
    /// nothing, when asked to serve while draining.
    pub async fn set_serving(&self, serving: bool) -> bool {
        let mut state = self.state.lock().await;
        if serving && state.draining {
            return false;
        }
        state.serving = serving;
        self.publish(serving).await;
        true
    }

    /// Flips between SERVING and NOT_SERVING and returns the new status
    /// (`true` = SERVING), or `None` while draining.
    pub async fn toggle(&self) -> Option<bool> {
        let mut state = self.state.lock().await;
        if state.draining {
            return None;
        }
        state.serving = !state.serving;
        self.publish(state.serving).await;
        Some(state.serving)
    }

    /// NOT_SERVING for good: the server is going away.
    pub async fn begin_drain(&self) {
        let mut state = self.state.lock().await;
        state.draining = true;
        state.serving = false;
        self.publish(false).await;
    }

    async fn publish(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for service in SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
    }
}
