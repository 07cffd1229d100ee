//! The hidden subcommands that turn this executable into one of the
//! system's servers.
//!
//! `cargo run --bin demo` builds only this package, not the other packages'
//! binaries, so the demo cannot count on a `greeter-server` or a
//! `control-plane` executable being there. Instead it starts copies of
//! itself (`std::env::current_exe()`) with a hidden first argument:
//!
//! - `demo __greeter-server <greeter-server flags>`
//! - `demo __control-plane <control-plane flags>` (e.g. `serve --listen ...`)
//!
//! Each parses its flags with, and runs, the very code the real binary's
//! `main` calls ([`greeter_server::cli`], [`control_plane::cli`]), so the
//! demo shows the real servers, not look-alikes.
//!
//! A role process also asks the kernel to kill it when the demo dies
//! (`PR_SET_PDEATHSIG`), so no server outlives a demo that was killed with
//! SIGKILL and could not clean up.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser as _;
use nix::sys::signal::Signal;

/// First argument that runs a greeter-server.
pub(crate) const GREETER_SERVER: &str = "__greeter-server";
/// First argument that runs the control plane.
pub(crate) const CONTROL_PLANE: &str = "__control-plane";
/// Environment variable carrying the demo's process id to its children.
pub(crate) const PARENT_PID_ENV: &str = "DEMO_PARENT_PID";

/// Runs the role named by the first argument, if it names one, and returns
/// its exit code; `None` when this process is the demo itself.
pub(crate) fn dispatch() -> Option<ExitCode> {
    let mut args = std::env::args_os();
    let _exe = args.next();
    let role = args.next()?;
    let rest: Vec<OsString> = args.collect();
    match role.to_str()? {
        GREETER_SERVER => Some(greeter_server(rest)),
        CONTROL_PLANE => Some(control_plane(rest)),
        _ => None,
    }
}

fn greeter_server(rest: Vec<OsString>) -> ExitCode {
    if let Err(code) = die_with_parent() {
        return code;
    }
    let args = greeter_server::cli::Args::parse_from(named("greeter-server", rest));
    block_on(greeter_server::cli::run(args))
}

fn control_plane(rest: Vec<OsString>) -> ExitCode {
    if let Err(code) = die_with_parent() {
        return code;
    }
    let cli = control_plane::cli::Cli::parse_from(named("control-plane", rest));
    block_on(control_plane::cli::run(cli))
}

/// `rest` as the argument list of a program called `name`.
fn named(name: &str, rest: Vec<OsString>) -> impl Iterator<Item = OsString> {
    std::iter::once(OsString::from(name)).chain(rest)
}

/// What the real binaries' `#[tokio::main]` does.
fn block_on<F: std::future::Future<Output = ExitCode>>(future: F) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            eprintln!("failed to start the Tokio runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Has the kernel SIGKILL this process when the demo that started it dies.
/// Refuses to run (exit 1) when the demo is already gone.
fn die_with_parent() -> Result<(), ExitCode> {
    let Some(parent) = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|pid| pid.parse::<i32>().ok())
    else {
        // Started by hand: nothing to follow.
        return Ok(());
    };
    if let Err(error) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        eprintln!("warning: cannot follow the demo's lifetime (prctl: {error})");
        return Ok(());
    }
    // The demo may have died between starting us and the prctl above.
    if nix::unistd::getppid().as_raw() != parent {
        eprintln!("the demo (pid {parent}) is gone; not starting");
        return Err(ExitCode::FAILURE);
    }
    Ok(())
}
