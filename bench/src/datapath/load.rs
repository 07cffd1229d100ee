//! A closed-loop load generator: a fixed number of workers, each sending
//! one SayHello after another.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::clients::Caller;

/// Longest error text kept (they are grouped by text).
const ERROR_TEXT: usize = 160;

/// What a load run saw within its measuring window.
#[derive(Debug, Clone, Default)]
pub(crate) struct Load {
    /// Calls answered.
    pub(crate) ok: u64,
    /// Calls failed.
    pub(crate) failed: u64,
    /// Length of the measuring window, in seconds.
    pub(crate) window_s: f64,
    /// Latency of every answered call, in ms.
    pub(crate) latencies_ms: Vec<f64>,
    /// Answered calls by `served_by`.
    pub(crate) by_backend: BTreeMap<String, u64>,
    /// Failed calls by error text.
    pub(crate) errors: BTreeMap<String, u64>,
    /// When each failure happened, in seconds from the window's start.
    pub(crate) failures_at_s: Vec<f64>,
    /// CPU time of the harness process (the client) during the window, ns.
    pub(crate) client_cpu_ns: u64,
}

impl Load {
    fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latencies_ms.extend(other.latencies_ms);
        for (backend, n) in other.by_backend {
            *self.by_backend.entry(backend).or_default() += n;
        }
        for (error, n) in other.errors {
            *self.errors.entry(error).or_default() += n;
        }
        self.failures_at_s.extend(other.failures_at_s);
    }

    /// Answered calls per second.
    pub(crate) fn throughput(&self) -> f64 {
        if self.window_s > 0.0 {
            self.ok as f64 / self.window_s
        } else {
            0.0
        }
    }
}

/// Runs `concurrency` workers on `caller` for `warmup` (not counted), then
/// measures until `stop` is cancelled.
pub(crate) async fn run(
    caller: &Caller,
    concurrency: usize,
    warmup: Duration,
    stop: CancellationToken,
) -> Load {
    let measure_from = Instant::now() + warmup;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut caller = caller.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut load = Load::default();
                while !stop.is_cancelled() {
                    let started = Instant::now();
                    let result = caller.say_hello().await;
                    if started < measure_from {
                        continue;
                    }
                    match result {
                        Ok(served_by) => {
                            load.ok += 1;
                            load.latencies_ms
                                .push(started.elapsed().as_secs_f64() * 1e3);
                            *load.by_backend.entry(served_by).or_default() += 1;
                        }
                        Err(error) => {
                            load.failed += 1;
                            load.failures_at_s
                                .push(started.duration_since(measure_from).as_secs_f64());
                            *load.errors.entry(shorten(error)).or_default() += 1;
                        }
                    }
                }
                load
            })
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_from = crate::machine::cpu_ns();
    stop.cancelled().await;
    let stopped = Instant::now();
    let client_cpu_ns = crate::machine::cpu_ns().saturating_sub(cpu_from);
    let mut total = Load {
        window_s: stopped
            .saturating_duration_since(measure_from)
            .as_secs_f64(),
        client_cpu_ns,
        ..Load::default()
    };
    for worker in workers {
        if let Ok(load) = worker.await {
            total.merge(load);
        }
    }
    total.failures_at_s.sort_by(f64::total_cmp);
    total
}

/// `text` cut to at most [`ERROR_TEXT`] bytes, at a character boundary.
pub(crate) fn shorten(mut text: String) -> String {
    let mut end = text.len().min(ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// Like [`run`], measuring for `duration` after the warm-up.
pub(crate) async fn run_for(
    caller: &Caller,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Load {
    let stop = CancellationToken::new();
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(warmup + duration).await;
            stop.cancel();
        })
    };
    let load = run(caller, concurrency, warmup, stop).await;
    timer.abort();
    load
}
