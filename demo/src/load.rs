//! The demo's client load: SayHello at a steady rate, each call on its own
//! task, every outcome reported to the [`Recorder`].
//!
//! Call starts are paced by a clock, not by answers, like a service
//! answering its own users: a slow or failing backend does not slow the
//! load down, it shows up as failures.

use std::sync::Arc;
use std::time::Duration;

use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::stats::{Outcome, Recorder};

/// Calls in flight at most; when reached, the next start waits.
const MAX_IN_FLIGHT: usize = 256;

/// What the calls go through.
#[derive(Debug, Clone)]
pub(crate) enum Client {
    /// A plain tonic channel to one address (the "ClusterIP").
    Plain(GreeterClient<tonic::transport::Channel>),
    /// The xDS-fed round-robin channel.
    Balanced(GreeterClient<xds_balancer::Channel>),
}

impl Client {
    async fn say_hello(&mut self, request: tonic::Request<HelloRequest>) -> Outcome {
        let result = match self {
            Self::Plain(client) => client.say_hello(request).await,
            Self::Balanced(client) => client.say_hello(request).await,
        };
        match result {
            Ok(reply) => {
                let reply = reply.into_inner();
                Outcome::Ok {
                    backend: reply.served_by,
                    connection: reply.connection_id,
                }
            }
            Err(status) => Outcome::Failed {
                code: status.code(),
                message: status.message().to_owned(),
            },
        }
    }
}

/// How the load runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadConfig {
    /// Calls started per second.
    pub(crate) rate: f64,
    /// Deadline of each call (waiting for an endpoint included).
    pub(crate) timeout: Duration,
}

/// A running load. [`Load::stop`] it to wait for its last calls.
#[derive(Debug)]
pub(crate) struct Load {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Load {
    /// Starts calling through `client`.
    pub(crate) fn start(client: Client, config: LoadConfig, recorder: Arc<Recorder>) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(client, config, recorder, stop.clone()));
        Self {
            stop,
            task: Some(task),
        }
    }

    /// Stops starting calls and waits for those in flight.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(client: Client, config: LoadConfig, recorder: Arc<Recorder>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let period = Duration::from_secs_f64(1.0 / config.rate.max(0.1));
    let mut ticks = tokio::time::interval(period);
    // Behind schedule (a busy machine): catch up, keeping the rate.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let mut client = client.clone();
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let segment = recorder.start_call();
            let mut request = tonic::Request::new(HelloRequest {
                name: "demo".to_owned(),
                delay_ms: 0,
            });
            request.set_timeout(config.timeout);
            let outcome = client.say_hello(request).await;
            recorder.finish_call(segment, &outcome);
            drop(slot);
        });
    }
    // Every slot back: every call finished.
    let _ = slots.acquire_many(MAX_IN_FLIGHT as u32).await;
}
