//! The end-to-end row: a readiness change made by a real backend.
//!
//! Three greeter-server processes behind the real `control-plane serve
//! --static` (the static source probes each one's grpc.health.v1 with a
//! Watch, playing the kubelet). A change is `kill -USR1` on the first
//! backend, which flips its health between SERVING and NOT_SERVING; the
//! clock starts just before the signal is sent. The path measured is the
//! whole one: signal → health Watch → prober → store → ADS → every
//! xds-balancer `Channel`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::board::{Board, fingerprint};
use super::rows::{Change, Outcome, Row, SubscriberKind, trial_summary};
use super::{Error, channel};
use crate::clock;
use crate::procs::{Bins, Proc};

/// Backends behind the service.
const BACKENDS: usize = 3;

/// Runs `trials` health flips with each count in `subscribers`.
pub(crate) async fn run(
    bins: &Bins,
    subscribers: &[usize],
    trials: usize,
) -> Result<Vec<Row>, Error> {
    let server = bins.path("greeter-server")?;
    let mut backends = Vec::new();
    for i in 0..BACKENDS {
        let args = [
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--name".to_owned(),
            format!("e2e-{i}"),
        ];
        backends.push(Proc::start(&format!("greeter-server e2e-{i}"), &server, &args).await?);
    }
    let list: Vec<String> = backends.iter().map(|b| b.addr().to_string()).collect();
    let args = [
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--static".to_owned(),
        format!("greeter={}", list.join(",")),
        // Every subscriber comes from 127.0.0.1: no stream limits here.
        "--max-streams".to_owned(),
        "0".to_owned(),
        "--max-streams-per-peer".to_owned(),
        "0".to_owned(),
    ];
    let control_plane = Proc::start("control-plane", &bins.path("control-plane")?, &args).await?;
    let flipped = backends[0].addr();

    let mut rows = Vec::new();
    for &count in subscribers {
        let board = Arc::new(Board::new(count));
        board.expect(fingerprint([]));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(count);
        for index in 0..count {
            let channel = channel::connect(index, control_plane.addr(), super::SERVICE)
                .await
                .map_err(|error| Error::Subscriber(error.to_string()))?;
            tasks.push(channel::watch(index, channel, board.clone()));
        }
        if !board.wait_all(Duration::from_secs(60)).await {
            return Err(Error::Setup {
                subscribers: count,
                failures: board.failures(),
            });
        }
        let setup_s = started.elapsed().as_secs_f64();
        let mut outcomes = Vec::with_capacity(trials);
        let mut flipped_down = false;
        for _ in 0..trials {
            flipped_down = !flipped_down;
            let expected = if flipped_down {
                fingerprint([flipped])
            } else {
                fingerprint([])
            };
            board.expect(expected);
            let at = clock::now_ns();
            backends[0].signal(Signal::SIGUSR1)?;
            board.wait_all(Duration::from_secs(30)).await;
            outcomes.push(Outcome::from_arrivals(&board.arrivals(), at, at));
            // Let the re-added endpoint's connections come up.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for task in &tasks {
            task.abort();
        }
        let (per_subscriber_ms, _, to_last_ms, missed) = trial_summary(&outcomes);
        rows.push(Row {
            source: "health flip (control-plane serve --static, grpc.health.v1 Watch)".to_owned(),
            control_plane: crate::peers::ControlPlane::Ours,
            client: SubscriberKind::Channel,
            subscribers: count,
            endpoints: BACKENDS,
            streams_per_connection: 1,
            change: Change::Single,
            changes_per_trial: 1,
            trials,
            missed,
            per_subscriber_ms,
            from_first_ms: None,
            to_last_ms,
            updates_per_subscriber: None,
            cp_cpu_ms_per_trial: None,
            subscriber_cpu_us: None,
            cp_memory_per_subscriber_kib: None,
            cp_written_mean_ms: None,
            cp_written_last_ms: None,
            setup_s,
        });
    }
    drop(control_plane);
    drop(backends);
    Ok(rows)
}
