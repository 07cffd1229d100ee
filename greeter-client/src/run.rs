//! The call loop: `concurrency` workers share one call counter (call `n`
//! goes to target `n mod targets`, so several targets take turns); an
//! optional pace spreads call starts evenly (call k starts no earlier than
//! k / rate after the start). With `progress` set, a line summing up the
//! last interval is logged every interval, for long runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use tokio::time::Instant;
use xds_balancer::Channel;

use crate::report::{Report, Tally};

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Stop after this many calls (`None`: only the duration limits).
    pub(crate) calls: Option<u64>,
    /// Stop starting calls after this long.
    pub(crate) duration: Option<Duration>,
    pub(crate) concurrency: usize,
    /// Calls per second in all.
    pub(crate) rate: Option<f64>,
    pub(crate) name: String,
    pub(crate) delay_ms: u32,
    /// Deadline of each call.
    pub(crate) timeout: Duration,
    /// Log a progress line this often.
    pub(crate) progress: Option<Duration>,
}

/// Calls of the current progress interval, shared by the workers.
type Window = Arc<Mutex<Tally>>;

/// Runs the plan over `channels` (one per target, at least one) and counts
/// what happened.
pub(crate) async fn run(channels: Vec<Channel>, plan: &Plan) -> Report {
    let started = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let clients: Vec<GreeterClient<Channel>> =
        channels.into_iter().map(GreeterClient::new).collect();
    let window: Option<Window> = plan.progress.map(|_| Window::default());
    let reporter = plan.progress.zip(window.clone()).map(|(every, window)| {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(started + every, every);
            loop {
                ticker.tick().await;
                let part = std::mem::take(&mut *window.lock().expect("progress lock"));
                part.log_progress(every);
            }
        })
    });
    let workers: Vec<_> = (0..plan.concurrency)
        .map(|_| {
            tokio::spawn(worker(
                clients.clone(),
                plan.clone(),
                issued.clone(),
                started,
                window.clone(),
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        match worker.await {
            Ok(part) => tally.merge(part),
            Err(error) => tracing::error!(%error, "a worker failed"),
        }
    }
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    Report::new(tally, started.elapsed())
}

async fn worker(
    mut clients: Vec<GreeterClient<Channel>>,
    plan: Plan,
    issued: Arc<AtomicU64>,
    started: Instant,
    window: Option<Window>,
) -> Tally {
    let mut tally = Tally::default();
    let end = plan.duration.map(|d| started + d);
    loop {
        let n = issued.fetch_add(1, Ordering::Relaxed);
        if plan.calls.is_some_and(|limit| n >= limit) {
            break;
        }
        if let Some(rate) = plan.rate {
            let turn = started + Duration::from_secs_f64(n as f64 / rate);
            if end.is_some_and(|end| turn >= end) {
                break;
            }
            tokio::time::sleep_until(turn).await;
        }
        if end.is_some_and(|end| Instant::now() >= end) {
            break;
        }
        let mut request = tonic::Request::new(HelloRequest {
            name: plan.name.clone(),
            delay_ms: plan.delay_ms,
        });
        request.set_timeout(plan.timeout);
        let call_started = Instant::now();
        let turn = usize::try_from(n).unwrap_or_default() % clients.len();
        let result = clients[turn].say_hello(request).await;
        let latency = call_started.elapsed();
        let outcome = result.map(|r| r.into_inner().served_by);
        if let Some(window) = &window {
            window
                .lock()
                .expect("progress lock")
                .record(latency, outcome.clone());
        }
        tally.record(latency, outcome);
    }
    tally
}
