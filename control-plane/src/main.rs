//! `control-plane`: `serve` and `status`. See `--help`; the command line
//! and its wiring live in [`control_plane::cli`].

use std::process::ExitCode;

use control_plane::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    cli::run(Cli::parse_args(std::env::args_os())).await
}
