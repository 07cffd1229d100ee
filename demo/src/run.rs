//! Running the demo: the settings for normal and `--quick` runs, the script
//! raced against Ctrl-C / SIGTERM, clean-up, the summary and the exit code.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use crate::args::Args;
use crate::cluster::{Cluster, Timings};
use crate::load::LoadConfig;
use crate::scenario::{self, Settings};
use crate::screen::{Out, Screen};
use crate::stats::Recorder;
use crate::summary::Summary;

/// Exit code when interrupted.
const EXIT_INTERRUPTED: u8 = 130;

/// The settings for `args`.
pub(crate) fn settings(args: &Args) -> Settings {
    let quick = args.quick;
    Settings {
        load: LoadConfig {
            rate: args.rate,
            timeout: args.call_timeout,
        },
        timings: Timings {
            // Long enough for the control plane to see NOT_SERVING and the
            // client to hear of it (milliseconds here; seconds in a cluster).
            drain_delay: if quick {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(2)
            },
            grace: Duration::from_secs(5),
            probe_interval: Duration::from_millis(500),
            file_poll_interval: Duration::from_millis(200),
        },
        steady: if quick {
            Duration::from_millis(1500)
        } else {
            Duration::from_secs(5)
        },
        control_plane_down: if quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(5)
        },
        retry: args.retry,
    }
}

/// Runs the demo and returns its exit code.
pub(crate) async fn run(args: Args) -> ExitCode {
    let started = Instant::now();
    let screen = Screen::new(if args.json { Out::Stderr } else { Out::Stdout });
    let settings = settings(&args);
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("error: failed to install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut cluster = match Cluster::new(settings.timings, args.tls) {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let recorder = Recorder::new();
    let finished = tokio::select! {
        result = scenario::run(&mut cluster, screen.clone(), recorder.clone(), settings) => Some(result),
        _ = term.recv() => None,
        _ = int.recv() => None,
    };
    screen.clear_table();
    let Some((outcome, error)) = finished else {
        screen.print("\nInterrupted: stopping every process the demo started...\n");
        cluster.shutdown().await;
        return ExitCode::from(EXIT_INTERRUPTED);
    };
    if let Some(error) = &error {
        screen.print(&format!("\nThe demo failed: {error}\n{}", cluster.logs()));
    }
    screen.print("\nStopping every process the demo started...\n");
    cluster.shutdown().await;
    drop(cluster);

    let summary = Summary::new(outcome, error.map(|e| e.to_string()));
    screen.print(&summary.text());
    if args.json {
        let json = summary.json(args.rate, args.quick, started.elapsed().as_secs_f64());
        println!("{json}");
    }
    if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
