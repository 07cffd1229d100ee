//! `greeter-server`: the example backend. See `--help`; the command line
//! and its wiring live in [`greeter_server::cli`].

use std::process::ExitCode;

use clap::Parser as _;
use greeter_server::cli::{self, Args};

#[tokio::main]
async fn main() -> ExitCode {
    cli::run(Args::parse()).await
}
