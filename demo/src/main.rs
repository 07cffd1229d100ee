//! `demo`: the whole system on one machine in one command (the README's
//! main command, `cargo run --release --bin demo`). See `--help`.
//!
//! # Layout
//!
//! - [`roles`]: hidden subcommands that run the real greeter-server and
//!   control-plane code in child copies of this executable.
//! - [`children`]: starting those children (with the test kit's child
//!   processes, which watch, signal and stop them).
//! - [`cluster`]: the control plane, the backends, and the static file that
//!   plays the Kubernetes API.
//! - `demo::balancer` (in the library, `src/lib.rs`): a per-connection TCP
//!   balancer (what kube-proxy does).
//! - [`load`]: the client's steady call rate; [`stats`]: counting calls per
//!   segment of the script.
//! - [`scenario`]: set-up and the helpers phases share; [`phases`]: the six
//!   phases, the first in [`baseline`].
//! - [`screen`]: live output; [`summary`]: the final table and JSON.
//! - [`args`], [`run`]: the command line, signals, clean-up, exit code.

mod args;
mod baseline;
mod children;
mod cluster;
mod load;
mod phases;
mod roles;
mod run;
mod scenario;
mod screen;
mod stats;
mod summary;
mod tls;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    if let Some(code) = roles::dispatch() {
        return code;
    }
    let args = args::Args::parse();
    // One thread: children ask the kernel to kill them when the thread that
    // started them exits (PR_SET_PDEATHSIG), which must be the whole demo.
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run::run(args)),
        Err(error) => {
            eprintln!("error: failed to start the Tokio runtime: {error}");
            ExitCode::FAILURE
        }
    }
}
