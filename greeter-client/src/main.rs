//! `greeter-client`: calls `greet.Greeter/SayHello` through the round-robin
//! channel and reports how the calls were spread; `greeter-client diagnose`
//! finds out why calls to any service fail. See `--help`.
//!
//! - `main.rs`: dispatch and exit codes.
//! - `args.rs`: the command line.
//! - `run.rs`: the call loop (concurrency, rate, duration).
//! - `report.rs`: counting, percentiles, the text and JSON summaries.
//! - `diagnose/`: the `diagnose` subcommand (its `mod.rs` tells its layout).

mod args;
mod diagnose;
mod report;
mod run;

use std::process::ExitCode;

use clap::Parser;
use common::logging;
use xds_balancer::{Builder, Channel, RetryPolicy};

use crate::args::{CallArgs, Cli, Command, DEFAULT_CALLS};

/// Exit code of a channel that could not be set up.
const EXIT_SETUP: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Diagnose(args)) => diagnose::run(args).await,
        None => call(cli.call).await,
    }
}

/// The call mode.
async fn call(args: CallArgs) -> ExitCode {
    logging::init(args.log_format);
    let mut channels = Vec::with_capacity(args.target.len());
    for target in &args.target {
        match connect(&args, target).await {
            Ok(channel) => channels.push(channel),
            Err(error) => {
                logging::fatal(args.log_format, "cannot set up the channel", &error);
                return ExitCode::from(EXIT_SETUP);
            }
        }
    }
    let plan = run::Plan {
        calls: match (args.calls, args.duration) {
            (Some(calls), _) => Some(calls),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_CALLS),
        },
        duration: args.duration,
        concurrency: args.concurrency.max(1),
        rate: args.rate.filter(|r| *r > 0.0),
        name: args.name.clone(),
        delay_ms: args.delay_ms,
        timeout: args.timeout,
        progress: args.progress.filter(|every| !every.is_zero()),
    };
    let report = run::run(channels, &plan).await;
    let target = args.target.join(",");
    if args.json {
        println!("{}", report.json(&target, &plan));
    } else {
        print!("{}", report.text(&target, &plan));
    }
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Builds the channel for `target` and waits (up to `--wait`) for its
/// endpoints.
async fn connect(args: &CallArgs, target: &str) -> Result<Channel, xds_balancer::Error> {
    let mut builder = args.control_plane.apply(Builder::new(target));
    if let Some(id) = &args.node_id {
        builder = builder.node_id(id.clone());
    }
    if args.retry {
        builder = builder.retry_policy(RetryPolicy::for_methods(["/greet.Greeter/SayHello"]));
    }
    if args.health_check {
        builder = builder.health_check("greet.Greeter");
    }
    let channel = builder.default_wait(args.timeout).connect().await?;
    match channel.settled(args.wait).await {
        Ok(set) => {
            let ready: Vec<_> = set
                .ready()
                .map(|e| match e.hostname.as_str() {
                    "" => e.addr.to_string(),
                    name => format!("{name} ({})", e.addr),
                })
                .collect();
            tracing::info!(target = %set.target, ?ready, "endpoints ready");
        }
        Err(status) => tracing::warn!(
            message = status.message(),
            "starting without ready endpoints"
        ),
    }
    Ok(channel)
}
